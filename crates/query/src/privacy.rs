//! The publication rule: which events a public figure may be computed from.
//!
//! # The rule
//!
//! A **base cell** is one (UTC day, task, model, provider). A base cell is **publishable** when
//! at least `min_apps` distinct apps have an `ok` event in it ([`publishable`], and in SQL
//! [`publishable_sql`]: the one place the threshold is compared). Every public usage figure —
//! tokens, requests, spend, distinct apps, shares and their denominators, totals, `other` rows,
//! author and task rows, blended prices, latency percentiles — is computed only from the events
//! of publishable base cells. Nothing else is ever aggregated for the public.
//!
//! # Why no sum or difference of published figures isolates fewer than `min_apps` apps
//!
//! Base cells partition the `ok` events. A published additive figure (tokens, requests, spend) of
//! any row — a model in a week, an author, a task, a day's total, the `other` row beyond a limit,
//! a week as the sum of its days — is the sum of that measure over a *set of publishable base
//! cells*: a period is a set of whole days, and a task, model, author or provider filter selects
//! whole cells. So every published figure is a linear combination, with coefficients 0 or 1, of
//! per-cell values, each of which aggregates the events of at least `min_apps` apps. Any sum or
//! difference of published figures is again a linear combination of such per-cell values: a cell
//! enters it with some integer weight or not at all, and a cell always enters whole. No
//! combination can contain the events of an app without those of the whole cell, so none can
//! isolate fewer than `min_apps` apps. In particular `other` (the publishable cells of the rows
//! beyond a limit) is empty or covers `min_apps` apps, and "author − its listed models" or
//! "task − its listed models" or "week − its days" only ever leaves whole publishable cells.
//!
//! The filter of a query ([`Scope`]) may therefore only name cell dimensions (dates, task, model,
//! provider): a filter on anything finer would split cells and make a cell's publishability
//! depend on the question. Within such a scope, a cell is publishable exactly when it is publishable in the
//! whole lake, so every query agrees on which cells exist.
//!
//! Distinct-app counts are counted over the publishable cells a row covers. They are not
//! additive, and a count of apps is not a figure of any one app.
//!
//! # Measures on other events, and splits of a cell
//!
//! Failed requests are not in any `ok` figure; they have their own cells (the same dimensions,
//! over failed events), publishable when at least `min_apps` distinct apps have a failed event in
//! the cell. The same argument holds for them separately.
//!
//! A figure that *splits* a cell (requests by attempt, fallbacks within requests, a context
//! segment's part, agents' first and later calls) would give the difference "cell − its
//! published parts" = its unpublished parts; and two different splits of one cell would give
//! "a part of one − a part of the other", which can leave their small overlap. So a cell is split
//! — by any of them — only when each of its (context segment, first choice or fallback, position
//! in an agent trace) groups with events comes from at least `min_apps` apps ([`splittable_cells`]; the
//! cube's `split_apps`); otherwise no split touches it. Every part of every split is then a union
//! of such groups, and with the whole unsplit cells they partition the events into groups of at
//! least `min_apps` apps, to which the argument above applies.
//!
//! # Limits
//!
//! The rows of an open period change as events arrive: two readings of today at different times
//! differ by the cells that became publishable or grew in between, which can be one app's
//! requests if it was the only one active in between (see docs/METRICS.md, "Privacy").

use crate::QueryError;
use crate::engine::{QueryEngine, ScalarValue};
use crate::fragments::{FALLBACK, WEEK_OF_DATE};
use crate::leaderboard::Figures;
use crate::period::Period;
use crate::values::{micro_usd_at, str_at, u64_at};
use chrono::{Days, NaiveDate};
use modelshare_event::cube::monday_of;
use modelshare_event::{Context, Task};
use std::collections::BTreeSet;

/// Whether a group seen by `apps` distinct apps may be published under a threshold of
/// `min_apps`. Base cells, failure cells and split parts are tested with this; so are the
/// analytics' own groups (cohorts, flows, models of the index).
pub fn publishable(apps: u64, min_apps: u64) -> bool {
    apps >= min_apps
}

