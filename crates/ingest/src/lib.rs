//! Durable ingest: validated events → write-ahead log (group commit, ack after fsync) → live
//! Arrow buffer → Parquet files partitioned by day.
//!
//! Layout:
//! - [`lake`]: the directory layout, the single-writer lock, atomic Parquet publication.
//! - [`location`]: where a lake lives: a directory or a prefix of an S3 API bucket.
//! - [`bucket`]: a lake kept in a bucket: the flush's puts, the sync of the local copy, the
//!   restore of a lost one, the writer lease.
//! - [`wal`]: write-ahead log segments, records with checksums, replay.
//! - [`dedup`]: the filter that makes retried `event_id`s count once (ids not in Parquet yet).
//! - [`id_index`]: sorted runs of the ids of every flush, on disk, for the rest of the window.
//! - [`ingester`]: the commit thread (group commit), the flush thread, backpressure.
//! - [`compact`]: closed days rewritten into few large files, swapped in with a journal.
//! - [`app_days`]: the app-day cube written beside every events file, checked against the
//!   events, rebuilt from them when it does not match, merged to one file per day.
//! - [`week_presence`]: one (task, model, app key) file per closed ISO week.
//! - [`hourly`]: which closed days need an hourly summary, and swapping one in.
//! - [`metrics`]: counters exported on `/metrics`.

pub mod app_days;
pub mod bucket;
pub mod compact;
pub mod dedup;
pub mod hourly;
pub mod id_index;
pub mod ingester;
pub mod lake;
pub mod location;
pub mod metrics;
pub mod wal;
pub mod week_presence;

pub use ingester::{IngestConfig, Ingester, Receipt};
pub use lake::{Lake, LakeLock};

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Everything that can go wrong while ingesting.
///
/// `Clone`, with the underlying errors shared behind `Arc`, because one failed group commit
/// answers every request of the group: each answer keeps the original kind of fault.
#[derive(Debug, Clone, thiserror::Error)]
pub enum IngestError {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: Arc<std::io::Error>,
    },
    #[error(
        "the lake at {0} is in use by another modelshare process; stop it or send events to its HTTP API"
    )]
    Locked(PathBuf),
    #[error("arrow: {0}")]
    Arrow(Arc<arrow::error::ArrowError>),
    #[error("parquet: {0}")]
    Parquet(Arc<parquet::errors::ParquetError>),
    #[error("unexpected schema: {0}")]
    Schema(&'static str),
    #[error("write-ahead log {path}: {message}")]
    CorruptWal { path: PathBuf, message: String },
    #[error("compaction journal {path}: {message}")]
    CorruptJournal { path: PathBuf, message: String },
    #[error("id index run {path}: {message}")]
    CorruptIdIndex { path: PathBuf, message: String },
    #[error("ingest is overloaded ({0}); retry shortly")]
    Backpressure(String),
    #[error("ingest is shutting down")]
    ShuttingDown,
    /// A lake location that cannot be used (a bad URL, an unsupported scheme, a store that
    /// cannot be configured from the environment).
    #[error("lake location {0}")]
    Location(String),
    /// A call to the bucket of a lake in an object store failed (after the client's retries).
    #[error("object store: cannot {what}: {source}")]
    Store {
        what: String,
        source: Arc<object_store::Error>,
    },
    #[error(
        "the lake at {lake} is written by node {node} (its lease runs {seconds} s more); stop it, or start this node with its --node-id once it is gone"
    )]
    LeaseHeld {
        lake: String,
        node: String,
        seconds: u64,
    },
    #[error("{0}")]
    NotLeaseholder(String),
    /// The record of an unfinished sync pass in a bucket cannot be read: a node must not guess
    /// which of the lake's files are current.
    #[error("{0}")]
    UnreadableSyncJournal(String),
}

impl From<arrow::error::ArrowError> for IngestError {
    fn from(e: arrow::error::ArrowError) -> Self {
        IngestError::Arrow(Arc::new(e))
    }
}

