//! The website's HTTP side: one route per dashboard page, `/charts/{dashboard}/{panel}.svg`,
//! and HTML error pages. Parameters are parsed strictly with [`crate::params`]; the pages,
//! charts and queries themselves come from `modelshare-site`.

use crate::params::{Params, ProviderName};
use crate::{ApiError, AppState};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{Html, IntoResponse, Response};
use chrono::{NaiveDate, Utc};
use modelshare_event::{Context, Task};
use modelshare_query::{Period, PeriodKind};
use modelshare_site::dashboard::{ChartKind, Dashboard, Segment};
use modelshare_site::html::{self, PageContext};
use modelshare_site::queries::{self, Args, Param, ShownApp};
use modelshare_site::{Site, SiteError};
use std::sync::Arc;

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// How long browsers and proxies may reuse a page or chart before revalidating.
const CACHE_CONTROL: &str = "public, max-age=60";

/// An HTML error page with its status.
#[derive(Debug)]
pub struct PageError {
    status: StatusCode,
    message: String,
    site: Option<Arc<Site>>,
}

impl PageError {
    fn new(status: StatusCode, message: impl Into<String>, site: Option<&Arc<Site>>) -> Self {
        PageError {
            status,
            message: message.into(),
            site: site.cloned(),
        }
    }
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        let title = match self.status {
            StatusCode::BAD_REQUEST => "Bad request",
            StatusCode::NOT_FOUND => "Not found",
            StatusCode::SERVICE_UNAVAILABLE => "Busy",
            _ => "Something went wrong",
        };
        let message = if self.status.is_server_error() {
            tracing::error!(detail = %self.message, "page failed");
            "The figures could not be computed right now; try again shortly.".to_owned()
        } else {
            self.message
        };
        let body = html::error_page(self.site.as_deref(), self.status.as_u16(), title, &message);
        (self.status, Html(body)).into_response()
    }
}

/// The error page for `e`: a reader's mistake says what was wrong; a server fault (500) logs its
/// cause (paths, engine messages) and shows none of it.
fn page_error(status: StatusCode, e: &dyn std::fmt::Display, site: &Arc<Site>) -> PageError {
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        tracing::error!(error = %e, "page failed");
        return PageError::new(
            status,
            "this page could not be built; the server log has the cause".to_owned(),
            Some(site),
        );
    }
    PageError::new(status, e.to_string(), Some(site))
}

