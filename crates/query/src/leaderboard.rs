//! The leaderboard: models (or authors) of a period ranked by tokens, requests, spend or apps.
//!
//! Only `status = 'ok'` requests count. A group is published only when at least `min_apps`
//! distinct apps used it in the period; the rest, and everything beyond `limit`, is one `other`
//! row, so published shares of tokens, requests and spend add up to 1.

use crate::QueryError;
use crate::engine::{QueryEngine, sql_literal};
use crate::period::Period;
use crate::values::{micro_usd_at, str_at, u64_at};
use modelshare_event::{MicroUsd, Task};
use serde::Serialize;
use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

/// What share is measured in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Measure {
    Tokens,
    Requests,
    Spend,
    Apps,
}

impl FromStr for Measure {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "tokens" => Ok(Measure::Tokens),
            "requests" => Ok(Measure::Requests),
            "spend" => Ok(Measure::Spend),
            "apps" => Ok(Measure::Apps),
            _ => Err(format!(
                "unknown measure {s:?}; accepted: tokens, requests, spend, apps"
            )),
        }
    }
}

impl fmt::Display for Measure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Measure::Tokens => "tokens",
            Measure::Requests => "requests",
            Measure::Spend => "spend",
            Measure::Apps => "apps",
        })
    }
}

/// What rows are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GroupBy {
    Model,
    Author,
}

impl GroupBy {
    pub(crate) fn sql(self) -> &'static str {
        match self {
            GroupBy::Model => "model",
            GroupBy::Author => "split_part(model, '/', 1)",
        }
    }
}

/// The figures of one group (or of a whole period).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Figures {
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub requests: u64,
    pub apps: u64,
    pub cost: MicroUsd,
}

impl Figures {
    pub fn tokens(&self) -> u64 {
        self.input_tokens + self.output_tokens
    }

    /// The value of `measure` (spend in micro-USD).
    pub fn measure(&self, measure: Measure) -> u64 {
        match measure {
            Measure::Tokens => self.tokens(),
            Measure::Requests => self.requests,
            Measure::Spend => self.cost.0.max(0) as u64,
            Measure::Apps => self.apps,
        }
    }

    /// Blended price: spend per million tokens.
    pub fn usd_per_mtok(&self) -> Option<f64> {
        (self.tokens() > 0).then(|| self.cost.as_usd() * 1e6 / self.tokens() as f64)
    }

    fn minus(&self, other: &Figures) -> Figures {
        Figures {
            input_tokens: self.input_tokens.saturating_sub(other.input_tokens),
            output_tokens: self.output_tokens.saturating_sub(other.output_tokens),
            requests: self.requests.saturating_sub(other.requests),
            apps: self.apps,
            cost: MicroUsd(self.cost.0 - other.cost.0),
        }
    }

    pub(crate) fn plus(&self, other: &Figures) -> Figures {
        Figures {
            input_tokens: self.input_tokens + other.input_tokens,
            output_tokens: self.output_tokens + other.output_tokens,
            requests: self.requests + other.requests,
            apps: self.apps,
            cost: MicroUsd(self.cost.0 + other.cost.0),
        }
    }
}

/// Period totals.
pub type Totals = Figures;

/// One leaderboard row.
#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// 1-based; `None` for `other`.
    pub rank: Option<u32>,
    /// The model slug or author (`other` for the folded rest).
    pub key: String,
    pub figures: Figures,
    pub share: f64,
    pub previous_share: Option<f64>,
}

impl Row {
    pub fn share_change(&self) -> Option<f64> {
        self.previous_share.map(|p| self.share - p)
    }
}

/// A leaderboard request.
#[derive(Debug, Clone)]
pub struct LeaderboardQuery {
    pub period: Period,
    pub task: Option<Task>,
    pub by: Measure,
    pub group: GroupBy,
    pub limit: usize,
}

/// A leaderboard answer.
#[derive(Debug, Clone)]
pub struct Leaderboard {
    pub query: LeaderboardQuery,
    pub totals: Totals,
    /// Ranked rows, then `other` when anything was folded.
    pub rows: Vec<Row>,
}

/// The `WHERE` clause shared by every usage query.
pub(crate) fn usage_filter(date_predicate: &str, task: Option<Task>) -> String {
    let mut f = format!("status = 'ok' AND {date_predicate}");
    if let Some(t) = task {
        f.push_str(&format!(" AND task = {}", sql_literal(t.as_str())));
    }
    f
}

