//! The read API: leaderboard, authors, share over time, tasks. Parameters are parsed into typed
//! queries here; the figures come from `modelshare-query`.

use crate::openapi::query_params;
use crate::params::{Params, ProviderName};
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{Days, NaiveDate, Utc};
use modelshare_event::event::author_of;
use modelshare_event::{Context, ModelSlug, Task};
use modelshare_query::agents::AgentsQuery;
use modelshare_query::leaderboard::Figures;
use modelshare_query::{
    Granularity, GroupBy, Leaderboard, LeaderboardQuery, Measure, Period, PeriodKind,
    ProvidersQuery, ShareQuery,
};
use serde_json::{Value, json};

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

/// Longest range `/v1/share` and `/v1/incidents` answer in one request.
pub const MAX_RANGE_DAYS: u64 = 800;

fn today() -> NaiveDate {
    Utc::now().date_naive()
}

/// The days `from..=to` of a request: `to` defaults to today, `from` to 12 weeks before it; at
/// most [`MAX_RANGE_DAYS`] apart.
fn day_range(p: &Params) -> Result<(NaiveDate, NaiveDate), ApiError> {
    let to = p.date("to")?.unwrap_or_else(today);
    let from = p
        .date("from")?
        .unwrap_or_else(|| to - Days::new(7 * 12 - 1));
    if from > to {
        return Err(ApiError::InvalidParameter(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    if (to - from).num_days() as u64 > MAX_RANGE_DAYS {
        return Err(ApiError::InvalidParameter(format!(
            "from..to spans more than {MAX_RANGE_DAYS} days"
        )));
    }
    Ok((from, to))
}

fn figures_json(f: &Figures) -> Value {
    json!({
        "tokens": f.tokens(),
        "requests": f.requests,
        "cost_usd": f.cost.as_usd(),
        "apps": f.apps,
    })
}

fn leaderboard_query(p: &Params, group: GroupBy) -> Result<LeaderboardQuery, ApiError> {
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let date = p.date("date")?.unwrap_or_else(today);
    Ok(LeaderboardQuery {
        period: Period::containing(kind, date),
        task: p.get::<Task>("task")?,
        context: p.get::<Context>("context")?,
        by: p.get::<Measure>("by")?.unwrap_or(Measure::Tokens),
        group,
        limit: p.bounded("limit", 20, 1, 1000)?,
    })
}

query_params!(
    /// Query parameters of `/v1/leaderboard` and `/v1/authors`.
    LeaderboardParams = ["period", "date", "task", "context", "by", "limit"]
);
query_params!(
    /// Query parameters of `/v1/share`.
    ShareParams = ["task", "context", "by", "granularity", "from", "to", "top"]
);
query_params!(
    /// Query parameters of `/v1/providers`.
    ProvidersParams = ["model", "provider", "period", "date", "task"]
);
query_params!(
    /// Query parameters of `/v1/agents`.
    AgentsParams = ["period", "date", "task", "top"]
);
query_params!(
    /// Query parameters of `/v1/incidents`.
    IncidentsParams = ["from", "to"]
);
query_params!(
    /// Query parameters of `/v1/tasks`.
    TasksParams = ["period", "date", "top"]
);

fn leaderboard_json(lb: &Leaderboard, key_name: &str, list_name: &str) -> Value {
    let rows: Vec<Value> = lb
        .rows
        .iter()
        .map(|r| {
            let f = &r.figures;
            let mut row = json!({
                "rank": r.rank,
                key_name: r.key,
                "tokens": f.tokens(),
                "input_tokens": f.input_tokens,
                "output_tokens": f.output_tokens,
                "requests": f.requests,
                "apps": f.apps,
                "cost_usd": f.cost.as_usd(),
                "share": r.share,
                "previous_share": r.previous_share,
                "share_change": r.share_change(),
                "usd_per_mtok": f.usd_per_mtok(),
            });
            if key_name == "model" {
                row["author"] = json!(if r.rank.is_some() {
                    author_of(&r.key)
                } else {
                    "other"
                });
            }
            row
        })
        .collect();
    json!({
        "period": lb.query.period,
        "task": lb.query.task.map(|t| t.as_str()),
        "context": lb.query.context.map(|c| c.as_str()),
        "by": lb.query.by,
        "totals": figures_json(&lb.totals),
        list_name: rows,
    })
}

/// Models ranked by share in a period
#[utoipa::path(get, path = "/v1/leaderboard", params(LeaderboardParams),
    responses((status = 200, description = "models ranked by share, the rest folded into `other`", body = Object)))]
pub async fn leaderboard(
    State(s): State<AppState>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, LeaderboardParams::NAMES)?;
    let lb = s
        .query
        .leaderboard(leaderboard_query(&p, GroupBy::Model)?)
        .await?;
    Ok(Json(leaderboard_json(&lb, "model", "models")))
}

