//! The public website: dashboards defined as files, server-rendered HTML pages and SVG charts.
//! The web crate routes requests here; this crate never touches HTTP types.
//!
//! Layout:
//! - [`cache`]: panel results by (page, panel, arguments, lake generation).
//! - [`dashboard`]: the `dashboards/*.toml` format, its start-up validation, the embedded set.
//! - [`queries`]: the named-query registry and the typed [`queries::Args`] a panel runs with.
//! - [`table`]: [`table::Table`], the one shape every query returns and every view draws.
//! - [`chart`]: SVG charts with `plotters` (stacked area, line, bar, scatter, interval).
//! - [`html`]: pages, selectors, data tables and error pages, with every string escaped.

pub mod cache;
pub mod chart;
pub mod dashboard;
pub mod html;
pub mod queries;
pub mod table;

use dashboard::{Dashboard, Dashboards, Panel, Source};
use modelshare_query::{QueryEngine, QueryError};
use queries::{Args, Param, Registry};
use std::path::Path;
use table::Table;

include!(concat!(env!("OUT_DIR"), "/dashboards.rs"));

/// Why the site could not do something.
#[derive(Debug, thiserror::Error)]
pub enum SiteError {
    /// An invalid dashboard file; fails start-up.
    #[error("{file}: {field}: {message}")]
    Dashboard {
        file: String,
        field: String,
        message: String,
    },
    #[error("cannot read dashboards: {0}")]
    Io(String),
    /// A panel's data source failed (the lake's rollups, snapshots, an analytics fit); what
    /// failed is in the message. A server fault (500), not the reader's.
    #[error("{source_name} failed: {message}")]
    Source {
        source_name: &'static str,
        message: String,
    },
    #[error("a query named {0:?} is already registered")]
    DuplicateQuery(String),
    #[error("{0}")]
    BadParam(String),
    #[error("{0}")]
    NotFound(String),
    #[error(transparent)]
    Query(#[from] QueryError),
    #[error("chart: {0}")]
    Chart(String),
}

/// The loaded dashboards and the queries they can name.
#[derive(Debug)]
pub struct Site {
    pub dashboards: Dashboards,
    pub registry: Registry,
    pub cache: cache::PanelCache,
}

impl Site {
    /// Loads `dir`'s dashboards, or the embedded ones when `dir` is `None`; any invalid file is
    /// an error naming it.
    pub fn load(registry: Registry, dir: Option<&Path>) -> Result<Site, SiteError> {
        let dashboards = match dir {
            Some(d) => Dashboards::load_dir(d, &registry)?,
            None => Dashboards::embedded(&registry)?,
        };
        Ok(Site {
            dashboards,
            registry,
            cache: cache::PanelCache::default(),
        })
    }

    pub fn page(&self, id: &str) -> Option<&Dashboard> {
        self.dashboards.get(id)
    }

    /// The page whose route is `/tasks/{task}`-shaped, for the task selector.
    pub fn task_page(&self) -> Option<&Dashboard> {
        self.dashboards.pages.iter().find(|d| {
            d.segments.len() == 2
                && matches!(d.segments[0], dashboard::Segment::Literal(_))
                && d.segments[1] == dashboard::Segment::Task
        })
    }

    /// [`Site::run_panel`] through the cache; `generation` changes whenever the data may have.
    pub async fn run_panel_cached(
        &self,
        engine: &QueryEngine,
        dashboard: &Dashboard,
        panel: &Panel,
        args: &Args,
        generation: u64,
    ) -> Result<Table, SiteError> {
        let key = format!(
            "{}/{}/{:?}",
            dashboard.id,
            panel.id,
            panel_args(panel, args)
        );
        if let Some(t) = self.cache.get(&key, generation) {
            return Ok(t);
        }
        let t = self.run_panel(engine, panel, args).await?;
        self.cache.put(key, generation, t.clone());
        Ok(t)
    }

    /// Runs a panel's query with the parameters it takes (the others left at defaults).
    pub async fn run_panel(
        &self,
        engine: &QueryEngine,
        panel: &Panel,
        args: &Args,
    ) -> Result<Table, SiteError> {
        let args = panel_args(panel, args);
        match &panel.source {
            Source::Named(q) => (q.run)(engine.clone(), args).await,
            Source::Sql(sql) => {
                let params = args
                    .sql_params()
                    .into_iter()
                    .filter(|(name, _)| uses_placeholder(sql, name))
                    .collect();
                let batches = engine.sql_with_params(sql, params).await?;
                Ok(Table::from_batches(&batches))
            }
        }
    }
}

/// The arguments a panel sees: parameters it does not take are reset.
pub fn panel_args(panel: &Panel, args: &Args) -> Args {
    let mut a = args.clone();
    if !panel.params.contains(&Param::Task) {
        a.task = None;
    }
    if !panel.params.contains(&Param::Model) {
        a.model = None;
    }
    if !panel.params.contains(&Param::Provider) {
        a.provider = None;
    }
    if !panel.params.contains(&Param::App) {
        a.app = None;
    }
    if !panel.params.contains(&Param::Context) {
        a.context = None;
    }
    a
}

/// Whether `$name` occurs in `sql` as a whole placeholder.
fn uses_placeholder(sql: &str, name: &str) -> bool {
    let needle = format!("${name}");
    sql.match_indices(&needle).any(|(i, _)| {
        sql.as_bytes()
            .get(i + needle.len())
            .is_none_or(|b| !(b.is_ascii_alphanumeric() || *b == b'_'))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_match_whole_names() {
        assert!(uses_placeholder("a = $start AND b", "start"));
        assert!(!uses_placeholder("a = $start_x", "start"));
        assert!(uses_placeholder("x >= $min_apps", "min_apps"));
    }
}