/// The aggregate columns every usage query selects.
pub(crate) const FIGURES_SQL: &str = "sum(CAST(input_tokens AS BIGINT)) AS input_tokens, \
     sum(CAST(output_tokens AS BIGINT)) AS output_tokens, \
     count(*) AS requests, count(DISTINCT app_id) AS apps, sum(cost_usd) AS cost";

pub(crate) fn figures_at(
    batch: &arrow::array::RecordBatch,
    row: usize,
) -> Result<Figures, QueryError> {
    Ok(Figures {
        input_tokens: u64_at(batch, "input_tokens", row)?,
        output_tokens: u64_at(batch, "output_tokens", row)?,
        requests: u64_at(batch, "requests", row)?,
        apps: u64_at(batch, "apps", row)?,
        cost: micro_usd_at(batch, "cost", row)?,
    })
}

pub(crate) fn share_of(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

impl QueryEngine {
    /// Figures per group over the days `date_predicate` selects.
    pub(crate) async fn figures_by(
        &self,
        group: GroupBy,
        date_predicate: &str,
        task: Option<Task>,
    ) -> Result<HashMap<String, Figures>, QueryError> {
        let sql = format!(
            "SELECT {key} AS key, {FIGURES_SQL} FROM events WHERE {filter} GROUP BY 1",
            key = group.sql(),
            filter = usage_filter(date_predicate, task),
        );
        let mut out = HashMap::new();
        for batch in self.sql(&sql).await? {
            for row in 0..batch.num_rows() {
                out.insert(
                    str_at(&batch, "key", row)?.to_owned(),
                    figures_at(&batch, row)?,
                );
            }
        }
        Ok(out)
    }

    /// Figures of everything matching `filter` (totals, or the folded rest).
    pub(crate) async fn figures_where(&self, filter: &str) -> Result<Figures, QueryError> {
        let sql = format!("SELECT {FIGURES_SQL} FROM events WHERE {filter}");
        let batches = self.sql(&sql).await?;
        match batches.iter().find(|b| b.num_rows() > 0) {
            Some(b) => figures_at(b, 0),
            None => Ok(Figures::default()),
        }
    }

    /// Answers a leaderboard request.
    pub async fn leaderboard(&self, q: LeaderboardQuery) -> Result<Leaderboard, QueryError> {
        let min_apps = self.config().min_apps;
        let previous = q.period.previous();
        let (dates, prev_dates) = (q.period.date_predicate(), previous.date_predicate());
        let filter = usage_filter(&dates, q.task);
        let prev_filter = usage_filter(&prev_dates, q.task);
        let (groups, totals, prev_groups, prev_totals) = tokio::try_join!(
            self.figures_by(q.group, &dates, q.task),
            self.figures_where(&filter),
            self.figures_by(q.group, &prev_dates, q.task),
            self.figures_where(&prev_filter),
        )?;

        let mut eligible: Vec<(&String, &Figures)> =
            groups.iter().filter(|(_, f)| f.apps >= min_apps).collect();
        eligible.sort_by(|a, b| {
            b.1.measure(q.by)
                .cmp(&a.1.measure(q.by))
                .then(b.1.tokens().cmp(&a.1.tokens()))
                .then(a.0.cmp(b.0))
        });
        eligible.truncate(q.limit);

        let mut rows = Vec::with_capacity(eligible.len() + 1);
        let mut listed = Figures::default();
        for (i, (key, fig)) in eligible.iter().enumerate() {
            listed = listed.plus(fig);
            let previous_share = prev_groups
                .get(*key)
                .filter(|p| p.apps >= min_apps)
                .map(|p| share_of(p.measure(q.by), prev_totals.measure(q.by)));
            rows.push(Row {
                rank: Some(i as u32 + 1),
                key: (*key).clone(),
                figures: **fig,
                share: share_of(fig.measure(q.by), totals.measure(q.by)),
                previous_share,
            });
        }
        if groups.len() > rows.len() {
            // Distinct apps do not subtract; count them for the folded rest directly.
            let keys: Vec<String> = rows.iter().map(|r| sql_literal(&r.key)).collect();
            let rest_filter = if keys.is_empty() {
                filter.clone()
            } else {
                format!(
                    "{filter} AND {} NOT IN ({})",
                    q.group.sql(),
                    keys.join(", ")
                )
            };
            let rest_apps = self.figures_where(&rest_filter).await?.apps;
            let mut rest = totals.minus(&listed);
            rest.apps = rest_apps;
            rows.push(Row {
                rank: None,
                key: "other".to_owned(),
                figures: rest,
                share: share_of(rest.measure(q.by), totals.measure(q.by)),
                previous_share: None,
            });
        }
        Ok(Leaderboard {
            query: q,
            totals,
            rows,
        })
    }
}