/// The SQL form of [`publishable`]: true when the distinct-app count `apps` (an expression)
/// reaches the bound parameter `$min_apps` (see [`min_apps_param`]).
pub fn publishable_sql(apps: &str) -> String {
    format!("{apps} >= $min_apps")
}

/// A part of a group published apart may come from no app or from enough apps (see
/// [`none_or_publishable_sql`], its SQL form).
pub fn none_or_publishable(apps: u64, min_apps: u64) -> bool {
    apps == 0 || publishable(apps, min_apps)
}

/// The rule for the parts of a group that are published apart (a split's parts, the unpublished
/// rest beside apps that chose to be shown): each part must come from no app or from enough
/// apps, so that the group minus its other parts never isolates fewer than `min_apps` apps.
pub fn none_or_publishable_sql(apps: &str) -> String {
    format!("({apps} = 0 OR {})", publishable_sql(apps))
}

/// The value of `$min_apps`.
pub fn min_apps_param(min_apps: u64) -> (String, ScalarValue) {
    (
        "min_apps".to_owned(),
        ScalarValue::Int64(Some(i64::try_from(min_apps).unwrap_or(i64::MAX))),
    )
}

/// The columns of a base cell.
pub const CELL: &str = "date, task, model, provider";

/// A set of whole base cells: a range of days, optionally one task, one model and one provider;
/// and optionally one context segment, which takes the segment's part of the cells split by
/// segment (see [`context_parts`]). It has no other filters on purpose (see the module docs).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// `[start, end)`; `None` for every day.
    pub days: Option<(NaiveDate, NaiveDate)>,
    pub task: Option<Task>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub context: Option<Context>,
}

impl Scope {
    /// The days of `period`, in `task` or in all tasks.
    pub fn period(period: &Period, task: Option<Task>) -> Scope {
        Scope {
            days: Some((period.start, period.end)),
            task,
            ..Scope::default()
        }
    }

    /// The days `[start, end)`.
    pub fn days(start: NaiveDate, end: NaiveDate) -> Scope {
        Scope {
            days: Some((start, end)),
            ..Scope::default()
        }
    }

    pub fn with_task(mut self, task: Option<Task>) -> Scope {
        self.task = task;
        self
    }

    pub fn with_model(mut self, model: impl Into<String>) -> Scope {
        self.model = Some(model.into());
        self
    }

    pub fn with_provider(mut self, provider: impl Into<String>) -> Scope {
        self.provider = Some(provider.into());
        self
    }

    pub fn with_context(mut self, context: Option<Context>) -> Scope {
        self.context = context;
        self
    }

    /// The predicate on the cells' dimensions (of `events`, `cell_apps`, `cells`…), with
    /// placeholders bound by [`Scope::params`]. The context segment is not in it: a segment is
    /// a part of cells, taken by [`published_cells_cte`] and [`presence_source`].
    pub(crate) fn filter(&self) -> String {
        let mut f = String::from("true");
        if self.days.is_some() {
            f.push_str(" AND date >= $start AND date < $end");
        }
        if self.task.is_some() {
            f.push_str(" AND task = $task");
        }
        if self.model.is_some() {
            f.push_str(" AND model = $model");
        }
        if self.provider.is_some() {
            f.push_str(" AND provider = $provider");
        }
        f
    }

    /// The whole ISO weeks (Mondays) of the scope that a distinct-app count grouped by `dims`
    /// may read from week presence rows: none when a dimension splits a week or needs the
    /// provider (as a dimension or a filter), which week rows do not carry.
    fn whole_weeks(&self, dims: &[Dim]) -> BTreeSet<NaiveDate> {
        let splits = dims.iter().any(|d| match d {
            Dim::Day | Dim::Provider => true,
            Dim::Since(day) => monday_of(*day) != *day,
            Dim::Week | Dim::Task | Dim::Model | Dim::Author => false,
        });
        let Some((start, end)) = self.days else {
            return BTreeSet::new();
        };
        // Week rows carry no segment either.
        if splits || self.provider.is_some() || self.context.is_some() {
            return BTreeSet::new();
        }
        let mut week = monday_of(start);
        if week < start {
            week = week + Days::new(7);
        }
        let mut out = BTreeSet::new();
        while week + Days::new(7) <= end {
            out.insert(week);
            week = week + Days::new(7);
        }
        out
    }

