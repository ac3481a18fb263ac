//! Acknowledged rows that are not in Parquet yet, shared between ingest (writer) and query
//! (reader).
//!
//! A flush moves rows from memory into new Parquet files. A query must see each row exactly once:
//! either in memory or in a file, never both, never neither. The [`LiveBuffer`] makes that so with
//! one gate: a query holds a [`LivePin`] (shared) while it snapshots the rows *and* lists the
//! lake's files; a flush publishes its files and drops the flushed rows in one exclusive step
//! ([`LiveBuffer::publish_flush`]).

use arrow::array::RecordBatch;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::sync::{OwnedRwLockReadGuard, RwLock};

#[derive(Debug, Default)]
struct Rows {
    /// Appended since the last flush began.
    current: Vec<RecordBatch>,
    /// Being written to Parquet by the flush in flight; still visible to queries.
    flushing: Vec<RecordBatch>,
    current_rows: usize,
    flushing_rows: usize,
}

/// The shared buffer of acknowledged, not-yet-flushed rows.
#[derive(Debug, Default)]
pub struct LiveBuffer {
    gate: Arc<RwLock<()>>,
    rows: Mutex<Rows>,
}

/// What a query sees of the buffer; while it lives no flush can publish files.
#[derive(Debug)]
pub struct LivePin {
    /// Every acknowledged row not yet visible in the lake's files.
    pub batches: Vec<RecordBatch>,
    _gate: OwnedRwLockReadGuard<()>,
}

impl LiveBuffer {
    pub fn new() -> Self {
        Self::default()
    }

    fn rows(&self) -> MutexGuard<'_, Rows> {
        // A panic while holding this lock leaves plain vectors behind; they are still valid.
        self.rows.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Makes a batch of durable rows visible to queries.
    pub fn append(&self, batch: RecordBatch) {
        let mut rows = self.rows();
        rows.current_rows += batch.num_rows();
        rows.current.push(batch);
    }

    /// Rows appended since the last flush began (what the next flush would take).
    pub fn pending_rows(&self) -> usize {
        self.rows().current_rows
    }

    /// All rows held in memory, including those of a flush in flight.
    pub fn total_rows(&self) -> usize {
        let rows = self.rows();
        rows.current_rows + rows.flushing_rows
    }

    /// Starts a flush: hands out the current rows, which stay visible until
    /// [`publish_flush`](Self::publish_flush). Returns `None` when a flush is already in flight
    /// or there is nothing to flush.
    pub fn begin_flush(&self) -> Option<Vec<RecordBatch>> {
        let mut rows = self.rows();
        if !rows.flushing.is_empty() || rows.current.is_empty() {
            return None;
        }
        let taken = std::mem::take(&mut rows.current);
        rows.flushing = taken.clone();
        rows.flushing_rows = std::mem::take(&mut rows.current_rows);
        Some(taken)
    }

    /// Publishes a flush: runs `make_visible` (which renames the new files into the lake) while
    /// no query is between snapshot and listing, then forgets the flushed rows. If
    /// `make_visible` fails, the rows stay in memory and the flush can be retried.
    ///
    /// Blocking: call from a plain thread, not from async code.
    pub fn publish_flush<E>(&self, make_visible: impl FnOnce() -> Result<(), E>) -> Result<(), E> {
        let _exclusive = self.gate.blocking_write();
        make_visible()?;
        let mut rows = self.rows();
        rows.flushing.clear();
        rows.flushing_rows = 0;
        Ok(())
    }

    /// Runs `swap` (which replaces files of the lake) while no query is between snapshot and
    /// listing, so every query lists either the files before the swap or those after it.
    ///
    /// Blocking: call from a plain thread, not from async code.
    pub fn swap_files<T, E>(&self, swap: impl FnOnce() -> Result<T, E>) -> Result<T, E> {
        let _exclusive = self.gate.blocking_write();
        swap()
    }

    /// Gives back rows of a failed flush so the next attempt takes them again.
    pub fn abort_flush(&self) {
        let mut rows = self.rows();
        let mut flushing = std::mem::take(&mut rows.flushing);
        flushing.append(&mut rows.current);
        rows.current = flushing;
        rows.current_rows += std::mem::take(&mut rows.flushing_rows);
    }

    /// Pins the buffer for a query: the returned rows plus the files listed while the pin lives
    /// contain every acknowledged row exactly once.
    pub async fn pin(&self) -> LivePin {
        let gate = Arc::clone(&self.gate).read_owned().await;
        let rows = self.rows();
        let mut batches = rows.flushing.clone();
        batches.extend(rows.current.iter().cloned());
        drop(rows);
        LivePin {
            batches,
            _gate: gate,
        }
    }
}