fn from_api(e: ApiError, site: &Arc<Site>) -> PageError {
    let status = match &e {
        ApiError::InvalidParameter(_) | ApiError::BadRequest(_) => StatusCode::BAD_REQUEST,
        ApiError::NotFound(_) => StatusCode::NOT_FOUND,
        ApiError::QueryTimeout | ApiError::Unavailable(_) => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    page_error(status, &e, site)
}

fn from_site(e: SiteError, site: &Arc<Site>) -> PageError {
    let status = match &e {
        SiteError::BadParam(_) => StatusCode::BAD_REQUEST,
        SiteError::NotFound(_) => StatusCode::NOT_FOUND,
        SiteError::Query(modelshare_query::QueryError::Timeout(_)) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    page_error(status, &e, site)
}

/// Decodes `%XX` escapes of a path segment (invalid UTF-8 is replaced, never trusted).
fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2]))
        {
            out.push((h * 16 + l) as u8);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What a page's request path names.
#[derive(Debug, Default)]
struct PathValues {
    task: Option<Task>,
    model: Option<String>,
    provider: Option<ProviderName>,
    /// An app page's slug.
    app: Option<String>,
}

/// The task, model, provider and app named by the request path of `dashboard`.
fn path_values(dashboard: &Dashboard, uri: &Uri) -> Result<PathValues, String> {
    let parts: Vec<&str> = uri.path().trim_matches('/').split('/').collect();
    let (mut values, mut author, mut model) = (PathValues::default(), None, None);
    for (seg, part) in dashboard.segments.iter().zip(&parts) {
        match seg {
            Segment::Literal(_) => {}
            Segment::Task => {
                let t = percent_decode(part);
                values.task = Some(t.parse::<Task>().map_err(|e| e.to_string())?);
            }
            Segment::Author => author = Some(percent_decode(part)),
            Segment::Model => model = Some(percent_decode(part)),
            Segment::Provider => {
                let p = percent_decode(part).parse::<ProviderName>();
                values.provider = Some(p.map_err(|e| format!("provider {e}"))?);
            }
            Segment::App => values.app = Some(percent_decode(part)),
        }
    }
    values.model = match (author, model) {
        (Some(a), Some(m)) => Some(format!("{a}/{m}")),
        _ => None,
    };
    Ok(values)
}

/// The latest day with data, cached like a panel.
async fn latest(state: &AppState, site: &Arc<Site>) -> Result<Option<NaiveDate>, SiteError> {
    let generation = state.lake_generation();
    if let Some(t) = site.cache.get("latest", generation) {
        return Ok(t.rows.first().and_then(|r| r[0].label().parse().ok()));
    }
    let d = queries::latest_date(&state.query).await?;
    let mut t = modelshare_site::table::Table::new(vec![modelshare_site::table::Column::new(
        "d",
        "d",
        modelshare_site::table::Format::Plain,
    )]);
    if let Some(d) = d {
        t.push(vec![modelshare_site::table::Cell::Text(d.to_string())]);
    }
    site.cache.put("latest".into(), generation, t);
    Ok(d)
}

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// A value the page's path gives, or else the query string's when the page or chart takes
/// `param` there.
fn path_or_query<T: std::str::FromStr>(
    from_path: Option<T>,
    accepted: &[Param],
    param: Param,
    p: &Params,
) -> Result<Option<T>, crate::ApiError>
where
    T::Err: std::fmt::Display,
{
    match from_path {
        Some(v) => Ok(Some(v)),
        None if accepted.contains(&param) => p.get::<T>(param.as_str()),
        None => Ok(None),
    }
}

/// Resolves period, date, task, model, provider and app for a page or chart; a model or
/// provider the data and catalog do not know, or an app not shown by name, is a 404.
async fn resolve_args(
    state: &AppState,
    site: &Arc<Site>,
    p: &Params,
    accepted: &[Param],
    path: PathValues,
) -> Result<(Args, NaiveDate, Option<NaiveDate>), PageError> {
    let api = |e| from_api(e, site);
    let kind = if accepted.contains(&Param::Period) {
        p.get::<PeriodKind>("period").map_err(api)?
    } else {
        None
    }
    .unwrap_or(PeriodKind::Week);
    let latest = latest(state, site)
        .await
        .map_err(|e| from_site(e, site))?
        .map(|l| l.min(today()));
    let date = if accepted.contains(&Param::Date) {
        p.date("date").map_err(api)?
    } else {
        None
    }
    .unwrap_or_else(|| latest.unwrap_or_else(today));
    let from = |value, param| path_or_query(value, accepted, param, p).map_err(api);
    let task = path_or_query(path.task, accepted, Param::Task, p).map_err(api)?;
    let model = from(path.model, Param::Model)?;
    let provider = path_or_query(path.provider, accepted, Param::Provider, p)
        .map_err(api)?
        .map(|v| v.0);
    if let Some(m) = &model {
        let exists = queries::model_exists(&state.query, m)
            .await
            .map_err(|e| from_site(e, site))?;
        if !exists {
            return Err(PageError::new(
                StatusCode::NOT_FOUND,
                format!("no model {m:?} in the catalog or the data"),
                Some(site),
            ));
        }
    }
    if let Some(v) = &provider {
        let exists = queries::provider_exists(&state.query, v)
            .await
            .map_err(|e| from_site(e, site))?;
        if !exists {
            return Err(PageError::new(
                StatusCode::NOT_FOUND,
                format!("no provider {v:?} in the data"),
                Some(site),
            ));
        }
    }
    let app = match from(path.app, Param::App)? {
        None => None,
        Some(slug) => {
            let shown = state.public_apps.by_slug(&slug).ok_or_else(|| {
                PageError::new(
                    StatusCode::NOT_FOUND,
                    format!("no app shown as {slug:?}"),
                    Some(site),
                )
            })?;
            Some(ShownApp {
                slug: shown.slug,
                name: shown.name,
            })
        }
    };
    let context = path_or_query(None::<Context>, accepted, Param::Context, p).map_err(api)?;
    let args = Args {
        period: Period::containing(kind, date),
        task,
        model,
        provider,
        app,
        context,
        min_apps: state.query.config().min_apps,
    };
    Ok((args, date, latest))
}

/// The `GET` route of dashboard `id`.
pub fn page_route(id: &str) -> axum::routing::MethodRouter<AppState> {
    let id: Arc<str> = Arc::from(id);
    axum::routing::get(move |s: State<AppState>, uri: Uri, q: QueryParams| {
        page(s, Arc::clone(&id), uri, q)
    })
}

/// `GET` a dashboard page.
pub async fn page(
    State(state): State<AppState>,
    id: Arc<str>,
    uri: Uri,
    q: QueryParams,
) -> Result<Response, PageError> {
    let Some(site) = state.site.clone() else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "no website here",
            None,
        ));
    };
    let Some(d) = site.page(&id) else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "no such page",
            Some(&site),
        ));
    };
    let path =
        path_values(d, &uri).map_err(|m| PageError::new(StatusCode::NOT_FOUND, m, Some(&site)))?;
    let names: Vec<&str> = d.params.iter().map(|p| p.as_str()).collect();
    let p = Params::new(q, &names).map_err(|e| from_api(e, &site))?;
    let (args, date, latest) = resolve_args(&state, &site, &p, &d.params, path).await?;
    // The panels of one page ask some questions twice (a leaderboard's sums at two limits, the
    // tasks overview): computed once for the page.
    let engine = state.query.sharing_answers();
    let runs = d
        .panels
        .iter()
        .map(|panel| site.run_panel_cached(&engine, d, panel, &args, state.lake_generation()));
    let tables = futures::future::join_all(runs).await;
    for (panel, t) in d.panels.iter().zip(&tables) {
        if let Err(e) = t {
            tracing::warn!(page = %d.id, panel = %panel.id, error = %e, "panel failed");
        }
    }
    let ctx = PageContext {
        site: &site,
        dashboard: d,
        path: uri.path(),
        args: &args,
        date,
        latest,
    };
    let body = html::render_page(&ctx, &tables);
    Ok((
        [(
            header::CACHE_CONTROL,
            HeaderValue::from_static(CACHE_CONTROL),
        )],
        Html(body),
    )
        .into_response())
}

