//! The revealed-preference endpoints: `/v1/retention`, `/v1/switches`, `/v1/index`,
//! `/v1/price-share` and `/v1/shifts`. Parameters are parsed here; the analyses live in
//! `modelshare-analytics`. Windows default to the weeks ending with the last closed week.

use crate::openapi::query_params;
use crate::params::Params;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use chrono::{Days, NaiveDate, Utc};
use modelshare_analytics::index::{IndexConfig, PreferenceIndex};
use modelshare_analytics::price_share::{ModelFigures, price_share};
use modelshare_analytics::retention::{ModelRetention, retention, retention_all};
use modelshare_analytics::shifts::{FDR, Movement, Published, TaskShifts, shifts};
use modelshare_analytics::switches::{Flow, switches};
use modelshare_analytics::{AnalyticsConfig, AnalyticsError, Panel, Rollups, Weeks};
use modelshare_catalog::Catalog;
use modelshare_event::event::author_of;
use modelshare_event::{Context, ModelSlug, Task};
use modelshare_query::{Dim, Period, PeriodKind, QueryEngine, QueryError, Scope};
use serde_json::{Value, json};

type QueryParams = Result<Query<Vec<(String, String)>>, QueryRejection>;

query_params!(
    /// Query parameters of `/v1/retention`.
    RetentionParams = ["task", "context", "model", "weeks", "date"]
);
query_params!(
    /// Query parameters of `/v1/switches`.
    SwitchesParams = ["task", "from", "to", "model"]
);
query_params!(
    /// Query parameters of `/v1/index`.
    IndexParams = ["task", "context", "date", "weeks", "min_observations", "resamples"]
);
query_params!(
    /// Query parameters of `/v1/price-share`.
    PriceShareParams = ["task", "period", "date"]
);
query_params!(
    /// Query parameters of `/v1/shifts`.
    ShiftsParams = ["task", "context", "date", "period"]
);

/// Longest window of weeks an analysis answers in one request.
pub const MAX_WEEKS: usize = 104;
const DEFAULT_WEEKS: usize = 12;

impl From<AnalyticsError> for ApiError {
    fn from(e: AnalyticsError) -> Self {
        match e {
            AnalyticsError::Query(q) => q.into(),
            other => ApiError::Internal(other.to_string()),
        }
    }
}

fn config(s: &AppState) -> AnalyticsConfig {
    AnalyticsConfig {
        min_apps: s.query.config().min_apps,
    }
}

pub(crate) fn rollups(s: &AppState) -> Result<&Rollups, ApiError> {
    s.rollups
        .as_ref()
        .ok_or_else(|| ApiError::NotFound("this server has no lake to analyse".into()))
}

/// The default end of a window: a day of the last closed week.
fn last_closed_week_day() -> NaiveDate {
    Utc::now().date_naive() - Days::new(7)
}

fn weeks_json(w: &Weeks) -> Value {
    json!({ "start": w.first, "end": w.end(), "count": w.count })
}

fn model_param(p: &Params, name: &str) -> Result<Option<String>, ApiError> {
    Ok(p.get::<ModelSlug>(name)?.map(|m| m.as_str().to_owned()))
}

/// The `weeks` window ending with the week containing `date`.
fn window(p: &Params) -> Result<Weeks, ApiError> {
    let date = p.date("date")?.unwrap_or_else(last_closed_week_day);
    let count = p.bounded("weeks", DEFAULT_WEEKS, 2, MAX_WEEKS)?;
    Ok(Weeks::ending(date, count as u32))
}

fn pooled_json(r: &ModelRetention) -> Value {
    r.pooled
        .iter()
        .map(|p| {
            json!({ "after_weeks": p.after_weeks, "units": p.units, "retained": p.retained,
                    "rate": p.rate })
        })
        .collect()
}

/// Cohort retention of apps whose primary model became M (docs/METRICS.md)
#[utoipa::path(get, path = "/v1/retention", params(RetentionParams),
    responses((status = 200, description = "retention per model and weeks since adoption", body = Object)))]
