//! The leaderboard: models (or authors) of a period ranked by tokens, requests, spend or apps.
//!
//! Every figure, the totals included, is computed from the publishable groups of the period
//! only (see [`crate::privacy`]). The groups beyond `limit` are one `other` row, shown when it is
//! not empty, so published shares of tokens, requests and spend add up to 1.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::period::Period;
use crate::privacy::{Apps, BEFORE, Dim, Group, SINCE, Scope};
use modelshare_event::{Context, MicroUsd, Task};
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
    pub(crate) fn dim(self) -> Dim {
        match self {
            GroupBy::Model => Dim::Model,
            GroupBy::Author => Dim::Author,
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

    pub(crate) fn minus(&self, other: &Figures) -> Figures {
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
    /// The model slug or author (`other` for the groups beyond the limit).
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
    /// One context segment: the sums of its publishable groups.
    pub context: Option<Context>,
    pub by: Measure,
    pub group: GroupBy,
    pub limit: usize,
}

/// A leaderboard answer.
#[derive(Debug, Clone)]
pub struct Leaderboard {
    pub query: LeaderboardQuery,
    pub totals: Totals,
    /// Ranked rows, then `other` when groups beyond the limit have figures.
    pub rows: Vec<Row>,
}

pub(crate) fn share_of(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 / whole as f64
    }
}

/// Figures per model or author.
type ByGroup = HashMap<String, Figures>;

impl QueryEngine {
    /// Groups and totals of the period and of the one before, in one pass over both: cells are
    /// days, so the two periods' publishable groups are those of their union. Distinct apps are
    /// counted here only when they rank (the previous shares need them then).
    async fn with_previous(
        &self,
        q: &LeaderboardQuery,
    ) -> Result<(ByGroup, Figures, ByGroup, Figures), QueryError> {
        let both = Scope::days(q.period.previous().start, q.period.end)
            .with_task(q.task)
            .with_context(q.context);
        let half = Dim::Since(q.period.start);
        let [by_group, by_half]: [Vec<Group>; 2] = self
            .published_sets_counting(
                &both,
                &[&[half, q.group.dim()], &[half]],
                if q.by == Measure::Apps {
                    Apps::Counted
                } else {
                    Apps::NotCounted
                },
            )
            .await?
            .try_into()
            .map_err(|_| QueryError::Shape("two grouping sets expected".into()))?;
        let (mut groups, mut previous) = (HashMap::new(), HashMap::new());
        for (key, f) in by_group {
            if let [h, k] = key.as_slice() {
                let into = if h == SINCE {
                    &mut groups
                } else {
                    &mut previous
                };
                into.insert(k.clone(), f);
            }
        }
        let (mut totals, mut prev_totals) = (Figures::default(), Figures::default());
        for (key, f) in by_half {
            match key.first().map(String::as_str) {
                Some(SINCE) => totals = f,
                Some(BEFORE) => prev_totals = f,
                _ => {}
            }
        }
        Ok((groups, totals, previous, prev_totals))
    }

    /// Answers a leaderboard request.
    pub async fn leaderboard(&self, q: LeaderboardQuery) -> Result<Leaderboard, QueryError> {
        let scope = Scope::period(&q.period, q.task).with_context(q.context);
        let (groups, mut totals, prev_groups, prev_totals) = self.with_previous(&q).await?;

        // Every row is made of publishable groups only, so every row may be listed.
        let mut ranked: Vec<(&String, &Figures)> = groups.iter().collect();
        ranked.sort_by(|a, b| {
            b.1.measure(q.by)
                .cmp(&a.1.measure(q.by))
                .then(b.1.tokens().cmp(&a.1.tokens()))
                .then(a.0.cmp(b.0))
        });
        ranked.truncate(q.limit);

        // Distinct apps of the listed rows, of `other` and of the period, in one pass over the
        // period's presence rows. `other` is the publishable groups of the rows beyond the
        // limit: whole groups, so it covers at least `min_apps` apps.
        let keys: Vec<String> = ranked.iter().map(|(k, _)| (*k).clone()).collect();
        let apps = self
            .published_apps_kept(&scope, q.group.dim(), &keys)
            .await?;
        totals.apps = apps.total;

        let mut rows = Vec::with_capacity(ranked.len() + 1);
        let mut listed = Figures::default();
        for (i, (key, fig)) in ranked.iter().enumerate() {
            listed = listed.plus(fig);
            let previous_share = prev_groups
                .get(*key)
                .map(|p| share_of(p.measure(q.by), prev_totals.measure(q.by)));
            let figures = Figures {
                apps: apps.kept.get(*key).copied().unwrap_or(0),
                ..**fig
            };
            rows.push(Row {
                rank: Some(i as u32 + 1),
                key: (*key).clone(),
                figures,
                share: share_of(figures.measure(q.by), totals.measure(q.by)),
                previous_share,
            });
        }
        if groups.len() > rows.len() {
            let mut rest = totals.minus(&listed);
            rest.apps = apps.rest;
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
