//! The publication rule: which events a public figure may be computed from.
//!
//! # The rule
//!
//! A **base cell** is one (UTC day, task, model, provider). A **group** is a base cell's `ok`
//! events of one context segment, one attempt kind (first choice, or served after another
//! attempt failed) and one position in an agent trace (none, first call, later call): the
//! columns of [`GROUP`](crate::engine::GROUP). A group is **publishable** when at least `min_apps` distinct apps have an
//! event in it ([`publishable`], and in SQL [`publishable_sql`]: the one place the threshold is
//! compared). Every public usage figure — tokens, requests, spend, distinct apps, shares and their
//! denominators, totals, `other` rows, author and task rows, a segment's figures, first choices
//! and fallbacks, agents' first and later calls — is computed only from the events of
//! publishable groups. Nothing else is ever aggregated for the public.
//!
//! # Why no sum or difference of published figures isolates fewer than `min_apps` apps
//!
//! Groups partition the `ok` events. A published additive figure (tokens, requests, spend) of
//! any row — a model in a week, an author, a task, a segment, a day's total, the fallbacks of a
//! provider, the `other` row beyond a limit, a week as the sum of its days — is the sum of that
//! measure over a *set of publishable groups*: a period is a set of whole days, and a task,
//! model, author, provider, segment, attempt or position filter selects whole groups. So every
//! published figure is a linear combination, with coefficients 0 or 1, of per-group values, each
//! of which aggregates the events of at least `min_apps` apps. Any sum or difference of published
//! figures is again a linear combination of such per-group values: a group enters it with some
//! integer weight or not at all, and always whole. No combination can contain the events of an
//! app without those of its whole group, so none can isolate fewer than `min_apps` apps. In
//! particular `other` is empty or covers `min_apps` apps, and "all lengths − the four segments",
//! "requests − fallbacks" or "author − its listed models" only ever leave whole publishable
//! groups: splits of a cell by segment, by attempt and by position cannot cross, because each
//! of their parts is a union of the same groups.
//!
//! The filter of a query ([`Scope`]) may therefore only name group dimensions (dates, task,
//! model, provider, segment): a filter on anything finer would split groups and make a group's
//! publishability depend on the question. Within such a scope, a group is publishable exactly
//! when it is publishable in the whole lake, so every query agrees on which groups exist.
//!
//! Distinct-app counts are counted over the publishable groups a row covers. They are not
//! additive, and a count of apps is not a figure of any one app.
//!
//! # Measures on other events
//!
//! Requests that did not succeed are not in any `ok` figure; they have their own units (day,
//! task, model, provider, status), publishable when at least `min_apps` distinct apps have an
//! event of that status in the unit, and never split further. The same argument holds for them
//! separately; every figure of them (the API's attempts and failures, the snapshot's failures)
//! sums such units.
//!
//! Figures that are not sums — latency and throughput percentiles — are read over the events of
//! cells whose `ok` events come from `min_apps` apps: a percentile cannot be subtracted.
//!
//! # Limits
//!
//! The rows of an open period change as events arrive: two readings of today at different times
//! differ by the groups that became publishable or grew in between, which can be one app's
//! requests if it was the only one active in between (see docs/METRICS.md, "Privacy").
//! A group is finer than a cell, so more of a busy cell's rare events are withheld: on a
//! 100 M-event generated lake at `min_apps` 5, 96.0 % of a week's tokens are in publishable
//! groups, against 99.8 % in publishable cells (docs/BENCHMARKS.md).

use crate::QueryError;
use crate::engine::{QueryEngine, ScalarValue};
use crate::fragments::WEEK_OF_DATE;
use crate::leaderboard::Figures;
use crate::period::Period;
use crate::values::{micro_usd_at, str_at, u64_at};
use chrono::{Days, NaiveDate};
use modelshare_event::cube::monday_of;
use modelshare_event::{Context, Task};
use std::collections::BTreeSet;

/// The threshold when none is given (`--min-apps`, `MODELSHARE_MIN_APPS`).
pub const DEFAULT_MIN_APPS: u64 = 5;

/// Whether a group seen by `apps` distinct apps may be published under a threshold of
/// `min_apps`. Groups and failure units are tested with this; so are the analytics' own groups
/// (cohorts, flows, models of the index).
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