/// Model authors ranked by share in a period
#[utoipa::path(get, path = "/v1/authors", params(LeaderboardParams),
    responses((status = 200, description = "authors ranked by share", body = Object)))]
pub async fn authors(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, LeaderboardParams::NAMES)?;
    let lb = s
        .query
        .leaderboard(leaderboard_query(&p, GroupBy::Author)?)
        .await?;
    Ok(Json(leaderboard_json(&lb, "author", "authors")))
}

/// Share of the top models per day or week
#[utoipa::path(get, path = "/v1/share", params(ShareParams),
    responses((status = 200, description = "one series per top model, plus `other`", body = Object)))]
pub async fn share(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, ShareParams::NAMES)?;
    let granularity = p
        .get::<Granularity>("granularity")?
        .unwrap_or(Granularity::Week);
    let (from, to) = day_range(&p)?;
    let query = ShareQuery {
        task: p.get::<Task>("task")?,
        context: p.get::<Context>("context")?,
        by: p.get::<Measure>("by")?.unwrap_or(Measure::Tokens),
        granularity,
        from,
        to,
        top: p.bounded("top", 10, 1, 100)?,
    };
    let (task, context, by) = (query.task, query.context, query.by);
    let set = s.query.share(query).await?;
    let series: Vec<Value> = set
        .series
        .iter()
        .map(|x| {
            let author = if x.key == "other" {
                "other"
            } else {
                author_of(&x.key)
            };
            json!({ "model": x.key, "author": author, "share": x.share, "tokens": x.tokens })
        })
        .collect();
    Ok(Json(json!({
        "granularity": set.granularity,
        "task": task.map(|t| t.as_str()),
        "context": context.map(|c| c.as_str()),
        "by": by,
        "buckets": set.buckets,
        "series": series,
    })))
}

/// Each provider of a model, or each model of a provider: uptime, latency, throughput, fallbacks
///
/// With `model`, one row per provider that served it; with `provider`, one row per model it
/// served (each row then names its `model`); with both, the one pair. Uptime is the share of attempts not ending in `error` or `timeout`; latency (p50, p95), time
/// to first token (p50) and throughput (p50, output tokens per second after the first token)
/// are over the requests the provider served, read from hourly histograms. Served requests and
/// fallbacks are sums of the publication rule's groups of enough apps; a cell's (day, task,
/// model, provider) attempts of another status count only when enough apps had that status in
/// it (docs/METRICS.md, "Provider performance").
#[utoipa::path(get, path = "/v1/providers", params(ProvidersParams),
    responses((status = 200, description = "the rows, most attempts first", body = Object)))]
