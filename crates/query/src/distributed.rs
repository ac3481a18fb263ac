//! Queries on an Apache DataFusion Ballista cluster (feature `ballista`).
//!
//! A cluster is one scheduler ([`run_scheduler`]) and executors ([`run_executor`]), each a
//! `modelshare cluster …` process that knows the lake: its object store (a bucket's client,
//! built from the same `AWS_*` variables as the server's) and the `app_key` function. Clients
//! ([`BallistaSql`]: `modelshare query --ballista`, `serve --ballista` for `POST /v1/sql`) plan a
//! statement over the lake's files and send it to the scheduler, which splits it into stages the
//! executors run; the answer streams back from the executors.
//!
//! On a cluster the tables are the lake's files only (`events`, `app_days`, `day_groups`,
//! `day_group_presence`, `week_presence`, `hour_files`): the rows a server has acknowledged but
//! not flushed yet stay in that server, and the views over them (`cell_apps`, `hourly`, ...) are
//! not there. Every node reads the same files, so the lake must be where they all can: a bucket
//! (or a directory they share).
//!
//! Tasks are pulled: executors ask the scheduler for work, so an executor needs only its Arrow
//! Flight port (for the shuffles and the answers) reachable, not one for the scheduler to call.

use crate::engine::app_key_udf;
use crate::sandbox::{RemoteSql, read_only};
use crate::{LakeLocation, QueryConfig, QueryEngine, QueryError};
use arrow::array::RecordBatch;
use ballista_core::config::TaskSchedulingPolicy;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use ballista_core::registry::BallistaFunctionRegistry;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion::error::DataFusionError;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::execution::session_state::SessionStateBuilder;
use datafusion::execution::{SendableRecordBatchStream, SessionState};
use datafusion::prelude::{SessionConfig, SessionContext};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};
use futures::TryStreamExt;
use futures::future::BoxFuture;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

/// The port a scheduler listens on unless told otherwise (Ballista's own default).
pub const DEFAULT_SCHEDULER_PORT: u16 = 50050;
/// The Arrow Flight port an executor listens on unless told otherwise (Ballista's default).
pub const DEFAULT_EXECUTOR_PORT: u16 = 50051;
/// How long an executor keeps trying to reach its scheduler at start.
const SCHEDULER_CONNECT_SECS: u16 = 30;
/// How long a client waits for the scheduler's port before calling the cluster unreachable.
const SCHEDULER_PROBE: Duration = Duration::from_secs(5);

/// Where a cluster's scheduler listens: `df://HOST[:PORT]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchedulerUrl {
    pub host: String,
    pub port: u16,
}

impl FromStr for SchedulerUrl {
    type Err = QueryError;

    fn from_str(s: &str) -> Result<Self, QueryError> {
        let bad = |why: &str| {
            QueryError::Cluster(format!(
                "{s:?} is not a scheduler address ({why}); expected df://HOST:PORT, e.g. df://127.0.0.1:{DEFAULT_SCHEDULER_PORT}"
            ))
        };
        let rest = s
            .strip_prefix("df://")
            .ok_or_else(|| bad("no df:// scheme"))?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        // `HOST`, `HOST:PORT`, `[IPV6]` or `[IPV6]:PORT`; the host is kept without brackets.
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (addr, after) = v6.split_once(']').ok_or_else(|| bad("no closing ]"))?;
                let port = match after {
                    "" => None,
                    after => Some(
                        after
                            .strip_prefix(':')
                            .ok_or_else(|| bad("text after the ]"))?,
                    ),
                };
                (addr, port)
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        let port = match port {
            Some(port) => port
                .parse::<u16>()
                .map_err(|_| bad("the port is not a number"))?,
            None => DEFAULT_SCHEDULER_PORT,
        };
        let v6 = rest.starts_with('[');
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-') || (v6 && c == ':'));
        if !host_ok {
            return Err(bad(
                "no host, or a host with characters a host name cannot have",
            ));
        }
        if port == 0 {
            return Err(bad("port 0"));
        }
        Ok(SchedulerUrl {
            host: host.to_owned(),
            port,
        })
    }
}

impl fmt::Display for SchedulerUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "df://{}:{}", self.host_in_url(), self.port)
    }
}

impl SchedulerUrl {
    /// The gRPC endpoint Ballista's clients are given.
    fn grpc(&self) -> String {
        format!("http://{}:{}", self.host_in_url(), self.port)
    }

    /// The host as a URL writes it (an IPv6 address in brackets).
    fn host_in_url(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]", self.host)
        } else {
            self.host.clone()
        }
    }
}

/// The session state every member of a cluster plans and runs with: DataFusion's functions,
/// `app_key`, Ballista's own functions and optimizer rules, and `runtime` (whose object store
/// registry holds the lake's bucket).
fn lake_state(config: SessionConfig, runtime: Arc<RuntimeEnv>) -> SessionState {
    let mut scalar = ballista_core::extension::ballista_scalar_functions();
    scalar.push(Arc::new(app_key_udf()));
    SessionStateBuilder::new()
        .with_default_features()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_optimizer_rules(ballista_core::optimizer::ballista_default_optimizer_rules())
        .with_scalar_functions(scalar)
        .with_aggregate_functions(ballista_core::extension::ballista_aggregate_functions())
        .with_window_functions(ballista_core::extension::ballista_window_functions())
        .build()
}

