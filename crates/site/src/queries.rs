//! The named-query registry: the typed questions a dashboard panel can ask by name, each built
//! on `modelshare-query`, each answering with a [`Table`].
//!
//! Adding one is a function `async fn(QueryEngine, Args) -> Result<Table, SiteError>` plus one
//! [`NamedQuery`] line in [`Registry::builtin`] (or a [`Registry::register`] call from another
//! crate). Queries that take a model bind it as a SQL parameter, never paste it into SQL text.

use crate::SiteError;
use crate::table::{Cell, Column, Format, Table};
use chrono::{Days, NaiveDate};
use futures::future::BoxFuture;
use modelshare_catalog::Catalog;
use modelshare_event::event::author_of;
use modelshare_event::{Context, Task};
use modelshare_query::agents::AgentsQuery;
use modelshare_query::engine::ScalarValue;
use modelshare_query::leaderboard::Figures;
use modelshare_query::{
    Dim, Granularity, GroupBy, LeaderboardQuery, Measure, Period, PeriodKind, ProvidersQuery,
    QueryEngine, Scope, ShareQuery, Split,
};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::str::FromStr;

/// A URL parameter a page or chart can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Param {
    /// `day`, `week` or `month`.
    Period,
    /// `YYYY-MM-DD`: the period containing it.
    Date,
    /// One of the task categories.
    Task,
    /// An `author/model` slug (on model pages it comes from the path).
    Model,
    /// A provider name (on provider pages it comes from the path).
    Provider,
    /// An app shown by name, by its page slug (on app pages it comes from the path).
    App,
    /// A context segment (`short`, `medium`, `long`, `very_long`); none for all requests.
    Context,
}

impl Param {
    pub const ALL: &'static [Param] = &[
        Param::Period,
        Param::Date,
        Param::Task,
        Param::Model,
        Param::Provider,
        Param::App,
        Param::Context,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            Param::Period => "period",
            Param::Date => "date",
            Param::Task => "task",
            Param::Model => "model",
            Param::Provider => "provider",
            Param::App => "app",
            Param::Context => "context",
        }
    }
}

impl FromStr for Param {
    type Err = String;
    fn from_str(s: &str) -> Result<Param, String> {
        Param::ALL
            .iter()
            .copied()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                let accepted: Vec<&str> = Param::ALL.iter().map(|p| p.as_str()).collect();
                format!("unknown parameter {s:?}; accepted: {}", accepted.join(", "))
            })
    }
}

impl fmt::Display for Param {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An app that chose to be shown: its page slug and the name shown.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ShownApp {
    pub slug: String,
    pub name: String,
}

/// The typed inputs of one query run. Parameters a panel does not take are left at their
/// defaults (`task`/`model`/`provider` `None`).
#[derive(Debug, Clone, PartialEq)]
pub struct Args {
    pub period: Period,
    pub task: Option<Task>,
    pub model: Option<String>,
    pub provider: Option<String>,
    pub app: Option<ShownApp>,
    pub context: Option<Context>,
    /// Groups with fewer distinct apps are not published.
    pub min_apps: u64,
}

impl Args {
    /// The 12 ISO weeks ending with the week that holds the period's last day.
    pub fn trend_window(&self) -> (NaiveDate, NaiveDate) {
        let last = self.period.end - Days::new(1);
        let last_week = Period::containing(PeriodKind::Week, last).start;
        (last_week - Days::new(7 * 11), last)
    }

    fn model(&self) -> Result<&str, SiteError> {
        self.model
            .as_deref()
            .ok_or_else(|| SiteError::BadParam("this panel needs a model".into()))
    }

    /// The app of an app page.
    pub fn app(&self) -> Result<&ShownApp, SiteError> {
        self.app
            .as_ref()
            .ok_or_else(|| SiteError::BadParam("this panel needs an app".into()))
    }

    fn provider(&self) -> Result<&str, SiteError> {
        self.provider
            .as_deref()
            .ok_or_else(|| SiteError::BadParam("this panel needs a provider".into()))
    }

