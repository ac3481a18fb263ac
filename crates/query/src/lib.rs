//! Queries over the lake: a DataFusion session that sees the Parquet files *and* the acknowledged
//! rows not yet flushed, and the typed questions the API asks of it.
//!
//! Layout:
//! - [`engine`]: the session (listing table with date partitions + live rows), SQL with a
//!   timeout, and the exactly-once view of rows during flushes.
//! - [`period`]: days, ISO weeks and months, and their predecessors.
//! - [`privacy`]: the publication rule (publishable groups) and the published figures every
//!   public read is computed from.
//! - [`leaderboard`]: models or authors ranked by tokens, requests, spend or apps, the rest
//!   beyond the limit as `other`.
//! - [`share`]: share of the top models per day or week.
//! - [`tasks`]: per-task totals and top models.
//! - [`hourly`]: the `hourly` view (every attempt per hour, with latency, time-to-first-token
//!   and throughput histograms) and the summary of a closed day's events that its hourly file
//!   holds.
//! - [`providers`]: each provider's uptime, latency, throughput and fallbacks for a model.
//! - [`incidents`]: spans in which most of a provider's attempts failed, to the minute.
//! - [`apps`]: per-app rows the analyses read (never published as such).
//! - [`values`]: reading typed values out of Arrow columns.
//! - [`sandbox`]: ad-hoc admin SQL with memory, time and row caps (`POST /v1/sql`), here or on
//!   a cluster.
//! - `distributed` (feature `ballista`): the Ballista scheduler and executor processes that know
//!   this lake, and the client that runs ad-hoc SQL on them.

pub mod agents;
pub mod apps;
#[cfg(feature = "ballista")]
pub mod distributed;
pub mod engine;
mod fragments;
pub mod hourly;
pub mod incidents;
pub mod leaderboard;
pub mod period;
pub mod privacy;
pub mod providers;
pub mod public_apps;
pub mod sandbox;
pub mod share;
pub mod tasks;
pub mod values;

pub use engine::{FileTable, QueryConfig, QueryEngine};
pub use leaderboard::{GroupBy, Leaderboard, LeaderboardQuery, Measure, Row, Totals};
pub use modelshare_ingest::location::LakeLocation;
pub use period::{Period, PeriodKind};
pub use privacy::{DEFAULT_MIN_APPS, Dim, Scope, Split, publishable};
pub use providers::{ProviderFigures, ProvidersQuery};
pub use share::{Granularity, ShareQuery, ShareSeries, ShareSeriesSet};
pub use tasks::{TaskSummary, TasksOverview};

/// Why a query failed.
#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("query failed: {0}")]
    DataFusion(#[from] datafusion::error::DataFusionError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("query took longer than {0:?}")]
    Timeout(std::time::Duration),
    /// The queries' memory pool is taken by other queries: transient.
    #[error("the queries' memory is in use by other queries")]
    Busy,
    #[error("unexpected result shape: {0}")]
    Shape(String),
    /// The query cluster (a Ballista scheduler or executor) cannot be reached: transient.
    #[error("the query cluster cannot be reached: {0}")]
    Unreachable(String),
    /// A cluster that cannot be set up or used as asked (an address that is not one, a process
    /// that cannot start): permanent.
    #[error("{0}")]
    Cluster(String),
}
