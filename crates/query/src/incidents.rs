//! Provider incidents: spans of time in which most attempts routed to a provider failed, found
//! from the data, to the minute.
//!
//! # How they are found
//!
//! 1. **Candidate hours**, from the `hourly` view (a closed day costs its hourly file): hours in
//!    which a provider had at least [`MIN_HOUR_FAILURES`] failed attempts (`error` or
//!    `timeout`) making at least [`HOUR_FAILURE_SHARE`] of its attempts.
//! 2. **Minutes**, from the provider's events in each run of candidate hours widened by an hour
//!    on both sides: a minute is *failing* when at least [`MINUTE_FAILURE_SHARE`] of its
//!    attempts failed. Failing minutes join into one incident across gaps in which the provider
//!    served nothing, or of at most [`MAX_SERVED_GAP_MINUTES`] minutes; an incident runs from its
//!    first failing minute to the end of its last.
//! 3. **Kept** when it has at least [`MIN_INCIDENT_FAILURES`] failed attempts.
//!
//! # The publication rule here
//!
//! Failed attempts count only in failure units (day, task, model, provider, status) of at least
//! `min_apps` apps, the units every other figure of failures sums; a failure of a smaller unit
//! is in no incident's figures (it still helps find the incident). An incident is published only
//! when at least `min_apps` apps had a counted failed attempt in it, and the provider's counted
//! failed attempts on the same days outside it come from no app or from at least `min_apps` apps
//! (so the day's failures minus the incident's are not a small group's). An affected model is
//! named only when at least `min_apps` apps failed on it in the incident. Its `attempts` are
//! published only when the attempts in it that did not fail come from no app or from at least
//! `min_apps` apps: `attempts − failed_attempts` is their count.

use crate::QueryError;
use crate::engine::{QueryEngine, ScalarValue};
use crate::fragments::failed_statuses;
use crate::privacy::{min_apps_param, none_or_publishable, publishable, publishable_sql};
use crate::values::{str_at, u64_at};
use chrono::{DateTime, Days, NaiveDate, Utc};
use serde::Serialize;

/// Failed attempts an hour needs to be a candidate.
pub const MIN_HOUR_FAILURES: u64 = 5;
/// Share of an hour's attempts that must have failed for it to be a candidate.
pub const HOUR_FAILURE_SHARE: f64 = 0.2;
/// Share of a minute's attempts that must have failed for it to be failing.
pub const MINUTE_FAILURE_SHARE: f64 = 0.5;
/// Longest run of minutes with served attempts that still joins two failing minutes.
pub const MAX_SERVED_GAP_MINUTES: i64 = 2;
/// Failed attempts an incident needs to be reported.
pub const MIN_INCIDENT_FAILURES: u64 = 10;

const MINUTE: i64 = 60;
const HOUR: i64 = 3_600;

/// One detected incident.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Incident {
    pub provider: String,
    /// First failing minute, UTC.
    pub start: DateTime<Utc>,
    /// End of the last failing minute, UTC.
    pub end: DateTime<Utc>,
    /// Failed attempts (`error`, `timeout`) at the provider in `[start, end)`, of failure units
    /// of enough apps (see the module docs).
    pub failed_attempts: u64,
    /// Every attempt at the provider in `[start, end)`; `None` when the attempts that did not
    /// fail come from fewer than `min_apps` apps (see the module docs).
    pub attempts: Option<u64>,
    /// Models with failed attempts in the incident (those with enough apps), most failures
    /// first.
    pub affected_models: Vec<String>,
}

/// One minute of a provider: its start (Unix seconds), attempts and failed attempts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MinuteCounts {
    pub minute: i64,
    pub attempts: u64,
    pub failed: u64,
}

/// A span `[start, end)` (Unix seconds) with its attempts and failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: i64,
    pub end: i64,
    pub attempts: u64,
    pub failed: u64,
}

fn failing(m: &MinuteCounts) -> bool {
    m.failed > 0 && m.failed as f64 >= MINUTE_FAILURE_SHARE * m.attempts as f64
}