/// A set of whole groups: a range of days, optionally one task, one model, one provider and one
/// context segment. It has no other filters on purpose (see the module docs).
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

    /// The predicate on the groups' dimensions (of `cell_apps`, `cell_groups`,
    /// `group_presence`; without a segment also of `events` and `hourly`), with placeholders
    /// bound by [`Scope::params`].
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
        if self.context.is_some() {
            f.push_str(" AND context = $context");
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

/// The publishable groups of the scope, as SQL rows of the `cell_groups` view (the group's
/// columns, its distinct apps and sums): per-day summaries where they are current, computed from
/// `cell_apps` otherwise. Every public additive `ok` figure is a sum over them.
pub(crate) fn published_groups(scope: &Scope) -> String {
    format!(
        "SELECT * FROM cell_groups WHERE {filter} AND {publishable}",
        filter = scope.filter(),
        publishable = publishable_sql("apps"),
    )
}

/// `WITH pgroups AS (…)`: [`published_groups`] as a common table.
fn published_groups_cte(scope: &Scope) -> String {
    format!("WITH pgroups AS ({}) ", published_groups(scope))
}

/// Where the distinct apps of the scope's published groups grouped by `dims` are counted: rows
/// of (group or coarser, app key) with the group's distinct apps as `group_apps`. The `presence`
/// view (whole weeks from their week files) unless a dimension or the scope needs the provider
/// or the segment, which only `group_presence` has.
fn presence_of(scope: &Scope, dims: &[Dim]) -> &'static str {
    if dims.contains(&Dim::Provider) || scope.provider.is_some() || scope.context.is_some() {
        "group_presence"
    } else {
        "presence"
    }
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

/// The additive aggregates of [`Figures`] over published groups.
const SUMS_SQL: &str = "sum(input_tokens) AS input_tokens, sum(output_tokens) AS output_tokens, \
     sum(requests) AS requests, sum(cost_usd) AS cost";

/// The distinct apps of published groups: over their (group, app) rows, on the app key.
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
/// the published groups) or leaves `apps` at 0.
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
    /// Per kept value that has publishable groups.
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
    /// Figures of the publishable groups of `scope`, grouped by `dims` (no dims: one total row,
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

    /// Several groupings of the publishable groups of `scope` in one pass (a grouping set each):
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
        let cte = published_groups_cte(scope);
        let sums_sql = format!(
            "{cte}{}",
            grouping.query(
                SUMS_SQL,
                "input_tokens, output_tokens, requests, cost_usd",
                "pgroups",
                &filter
            )
        );
        let mut out = grouping.collect(
            self.sql_with_params(&sums_sql, params.clone()).await?,
            sums_at,
        )?;
        if apps == Apps::Counted {
            // The (group, app key) rows of the publishable groups, each carrying its group's
            // distinct apps: no join with the groups.
            let mut dims = grouping.columns.clone();
            dims.extend(except.map(|e| e.dim));
            let weeks = scope.whole_weeks(&dims);
            let apps_sql = grouping.query(
                APPS_SQL,
                "app_key",
                presence_of(scope, &dims),
                &format!(
                    "{} AND {} AND {filter}",
                    scope.filter(),
                    publishable_sql("group_apps")
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

    /// Distinct apps of the publishable groups of `scope` in one pass: per value of `dim` among
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
            presence = presence_of(scope, &[dim]),
            filter = scope.filter(),
            publishable = publishable_sql("group_apps"),
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

    /// The number of publishable groups in `scope` (e.g. whether a model has any public usage).
    pub async fn publishable_groups(&self, scope: &Scope) -> Result<u64, QueryError> {
        let sql = format!(
            "{cte}SELECT count(*) AS n FROM pgroups",
            cte = published_groups_cte(scope)
        );
        let params = scope.params(self.config().min_apps);
        let mut groups = 0;
        for b in self.sql_with_params(&sql, params).await? {
            if b.num_rows() > 0 {
                groups = u64_at(&b, "n", 0)?;
            }
        }
        Ok(groups)
    }

    /// `ok` requests of the publishable groups of the scope, split by `split`.
    /// Parts in ascending order of their label.
    pub async fn published_split(
        &self,
        scope: &Scope,
        split: Split,
    ) -> Result<Vec<(String, u64)>, QueryError> {
        let sql = format!(
            "SELECT CAST({part} AS VARCHAR) AS label, sum(requests) AS requests \
             FROM ({groups}) GROUP BY {part} ORDER BY {part}",
            part = split.sql(),
            groups = published_groups(scope),
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
    /// The part's key column of a group; parts are ordered by it.
    fn sql(self) -> &'static str {
        match self {
            Split::Attempt => "fallback",
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
