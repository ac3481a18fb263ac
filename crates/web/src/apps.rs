//! Apps shown by name: `GET /v1/apps` ranks the apps that opted in by tokens with their top
//! models, and the admin endpoints record or withdraw an app's consent
//! (`PUT`/`DELETE /v1/admin/apps/{app_id}`). The consent records are [`crate::public_apps`];
//! which of an app's requests count is the rule of `modelshare_query::public_apps`.

use crate::auth::Admin;
use crate::ingest::read_body;
use crate::openapi::query_params;
use crate::params::Params;
use crate::public_apps::{PublicApp, PublicAppError, PublicAppStore};
use crate::{ApiError, AppState};
use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use chrono::Utc;
use modelshare_event::Task;
use modelshare_query::public_apps::PublicAppsQuery;
use modelshare_query::{Period, PeriodKind, QueryEngine, QueryError};
use serde::Deserialize;
use serde_json::{Value, json};
use std::collections::BTreeMap;

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Top models listed per app unless `top` says otherwise.
pub const DEFAULT_TOP_MODELS: usize = 3;

/// One model's part of a shown app's tokens.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelPart {
    pub model: String,
    pub tokens: u64,
    pub requests: u64,
    /// Of the app's tokens in the period.
    pub share: f64,
}

/// One shown app's figures in a period.
#[derive(Debug, Clone, PartialEq)]
pub struct RankedApp {
    pub rank: u32,
    pub app: PublicApp,
    pub tokens: u64,
    pub requests: u64,
    /// Every model it used, most tokens first.
    pub models: Vec<ModelPart>,
    /// Its tokens per task, most first.
    pub tasks: Vec<(Task, u64)>,
}

/// The shown apps with traffic in `period` (and `task`), most tokens first.
pub async fn ranked_apps(
    query: &QueryEngine,
    store: &PublicAppStore,
    period: Period,
    task: Option<Task>,
) -> Result<Vec<RankedApp>, QueryError> {
    let shown = store.current();
    let q = PublicAppsQuery {
        apps: shown.iter().map(|a| a.app_id.clone()).collect(),
        period,
        task,
    };
    let mut models: BTreeMap<&str, BTreeMap<&str, (u64, u64)>> = BTreeMap::new();
    let mut tasks: BTreeMap<&str, BTreeMap<Task, u64>> = BTreeMap::new();
    let uses = query.public_app_uses(&q).await?;
    for u in &uses {
        let m = models
            .entry(&u.app_id)
            .or_default()
            .entry(&u.model)
            .or_default();
        m.0 += u.tokens;
        m.1 += u.requests;
        *tasks
            .entry(&u.app_id)
            .or_default()
            .entry(u.task)
            .or_default() += u.tokens;
    }
    let mut out: Vec<RankedApp> = shown
        .into_iter()
        .filter_map(|app| {
            let used = models.get(app.app_id.as_str())?;
            let tokens: u64 = used.values().map(|v| v.0).sum();
            let mut parts: Vec<ModelPart> = used
                .iter()
                .map(|(model, (t, r))| ModelPart {
                    model: (*model).to_owned(),
                    tokens: *t,
                    requests: *r,
                    share: *t as f64 / tokens.max(1) as f64,
                })
                .collect();
            parts.sort_by(|a, b| b.tokens.cmp(&a.tokens).then(a.model.cmp(&b.model)));
            let mut by_task: Vec<(Task, u64)> = tasks
                .get(app.app_id.as_str())
                .map(|t| t.iter().map(|(k, v)| (*k, *v)).collect())
                .unwrap_or_default();
            by_task.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            Some(RankedApp {
                rank: 0,
                requests: parts.iter().map(|p| p.requests).sum(),
                tokens,
                models: parts,
                tasks: by_task,
                app,
            })
        })
        .collect();
    out.sort_by(|a, b| b.tokens.cmp(&a.tokens).then(a.app.slug.cmp(&b.app.slug)));
    for (i, a) in out.iter_mut().enumerate() {
        a.rank = u32::try_from(i + 1).unwrap_or(u32::MAX);
    }
    Ok(out)
}

query_params!(
    /// Query parameters of `/v1/apps`.
    AppsParams = ["period", "date", "task", "top"]
);