    pub(crate) fn params(&self, min_apps: u64) -> Vec<(String, ScalarValue)> {
        let text = |s: String| ScalarValue::Utf8(Some(s));
        let mut p = vec![min_apps_param(min_apps)];
        if let Some((start, end)) = self.days {
            p.push(("start".to_owned(), text(start.to_string())));
            p.push(("end".to_owned(), text(end.to_string())));
        }
        if let Some(t) = self.task {
            p.push(("task".to_owned(), text(t.as_str().to_owned())));
        }
        if let Some(m) = &self.model {
            p.push(("model".to_owned(), text(m.clone())));
        }
        if let Some(v) = &self.provider {
            p.push(("provider".to_owned(), text(v.clone())));
        }
        if let Some(c) = self.context {
            p.push(("context".to_owned(), ScalarValue::UInt8(Some(c.code()))));
        }
        p
    }
}

/// `WITH pcells AS (…)`: the publishable base cells of the scope, one row each with the cell's
/// distinct apps and sums (from the `cells` view: per-day summaries where they are current,
/// computed from `cell_apps` otherwise). Every public additive `ok` figure is a sum over it.
fn published_cells_cte(scope: &Scope) -> String {
    let cells = match scope.context {
        None => "cells".to_owned(),
        Some(_) => format!("({})", context_parts(scope)),
    };
    format!(
        "WITH pcells AS (SELECT * FROM {cells} WHERE {filter} AND {publishable}) ",
        filter = scope.filter(),
        publishable = publishable_sql("apps"),
    )
}

/// The parts of the scope's segment (`$context`) of the cells that may be split, in the columns
/// of the `cells` view (`apps`: the part's distinct apps). A cell may be split (see
/// [`splittable_cells`]) only when each of its (segment, first choice or fallback, position)
/// groups comes from
/// at least `min_apps` apps; another cell is left whole: it counts in the unsegmented figures and
/// in no segment's.
pub(crate) fn context_parts(scope: &Scope) -> String {
    format!(
        "SELECT date, task, model, provider, apps, requests, input_tokens, output_tokens, \
           cost_usd \
         FROM segments WHERE {filter} AND context = $context AND {split}",
        filter = scope.filter(),
        split = publishable_sql("split_apps"),
    )
}

/// The cells of the scope that may be split, as SQL rows of their columns ([`CELL`]): those
/// whose every (context segment, first choice or fallback, position in an agent trace) group
/// comes from at least
/// `min_apps` apps. Every split a public figure makes — by segment, by attempt (fallbacks), by
/// position (agents' first and later calls) — splits only these cells, so each part of each
/// split, and each intersection of parts of two splits, is a union of such groups: no sum or
/// difference of parts of different splits can isolate fewer apps (see the module docs).
pub(crate) fn splittable_cells(scope: &Scope) -> String {
    format!(
        "SELECT DISTINCT {CELL} FROM segments WHERE {filter} AND {split}",
        filter = scope.filter(),
        split = publishable_sql("split_apps"),
    )
}

/// The parts (by the `cell_apps` expression `part`) of the scope's cells that may be split (see
/// [`splittable_cells`]). One row per (cell, part): the cell's columns, `part`, its distinct apps
/// and sums.
fn split_parts(scope: &Scope, part: &str) -> String {
    format!(
        "SELECT p.date, p.task, p.model, p.provider, p.part, p.apps, p.requests, \
           p.input_tokens, p.output_tokens, p.cost_usd \
         FROM (SELECT {CELL}, {part} AS part, \
                 CAST(count(DISTINCT app_key) AS BIGINT) AS apps, sum(requests) AS requests, \
                 sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
                 CAST(sum(cost_usd) AS DECIMAL(38, 6)) AS cost_usd \
               FROM cell_apps WHERE {filter} GROUP BY {CELL}, {part}) p \
         JOIN ({split}) s ON p.date = s.date AND p.task = s.task \
           AND p.model = s.model AND p.provider = s.provider",
        filter = scope.filter(),
        split = splittable_cells(scope),
    )
}