pub async fn retention_endpoint(
    State(s): State<AppState>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, RetentionParams::NAMES)?;
    let task = p.get::<Task>("task")?;
    let context = p.get::<Context>("context")?;
    let model = model_param(&p, "model")?;
    let weeks = window(&p)?;
    let panel = Panel::load(&s.query, rollups(&s)?, task, context, weeks).await?;
    let mut out = json!({
        "task": task.map(|t| t.as_str()),
        "context": context.map(|c| c.as_str()),
        "unit": if task.is_some() { "app" } else { "app×task" },
        "weeks": weeks_json(&weeks),
    });
    match model {
        Some(model) => {
            let r = match panel.model_index(&model) {
                Some(m) => retention(&panel, m, config(&s)),
                None => ModelRetention {
                    model: model.clone(),
                    cohorts: Vec::new(),
                    pooled: Vec::new(),
                },
            };
            out["model"] = json!(model);
            out["author"] = json!(author_of(&model));
            out["cohorts"] = r
                .cohorts
                .iter()
                .map(|c| json!({ "week": c.week, "units": c.units, "retained": c.retained }))
                .collect();
            out["pooled"] = pooled_json(&r);
        }
        None => {
            out["models"] = retention_all(&panel, config(&s))
                .iter()
                .map(|r| {
                    json!({ "model": r.model, "author": author_of(&r.model),
                            "pooled": pooled_json(r) })
                })
                .collect();
        }
    }
    Ok(Json(out))
}

fn flow_json(f: &Flow) -> Value {
    json!({ "from": f.from, "to": f.to, "switches": f.switches, "apps": f.apps })
}

/// Flows of apps changing primary model A -> B, with tokens moved
///
/// `from`/`to` are dates; the window is the ISO weeks they fall in (default: the 12 weeks ending
/// with the last closed week).
#[utoipa::path(get, path = "/v1/switches", params(SwitchesParams),
    responses((status = 200, description = "the flows between models", body = Object)))]
pub async fn switches_endpoint(
    State(s): State<AppState>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, SwitchesParams::NAMES)?;
    let task = p.get::<Task>("task")?;
    let model = model_param(&p, "model")?;
    let to = p.date("to")?.unwrap_or_else(last_closed_week_day);
    let from = p
        .date("from")?
        .unwrap_or_else(|| to - Days::new(7 * (DEFAULT_WEEKS as u64 - 1)));
    if from > to {
        return Err(ApiError::InvalidParameter(format!(
            "from ({from}) is after to ({to})"
        )));
    }
    let first = Weeks::ending(from, 1).first;
    let count = (Weeks::ending(to, 1).first - first).num_days() / 7 + 1;
    if count as usize > MAX_WEEKS {
        return Err(ApiError::InvalidParameter(format!(
            "from..to spans more than {MAX_WEEKS} weeks"
        )));
    }
    let weeks = Weeks {
        first,
        count: count as u32,
    };
    let panel = Panel::load(&s.query, rollups(&s)?, task, None, weeks).await?;
    let filter = model.as_deref().and_then(|m| panel.model_index(m));
    let sw = if model.is_some() && filter.is_none() {
        // A model without traffic in the window has no flows.
        modelshare_analytics::switches::Switches {
            flows: Vec::new(),
            transitions: 0,
            switches: 0,
        }
    } else {
        switches(&panel, filter, config(&s))
    };
    Ok(Json(json!({
        "task": task.map(|t| t.as_str()),
        "model": model,
        "weeks": weeks_json(&weeks),
        "transitions": sw.transitions,
        "switches": sw.switches,
        "flows": sw.flows.iter().map(flow_json).collect::<Vec<_>>(),
    })))
}

fn index_json(
    (task, context): (Option<Task>, Option<Context>),
    weeks: &Weeks,
    cfg: &IndexConfig,
    idx: &PreferenceIndex,
) -> Value {
    json!({
        "task": task.map(|t| t.as_str()),
        "context": context.map(|c| c.as_str()),
        "weeks": weeks_json(weeks),
        "method": {
            "model": "bradley-terry",
            "scale": "1000 + 400·log10(strength); 1000 = no evidence either way",
            "interval": "95% cluster bootstrap over apps",
            "resamples": cfg.resamples,
            "min_observations": cfg.min_observations,
            "min_apps": cfg.analytics.min_apps,
            "trial_min_share": modelshare_analytics::index::TRIAL_MIN_SHARE,
        },
        "outcomes": { "switches": idx.outcomes.switches, "trials_kept": idx.outcomes.trials_kept },
        "apps": idx.apps,
        "models": idx.ranked.iter().map(|r| json!({
            "rank": r.rank, "model": r.model, "author": author_of(&r.model),
            "rating": r.rating, "lower": r.lower, "upper": r.upper,
            "observations": r.observations, "wins": r.wins, "apps": r.apps,
        })).collect::<Vec<_>>(),
        "unranked": idx.unranked.iter().map(|u| json!({
            "model": u.model, "author": author_of(&u.model),
            "observations": u.observations, "apps": u.apps,
        })).collect::<Vec<_>>(),
        "hidden_models": idx.hidden_models,
    })
}

