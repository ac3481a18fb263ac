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

// Parsed once per process: the size of the largest variant costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server: ingest at POST /v1/events, the JSON API under /v1.
    Serve(ServeArgs),
    /// Generate ~8 weeks of realistic traffic into a local lake (once) and serve it.
    Demo(DemoArgs),
    /// Load NDJSON files (or `-` for stdin) straight into a lake.
    Ingest(IngestArgs),
    /// Run SQL over the lake (tables `events`, `app_days`, `hourly`).
    Query(QueryArgs),
    /// Generate synthetic traffic into a lake or stream it to a server.
    Generate(GenerateArgs),
    /// Build the app-week rollup of closed weeks (the server does this by itself).
    Rollup(RollupArgs),
    /// Write a closed week's public snapshot (or, with --raw, its events) to a Parquet file.
    Export(ExportArgs),
    /// Ingest and admin keys: create (the key is printed once), list, revoke.
    Keys(KeysArgs),
    /// Apps shown by name: record an app's consent (publish), withdraw it, list them.
    Apps(AppsArgs),
    /// Inspect the write-ahead log and recover what damaged segments still hold.
    Wal(WalArgs),
    /// Run a scheduler or an executor of an Apache DataFusion Ballista cluster over the lake,
    /// for `query --ballista` and `serve --ballista` (in builds with `--features ballista`).
    #[command(subcommand)]
    Cluster(ClusterRole),
}

/// The Ballista scheduler a command sends its raw-event SQL to.
#[derive(Debug, Clone, Args)]
pub struct BallistaArgs {
    /// Run ad-hoc SQL on the Apache DataFusion Ballista cluster whose scheduler is at this
    /// address (`df://HOST:PORT`, see `modelshare cluster`) instead of in this process; the
    /// cluster reads the lake's files (`--data-dir`). Needs a build with `--features ballista`.
    #[arg(long, env = "MODELSHARE_BALLISTA", value_name = "df://HOST:PORT")]
    pub ballista: Option<String>,
}

/// A member of a Ballista cluster.
#[derive(Debug, Clone, Subcommand)]
pub enum ClusterRole {
    /// The scheduler: plans the statements clients send and hands their tasks to executors.
    Scheduler(SchedulerArgs),
    /// An executor: takes tasks from a scheduler and runs them over the lake's files.
    Executor(ExecutorArgs),
}

/// `modelshare cluster scheduler`.
#[derive(Debug, Clone, Args)]
pub struct SchedulerArgs {
    /// The lake the cluster reads: `s3://BUCKET/PREFIX` (AWS_* variables as for `serve`), or a
    /// directory every executor sees at the same path.
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: String,
    /// Address the scheduler listens on (gRPC); clients and executors are given it as
    /// `df://HOST:PORT`. Port 0 picks a free port (the address is printed).
    #[arg(long, env = "MODELSHARE_CLUSTER_LISTEN", default_value = DEFAULT_SCHEDULER_LISTEN)]
    pub listen: SocketAddr,
}

/// `modelshare cluster executor`.
#[derive(Debug, Clone, Args)]
pub struct ExecutorArgs {
    /// The lake the cluster reads (the scheduler's `--data-dir`).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: String,
    /// The scheduler to take tasks from.
    #[arg(long, env = "MODELSHARE_BALLISTA", default_value = DEFAULT_SCHEDULER_URL, value_name = "df://HOST:PORT")]
    pub scheduler: String,
    /// Address of this executor's Arrow Flight service, where the other members and the
    /// clients read the rows its tasks produce.
    #[arg(long, env = "MODELSHARE_CLUSTER_LISTEN", default_value = DEFAULT_EXECUTOR_LISTEN)]
    pub listen: SocketAddr,
    /// The host name the others reach `--listen` by, when it is not its address (0.0.0.0,
    /// a container, a NAT).
    #[arg(long)]
    pub advertise_host: Option<String>,
    /// Tasks run at once (default: the cores of this machine).
    #[arg(long)]
    pub slots: Option<usize>,
    /// Directory for the shuffle files of running queries (default: a new temporary
    /// directory); the executor removes what it wrote when it stops.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
}

