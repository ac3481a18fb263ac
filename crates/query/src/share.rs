//! Share over time: per day or ISO week, the share of the top models, the rest as `other`.
//!
//! Every figure is a sum over publishable groups (see [`crate::privacy`]): a model's value in
//! a bucket covers its publishable groups there, 0 when it has none; the bucket's total (the
//! denominator) covers all of them; `other`, listed only when it is not empty, is the difference.

use crate::QueryError;
use crate::engine::QueryEngine;
use crate::leaderboard::{Figures, Measure, share_of};
use crate::period::week_start;
use crate::privacy::{Apps, Dim, Except, Group, Scope};
use chrono::{Days, NaiveDate};
use modelshare_event::{Context, Task};
use serde::Serialize;
use std::collections::HashMap;
use std::str::FromStr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Granularity {
    Day,
    Week,
}

impl FromStr for Granularity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "day" => Ok(Granularity::Day),
            "week" => Ok(Granularity::Week),
            _ => Err(format!("unknown granularity {s:?}; accepted: day, week")),
        }
    }
}

/// A share-over-time request; `from` and `to` are inclusive days (widened to whole weeks).
#[derive(Debug, Clone)]
pub struct ShareQuery {
    pub task: Option<Task>,
    /// One context segment: the sums of its publishable groups.
    pub context: Option<Context>,
    pub by: Measure,
    pub granularity: Granularity,
    pub from: NaiveDate,
    pub to: NaiveDate,
    pub top: usize,
}

/// One series: a model (or `other`) across the buckets.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareSeries {
    pub key: String,
    pub share: Vec<Option<f64>>,
    pub tokens: Vec<Option<u64>>,
}

/// The answer: bucket start dates and one series per top model, then `other`.
#[derive(Debug, Clone)]
pub struct ShareSeriesSet {
    pub granularity: Granularity,
    pub buckets: Vec<NaiveDate>,
    pub series: Vec<ShareSeries>,
}

impl ShareQuery {
    /// The bucket starts covering `from..=to`.
    pub fn buckets(&self) -> Vec<NaiveDate> {
        let (first, step) = match self.granularity {
            Granularity::Day => (self.from, 1),
            Granularity::Week => (week_start(self.from), 7),
        };
        let mut out = Vec::new();
        let mut d = first;
        while d <= self.to {
            out.push(d);
            d = d + Days::new(step);
        }
        out
    }

    fn bucket_dim(&self) -> Dim {
        match self.granularity {
            Granularity::Day => Dim::Day,
            Granularity::Week => Dim::Week,
        }
    }
}

impl QueryEngine {
    /// Answers a share-over-time request.
    pub async fn share(&self, q: ShareQuery) -> Result<ShareSeriesSet, QueryError> {
        let buckets = q.buckets();
        let (Some(first), Some(last)) = (buckets.first(), buckets.last()) else {
            return Ok(ShareSeriesSet {
                granularity: q.granularity,
                buckets,
                series: vec![],
            });
        };
        let end = match q.granularity {
            Granularity::Day => *last + Days::new(1),
            Granularity::Week => *last + Days::new(7),
        };
        let scope = Scope::days(*first, end)
            .with_task(q.task)
            .with_context(q.context);
        let bucket = q.bucket_dim();
        // Distinct apps cost a pass over the apps of every published cell: only when ranked by.
        let apps = if q.by == Measure::Apps {
            Apps::Counted
        } else {
            Apps::NotCounted
        };
        let [cells, totals, overall]: [Vec<Group>; 3] = self
            .published_sets_counting(
                &scope,
                &[&[bucket, Dim::Model], &[bucket], &[Dim::Model]],
                apps,
            )
            .await?
            .try_into()
            .map_err(|_| QueryError::Shape("three grouping sets expected".into()))?;
        let overall: HashMap<String, Figures> = overall
            .into_iter()
            .filter_map(|(mut key, f)| key.pop().map(|k| (k, f)))
            .collect();

        let index: HashMap<String, usize> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (b.to_string(), i))
            .collect();
        let mut bucket_totals = vec![Figures::default(); buckets.len()];
        for (key, f) in &totals {
            if let Some(&i) = key.first().and_then(|b| index.get(b)) {
                bucket_totals[i] = *f;
            }
        }
        let mut by_model: HashMap<&str, Vec<Figures>> = HashMap::new();
        for (key, f) in &cells {
            if let [b, model] = key.as_slice()
                && let Some(&i) = index.get(b)
            {
                by_model
                    .entry(model.as_str())
                    .or_insert_with(|| vec![Figures::default(); buckets.len()])[i] = *f;
            }
        }

        // Figures come from publishable groups only: a model's value in a bucket is the sum of
        // its publishable groups there (0 when it has none), and `other` is the bucket's
        // publishable groups of the models not shown.
        let mut top: Vec<(&String, &Figures)> = overall.iter().collect();
        top.sort_by(|a, b| b.1.measure(q.by).cmp(&a.1.measure(q.by)).then(a.0.cmp(b.0)));
        top.truncate(q.top);

        let empty = vec![Figures::default(); buckets.len()];
        let mut shown = vec![Figures::default(); buckets.len()];
        let mut series = Vec::with_capacity(top.len() + 1);
        for (key, _) in &top {
            let cells = by_model.get(key.as_str()).unwrap_or(&empty);
            let mut s = ShareSeries {
                key: (*key).clone(),
                share: vec![],
                tokens: vec![],
            };
            for (i, total) in bucket_totals.iter().enumerate() {
                let f = cells[i];
                shown[i] = shown[i].plus(&f);
                s.share
                    .push(Some(share_of(f.measure(q.by), total.measure(q.by))));
                s.tokens.push(Some(f.tokens()));
            }
            series.push(s);
        }

        let other_apps = if q.by == Measure::Apps {
            let keys: Vec<String> = top.iter().map(|(k, _)| (*k).clone()).collect();
            let except = Except {
                dim: Dim::Model,
                keys: &keys,
            };
            let mut apps = vec![0u64; buckets.len()];
            for (key, f) in self
                .published_except(&scope, &[bucket], Some(except))
                .await?
            {
                if let Some(&i) = key.first().and_then(|b| index.get(b)) {
                    apps[i] = f.apps;
                }
            }
            Some(apps)
        } else {
            None
        };
        let mut other = ShareSeries {
            key: "other".to_owned(),
            share: vec![],
            tokens: vec![],
        };
        let mut other_is_empty = true;
        for (i, total) in bucket_totals.iter().enumerate() {
            let rest = total.minus(&shown[i]);
            let value = match &other_apps {
                Some(apps) => apps[i],
                None => rest.measure(q.by),
            };
            other_is_empty &= value == 0 && rest.tokens() == 0;
            other.share.push(Some(share_of(value, total.measure(q.by))));
            other.tokens.push(Some(rest.tokens()));
        }
        if !other_is_empty {
            series.push(other);
        }
        Ok(ShareSeriesSet {
            granularity: q.granularity,
            buckets,
            series,
        })
    }
}
