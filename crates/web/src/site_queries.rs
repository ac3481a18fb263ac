//! Named queries the website's dashboards can use beyond the built-in ones: the preference
//! index (`/index`), a model's retention (model pages), the weekly snapshots (`/snapshots`) and
//! the apps shown by name (`/apps`, `/apps/{app}`). They live here because they need the lake's
//! rollup, snapshot directory and consent records, which the site crate does not know about.

use crate::analytics::{ShiftKind, compute_shifts};
use crate::apps::{RankedApp, ranked_apps};
use crate::public_apps::PublicAppStore;
use modelshare_analytics::index::{IndexConfig, preference_index};
use modelshare_analytics::retention::retention;
use modelshare_analytics::{AnalyticsConfig, AnalyticsError, Panel, Rollups, Weeks};
use modelshare_event::event::author_of;
use modelshare_ingest::Lake;
use modelshare_site::SiteError;
use modelshare_site::queries::{Args, NamedQuery, Param, Registry, app_href, model_href, run_fn};
use modelshare_site::table::{Cell, Column, Format, Table};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Weeks of behaviour behind the index and retention panels.
const WINDOW_WEEKS: u32 = 12;

fn site_error(e: AnalyticsError) -> SiteError {
    match e {
        AnalyticsError::Query(q) => SiteError::Query(q),
        other => SiteError::Source {
            source_name: "the preference analytics",
            message: other.to_string(),
        },
    }
}

/// The rollups of the lake at `lake_root`.
fn open_rollups(lake_root: &Path) -> Result<Rollups, SiteError> {
    Lake::open(lake_root)
        .map(Rollups::new)
        .map_err(|e| SiteError::Source {
            source_name: "opening the lake's rollups",
            message: e.to_string(),
        })
}

/// The panel of the [`WINDOW_WEEKS`] weeks ending with the page's period.
async fn window_panel(
    engine: &modelshare_query::QueryEngine,
    a: &Args,
    lake_root: &Path,
) -> Result<(Panel, Weeks), SiteError> {
    let rollups = open_rollups(lake_root)?;
    let weeks = Weeks::ending(a.period.start, WINDOW_WEEKS);
    let panel = Panel::load(engine, &rollups, a.task, a.context, weeks)
        .await
        .map_err(site_error)?;
    Ok((panel, weeks))
}

/// A model's name linking to its page.
fn model_cell(model: &str) -> Cell {
    Cell::Link {
        text: model.to_owned(),
        href: model_href(model),
    }
}

fn count(n: u64) -> Cell {
    Cell::Int(i64::try_from(n).unwrap_or(i64::MAX))
}

async fn index_table(
    engine: modelshare_query::QueryEngine,
    a: Args,
    lake_root: PathBuf,
) -> Result<Table, SiteError> {
    let (panel, weeks) = window_panel(&engine, &a, &lake_root).await?;
    let config = IndexConfig {
        analytics: AnalyticsConfig {
            min_apps: a.min_apps,
        },
        min_observations: 20,
        resamples: 200,
        // The same seed as `/v1/index` for the same task and window: the same intervals.
        seed: modelshare_analytics::index::seed_for(a.task, &weeks),
    };
    let idx = tokio::task::spawn_blocking(move || preference_index(&panel, config))
        .await
        .map_err(|e| SiteError::Source {
            source_name: "the preference index fit",
            message: e.to_string(),
        })?;
    let mut t = Table::new(vec![
        Column::new("rank", "#", Format::Plain),
        Column::new("model", "Model", Format::Plain),
        Column::new("author", "Author", Format::Plain),
        Column::new("rating", "Rating", Format::Plain),
        Column::new("lower", "95% low", Format::Plain),
        Column::new("upper", "95% high", Format::Plain),
        Column::new("observations", "Outcomes", Format::Count),
        Column::new("apps", "Apps", Format::Count),
    ]);
    for r in &idx.ranked {
        t.push(vec![
            Cell::Int(i64::from(r.rank)),
            model_cell(&r.model),
            Cell::text(author_of(&r.model)),
            Cell::Float(r.rating.round()),
            Cell::Float(r.lower.round()),
            Cell::Float(r.upper.round()),
            count(r.observations),
            count(r.apps),
        ]);
    }
    Ok(t)
}