/// Where the distinct apps of the scope's published cells grouped by `dims` are counted: rows
/// of (cell, app key) with the cell's distinct apps as `cell_apps` (see [`presence_of`]); for a
/// segment, the apps of its parts of split cells, each with its part's distinct apps.
fn presence_source(scope: &Scope, dims: &[Dim]) -> String {
    if scope.context.is_none() {
        return presence_of(dims).to_owned();
    }
    format!(
        "(SELECT date, task, model, provider, app_key, cell_apps FROM segment_presence \
          WHERE context = $context AND {split})",
        split = publishable_sql("split_apps"),
    )
}

/// What published figures can be grouped by: the cell's dimensions and what derives from them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dim {
    /// `YYYY-MM-DD`.
    Day,
    /// The Monday of the ISO week, `YYYY-MM-DD`.
    Week,
    Task,
    Model,
    /// The part of the model slug before the slash.
    Author,
    Provider,
    /// [`SINCE`] for the days from this one on, [`BEFORE`] for the earlier ones: a period and
    /// the one before it in one query. At most one date per query.
    Since(NaiveDate),
}

/// The keys of [`Dim::Since`].
pub const SINCE: &str = "since";
pub const BEFORE: &str = "before";

impl Dim {
    fn sql(self) -> &'static str {
        match self {
            Dim::Day => "date",
            Dim::Week => WEEK_OF_DATE,
            Dim::Task => "task",
            Dim::Model => "model",
            Dim::Author => "split_part(model, '/', 1)",
            Dim::Provider => "provider",
            Dim::Since(_) => "CASE WHEN date >= $since THEN 'since' ELSE 'before' END",
        }
    }
}

/// The `$since` parameter of the [`Dim::Since`] among `dims`, if any.
fn since_param(dims: &[Dim]) -> Result<Option<(String, ScalarValue)>, QueryError> {
    let mut dates = dims.iter().filter_map(|d| match d {
        Dim::Since(date) => Some(*date),
        _ => None,
    });
    let first = dates.next();
    if dates.any(|d| Some(d) != first) {
        return Err(QueryError::Shape("two Since dates in one query".into()));
    }
    Ok(first.map(|d| ("since".to_owned(), ScalarValue::Utf8(Some(d.to_string())))))
}

/// The additive aggregates of [`Figures`] over published cells.
const SUMS_SQL: &str = "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
     sum(requests) AS requests, sum(cost_usd) AS cost";

/// Where distinct apps grouped by `dims` are counted: the `presence` view (whole weeks from
/// their week files) unless a dimension is the provider, which only `cell_presence` has.
fn presence_of(dims: &[Dim]) -> &'static str {
    if dims.contains(&Dim::Provider) {
        "cell_presence"
    } else {
        "presence"
    }
}

/// The distinct apps of published cells: over their (cell, app) rows, on the app key.
const APPS_SQL: &str = "count(DISTINCT app_key) AS apps";

fn sums_at(batch: &arrow::array::RecordBatch, row: usize) -> Result<Figures, QueryError> {
    Ok(Figures {
        input_tokens: u64_at(batch, "input_tokens", row)?,
        output_tokens: u64_at(batch, "output_tokens", row)?,
        requests: u64_at(batch, "requests", row)?,
        apps: 0,
        cost: micro_usd_at(batch, "cost", row)?,
    })
}

/// Whether a published query counts distinct apps (a second, costlier pass over the apps of
/// the published cells) or leaves `apps` at 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Apps {
    Counted,
    NotCounted,
}

/// One group of published figures: its key (one value per [`Dim`] asked for) and figures.
pub type Group = (Vec<String>, Figures);

/// `keys` as the placeholders of an `IN` list (`$x0, $x1, …`) and their bound values.
fn list_params(keys: &[String]) -> (String, Vec<(String, ScalarValue)>) {
    let names: Vec<String> = (0..keys.len()).map(|i| format!("$x{i}")).collect();
    let values = keys
        .iter()
        .enumerate()
        .map(|(i, k)| (format!("x{i}"), ScalarValue::Utf8(Some(k.clone()))))
        .collect();
    (names.join(", "), values)
}