/// `modelshare cluster scheduler --listen` when none is given (Ballista's default port).
pub const DEFAULT_SCHEDULER_LISTEN: &str = "127.0.0.1:50050";
/// `modelshare cluster executor --scheduler` when none is given.
pub const DEFAULT_SCHEDULER_URL: &str = "df://127.0.0.1:50050";
/// `modelshare cluster executor --listen` when none is given (Ballista's default port).
pub const DEFAULT_EXECUTOR_LISTEN: &str = "127.0.0.1:50051";

/// The lake's directory when none is given.
pub const DEFAULT_DATA_DIR: &str = "./data/lake";

/// Where the lake lives, for the commands that work on a local lake.
#[derive(Debug, Clone, Args)]
pub struct LakeArgs {
    /// Lake directory (Parquet files, write-ahead log).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR, value_parser = local_lake_dir)]
    pub data_dir: PathBuf,
}

/// A local lake directory; a URL is refused with the commands that take one.
fn local_lake_dir(dir: &str) -> Result<PathBuf, String> {
    if dir.contains("://") {
        return Err(format!(
            "{dir:?} is a URL: this command works on a local lake directory. A lake in a bucket \
             is written by `modelshare serve`, `generate`, `ingest`, `rollup` and `export` \
             and read by `query` with `--data-dir s3://BUCKET/PREFIX`"
        ));
    }
    Ok(PathBuf::from(dir))
}

/// Where the lake of `generate`, `ingest`, `rollup` and `export` lives: a directory, or a bucket
/// the command works on through a local copy (see [`crate::lake_copy`]).
#[derive(Debug, Clone, Args)]
pub struct CommandLakeArgs {
    /// Lake directory, or `s3://BUCKET/PREFIX` for a lake in an S3 API bucket (AWS_* variables
    /// as for `serve`): the command then takes the writer lease (refused while a server writes
    /// the lake), works on a local copy and puts what it changed into the bucket.
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: String,
    /// For a lake in a bucket: the local copy to work on (kept and brought up to date on the
    /// next run; default: a temporary directory, removed at the end).
    #[arg(long)]
    pub local_dir: Option<PathBuf>,
    /// For a lake in a bucket: the name in the writer lease and in the files written (default:
    /// the host name).
    #[arg(long, env = "MODELSHARE_NODE_ID")]
    pub node_id: Option<String>,
}

impl CommandLakeArgs {
    /// A local lake at `dir`.
    pub fn local(dir: &std::path::Path) -> CommandLakeArgs {
        CommandLakeArgs {
            data_dir: dir.display().to_string(),
            local_dir: None,
            node_id: None,
        }
    }
}

/// Where the server's lake lives: a directory, or a bucket with a local copy on this node.
#[derive(Debug, Clone, Args)]
pub struct ServeLakeArgs {
    /// Lake directory, or `s3://BUCKET/PREFIX` for a lake in an S3 API bucket (endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION;
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: String,
    /// For a lake in a bucket: this node's local directory (its write-ahead log and its copy
    /// of the lake; copied down from the bucket when empty).
    #[arg(long, env = "MODELSHARE_LOCAL_DIR", default_value = DEFAULT_LOCAL_DIR)]
    pub local_dir: PathBuf,
    /// For a lake in a bucket: this node's name in the writer lease (letters, digits, `-`,
    /// `_`; default: the host name). File names carry it; the writer lease names it.
    #[arg(long, env = "MODELSHARE_NODE_ID")]
    pub node_id: Option<String>,
    /// For a lake in a bucket: how often the bucket is made equal to the local copy (seconds);
    /// flushes put their files at once, this carries compactions, rollups and snapshots.
    #[arg(long, env = "MODELSHARE_BUCKET_SYNC_SECS", default_value_t = DEFAULT_BUCKET_SYNC_SECS)]
    pub bucket_sync_secs: f64,
    /// For a lake in a bucket: how long the writer lease lasts without renewal (seconds); it
    /// is renewed every quarter of it.
    #[arg(long, env = "MODELSHARE_LEASE_SECS", default_value_t = modelshare_ingest::bucket::DEFAULT_LEASE_TTL.as_secs())]
    pub lease_secs: u64,
    /// For a lake in a bucket: wait for the writer lease instead of failing while another node
    /// holds it, then take over (a standby; it listens once it writes).
    #[arg(long, env = "MODELSHARE_STANDBY")]
    pub standby: bool,
    /// For a lake in a bucket: ingest here too while another node holds the writer lease.
    /// Every node flushes its own files to the bucket and copies down the others'; the node
    /// holding the lease does what must happen once (compaction, which also drops an event two
    /// nodes both took, the cube's merges and summaries, rollups, snapshots), and a joined node
    /// takes the lease over when it is let go or expires.
    #[arg(long, env = "MODELSHARE_JOIN", conflicts_with = "standby")]
    pub join: bool,
}

