//! Ingest counters, read by the `/metrics` endpoint.

use std::sync::atomic::{AtomicU64, Ordering};

/// Monotonic counters (and a few gauges) of the ingest path.
#[derive(Debug, Default)]
pub struct IngestMetrics {
    pub events_stored: AtomicU64,
    pub events_duplicate: AtomicU64,
    pub wal_bytes: AtomicU64,
    pub wal_fsyncs: AtomicU64,
    pub flushes: AtomicU64,
    pub flush_errors: AtomicU64,
    pub flushed_rows: AtomicU64,
    pub flushed_bytes: AtomicU64,
    pub flush_micros: AtomicU64,
    pub backpressure: AtomicU64,
    /// Groups refused because the WAL could not be written (even in a fresh segment).
    pub wal_write_errors: AtomicU64,
    /// Torn WAL tails cut at start (writes that never completed).
    pub wal_torn_tails: AtomicU64,
    /// WAL segments found damaged at start and kept in `wal/quarantine/`.
    pub wal_quarantined: AtomicU64,
}

impl IngestMetrics {
    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}
