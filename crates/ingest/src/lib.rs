//! Durable ingest: validated events → write-ahead log (group commit, ack after fsync) → live
//! Arrow buffer → Parquet files partitioned by day.
//!
//! Layout:
//! - [`lake`]: the directory layout, the single-writer lock, atomic Parquet publication.
//! - [`wal`]: write-ahead log segments, records with checksums, replay.
//! - [`dedup`]: the filter that makes retried `event_id`s count once.
//! - [`ingester`]: the commit thread (group commit), the flush thread, backpressure.
//! - [`metrics`]: counters exported on `/metrics`.

pub mod dedup;
pub mod ingester;
pub mod lake;
pub mod metrics;
pub mod wal;

pub use ingester::{IngestConfig, Ingester, Receipt};
pub use lake::{Lake, LakeLock};

use std::path::{Path, PathBuf};

/// Everything that can go wrong while ingesting.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "the lake at {0} is in use by another modelshare process; stop it or send events to its HTTP API"
    )]
    Locked(PathBuf),
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
    #[error("unexpected schema: {0}")]
    Schema(&'static str),
    #[error("write-ahead log {path}: {message}")]
    CorruptWal { path: PathBuf, message: String },
    #[error("ingest is overloaded ({0}); retry shortly")]
    Backpressure(String),
    #[error("ingest is shutting down")]
    ShuttingDown,
}

impl IngestError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// True when the caller should retry later (503 + Retry-After), not fix its request.
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Backpressure(_) | IngestError::ShuttingDown => true,
            IngestError::Io { source, .. } => {
                matches!(
                    source.kind(),
                    std::io::ErrorKind::StorageFull
                        | std::io::ErrorKind::QuotaExceeded
                        | std::io::ErrorKind::WouldBlock
                ) || source.raw_os_error() == Some(28)
            }
            _ => false,
        }
    }
}