/// A node's local directory when its lake is in a bucket and none is given.
pub const DEFAULT_LOCAL_DIR: &str = "./data/node";

/// Default `--bucket-sync-secs`.
pub const DEFAULT_BUCKET_SYNC_SECS: f64 = 30.0;

impl ServeLakeArgs {
    /// A local lake at `dir`, with the flags' defaults for the rest.
    pub fn local(dir: &std::path::Path) -> ServeLakeArgs {
        ServeLakeArgs {
            data_dir: dir.display().to_string(),
            local_dir: PathBuf::from(DEFAULT_LOCAL_DIR),
            node_id: None,
            bucket_sync_secs: DEFAULT_BUCKET_SYNC_SECS,
            lease_secs: modelshare_ingest::bucket::DEFAULT_LEASE_TTL.as_secs(),
            standby: false,
            join: false,
        }
    }
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
    #[arg(long, env = "MODELSHARE_MIN_APPS", default_value_t = modelshare_query::DEFAULT_MIN_APPS)]
    pub min_apps: u64,
    /// Cancel queries that run longer than this (seconds).
    #[arg(long, env = "MODELSHARE_QUERY_TIMEOUT_SECS", default_value_t = 30)]
    pub query_timeout_secs: u64,
    /// Memory the public queries' operators may reserve together (MiB); beyond it they spill
    /// to disk or fail, instead of growing the process.
    #[arg(long, env = "MODELSHARE_QUERY_MEMORY_MB", default_value_t = DEFAULT_QUERY_MEMORY_MB)]
    pub query_memory_mb: usize,
    /// Answer every public figure from raw events instead of the app-day cube: the reference
    /// the cube is tested against; slow on a big lake.
    #[arg(long, env = "MODELSHARE_RAW_READS")]
    pub raw_reads: bool,
}

/// Default `--query-memory-mb`.
pub const DEFAULT_QUERY_MEMORY_MB: usize = 512;

impl QueryTuning {
    pub fn to_config(&self) -> modelshare_query::QueryConfig {
        modelshare_query::QueryConfig {
            timeout: Duration::from_secs(self.query_timeout_secs.max(1)),
            min_apps: self.min_apps,
            memory_bytes: Some(self.query_memory_mb.max(1) << 20),
            ..Default::default()
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub lake: ServeLakeArgs,
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
    #[command(flatten)]
    pub rollup: RollupTuning,
    #[command(flatten)]
    pub compaction: CompactionTuning,
    #[command(flatten)]
    pub snapshots: SnapshotTuning,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[command(flatten)]
    pub connections: ConnectionArgs,
    #[command(flatten)]
    pub trust: TrustArgs,
    #[command(flatten)]
    pub ballista: BallistaArgs,
    /// Website: read dashboard files (*.toml) from this directory instead of the built-in
    /// ones; an invalid file stops start-up.
    #[arg(long, env = "MODELSHARE_DASHBOARDS")]
    pub dashboards: Option<PathBuf>,
}

/// Request fences: rate limits on public reads, request time limit, admin SQL caps.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Sustained public read requests per second per client IP (0 = unlimited).
    #[arg(long, env = "MODELSHARE_RATE_LIMIT_RPS", default_value_t = 20.0)]
    pub rate_limit_rps: f64,
    /// Public read requests a client may burst before the sustained rate applies.
    #[arg(long, env = "MODELSHARE_RATE_LIMIT_BURST", default_value_t = 100.0)]
    pub rate_limit_burst: f64,
    /// Answer 408 to requests (body upload included) that take longer than this (seconds).
    #[arg(long, env = "MODELSHARE_REQUEST_TIMEOUT_SECS", default_value_t = 60.0)]
    pub request_timeout_secs: f64,
    /// Cancel `POST /v1/sql` queries after this many seconds.
    #[arg(long, env = "MODELSHARE_SQL_TIMEOUT_SECS", default_value_t = 10.0)]
    pub sql_timeout_secs: f64,
    /// Memory one `POST /v1/sql` query may use (MiB).
    #[arg(long, env = "MODELSHARE_SQL_MEMORY_MB", default_value_t = 256)]
    pub sql_memory_mb: usize,
    /// Rows one `POST /v1/sql` answer holds at most.
    #[arg(long, env = "MODELSHARE_SQL_MAX_ROWS", default_value_t = 10_000)]
    pub sql_max_rows: usize,
}

impl Default for LimitArgs {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        LimitArgs {
            rate_limit_rps: 20.0,
            rate_limit_burst: 100.0,
            request_timeout_secs: 60.0,
            sql_timeout_secs: 10.0,
            sql_memory_mb: 256,
            sql_max_rows: 10_000,
        }
    }
}