/// Preference index: Bradley-Terry ratings from switches and kept trials, bootstrap intervals
#[utoipa::path(get, path = "/v1/index", params(IndexParams),
    responses((status = 200, description = "ranked ratings with 95% intervals, and unranked models", body = Object)))]
pub async fn index_endpoint(
    State(s): State<AppState>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, IndexParams::NAMES)?;
    let task = p.get::<Task>("task")?;
    let context = p.get::<Context>("context")?;
    let weeks = window(&p)?;
    let cfg = IndexConfig {
        analytics: config(&s),
        min_observations: p.bounded("min_observations", 20, 1, 1_000_000)? as u64,
        resamples: p.bounded("resamples", 200, 0, 2000)? as u32,
        seed: modelshare_analytics::index::seed_for(task, &weeks),
    };
    let panel = Panel::load(&s.query, rollups(&s)?, task, context, weeks).await?;
    let idx = tokio::task::spawn_blocking(move || {
        modelshare_analytics::index::preference_index(&panel, cfg)
    })
    .await
    .map_err(|e| ApiError::Internal(format!("index fit panicked: {e}")))?;
    Ok(Json(index_json((task, context), &weeks, &cfg, &idx)))
}

/// Blended price against share, with the Pareto frontier marked
#[utoipa::path(get, path = "/v1/price-share", params(PriceShareParams),
    responses((status = 200, description = "each model's price and share", body = Object)))]
pub async fn price_share_endpoint(
    State(s): State<AppState>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, PriceShareParams::NAMES)?;
    let task = p.get::<Task>("task")?;
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let period = Period::containing(kind, p.date("date")?.unwrap_or_else(last_closed_week_day));
    // The figures of the leaderboard: publishable groups only, whatever the period.
    let figures: Vec<ModelFigures> = s
        .query
        .published(&Scope::period(&period, task), &[Dim::Model])
        .await?
        .into_iter()
        .filter_map(|(mut key, f)| {
            key.pop().map(|model| ModelFigures {
                model,
                tokens: f.tokens(),
                cost: f.cost.0,
                apps: f.apps,
            })
        })
        .collect();
    let ps = price_share(&figures);
    Ok(Json(json!({
        "period": period,
        "task": task.map(|t| t.as_str()),
        "total_tokens": ps.total_tokens,
        "other_tokens": ps.other_tokens,
        "models": ps.points.iter().map(|x| json!({
            "model": x.model, "author": author_of(&x.model), "tokens": x.tokens,
            "share": x.share, "usd_per_mtok": x.usd_per_mtok, "apps": x.apps,
            "frontier": x.frontier,
        })).collect::<Vec<_>>(),
    })))
}

fn movement_json(m: &Movement) -> Value {
    let price = |p: &modelshare_catalog::Price| {
        json!({ "input_usd_per_mtok": p.input_usd_per_mtok,
                "output_usd_per_mtok": p.output_usd_per_mtok,
                "blended_usd_per_mtok": p.blended_usd_per_mtok() })
    };
    json!({
        "model": m.model, "author": author_of(&m.model),
        "share": m.share, "previous_share": m.previous_share, "change": m.change,
        "z": m.z, "p_value": m.p_value, "q_value": m.q_value,
        "apps": m.apps, "previous_apps": m.previous_apps,
        "apps_up": m.apps_up, "apps_down": m.apps_down,
        "price_changes": m.price_changes.iter().map(|c| json!({
            "date": c.date, "old": price(&c.old), "new": price(&c.new),
            "blended_change_percent": (c.relative_change() * 1000.0).round() / 10.0,
        })).collect::<Vec<_>>(),
    })
}