/// The runtime of a cluster member for the lake at `location`: its store registered.
fn lake_runtime(location: &LakeLocation) -> Result<Arc<RuntimeEnv>, QueryError> {
    Ok(Arc::clone(
        &QueryEngine::at(location, QueryConfig::default())?.runtime,
    ))
}

/// Runs a scheduler on `listener` for the lake at `location`, until the process stops.
pub async fn run_scheduler(
    listener: tokio::net::TcpListener,
    location: &LakeLocation,
) -> Result<(), QueryError> {
    let addr = listener.local_addr().map_err(cluster_io)?;
    let runtime = lake_runtime(location)?;
    let session_builder: ballista_scheduler::scheduler_server::SessionBuilder =
        Arc::new(move |config: SessionConfig| Ok(lake_state(config, Arc::clone(&runtime))));
    let config_producer: ballista_core::ConfigProducer = Arc::new(SessionConfig::new_with_ballista);
    let config = SchedulerConfig {
        external_host: addr.ip().to_string(),
        bind_host: addr.ip().to_string(),
        bind_port: addr.port(),
        scheduling_policy: TaskSchedulingPolicy::PullStaged,
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_memory(addr.to_string(), session_builder, config_producer);
    let scheduler =
        create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, Arc::new(config))
            .await
            .map_err(|e| QueryError::Cluster(format!("the scheduler did not start: {e}")))?;
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(|e| QueryError::Cluster(format!("the scheduler stopped: {e}")))
}

/// Settings of an executor process.
#[derive(Debug, Clone)]
pub struct ExecutorSettings {
    /// The scheduler to take tasks from.
    pub scheduler: SchedulerUrl,
    /// Where the executor's Arrow Flight service listens (shuffles and answers are read there).
    pub bind: SocketAddr,
    /// The host name other nodes reach `bind` by, when it is not `bind`'s address (a wildcard
    /// address, a NAT).
    pub advertise_host: Option<String>,
    /// Tasks run at once.
    pub slots: usize,
    /// Where shuffle files are written; the executor removes its jobs' files when it stops.
    pub work_dir: PathBuf,
}

/// Runs an executor for the lake at `location` until the process is told to stop (Ctrl-C or
/// SIGTERM): it then tells the scheduler, lets its tasks finish and removes its shuffle files.
pub async fn run_executor(
    settings: ExecutorSettings,
    location: &LakeLocation,
) -> Result<(), QueryError> {
    let runtime = lake_runtime(location)?;
    let registry = BallistaFunctionRegistry::from(&lake_state(
        SessionConfig::new_with_ballista(),
        Arc::clone(&runtime),
    ));
    let work_dir = settings.work_dir.to_string_lossy().into_owned();
    let config = ExecutorProcessConfig {
        bind_host: settings.bind.ip().to_string(),
        external_host: settings.advertise_host,
        port: settings.bind.port(),
        scheduler_host: settings.scheduler.host.clone(),
        scheduler_port: settings.scheduler.port,
        scheduler_connect_timeout_seconds: SCHEDULER_CONNECT_SECS,
        vcores: settings.slots.max(1),
        task_scheduling_policy: TaskSchedulingPolicy::PullStaged,
        work_dir: Some(work_dir),
        // Shuffle files of finished jobs go after an hour, checked every minute.
        job_data_ttl_seconds: 3600,
        job_data_clean_up_interval_seconds: 60,
        override_runtime_producer: Some(Arc::new(move |_: &SessionConfig| {
            Ok(Arc::clone(&runtime))
        })),
        override_function_registry: Some(Arc::new(registry)),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| QueryError::Cluster(format!("the executor stopped: {e}")))
}

/// Runs read-only statements over the lake's files on a cluster.
#[derive(Debug)]
pub struct BallistaSql {
    scheduler: SchedulerUrl,
    /// Names the lake's tables and holds the runtime with its store (never runs a query).
    lake: QueryEngine,
}

impl BallistaSql {
    /// A client of the scheduler at `scheduler` for the lake at `location`.
    pub fn new(scheduler: SchedulerUrl, location: &LakeLocation) -> Result<Self, QueryError> {
        Ok(BallistaSql {
            scheduler,
            lake: QueryEngine::at(location, QueryConfig::default())?,
        })
    }

    /// Runs `sql` and collects its rows, within `timeout`.
    pub async fn sql(&self, sql: &str, timeout: Duration) -> Result<Vec<RecordBatch>, QueryError> {
        let run = async {
            let stream = self.start(sql).await.map_err(classify)?;
            stream.try_collect().await.map_err(|e| classify(e.into()))
        };
        tokio::time::timeout(timeout, run)
            .await
            .unwrap_or(Err(QueryError::Timeout(timeout)))
    }