async fn retention_table(
    engine: modelshare_query::QueryEngine,
    a: Args,
    lake_root: PathBuf,
) -> Result<Table, SiteError> {
    let (panel, _) = window_panel(&engine, &a, &lake_root).await?;
    let mut t = Table::new(vec![
        Column::new("after", "Weeks after", Format::Plain),
        Column::new("units", "Cohort (app × task)", Format::Count),
        Column::new("rate", "Still primary", Format::Share),
    ]);
    let Some(model) = a.model.as_deref().and_then(|m| panel.model_index(m)) else {
        return Ok(t);
    };
    let r = retention(
        &panel,
        model,
        AnalyticsConfig {
            min_apps: a.min_apps,
        },
    );
    for p in r.pooled.iter().filter(|p| p.rate.is_some()) {
        t.push(vec![
            Cell::Text(format!("{} wk", p.after_weeks)),
            count(p.units),
            p.rate.map_or(Cell::Null, Cell::Float),
        ]);
    }
    Ok(t)
}

async fn snapshots_table(lake_root: PathBuf) -> Result<Table, SiteError> {
    let list = tokio::task::spawn_blocking(move || modelshare_snapshot::list(&lake_root))
        .await
        .map_err(|e| SiteError::Source {
            source_name: "listing the snapshots",
            message: e.to_string(),
        })?
        .map_err(|e| SiteError::Source {
            source_name: "listing the snapshots",
            message: e.to_string(),
        })?;
    let mut t = Table::new(vec![
        Column::new("week", "Week", Format::Plain),
        Column::new("revision", "Revision", Format::Plain),
        Column::new("file", "File", Format::Plain),
        Column::new("rows", "Rows", Format::Count),
        Column::new("bytes", "Bytes", Format::Count),
        Column::new("sha256", "SHA-256", Format::Plain),
    ]);
    for s in list.iter().rev() {
        t.push(vec![
            Cell::Text(s.week.clone()),
            Cell::Int(i64::from(s.revision)),
            Cell::Link {
                text: s.file.clone(),
                href: format!("/v1/snapshots/{}", s.file),
            },
            count(s.rows),
            count(s.bytes),
            Cell::Text(s.sha256.clone()),
        ]);
    }
    Ok(t)
}

/// The significant gainers and losers of the page's day or week against the one before, per
/// task: what `/v1/shifts` answers, one row per movement.
async fn shifts_table(
    engine: modelshare_query::QueryEngine,
    a: Args,
    lake_root: PathBuf,
) -> Result<Table, SiteError> {
    let kind = ShiftKind::of(a.period.kind).map_err(|m| SiteError::BadParam(m.into()))?;
    let rollups = open_rollups(&lake_root)?;
    let answer = compute_shifts(&engine, &rollups, (a.task, a.context), kind, a.period.start)
        .await
        .map_err(site_error)?;
    let mut t = Table::new(vec![
        Column::new("task", "Task", Format::Plain),
        Column::new("direction", "Direction", Format::Plain),
        Column::new("model", "Model", Format::Plain),
        Column::new("change", "Change", Format::ShareChange),
        Column::new("share", "Share", Format::Share),
        Column::new("previous_share", "Share before", Format::Share),
        Column::new("apps_up", "Apps up", Format::Count),
        Column::new("apps_down", "Apps down", Format::Count),
        Column::new("price_change", "Price change", Format::Plain),
    ]);
    for task in &answer.tasks {
        let moves = task.gainers.iter().map(|m| ("gained", m));
        for (direction, m) in moves.chain(task.losers.iter().map(|m| ("lost", m))) {
            let price = m
                .price_changes
                .iter()
                .map(|c| format!("{:+.1}% on {}", c.relative_change() * 100.0, c.date))
                .collect::<Vec<_>>()
                .join("; ");
            t.push(vec![
                Cell::text(task.task.as_str()),
                Cell::text(direction),
                model_cell(&m.model),
                Cell::Float(m.change),
                Cell::Float(m.share),
                Cell::Float(m.previous_share),
                count(m.apps_up),
                count(m.apps_down),
                Cell::Text(price),
            ]);
        }
    }
    Ok(t)
}

