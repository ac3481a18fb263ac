//! The benchmark programs' command line (`cargo run -p modelshare-bench --release -- ...`).

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// Benchmark programs: they print figures (and append them to a file), next to DuckDB on the
/// same files in the same run. Not tests: nothing here asserts a time.
#[derive(Debug, Parser)]
#[command(name = "modelshare-bench", version)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) which: BenchCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub(crate) enum BenchCommand {
    /// Durable events/s through HTTP on loopback, bytes/event, peak RSS.
    Ingest(BenchIngestArgs),
    /// Leaderboard query time over a generated lake, cold and warm, next to DuckDB.
    Query(BenchQueryArgs),
    /// Preference index and retention over 12 weeks of a large lake, from the rollup and from
    /// raw events, next to DuckDB.
    Analytics(BenchAnalyticsArgs),
    /// Public reads at a router's volume: generate, start-up, cold and warm reads, a mixed
    /// read and ingest load, next to DuckDB on the raw files.
    Scale(BenchScaleArgs),
    /// Bytes per event of one events file rewritten in other row orders and writer settings.
    Encodings(BenchEncodingsArgs),
    /// The same cold raw-event queries on one node and on a Ballista cluster (a scheduler and
    /// executors started here), next to DuckDB; needs a `modelshare` built with
    /// `--features ballista`.
    Cluster(BenchClusterArgs),
    /// A closed day written by two nodes (flush files, some events in both) compacted as the
    /// node holding the lease does it, next to DuckDB keeping one row per id on the same files.
    Compaction(BenchCompactionArgs),
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchCompactionArgs {
    /// A day's directory of a lake (`…/events/date=YYYY-MM-DD`, e.g. from `modelshare
    /// generate`): its rows become the flush files of two nodes. Default: a day of `--events`
    /// generated under `--work` (kept for the next run).
    #[arg(long)]
    pub(crate) day: Option<PathBuf>,
    /// Events of the generated day (12 M: a day of the 1 B-event lake).
    #[arg(long, default_value_t = 12_000_000)]
    pub(crate) events: u64,
    /// Flush files per node.
    #[arg(long, default_value_t = 48)]
    pub(crate) flushes: usize,
    /// Percent of the day's events the second node took too.
    #[arg(long, default_value_t = 1.0)]
    pub(crate) repeat_percent: f64,
    /// Where the two nodes' lake is written (`lake`, emptied first) and the generated day kept
    /// (`source`).
    #[arg(long)]
    pub(crate) work: PathBuf,
    /// Python interpreter with the `duckdb` module (skipped with a note if missing).
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-compaction.txt")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchClusterArgs {
    /// The lake (a directory, or `s3://BUCKET/PREFIX` with the store's AWS_* variables set);
    /// `modelshare generate` or `modelshare-bench scale` makes one.
    #[arg(long)]
    pub(crate) lake: String,
    /// Executors in the cluster (they share this machine's cores with the scheduler).
    #[arg(long, default_value_t = 2)]
    pub(crate) executors: usize,
    /// Task slots per executor.
    #[arg(long, default_value_t = 1)]
    pub(crate) slots: usize,
    /// Runs of each query on each engine (each one a new client process: cold).
    #[arg(long, default_value_t = 3)]
    pub(crate) runs: usize,
    /// The `modelshare` binary, built with `--features ballista` (default: the one built next
    /// to this program).
    #[arg(long, env = "MODELSHARE_BIN")]
    pub(crate) server_bin: Option<PathBuf>,
    /// Python interpreter with the `duckdb` module (skipped with a note if missing; local
    /// lakes only).
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-cluster.txt")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchEncodingsArgs {
    /// An events file of a lake (e.g. one compacted day).
    pub(crate) file: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchScaleArgs {
    /// Events in the generated lake (reused if the lake already holds this data set).
    #[arg(long, default_value_t = 100_000_000)]
    pub(crate) events: u64,
    /// Distinct apps.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) apps: u32,
    /// Days of traffic.
    #[arg(long, default_value_t = 84)]
    pub(crate) days: u32,
    /// First day of traffic.
    #[arg(long, default_value = "2026-08-31")]
    pub(crate) start: chrono::NaiveDate,
    #[arg(long, default_value_t = 99)]
    pub(crate) seed: u64,
    /// Lake directory for the benchmark (keep it outside the repository).
    #[arg(long)]
    pub(crate) dir: PathBuf,
    /// Warm repetitions per read.
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Reads per second in the mixed load.
    #[arg(long, default_value_t = 1000)]
    pub(crate) read_rate: u32,
    /// Events per second ingested during the mixed load.
    #[arg(long, default_value_t = 5000)]
    pub(crate) ingest_rate: u32,
    /// Length of the mixed load (seconds).
    #[arg(long, default_value_t = 30)]
    pub(crate) load_secs: u64,
    /// The `modelshare` binary to benchmark (default: the one built next to this program).
    #[arg(long, env = "MODELSHARE_BIN")]
    pub(crate) server_bin: Option<PathBuf>,
    /// Python interpreter with the `duckdb` module (skipped with a note if missing).
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-scale.txt")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchIngestArgs {
    /// Events to send in the batched run.
    #[arg(long, default_value_t = 2_000_000)]
    pub(crate) events: u64,
    /// Events per request in the batched run.
    #[arg(long, default_value_t = 1000)]
    pub(crate) batch: usize,
    /// Requests in the one-event-per-request run.
    #[arg(long, default_value_t = 200_000)]
    pub(crate) single_requests: u64,
    /// Concurrent client connections.
    #[arg(long, default_value_t = 64)]
    pub(crate) clients: usize,
    /// Scratch directory (default: a temporary directory); with `--bucket`, the node's local
    /// directory.
    #[arg(long)]
    pub(crate) dir: Option<PathBuf>,
    /// Ingest into a lake in an S3 API bucket (`s3://BUCKET/PREFIX`, an empty prefix; the
    /// store's AWS_* variables from the environment), then time a replacement node that copies
    /// it down.
    #[arg(long)]
    pub(crate) bucket: Option<String>,
    /// The `modelshare` binary to benchmark (default: the one built next to this program).
    #[arg(long, env = "MODELSHARE_BIN")]
    pub(crate) server_bin: Option<PathBuf>,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-ingest.txt")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchQueryArgs {
    /// Events in the generated lake (reused if the lake already holds this many).
    #[arg(long, default_value_t = 10_000_000)]
    pub(crate) events: u64,
    /// Lake directory for the benchmark.
    #[arg(long, default_value = "target/bench-lake")]
    pub(crate) dir: PathBuf,
    /// Warm repetitions.
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Python interpreter with the `duckdb` module (skipped with a note if missing).
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-query.txt")]
    pub(crate) out: PathBuf,
}

#[derive(Debug, Clone, Args)]
pub(crate) struct BenchAnalyticsArgs {
    /// Events in the generated lake (reused if the lake already holds this data set).
    #[arg(long, default_value_t = 50_000_000)]
    pub(crate) events: u64,
    /// Distinct apps.
    #[arg(long, default_value_t = 20_000)]
    pub(crate) apps: u32,
    /// Weeks of traffic (and the analysis window).
    #[arg(long, default_value_t = 12)]
    pub(crate) weeks: u32,
    /// Task analysed.
    #[arg(long, default_value = "programming")]
    pub(crate) task: String,
    /// Lake directory for the benchmark.
    #[arg(long, default_value = "target/bench-lake-analytics")]
    pub(crate) dir: PathBuf,
    /// Warm repetitions.
    #[arg(long, default_value_t = 5)]
    pub(crate) runs: usize,
    /// Python interpreter with the `duckdb` module (skipped with a note if missing).
    #[arg(long, default_value = "python3")]
    pub(crate) python: String,
    /// Append the figures to this file.
    #[arg(long, default_value = "target/bench-analytics.txt")]
    pub(crate) out: PathBuf,
}
