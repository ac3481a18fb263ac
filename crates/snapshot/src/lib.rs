//! Weekly Parquet snapshots: every closed ISO week of the lake as an immutable, documented,
//! deterministic Parquet file anyone can open (DuckDB, Polars, pandas, Spark), plus raw exports
//! with hashed app ids for operators. `docs/SNAPSHOTS.md` documents the files for their readers.
//!
//! Layout:
//! - [`week`]: ISO weeks (`2026-W47`), their UTC range, and when one counts as closed.
//! - [`source`]: the week's events files in the lake (what a revision is built from).
//! - [`build`]: aggregation per (task, model, provider, context segment) of publishable groups
//!   and per (task, model, provider) of publishable failure cells, exact percentiles, the
//!   file's schema, writer settings, metadata and content hash.
//! - [`store`]: names (`2026-W47.r2`), manifests, listing, verification, atomic publication of
//!   new revisions (also of weeks whose latest revision has an older layout), and the
//!   [`Refresher`] the server runs in the background.
//! - [`raw`]: the raw export with keyed app-id hashes and the per-lake key.

pub mod build;
pub mod raw;
pub mod source;
pub mod store;
pub mod week;

pub use build::{SnapshotRow, WeekRows};
pub use store::{
    BuildOutcome, Manifest, Refresher, SnapshotInfo, SnapshotName, build_week, find, latest, list,
    verify,
};
pub use week::IsoWeek;

use std::path::{Path, PathBuf};

/// Everything that can go wrong with snapshots.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{0}")]
    BadWeek(String),
    #[error("{0}")]
    BadName(String),
    #[error("week {week} is still open: it closes at {closes_at} (its end plus the grace period)")]
    WeekOpen {
        week: IsoWeek,
        closes_at: chrono::DateTime<chrono::Utc>,
    },
    #[error("week {0} has no events in the lake")]
    EmptyWeek(IsoWeek),
    #[error(
        "week {week} has nothing to publish: no base cell (day, task, model, provider) has \
         {min_apps} distinct apps with a successful request"
    )]
    NothingPublishable { week: IsoWeek, min_apps: u64 },
    #[error("{path}: {message}")]
    Corrupt { path: PathBuf, message: String },
    #[error("unexpected data: {0}")]
    Schema(String),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

impl SnapshotError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        SnapshotError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Fails with [`SnapshotError::WeekOpen`] unless `week` is closed at `now`.
pub fn ensure_closed(
    week: IsoWeek,
    now: chrono::DateTime<chrono::Utc>,
    grace: std::time::Duration,
) -> Result<(), SnapshotError> {
    if week.is_closed(now, grace) {
        Ok(())
    } else {
        Err(SnapshotError::WeekOpen {
            week,
            closes_at: week.closes_at(grace),
        })
    }
}