/// The published figures per task and model of the period and the one before.
async fn published_shifts(
    query: &QueryEngine,
    (task, context): (Option<Task>, Option<Context>),
    period: &Period,
    previous: &Period,
) -> Result<Published, QueryError> {
    let mut out = Published::default();
    for (slot, p) in [previous, period].into_iter().enumerate() {
        let scope = Scope::period(p, task).with_context(context);
        let (models, tasks) = tokio::try_join!(
            query.published(&scope, &[Dim::Task, Dim::Model]),
            query.published(&scope, &[Dim::Task]),
        )?;
        for (key, f) in models {
            if let [t, model] = key.as_slice()
                && let Ok(t) = t.parse::<Task>()
            {
                out.models.entry((t, model.clone())).or_default()[slot] = (f.tokens(), f.apps);
            }
        }
        for (key, f) in tasks {
            if let Some(Ok(t)) = key.first().map(|t| t.parse::<Task>()) {
                out.tasks.entry(t).or_default()[slot] = (f.tokens(), f.apps);
            }
        }
    }
    Ok(out)
}

/// Significant share gainers and losers per task, with catalog price changes
#[utoipa::path(get, path = "/v1/shifts", params(ShiftsParams),
    responses((status = 200, description = "the significant movements and the price changes near them", body = Object)))]
pub async fn shifts_endpoint(
    State(s): State<AppState>,
    q: QueryParams,
) -> Result<Json<Value>, ApiError> {
    let p = Params::new(q, ShiftsParams::NAMES)?;
    let task = p.get::<Task>("task")?;
    let context = p.get::<Context>("context")?;
    let kind = p.get::<PeriodKind>("period")?.unwrap_or(PeriodKind::Week);
    let date = p.date("date")?.unwrap_or_else(last_closed_week_day);
    let kind = ShiftKind::of(kind).map_err(|m| ApiError::InvalidParameter(m.into()))?;
    let answer = compute_shifts(&s.query, rollups(&s)?, (task, context), kind, date).await?;
    Ok(Json(json!({
        "period": answer.period,
        "previous": answer.previous,
        "task": task.map(|t| t.as_str()),
        "context": context.map(|c| c.as_str()),
        "fdr": FDR,
        "tasks": answer.tasks.iter().map(|t| json!({
            "task": t.task.as_str(),
            "tested": t.tested,
            "gainers": t.gainers.iter().map(movement_json).collect::<Vec<_>>(),
            "losers": t.losers.iter().map(movement_json).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
    })))
}

/// The periods shifts compare with the one before.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShiftKind {
    Day,
    Week,
}

impl ShiftKind {
    /// The shift period of `kind`, or why a month is refused (shifts are tested per day or
    /// ISO week).
    pub(crate) fn of(kind: PeriodKind) -> Result<ShiftKind, &'static str> {
        match kind {
            PeriodKind::Day => Ok(ShiftKind::Day),
            PeriodKind::Week => Ok(ShiftKind::Week),
            PeriodKind::Month => Err(
                "period: shifts compare a day or an ISO week with the one before; accepted: day, week",
            ),
        }
    }
}

/// The significant movements of the day or ISO week containing `date` against the one before.
#[derive(Debug)]
pub(crate) struct ShiftsAnswer {
    pub period: Period,
    pub previous: Period,
    pub tasks: Vec<TaskShifts>,
}

/// What `/v1/shifts`, the shifts feed and the `/shifts` page answer for one period: the panel
/// of the period and the one before, their published figures, and the tests; in one task or
/// all, in one context segment or all.
pub(crate) async fn compute_shifts(
    query: &QueryEngine,
    rollups: &Rollups,
    (task, context): (Option<Task>, Option<Context>),
    kind: ShiftKind,
    date: NaiveDate,
) -> Result<ShiftsAnswer, AnalyticsError> {
    let (period, panel) = match kind {
        ShiftKind::Week => {
            let period = Period::containing(PeriodKind::Week, date);
            let weeks = Weeks::ending(period.start, 2);
            (
                period,
                Panel::load(query, rollups, task, context, weeks).await?,
            )
        }
        ShiftKind::Day => {
            let period = Period::containing(PeriodKind::Day, date);
            let start = period.previous().start;
            (
                period,
                Panel::load_days(query, task, context, start, 2).await?,
            )
        }
    };
    let previous = period.previous();
    let published = published_shifts(query, (task, context), &period, &previous).await?;
    let tasks = shifts(
        &panel,
        &published,
        period.start,
        period.end,
        Catalog::embedded(),
        AnalyticsConfig {
            min_apps: query.config().min_apps,
        },
    );
    Ok(ShiftsAnswer {
        period,
        previous,
        tasks,
    })
}
