//! Provider performance: per provider of a model in a period (or per model one provider
//! served), its attempts and uptime, the latency and time-to-first-token percentiles and
//! throughput of the requests it served, and how many of those it served as a fallback. Read from the `hourly` view, so a closed day costs
//! its hourly file, not its events.
//!
//! # The publication rule here
//!
//! Served requests and fallbacks served are sums of publishable groups of `crate::privacy`
//! (a group's attempt kind is its fallback key), so they agree with every other usage figure
//! and a difference of them leaves whole groups. Attempts that did not serve (failed,
//! cancelled, filtered, rate limited) come from units of one base cell and one status, like the
//! failure cells of `crate::privacy`: a unit counts only when at least `min_apps` apps have an
//! attempt of that status in it (the hourly rows' `day_apps`). Attempts are the served requests
//! plus those units; failures are the failed units.
//!
//! The percentiles are not sums: they are read from the histograms of the `ok` units of the
//! cells whose `ok` attempts come from `min_apps` apps.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::fragments::{OK_ROWS, failed_statuses};
use crate::hourly::{
    LATENCY_BOUNDS_MS, THROUGHPUT_BOUNDS_TPS, TTFT_BOUNDS_MS, latency_column, percentile,
    throughput_column, ttft_column,
};
use crate::period::Period;
use crate::privacy::{Scope, publishable_sql, published_groups};
use crate::values::{str_at, u64_at};
use modelshare_event::Task;
use serde::Serialize;

/// Which providers' figures to compute.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProvidersQuery {
    /// One model's providers, or (`None`) every provider over all the models it served.
    pub model: Option<String>,
    /// One provider, one row per model it served; `None`: one row per provider.
    pub provider: Option<String>,
    pub period: Period,
    pub task: Option<Task>,
}

/// One provider's performance for a model (or all models) in the period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderFigures {
    pub provider: String,
    /// The model of the row, when the query asked for one provider's models.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Every attempt routed to it, failed ones included.
    pub attempts: u64,
    /// Attempts that ended in `error` or `timeout`.
    pub failed: u64,
    /// `1 − failed / attempts`.
    pub uptime: f64,
    /// Requests it served (`ok`).
    pub served: u64,
    /// Of those, the ones it served after another attempt had failed.
    pub fallbacks_served: u64,
    /// Over served requests, read from the latency histogram (linear within a bucket).
    pub latency_p50_ms: Option<f64>,
    pub latency_p95_ms: Option<f64>,
    pub ttft_p50_ms: Option<f64>,
    /// Output tokens per second after the first token, median over served requests with
    /// output.
    pub throughput_p50_tps: Option<f64>,
}

/// Every histogram column of the hourly view.
fn histogram_columns() -> Vec<String> {
    LATENCY_BOUNDS_MS
        .iter()
        .map(|b| latency_column(*b))
        .chain(TTFT_BOUNDS_MS.iter().map(|b| ttft_column(*b)))
        .chain(THROUGHPUT_BOUNDS_TPS.iter().map(|b| throughput_column(*b)))
        .collect()
}