/// The incidents in `minutes` (one provider's, ascending, minutes without attempts absent),
/// by the rule of the module docs (steps 2 and 3).
pub fn incident_spans(minutes: &[MinuteCounts]) -> Vec<Span> {
    let mut spans: Vec<Span> = Vec::new();
    let mut open: Option<Span> = None;
    // Minutes with served attempts since the open span's last failing minute.
    let mut served_gap = 0;
    let mut pending = (0u64, 0u64);
    for m in minutes {
        if failing(m) {
            let span = open.get_or_insert(Span {
                start: m.minute,
                end: m.minute,
                attempts: 0,
                failed: 0,
            });
            span.attempts += pending.0 + m.attempts;
            span.failed += pending.1 + m.failed;
            span.end = m.minute + MINUTE;
            (served_gap, pending) = (0, (0, 0));
        } else if open.is_some() {
            served_gap += 1;
            pending = (pending.0 + m.attempts, pending.1 + m.failed);
            if served_gap > MAX_SERVED_GAP_MINUTES {
                spans.extend(open.take());
                (served_gap, pending) = (0, (0, 0));
            }
        }
    }
    spans.extend(open);
    spans.retain(|s| s.failed >= MIN_INCIDENT_FAILURES);
    spans
}

fn text(s: impl Into<String>) -> ScalarValue {
    ScalarValue::Utf8(Some(s.into()))
}

fn int(v: i64) -> ScalarValue {
    ScalarValue::Int64(Some(v))
}

/// Unix seconds of a row's timestamp.
const EPOCH_S: &str = "CAST(date_part('epoch', ts) AS BIGINT)";

/// The date partitions holding `[start, end)` (Unix seconds), as `$d0`, `$d1` values.
fn days_of(start: i64, end: i64) -> (String, String) {
    let day = |s: i64| {
        DateTime::from_timestamp(s, 0)
            .map(|t| t.date_naive())
            .unwrap_or_default()
    };
    (
        day(start).to_string(),
        (day(end - 1) + Days::new(1)).to_string(),
    )
}

impl QueryEngine {
    /// The incidents that started in `[from, to)` (days), oldest first.
    pub async fn incidents(
        &self,
        from: NaiveDate,
        to: NaiveDate,
    ) -> Result<Vec<Incident>, QueryError> {
        let failed = failed_statuses();
        let candidates = format!(
            "SELECT provider, hour_s FROM (\
               SELECT provider, CAST(date_part('epoch', hour) AS BIGINT) AS hour_s, \
                 sum(requests) AS attempts, \
                 sum(CASE WHEN status IN ({failed}) THEN requests ELSE 0 END) AS failed \
               FROM hourly WHERE date >= $from AND date < $to \
               GROUP BY provider, hour) \
             WHERE failed >= {MIN_HOUR_FAILURES} AND failed >= {HOUR_FAILURE_SHARE} * attempts \
             ORDER BY provider, hour_s"
        );
        let params = vec![
            ("from".to_owned(), text(from.to_string())),
            ("to".to_owned(), text(to.to_string())),
        ];
        let mut hours: Vec<(String, i64)> = Vec::new();
        for b in self.sql_with_params(&candidates, params).await? {
            for row in 0..b.num_rows() {
                let hour = i64::try_from(u64_at(&b, "hour_s", row)?).unwrap_or(i64::MAX);
                hours.push((str_at(&b, "provider", row)?.to_owned(), hour));
            }
        }
        let (from_s, to_s) = (day_start(from), day_start(to));
        let mut out = Vec::new();
        for (provider, start, end) in hour_runs(&hours) {
            let minutes = self
                .provider_minutes(&provider, start - HOUR, end + HOUR)
                .await?;
            for span in incident_spans(&minutes) {
                if !(from_s..to_s).contains(&span.start) {
                    continue;
                }
                if let Some(incident) = self.published_incident(&provider, span).await? {
                    out.push(incident);
                }
            }
        }
        out.sort_by(|a, b| a.start.cmp(&b.start).then(a.provider.cmp(&b.provider)));
        Ok(out)
    }

