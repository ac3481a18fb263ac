//! Share over time: per day or ISO week, the share of the top models, the rest as `other`.
//!
//! Privacy applies per cell: a model's figure in a bucket where fewer than `min_apps` apps used
//! it is not published (`null`) and counts towards `other` instead.

use crate::QueryError;
use crate::engine::{QueryEngine, sql_literal};
use crate::leaderboard::{
    FIGURES_SQL, Figures, GroupBy, Measure, figures_at, share_of, usage_filter,
};
use crate::period::{date_range_predicate, week_start};
use crate::values::str_at;
use chrono::{Days, NaiveDate};
use modelshare_event::Task;
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

    fn bucket_sql(&self) -> &'static str {
        match self.granularity {
            Granularity::Day => "date",
            // From the `date` partition column, not `ts`: one value per file instead of per
            // row, which halves the time of a 12-week share query.
            Granularity::Week => {
                "CAST(CAST(date_trunc('week', CAST(date AS DATE)) AS DATE) AS VARCHAR)"
            }
        }
    }
}

impl QueryEngine {
    /// Answers a share-over-time request.
    pub async fn share(&self, q: ShareQuery) -> Result<ShareSeriesSet, QueryError> {
        let min_apps = self.config().min_apps;
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
        let dates = date_range_predicate(*first, end);
        let filter = usage_filter(&dates, q.task);
        let bucket = q.bucket_sql();
        let cells_sql = format!(
            "SELECT {bucket} AS bucket, model AS key, {FIGURES_SQL} FROM events WHERE {filter} GROUP BY 1, 2"
        );
        let totals_sql = format!(
            "SELECT {bucket} AS bucket, {FIGURES_SQL} FROM events WHERE {filter} GROUP BY 1"
        );
        let (cells, totals, overall) = tokio::try_join!(
            self.sql(&cells_sql),
            self.sql(&totals_sql),
            self.figures_by(GroupBy::Model, &dates, q.task),
        )?;

        let index: HashMap<String, usize> = buckets
            .iter()
            .enumerate()
            .map(|(i, b)| (b.to_string(), i))
            .collect();
        let mut bucket_totals = vec![Figures::default(); buckets.len()];
        for batch in &totals {
            for row in 0..batch.num_rows() {
                if let Some(&i) = index.get(str_at(batch, "bucket", row)?) {
                    bucket_totals[i] = figures_at(batch, row)?;
                }
            }
        }
        let mut by_model: HashMap<String, Vec<Option<Figures>>> = HashMap::new();
        for batch in &cells {
            for row in 0..batch.num_rows() {
                if let Some(&i) = index.get(str_at(batch, "bucket", row)?) {
                    let key = str_at(batch, "key", row)?.to_owned();
                    let cells = by_model
                        .entry(key)
                        .or_insert_with(|| vec![None; buckets.len()]);
                    cells[i] = Some(figures_at(batch, row)?);
                }
            }
        }

        let mut top: Vec<(&String, &Figures)> =
            overall.iter().filter(|(_, f)| f.apps >= min_apps).collect();
        top.sort_by(|a, b| b.1.measure(q.by).cmp(&a.1.measure(q.by)).then(a.0.cmp(b.0)));
        top.truncate(q.top);

        let mut published = vec![0u64; buckets.len()];
        let mut published_tokens = vec![0u64; buckets.len()];
        let mut series = Vec::with_capacity(top.len() + 1);
        for (key, _) in &top {
            let cells = by_model.get(*key);
            let mut s = ShareSeries {
                key: (*key).clone(),
                share: vec![],
                tokens: vec![],
            };
            for (i, total) in bucket_totals.iter().enumerate() {
                let cell = cells.and_then(|c| c[i]);
                match cell {
                    Some(f) if f.apps >= min_apps => {
                        published[i] += f.measure(q.by);
                        published_tokens[i] += f.tokens();
                        s.share
                            .push(Some(share_of(f.measure(q.by), total.measure(q.by))));
                        s.tokens.push(Some(f.tokens()));
                    }
                    Some(_) => {
                        s.share.push(None);
                        s.tokens.push(None);
                    }
                    None => {
                        s.share.push(Some(0.0));
                        s.tokens.push(Some(0));
                    }
                }
            }
            series.push(s);
        }

        let mut other = ShareSeries {
            key: "other".to_owned(),
            share: vec![],
            tokens: vec![],
        };
        let other_apps = if q.by == Measure::Apps {
            Some(
                self.other_apps_per_bucket(&q, &filter, &top, &index)
                    .await?,
            )
        } else {
            None
        };
        for (i, total) in bucket_totals.iter().enumerate() {
            let value = match &other_apps {
                Some(apps) => apps[i],
                None => total.measure(q.by).saturating_sub(published[i]),
            };
            other.share.push(Some(share_of(value, total.measure(q.by))));
            other
                .tokens
                .push(Some(total.tokens().saturating_sub(published_tokens[i])));
        }
        series.push(other);
        Ok(ShareSeriesSet {
            granularity: q.granularity,
            buckets,
            series,
        })
    }

    /// Distinct apps per bucket outside the top models (apps do not subtract).
    async fn other_apps_per_bucket(
        &self,
        q: &ShareQuery,
        filter: &str,
        top: &[(&String, &Figures)],
        index: &HashMap<String, usize>,
    ) -> Result<Vec<u64>, QueryError> {
        let mut rest = filter.to_owned();
        if !top.is_empty() {
            let keys: Vec<String> = top.iter().map(|(k, _)| sql_literal(k)).collect();
            rest.push_str(&format!(" AND model NOT IN ({})", keys.join(", ")));
        }
        let sql = format!(
            "SELECT {} AS bucket, count(DISTINCT app_id) AS apps FROM events WHERE {rest} GROUP BY 1",
            q.bucket_sql()
        );
        let mut out = vec![0u64; index.len()];
        for batch in self.sql(&sql).await? {
            for row in 0..batch.num_rows() {
                if let Some(&i) = index.get(str_at(&batch, "bucket", row)?) {
                    out[i] = crate::values::u64_at(&batch, "apps", row)?;
                }
            }
        }
        Ok(out)
    }
}