/// Apps that chose to be shown, ranked by tokens, with their top models
///
/// Only apps whose consent is recorded (`modelshare apps publish`, or the admin endpoint) are
/// listed. An app's request counts only in cells where the apps not shown are none or at least
/// the minimum, so the shown apps' figures never expose the others (docs/METRICS.md, "Public
/// apps").
#[utoipa::path(get, path = "/v1/apps", params(AppsParams),
    responses((status = 200, description = "the shown apps, most tokens first", body = Object)))]
pub async fn list_apps(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, AppsParams::NAMES)?;
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let date = p.date("date")?.unwrap_or_else(|| Utc::now().date_naive());
    let task = p.get::<Task>("task")?;
    let top = p.bounded("top", DEFAULT_TOP_MODELS, 1, 100)?;
    let period = Period::containing(kind, date);
    let apps = ranked_apps(&s.query, &s.public_apps, period, task).await?;
    let apps: Vec<Value> = apps
        .iter()
        .map(|a| {
            let models: Vec<Value> = a
                .models
                .iter()
                .take(top)
                .map(|m| json!({ "model": m.model, "tokens": m.tokens, "share": m.share }))
                .collect();
            json!({
                "rank": a.rank,
                "name": a.app.name,
                "slug": a.app.slug,
                "url": a.app.url,
                "tokens": a.tokens,
                "requests": a.requests,
                "top_models": models,
            })
        })
        .collect();
    Ok(Json(json!({
        "period": period,
        "task": task.map(|t| t.as_str()),
        "apps": apps,
    })))
}

/// What an admin sends to show an app.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PublishRequest {
    /// The name shown (1 to 80 characters); the page is `/apps/{slug of the name}`.
    pub name: String,
    /// An `http(s)` link to the app.
    #[serde(default)]
    pub url: Option<String>,
}

fn consent_error(e: PublicAppError) -> ApiError {
    match e {
        PublicAppError::Invalid { .. } | PublicAppError::SlugTaken { .. } => {
            ApiError::BadRequest(e.to_string())
        }
        PublicAppError::NotPublished(_) => ApiError::NotFound(e.to_string()),
        PublicAppError::File(_) => ApiError::StorageFault(e.to_string()),
    }
}

/// Runs a change of the consent records on the blocking pool (it reads, changes and replaces a
/// file) and answers the record it left.
async fn change_consent(
    s: &AppState,
    change: impl FnOnce(&PublicAppStore) -> Result<PublicApp, PublicAppError> + Send + 'static,
) -> Result<Json<PublicApp>, ApiError> {
    let store = std::sync::Arc::clone(&s.public_apps);
    let app = tokio::task::spawn_blocking(move || change(&store))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .map_err(consent_error)?;
    Ok(Json(app))
}

/// Record an app's consent to be shown by name (admin)
///
/// Publishing again changes the name and link. From the next read on, `/v1/apps`, `/apps` and
/// `/apps/{slug}` show the app.
#[utoipa::path(put, path = "/v1/admin/apps/{app_id}",
    params(("app_id" = String, Path, description = "the app id its events carry")),
    request_body(content = PublishRequest, content_type = "application/json"),
    responses((status = 200, description = "the recorded consent", body = Object)),
    security(("bearer" = [])))]
pub async fn publish_app(
    State(s): State<AppState>,
    _admin: Admin,
    Path(app_id): Path<String>,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Json<PublicApp>, ApiError> {
    let body = read_body(&s, body)?;
    let req: PublishRequest = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "body must be {{\"name\": \"...\", \"url\": \"https://...\"}}: {e}"
        ))
    })?;
    change_consent(&s, move |store| {
        store.publish(&app_id, &req.name, req.url.as_deref())
    })
    .await
}

/// Withdraw an app's consent (admin)
///
/// The app is no longer shown anywhere; its requests stay in the aggregates under the privacy
/// rule.
#[utoipa::path(delete, path = "/v1/admin/apps/{app_id}",
    params(("app_id" = String, Path, description = "the app id its events carry")),
    responses((status = 200, description = "the withdrawn consent", body = Object)),
    security(("bearer" = [])))]
pub async fn withdraw_app(
    State(s): State<AppState>,
    _admin: Admin,
    Path(app_id): Path<String>,
) -> Result<Json<PublicApp>, ApiError> {
    change_consent(&s, move |store| store.withdraw(&app_id)).await
}
