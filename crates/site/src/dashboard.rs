//! Dashboards as files: the TOML format of `dashboards/*.toml`, and its validation.
//!
//! ```toml
//! route = "/tasks/{task}"          # path params: {task}, {author}/{model}, {provider}, {app}
//! title = "Task leaderboard"
//! params = ["period", "date"]      # URL query parameters the page takes
//!
//! [[panel]]
//! id = "top_share"                 # chart URL: /charts/{dashboard}/{id}.svg
//! title = "Top 10 models, share of tokens"
//! query = "share_over_time"        # a named query ...
//! chart = "stacked_area"           # table, stacked_area, line, bar, scatter, interval
//!
//! [[panel]]
//! id = "status"
//! title = "Requests by status"
//! sql = "SELECT status AS label, count(*) AS value FROM events WHERE model = $model GROUP BY 1"
//! chart = "bar"                    # ... or parameterised SQL with bound $placeholders
//! params = ["model"]
//! columns = { label = "label", value = "value" }   # chart roles -> result columns
//! ```
//!
//! Everything is checked when the server starts; the first problem fails start-up with a
//! message naming the file and the field.

use crate::SiteError;
use crate::queries::{NamedQuery, Param, Registry, SQL_PLACEHOLDERS};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;

/// How a panel is drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChartKind {
    /// Only the data table.
    Table,
    /// Series stacked to 100 % over x (roles x, series, value).
    StackedArea,
    /// One line per series over x (roles x, series, value).
    Line,
    /// Horizontal bars (roles label, value).
    Bar,
    /// Labelled points (roles label, x, y).
    Scatter,
    /// Estimates with whiskers (roles label, estimate, lower, upper).
    Interval,
}

impl ChartKind {
    pub const ALL: &'static [ChartKind] = &[
        ChartKind::Table,
        ChartKind::StackedArea,
        ChartKind::Line,
        ChartKind::Bar,
        ChartKind::Scatter,
        ChartKind::Interval,
    ];

    pub const fn as_str(self) -> &'static str {
        match self {
            ChartKind::Table => "table",
            ChartKind::StackedArea => "stacked_area",
            ChartKind::Line => "line",
            ChartKind::Bar => "bar",
            ChartKind::Scatter => "scatter",
            ChartKind::Interval => "interval",
        }
    }

    /// The column roles the chart needs.
    pub const fn roles(self) -> &'static [&'static str] {
        match self {
            ChartKind::Table => &[],
            ChartKind::StackedArea | ChartKind::Line => &["x", "series", "value"],
            ChartKind::Bar => &["label", "value"],
            ChartKind::Scatter => &["label", "x", "y"],
            ChartKind::Interval => &["label", "estimate", "lower", "upper"],
        }
    }
}

impl FromStr for ChartKind {
    type Err = String;
    fn from_str(s: &str) -> Result<ChartKind, String> {
        ChartKind::ALL
            .iter()
            .copied()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = ChartKind::ALL.iter().map(|k| k.as_str()).collect();
                format!("unknown chart {s:?}; accepted: {}", names.join(", "))
            })
    }
}

impl fmt::Display for ChartKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a panel's table comes from.
#[derive(Debug, Clone)]
pub enum Source {
    Named(NamedQuery),
    /// Read-only SQL over `events` with `$placeholders` bound from the request.
    Sql(String),
}

/// One validated panel.
#[derive(Debug, Clone)]
pub struct Panel {
    pub id: String,
    pub title: String,
    pub description: Option<String>,
    pub source: Source,
    pub chart: ChartKind,
    /// The parameters handed to the query (others are left at their defaults).
    pub params: Vec<Param>,
    /// Chart role → result column.
    pub roles: BTreeMap<String, String>,
}

impl Panel {
    /// The column playing `role` (falls back to a column named like the role).
    pub fn role<'a>(&'a self, role: &'a str) -> &'a str {
        self.roles.get(role).map_or(role, String::as_str)
    }
}