    async fn start(&self, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        // Ballista connects when the job is submitted and then reports a refused connection as
        // a plan error; asking the port first keeps an absent scheduler a transient fault.
        let probe =
            tokio::net::TcpStream::connect((self.scheduler.host.as_str(), self.scheduler.port));
        match tokio::time::timeout(SCHEDULER_PROBE, probe).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => {
                return Err(QueryError::Unreachable(format!(
                    "scheduler {}: {e}",
                    self.scheduler
                )));
            }
            Err(_) => {
                return Err(QueryError::Unreachable(format!(
                    "scheduler {}: no answer within {SCHEDULER_PROBE:?}",
                    self.scheduler
                )));
            }
        }
        let state = lake_state(
            SessionConfig::new_with_ballista().with_information_schema(false),
            Arc::clone(&self.lake.runtime),
        )
        .upgrade_for_ballista(self.scheduler.grpc())?;
        let ctx = SessionContext::new_with_state(state);
        // Upgrading the state for Ballista resets its scalar functions to Ballista's list.
        ctx.register_udf(app_key_udf());
        self.lake.register_file_tables(&ctx, "events")?;
        let frame = ctx.sql_with_options(sql, read_only()).await?;
        Ok(frame.execute_stream().await?)
    }
}

impl RemoteSql for BallistaSql {
    fn stream<'a>(
        &'a self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<SendableRecordBatchStream, QueryError>> {
        Box::pin(self.start(sql))
    }

    fn classify(&self, e: QueryError) -> QueryError {
        classify(e)
    }
}

/// A failure to reach a member of the cluster mid-query is transient. Ballista reports its
/// gRPC and Flight errors only as text (`format!("{e:?}")` of its own error type), so the text
/// is what can be looked at.
fn classify(e: QueryError) -> QueryError {
    let QueryError::DataFusion(df) = &e else {
        return e;
    };
    // Ballista reports a refused submission as a plan error, and failures of its own calls as
    // execution or internal errors.
    let text = match df.find_root() {
        DataFusionError::Execution(m) | DataFusionError::Internal(m) | DataFusionError::Plan(m) => {
            m.clone()
        }
        DataFusionError::External(inner) => inner.to_string(),
        _ => return e,
    };
    const TRANSPORT: [&str; 3] = [
        "GrpcConnectionError",
        "transport error",
        "Connection refused",
    ];
    if TRANSPORT.iter().any(|t| text.contains(t)) {
        QueryError::Unreachable(text)
    } else {
        e
    }
}

fn cluster_io(e: std::io::Error) -> QueryError {
    QueryError::Cluster(format!("the scheduler's socket: {e}"))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn scheduler_addresses_parse_or_say_what_is_wrong() {
        let url: SchedulerUrl = "df://10.0.0.7:50060".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("10.0.0.7", 50060));
        assert_eq!(url.to_string(), "df://10.0.0.7:50060");
        assert_eq!(url.grpc(), "http://10.0.0.7:50060");
        let url: SchedulerUrl = "df://scheduler.internal/".parse().unwrap();
        assert_eq!(url.port, DEFAULT_SCHEDULER_PORT);
        let url: SchedulerUrl = "df://[::1]:7".parse().unwrap();
        assert_eq!((url.host.as_str(), url.port), ("::1", 7));
        assert_eq!(url.to_string(), "df://[::1]:7");
        let url: SchedulerUrl = "df://[fd00::5]".parse().unwrap();
        assert_eq!(
            (url.host.as_str(), url.port),
            ("fd00::5", DEFAULT_SCHEDULER_PORT)
        );
        for (bad, why) in [
            ("http://h:1", "no df:// scheme"),
            ("df://h:port", "the port is not a number"),
            ("df://h:70000", "the port is not a number"),
            ("df://:50050", "no host"),
            ("df://h/../x:1", "no host"),
            ("df://h:0", "port 0"),
            ("df://[::1:5", "no closing ]"),
            ("df://[::1]5", "text after the ]"),
            ("df://fe80::1", "a host name cannot have"),
            ("df://fe80::1:50050", "a host name cannot have"),
            ("", "no df:// scheme"),
        ] {
            let err = bad.parse::<SchedulerUrl>().unwrap_err().to_string();
            assert!(err.contains(why), "{bad:?}: {err}");
            assert!(err.contains("expected df://HOST:PORT"), "{err}");
        }
    }

    #[test]
    fn transport_failures_are_transient_and_sql_errors_are_not() {
        let refused = QueryError::DataFusion(DataFusionError::Execution(
            "GrpcConnectionError(\"Error connecting to Ballista executor at 127.0.0.1:9\")".into(),
        ));
        assert!(matches!(classify(refused), QueryError::Unreachable(_)));
        let plan = QueryError::DataFusion(DataFusionError::Plan("column x not found".into()));
        assert!(matches!(classify(plan), QueryError::DataFusion(_)));
        assert!(matches!(classify(QueryError::Busy), QueryError::Busy));
    }
}