impl LimitArgs {
    pub fn to_configs(
        &self,
    ) -> anyhow::Result<(
        modelshare_web::limits::LimitConfig,
        modelshare_query::sandbox::SqlLimits,
    )> {
        anyhow::ensure!(
            self.rate_limit_rps.is_finite() && self.rate_limit_rps >= 0.0,
            "--rate-limit-rps must be 0 (off) or positive"
        );
        anyhow::ensure!(
            self.rate_limit_burst.is_finite() && self.rate_limit_burst >= 1.0,
            "--rate-limit-burst must be at least 1"
        );
        anyhow::ensure!(self.sql_memory_mb > 0, "--sql-memory-mb must be at least 1");
        anyhow::ensure!(self.sql_max_rows > 0, "--sql-max-rows must be at least 1");
        Ok((
            modelshare_web::limits::LimitConfig {
                rate_per_sec: self.rate_limit_rps,
                burst: self.rate_limit_burst,
                request_timeout: positive_secs("request-timeout-secs", self.request_timeout_secs)?,
            },
            modelshare_query::sandbox::SqlLimits {
                timeout: positive_secs("sql-timeout-secs", self.sql_timeout_secs)?,
                memory_bytes: self.sql_memory_mb << 20,
                max_rows: self.sql_max_rows,
            },
        ))
    }
}

/// Connection fences: slow, silent and idle clients are closed; open connections are capped.
#[derive(Debug, Clone, Args)]
pub struct ConnectionArgs {
    /// Close a connection whose request head is not complete this many seconds after its first
    /// byte (for a new connection: after it opened).
    #[arg(
        long,
        env = "MODELSHARE_HEADER_READ_TIMEOUT_SECS",
        default_value_t = modelshare_web::listener::DEFAULT_HEADER_READ_TIMEOUT.as_secs_f64()
    )]
    pub header_read_timeout_secs: f64,
    /// Close a keep-alive connection idle this long between requests, or a client that takes
    /// no bytes of a response for this long (seconds).
    #[arg(
        long,
        env = "MODELSHARE_IDLE_TIMEOUT_SECS",
        default_value_t = modelshare_web::listener::DEFAULT_IDLE_TIMEOUT.as_secs_f64()
    )]
    pub idle_timeout_secs: f64,
    /// Connections open at once; further ones are closed on arrival (counted on /metrics).
    #[arg(
        long,
        env = "MODELSHARE_MAX_CONNECTIONS",
        default_value_t = modelshare_web::listener::DEFAULT_MAX_CONNECTIONS
    )]
    pub max_connections: usize,
}

