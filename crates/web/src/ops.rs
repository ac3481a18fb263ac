//! Operations endpoints: `/healthz` and Prometheus `/metrics`.

use crate::AppState;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use modelshare_event::cube::closed_weeks;
use modelshare_ingest::metrics::IngestMetrics;
use std::fmt::Write;
use std::sync::atomic::Ordering::Relaxed;

/// Liveness, and how much of the lake the rollups cover
///
/// 200 while the server can answer. `wal_quarantine` lists damaged WAL segments
/// kept for an operator (`modelshare wal check`); the server runs on without them. `cube` says
/// whether the app-day cube has been checked against the events (`checked`), which days are
/// still read from raw events (`raw_days`) until they are rebuilt, and of its `days`, how many
/// have a current groups summary (`summarized_days`; the others are summed from the cube), and
/// of its closed ISO `weeks`, how many have a current week presence file (`summarized_weeks`),
/// and how many closed days have a current hourly summary (`hourly_days`).
#[utoipa::path(get, path = "/healthz",
    responses((status = 200, description = "the server answers", body = Object)))]
pub async fn healthz(State(s): State<AppState>) -> impl IntoResponse {
    let quarantine = s.ingester.as_ref().map(|i| i.quarantined());
    let cube = s.ingester.as_ref().map(|i| {
        let coverage = i.coverage();
        let raw = coverage.raw_days();
        let days = i.cube_days().ok();
        let today = chrono::Utc::now().date_naive();
        serde_json::json!({
            "checked": raw.is_some(),
            "raw_days": raw.map(|d| d.iter().map(|d| d.to_string()).collect::<Vec<_>>()),
            "summarized_days": coverage.summarized_days().len(),
            "days": days.as_ref().map(Vec::len),
            "summarized_weeks": coverage.weeks().len(),
            "hourly_days": coverage.hour_days().len(),
            "weeks": days.map(|d| closed_weeks(&d, today).len()),
        })
    });
    axum::Json(serde_json::json!({
        "status": "ok",
        "ingest": s.ingester.is_some(),
        "buffered_rows": s.ingester.as_ref().map(|i| i.live().total_rows()),
        "wal_quarantine": quarantine,
        "cube": cube,
    }))
}

/// Prometheus metrics
///
/// In the Prometheus text exposition format.
#[utoipa::path(get, path = "/metrics",
    responses((status = 200, description = "the metrics", content((String = "text/plain")))))]