pub async fn providers(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, ProvidersParams::NAMES)?;
    let model = p.get::<ModelSlug>("model")?;
    let provider = p.get::<ProviderName>("provider")?;
    if model.is_none() && provider.is_none() {
        return Err(ApiError::InvalidParameter(
            "model or provider is required (an author/model slug, a provider name)".into(),
        ));
    }
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let query = ProvidersQuery {
        model: model.map(|m| m.as_str().to_owned()),
        provider: provider.map(|p| p.0),
        period: Period::containing(kind, p.date("date")?.unwrap_or_else(today)),
        task: p.get::<Task>("task")?,
    };
    let rows = s.query.providers(&query).await?;
    Ok(Json(json!({
        "model": query.model,
        "provider": query.provider,
        "period": query.period,
        "task": query.task.map(|t| t.as_str()),
        "providers": rows,
    })))
}

/// Agent workloads: traces, calls per trace, and the models of first and later calls
///
/// Over calls that name their `trace_id` (and `step`): traces, calls per trace (p50, p95, and
/// the largest count that the traces of at least the minimum number of apps reached), the share
/// of traced calls made in traces of more than one call, and the `top` models of first calls
/// (`step = 0`) and of later calls. Every figure counts the calls with a step in the publication
/// rule's groups of enough apps (a group's key includes the position); trace figures are null
/// when the traces come from too few apps (docs/METRICS.md, "Agents").
#[utoipa::path(get, path = "/v1/agents", params(AgentsParams),
    responses((status = 200, description = "the period's agent figures", body = Object)))]
pub async fn agents(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, AgentsParams::NAMES)?;
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let query = AgentsQuery {
        period: Period::containing(kind, p.date("date")?.unwrap_or_else(today)),
        task: p.get::<Task>("task")?,
    };
    let top = p.bounded("top", 10, 1, 100)?;
    let mut a = s.query.agents(&query).await?;
    a.first_calls.truncate(top);
    a.later_calls.truncate(top);
    let mut out = serde_json::to_value(&a).map_err(|e| ApiError::Internal(e.to_string()))?;
    out["period"] = json!(query.period);
    out["task"] = json!(query.task.map(|t| t.as_str()));
    Ok(Json(out))
}

/// Provider incidents found in the data, to the minute
///
/// Spans in which most attempts routed to a provider failed (`error` or `timeout`), that
/// started between `from` and `to` (inclusive): candidate hours from the hourly summaries,
/// refined to the minute from the provider's events (docs/METRICS.md, "Provider incidents").
/// An incident's `attempts` is null when its attempts that did not fail come from too few apps.
#[utoipa::path(get, path = "/v1/incidents", params(IncidentsParams),
    responses((status = 200, description = "the incidents, oldest first", body = Object)))]
pub async fn incidents(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, IncidentsParams::NAMES)?;
    let (from, to) = day_range(&p)?;
    let incidents = s.query.incidents(from, to + Days::new(1)).await?;
    Ok(Json(json!({
        "from": from,
        "to": to,
        "incidents": incidents,
    })))
}

/// Per-task totals and top models
#[utoipa::path(get, path = "/v1/tasks", params(TasksParams),
    responses((status = 200, description = "each task's totals and top models", body = Object)))]
pub async fn tasks(State(s): State<AppState>, q: QueryParams) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, TasksParams::NAMES)?;
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let period = Period::containing(kind, p.date("date")?.unwrap_or_else(today));
    let top = p.bounded("top", 5, 1, 100)?;
    let o = s.query.tasks(period, top).await?;
    let tasks: Vec<Value> = o
        .tasks
        .iter()
        .map(|t| {
            let mut v = figures_json(&t.figures);
            v["task"] = json!(t.task.as_str());
            v["share"] = json!(t.share);
            v["top_models"] = t
                .top_models
                .iter()
                .map(|(m, f, share)| {
                    json!({ "model": m, "author": author_of(m), "tokens": f.tokens(),
                            "requests": f.requests, "apps": f.apps, "share": share })
                })
                .collect();
            v
        })
        .collect();
    // A task's figures are sums of publishable groups: there is no folded rest to report.
    Ok(Json(json!({
        "period": o.period,
        "totals": figures_json(&o.totals),
        "tasks": tasks,
    })))
}
