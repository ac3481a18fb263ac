//! SQL fragments more than one query shares, so each rule is written once.

use crate::engine::ScalarValue;
use modelshare_event::Status;
use modelshare_event::context::CONTEXT_BOUNDS;

/// The rows of successful requests: the only ones any usage figure counts.
pub(crate) const OK_ROWS: &str = "status = 'ok'";

/// The statuses of a failed attempt, as an SQL list (`status IN (…)`): what counts against a
/// provider's uptime and makes an incident. Other outcomes (cancelled, filtered, rate limited)
/// are answers.
pub(crate) fn failed_statuses() -> String {
    [Status::Error, Status::Timeout]
        .iter()
        .map(|s| format!("'{}'", s.as_str()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A call's position in its agent trace on event rows (the app-day cube's `position` key): 0 for
/// a call without a step (untraced), 1 for the first call of a trace (`step = 0`), 2 for the
/// calls after it (`step > 0`). Usage counts every call; what an app *chooses* is read from the
/// first two ([`CHOICE_ROWS`] on `cell_apps`, [`CHOICE_EVENTS`] on events).
pub(crate) const POSITION: &str =
    "CAST(CASE WHEN step > 0 THEN 2 WHEN step = 0 THEN 1 ELSE 0 END AS TINYINT UNSIGNED)";

/// The context segment's code ([`modelshare_event::Context::code`]) of event rows, from their
/// input tokens: the app-day cube's `context` key.
pub(crate) fn context_code() -> String {
    let mut sql = String::from("CAST(CASE");
    for (i, bound) in CONTEXT_BOUNDS.iter().enumerate().rev() {
        sql.push_str(&format!(" WHEN input_tokens >= {bound} THEN {}", i + 1));
    }
    sql.push_str(" ELSE 0 END AS TINYINT UNSIGNED)");
    sql
}

/// 1 for a request served after another attempt failed (`attempt > 0`), 0 for a first choice:
/// the `fallback` key of a group of the publication rule (`crate::privacy`).
pub(crate) const FALLBACK: &str =
    "CAST(CASE WHEN attempt > 0 THEN 1 ELSE 0 END AS TINYINT UNSIGNED)";

/// The `cell_apps` rows of calls an app chose a model for: untraced calls and the first call of
/// each trace.
pub(crate) const CHOICE_ROWS: &str = "position < 2";

/// [`CHOICE_ROWS`] on event rows.
pub(crate) const CHOICE_EVENTS: &str = "(step IS NULL OR step = 0)";

/// Binds `values` as the text parameters `$<name>0`, `$<name>1`, … and returns their
/// placeholder list, for `column IN (…)` (values never enter the SQL text).
pub(crate) fn bound_list<'a>(
    name: &str,
    values: impl IntoIterator<Item = &'a str>,
    params: &mut Vec<(String, ScalarValue)>,
) -> String {
    let mut list = Vec::new();
    for (i, v) in values.into_iter().enumerate() {
        list.push(format!("${name}{i}"));
        params.push((format!("{name}{i}"), ScalarValue::Utf8(Some(v.to_owned()))));
    }
    list.join(", ")
}

/// The ISO week of a row, from its `date` partition column: the Monday, `YYYY-MM-DD` (one
/// value per file, not per row).
pub(crate) const WEEK_OF_DATE: &str =
    "CAST(CAST(date_trunc('week', CAST(date AS DATE)) AS DATE) AS VARCHAR)";

/// Requests, tokens and spend of a group of `cell_apps` rows (or of app-week rollup rows).
pub(crate) const USES: &str = "sum(requests) AS requests, \
     sum(input_tokens + output_tokens) AS tokens, \
     CAST(sum(cost_usd) AS DECIMAL(18, 6)) AS cost_usd";