impl Default for ConnectionArgs {
    /// The same values as the flags' defaults.
    fn default() -> Self {
        let d = modelshare_web::listener::ListenerConfig::default();
        ConnectionArgs {
            header_read_timeout_secs: d.header_read_timeout.as_secs_f64(),
            idle_timeout_secs: d.idle_timeout.as_secs_f64(),
            max_connections: d.max_connections,
        }
    }
}

impl ConnectionArgs {
    pub fn to_config(&self) -> anyhow::Result<modelshare_web::listener::ListenerConfig> {
        anyhow::ensure!(
            self.max_connections > 0,
            "--max-connections must be at least 1"
        );
        Ok(modelshare_web::listener::ListenerConfig {
            header_read_timeout: positive_secs(
                "header-read-timeout-secs",
                self.header_read_timeout_secs,
            )?,
            idle_timeout: positive_secs("idle-timeout-secs", self.idle_timeout_secs)?,
            max_connections: self.max_connections,
        })
    }
}

/// Who may write without a key, and whose forwarding headers are believed.
#[derive(Debug, Clone, Default, Args)]
pub struct TrustArgs {
    /// Let clients connecting directly from loopback (127.0.0.0/8, ::1) send events and run SQL
    /// without a key, as long as the lake has never had a key file. Default: on when --listen is
    /// a loopback address, off otherwise.
    #[arg(
        long,
        env = "MODELSHARE_TRUST_LOOPBACK",
        value_name = "BOOL",
        num_args = 0..=1,
        default_missing_value = "true"
    )]
    pub trust_loopback: Option<bool>,
    /// Reverse proxies whose X-Forwarded-For / Forwarded headers are believed: comma-separated
    /// networks or addresses (e.g. 10.0.0.0/8,fd00::/8,192.0.2.7). Default: none, the TCP peer
    /// is the client.
    #[arg(
        long,
        env = "MODELSHARE_TRUSTED_PROXIES",
        value_name = "CIDR,...",
        default_value = "",
        hide_default_value = true
    )]
    pub trusted_proxies: modelshare_web::client::TrustedProxies,
}

impl TrustArgs {
    /// `--trust-loopback` as given, or on exactly when the server listens on loopback only.
    pub fn trust_loopback(&self, listen: SocketAddr) -> bool {
        self.trust_loopback
            .unwrap_or_else(|| modelshare_web::client::is_loopback(listen.ip()))
    }
}

/// A duration flag given in seconds, which must be positive.
fn positive_secs(name: &str, v: f64) -> anyhow::Result<Duration> {
    anyhow::ensure!(
        v.is_finite() && v > 0.0,
        "--{name} must be a positive number of seconds"
    );
    Ok(Duration::from_secs_f64(v))
}

#[derive(Debug, Clone, Args)]
pub struct KeysArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(subcommand)]
    pub which: KeysCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum KeysCommand {
    /// Create a key bound to an app; the key is printed once and stored only as a hash.
    Create {
        /// Events sent with this key are written as this app.
        #[arg(long)]
        app: String,
        /// Also allow `POST /v1/sql` (and raw exports).
        #[arg(long)]
        admin: bool,
    },
    /// List keys (ids, apps, roles; never the secrets).
    List,
    /// Revoke a key by id; a running server refuses it from its next request.
    Revoke {
        /// The key id shown by `keys create` / `keys list`.
        id: String,
    },
}