/// The answer of [`QueryEngine::published_apps_kept`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KeptApps {
    /// Per kept value that has publishable cells.
    pub kept: std::collections::HashMap<String, u64>,
    /// The apps of the values not kept, together.
    pub rest: u64,
    pub total: u64,
}

/// Rows to leave out of an aggregate: those whose `dim` is one of `keys` (e.g. the listed
/// models, to count the distinct apps of `other`).
#[derive(Debug, Clone, Copy)]
pub struct Except<'a> {
    pub dim: Dim,
    pub keys: &'a [String],
}

impl QueryEngine {
    /// Figures of the publishable cells of `scope`, grouped by `dims` (no dims: one total row,
    /// zeros when nothing is publishable).
    pub async fn published(&self, scope: &Scope, dims: &[Dim]) -> Result<Vec<Group>, QueryError> {
        self.published_except(scope, dims, None).await
    }

    /// Like [`published`](Self::published), leaving out the rows `except` names.
    pub async fn published_except(
        &self,
        scope: &Scope,
        dims: &[Dim],
        except: Option<Except<'_>>,
    ) -> Result<Vec<Group>, QueryError> {
        let mut sets = self.grouped(scope, &[dims], except, Apps::Counted).await?;
        Ok(sets.pop().unwrap_or_default())
    }

    /// Several groupings of the publishable cells of `scope` in one pass (a grouping set each):
    /// per set, its groups as [`published`](Self::published) would answer. The empty set is the
    /// total; it is always answered, with zeros when nothing is publishable.
    pub async fn published_sets(
        &self,
        scope: &Scope,
        sets: &[&[Dim]],
    ) -> Result<Vec<Vec<Group>>, QueryError> {
        self.grouped(scope, sets, None, Apps::Counted).await
    }

    /// Like [`published_sets`](Self::published_sets), counting distinct apps only when `apps`
    /// says so (they are 0 otherwise).
    pub async fn published_sets_counting(
        &self,
        scope: &Scope,
        sets: &[&[Dim]],
        apps: Apps,
    ) -> Result<Vec<Vec<Group>>, QueryError> {
        self.grouped(scope, sets, None, apps).await
    }

    async fn grouped(
        &self,
        scope: &Scope,
        sets: &[&[Dim]],
        except: Option<Except<'_>>,
        apps: Apps,
    ) -> Result<Vec<Vec<Group>>, QueryError> {
        let grouping = Grouping::new(sets);
        let mut params = scope.params(self.config().min_apps);
        params.extend(since_param(&grouping.columns)?);
        let mut filter = String::from("true");
        if let Some(except) = except.filter(|e| !e.keys.is_empty()) {
            let (names, values) = list_params(except.keys);
            filter = format!("{} NOT IN ({names})", except.dim.sql());
            params.extend(values);
        }
        let cte = published_cells_cte(scope);
        let sums_sql = format!(
            "{cte}{}",
            grouping.query(
                SUMS_SQL,
                "input_tokens, output_tokens, requests, cost_usd",
                "pcells",
                &filter
            )
        );
        let mut out = grouping.collect(
            self.sql_with_params(&sums_sql, params.clone()).await?,
            sums_at,
        )?;
        if apps == Apps::Counted {
            // The (cell, app key) rows of the publishable cells, each carrying its cell's
            // distinct apps: no join with the cells.
            let mut dims = grouping.columns.clone();
            dims.extend(except.map(|e| e.dim));
            let weeks = scope.whole_weeks(&dims);
            let apps_sql = grouping.query(
                APPS_SQL,
                "app_key",
                &presence_source(scope, &dims),
                &format!(
                    "{} AND {} AND {filter}",
                    scope.filter(),
                    publishable_sql("cell_apps")
                ),
            );
            let counts = grouping.collect(
                self.sql_over_weeks(&apps_sql, params, &weeks).await?,
                |b, row| u64_at(b, "apps", row),
            )?;
            for (set, counted) in out.iter_mut().zip(counts) {
                let by_key: std::collections::HashMap<Vec<String>, u64> =
                    counted.into_iter().collect();
                for (key, f) in set.iter_mut() {
                    f.apps = by_key.get(key).copied().unwrap_or(0);
                }
            }
        }
        for (s, set) in sets.iter().enumerate() {
            if set.is_empty() && out[s].is_empty() {
                out[s].push((Vec::new(), Figures::default()));
            }
        }
        Ok(out)
    }

