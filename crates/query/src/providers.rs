//! Provider performance: per provider of a model in a period (or per model one provider
//! served), its attempts and uptime, the latency and time-to-first-token percentiles and
//! throughput of the requests it served, and how many of those it served as a fallback. Read from the `hourly` view, so a closed day costs
//! its hourly file, not its events.
//!
//! # The publication rule here
//!
//! The unit is a base cell (day, task, model, provider) *of one status*, like the failure cells
//! of [`crate::privacy`]: it counts only when at least `min_apps` apps have an attempt of that
//! status in it (the hourly rows' `day_apps`). Its `ok` unit is exactly the base cell the usage
//! figures publish. Attempts, failures and served requests are sums of whole publishable units,
//! and the percentiles are read from the histograms of whole publishable `ok` units.
//!
//! Fallbacks served split an `ok` unit by attempt, so they follow the rule for splits: a unit's
//! fallbacks count only when its first attempts and its fallbacks each come from no app or from
//! at least `min_apps` apps (`day_first_apps`, `day_fallback_apps`), and its cell may be split at
//! all (`crate::privacy::splittable_cells`, which keeps splits by attempt, by context segment
//! and by agent position from crossing); otherwise the unit is not split, and none of its
//! fallbacks are counted.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::fragments::{OK_ROWS, failed_statuses};
use crate::hourly::{
    LATENCY_BOUNDS_MS, THROUGHPUT_BOUNDS_TPS, TTFT_BOUNDS_MS, latency_column, percentile,
    throughput_column, ttft_column,
};
use crate::period::Period;
use crate::privacy::{Scope, none_or_publishable_sql, publishable_sql, splittable_cells};
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

/// Per provider (and per model when `per_model`), the sums over the publishable units of
/// `scope` (see the module docs).
fn providers_sql(scope: &Scope, per_model: bool) -> String {
    let unit_sums = ["requests", "fallbacks", "throughput_samples"]
        .into_iter()
        .map(str::to_owned)
        .chain(histogram_columns())
        .map(|c| format!("sum({c}) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    let served_sums = std::iter::once("throughput_samples".to_owned())
        .chain(histogram_columns())
        .map(|c| format!("sum(CASE WHEN {OK_ROWS} THEN {c} ELSE 0 END) AS {c}"))
        .collect::<Vec<_>>()
        .join(", ");
    format!(
        "WITH units AS (\
           SELECT date, task, model, provider, status, max(day_apps) AS apps, \
             max(day_first_apps) AS first_apps, max(day_fallback_apps) AS fallback_apps, \
             {unit_sums} \
           FROM hourly WHERE {filter} \
           GROUP BY date, task, model, provider, status \
           HAVING {publishable}), \
         split_units AS (\
           SELECT u.*, s.date IS NOT NULL AS splittable \
           FROM units u LEFT JOIN ({splittable}) s ON u.date = s.date AND u.task = s.task \
             AND u.model = s.model AND u.provider = s.provider) \
         SELECT {keys}, sum(requests) AS attempts, \
           sum(CASE WHEN status IN ({failed}) THEN requests ELSE 0 END) AS failed, \
           sum(CASE WHEN {OK_ROWS} THEN requests ELSE 0 END) AS served, \
           sum(CASE WHEN {OK_ROWS} AND {first} AND {fallback} AND splittable \
             THEN fallbacks ELSE 0 END) AS fallbacks_served, \
           {served_sums} \
         FROM split_units GROUP BY {keys}",
        keys = if per_model {
            "provider, model"
        } else {
            "provider"
        },
        filter = scope.filter(),
        publishable = publishable_sql("max(day_apps)"),
        failed = failed_statuses(),
        first = none_or_publishable_sql("first_apps"),
        fallback = none_or_publishable_sql("fallback_apps"),
        splittable = splittable_cells(scope),
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
                let samples = u64_at(&b, "throughput_samples", row)?;
                let served_at = |bounds: &[u32], column: fn(u32) -> String, total, p| {
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
                    latency_p50_ms: served_at(&LATENCY_BOUNDS_MS, latency_column, served, 0.5)?,
                    latency_p95_ms: served_at(&LATENCY_BOUNDS_MS, latency_column, served, 0.95)?,
                    ttft_p50_ms: served_at(&TTFT_BOUNDS_MS, ttft_column, served, 0.5)?,
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
