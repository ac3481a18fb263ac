//! Agent workloads: calls that name their trace (`trace_id`) and position in it (`step`).
//! Per period (and task): how many traces, how many calls a trace makes (p50, p95 and a
//! maximum), the share of traced calls made in traces of more than one call, and which models
//! take first calls and which take later ones.
//!
//! # The publication rule here
//!
//! Calls by position are sums of the publishable groups of `crate::privacy` whose position is
//! a first call (`step = 0`) or a later call (`step > 0`): the app-day cube's `position` is a
//! key of the group, so the split by position is a union of whole groups, like every other
//! figure, and cannot cross the splits by attempt and segment.
//!
//! Trace figures read the same calls: those with a step in publishable groups (a call of a
//! withheld group is in no trace's count, so `traced_calls` is exactly the first and later
//! calls together, and no difference of the figures shows a withheld call). They describe the
//! period's traces as one group: published only when the traces come from at least `min_apps`
//! apps, and the maximum is the largest call count that the traces of at least `min_apps` apps
//! reached (the `min_apps`-th largest of the apps' own maxima), never one app's longest trace.
//!
//! Cost: trace figures are read from the period's traced events; calls by position from the
//! cube's rows of first and later calls.

use crate::QueryError;
use crate::engine::{GROUP, QueryEngine};
use crate::fragments::{FALLBACK, OK_ROWS, POSITION, context_code};
use crate::period::Period;
use crate::privacy::{Scope, publishable, published_groups};
use crate::values::{str_at, u64_at};
use modelshare_event::Task;
use serde::Serialize;
use std::collections::BTreeMap;

/// Which calls to describe.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AgentsQuery {
    pub period: Period,
    pub task: Option<Task>,
}

/// Calls per trace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CallsPerTrace {
    pub p50: u64,
    pub p95: u64,
    /// The largest count reached by the traces of at least `min_apps` apps.
    pub max: u64,
}

/// One model's calls at a position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ModelCalls {
    pub model: String,
    pub calls: u64,
    /// Of the position's published calls.
    pub share: f64,
}

/// The answer: trace figures (when publishable) and models by position.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Agents {
    /// Traces with at least one successful call in the period; `None` when they come from too
    /// few apps to publish, as for every trace figure below.
    pub traces: Option<u64>,
    /// Successful calls in those traces.
    pub traced_calls: Option<u64>,
    pub calls_per_trace: Option<CallsPerTrace>,
    /// Of the traced calls, the share made in traces of more than one call.
    pub multi_call_share: Option<f64>,
    /// Models of first calls (`step = 0`), most calls first.
    pub first_calls: Vec<ModelCalls>,
    /// Models of later calls (`step > 0`), most calls first.
    pub later_calls: Vec<ModelCalls>,
}

/// The value at quantile `q` of the counts `hist` (value, how many), in ascending value order.
fn quantile(hist: &[(u64, u64)], q: f64) -> u64 {
    let total: u64 = hist.iter().map(|h| h.1).sum();
    let rank = ((q * total as f64).ceil() as u64).clamp(1, total.max(1));
    let mut seen = 0;
    for &(value, n) in hist {
        seen += n;
        if seen >= rank {
            return value;
        }
    }
    hist.last().map_or(0, |h| h.0)
}

fn shares(rows: Vec<(String, u64)>) -> Vec<ModelCalls> {
    let total: u64 = rows.iter().map(|r| r.1).sum();
    let mut out: Vec<ModelCalls> = rows
        .into_iter()
        .filter(|r| r.1 > 0)
        .map(|(model, calls)| ModelCalls {
            share: calls as f64 / total.max(1) as f64,
            model,
            calls,
        })
        .collect();
    out.sort_by(|a, b| b.calls.cmp(&a.calls).then_with(|| a.model.cmp(&b.model)));
    out
}