    /// Distinct apps of the publishable cells of `scope` in one pass: per value of `dim` among
    /// `kept`, for all the other values together (the `other` row of a ranking), and in total.
    pub async fn published_apps_kept(
        &self,
        scope: &Scope,
        dim: Dim,
        kept: &[String],
    ) -> Result<KeptApps, QueryError> {
        let mut params = scope.params(self.config().min_apps);
        params.extend(since_param(&[dim])?);
        let (names, values) = list_params(kept);
        params.extend(values);
        // NULL stands for the values not kept: no model, author or provider is NULL.
        let key = if kept.is_empty() {
            "CAST(NULL AS VARCHAR)".to_owned()
        } else {
            format!("CASE WHEN {d} IN ({names}) THEN {d} END", d = dim.sql())
        };
        let sql = format!(
            "SELECT k, CAST(grouping(k) AS BIGINT) AS total, {APPS_SQL} \
             FROM (SELECT {key} AS k, app_key FROM {presence} WHERE {filter} AND {publishable}) \
             GROUP BY GROUPING SETS ((k), ())",
            presence = presence_source(scope, &[dim]),
            filter = scope.filter(),
            publishable = publishable_sql("cell_apps"),
        );
        let weeks = scope.whole_weeks(&[dim]);
        let mut out = KeptApps::default();
        for b in self.sql_over_weeks(&sql, params, &weeks).await? {
            let keys = b
                .column_by_name("k")
                .ok_or_else(|| QueryError::Shape("column k missing".into()))?;
            for row in 0..b.num_rows() {
                let apps = u64_at(&b, "apps", row)?;
                if u64_at(&b, "total", row)? == 1 {
                    out.total = apps;
                } else if keys.is_null(row) {
                    out.rest = apps;
                } else {
                    out.kept.insert(str_at(&b, "k", row)?.to_owned(), apps);
                }
            }
        }
        Ok(out)
    }

    /// The share of the published tokens of `scope` (all lengths) that are in cells split by
    /// context segment ([`splittable_cells`]): what segment figures cover. Both are sums of whole
    /// publishable cells.
    pub async fn segment_coverage(&self, scope: &Scope) -> Result<f64, QueryError> {
        let all = Scope {
            context: None,
            ..scope.clone()
        };
        let sql = format!(
            "SELECT \
               (SELECT CAST(COALESCE(sum(input_tokens + output_tokens), 0) AS BIGINT) \
                FROM segments WHERE {filter} AND {split}) AS split, \
               (SELECT CAST(COALESCE(sum(input_tokens + output_tokens), 0) AS BIGINT) \
                FROM cells WHERE {filter} AND {publishable}) AS total",
            filter = all.filter(),
            split = publishable_sql("split_apps"),
            publishable = publishable_sql("apps"),
        );
        let mut coverage = 0.0;
        for b in self
            .sql_with_params(&sql, all.params(self.config().min_apps))
            .await?
        {
            if b.num_rows() > 0 {
                let (split, total) = (u64_at(&b, "split", 0)?, u64_at(&b, "total", 0)?);
                coverage = if total == 0 {
                    0.0
                } else {
                    split as f64 / total as f64
                };
            }
        }
        Ok(coverage)
    }

    /// The number of publishable cells in `scope` (e.g. whether a model has any public usage).
    pub async fn publishable_cells(&self, scope: &Scope) -> Result<u64, QueryError> {
        let sql = format!(
            "{cte}SELECT count(*) AS cells FROM pcells",
            cte = published_cells_cte(scope)
        );
        let params = scope.params(self.config().min_apps);
        let mut cells = 0;
        for b in self.sql_with_params(&sql, params).await? {
            if b.num_rows() > 0 {
                cells = u64_at(&b, "cells", 0)?;
            }
        }
        Ok(cells)
    }