    /// Named SQL parameters for parameterised-SQL panels: `$start`, `$end` (the period, end
    /// exclusive, as `YYYY-MM-DD` to compare with the `date` partition), `$date`,
    /// `$trend_start` (12 weeks back), `$task`, `$model`, `$provider`, `$min_apps`.
    pub fn sql_params(&self) -> Vec<(String, ScalarValue)> {
        let text = |s: Option<String>| ScalarValue::Utf8(s);
        let (trend_start, _) = self.trend_window();
        vec![
            ("start".into(), text(Some(self.period.start.to_string()))),
            ("end".into(), text(Some(self.period.end.to_string()))),
            ("date".into(), text(Some(self.period.start.to_string()))),
            ("trend_start".into(), text(Some(trend_start.to_string()))),
            (
                "task".into(),
                text(self.task.map(|t| t.as_str().to_owned())),
            ),
            ("model".into(), text(self.model.clone())),
            ("provider".into(), text(self.provider.clone())),
            modelshare_query::privacy::min_apps_param(self.min_apps),
        ]
    }
}

/// The placeholders [`Args::sql_params`] binds.
pub const SQL_PLACEHOLDERS: &[&str] = &[
    "start",
    "end",
    "date",
    "trend_start",
    "task",
    "model",
    "provider",
    "min_apps",
];

pub type QueryFuture = BoxFuture<'static, Result<Table, SiteError>>;

/// How a named query runs; a closure, so a query registered from another crate can capture
/// its own state (e.g. an analytics handle) besides the query engine it is given.
pub type RunFn = std::sync::Arc<dyn Fn(QueryEngine, Args) -> QueryFuture + Send + Sync>;

/// Wraps an async query function as a [`RunFn`].
pub fn run_fn<F>(f: F) -> RunFn
where
    F: Fn(QueryEngine, Args) -> QueryFuture + Send + Sync + 'static,
{
    std::sync::Arc::new(f)
}

/// A query a panel can name.
#[derive(Clone)]
pub struct NamedQuery {
    pub name: &'static str,
    /// The URL parameters it uses.
    pub params: &'static [Param],
    /// Its output columns, for checking chart column roles at start-up; empty when they depend
    /// on the data (such queries can only be shown as tables).
    pub columns: &'static [&'static str],
    /// Default chart roles: (role, column), e.g. `("label", "author")`.
    pub roles: &'static [(&'static str, &'static str)],
    pub run: RunFn,
}

impl fmt::Debug for NamedQuery {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NamedQuery")
            .field("name", &self.name)
            .field("params", &self.params)
            .field("columns", &self.columns)
            .finish_non_exhaustive()
    }
}

/// Every named query, by name.
#[derive(Debug, Clone, Default)]
pub struct Registry {
    queries: BTreeMap<&'static str, NamedQuery>,
}

use Param::{Context as C, Date as D, Model as M, Period as P, Provider as V, Task as T};

