//! Command-line flags. Every flag has a `MODELSHARE_*` environment variable and a default that
//! works with no configuration at all.

use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Debug, Parser)]
#[command(
    name = "modelshare",
    version,
    about = "Open usage analytics and revealed-preference index for LLM routing traffic"
)]
pub struct Cli {
    /// More logging (-v debug, -vv trace); MODELSHARE_LOG overrides.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: ingest at POST /v1/events, the JSON API under /v1.
    Serve(ServeArgs),
    /// Generate ~8 weeks of realistic traffic into a local lake (once) and serve it.
    Demo(DemoArgs),
    /// Load NDJSON files (or `-` for stdin) straight into a lake.
    Ingest(IngestArgs),
    /// Run SQL over the lake (table `events`).
    Query(QueryArgs),
    /// Generate synthetic traffic into a lake or stream it to a server.
    Generate(GenerateArgs),
    /// Benchmarks: ingest throughput, query latency against DuckDB.
    Bench(BenchArgs),
}

/// Where the lake lives.
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// Lake directory (Parquet files, write-ahead log).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = "./data/lake")]
    pub data_dir: PathBuf,
}

/// Ingest tuning.
#[derive(Debug, Clone, Args)]
pub struct IngestTuning {
    /// Flush buffered rows to Parquet once this many are waiting.
    #[arg(long, env = "MODELSHARE_FLUSH_ROWS", default_value_t = 1_000_000)]
    pub flush_rows: usize,
    /// Flush buffered rows at least this often (seconds).
    #[arg(long, env = "MODELSHARE_FLUSH_INTERVAL_SECS", default_value_t = 60.0)]
    pub flush_interval_secs: f64,
    /// Answer 503 while this many rows wait for Parquet (flushes falling behind).
    #[arg(
        long,
        env = "MODELSHARE_MAX_BUFFERED_ROWS",
        default_value_t = 4_000_000
    )]
    pub max_buffered_rows: usize,
}

impl IngestTuning {
    pub fn to_config(&self) -> anyhow::Result<modelshare_ingest::IngestConfig> {
        anyhow::ensure!(self.flush_rows > 0, "--flush-rows must be at least 1");
        anyhow::ensure!(
            self.flush_interval_secs.is_finite() && self.flush_interval_secs > 0.0,
            "--flush-interval-secs must be a positive number of seconds"
        );
        Ok(modelshare_ingest::IngestConfig {
            flush_rows: self.flush_rows,
            flush_interval: Duration::from_secs_f64(self.flush_interval_secs),
            max_buffered_rows: self.max_buffered_rows,
            ..Default::default()
        })
    }
}

/// Query and publication settings.
#[derive(Debug, Clone, Args)]
pub struct QueryTuning {
    /// Publish figures only for groups with at least this many distinct apps.
    #[arg(long, env = "MODELSHARE_MIN_APPS", default_value_t = 5)]
    pub min_apps: u64,
    /// Cancel queries that run longer than this (seconds).
    #[arg(long, env = "MODELSHARE_QUERY_TIMEOUT_SECS", default_value_t = 30)]
    pub query_timeout_secs: u64,
}

impl QueryTuning {
    pub fn to_config(&self) -> modelshare_query::QueryConfig {
        modelshare_query::QueryConfig {
            timeout: Duration::from_secs(self.query_timeout_secs.max(1)),
            min_apps: self.min_apps,
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Address to listen on (port 0 picks a free port; the URL is printed).
    #[arg(long, env = "MODELSHARE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Largest request body accepted, after decompression (bytes).
    #[arg(long, env = "MODELSHARE_MAX_BODY_BYTES", default_value_t = modelshare_web::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    #[command(flatten)]
    pub ingest: IngestTuning,
    #[command(flatten)]
    pub query: QueryTuning,
    /// Website (#5): read dashboard files (*.toml) from this directory instead of the built-in
    /// ones; an invalid file stops start-up.
    #[arg(long, env = "MODELSHARE_DASHBOARDS")]
    pub dashboards: Option<PathBuf>,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Lake directory for the demo traffic (reused when it already holds the demo).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = "./data/lake")]
    pub data_dir: PathBuf,
    /// Address to listen on.
    #[arg(long, env = "MODELSHARE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Events to generate.
    #[arg(long, default_value_t = 3_000_000)]
    pub events: u64,
    /// Seed of the generator.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Generate the lake, print where it is, and exit without serving.
    #[arg(long)]
    pub no_serve: bool,
}

#[derive(Debug, Clone, Args)]
pub struct IngestArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// NDJSON files to load; `-` reads standard input.
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum OutputFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Clone, Args)]
pub struct QueryArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// One SQL statement over the table `events` (read-only).
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Cancel the query after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    /// Events to generate.
    #[arg(long, default_value_t = 3_000_000)]
    pub events: u64,
    /// Distinct apps.
    #[arg(long, default_value_t = 3_000)]
    pub apps: u32,
    /// Days of traffic.
    #[arg(long, default_value_t = 56)]
    pub days: u32,
    /// First day (default: so that the period ends on the last Sunday before today).
    #[arg(long)]
    pub start: Option<chrono::NaiveDate>,
    /// Seed; the same seed gives the same events.
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Stream NDJSON to this server (e.g. http://127.0.0.1:8080) instead of writing Parquet.
    #[arg(long)]
    pub to: Option<String>,
    /// Events per HTTP request when streaming.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
}

#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    #[command(subcommand)]
    pub which: BenchCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum BenchCommand {
    /// Durable events/s through HTTP on loopback, bytes/event, peak RSS.
    Ingest(BenchIngestArgs),
    /// Leaderboard query time over a generated lake, cold and warm, next to DuckDB.
    Query(BenchQueryArgs),
}

#[derive(Debug, Clone, Args)]
pub struct BenchIngestArgs {
    /// Events to send in the batched run.
    #[arg(long, default_value_t = 2_000_000)]
    pub events: u64,
    /// Events per request in the batched run.
    #[arg(long, default_value_t = 1000)]
    pub batch: usize,
    /// Requests in the one-event-per-request run.
    #[arg(long, default_value_t = 200_000)]
    pub single_requests: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    pub clients: usize,
    /// Scratch directory (default: a temporary directory).
    #[arg(long)]
    pub dir: Option<PathBuf>,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-ingest.txt")]
    pub out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub struct BenchQueryArgs {
    /// Events in the generated lake (reused if the lake already holds this many).
    #[arg(long, default_value_t = 10_000_000)]
    pub events: u64,
    /// Lake directory for the benchmark.
    #[arg(long, default_value = "target/bench-lake")]
    pub dir: PathBuf,
    /// Warm repetitions.
    #[arg(long, default_value_t = 5)]
    pub runs: usize,
    /// Python interpreter with the `duckdb` module (skipped with a note if missing).
    #[arg(long, default_value = "python3")]
    pub python: String,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-query.txt")]
    pub out: PathBuf,
}
