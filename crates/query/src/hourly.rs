//! The `hourly` view: per (date, hour, task, model, provider, status), every attempt's counts
//! and sums and a cumulative latency histogram, from which percentiles are read.
//!
//! Closed days whose hourly file is current (`rollups/hourly/`, written by the server's upkeep
//! from [`QueryEngine::hour_summary`]) are read from it; every other day, and the live rows,
//! are aggregated from raw events with the same expressions ([`per_row`]), so a day gives the
//! same rows whichever way it is read. Unlike the public figures, the view counts every
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

/// The key columns of an hourly row, besides the `date` partition.
const KEY: [&str; 5] = ["hour", "task", "model", "provider", "status"];

/// The histogram column of `bound`.
pub fn latency_column(bound: u32) -> String {
    format!("latency_le_{bound}ms")
}

/// Each measure's name and its value for one event row; a row of the view holds their sums.
fn measures() -> Vec<(String, String)> {
    let mut m: Vec<(String, String)> = [
        ("requests", "CAST(1 AS BIGINT)"),
        (
            "fallbacks",
            "CAST(CASE WHEN attempt > 0 THEN 1 ELSE 0 END AS BIGINT)",
        ),
        ("input_tokens", "CAST(input_tokens AS BIGINT)"),
        ("output_tokens", "CAST(output_tokens AS BIGINT)"),
        ("reasoning_tokens", "CAST(reasoning_tokens AS BIGINT)"),
        ("cached_tokens", "CAST(cached_tokens AS BIGINT)"),
        ("cost_usd", "CAST(cost_usd AS DECIMAL(38, 6))"),
        ("latency_ms_sum", "CAST(latency_ms AS BIGINT)"),
        ("ttft_ms_sum", "CAST(ttft_ms AS BIGINT)"),
    ]
    .into_iter()
    .map(|(n, e)| (n.to_owned(), e.to_owned()))
    .collect();
    m.extend(LATENCY_BOUNDS_MS.iter().map(|b| {
        (
            latency_column(*b),
            format!("CAST(CASE WHEN latency_ms <= {b} THEN 1 ELSE 0 END AS BIGINT)"),
        )
    }));
    m
}

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
    fields.extend(measures().into_iter().map(|(name, _)| {
        let data_type = if name == "cost_usd" {
            DataType::Decimal128(38, 6)
        } else {
            DataType::Int64
        };
        Field::new(name, data_type, true)
    }));
    Arc::new(Schema::new(fields))
});

/// The columns of an hourly file (the `date` partition column lives in the path).
pub fn hourly_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// One row per event of `table` where `filter`: the key and each measure's value.
fn per_row(table: &str, filter: &str, with_date: bool) -> String {
    let values = measures()
        .into_iter()
        .map(|(name, expr)| format!("{expr} AS {name}"))
        .collect::<Vec<_>>()
        .join(", ");
    let date = if with_date { "date, " } else { "" };
    format!(
        "SELECT {date}date_trunc('hour', ts) AS hour, task, model, provider, status, {values} \
         FROM {table} WHERE {filter}"
    )
}

/// The key and each measure's sum over `rows`, grouped by the key (and `date`).
fn summed(rows: &str, with_date: bool) -> String {
    let sums = measures()
        .into_iter()
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
    format!("SELECT {date}{key}, {sums} FROM ({rows}) GROUP BY {date}{key}")
}

/// The `hourly` view: the hourly files where `from_files` holds, raw events of the lake where
/// `computed` holds, and every live row.
pub(crate) fn hourly_view(from_files: &str, computed: &str) -> String {
    let columns = KEY
        .iter()
        .map(|k| (*k).to_owned())
        .chain(measures().into_iter().map(|(n, _)| n))
        .collect::<Vec<_>>()
        .join(", ");
    let rows = format!(
        "SELECT date, {columns} FROM hour_files WHERE {from_files} \
         UNION ALL {lake} UNION ALL {live}",
        lake = per_row("lake", computed, true),
        live = per_row("live", "true", true),
    );
    format!("CREATE VIEW hourly AS {}", summed(&rows, true))
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
            "{} ORDER BY task, model, provider, status, hour",
            summed(&per_row("day_events", "true", false), false)
        );
        self.sql_with_tables_and_params(&sql, Vec::new(), &[table])
            .await
    }
}