#[derive(Debug, Clone, Args)]
pub struct AppsArgs {
    #[command(flatten)]
    pub lake: LakeArgs,
    #[command(subcommand)]
    pub which: AppsCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum AppsCommand {
    /// Record that an app agrees to be shown by name on /v1/apps, /apps and its own page
    /// (again: change its name or link).
    Publish {
        /// The app id its events carry.
        #[arg(long)]
        app: String,
        /// The name to show (1 to 80 characters; its page is /apps/<slug of the name>).
        #[arg(long)]
        name: String,
        /// An http(s) link to the app.
        #[arg(long)]
        url: Option<String>,
    },
    /// Withdraw an app's consent: it is no longer shown, only counted in aggregates.
    Withdraw {
        /// The app id its events carry.
        #[arg(long)]
        app: String,
    },
    /// List the apps shown by name.
    List,
}

#[derive(Debug, Clone, Args)]
pub struct WalArgs {
    #[command(subcommand)]
    pub which: WalCommand,
}

#[derive(Debug, Clone, Subcommand)]
pub enum WalCommand {
    /// List segments and quarantined segments: records, events, damage and what is
    /// salvageable. Exits 1 when anything is damaged or waits in quarantine.
    Check {
        #[command(flatten)]
        lake: LakeArgs,
    },
    /// Put the whole records found after the damage of quarantined segments back into the log
    /// (the server must be stopped; its next start replays them, counting each event once).
    Salvage {
        #[command(flatten)]
        lake: LakeArgs,
    },
}

/// The app-week rollup that the preference analytics read.
#[derive(Debug, Clone, Args)]
pub struct RollupTuning {
    /// Check for closed weeks to roll up (or to rebuild after late events) this often (seconds).
    #[arg(long, env = "MODELSHARE_ROLLUP_INTERVAL_SECS", default_value_t = 60.0)]
    pub rollup_interval_secs: f64,
    /// A week counts as closed this long after it ends (seconds), so stragglers in flight land
    /// before its rollup is first built.
    #[arg(long, env = "MODELSHARE_ROLLUP_GRACE_SECS", default_value_t = 600)]
    pub rollup_grace_secs: u64,
}

impl RollupTuning {
    pub fn interval(&self) -> anyhow::Result<Duration> {
        anyhow::ensure!(
            self.rollup_interval_secs.is_finite() && self.rollup_interval_secs > 0.0,
            "--rollup-interval-secs must be a positive number of seconds"
        );
        Ok(Duration::from_secs_f64(self.rollup_interval_secs))
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.rollup_grace_secs)
    }
}

/// Default `--compact-interval-secs`.
pub const DEFAULT_COMPACT_INTERVAL_SECS: f64 = 600.0;
/// Default `--compact-grace-secs`.
pub const DEFAULT_COMPACT_GRACE_SECS: u64 = 3600;

/// Default `--cube-interval-secs`.
pub const DEFAULT_CUBE_INTERVAL_SECS: f64 = 60.0;

/// Compaction of closed days into few large files, and upkeep of the app-day cube.
#[derive(Debug, Clone, Args)]
pub struct CompactionTuning {
    /// Check the app-day cube against the events (rebuilding days that do not match) and merge
    /// days with many small cube files this often (seconds). The first pass runs at start-up;
    /// until it has checked the lake, public figures are computed from raw events.
    #[arg(
        long,
        env = "MODELSHARE_CUBE_INTERVAL_SECS",
        default_value_t = DEFAULT_CUBE_INTERVAL_SECS
    )]
    pub cube_interval_secs: f64,
    /// Look for closed days to compact this often (seconds; 0 turns compaction off).
    #[arg(
        long,
        env = "MODELSHARE_COMPACT_INTERVAL_SECS",
        default_value_t = DEFAULT_COMPACT_INTERVAL_SECS
    )]
    pub compact_interval_secs: f64,
    /// A day is compacted once it ended this long ago (seconds), so stragglers in flight land
    /// first; later ones add a file that the next pass folds in.
    #[arg(
        long,
        env = "MODELSHARE_COMPACT_GRACE_SECS",
        default_value_t = DEFAULT_COMPACT_GRACE_SECS
    )]
    pub compact_grace_secs: u64,
}

impl Default for CompactionTuning {
    fn default() -> Self {
        CompactionTuning {
            cube_interval_secs: DEFAULT_CUBE_INTERVAL_SECS,
            compact_interval_secs: DEFAULT_COMPACT_INTERVAL_SECS,
            compact_grace_secs: DEFAULT_COMPACT_GRACE_SECS,
        }
    }
}