/// Per provider (and per model when `per_model`), the sums over the publishable groups and
/// units of `scope` (see the module docs). `measured`: the served requests the histograms
/// count.
fn providers_sql(scope: &Scope, per_model: bool) -> String {
    let histograms = || std::iter::once("throughput_samples".to_owned()).chain(histogram_columns());
    let unit_sums = histograms()
        .map(|c| format!("sum(CASE WHEN {OK_ROWS} THEN {c} ELSE 0 END) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let joined = histograms()
        .map(|c| format!("COALESCE(u.{c}, 0) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let keys = if per_model {
        "provider, model"
    } else {
        "provider"
    };
    let on = if per_model {
        "u.provider = g.provider AND u.model = g.model"
    } else {
        "u.provider = g.provider"
    };
    let model = if per_model {
        "COALESCE(u.model, g.model) AS model, "
    } else {
        ""
    };
    format!(
        "WITH units AS (\
           SELECT date, task, model, provider, status, sum(requests) AS requests, \
             {unit_sums} \
           FROM hourly WHERE {filter} \
           GROUP BY date, task, model, provider, status \
           HAVING {publishable}), \
         unserved AS (\
           SELECT {keys}, \
             sum(CASE WHEN {OK_ROWS} THEN 0 ELSE requests END) AS unserved, \
             sum(CASE WHEN status IN ({failed}) THEN requests ELSE 0 END) AS failed, \
             sum(CASE WHEN {OK_ROWS} THEN requests ELSE 0 END) AS measured, \
             {histogram_sums} \
           FROM units GROUP BY {keys}), \
         served AS (\
           SELECT {keys}, sum(requests) AS served, \
             sum(CASE WHEN fallback = 1 THEN requests ELSE 0 END) AS fallbacks_served \
           FROM ({groups}) GROUP BY {keys}) \
         SELECT COALESCE(u.provider, g.provider) AS provider, {model}\
           CAST(COALESCE(u.unserved, 0) + COALESCE(g.served, 0) AS BIGINT) AS attempts, \
           COALESCE(u.failed, 0) AS failed, COALESCE(g.served, 0) AS served, \
           COALESCE(g.fallbacks_served, 0) AS fallbacks_served, \
           COALESCE(u.measured, 0) AS measured, {joined} \
         FROM unserved u FULL OUTER JOIN served g ON {on}",
        filter = scope.filter(),
        publishable = publishable_sql("max(day_apps)"),
        failed = failed_statuses(),
        histogram_sums = histograms()
            .map(|c| format!("sum({c}) AS {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        groups = published_groups(scope),
    )
}

/// The percentile `p` of the histogram whose columns are `column(bound)` in `batch`'s `row`.
fn histogram_percentile(
    batch: &arrow::array::RecordBatch,
    row: usize,
    bounds: &[u32],
    column: fn(u32) -> String,
    total: u64,
    p: f64,
) -> Result<Option<f64>, QueryError> {
    let counts = bounds
        .iter()
        .map(|b| u64_at(batch, &column(*b), row))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(percentile(bounds, &counts, total, p))
}

impl QueryEngine {
    /// Each provider's performance for `q.model` (or all models) in `q.period`, or with
    /// `q.provider` each model's at that provider; most attempts first.
    pub async fn providers(&self, q: &ProvidersQuery) -> Result<Vec<ProviderFigures>, QueryError> {
        let mut scope = Scope::period(&q.period, q.task);
        if let Some(model) = &q.model {
            scope = scope.with_model(model.clone());
        }
        if let Some(provider) = &q.provider {
            scope = scope.with_provider(provider.clone());
        }
        let per_model = q.provider.is_some();
        let sql = providers_sql(&scope, per_model);
        let params = scope.params(self.config().min_apps);
        let mut out = Vec::new();
        for b in self.sql_with_params(&sql, params).await? {
            for row in 0..b.num_rows() {
                let attempts = u64_at(&b, "attempts", row)?;
                let failed = u64_at(&b, "failed", row)?;
                let served = u64_at(&b, "served", row)?;
                let measured = u64_at(&b, "measured", row)?;
                let samples = u64_at(&b, "throughput_samples", row)?;
                // Percentiles only beside published served requests.
                let served_at = |bounds: &[u32], column: fn(u32) -> String, total, p| {
                    if served == 0 {
                        return Ok(None);
                    }
                    histogram_percentile(&b, row, bounds, column, total, p)
                };
                out.push(ProviderFigures {
                    provider: str_at(&b, "provider", row)?.to_owned(),
                    model: if per_model {
                        Some(str_at(&b, "model", row)?.to_owned())
                    } else {
                        None
                    },
                    attempts,
                    failed,
                    uptime: 1.0 - failed as f64 / attempts.max(1) as f64,
                    served,
                    fallbacks_served: u64_at(&b, "fallbacks_served", row)?,
                    latency_p50_ms: served_at(&LATENCY_BOUNDS_MS, latency_column, measured, 0.5)?,
                    latency_p95_ms: served_at(&LATENCY_BOUNDS_MS, latency_column, measured, 0.95)?,
                    ttft_p50_ms: served_at(&TTFT_BOUNDS_MS, ttft_column, measured, 0.5)?,
                    throughput_p50_tps: served_at(
                        &THROUGHPUT_BOUNDS_TPS,
                        throughput_column,
                        samples,
                        0.5,
                    )?,
                });
            }
        }
        out.sort_by(|a, b| {
            b.attempts
                .cmp(&a.attempts)
                .then_with(|| a.provider.cmp(&b.provider))
                .then_with(|| a.model.cmp(&b.model))
        });
        Ok(out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_interpolate_within_their_bucket() {
        let bounds = [100, 200, 500];
        // 10 items: 2 ≤ 100, 6 ≤ 200, 10 ≤ 500.
        let counts = [2, 6, 10];
        // p50: the 5th item, 3/4 of the way through (100, 200].
        assert_eq!(percentile(&bounds, &counts, 10, 0.5), Some(175.0));
        // p10: the 1st item, half-way through (0, 100].
        assert_eq!(percentile(&bounds, &counts, 10, 0.1), Some(50.0));
        // p95: 9.5 of 10, 7/8 of the way through (200, 500].
        assert_eq!(percentile(&bounds, &counts, 10, 0.95), Some(462.5));
        // Items above the last bound: the value is not known.
        assert_eq!(percentile(&bounds, &[2, 6, 8], 10, 0.95), None);
        assert_eq!(percentile(&bounds, &[0, 0, 0], 0, 0.5), None);
        // Empty leading buckets are skipped, not divided by zero.
        assert_eq!(percentile(&bounds, &[0, 0, 4], 4, 0.5), Some(350.0));
    }
}