/// `GET /charts/{dashboard}/{panel}.svg`: the panel's chart, with a strong ETag.
pub async fn chart(
    State(state): State<AppState>,
    axum::extract::Path((dash, file)): axum::extract::Path<(String, String)>,
    headers: HeaderMap,
    q: QueryParams,
) -> Result<Response, PageError> {
    let Some(site) = state.site.clone() else {
        return Err(PageError::new(
            StatusCode::NOT_FOUND,
            "no website here",
            None,
        ));
    };
    let not_found = |m: String| PageError::new(StatusCode::NOT_FOUND, m, Some(&site));
    let d = site
        .page(&dash)
        .ok_or_else(|| not_found(format!("no dashboard {dash:?}")))?;
    let panel = file
        .strip_suffix(".svg")
        .and_then(|id| d.panel(id))
        .filter(|p| p.chart != ChartKind::Table)
        .ok_or_else(|| not_found(format!("no chart {file:?} on dashboard {dash:?}")))?;
    let names: Vec<&str> = panel.params.iter().map(|p| p.as_str()).collect();
    let p = Params::new(q, &names).map_err(|e| from_api(e, &site))?;
    for (needed, what) in [
        (Param::Model, "author/model"),
        (Param::Provider, "a provider"),
        (Param::App, "an app's slug"),
    ] {
        if panel.params.contains(&needed)
            && p.get::<String>(needed.as_str()).ok().flatten().is_none()
        {
            return Err(PageError::new(
                StatusCode::BAD_REQUEST,
                format!("{needed}: required for this chart ({what})"),
                Some(&site),
            ));
        }
    }
    let (args, _, _) =
        resolve_args(&state, &site, &p, &panel.params, PathValues::default()).await?;
    let table = site
        .run_panel_cached(&state.query, d, panel, &args, state.lake_generation())
        .await
        .map_err(|e| from_site(e, &site))?;
    let (kind, roles) = (panel.chart, panel.roles.clone());
    let svg =
        tokio::task::spawn_blocking(move || modelshare_site::chart::render(kind, &table, &roles))
            .await
            .map_err(|e| {
                PageError::new(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    e.to_string(),
                    Some(&site),
                )
            })?
            .map_err(|e| from_site(e, &site))?;
    let etag = format!("\"{:016x}\"", xxhash_rust::xxh3::xxh3_64(svg.as_bytes()));
    let cache = [
        (header::ETAG, etag.clone()),
        (header::CACHE_CONTROL, CACHE_CONTROL.to_owned()),
    ];
    let matches = headers
        .get(header::IF_NONE_MATCH)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.split(',').any(|t| t.trim() == etag || t.trim() == "*"));
    if matches {
        return Ok((StatusCode::NOT_MODIFIED, cache).into_response());
    }
    Ok((
        cache,
        [(
            header::CONTENT_TYPE,
            "image/svg+xml; charset=utf-8".to_owned(),
        )],
        svg,
    )
        .into_response())
}

/// Unknown paths: JSON under `/v1`, an HTML page elsewhere.
pub async fn fallback(State(state): State<AppState>, uri: Uri) -> Response {
    if uri.path().starts_with("/v1") || state.site.is_none() {
        return ApiError::NotFound("no such endpoint".into()).into_response();
    }
    PageError::new(
        StatusCode::NOT_FOUND,
        format!("there is no page at {}", uri.path()),
        state.site.as_ref(),
    )
    .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_path_segments() {
        assert_eq!(percent_decode("a%20b%3Cx%3E"), "a b<x>");
        assert_eq!(percent_decode("100%"), "100%");
        assert_eq!(percent_decode("%zz"), "%zz");
        assert_eq!(percent_decode("%E2%9C%93"), "✓");
        assert_eq!(percent_decode("%é%"), "%é%");
    }
}
