//! Revealed-preference analytics: which models apps keep choosing, not only which carry tokens.
//!
//! Everything here starts from one panel: per (ISO week, app, task, model) requests, tokens and
//! spend of successful requests. Closed weeks come from the app-week rollup kept as Parquet in the
//! lake; weeks without a rollup (the open week, or before the first refresh) are aggregated from
//! raw events on the fly, so answers never depend on whether the rollup has caught up.
//!
//! Layout:
//! - [`rollup`]: the app-week rollup files, their manifests, and incremental refresh.
//! - [`panel`]: loading the panel for a task and a range of weeks; primary model per app-week.
//! - [`retention`]: cohort retention of apps whose primary model became M.
//! - [`switches`]: flows of apps changing primary model A → B.
//! - [`index`]: the preference index (Bradley–Terry on behavioural outcomes, bootstrap CIs).
//! - [`price_share`]: blended price against share, with the Pareto frontier.
//! - [`shifts`]: significant share movements, annotated with catalog price changes.
//! - [`stats`]: small numerical helpers (normal tail, Benjamini–Hochberg, a seeded PRNG).
//!
//! Definitions are written out in `docs/METRICS.md`.

pub mod index;
pub mod panel;
pub mod price_share;
pub mod retention;
pub mod rollup;
pub mod shifts;
pub mod stats;
pub mod switches;

pub use panel::{Panel, Weeks};
pub use rollup::{RefreshReport, Rollups};

/// Why an analytics request failed.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error(transparent)]
    Query(#[from] modelshare_query::QueryError),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error(transparent)]
    Lake(#[from] modelshare_ingest::IngestError),
    #[error("{path}: {source}")]
    Io {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("rollup manifest {path}: {message}")]
    Manifest {
        path: std::path::PathBuf,
        message: String,
    },
}

impl AnalyticsError {
    pub(crate) fn io(path: &std::path::Path, source: std::io::Error) -> Self {
        AnalyticsError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Settings shared by the analyses.
#[derive(Debug, Clone, Copy)]
pub struct AnalyticsConfig {
    /// Groups (cohorts, flows, models) seen in fewer distinct apps are not published.
    pub min_apps: u64,
}