pub async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: f64| {
        let _ = writeln!(out, "# HELP modelshare_{name} {help}");
        let _ = writeln!(out, "# TYPE modelshare_{name} {kind}");
        let _ = writeln!(out, "modelshare_{name} {value}");
    };
    let c = &s.counters;
    metric(
        "ingest_requests_total",
        "counter",
        "POST /v1/events requests.",
        c.ingest_requests.load(Relaxed) as f64,
    );
    metric(
        "events_rejected_total",
        "counter",
        "Events rejected by validation.",
        c.events_rejected.load(Relaxed) as f64,
    );
    metric(
        "idempotent_replays_total",
        "counter",
        "Requests answered from an earlier Idempotency-Key.",
        c.idempotent_replays.load(Relaxed) as f64,
    );
    metric(
        "telemetry_ignored_total",
        "counter",
        "Telemetry items that are not LLM calls (spans without GenAI attributes), skipped.",
        c.items_ignored.load(Relaxed) as f64,
    );
    let conns = &c.connections;
    metric(
        "connections_open",
        "gauge",
        "HTTP connections open now.",
        conns.open.load(Relaxed) as f64,
    );
    metric(
        "connections_refused_total",
        "counter",
        "Connections closed on arrival because --max-connections were open.",
        conns.refused.load(Relaxed) as f64,
    );
    metric(
        "connections_header_timeout_total",
        "counter",
        "Connections closed because a request head did not arrive within --header-read-timeout-secs.",
        conns.header_timeouts.load(Relaxed) as f64,
    );
    metric(
        "connections_idle_timeout_total",
        "counter",
        "Connections closed after --idle-timeout-secs idle between requests or not reading a response.",
        conns.idle_timeouts.load(Relaxed) as f64,
    );
    metric(
        "rate_limited_total",
        "counter",
        "Public read requests refused with 429.",
        s.limits.throttled.load(Relaxed) as f64,
    );
    if let Some(ing) = &s.ingester {
        let m = ing.metrics();
        let g = IngestMetrics::get;
        metric(
            "events_accepted_total",
            "counter",
            "Events stored durably (fsynced).",
            g(&m.events_stored) as f64,
        );
        metric(
            "events_duplicate_total",
            "counter",
            "Events acknowledged whose event_id was already stored.",
            g(&m.events_duplicate) as f64,
        );
        metric(
            "wal_bytes_total",
            "counter",
            "Bytes appended to the write-ahead log.",
            g(&m.wal_bytes) as f64,
        );
        metric(
            "wal_fsyncs_total",
            "counter",
            "Group commits (one fsync each).",
            g(&m.wal_fsyncs) as f64,
        );
        metric(
            "flushes_total",
            "counter",
            "Parquet flushes completed.",
            g(&m.flushes) as f64,
        );
        metric(
            "flush_errors_total",
            "counter",
            "Parquet flushes that failed (rows kept).",
            g(&m.flush_errors) as f64,
        );
        metric(
            "flushed_rows_total",
            "counter",
            "Rows written to Parquet.",
            g(&m.flushed_rows) as f64,
        );
        metric(
            "flushed_bytes_total",
            "counter",
            "Parquet bytes written.",
            g(&m.flushed_bytes) as f64,
        );
        metric(
            "flush_seconds_total",
            "counter",
            "Time spent flushing.",
            g(&m.flush_micros) as f64 / 1e6,
        );
        metric(
            "backpressure_total",
            "counter",
            "Requests refused with 503 because ingest was saturated.",
            g(&m.backpressure) as f64,
        );
        metric(
            "wal_write_errors_total",
            "counter",
            "Groups refused because the write-ahead log could not be written.",
            g(&m.wal_write_errors) as f64,
        );
        metric(
            "wal_torn_tails_total",
            "counter",
            "Torn write-ahead log tails cut at start (writes never acknowledged).",
            g(&m.wal_torn_tails) as f64,
        );
        metric(
            "wal_quarantined_segments_total",
            "counter",
            "Damaged write-ahead log segments moved to wal/quarantine at start.",
            g(&m.wal_quarantined) as f64,
        );
        if let Some(bucket) = ing.lake().bucket() {
            let b = bucket.metrics();
            let g = modelshare_ingest::bucket::BucketMetrics::get;
            for (name, help, value) in [
                (
                    "bucket_puts_total",
                    "Objects put into the lake's bucket (flushes and syncs).",
                    g(&b.puts),
                ),
                (
                    "bucket_put_bytes_total",
                    "Bytes put into the lake's bucket.",
                    g(&b.put_bytes),
                ),
                (
                    "bucket_deletes_total",
                    "Objects deleted from the lake's bucket (files compacted, merged or withdrawn here).",
                    g(&b.deletes),
                ),
                (
                    "bucket_restored_total",
                    "Objects copied down from the bucket into the local copy at start (an empty directory, or a takeover).",
                    g(&b.restored),
                ),
                (
                    "bucket_failures_total",
                    "Calls to the bucket that failed after retries.",
                    g(&b.failures),
                ),
            ] {
                metric(name, "counter", help, value as f64);
            }
            metric(
                "bucket_lease_held",
                "gauge",
                "1 while this node holds the lake's writer lease with time to spare, else 0.",
                f64::from(u8::from(bucket.holds_lease())),
            );
        }
        metric(
            "buffered_rows",
            "gauge",
            "Acknowledged rows not yet in Parquet.",
            ing.live().total_rows() as f64,
        );
    }
    let q = s.query.stats();
    metric(
        "queries_total",
        "counter",
        "DataFusion queries run.",
        q.queries.load(Relaxed) as f64,
    );
    metric(
        "query_failures_total",
        "counter",
        "DataFusion queries that failed.",
        q.failures.load(Relaxed) as f64,
    );
    metric(
        "query_seconds_total",
        "counter",
        "Time spent in DataFusion queries.",
        q.micros.load(Relaxed) as f64 / 1e6,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out)
}