    /// `ok` requests of the scope split by `split`, over the publishable cells whose every
    /// non-empty part has `min_apps` apps (other cells are not split, see the module docs).
    /// Parts in ascending order of their label.
    pub async fn published_split(
        &self,
        scope: &Scope,
        split: Split,
    ) -> Result<Vec<(String, u64)>, QueryError> {
        let sql = format!(
            "SELECT CAST(part AS VARCHAR) AS label, sum(requests) AS requests \
             FROM ({parts}) GROUP BY part ORDER BY part",
            parts = split_parts(scope, split.sql()),
        );
        let params = scope.params(self.config().min_apps);
        let mut out = Vec::new();
        for b in self.sql_with_params(&sql, params).await? {
            for row in 0..b.num_rows() {
                out.push((
                    str_at(&b, "label", row)?.to_owned(),
                    u64_at(&b, "requests", row)?,
                ));
            }
        }
        Ok(out)
    }
}

/// The groups of one grouping set: key (one value per dimension) and a value.
type Keyed<T> = Vec<(Vec<String>, T)>;

/// The grouping sets of one published query: the distinct columns of all sets (`k0`, `k1`, …)
/// and, per set, which rows of a `GROUPING SETS` answer belong to it.
struct Grouping<'a> {
    sets: &'a [&'a [Dim]],
    columns: Vec<Dim>,
}

impl<'a> Grouping<'a> {
    fn new(sets: &'a [&'a [Dim]]) -> Self {
        let mut columns: Vec<Dim> = Vec::new();
        for d in sets.iter().flat_map(|s| s.iter()) {
            if !columns.contains(d) {
                columns.push(*d);
            }
        }
        Grouping { sets, columns }
    }

    fn index(&self, d: &Dim) -> usize {
        self.columns.iter().position(|c| c == d).unwrap_or(0)
    }

    /// The key expressions as `k0, k1, …` with a trailing comma (for the inner select).
    fn keyed(&self) -> String {
        let mut out = String::new();
        for (i, d) in self.columns.iter().enumerate() {
            out.push_str(&format!("{} AS k{i}, ", d.sql()));
        }
        out
    }

    /// The keys and, with several sets, their grouping flags, with a trailing comma.
    fn keys(&self) -> String {
        let mut out = String::new();
        for i in 0..self.columns.len() {
            out.push_str(&format!("k{i}, "));
            if self.sets.len() > 1 {
                out.push_str(&format!("CAST(grouping(k{i}) AS BIGINT) AS g{i}, "));
            }
        }
        out
    }

    fn group_by(&self) -> String {
        if self.columns.is_empty() {
            return String::new();
        }
        let k = |d: &Dim| format!("k{}", self.index(d));
        if self.sets.len() == 1 {
            let ks: Vec<String> = self.columns.iter().map(k).collect();
            return format!("GROUP BY {}", ks.join(", "));
        }
        let sets: Vec<String> = self
            .sets
            .iter()
            .map(|set| format!("({})", set.iter().map(k).collect::<Vec<_>>().join(", ")))
            .collect();
        format!("GROUP BY GROUPING SETS ({})", sets.join(", "))
    }

    /// `SELECT keys, <aggregates> FROM (SELECT keyed, <columns> FROM <from> WHERE <filter>)`,
    /// grouped.
    fn query(&self, aggregates: &str, columns: &str, from: &str, filter: &str) -> String {
        format!(
            "SELECT {keys}{aggregates} FROM (SELECT {keyed}{columns} FROM {from} WHERE {filter}) {group_by}",
            keys = self.keys(),
            keyed = self.keyed(),
            group_by = self.group_by(),
        )
    }

    /// Splits an answer into the sets' groups, reading each row's value with `value`.
    fn collect<T>(
        &self,
        batches: Vec<arrow::array::RecordBatch>,
        value: impl Fn(&arrow::array::RecordBatch, usize) -> Result<T, QueryError>,
    ) -> Result<Vec<Keyed<T>>, QueryError> {
        // A row belongs to the set whose columns are exactly the ones it is grouped by.
        let masks: Vec<u64> = self
            .sets
            .iter()
            .map(|set| {
                (0..self.columns.len())
                    .filter(|i| !set.contains(&self.columns[*i]))
                    .map(|i| 1u64 << i)
                    .sum()
            })
            .collect();
        let mut out: Vec<Keyed<T>> = self.sets.iter().map(|_| Vec::new()).collect();
        for batch in &batches {
            for row in 0..batch.num_rows() {
                let s = if self.sets.len() == 1 {
                    0
                } else {
                    let mut mask = 0;
                    for i in 0..self.columns.len() {
                        mask |= u64_at(batch, &format!("g{i}"), row)?.min(1) << i;
                    }
                    match masks.iter().position(|m| *m == mask) {
                        Some(s) => s,
                        None => continue,
                    }
                };
                let key = self.sets[s]
                    .iter()
                    .map(|d| str_at(batch, &format!("k{}", self.index(d)), row).map(str::to_owned))
                    .collect::<Result<Vec<_>, _>>()?;
                out[s].push((key, value(batch, row)?));
            }
        }
        Ok(out)
    }
}

