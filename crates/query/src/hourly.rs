//! The `hourly` view: per (date, hour, task, model, provider, status), every attempt's counts
//! and sums, cumulative histograms of latency, time to first token and throughput, and the
//! distinct apps of the row's (day, task, model, provider, status) group (`day_apps`), which the
//! publication rule tests (see [`crate::providers`]).
//!
//! Closed days whose hourly file is current (`rollups/hourly/`, written by the server's upkeep
//! from [`QueryEngine::hour_summary`]) are read from it; every other day, and days with live
//! rows, are aggregated from raw events with the same expressions ([`per_row`]), so a day gives
//! the same rows whichever way it is read. Unlike the public figures, the view counts every
//! attempt, failed ones included: it is what reliability and latency are measured on.

use crate::QueryError;
use crate::engine::{FileTable, QueryEngine};
use arrow::array::RecordBatch;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use modelshare_event::schema::event_schema;
use std::path::PathBuf;
use std::sync::{Arc, LazyLock};

/// Upper bounds (milliseconds, inclusive) of the latency histogram: column `latency_le_<b>ms`
/// counts the attempts that took at most `b` ms. The last bucket is every attempt
/// (`requests`).
pub const LATENCY_BOUNDS_MS: [u32; 16] = [
    100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 7_500, 10_000, 15_000, 20_000,
    30_000, 60_000,
];

/// Upper bounds (milliseconds, inclusive) of the time-to-first-token histogram
/// (`ttft_le_<b>ms`).
pub const TTFT_BOUNDS_MS: [u32; 14] = [
    50, 100, 200, 300, 500, 750, 1_000, 1_500, 2_000, 3_000, 5_000, 10_000, 20_000, 60_000,
];

/// Upper bounds (output tokens per second, inclusive) of the throughput histogram
/// (`tps_le_<b>`), over the `throughput_samples` attempts that produced output after their
/// first token: output tokens / (latency − time to first token).
pub const THROUGHPUT_BOUNDS_TPS: [u32; 14] = [
    5, 10, 20, 30, 50, 75, 100, 150, 200, 300, 500, 750, 1_000, 2_000,
];

/// The key columns of an hourly row, besides the `date` partition.
const KEY: [&str; 5] = ["hour", "task", "model", "provider", "status"];

/// The distinct-app column of an hourly row: the apps of its whole day's (task, model, provider,
/// status) group.
const DAY_APPS: &str = "day_apps";

/// The histogram column of latency `bound`.
pub fn latency_column(bound: u32) -> String {
    format!("latency_le_{bound}ms")
}

/// The histogram column of time-to-first-token `bound`.
pub fn ttft_column(bound: u32) -> String {
    format!("ttft_le_{bound}ms")
}

/// The histogram column of throughput `bound`.
pub fn throughput_column(bound: u32) -> String {
    format!("tps_le_{bound}")
}

/// An attempt whose throughput is measured: it produced output after its first token.
const HAS_THROUGHPUT: &str = "output_tokens > 0 AND latency_ms > ttft_ms";

/// Output tokens per second after the first token, for a row where [`HAS_THROUGHPUT`].
const THROUGHPUT: &str =
    "CAST(output_tokens AS DOUBLE) * 1000.0 / CAST(latency_ms - ttft_ms AS DOUBLE)";

/// The SQL value of a row that counts 1 when `cond` holds, else 0.
fn count_if(cond: &str) -> String {
    format!("CAST(CASE WHEN {cond} THEN 1 ELSE 0 END AS BIGINT)")
}

/// Each measure's name and its value for one event row; a row of the view holds their sums.
/// Built once: every query session's `hourly` view names them.
static MEASURES: LazyLock<Vec<(String, String)>> = LazyLock::new(|| {
    let mut m: Vec<(String, String)> = [
        ("requests", "CAST(1 AS BIGINT)".to_owned()),
        ("fallbacks", count_if("attempt > 0")),
        ("input_tokens", "CAST(input_tokens AS BIGINT)".to_owned()),
        ("output_tokens", "CAST(output_tokens AS BIGINT)".to_owned()),
        (
            "reasoning_tokens",
            "CAST(reasoning_tokens AS BIGINT)".to_owned(),
        ),
        ("cached_tokens", "CAST(cached_tokens AS BIGINT)".to_owned()),
        ("cost_usd", "CAST(cost_usd AS DECIMAL(38, 6))".to_owned()),
        ("latency_ms_sum", "CAST(latency_ms AS BIGINT)".to_owned()),
        ("ttft_ms_sum", "CAST(ttft_ms AS BIGINT)".to_owned()),
        ("throughput_samples", count_if(HAS_THROUGHPUT)),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_owned(), e))
    .collect();
    m.extend(
        LATENCY_BOUNDS_MS
            .iter()
            .map(|b| (latency_column(*b), count_if(&format!("latency_ms <= {b}")))),
    );
    m.extend(
        TTFT_BOUNDS_MS
            .iter()
            .map(|b| (ttft_column(*b), count_if(&format!("ttft_ms <= {b}")))),
    );
    m.extend(THROUGHPUT_BOUNDS_TPS.iter().map(|b| {
        (
            throughput_column(*b),
            count_if(&format!("{HAS_THROUGHPUT} AND {THROUGHPUT} <= {b}")),
        )
    }));
    m
});

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let mut fields = vec![Field::new(
        "hour",
        DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        true,
    )];
    fields.extend(
        KEY[1..]
            .iter()
            .map(|k| Field::new(*k, DataType::Utf8, true)),
    );
    fields.extend(MEASURES.iter().map(|(name, _)| {
        let data_type = if name == "cost_usd" {
            DataType::Decimal128(38, 6)
        } else {
            DataType::Int64
        };
        Field::new(name, data_type, true)
    }));
    fields.push(Field::new(DAY_APPS, DataType::Int64, true));
    Arc::new(Schema::new(fields))
});