impl QueryEngine {
    /// Trace figures and models by position for `q` (see the module docs for what is
    /// published).
    pub async fn agents(&self, q: &AgentsQuery) -> Result<Agents, QueryError> {
        let scope = Scope::period(&q.period, q.task);
        let min_apps = self.config().min_apps;
        let params = || scope.params(min_apps);
        let filter = scope.filter();

        // Each app's traces: calls per trace, as a histogram per app, over the calls with a
        // step in publishable groups.
        let per_app = format!(
            "SELECT app_id, calls, count(*) AS traces FROM (\
               SELECT e.app_id, e.trace_id, count(*) AS calls \
               FROM (SELECT app_id, trace_id, date, task, model, provider, \
                       {context} AS context, {FALLBACK} AS fallback, {POSITION} AS position \
                     FROM events \
                     WHERE {filter} AND {OK_ROWS} AND trace_id IS NOT NULL \
                       AND step IS NOT NULL) e \
               JOIN (SELECT {GROUP} FROM ({groups})) g \
                 ON e.date = g.date AND e.task = g.task AND e.model = g.model \
                   AND e.provider = g.provider AND e.context = g.context \
                   AND e.fallback = g.fallback AND e.position = g.position \
               GROUP BY e.app_id, e.trace_id) \
             GROUP BY app_id, calls",
            context = context_code(),
            groups = published_groups(&scope),
        );
        let mut hist: BTreeMap<u64, u64> = BTreeMap::new();
        let mut app_max: BTreeMap<String, u64> = BTreeMap::new();
        for b in self.sql_with_params(&per_app, params()).await? {
            for row in 0..b.num_rows() {
                let calls = u64_at(&b, "calls", row)?;
                *hist.entry(calls).or_default() += u64_at(&b, "traces", row)?;
                let m = app_max
                    .entry(str_at(&b, "app_id", row)?.to_owned())
                    .or_default();
                *m = (*m).max(calls);
            }
        }
        let apps = app_max.len() as u64;
        let (mut traces, mut traced_calls, mut calls_per_trace, mut multi_call_share) =
            (None, None, None, None);
        if apps > 0 && publishable(apps, min_apps) {
            let hist: Vec<(u64, u64)> = hist.into_iter().collect();
            let calls: u64 = hist.iter().map(|(c, n)| c * n).sum();
            let multi: u64 = hist.iter().filter(|h| h.0 > 1).map(|(c, n)| c * n).sum();
            let mut maxima: Vec<u64> = app_max.into_values().collect();
            maxima.sort_unstable_by(|a, b| b.cmp(a));
            let k = usize::try_from(min_apps.max(1)).unwrap_or(usize::MAX);
            traces = Some(hist.iter().map(|h| h.1).sum());
            traced_calls = Some(calls);
            calls_per_trace = Some(CallsPerTrace {
                p50: quantile(&hist, 0.5),
                p95: quantile(&hist, 0.95),
                max: maxima.get(k - 1).copied().unwrap_or(0),
            });
            multi_call_share = Some(multi as f64 / calls.max(1) as f64);
        }

        let (first, later) = self.calls_by_position(&scope).await?;
        Ok(Agents {
            traces,
            traced_calls,
            calls_per_trace,
            multi_call_share,
            first_calls: shares(first),
            later_calls: shares(later),
        })
    }
}

impl QueryEngine {
    /// Per model (in slug order), the first and later calls of the publishable groups (see the
    /// module docs).
    async fn calls_by_position(
        &self,
        scope: &Scope,
    ) -> Result<(Vec<(String, u64)>, Vec<(String, u64)>), QueryError> {
        let sql = format!(
            "SELECT model, CAST(position AS BIGINT) AS position, \
               CAST(sum(requests) AS BIGINT) AS calls \
             FROM ({groups}) WHERE position > 0 \
             GROUP BY model, position ORDER BY model",
            groups = published_groups(scope),
        );
        let (mut first, mut later) = (Vec::new(), Vec::new());
        for b in self
            .sql_with_params(&sql, scope.params(self.config().min_apps))
            .await?
        {
            for row in 0..b.num_rows() {
                let calls = (
                    str_at(&b, "model", row)?.to_owned(),
                    u64_at(&b, "calls", row)?,
                );
                match u64_at(&b, "position", row)? {
                    1 => first.push(calls),
                    _ => later.push(calls),
                }
            }
        }
        Ok((first, later))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_order_statistics() {
        // 1 call ×6 traces, 2 ×3, 10 ×1: the 5th of 10 is 1, the 10th (p95 rounds up) is 10.
        let hist = [(1, 6), (2, 3), (10, 1)];
        assert_eq!(quantile(&hist, 0.5), 1);
        assert_eq!(quantile(&hist, 0.7), 2);
        assert_eq!(quantile(&hist, 0.95), 10);
        assert_eq!(quantile(&[], 0.5), 0);
    }
}