    /// `provider`'s attempts and failures per minute in `[start, end)` (Unix seconds).
    async fn provider_minutes(
        &self,
        provider: &str,
        start: i64,
        end: i64,
    ) -> Result<Vec<MinuteCounts>, QueryError> {
        let sql = format!(
            "SELECT CAST({EPOCH_S} / {MINUTE} * {MINUTE} AS BIGINT) AS minute, \
               count(*) AS attempts, \
               sum(CASE WHEN status IN ({failed}) THEN 1 ELSE 0 END) AS failed \
             FROM events WHERE provider = $provider AND date >= $d0 AND date < $d1 \
               AND {EPOCH_S} >= $t0 AND {EPOCH_S} < $t1 \
             GROUP BY 1 ORDER BY 1",
            failed = failed_statuses(),
        );
        let (d0, d1) = days_of(start, end);
        let params = vec![
            ("provider".to_owned(), text(provider)),
            ("d0".to_owned(), text(d0)),
            ("d1".to_owned(), text(d1)),
            ("t0".to_owned(), int(start)),
            ("t1".to_owned(), int(end)),
        ];
        let mut out = Vec::new();
        for b in self.sql_with_params(&sql, params).await? {
            for row in 0..b.num_rows() {
                out.push(MinuteCounts {
                    minute: i64::try_from(u64_at(&b, "minute", row)?).unwrap_or(i64::MAX),
                    attempts: u64_at(&b, "attempts", row)?,
                    failed: u64_at(&b, "failed", row)?,
                });
            }
        }
        Ok(out)
    }

    /// `span` as a published incident, or `None` when the rule of the module docs forbids it.
    async fn published_incident(
        &self,
        provider: &str,
        span: Span,
    ) -> Result<Option<Incident>, QueryError> {
        // One pass over the provider's attempts of the span's days. Failed attempts count only in
        // failure units (day, task, model, status) of enough apps, as everywhere else: their
        // apps and count inside the span (`whole_side` 1), inside it per model (`whole_side` 0)
        // and outside it; and the attempts inside it that did not fail (`side` 'served').
        let sql = format!(
            "WITH rows AS (\
               SELECT date, task, model, status, app_id, status IN ({failed}) AS is_failed, \
                 ({EPOCH_S} >= $t0 AND {EPOCH_S} < $t1) AS in_span \
               FROM events WHERE provider = $provider AND date >= $d0 AND date < $d1 \
                 AND (status IN ({failed}) OR ({EPOCH_S} >= $t0 AND {EPOCH_S} < $t1))), \
             units AS (\
               SELECT date, task, model, status FROM rows WHERE is_failed \
               GROUP BY date, task, model, status HAVING {publishable}) \
             SELECT side, model, CAST(grouping(model) AS BIGINT) AS whole_side, \
               count(DISTINCT app_id) AS apps, count(*) AS n \
             FROM (SELECT CASE WHEN r.in_span THEN 'inside' ELSE 'outside' END AS side, \
                     r.model, r.app_id \
                   FROM rows r JOIN units u ON r.date = u.date AND r.task = u.task \
                     AND r.model = u.model AND r.status = u.status \
                   WHERE r.is_failed \
                   UNION ALL \
                   SELECT 'served' AS side, model, app_id FROM rows WHERE NOT is_failed) \
             GROUP BY GROUPING SETS ((side), (side, model))",
            failed = failed_statuses(),
            publishable = publishable_sql("count(DISTINCT app_id)"),
        );
        let (d0, d1) = days_of(span.start, span.end);
        let min_apps = self.config().min_apps;
        let params = vec![
            ("provider".to_owned(), text(provider)),
            ("d0".to_owned(), text(d0)),
            ("d1".to_owned(), text(d1)),
            ("t0".to_owned(), int(span.start)),
            ("t1".to_owned(), int(span.end)),
            min_apps_param(min_apps),
        ];
        let (mut inside, mut outside_apps, mut served) = ((0, 0), 0, (0, 0));
        let mut models: Vec<(u64, String)> = Vec::new();
        for b in self.sql_with_params(&sql, params).await? {
            for row in 0..b.num_rows() {
                let apps = u64_at(&b, "apps", row)?;
                let n = u64_at(&b, "n", row)?;
                let side = str_at(&b, "side", row)?;
                let whole_side = u64_at(&b, "whole_side", row)? == 1;
                match (whole_side, side) {
                    (true, "inside") => inside = (apps, n),
                    (true, "outside") => outside_apps = apps,
                    (true, _) => served = (apps, n),
                    (false, "inside") if publishable(apps, min_apps) => {
                        models.push((n, str_at(&b, "model", row)?.to_owned()));
                    }
                    (false, _) => {}
                }
            }
        }
        let (inside_apps, failed) = inside;
        if !publishable(inside_apps, min_apps)
            || !none_or_publishable(outside_apps, min_apps)
            || failed < MIN_INCIDENT_FAILURES
        {
            return Ok(None);
        }
        models.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        let at = |s: i64| DateTime::from_timestamp(s, 0).unwrap_or_default();
        Ok(Some(Incident {
            provider: provider.to_owned(),
            start: at(span.start),
            end: at(span.end),
            failed_attempts: failed,
            attempts: none_or_publishable(served.0, min_apps).then_some(failed + served.1),
            affected_models: models.into_iter().map(|(_, m)| m).collect(),
        }))
    }
}