/// The columns of an hourly file (the `date` partition column lives in the path).
pub fn hourly_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// One row per event of `table` where `filter`: the key, the app and each measure's value.
fn per_row(table: &str, filter: &str, with_date: bool) -> String {
    let values = MEASURES
        .iter()
        .map(|(name, expr)| format!("{expr} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let date = if with_date { "date, " } else { "" };
    format!(
        "SELECT {date}date_trunc('hour', ts) AS hour, task, model, provider, status, attempt, \
           app_id, {values} \
         FROM {table} WHERE {filter}"
    )
}

/// The key columns and the measures, in the order a summed row holds them.
fn summed_columns() -> impl Iterator<Item = &'static str> {
    KEY.iter()
        .copied()
        .chain(MEASURES.iter().map(|(n, _)| n.as_str()))
}

/// The key, each measure's sum over `rows`, grouped by the key (and `date`), and the distinct
/// apps of each row's (day, task, model, provider, status) group.
fn summed(rows: &str, with_date: bool) -> String {
    let sums = MEASURES
        .iter()
        .map(|(name, _)| {
            if name == "cost_usd" {
                format!("CAST(sum({name}) AS DECIMAL(38, 6)) AS {name}")
            } else {
                format!("sum({name}) AS {name}")
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let key = KEY.join(", ");
    let date = if with_date { "date, " } else { "" };
    let day_group = format!("{date}task, model, provider, status");
    let joined = ["task", "model", "provider", "status"]
        .iter()
        .chain(with_date.then_some(&"date"))
        .map(|c| format!("h.{c} = a.{c}"))
        .collect::<Vec<_>>()
        .join(" AND ");
    let columns = summed_columns()
        .map(|c| format!("h.{c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let h_date = if with_date { "h.date, " } else { "" };
    format!(
        // Distinct apps as a group-by per app, then a count: an aggregation that can spill to
        // disk on a big day, which per-group distinct sets cannot.
        "SELECT {h_date}{columns}, a.{DAY_APPS} \
         FROM (SELECT {date}{key}, {sums} FROM ({rows}) GROUP BY {date}{key}) h \
         JOIN (SELECT {day_group}, CAST(count(*) AS BIGINT) AS {DAY_APPS} \
               FROM (SELECT {day_group}, app_id FROM ({rows}) GROUP BY {day_group}, app_id) \
               GROUP BY {day_group}) a \
           ON {joined}"
    )
}

/// The `hourly` view: the hourly files where `from_files` holds, and raw events (of the lake
/// where `computed` holds, and every live row) summed the same way. A day is read one way or
/// the other, never both: `day_apps` does not add up across sources.
pub(crate) fn hourly_view(from_files: &str, computed: &str) -> String {
    let columns = summed_columns().collect::<Vec<_>>().join(", ");
    let raw = format!(
        "{lake} UNION ALL {live}",
        lake = per_row("lake", computed, true),
        live = per_row("live", "true", true),
    );
    format!(
        "CREATE VIEW hourly AS \
         SELECT date, {columns}, {DAY_APPS} FROM hour_files WHERE {from_files} \
         UNION ALL {computed_rows}",
        computed_rows = summed(&raw, true)
    )
}

/// The value below which a share `p` (0..1) of the counted items lie, read from a cumulative
/// histogram: `cumulative[i]` items are at most `bounds[i]`, of `total`. Linear within the
/// bucket (its lower edge is the previous bound, 0 for the first); `None` when nothing was
/// counted or the value lies above the last bound.
pub fn percentile(bounds: &[u32], cumulative: &[u64], total: u64, p: f64) -> Option<f64> {
    if total == 0 {
        return None;
    }
    let target = p * total as f64;
    let (mut low, mut below) = (0.0, 0u64);
    for (bound, &count) in bounds.iter().zip(cumulative) {
        let high = f64::from(*bound);
        if count as f64 >= target && count > below {
            let within = (target - below as f64) / (count - below) as f64;
            return Some(low + within.clamp(0.0, 1.0) * (high - low));
        }
        (low, below) = (high, count);
    }
    None
}

impl QueryEngine {
    /// The hourly rows of exactly the events files `files` (one day's), ordered by task,
    /// model, provider, status and hour: what the day's hourly file holds.
    pub async fn hour_summary(&self, files: &[PathBuf]) -> Result<Vec<RecordBatch>, QueryError> {
        let table = FileTable {
            name: "day_events".into(),
            schema: event_schema(),
            files: files.to_vec(),
        };
        let sql = format!(
            "SELECT * FROM ({}) ORDER BY task, model, provider, status, hour",
            summed(&per_row("day_events", "true", false), false)
        );
        self.sql_with_tables_and_params(&sql, Vec::new(), &[table])
            .await
    }
}
