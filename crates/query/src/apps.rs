//! Per-app rows for the analyses (retention, switches, the index): what each app chose per task,
//! model and week or day — its untraced calls and the first call of each agent trace, not the
//! calls an agent makes after that (they follow the first call's plan, not a choice) — in all
//! context segments or in one. These rows never leave the server; the analyses publish only
//! groups that pass the publication rule. Also the lake's latest day, which pages default to.

use crate::QueryError;
use crate::engine::{FileTable, QueryEngine, ScalarValue};
use crate::fragments::{CHOICE_EVENTS, CHOICE_ROWS, OK_ROWS, USES, WEEK_OF_DATE, context_code};
use arrow::array::RecordBatch;
use chrono::NaiveDate;
use modelshare_event::{Context, Task};

fn text(s: impl ToString) -> ScalarValue {
    ScalarValue::Utf8(Some(s.to_string()))
}

/// The filter on task and context segment, and its parameters.
fn slice_filter(
    task: Option<Task>,
    context: Option<Context>,
    params: &mut Vec<(String, ScalarValue)>,
) -> String {
    let mut filter = String::new();
    if let Some(t) = task {
        params.push(("task".to_owned(), text(t.as_str())));
        filter.push_str(" AND task = $task");
    }
    if let Some(c) = context {
        params.push(("context".to_owned(), ScalarValue::UInt8(Some(c.code()))));
        filter.push_str(" AND context = $context");
    }
    filter
}

impl QueryEngine {
    /// Rows (week, app_id, task, model, requests, tokens, cost_usd) of successful requests:
    /// from `rollup` (app-week rollup files, already per week) and from `cell_apps` for the days
    /// `[start, end)` of `ranges`, grouped by week. A key can come in several rows (one per
    /// context segment of the rollup): they add up.
    pub async fn app_weeks(
        &self,
        task: Option<Task>,
        context: Option<Context>,
        rollup: Option<FileTable>,
        ranges: &[(NaiveDate, NaiveDate)],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let mut params = Vec::new();
        let task = slice_filter(task, context, &mut params);
        let mut branches = Vec::new();
        if let Some(rollup) = &rollup {
            branches.push(format!(
                "SELECT week, app_id, task, model, requests, \
                 input_tokens + output_tokens AS tokens, cost_usd \
                 FROM {} WHERE true{task}",
                rollup.name
            ));
        }
        if !ranges.is_empty() {
            let mut dates = Vec::new();
            for (i, (start, end)) in ranges.iter().enumerate() {
                dates.push(format!("(date >= $s{i} AND date < $e{i})"));
                params.push((format!("s{i}"), text(start)));
                params.push((format!("e{i}"), text(end)));
            }
            branches.push(format!(
                "SELECT {WEEK_OF_DATE} AS week, app_id, task, model, {USES} \
                 FROM cell_apps WHERE ({dates}) AND {CHOICE_ROWS}{task} \
                 GROUP BY 1, app_id, task, model",
                dates = dates.join(" OR "),
            ));
        }
        if branches.is_empty() {
            return Ok(Vec::new());
        }
        let tables: Vec<FileTable> = rollup.into_iter().collect();
        self.sql_with_tables_and_params(&branches.join(" UNION ALL "), params, &tables)
            .await
    }

    /// Rows (date, app_id, task, model, requests, tokens, cost_usd) of successful requests on
    /// the days `[start, end)`.
    pub async fn app_days(
        &self,
        task: Option<Task>,
        context: Option<Context>,
        start: NaiveDate,
        end: NaiveDate,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let mut params = vec![
            ("start".to_owned(), text(start)),
            ("end".to_owned(), text(end)),
        ];
        let task = slice_filter(task, context, &mut params);
        let sql = format!(
            "SELECT date, app_id, task, model, {USES} \
             FROM cell_apps WHERE date >= $start AND date < $end AND {CHOICE_ROWS}{task} \
             GROUP BY date, app_id, task, model"
        );
        self.sql_with_params(&sql, params).await
    }

    /// The latest day with events (live rows included), or `None` for an empty lake.
    pub async fn latest_date(&self) -> Result<Option<NaiveDate>, QueryError> {
        for b in self.sql("SELECT max(date) AS d FROM events").await? {
            if b.num_rows() > 0 {
                let d = crate::values::str_at(&b, "d", 0)?;
                if !d.is_empty() {
                    return Ok(d.parse().ok());
                }
            }
        }
        Ok(None)
    }

    /// The app-week rollup rows of the week of Monday `week` (week, app_id, task, model,
    /// context, requests, input_tokens, output_tokens, cost_usd), from the lake's Parquet files only,
    /// never live rows: a rollup is a function of the files it lists, so a later flush into
    /// its week shows as a change of its sources.
    pub async fn app_week_rollup(&self, week: NaiveDate) -> Result<Vec<RecordBatch>, QueryError> {
        let end = week + chrono::Days::new(7);
        let sql = format!(
            "SELECT $week AS week, app_id, task, model, {context} AS context, \
             count(*) AS requests, \
             sum(CAST(input_tokens AS BIGINT)) AS input_tokens, \
             sum(CAST(output_tokens AS BIGINT)) AS output_tokens, \
             CAST(sum(cost_usd) AS DECIMAL(18, 6)) AS cost_usd \
             FROM lake WHERE date >= $week AND date < $end AND {OK_ROWS} AND {CHOICE_EVENTS} \
             GROUP BY app_id, task, model, context ORDER BY task, model, app_id, context",
            context = context_code(),
        );
        let params = vec![
            ("week".to_owned(), text(week)),
            ("end".to_owned(), text(end)),
        ];
        self.sql_with_params(&sql, params).await
    }
}