impl From<parquet::errors::ParquetError> for IngestError {
    fn from(e: parquet::errors::ParquetError) -> Self {
        // The Parquet writer reports failed writes of its sink as `External(io::Error)`: keep
        // them I/O errors, so a full disk during a flush stays a transient fault.
        match e {
            parquet::errors::ParquetError::External(inner) => {
                match inner.downcast::<std::io::Error>() {
                    Ok(io) => IngestError::Io {
                        path: PathBuf::from("parquet file"),
                        source: Arc::new(*io),
                    },
                    Err(other) => IngestError::Parquet(Arc::new(
                        parquet::errors::ParquetError::External(other),
                    )),
                }
            }
            other => IngestError::Parquet(Arc::new(other)),
        }
    }
}

impl IngestError {
    pub(crate) fn store(what: &str, source: object_store::Error) -> Self {
        IngestError::Store {
            what: what.to_owned(),
            source: Arc::new(source),
        }
    }

    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        IngestError::Io {
            path: path.to_owned(),
            source: Arc::new(source),
        }
    }

    /// Names the file an I/O error happened in, when the layer that raised it did not know.
    pub(crate) fn in_file(self, file: &Path) -> Self {
        match self {
            IngestError::Io { source, .. } => IngestError::Io {
                path: file.to_owned(),
                source,
            },
            other => other,
        }
    }

    /// True when the fault is expected to clear by itself and the caller should retry later
    /// (503 + Retry-After): backpressure, shutdown, and storage that is full or failing
    /// transiently. Everything else (a locked lake, a damaged log, a read-only or missing
    /// directory, a bug) needs an operator and is permanent (500).
    pub fn is_retryable(&self) -> bool {
        match self {
            IngestError::Backpressure(_) | IngestError::ShuttingDown => true,
            IngestError::Io { source, .. } => is_transient_io(source),
            // A store that does not answer, or answers with a server error, after retries; a
            // refused request (credentials, a missing bucket) needs an operator.
            IngestError::Store { source, .. } => !matches!(
                **source,
                object_store::Error::PermissionDenied { .. }
                    | object_store::Error::Unauthenticated { .. }
                    | object_store::Error::NotFound { .. }
                    | object_store::Error::NotImplemented { .. }
            ),
            _ => false,
        }
    }
}

/// Storage faults that clear without an operator: space or quota returns, a device error that
/// the next write does not repeat, an interrupted or busy call.
fn is_transient_io(e: &std::io::Error) -> bool {
    use std::io::ErrorKind::*;
    const EIO: i32 = 5;
    const ENOSPC: i32 = 28;
    const EDQUOT: i32 = 122;
    matches!(
        e.kind(),
        StorageFull
            | QuotaExceeded
            | WouldBlock
            | Interrupted
            | TimedOut
            | ResourceBusy
            | OutOfMemory
    ) || matches!(e.raw_os_error(), Some(EIO | ENOSPC | EDQUOT))
}

/// Events for the unit tests of this crate.
#[cfg(test)]
#[allow(clippy::unwrap_used)]
pub(crate) mod fixtures {
    use modelshare_event::{Event, MicroUsd, ModelSlug, Status, Task, Timestamp};

    /// The Monday 2026-11-16, 00:00 UTC, in microseconds.
    pub(crate) const MONDAY_US: i64 = 1_794_873_600_000_000;

    /// An `ok` event; only what the tests vary is a parameter.
    pub(crate) fn event(
        id: &str,
        ts_us: i64,
        app: &str,
        task: Task,
        model: &str,
        input_tokens: u32,
    ) -> Event {
        Event {
            event_id: id.into(),
            ts: Timestamp(ts_us),
            app_id: app.into(),
            task,
            model_requested: model.into(),
            model: ModelSlug::parse(model).unwrap(),
            provider: "p".into(),
            input_tokens,
            output_tokens: 2,
            reasoning_tokens: 0,
            cached_tokens: 0,
            cost: MicroUsd(3),
            latency_ms: 4,
            ttft_ms: 1,
            status: Status::Ok,
            finish_reason: None,
            attempt: 0,
            trace_id: None,
            step: None,
        }
    }
}