/// Unix seconds at the start of `day`.
fn day_start(day: NaiveDate) -> i64 {
    day.and_hms_opt(0, 0, 0)
        .map_or(0, |t| t.and_utc().timestamp())
}

/// Runs of candidate hours per provider, `(provider, start, end)` in Unix seconds: hours at
/// most two hours apart join, so the runs' windows, widened by an hour on both sides, never
/// overlap.
fn hour_runs(hours: &[(String, i64)]) -> Vec<(String, i64, i64)> {
    let mut runs: Vec<(String, i64, i64)> = Vec::new();
    for (provider, hour) in hours {
        match runs.last_mut() {
            Some((p, _, end)) if p == provider && *end + 2 * HOUR >= *hour => *end = hour + HOUR,
            _ => runs.push((provider.clone(), *hour, hour + HOUR)),
        }
    }
    runs
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn m(minute: i64, attempts: u64, failed: u64) -> MinuteCounts {
        MinuteCounts {
            minute: minute * MINUTE,
            attempts,
            failed,
        }
    }

    #[test]
    fn failing_minutes_join_across_quiet_gaps_and_short_served_ones() {
        let minutes = [
            m(0, 10, 0),
            m(1, 2, 1),  // failing (1 of 2)
            m(2, 4, 4),  // failing
            m(10, 3, 3), // after 7 quiet minutes: same incident
            m(11, 5, 0), // served
            m(12, 5, 0), // served: a gap of 2 still joins
            m(13, 2, 2),
            m(14, 6, 0),
            m(15, 6, 0),
            m(16, 6, 0), // a third served minute closes it
            m(20, 1, 1), // a lone failure: too few to report
        ];
        assert_eq!(
            incident_spans(&minutes),
            vec![Span {
                start: MINUTE,
                end: 14 * MINUTE,
                attempts: 2 + 4 + 3 + 5 + 5 + 2,
                failed: 1 + 4 + 3 + 2,
            }]
        );
        assert_eq!(incident_spans(&[m(0, 9, 9)]), vec![]);
        assert_eq!(incident_spans(&[]), vec![]);
    }

    #[test]
    fn candidate_hours_form_runs_per_provider() {
        let h = |p: &str, n: i64| (p.to_owned(), n * HOUR);
        assert_eq!(
            hour_runs(&[h("a", 1), h("a", 2), h("a", 4), h("a", 8), h("b", 8)]),
            vec![
                ("a".to_owned(), HOUR, 5 * HOUR),
                ("a".to_owned(), 8 * HOUR, 9 * HOUR),
                ("b".to_owned(), 8 * HOUR, 9 * HOUR),
            ]
        );
    }
}