/// The shown apps of the page's period, most tokens first.
async fn shown_apps(
    engine: &modelshare_query::QueryEngine,
    store: &PublicAppStore,
    a: &Args,
) -> Result<Vec<RankedApp>, SiteError> {
    Ok(ranked_apps(engine, store, a.period, a.task).await?)
}

/// The apps shown by name, ranked by tokens, with their top models.
async fn apps_table(
    engine: modelshare_query::QueryEngine,
    a: Args,
    store: Arc<PublicAppStore>,
) -> Result<Table, SiteError> {
    let mut t = Table::new(vec![
        Column::new("rank", "#", Format::Plain),
        Column::new("app", "App", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("requests", "Requests", Format::Count),
        Column::new("top_models", "Top models", Format::Plain),
        Column::new("url", "Link", Format::Plain),
    ]);
    for r in shown_apps(&engine, &store, &a).await? {
        let top = r
            .models
            .iter()
            .take(crate::apps::DEFAULT_TOP_MODELS)
            .map(|m| format!("{} ({:.0}%)", m.model, m.share * 100.0))
            .collect::<Vec<_>>()
            .join(", ");
        t.push(vec![
            Cell::Int(i64::from(r.rank)),
            Cell::Link {
                text: r.app.name.clone(),
                href: app_href(&r.app.slug),
            },
            count(r.tokens),
            count(r.requests),
            Cell::Text(top),
            r.app.url.map_or(Cell::Null, |url| Cell::Link {
                text: url.clone(),
                href: url,
            }),
        ]);
    }
    Ok(t)
}

/// The page's app in its period: `None` when it has no counted traffic then.
async fn page_app(
    engine: &modelshare_query::QueryEngine,
    store: &PublicAppStore,
    a: &Args,
) -> Result<Option<RankedApp>, SiteError> {
    let slug = a.app()?.slug.clone();
    Ok(shown_apps(engine, store, a)
        .await?
        .into_iter()
        .find(|r| r.app.slug == slug))
}

/// Every model a shown app used in the period, with its part of the app's tokens.
async fn app_models_table(
    engine: modelshare_query::QueryEngine,
    a: Args,
    store: Arc<PublicAppStore>,
) -> Result<Table, SiteError> {
    let mut t = Table::new(vec![
        Column::new("model", "Model", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("requests", "Requests", Format::Count),
        Column::new("share", "Share of the app's tokens", Format::Share),
    ]);
    for m in page_app(&engine, &store, &a)
        .await?
        .map(|r| r.models)
        .unwrap_or_default()
    {
        t.push(vec![
            model_cell(&m.model),
            count(m.tokens),
            count(m.requests),
            Cell::Float(m.share),
        ]);
    }
    Ok(t)
}

/// A shown app's tokens per task in the period.
async fn app_tasks_table(
    engine: modelshare_query::QueryEngine,
    a: Args,
    store: Arc<PublicAppStore>,
) -> Result<Table, SiteError> {
    let mut t = Table::new(vec![
        Column::new("task", "Task", Format::Plain),
        Column::new("tokens", "Tokens", Format::Count),
        Column::new("share", "Share of the app's tokens", Format::Share),
    ]);
    if let Some(r) = page_app(&engine, &store, &a).await? {
        for (task, tokens) in &r.tasks {
            t.push(vec![
                Cell::text(task.as_str()),
                count(*tokens),
                Cell::Float(*tokens as f64 / r.tokens.max(1) as f64),
            ]);
        }
    }
    Ok(t)
}

/// Adds `preference_index`, `retention`, `shifts` and `snapshots` for the lake at `lake_root`,
/// and `apps`, `app_models` and `app_tasks` for the apps `public_apps` shows.
pub fn register(
    registry: &mut Registry,
    lake_root: &Path,
    public_apps: &Arc<PublicAppStore>,
) -> Result<(), SiteError> {
    let root = lake_root.to_owned();
    registry.register(NamedQuery {
        name: "preference_index",
        params: &[Param::Date, Param::Task, Param::Context],
        columns: &[
            "rank",
            "model",
            "author",
            "rating",
            "lower",
            "upper",
            "observations",
            "apps",
        ],
        roles: &[
            ("label", "model"),
            ("estimate", "rating"),
            ("lower", "lower"),
            ("upper", "upper"),
        ],
        run: run_fn(move |e, a| Box::pin(index_table(e, a, root.clone()))),
    })?;
    let root = lake_root.to_owned();
    registry.register(NamedQuery {
        name: "retention",
        params: &[Param::Date, Param::Model],
        columns: &["after", "units", "rate"],
        roles: &[("label", "after"), ("value", "rate")],
        run: run_fn(move |e, a| Box::pin(retention_table(e, a, root.clone()))),
    })?;
    let root = lake_root.to_owned();
    registry.register(NamedQuery {
        name: "shifts",
        params: &[Param::Period, Param::Date, Param::Task, Param::Context],
        columns: &[
            "task",
            "direction",
            "model",
            "change",
            "share",
            "previous_share",
            "apps_up",
            "apps_down",
            "price_change",
        ],
        roles: &[("label", "model"), ("value", "change")],
        run: run_fn(move |e, a| Box::pin(shifts_table(e, a, root.clone()))),
    })?;
    let root = lake_root.to_owned();
    registry.register(NamedQuery {
        name: "snapshots",
        params: &[],
        columns: &["week", "revision", "file", "rows", "bytes", "sha256"],
        roles: &[],
        run: run_fn(move |_, _| Box::pin(snapshots_table(root.clone()))),
    })?;
    let store = Arc::clone(public_apps);
    registry.register(NamedQuery {
        name: "apps",
        params: &[Param::Period, Param::Date, Param::Task],
        columns: &["rank", "app", "tokens", "requests", "top_models", "url"],
        roles: &[("label", "app"), ("value", "tokens")],
        run: run_fn(move |e, a| Box::pin(apps_table(e, a, Arc::clone(&store)))),
    })?;
    let store = Arc::clone(public_apps);
    registry.register(NamedQuery {
        name: "app_models",
        params: &[Param::Period, Param::Date, Param::App],
        columns: &["model", "tokens", "requests", "share"],
        roles: &[("label", "model"), ("value", "share")],
        run: run_fn(move |e, a| Box::pin(app_models_table(e, a, Arc::clone(&store)))),
    })?;
    let store = Arc::clone(public_apps);
    registry.register(NamedQuery {
        name: "app_tasks",
        params: &[Param::Period, Param::Date, Param::App],
        columns: &["task", "tokens", "share"],
        roles: &[("label", "task"), ("value", "share")],
        run: run_fn(move |e, a| Box::pin(app_tasks_table(e, a, Arc::clone(&store)))),
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelshare_site::dashboard::Dashboards;

    /// The shipped dashboards name built-in queries and the ones registered here; together
    /// they must all resolve (the site crate alone cannot check the pages that use ours).
    #[test]
    fn the_shipped_dashboards_are_valid() {
        let mut registry = Registry::builtin();
        register(&mut registry, Path::new("unused"), &Arc::default())
            .unwrap_or_else(|e| panic!("{e}"));
        let d = Dashboards::embedded(&registry).unwrap_or_else(|e| panic!("{e}"));
        let mut routes: Vec<&str> = d.pages.iter().map(|p| p.route.as_str()).collect();
        routes.sort();
        assert_eq!(
            routes,
            [
                "/",
                "/agents",
                "/apps",
                "/apps/{app}",
                "/index",
                "/models/{author}/{model}",
                "/providers",
                "/providers/{provider}",
                "/shifts",
                "/snapshots",
                "/tasks/{task}"
            ]
        );
        let mut again = Registry::builtin();
        register(&mut again, Path::new("unused"), &Arc::default())
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            register(&mut again, Path::new("unused"), &Arc::default()).is_err(),
            "names are unique"
        );
    }
}