impl Registry {
    /// The queries built into modelshare.
    pub fn builtin() -> Registry {
        let mut r = Registry::default();
        for q in [
            NamedQuery {
                name: "leaderboard",
                params: &[P, D, T, C],
                columns: &[
                    "rank",
                    "model",
                    "author",
                    "tokens",
                    "share",
                    "change",
                    "usd_per_mtok",
                    "apps",
                ],
                roles: &[("label", "model"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(leaderboard(e, a))),
            },
            NamedQuery {
                name: "authors",
                params: &[P, D, T, C],
                columns: &["rank", "author", "tokens", "share", "change", "apps"],
                roles: &[("label", "author"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(authors(e, a))),
            },
            NamedQuery {
                name: "context_mix",
                params: &[P, D, T],
                columns: &[
                    "context",
                    "prompt",
                    "tokens",
                    "share",
                    "apps",
                    "top_model",
                    "top_share",
                ],
                roles: &[("label", "context"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(context_mix(e, a))),
            },
            NamedQuery {
                name: "share_over_time",
                params: &[P, D, T, C],
                columns: &["week", "model", "share"],
                roles: &[("x", "week"), ("series", "model"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(share_over_time(e, a))),
            },
            NamedQuery {
                name: "tasks",
                params: &[P, D],
                columns: &["task", "tokens", "share", "apps", "top_model"],
                roles: &[("label", "task"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(tasks(e, a))),
            },
            NamedQuery {
                name: "task_matrix",
                params: &[P, D],
                columns: &[],
                roles: &[],
                run: run_fn(|e, a| Box::pin(task_matrix(e, a))),
            },
            NamedQuery {
                name: "price_share",
                params: &[P, D, T],
                columns: &["model", "usd_per_mtok", "share"],
                roles: &[("label", "model"), ("x", "usd_per_mtok"), ("y", "share")],
                run: run_fn(|e, a| Box::pin(price_share(e, a))),
            },
            NamedQuery {
                name: "model_share_by_task",
                params: &[P, D, M],
                columns: &["week", "task", "share"],
                roles: &[("x", "week"), ("series", "task"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(model_share_by_task(e, a))),
            },
            NamedQuery {
                name: "model_providers",
                params: &[P, D, M],
                columns: &["provider", "tokens", "requests", "share", "apps"],
                roles: &[("label", "provider"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(model_providers(e, a))),
            },
            NamedQuery {
                name: "model_provider_performance",
                params: &[P, D, M],
                columns: PROVIDER_COLUMNS,
                roles: &[("label", "provider"), ("value", "attempts")],
                run: run_fn(|e, a| Box::pin(model_provider_performance(e, a))),
            },
            NamedQuery {
                name: "provider_performance",
                params: &[P, D],
                columns: PROVIDER_COLUMNS,
                roles: &[("label", "provider"), ("value", "attempts")],
                run: run_fn(|e, a| Box::pin(provider_performance(e, a))),
            },
            NamedQuery {
                name: "provider_models",
                params: &[P, D, V],
                columns: PROVIDER_MODEL_COLUMNS,
                roles: &[("label", "model"), ("value", "attempts")],
                run: run_fn(|e, a| Box::pin(provider_models(e, a))),
            },
            NamedQuery {
                name: "provider_incidents",
                params: &[P, D, V],
                columns: &[
                    "start",
                    "end",
                    "minutes",
                    "failed_attempts",
                    "attempts",
                    "affected_models",
                ],
                roles: &[("label", "start"), ("value", "failed_attempts")],
                run: run_fn(|e, a| Box::pin(provider_incidents(e, a))),
            },
            NamedQuery {
                name: "agent_traces",
                params: &[P, D, T],
                columns: &["label", "value"],
                roles: &[("label", "label"), ("value", "value")],
                run: run_fn(|e, a| Box::pin(agent_traces(e, a))),
            },
            NamedQuery {
                name: "agent_models",
                params: &[P, D, T],
                columns: &["position", "model", "calls", "share"],
                roles: &[("label", "model"), ("value", "share")],
                run: run_fn(|e, a| Box::pin(agent_models(e, a))),
            },
            NamedQuery {
                name: "model_attempts",
                params: &[P, D, M],
                columns: &["label", "value"],
                roles: &[("label", "label"), ("value", "value")],
                run: run_fn(|e, a| Box::pin(model_attempts(e, a))),
            },
            NamedQuery {
                name: "model_prices",
                params: &[M],
                columns: &["from", "price", "usd_per_mtok"],
                roles: &[
                    ("x", "from"),
                    ("series", "price"),
                    ("value", "usd_per_mtok"),
                ],
                run: run_fn(|e, a| Box::pin(model_prices(e, a))),
            },
        ] {
            r.queries.insert(q.name, q);
        }
        r
    }

    /// Adds a query; a name already taken is an error.
    pub fn register(&mut self, q: NamedQuery) -> Result<(), SiteError> {
        if self.queries.contains_key(q.name) {
            return Err(SiteError::DuplicateQuery(q.name.to_owned()));
        }
        self.queries.insert(q.name, q);
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&NamedQuery> {
        self.queries.get(name)
    }

    pub fn names(&self) -> Vec<&'static str> {
        self.queries.keys().copied().collect()
    }
}

/// The path of a model's page, each segment percent-encoded.
pub fn model_href(slug: &str) -> String {
    match slug.split_once('/') {
        Some((author, model)) => format!(
            "/models/{}/{}",
            encode_segment(author),
            encode_segment(model)
        ),
        None => format!("/models/{}/-", encode_segment(slug)),
    }
}

/// The path of a shown app's page.
pub fn app_href(slug: &str) -> String {
    format!("/apps/{}", encode_segment(slug))
}

/// The path of a provider's page.
pub fn provider_href(provider: &str) -> String {
    format!("/providers/{}", encode_segment(provider))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn model_cell(slug: &str, ranked: bool) -> Cell {
    if ranked {
        Cell::Link {
            text: slug.to_owned(),
            href: model_href(slug),
        }
    } else {
        Cell::text(slug)
    }
}

fn opt_float(v: Option<f64>) -> Cell {
    v.map_or(Cell::Null, Cell::Float)
}

fn count(n: u64) -> Cell {
    Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

fn lb_query(a: &Args, group: GroupBy, limit: usize) -> LeaderboardQuery {
    LeaderboardQuery {
        period: a.period,
        task: a.task,
        context: a.context,
        by: Measure::Tokens,
        group,
        limit,
    }
}

async fn leaderboard(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let lb = engine.leaderboard(lb_query(&a, GroupBy::Model, 20)).await?;
    let mut t = Table::new(vec![
        Column::new("rank", "#", Format::Plain),
        Column::new("model", "Model", Format::Plain),
        Column::new("author", "Author", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("share", "Share", Format::Share),
        Column::new("change", "Change", Format::ShareChange),
        Column::new("usd_per_mtok", "$ / Mtok", Format::Usd),
        Column::new("apps", "Apps", Format::Count),
    ]);
    for r in &lb.rows {
        let ranked = r.rank.is_some();
        t.push(vec![
            r.rank.map_or(Cell::Null, |n| Cell::Int(i64::from(n))),
            model_cell(&r.key, ranked),
            Cell::text(if ranked { author_of(&r.key) } else { "other" }),
            count(r.figures.tokens()),
            Cell::Float(r.share),
            opt_float(r.share_change()),
            opt_float(r.figures.usd_per_mtok()),
            count(r.figures.apps),
        ]);
    }
    Ok(t)
}

async fn authors(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let lb = engine
        .leaderboard(lb_query(&a, GroupBy::Author, 15))
        .await?;
    let mut t = Table::new(vec![
        Column::new("rank", "#", Format::Plain),
        Column::new("author", "Author", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("share", "Share", Format::Share),
        Column::new("change", "Change", Format::ShareChange),
        Column::new("apps", "Apps", Format::Count),
    ]);
    for r in &lb.rows {
        t.push(vec![
            r.rank.map_or(Cell::Null, |n| Cell::Int(i64::from(n))),
            Cell::text(&r.key),
            count(r.figures.tokens()),
            Cell::Float(r.share),
            opt_float(r.share_change()),
            count(r.figures.apps),
        ]);
    }
    Ok(t)
}

/// Per context segment of the period (and task): its tokens (the sums of its publishable
/// groups), its share of all segments' tokens, its apps, and its leading model with
/// that model's share of the segment: `/v1/leaderboard?context=` of each segment side by side.
async fn context_mix(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let boards = futures::future::try_join_all(Context::ALL.iter().map(|c| {
        engine.leaderboard(LeaderboardQuery {
            context: Some(*c),
            ..lb_query(&a, GroupBy::Model, 1)
        })
    }))
    .await?;
    let all: u64 = boards.iter().map(|b| b.totals.tokens()).sum();
    let mut t = Table::new(vec![
        Column::new("context", "Context", Format::Plain),
        Column::new("prompt", "Prompt tokens", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("share", "Share", Format::Share),
        Column::new("apps", "Apps", Format::Count),
        Column::new("top_model", "Top model", Format::Plain),
        Column::new("top_share", "Its share", Format::Share),
    ]);
    for (c, board) in Context::ALL.iter().zip(&boards) {
        let tokens = board.totals.tokens();
        let top = board.rows.first().filter(|r| r.rank.is_some());
        t.push(vec![
            Cell::text(c.as_str()),
            Cell::text(c.label()),
            count(tokens),
            Cell::Float(if all == 0 {
                0.0
            } else {
                tokens as f64 / all as f64
            }),
            count(board.totals.apps),
            top.map_or(Cell::Null, |r| Cell::text(&r.key)),
            top.map_or(Cell::Null, |r| Cell::Float(r.share)),
        ]);
    }
    Ok(t)
}

async fn share_over_time(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let (from, to) = a.trend_window();
    let set = engine
        .share(ShareQuery {
            task: a.task,
            context: a.context,
            by: Measure::Tokens,
            granularity: Granularity::Week,
            from,
            to,
            top: 10,
        })
        .await?;
    let mut t = Table::new(vec![
        Column::new("week", "Week", Format::Plain),
        Column::new("model", "Model", Format::Plain),
        Column::new("share", "Share", Format::Share),
    ]);
    for (i, week) in set.buckets.iter().enumerate() {
        for s in &set.series {
            t.push(vec![
                Cell::Text(week.to_string()),
                Cell::text(&s.key),
                opt_float(s.share[i]),
            ]);
        }
    }
    Ok(t)
}

async fn tasks(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let o = engine.tasks(a.period, 1).await?;
    let mut t = Table::new(vec![
        Column::new("task", "Task", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("share", "Share", Format::Share),
        Column::new("apps", "Apps", Format::Count),
        Column::new("top_model", "Top model", Format::Plain),
    ]);
    for s in &o.tasks {
        let top = s
            .top_models
            .first()
            .map_or(Cell::Null, |(m, _, _)| model_cell(m, true));
        t.push(vec![
            Cell::Link {
                text: s.task.as_str().to_owned(),
                href: format!("/tasks/{}", s.task.as_str()),
            },
            count(s.figures.tokens()),
            Cell::Float(s.share),
            count(s.figures.apps),
            top,
        ]);
    }
    Ok(t)
}

/// Rows: the period's top 10 models; columns: each published task; cell: the model's share
/// of that task's tokens (`–` where it has no publishable cell in the task).
async fn task_matrix(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let (lb, o) = futures::try_join!(
        engine.leaderboard(LeaderboardQuery {
            task: None,
            ..lb_query(&a, GroupBy::Model, 10)
        }),
        engine.tasks(a.period, 1000),
    )?;
    let mut columns = vec![Column::new("model", "Model", Format::Plain)];
    columns.extend(
        o.tasks
            .iter()
            .map(|s| Column::new(s.task.as_str(), s.task.as_str(), Format::Share)),
    );
    let mut t = Table::new(columns);
    let shares: Vec<HashMap<&str, f64>> = o
        .tasks
        .iter()
        .map(|s| {
            s.top_models
                .iter()
                .map(|(m, _, share)| (m.as_str(), *share))
                .collect()
        })
        .collect();
    for r in lb.rows.iter().filter(|r| r.rank.is_some()) {
        let mut row = vec![model_cell(&r.key, true)];
        row.extend(
            shares
                .iter()
                .map(|m| opt_float(m.get(r.key.as_str()).copied())),
        );
        t.push(row);
    }
    Ok(t)
}

async fn price_share(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let lb = engine.leaderboard(lb_query(&a, GroupBy::Model, 30)).await?;
    let mut t = Table::new(vec![
        Column::new("model", "Model", Format::Plain),
        Column::new("usd_per_mtok", "Blended price ($ / Mtok)", Format::Usd),
        Column::new("share", "Share of tokens", Format::Share),
    ]);
    for r in lb.rows.iter().filter(|r| r.rank.is_some()) {
        if let Some(price) = r.figures.usd_per_mtok() {
            t.push(vec![
                model_cell(&r.key, true),
                Cell::Float(price),
                Cell::Float(r.share),
            ]);
        }
    }
    Ok(t)
}

/// Per week and task over the trend window: the model's share of the task's tokens, both from
/// publishable cells only (tasks where the model has none are not listed).
async fn model_share_by_task(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let model = a.model()?.to_owned();
    let (from, to) = a.trend_window();
    let scope = Scope::days(from, to + Days::new(1));
    let dims = [Dim::Week, Dim::Task];
    let of_model = scope.clone().with_model(model);
    let (all, own) = futures::try_join!(
        engine.published(&scope, &dims),
        engine.published(&of_model, &dims),
    )?;
    let key = |k: &[String]| -> Option<(String, Task)> {
        match k {
            [week, task] => task.parse::<Task>().ok().map(|t| (week.clone(), t)),
            _ => None,
        }
    };
    let totals: HashMap<(String, Task), u64> = all
        .iter()
        .filter_map(|(k, f)| key(k).map(|k| (k, f.tokens())))
        .collect();
    let mut cells: HashMap<(String, Task), f64> = HashMap::new();
    let mut published: BTreeMap<Task, u64> = BTreeMap::new();
    for (k, f) in &own {
        let Some(k) = key(k) else { continue };
        *published.entry(k.1).or_default() += f.tokens();
        let total = totals.get(&k).copied().unwrap_or(0);
        cells.insert(k, f.tokens() as f64 / total.max(1) as f64);
    }
    let mut tasks: Vec<(Task, u64)> = published.into_iter().collect();
    tasks.sort_by(|x, y| y.1.cmp(&x.1).then(x.0.cmp(&y.0)));
    let mut t = Table::new(vec![
        Column::new("week", "Week", Format::Plain),
        Column::new("task", "Task", Format::Plain),
        Column::new("share", "Share of the task's tokens", Format::Share),
    ]);
    let mut week = from;
    while week <= to {
        let w = week.to_string();
        for (task, _) in &tasks {
            let share = cells.get(&(w.clone(), *task)).copied().unwrap_or(0.0);
            t.push(vec![
                Cell::Text(w.clone()),
                Cell::text(task.as_str()),
                Cell::Float(share),
            ]);
        }
        week = week + Days::new(7);
    }
    Ok(t)
}

/// Who served the model in the period: each provider's publishable cells.
async fn model_providers(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let model = a.model()?.to_owned();
    let scope = Scope::period(&a.period, None).with_model(model);
    let mut rows: Vec<(String, Figures)> = engine
        .published(&scope, &[Dim::Provider])
        .await?
        .into_iter()
        .filter_map(|(mut k, f)| k.pop().map(|p| (p, f)))
        .collect();
    rows.sort_by(|x, y| y.1.tokens().cmp(&x.1.tokens()).then(x.0.cmp(&y.0)));
    let total: u64 = rows.iter().map(|r| r.1.tokens()).sum();
    let mut t = Table::new(vec![
        Column::new("provider", "Provider", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("requests", "Requests", Format::Count),
        Column::new("share", "Share of the model's tokens", Format::Share),
        Column::new("apps", "Apps", Format::Count),
    ]);
    for (p, f) in &rows {
        t.push(vec![
            Cell::text(p),
            count(f.tokens()),
            count(f.requests),
            Cell::Float(f.tokens() as f64 / total.max(1) as f64),
            count(f.apps),
        ]);
    }
    Ok(t)
}

/// The columns of a provider performance table: one row per provider.
const PROVIDER_COLUMNS: &[&str] = &[
    "provider",
    "attempts",
    "uptime",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "throughput_p50_tps",
    "fallbacks_served",
];

/// The same figures with one row per model of one provider.
const PROVIDER_MODEL_COLUMNS: &[&str] = &[
    "model",
    "attempts",
    "uptime",
    "latency_p50_ms",
    "latency_p95_ms",
    "ttft_p50_ms",
    "throughput_p50_tps",
    "fallbacks_served",
];

/// How each provider served the model in the period.
async fn model_provider_performance(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let query = ProvidersQuery {
        model: Some(a.model()?.to_owned()),
        provider: None,
        period: a.period,
        task: None,
    };
    provider_table(&engine, &query).await
}

/// How one provider served each model in the period.
async fn provider_models(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let query = ProvidersQuery {
        model: None,
        provider: Some(a.provider()?.to_owned()),
        period: a.period,
        task: None,
    };
    provider_table(&engine, &query).await
}

/// The incidents found at one provider that started in the period.
async fn provider_incidents(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let provider = a.provider()?;
    let mut t = Table::new(vec![
        Column::new("start", "Start (UTC)", Format::Plain),
        Column::new("end", "End (UTC)", Format::Plain),
        Column::new("minutes", "Minutes", Format::Count),
        Column::new("failed_attempts", "Failed attempts", Format::Count),
        Column::new("attempts", "Attempts", Format::Count),
        Column::new("affected_models", "Models affected", Format::Plain),
    ]);
    let minute = |d: chrono::DateTime<chrono::Utc>| d.format("%Y-%m-%d %H:%M").to_string();
    for i in engine.incidents(a.period.start, a.period.end).await? {
        if i.provider != provider {
            continue;
        }
        t.push(vec![
            Cell::Text(minute(i.start)),
            Cell::Text(minute(i.end)),
            count((i.end - i.start).num_minutes().unsigned_abs()),
            count(i.failed_attempts),
            i.attempts.map_or(Cell::Null, count),
            Cell::Text(i.affected_models.join(", ")),
        ]);
    }
    Ok(t)
}

/// How each provider served all the models it served in the period.
async fn provider_performance(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let query = ProvidersQuery {
        model: None,
        provider: None,
        period: a.period,
        task: None,
    };
    provider_table(&engine, &query).await
}

/// Uptime, latency, time to first token, throughput and fallbacks served per provider, or per
/// model of one provider (see `modelshare_query::providers` for what is counted). Providers link
/// to their pages, models to theirs.
async fn provider_table(engine: &QueryEngine, query: &ProvidersQuery) -> Result<Table, SiteError> {
    let ms = |v: Option<f64>| v.map_or(Cell::Null, |v| Cell::Float(v.round()));
    let key = if query.provider.is_some() {
        Column::new("model", "Model", Format::Plain)
    } else {
        Column::new("provider", "Provider", Format::Plain)
    };
    let mut t = Table::new(vec![
        key,
        Column::new("attempts", "Attempts", Format::Count),
        Column::new("uptime", "Uptime", Format::Share),
        Column::new("latency_p50_ms", "Latency p50 (ms)", Format::Count),
        Column::new("latency_p95_ms", "Latency p95 (ms)", Format::Count),
        Column::new("ttft_p50_ms", "First token p50 (ms)", Format::Count),
        Column::new("throughput_p50_tps", "Tokens/s p50", Format::Count),
        Column::new("fallbacks_served", "Fallbacks served", Format::Count),
    ]);
    for p in engine.providers(query).await? {
        let key = match &p.model {
            Some(model) if query.provider.is_some() => model_cell(model, true),
            _ => Cell::Link {
                text: p.provider.clone(),
                href: provider_href(&p.provider),
            },
        };
        t.push(vec![
            key,
            count(p.attempts),
            Cell::Float(p.uptime),
            ms(p.latency_p50_ms),
            ms(p.latency_p95_ms),
            ms(p.ttft_p50_ms),
            ms(p.throughput_p50_tps),
            count(p.fallbacks_served),
        ]);
    }
    Ok(t)
}

/// The period's agent traces: how many, calls per trace and the share in multi-call traces
/// (`modelshare_query::agents` says what is published).
async fn agent_traces(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let q = AgentsQuery {
        period: a.period,
        task: a.task,
    };
    let agents = engine.agents(&q).await?;
    let mut t = Table::new(vec![
        Column::new("label", "Measure", Format::Plain),
        Column::new("value", "Value", Format::Plain),
    ]);
    let (Some(traces), Some(calls), Some(per), Some(multi)) = (
        agents.traces,
        agents.traced_calls,
        agents.calls_per_trace,
        agents.multi_call_share,
    ) else {
        return Ok(t);
    };
    for (label, value) in [
        ("traces", count(traces)),
        ("traced calls", count(calls)),
        ("calls per trace, p50", count(per.p50)),
        ("calls per trace, p95", count(per.p95)),
        (
            "calls per trace, max of at least min-apps apps",
            count(per.max),
        ),
        (
            "share of traced calls in multi-call traces",
            Cell::Text(format!("{:.1}%", multi * 100.0)),
        ),
    ] {
        t.push(vec![Cell::text(label), value]);
    }
    Ok(t)
}

/// The models of agents' first calls and of their later calls, most calls first.
async fn agent_models(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let q = AgentsQuery {
        period: a.period,
        task: a.task,
    };
    let agents = engine.agents(&q).await?;
    let mut t = Table::new(vec![
        Column::new("position", "Call", Format::Plain),
        Column::new("model", "Model", Format::Plain),
        Column::new("calls", "Calls", Format::Count),
        Column::new("share", "Share of the position's calls", Format::Share),
    ]);
    let positions = [
        ("first", &agents.first_calls),
        ("later", &agents.later_calls),
    ];
    for (position, models) in positions {
        for m in models.iter().take(10) {
            t.push(vec![
                Cell::text(position),
                model_cell(&m.model, true),
                count(m.calls),
                Cell::Float(m.share),
            ]);
        }
    }
    Ok(t)
}

/// The model's requests in the period as first choice or fallback (served after another attempt
/// failed), over the model's publishable groups.
async fn model_attempts(engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let model = a.model()?.to_owned();
    let scope = Scope::period(&a.period, None).with_model(model);
    let mut t = Table::new(vec![
        Column::new("label", "Attempt", Format::Plain),
        Column::new("value", "Requests", Format::Count),
    ]);
    for (part, requests) in engine.published_split(&scope, Split::Attempt).await? {
        let label = if part == "0" {
            "first choice"
        } else {
            "fallback"
        };
        t.push(vec![Cell::text(label), count(requests)]);
    }
    Ok(t)
}

/// The model's list prices from the catalog, per change date (`first listed` = the first known
/// price, `now` = the price in force today).
async fn model_prices(_engine: QueryEngine, a: Args) -> Result<Table, SiteError> {
    let model = a.model()?;
    let mut t = Table::new(vec![
        Column::new("from", "From", Format::Plain),
        Column::new("price", "Price", Format::Plain),
        Column::new("usd_per_mtok", "$ / Mtok", Format::Usd),
    ]);
    if let Some(info) = Catalog::embedded().model(model) {
        let mut push = |from: &str, price: &modelshare_catalog::Price| {
            for (name, v) in [
                ("input", price.input_usd_per_mtok),
                ("output", price.output_usd_per_mtok),
            ] {
                t.push(vec![Cell::text(from), Cell::text(name), Cell::Float(v)]);
            }
        };
        for row in &info.prices {
            let from = row
                .from
                .map_or("first listed".to_owned(), |d| d.to_string());
            push(&from, &row.price);
        }
        // The price in force today closes the line, so a price that never changed is a flat
        // line from its listing to now rather than a lone point.
        if let Some(last) = info.prices.last() {
            push("now", &last.price);
        }
    }
    Ok(t)
}

/// Whether a model has a page: it is in the catalog, or it has a publishable cell (a model only
/// one app uses must not be confirmed by a 200).
pub async fn model_exists(engine: &QueryEngine, slug: &str) -> Result<bool, SiteError> {
    if Catalog::embedded().model(slug).is_some() {
        return Ok(true);
    }
    let scope = Scope::default().with_model(slug);
    Ok(engine.publishable_groups(&scope).await? > 0)
}

/// Whether any publishable cell was served by `provider` (so its page has something to show).
pub async fn provider_exists(engine: &QueryEngine, provider: &str) -> Result<bool, SiteError> {
    let scope = Scope::default().with_provider(provider);
    Ok(engine.publishable_groups(&scope).await? > 0)
}

/// The latest day with data (today's live rows included), or `None` for an empty lake.
pub async fn latest_date(engine: &QueryEngine) -> Result<Option<NaiveDate>, SiteError> {
    Ok(engine.latest_date().await?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_paths_are_percent_encoded() {
        assert_eq!(
            model_href("anthropic/claude-sonnet-4.5"),
            "/models/anthropic/claude-sonnet-4.5"
        );
        assert_eq!(model_href("a b/<x>:free"), "/models/a%20b/%3Cx%3E%3Afree");
    }

    #[test]
    fn builtin_names_are_unique_and_registrable() {
        let mut r = Registry::builtin();
        assert!(r.get("leaderboard").is_some());
        let q = r
            .get("tasks")
            .unwrap_or_else(|| panic!("tasks missing"))
            .clone();
        assert!(matches!(
            r.register(q.clone()),
            Err(SiteError::DuplicateQuery(_))
        ));
        assert!(r.register(NamedQuery { name: "extra", ..q }).is_ok());
        assert!(r.names().contains(&"extra"));
    }
}