/// A path segment of a page route.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Segment {
    Literal(String),
    Task,
    Author,
    Model,
    Provider,
    App,
}

/// One validated page.
#[derive(Debug, Clone)]
pub struct Dashboard {
    /// The file stem; names the page in chart URLs.
    pub id: String,
    /// The file it came from (for messages).
    pub file: String,
    /// The axum route, e.g. `/tasks/{task}`.
    pub route: String,
    pub segments: Vec<Segment>,
    pub title: String,
    pub description: Option<String>,
    /// Label in the navigation bar; pages without one (and with path params) are not linked.
    pub nav: Option<String>,
    /// URL query parameters the page takes.
    pub params: Vec<Param>,
    pub panels: Vec<Panel>,
}

impl Dashboard {
    /// Parameters that come from the path.
    pub fn path_params(&self) -> Vec<Param> {
        let mut out = Vec::new();
        for s in &self.segments {
            match s {
                Segment::Task => out.push(Param::Task),
                Segment::Model => out.push(Param::Model),
                Segment::Provider => out.push(Param::Provider),
                Segment::App => out.push(Param::App),
                _ => {}
            }
        }
        out
    }

    /// Everything the page can hand its panels.
    pub fn available(&self) -> Vec<Param> {
        let mut v = self.params.clone();
        v.extend(self.path_params());
        v.sort();
        v.dedup();
        v
    }