impl CompactionTuning {
    /// The interval, or `None` when compaction is off.
    pub fn interval(&self) -> anyhow::Result<Option<Duration>> {
        anyhow::ensure!(
            self.compact_interval_secs.is_finite() && self.compact_interval_secs >= 0.0,
            "--compact-interval-secs must be a number of seconds (0 turns compaction off)"
        );
        Ok((self.compact_interval_secs > 0.0)
            .then(|| Duration::from_secs_f64(self.compact_interval_secs)))
    }

    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.compact_grace_secs)
    }

    /// How often the app-day cube is looked after.
    pub fn cube_interval(&self) -> anyhow::Result<Duration> {
        anyhow::ensure!(
            self.cube_interval_secs.is_finite() && self.cube_interval_secs > 0.0,
            "--cube-interval-secs must be a positive number of seconds"
        );
        Ok(Duration::from_secs_f64(self.cube_interval_secs))
    }
}

/// Weekly snapshots built by the server.
#[derive(Debug, Clone, Args)]
pub struct SnapshotTuning {
    /// Look for closed weeks without an up-to-date snapshot this often (seconds; 0 = never).
    /// The first look happens at start-up.
    #[arg(
        long,
        env = "MODELSHARE_SNAPSHOT_INTERVAL_SECS",
        default_value_t = 300.0
    )]
    pub snapshot_interval_secs: f64,
    /// A week closes this long after its Monday-to-Monday range ends (seconds), so late and
    /// buffered events reach Parquet first. `serve` never uses less than the flush interval.
    #[arg(long, env = "MODELSHARE_SNAPSHOT_GRACE_SECS", default_value_t = 300)]
    pub snapshot_grace_secs: u64,
}

impl Default for SnapshotTuning {
    fn default() -> Self {
        SnapshotTuning {
            snapshot_interval_secs: 300.0,
            snapshot_grace_secs: 300,
        }
    }
}

#[derive(Debug, Clone, Args)]
pub struct RollupArgs {
    #[command(flatten)]
    pub lake: CommandLakeArgs,
    /// Rebuild every closed week, not only missing or outdated ones.
    #[arg(long)]
    pub rebuild: bool,
    /// A week counts as closed this long after it ends (seconds).
    #[arg(long, env = "MODELSHARE_ROLLUP_GRACE_SECS", default_value_t = 600)]
    pub grace_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    pub lake: CommandLakeArgs,
    /// The ISO week, e.g. 2026-W47.
    #[arg(long)]
    pub week: String,
    /// Export the week's events with app ids replaced by a keyed hash (operators only).
    #[arg(long)]
    pub raw: bool,
    /// Output Parquet file (written atomically).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    /// Privacy threshold of the public snapshot (use the server's value).
    #[arg(long, env = "MODELSHARE_MIN_APPS", default_value_t = modelshare_query::DEFAULT_MIN_APPS)]
    pub min_apps: u64,
    /// Seconds after a week's end before it counts as closed.
    #[arg(long, env = "MODELSHARE_SNAPSHOT_GRACE_SECS", default_value_t = 300)]
    pub snapshot_grace_secs: u64,
}

#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Lake directory for the demo traffic (reused when it already holds the demo).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
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
    pub lake: CommandLakeArgs,
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
    /// Lake directory, or `s3://BUCKET/PREFIX` for a lake in an S3 API bucket (endpoint and
    /// credentials from AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_REGION;
    /// AWS_ALLOW_HTTP=true for a plain-HTTP endpoint).
    #[arg(long, env = "MODELSHARE_DATA_DIR", default_value = DEFAULT_DATA_DIR)]
    pub data_dir: String,
    /// One SQL statement (read-only) over the table `events`, the app-day cube `app_days` and
    /// its per-day summaries `day_groups` and `day_group_presence`.
    pub sql: String,
    /// Output format.
    #[arg(long, value_enum, default_value = "table")]
    pub format: OutputFormat,
    /// Cancel the query after this many seconds.
    #[arg(long, default_value_t = 300)]
    pub timeout_secs: u64,
    /// Run the statement on the Apache DataFusion Ballista cluster whose scheduler is at this
    /// address (`df://HOST:PORT`, see `modelshare cluster`); the cluster reads `--data-dir`.
    /// Needs a build with `--features ballista`.
    #[arg(long, value_name = "df://HOST:PORT")]
    pub ballista: Option<String>,
}

#[derive(Debug, Clone, Args)]
pub struct GenerateArgs {
    #[command(flatten)]
    pub lake: CommandLakeArgs,
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