/// A split of a cell's `ok` requests into parts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Split {
    /// By attempt: 0 = served as the first choice, 1 = served after one or more fallbacks.
    Attempt,
}

impl Split {
    /// The part's key on `cell_apps` rows; parts are ordered by it.
    fn sql(self) -> &'static str {
        match self {
            Split::Attempt => FALLBACK,
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::QueryConfig;

    #[test]
    fn only_whole_weeks_not_split_by_a_dimension_are_read_as_weeks() {
        let day = |s: &str| s.parse::<NaiveDate>().unwrap();
        let monday = day("2026-11-02");
        let two_weeks = Scope::days(monday, day("2026-11-16"));
        assert_eq!(
            two_weeks.whole_weeks(&[Dim::Model, Dim::Week]),
            BTreeSet::from([monday, day("2026-11-09")])
        );
        // A month: only the weeks inside it.
        let november = Scope::days(day("2026-11-01"), day("2026-12-01"));
        assert_eq!(
            november.whole_weeks(&[Dim::Author]),
            BTreeSet::from([
                monday,
                day("2026-11-09"),
                day("2026-11-16"),
                day("2026-11-23")
            ])
        );
        assert!(two_weeks.whole_weeks(&[Dim::Day]).is_empty());
        assert!(two_weeks.whole_weeks(&[Dim::Provider]).is_empty());
        assert!(
            two_weeks
                .clone()
                .with_provider("azure")
                .whole_weeks(&[Dim::Model])
                .is_empty()
        );
        assert!(
            two_weeks
                .whole_weeks(&[Dim::Since(day("2026-11-04"))])
                .is_empty()
        );
        assert_eq!(
            two_weeks
                .whole_weeks(&[Dim::Since(day("2026-11-09"))])
                .len(),
            2
        );
        assert!(Scope::default().whole_weeks(&[]).is_empty());
        assert!(
            Scope::days(monday, day("2026-11-08"))
                .whole_weeks(&[])
                .is_empty()
        );
    }

    #[test]
    fn the_threshold_is_inclusive() {
        assert!(publishable(5, 5));
        assert!(publishable(6, 5));
        assert!(!publishable(4, 5));
        assert!(publishable(1, 1));
        assert!(!publishable(0, 1));
    }

    /// The SQL form decides like the function, on both sides of the threshold.
    #[tokio::test]
    async fn sql_and_rust_agree() {
        let dir = tempfile::tempdir().unwrap();
        for min_apps in 0..4u64 {
            let engine = QueryEngine::new(
                dir.path(),
                None,
                QueryConfig {
                    min_apps,
                    ..QueryConfig::default()
                },
            )
            .unwrap();
            for apps in 0..6u64 {
                let sql = format!("SELECT {} AS ok", publishable_sql("$apps"));
                let params = vec![
                    min_apps_param(min_apps),
                    ("apps".to_owned(), ScalarValue::Int64(Some(apps as i64))),
                ];
                let batches = engine.sql_with_params(&sql, params).await.unwrap();
                let col = batches[0]
                    .column(0)
                    .as_any()
                    .downcast_ref::<arrow::array::BooleanArray>()
                    .unwrap();
                assert_eq!(
                    col.value(0),
                    publishable(apps, min_apps),
                    "{apps} {min_apps}"
                );
            }
        }
    }
}