    pub fn panel(&self, id: &str) -> Option<&Panel> {
        self.panels.iter().find(|p| p.id == id)
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PageFile {
    route: String,
    title: String,
    description: Option<String>,
    nav: Option<String>,
    #[serde(default)]
    params: Vec<String>,
    #[serde(default)]
    panel: Vec<PanelFile>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct PanelFile {
    id: String,
    title: String,
    description: Option<String>,
    query: Option<String>,
    sql: Option<String>,
    chart: String,
    params: Option<Vec<String>>,
    #[serde(default)]
    columns: BTreeMap<String, String>,
}

/// Routes the site must not shadow.
const RESERVED: &[&str] = &[
    "v1",
    "charts",
    "healthz",
    "metrics",
    "static",
    "favicon.ico",
];

fn is_slug(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// Parses and checks one dashboard file; `file` names it in errors, `id` is its stem.
pub fn parse(
    file: &str,
    id: &str,
    text: &str,
    registry: &Registry,
) -> Result<Dashboard, SiteError> {
    parse_fields(id, text, registry)
        .map_err(|FieldError(field, message)| SiteError::Dashboard {
            file: file.to_owned(),
            field,
            message,
        })
        .map(|mut dashboard| {
            dashboard.file = file.to_owned();
            dashboard
        })
}

/// A problem with one field of a dashboard file: the field's path and what is wrong.
#[derive(Debug)]
struct FieldError(String, String);

fn field_err(field: &str, message: impl Into<String>) -> FieldError {
    FieldError(field.to_owned(), message.into())
}

/// The steps of [`parse`]: the file as TOML, the route and page parameters, then each panel.
fn parse_fields(id: &str, text: &str, registry: &Registry) -> Result<Dashboard, FieldError> {
    if !is_slug(id) {
        return Err(field_err(
            "(file name)",
            format!("{id:?} must be lowercase letters, digits, '-' or '_' (it is used in URLs)"),
        ));
    }
    let page: PageFile = toml::from_str(text).map_err(|e| {
        let field = match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].lines().count().max(1);
                format!("line {line}")
            }
            None => "(document)".to_owned(),
        };
        FieldError(field, e.message().to_owned())
    })?;
    let segments = parse_route(&page.route).map_err(|m| field_err("route", m))?;
    let params = page_params(&page.params, &segments)?;
    let mut dashboard = Dashboard {
        id: id.to_owned(),
        file: String::new(),
        route: page.route.clone(),
        segments,
        title: page.title,
        description: page.description,
        nav: page.nav,
        params,
        panels: vec![],
    };
    if page.panel.is_empty() {
        return Err(field_err("panel", "a page needs at least one [[panel]]"));
    }
    let available = dashboard.available();
    for (i, pf) in page.panel.into_iter().enumerate() {
        let at = |field: &str| format!("panel[{i}].{field}");
        if dashboard.panels.iter().any(|p| p.id == pf.id) {
            return Err(FieldError(at("id"), format!("{:?} is used twice", pf.id)));
        }
        let panel = parse_panel(pf, registry, &available)
            .map_err(|FieldError(field, message)| FieldError(at(&field), message))?;
        dashboard.panels.push(panel);
    }
    Ok(dashboard)
}

/// The page's query-string parameters: known, not `model`, `provider` or `app` (they come from
/// the route), not a repeat of a path parameter.
fn page_params(names: &[String], segments: &[Segment]) -> Result<Vec<Param>, FieldError> {
    let mut params = Vec::new();
    for (i, p) in names.iter().enumerate() {
        let field = format!("params[{i}]");
        let p: Param = p.parse().map_err(|m| field_err(&field, m))?;
        if p == Param::Model {
            return Err(field_err(
                &field,
                "`model` comes from the route ({author}/{model}), not from the query string",
            ));
        }
        if matches!(p, Param::Provider | Param::App) {
            return Err(field_err(
                &field,
                format!("`{p}` comes from the route ({{{p}}}), not from the query string"),
            ));
        }
        if segments.contains(&Segment::Task) && p == Param::Task {
            return Err(field_err(
                &field,
                "`task` is already a path parameter of this route",
            ));
        }
        if !params.contains(&p) {
            params.push(p);
        }
    }
    Ok(params)
}

/// One `[[panel]]`: its source, the parameters it takes, and the columns its chart draws.
/// Field paths in errors are relative to the panel.
fn parse_panel(
    pf: PanelFile,
    registry: &Registry,
    available: &[Param],
) -> Result<Panel, FieldError> {
    if !is_slug(&pf.id) {
        return Err(field_err(
            "id",
            format!("{:?} must be lowercase letters, digits, '-' or '_'", pf.id),
        ));
    }
    let chart: ChartKind = pf.chart.parse().map_err(|m| field_err("chart", m))?;
    let (source, query_params) = panel_source(pf.query, pf.sql, registry)?;
    let params = panel_params(pf.params.as_deref(), &query_params, available)?;
    // Parameters only a route gives: a query that needs one must sit on such a page.
    for (needed, route) in [
        (Param::Model, "/models/{author}/{model}"),
        (Param::Provider, "/providers/{provider}"),
        (Param::App, "/apps/{app}"),
    ] {
        if let Source::Named(q) = &source
            && q.params.contains(&needed)
            && !params.contains(&needed)
        {
            return Err(field_err(
                "query",
                format!(
                    "query {:?} needs a {needed}: use it on a {route} page",
                    q.name
                ),
            ));
        }
    }
    let roles = chart_roles(chart, &pf.columns, &source)?;
    Ok(Panel {
        id: pf.id,
        title: pf.title,
        description: pf.description,
        source,
        chart,
        params,
        roles,
    })
}

/// Where a panel's rows come from: a named query or its own SQL (never both), and the
/// parameters that source can take.
fn panel_source(
    query: Option<String>,
    sql: Option<String>,
    registry: &Registry,
) -> Result<(Source, Vec<Param>), FieldError> {
    match (query, sql) {
        (Some(_), Some(_)) => Err(field_err("sql", "give either `query` or `sql`, not both")),
        (None, None) => Err(field_err("query", "missing: name a query or give `sql`")),
        (Some(name), None) => {
            let q = registry.get(&name).ok_or_else(|| {
                field_err(
                    "query",
                    format!(
                        "unknown query {name:?}; known: {}",
                        registry.names().join(", ")
                    ),
                )
            })?;
            Ok((Source::Named(q.clone()), q.params.to_vec()))
        }
        (None, Some(sql)) => {
            check_placeholders(&sql).map_err(|m| field_err("sql", m))?;
            // A segment is a part of cells, which SQL over events cannot take (see
            // `modelshare_query::privacy`): SQL panels answer for all lengths.
            let params = Param::ALL
                .iter()
                .copied()
                .filter(|p| *p != Param::Context)
                .collect();
            Ok((Source::Sql(sql), params))
        }
    }
}

/// The parameters a panel passes on: those listed (each taken by the query and provided by the
/// page), or by default every one the query takes that the page provides.
fn panel_params(
    listed: Option<&[String]>,
    query_params: &[Param],
    available: &[Param],
) -> Result<Vec<Param>, FieldError> {
    let Some(list) = listed else {
        return Ok(query_params
            .iter()
            .copied()
            .filter(|p| available.contains(p))
            .collect());
    };
    let mut out = Vec::new();
    for (j, p) in list.iter().enumerate() {
        let field = format!("params[{j}]");
        let p: Param = p.parse().map_err(|m| field_err(&field, m))?;
        if !query_params.contains(&p) {
            return Err(field_err(&field, format!("the query does not take `{p}`")));
        }
        if !available.contains(&p) {
            return Err(field_err(
                &field,
                format!("this page does not provide `{p}` (route and params)"),
            ));
        }
        out.push(p);
    }
    Ok(out)
}

/// The column behind each of the chart's roles: given in the file, else the named query's
/// default; each must be a column of the query.
fn chart_roles(
    chart: ChartKind,
    columns: &BTreeMap<String, String>,
    source: &Source,
) -> Result<BTreeMap<String, String>, FieldError> {
    let mut roles = BTreeMap::new();
    for (role, column) in columns {
        if !chart.roles().contains(&role.as_str()) {
            return Err(field_err(
                &format!("columns.{role}"),
                format!(
                    "chart {chart} has no role {role:?}; roles: {}",
                    chart.roles().join(", ")
                ),
            ));
        }
        roles.insert(role.clone(), column.clone());
    }
    let Source::Named(q) = source else {
        return Ok(roles);
    };
    for role in chart.roles() {
        if !roles.contains_key(*role) {
            let column = q
                .roles
                .iter()
                .find(|(r, _)| r == role)
                .map_or(*role, |(_, c)| *c);
            roles.insert((*role).to_owned(), column.to_owned());
        }
    }
    if chart != ChartKind::Table && q.columns.is_empty() {
        return Err(field_err(
            "chart",
            format!(
                "query {:?} has data-dependent columns; it can only be shown as chart = \"table\"",
                q.name
            ),
        ));
    }
    for role in chart.roles() {
        let column = &roles[*role];
        if !q.columns.contains(&column.as_str()) {
            return Err(field_err(
                &format!("columns.{role}"),
                format!(
                    "query {:?} has no column {column:?}; columns: {}",
                    q.name,
                    q.columns.join(", ")
                ),
            ));
        }
    }
    Ok(roles)
}

fn parse_route(route: &str) -> Result<Vec<Segment>, String> {
    let Some(rest) = route.strip_prefix('/') else {
        return Err(format!("{route:?} must start with '/'"));
    };
    if rest.is_empty() {
        return Ok(vec![]);
    }
    let mut segments = Vec::new();
    for s in rest.split('/') {
        let seg = match s {
            "{task}" => Segment::Task,
            "{author}" => Segment::Author,
            "{model}" => Segment::Model,
            "{provider}" => Segment::Provider,
            "{app}" => Segment::App,
            s if is_slug(s) => Segment::Literal(s.to_owned()),
            s => {
                return Err(format!(
                    "segment {s:?} of {route:?}: use lowercase literals or {{task}}, {{author}}, {{model}}, {{provider}}, {{app}}"
                ));
            }
        };
        if segments.contains(&seg) {
            return Err(format!("{route:?} repeats a path parameter"));
        }
        segments.push(seg);
    }
    if let Some(Segment::Literal(first)) = segments.first()
        && RESERVED.contains(&first.as_str())
    {
        return Err(format!("{route:?} is reserved for the API"));
    }
    let pos = |s: Segment| segments.iter().position(|x| *x == s);
    match (pos(Segment::Author), pos(Segment::Model)) {
        (None, None) => {}
        (Some(a), Some(m)) if m == a + 1 => {}
        _ => {
            return Err(format!(
                "{route:?}: a model is addressed as {{author}}/{{model}}, both, in that order"
            ));
        }
    }
    Ok(segments)
}

/// Every `$name` in the SQL must be one the site binds.
fn check_placeholders(sql: &str) -> Result<(), String> {
    let bytes = sql.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'$' {
            let start = i + 1;
            let mut end = start;
            while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
                end += 1;
            }
            let name = &sql[start..end];
            if !SQL_PLACEHOLDERS.contains(&name) {
                return Err(format!(
                    "placeholder ${name} is not bound; available: {}",
                    SQL_PLACEHOLDERS
                        .iter()
                        .map(|p| format!("${p}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                ));
            }
            i = end;
        } else {
            i += 1;
        }
    }
    if sql.trim().is_empty() {
        return Err("empty SQL".into());
    }
    Ok(())
}

/// All dashboards of a site.
#[derive(Debug, Clone)]
pub struct Dashboards {
    pub pages: Vec<Dashboard>,
}

impl Dashboards {
    /// Parses `(file name, text)` pairs; routes and ids must be unique.
    pub fn from_sources(
        sources: &[(String, String)],
        registry: &Registry,
    ) -> Result<Dashboards, SiteError> {
        let mut pages: Vec<Dashboard> = Vec::new();
        for (file, text) in sources {
            let id = Path::new(file)
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let d = parse(file, &id, text, registry)?;
            if let Some(other) = pages.iter().find(|p| p.route == d.route) {
                return Err(SiteError::Dashboard {
                    file: file.clone(),
                    field: "route".into(),
                    message: format!("{:?} is also the route of {}", d.route, other.file),
                });
            }
            pages.push(d);
        }
        if pages.is_empty() {
            return Err(SiteError::Dashboard {
                file: "(dashboards)".into(),
                field: "(files)".into(),
                message: "no dashboard files (*.toml) found".into(),
            });
        }
        Ok(Dashboards { pages })
    }

    /// Reads every `*.toml` in `dir` (sorted by name).
    pub fn load_dir(dir: &Path, registry: &Registry) -> Result<Dashboards, SiteError> {
        let io = |e: std::io::Error| SiteError::Io(format!("{}: {e}", dir.display()));
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .map_err(io)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        let mut sources = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f)
                .map_err(|e| SiteError::Io(format!("{}: {e}", f.display())))?;
            sources.push((f.display().to_string(), text));
        }
        Dashboards::from_sources(&sources, registry)
    }

    /// The dashboards compiled into the binary from the repository's `dashboards/`.
    pub fn embedded(registry: &Registry) -> Result<Dashboards, SiteError> {
        let sources: Vec<(String, String)> = crate::EMBEDDED_DASHBOARDS
            .iter()
            .map(|(name, text)| (format!("dashboards/{name}"), (*text).to_owned()))
            .collect();
        Dashboards::from_sources(&sources, registry)
    }

    pub fn get(&self, id: &str) -> Option<&Dashboard> {
        self.pages.iter().find(|p| p.id == id)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<Dashboard, String> {
        parse("dashboards/t.toml", "t", text, &Registry::builtin()).map_err(|e| e.to_string())
    }

    const OK: &str = r#"
route = "/"
title = "Home"
params = ["period", "date"]
[[panel]]
id = "lb"
title = "Leaderboard"
query = "leaderboard"
chart = "table"
"#;

    #[test]
    fn a_valid_page_parses() {
        let d = load(OK).unwrap();
        assert_eq!(d.panels.len(), 1);
        assert_eq!(d.panels[0].params, vec![Param::Period, Param::Date]);
    }

    #[test]
    fn every_problem_names_the_file_and_field() {
        let cases: &[(&str, &str)] = &[
            (
                &OK.replace("chart = \"table\"", "chart = \"pie\""),
                "dashboards/t.toml: panel[0].chart: unknown chart \"pie\"",
            ),
            (
                &OK.replace("query = \"leaderboard\"", "query = \"nope\""),
                "dashboards/t.toml: panel[0].query: unknown query \"nope\"",
            ),
            (
                &OK.replace("title = \"Home\"\n", ""),
                "dashboards/t.toml: line 1: missing field `title`",
            ),
            (
                &OK.replace("route = \"/\"", "route = \"/v1/x\""),
                "dashboards/t.toml: route: \"/v1/x\" is reserved",
            ),
            (
                &OK.replace("route = \"/\"", "route = \"/models/{model}\""),
                "dashboards/t.toml: route: \"/models/{model}\": a model is addressed",
            ),
            (
                &OK.replace("[\"period\", \"date\"]", "[\"period\", \"when\"]"),
                "dashboards/t.toml: params[1]: unknown parameter \"when\"",
            ),
            (
                &OK.replace("id = \"lb\"", "id = \"lb\"\ncolour = \"red\""),
                "unknown field `colour`",
            ),
            (
                &OK.replace("query = \"leaderboard\"", "query = \"model_providers\""),
                "dashboards/t.toml: panel[0].query: query \"model_providers\" needs a model",
            ),
            (
                &OK.replace(
                    "chart = \"table\"",
                    "chart = \"bar\"\ncolumns = { value = \"nope\" }",
                ),
                "dashboards/t.toml: panel[0].columns.value: query \"leaderboard\" has no column \"nope\"",
            ),
            (
                &OK.replace(
                    "query = \"leaderboard\"",
                    "sql = \"SELECT 1 FROM events WHERE model = $modle\"",
                ),
                "dashboards/t.toml: panel[0].sql: placeholder $modle is not bound",
            ),
            (
                &OK.replace(
                    "query = \"leaderboard\"\nchart = \"table\"",
                    "query = \"task_matrix\"\nchart = \"line\"",
                ),
                "dashboards/t.toml: panel[0].chart: query \"task_matrix\" has data-dependent columns",
            ),
            (
                &format!(
                    "{OK}\n[[panel]]\nid = \"lb\"\ntitle = \"x\"\nquery = \"tasks\"\nchart = \"table\"\n"
                ),
                "dashboards/t.toml: panel[1].id: \"lb\" is used twice",
            ),
            ("route = [", "dashboards/t.toml: line 1:"),
        ];
        for (text, want) in cases {
            let got = load(text).unwrap_err();
            assert!(got.contains(want), "got {got:?}, want {want:?}");
        }
    }

    #[test]
    fn routes_are_checked_and_duplicate_routes_rejected() {
        assert_eq!(
            parse_route("/models/{author}/{model}").unwrap(),
            vec![
                Segment::Literal("models".into()),
                Segment::Author,
                Segment::Model
            ]
        );
        assert!(parse_route("/Tasks").is_err());
        assert!(parse_route("tasks").is_err());
        let sources = vec![
            ("a.toml".to_owned(), OK.to_owned()),
            ("b.toml".to_owned(), OK.to_owned()),
        ];
        let e = Dashboards::from_sources(&sources, &Registry::builtin())
            .unwrap_err()
            .to_string();
        assert_eq!(e, "b.toml: route: \"/\" is also the route of a.toml");
    }
}
