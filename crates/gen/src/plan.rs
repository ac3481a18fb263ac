//! The world a data set is drawn from, decided before any event exists: which models get
//! traffic at what price on each day, who serves them, which apps exist, which model each app
//! uses for each task at every instant, and the planted effects.
//!
//! Every app's timeline is simulated on its own random stream, so the plan depends only on the
//! config, never on threads. Per-day event generation then only reads the plan.
//!
//! The behavioural model: each app×task has a sticky *primary* model (the one with the highest
//! perceived utility = hidden model utility for the task + the app's drifting taste − the app's
//! price sensitivity × ln(blended price)), optionally a small *secondary* share, and now and
//! then a *trial* of an alternative that takes a real share of its traffic for one or two weeks
//! and becomes primary only if it beats the incumbent by a switching cost.
//!
//! The release is better at short prompts than at long ones: from its general release on, apps
//! send it the winning task's requests of the short classes only, and each segment of a timeline
//! that uses it names where the others go instead ([`Segment::without_release`]).

use crate::GenConfig;
use crate::config::GenError;
use crate::manifest::{
    AgentsRecord, AppsRecord, Background, ConfigRecord, ContextRecord, Effect, Manifest,
    ModelRecord, Outage, Period, PriceCut, PriceRecord, Release, ReleaseContext, TrialOutcome,
};
use crate::prompt::{CONTEXT_MIXES, LONGEST_PROMPT, TAIL_INDEX};
use crate::rng::{Alias, Rng, gumbel, hash};
use crate::roster::{
    self, ARCHETYPES, OUTAGE_CANDIDATES, Profile, RELEASE_CANDIDATES, ROSTER, RosterModel, Speed,
    VERTICALS,
};
use chrono::{Datelike, Days, NaiveDate};
use modelshare_catalog::{Catalog, Price};
use modelshare_event::context::CONTEXT_BOUNDS;
use modelshare_event::{Context, ModelSlug, Task};
use std::collections::{BTreeMap, HashMap};

pub(crate) const US_PER_HOUR: i64 = 3_600_000_000;
pub(crate) const US_PER_DAY: i64 = 24 * US_PER_HOUR;

/// Daily chance that an app×task without a running trial starts one.
const TRIAL_RATE_PER_DAY: f64 = 1.0 / 20.0;
const TRIAL_DAYS: [u32; 2] = [4, 14];
const TRIAL_SHARE: [f64; 2] = [0.10, 0.40];
const SWITCH_COST: f64 = 0.15;
const TASTE_DRIFT_PER_WEEK: f64 = 0.25;
/// Mean days between changes of an app×task's secondary model.
const SECONDARY_CHANGE_DAYS: f64 = 40.0;
/// Share of background requests whose first provider fails and a second one serves.
pub(crate) const FALLBACK_RATE: f64 = 0.012;
/// Final failure rates by status (multiplied by provider flakiness).
pub(crate) const FAIL_ERROR: f64 = 0.004;
pub(crate) const FAIL_TIMEOUT: f64 = 0.002;
pub(crate) const FAIL_RATE_LIMITED: f64 = 0.003;
pub(crate) const FAIL_CANCELLED: f64 = 0.003;
pub(crate) const FAIL_CONTENT_FILTERED: f64 = 0.0008;

/// Share of apps that run agents: their requests start traces of several calls.
const AGENT_APP_SHARE: f64 = 0.08;
/// Mean calls per agent trace: the first call, then on average this many minus one more.
pub(crate) const AGENT_MEAN_CALLS: f64 = 6.0;
/// Agent apps extract with one of this many of the cheapest models (blended price, first day).
const AGENT_EXTRACTORS: usize = 2;

/// Release: share of app×tasks (in both affected tasks) on the preview before the release.
const PREVIEW_P: f64 = 0.2;
/// Release: share of winning-task app×tasks that start a trial within the reaction window.
const ADOPT_P: f64 = 0.55;
const RELEASE_GAIN: f64 = 1.3;
const RELEASE_LOSS: f64 = 3.0;
const RELEASE_REACTION_HOURS: u32 = 72;
/// Release: from its general release on, apps keep requests of this context class and longer
/// in the winning task away from it (it wins at `short` and `medium`, loses from `long` on).
pub(crate) const RELEASE_LOSES_FROM: Context = Context::Long;
/// Price cut: apps migrate within this window; a cut model must be this close to the
/// incumbent's perceived utility to be worth moving to.
const MIGRATION_HOURS: u32 = 48;
const MIGRATION_SLACK: f64 = 1.5;
/// Largest share of all request weight one app may have.
const MAX_APP_SHARE: f64 = 0.06;
/// Provider weights within a model: its own author's API, then the big clouds, then the rest.
const FIRST_PARTY_WEIGHT: f64 = 5.0;
const CLOUD_WEIGHT: f64 = 2.0;
const MAX_PROVIDERS_PER_MODEL: usize = 5;
/// Context window assumed when the catalog has none, and the smallest one a model is given.
const DEFAULT_CONTEXT_TOKENS: u32 = 131_072;
const MIN_CONTEXT_TOKENS: u32 = 8_192;
/// The share of a model's context window a prompt may fill (the rest is room for the answer).
const MAX_INPUT_SHARE: f64 = 0.9;
/// Share of an app-task on the cut model that migrates towards it: a base plus a part that grows
/// with the size of the cut (a 50 % cut: 0.25 + 0.75 = capped at 0.75).
const MIGRATE_BASE_P: f64 = 0.25;
const MIGRATE_P_PER_CUT: f64 = 1.5;
const MIGRATE_MAX_P: f64 = 0.75;
/// Traffic grows by this fraction of the first day's volume every day.
const DAILY_GROWTH: f64 = 0.004;

/// A provider as events name it.
#[derive(Debug)]
pub(crate) struct ProviderInfo {
    pub(crate) name: String,
    pub(crate) speed: Speed,
}

/// A model with traffic, resolved against the catalog.
#[derive(Debug)]
pub(crate) struct Model {
    pub(crate) slug: ModelSlug,
    pub(crate) spec: RosterModel,
    /// Indices into [`World::providers`] and their cumulative routing weights.
    pub(crate) providers: Vec<u16>,
    pub(crate) provider_weights: Vec<f64>,
    pub(crate) provider_cum: Vec<f64>,
    /// The price in force on each day of the period.
    pub(crate) prices: Vec<Price>,
    pub(crate) ln_blended: Vec<f64>,
    pub(crate) context: u32,
    /// Decode-speed multiplier: small cheap models stream faster.
    pub(crate) speed: f64,
}

impl Model {
    /// The most input tokens a request to this model carries: its window, less room for the
    /// answer.
    pub(crate) fn max_input(&self) -> f64 {
        f64::from(self.context) * MAX_INPUT_SHARE
    }
}

/// From `from_us` on, an app×task sends its requests to up to three models in fixed shares.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Segment {
    pub(crate) from_us: i64,
    pub(crate) models: [u16; 3],
    /// Where a request picked for the release goes when the release refuses its context class
    /// ([`ReleasePlan::refuses`]): the app's best model other than the release by perceived
    /// utility at `from_us`. Only segments of the winning task that use the release need one;
    /// the others carry their primary.
    pub(crate) without_release: u16,
    /// Cumulative shares; the last is 1.
    pub(crate) cum: [f32; 3],
}

impl Segment {
    pub(crate) fn pick(&self, u: f32) -> u16 {
        if u < self.cum[0] {
            self.models[0]
        } else if u < self.cum[1] {
            self.models[1]
        } else {
            self.models[2]
        }
    }
}

#[derive(Debug)]
pub(crate) struct AppTask {
    pub(crate) task: Task,
    /// Ordered by `from_us`; the first starts at `i64::MIN`.
    pub(crate) segments: Vec<Segment>,
}

impl AppTask {
    pub(crate) fn at(&self, ts: i64) -> &Segment {
        let i = self.segments.partition_point(|s| s.from_us <= ts);
        &self.segments[i.saturating_sub(1)]
    }
}

#[derive(Debug)]
pub(crate) struct App {
    pub(crate) id: String,
    pub(crate) weight: f64,
    pub(crate) first_day: u32,
    pub(crate) last_day: u32,
    /// Requests `openrouter/auto` instead of naming the model.
    pub(crate) auto: bool,
    pub(crate) tasks: Vec<AppTask>,
    pub(crate) task_cum: Vec<f64>,
    /// For an agent app, the cheap model its later calls go to: each of its requests starts a
    /// trace whose first call goes to the model it chose for the task, the rest to this one.
    pub(crate) extractor: Option<u16>,
}

#[derive(Debug)]
pub(crate) struct OutagePlan {
    pub(crate) provider: u16,
    pub(crate) start_us: i64,
    pub(crate) end_us: i64,
}

/// Everything event generation reads.
#[derive(Debug)]
pub(crate) struct World {
    pub(crate) cfg: GenConfig,
    pub(crate) start_us: i64,
    pub(crate) models: Vec<Model>,
    pub(crate) providers: Vec<ProviderInfo>,
    pub(crate) apps: Vec<App>,
    pub(crate) day_counts: Vec<u64>,
    pub(crate) day_offsets: Vec<u64>,
    pub(crate) outage: Option<OutagePlan>,
    pub(crate) release: Option<ReleasePlan>,
    /// Per task, every model by hidden utility (best first): where a request goes when none of
    /// the app's own models can take it.
    pub(crate) ranked: Vec<Vec<u16>>,
    /// Keys the event-id permutation so different seeds give different ids.
    pub(crate) id_key: u64,
    pub(crate) hourly: Alias,
    /// Position of each task's and model's name in byte order (the lake's sort order).
    pub(crate) task_rank: Vec<u16>,
    pub(crate) model_rank: Vec<u16>,
    pub(crate) manifest: Manifest,
}

/// The planted release: `model`'s general release at `ts_us`, better at `win`, worse at `lose`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReleasePlan {
    pub(crate) model: usize,
    pub(crate) ts_us: i64,
    pub(crate) win: Task,
    pub(crate) lose: Task,
}

impl ReleasePlan {
    /// Whether apps keep a request of `task` with a `context` prompt, sent at `t`, away from
    /// `model`: it is the release, the request is of the winning task, at or after the release,
    /// and its class is one the release loses (before the release, preview users sent it every
    /// class).
    pub(crate) fn refuses(&self, model: usize, task: Task, t: i64, context: Context) -> bool {
        model == self.model && task == self.win && t >= self.ts_us && context >= RELEASE_LOSES_FROM
    }
}

#[derive(Debug, Clone, Copy)]
struct CutPlan {
    model: usize,
    ts_us: i64,
    p_migrate: f64,
}

fn day_start_us(date: NaiveDate) -> i64 {
    date.and_hms_opt(0, 0, 0)
        .map(|d| d.and_utc().timestamp_micros())
        .unwrap_or(0)
}

pub(crate) fn rfc3339(us: i64) -> String {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
        .unwrap_or_default()
}

/// A day in `[lo, hi]` at least `min_dist` days from every day in `taken` (random among those),
/// or else the one farthest from them.
fn pick_day(rng: &mut Rng, lo: u32, hi: u32, taken: &[u32], min_dist: u32) -> u32 {
    let dist = |d: u32| {
        taken
            .iter()
            .map(|&t| d.abs_diff(t))
            .min()
            .unwrap_or(u32::MAX)
    };
    let ok: Vec<u32> = (lo..=hi).filter(|&d| dist(d) >= min_dist).collect();
    if ok.is_empty() {
        (lo..=hi)
            .max_by_key(|&d| (dist(d), u32::MAX - d))
            .unwrap_or(lo)
    } else {
        ok[rng.below(ok.len() as u64) as usize]
    }
}

/// The calendar of a generated period: day numbers, dates and microsecond timestamps.
#[derive(Debug, Clone, Copy)]
struct Calendar {
    start: NaiveDate,
    days: u32,
    start_us: i64,
}

impl Calendar {
    fn new(cfg: &GenConfig) -> Calendar {
        Calendar {
            start: cfg.start,
            days: cfg.days,
            start_us: day_start_us(cfg.start),
        }
    }

    fn date(&self, d: u32) -> NaiveDate {
        self.start + Days::new(u64::from(d))
    }

    fn day_us(&self, d: u32) -> i64 {
        self.start_us + i64::from(d) * US_PER_DAY
    }

    fn end_us(&self) -> i64 {
        self.day_us(self.days)
    }
}

/// The roster's models that the catalog prices on every day, with the providers serving them.
struct Lineup {
    models: Vec<Model>,
    providers: Vec<ProviderInfo>,
    provider_idx: HashMap<String, u16>,
}

/// The planted effects, placed on days apart from each other.
struct Plantings {
    effects: Vec<Effect>,
    cuts: Vec<CutPlan>,
    release: Option<ReleasePlan>,
    outage: Option<OutagePlan>,
}

/// The apps, their planning counters and the figures the manifest reports about them.
struct Population {
    apps: Vec<App>,
    counters: Counters,
    record: AppsRecord,
}

impl World {
    /// Builds the world in named steps; the random stream is drawn in this order (models draw
    /// nothing, then cuts, the release and the outage share one stream, apps have their own),
    /// so a seed gives the same world whatever changes inside a step.
    pub(crate) fn build(cfg: &GenConfig) -> Result<World, GenError> {
        cfg.validate()?;
        let catalog = Catalog::embedded();
        let cal = Calendar::new(cfg);
        let mut lineup = lineup(catalog, &cal);
        let plantings = plant_effects(catalog, &cal, cfg.seed, &mut lineup);
        let mut population = plan_apps(cfg, &cal, &lineup.models, &plantings)?;
        let agents = plan_agents(cfg.seed, &mut population.apps, &lineup.models);
        let day_counts = apportion(cfg.events, &day_weights(&cal));
        let day_offsets = offsets(&day_counts);
        let manifest = build_manifest(
            cfg,
            &lineup,
            plantings.effects,
            population.counters,
            population.record,
            &plantings.release,
            &plantings.outage,
        );
        let manifest = Manifest {
            agents: Some(agents),
            ..manifest
        };
        let Lineup {
            models, providers, ..
        } = lineup;
        Ok(World {
            cfg: cfg.clone(),
            start_us: cal.start_us,
            providers,
            apps: population.apps,
            day_counts,
            day_offsets,
            outage: plantings.outage,
            release: plantings.release,
            ranked: rank_by_utility(&models),
            id_key: hash(&[cfg.seed, 0x1d]),
            hourly: Alias::new(&roster::HOURLY),
            task_rank: rank(&Task::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>()),
            model_rank: rank(&models.iter().map(|m| m.slug.as_str()).collect::<Vec<_>>()),
            models,
            manifest,
        })
    }

    /// The manifest with what generation did: `moved_away` holds, by context class code, the
    /// requests of every day that the release's context rule sent away from it.
    pub(crate) fn generated_manifest(&self, moved_away: [u64; 4]) -> Manifest {
        let mut manifest = self.manifest.clone();
        for effect in &mut manifest.effects {
            if let Effect::ModelRelease(Release {
                context: Some(context),
                ..
            }) = effect
            {
                let moved = Context::ALL
                    .iter()
                    .filter(|&&c| c >= RELEASE_LOSES_FROM)
                    .map(|c| (c.as_str().to_owned(), moved_away[usize::from(c.code())]))
                    .collect();
                context.moved_away = Some(moved);
            }
        }
        manifest
    }
}

/// Models and providers: each roster model the catalog knows and prices on every day of the
/// period, served by up to five providers (first party weighted most).
fn lineup(catalog: &Catalog, cal: &Calendar) -> Lineup {
    let days = cal.days;
    let date = |d: u32| cal.date(d);
    let mut providers: Vec<ProviderInfo> = Vec::new();
    let mut provider_idx: HashMap<String, u16> = HashMap::new();
    let mut models: Vec<Model> = Vec::new();
    for spec in ROSTER {
        let (Some(info), Ok(slug)) = (catalog.model(spec.slug), ModelSlug::parse(spec.slug)) else {
            continue;
        };
        let author = slug.author().to_owned();
        let mut offered: Vec<(f64, &str)> = catalog
            .providers_for(spec.slug)
            .into_iter()
            .map(|p| {
                let w = if p == roster::first_party(&author) {
                    FIRST_PARTY_WEIGHT
                } else if matches!(p, "aws" | "google" | "azure") {
                    CLOUD_WEIGHT
                } else {
                    1.0
                };
                (w, p)
            })
            .collect();
        offered.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
        offered.truncate(MAX_PROVIDERS_PER_MODEL);
        let mut pidx = Vec::new();
        let mut weights = Vec::new();
        for (w, p) in offered {
            let idx = *provider_idx.entry(p.to_owned()).or_insert_with(|| {
                let name = roster::provider_display(p).to_owned();
                providers.push(ProviderInfo {
                    speed: roster::provider_speed(&name),
                    name,
                });
                (providers.len() - 1) as u16
            });
            pidx.push(idx);
            weights.push(w);
        }
        let first_price = info.prices.first().map(|r| r.price);
        let prices: Vec<Price> = (0..days)
            .filter_map(|d| info.price_at(date(d)).or(first_price))
            .collect();
        if prices.len() != days as usize {
            continue;
        }
        let blended0 = prices[0].blended_usd_per_mtok().max(0.01);
        models.push(Model {
            slug,
            spec: *spec,
            provider_cum: cumulative(&weights),
            providers: pidx,
            provider_weights: weights,
            ln_blended: prices.iter().map(ln_price).collect(),
            prices,
            context: info
                .context_window
                .unwrap_or(DEFAULT_CONTEXT_TOKENS)
                .max(MIN_CONTEXT_TOKENS),
            speed: (1.0 / blended0).powf(0.2).clamp(0.5, 2.0),
        });
    }
    Lineup {
        models,
        providers,
        provider_idx,
    }
}

/// Places the planted price cuts, the release and the provider outage.
fn plant_effects(catalog: &Catalog, cal: &Calendar, seed: u64, lineup: &mut Lineup) -> Plantings {
    let mut world_rng = Rng::new(hash(&[seed, 0x3e5]));
    let mut taken_days: Vec<u32> = Vec::new();
    let (cuts, effects) = plant_price_cuts(
        catalog,
        cal,
        &mut lineup.models,
        &mut world_rng,
        &mut taken_days,
    );
    let release = plant_release(cal, &lineup.models, &cuts, &mut world_rng, &mut taken_days);
    let outage = plant_outage(cal, lineup, &mut world_rng, &taken_days);
    Plantings {
        effects,
        cuts,
        release,
        outage,
    }
}

fn model_index(models: &[Model]) -> HashMap<&'static str, usize> {
    models
        .iter()
        .enumerate()
        .map(|(i, m)| (m.spec.slug, i))
        .collect()
}

/// Planted price cuts: real cuts of models with traffic, dated inside the period when the
/// catalog allows, else moved into it.
fn plant_price_cuts(
    catalog: &Catalog,
    cal: &Calendar,
    models: &mut [Model],
    world_rng: &mut Rng,
    taken_days: &mut Vec<u32>,
) -> (Vec<CutPlan>, Vec<Effect>) {
    let days = cal.days;
    let cfg_start = cal.start;
    let start_us = cal.start_us;
    let date = |d: u32| cal.date(d);
    let model_idx = model_index(models);
    let mut effects: Vec<Effect> = Vec::new();
    let mut cut_plans: Vec<CutPlan> = Vec::new();
    if days >= 5 {
        let in_window = |d: NaiveDate| {
            let k = (d - cfg_start).num_days();
            k >= 2 && k <= i64::from(days) - 2
        };
        let mut cands: Vec<_> = catalog
            .price_changes()
            .iter()
            .filter(|c| c.is_cut() && c.relative_change() <= -0.05)
            .filter_map(|c| model_idx.get(c.slug.as_str()).map(|&m| (c, m)))
            .collect();
        cands.sort_by(|a, b| {
            let score = |x: &(&modelshare_catalog::PriceChange, usize)| {
                -x.0.relative_change() * models[x.1].spec.quality
            };
            in_window(b.0.date)
                .cmp(&in_window(a.0.date))
                .then(score(b).total_cmp(&score(a)))
                .then(a.0.date.cmp(&b.0.date))
                .then(a.0.slug.cmp(&b.0.slug))
        });
        for (change, m) in cands {
            if cut_plans.len() == 2 {
                break;
            }
            if cut_plans.iter().any(|c| c.model == m) {
                continue;
            }
            let shifted = !in_window(change.date);
            let day = if shifted {
                pick_day(world_rng, 2, days - 2, taken_days, 5)
            } else {
                let d = (change.date - cfg_start).num_days() as u32;
                if taken_days.iter().any(|&t| t.abs_diff(d) < 4) {
                    continue;
                }
                d
            };
            if shifted {
                let model = &mut models[m];
                for d in 0..days as usize {
                    let p = if d < day as usize {
                        change.old
                    } else {
                        change.new
                    };
                    model.prices[d] = p;
                    model.ln_blended[d] = ln_price(&p);
                }
            }
            taken_days.push(day);
            let rel = change.relative_change();
            cut_plans.push(CutPlan {
                model: m,
                ts_us: start_us + i64::from(day) * US_PER_DAY,
                p_migrate: (MIGRATE_BASE_P + MIGRATE_P_PER_CUT * -rel).min(MIGRATE_MAX_P),
            });
            effects.push(Effect::PriceCut(PriceCut {
                slug: change.slug.clone(),
                real_date: change.date.to_string(),
                date: date(day).to_string(),
                ts_us: start_us + i64::from(day) * US_PER_DAY,
                shifted,
                old: PriceRecord::from(change.old),
                new: PriceRecord::from(change.new),
                blended_change_percent: (rel * 1000.0).round() / 10.0,
                migration_window_hours: MIGRATION_HOURS,
                migrating_app_tasks: BTreeMap::new(),
            }));
        }
    }

    (cut_plans, effects)
}

/// The release: a real model, a week of data on both sides, away from the cuts.
fn plant_release(
    cal: &Calendar,
    models: &[Model],
    cut_plans: &[CutPlan],
    world_rng: &mut Rng,
    taken_days: &mut Vec<u32>,
) -> Option<ReleasePlan> {
    let days = cal.days;
    let start_us = cal.start_us;
    let model_idx = model_index(models);
    let mut release: Option<ReleasePlan> = None;
    if days >= 14 {
        let cands: Vec<usize> = RELEASE_CANDIDATES
            .iter()
            .filter_map(|s| model_idx.get(s).copied())
            .filter(|m| cut_plans.iter().all(|c| c.model != *m))
            .collect();
        if !cands.is_empty() {
            let m = cands[world_rng.below(cands.len() as u64) as usize];
            let day = pick_day(world_rng, 7, days - 7, taken_days, 5);
            taken_days.push(day);
            let lose = if models[m].spec.profile == Profile::General {
                Task::Roleplay
            } else {
                Task::Technology
            };
            release = Some(ReleasePlan {
                model: m,
                ts_us: start_us + i64::from(day) * US_PER_DAY + 17 * US_PER_HOUR,
                win: Task::Programming,
                lose,
            });
        }
    }

    release
}

/// The outage: a first-party or large provider, on a day clear of the other effects.
fn plant_outage(
    cal: &Calendar,
    lineup: &Lineup,
    world_rng: &mut Rng,
    taken_days: &[u32],
) -> Option<OutagePlan> {
    let days = cal.days;
    let start_us = cal.start_us;
    let models = &lineup.models;
    let provider_idx = &lineup.provider_idx;
    let mut outage: Option<OutagePlan> = None;
    {
        let rot = world_rng.below(OUTAGE_CANDIDATES.len() as u64) as usize;
        let serving = |p: u16| models.iter().filter(|m| m.providers.contains(&p)).count();
        let chosen = (0..OUTAGE_CANDIDATES.len())
            .map(|i| OUTAGE_CANDIDATES[(i + rot) % OUTAGE_CANDIDATES.len()])
            .filter_map(|name| provider_idx.get(name).copied())
            .find(|&p| serving(p) >= 2);
        if let Some(p) = chosen {
            let day = if days >= 3 {
                pick_day(world_rng, 1, days - 2, taken_days, 3)
            } else {
                0
            };
            let start = start_us
                + i64::from(day) * US_PER_DAY
                + (13 * US_PER_HOUR as u64 + world_rng.below(6 * US_PER_HOUR as u64)) as i64;
            let dur = (90 + world_rng.below(211)) as i64 * 60_000_000;
            outage = Some(OutagePlan {
                provider: p,
                start_us: start,
                end_us: start + dur,
            });
        }
    }

    outage
}

/// Apps and their timelines. Apps are planned independently (each on its own stream), so halves
/// can run in parallel and the result does not depend on the split.
fn plan_apps(
    cfg: &GenConfig,
    cal: &Calendar,
    models: &[Model],
    plantings: &Plantings,
) -> Result<Population, GenError> {
    let days = cal.days;
    let planner = Planner {
        seed: cfg.seed,
        models,
        start_us: cal.start_us,
        end_us: cal.end_us(),
        days,
        release: plantings.release,
        cuts: &plantings.cuts,
    };
    let half = cfg.apps / 2;
    let plan_range = |range: std::ops::Range<u32>| {
        let mut counters = Counters::default();
        let apps: Vec<_> = range.map(|i| planner.app(i, &mut counters)).collect();
        (apps, counters)
    };
    let ((first, mut counters), second) = std::thread::scope(|s| {
        let h = s.spawn(|| plan_range(half..cfg.apps));
        let a = plan_range(0..half);
        (a, h.join())
    });
    let (second, c2) = second.map_err(|_| GenError::WorkerPanicked)?;
    counters.merge(c2);
    let mut apps = Vec::with_capacity(cfg.apps as usize);
    let mut by_archetype: BTreeMap<String, u32> = BTreeMap::new();
    let (mut joining, mut leaving, mut auto) = (0, 0, 0);
    for (app, arch) in first.into_iter().chain(second) {
        *by_archetype.entry(arch.to_owned()).or_default() += 1;
        joining += u32::from(app.first_day > 0);
        leaving += u32::from(app.last_day + 1 < days);
        auto += u32::from(app.auto);
        apps.push(app);
    }
    // No single app carries more than a few percent of requests (a small data set would
    // otherwise sometimes be one app's traffic and little else).
    for _ in 0..3 {
        let cap = MAX_APP_SHARE * apps.iter().map(|a| a.weight).sum::<f64>();
        apps.iter_mut().for_each(|a| a.weight = a.weight.min(cap));
    }
    let mut weights: Vec<f64> = apps.iter().map(|a| a.weight).collect();
    weights.sort_by(|a, b| b.total_cmp(a));
    let top = (weights.len() / 100).max(1);
    let top_share = weights[..top].iter().sum::<f64>() / weights.iter().sum::<f64>().max(1e-9);

    let mean_price_sensitivity = counters
        .price_sensitivity
        .iter()
        .map(|(t, (sum, n))| (t.to_string(), round3(sum / f64::from((*n).max(1)))))
        .collect();
    Ok(Population {
        apps,
        counters,
        record: AppsRecord {
            total: cfg.apps,
            by_archetype,
            openrouter_auto: auto,
            joining,
            leaving,
            top_1_percent_request_share: (top_share * 1000.0).round() / 1000.0,
            mean_price_sensitivity,
        },
    })
}

/// Makes about [`AGENT_APP_SHARE`] of the apps agent apps (chosen by hash, so nothing else in
/// the plan moves), each extracting with one of the [`AGENT_EXTRACTORS`] cheapest models.
fn plan_agents(seed: u64, apps: &mut [App], models: &[Model]) -> AgentsRecord {
    let mut by_price: Vec<usize> = (0..models.len()).collect();
    by_price.sort_by(|&a, &b| models[a].ln_blended[0].total_cmp(&models[b].ln_blended[0]));
    by_price.truncate(AGENT_EXTRACTORS);
    let mut count = 0;
    for (i, app) in apps.iter_mut().enumerate() {
        let h = hash(&[seed, 0xa6e, i as u64]);
        if by_price.is_empty() || crate::rng::unit(h) >= AGENT_APP_SHARE {
            continue;
        }
        app.extractor = Some(by_price[(h >> 40) as usize % by_price.len()] as u16);
        count += 1;
    }
    AgentsRecord {
        apps: count,
        planned_mean_calls_per_trace: AGENT_MEAN_CALLS,
        extract_models: by_price
            .iter()
            .map(|&m| models[m].spec.slug.to_owned())
            .collect(),
        pattern: "every request of an agent app starts a trace: step 0 goes to the model the \
                  app chose for the task, the later steps (1 + a geometric number, \
                  planned_mean_calls_per_trace in all, cut to the app's requests left that \
                  day) to its extract model, seconds apart; requests whose first attempt fails \
                  are not traced"
            .into(),
    }
}

/// Each day's weight in the event count: weekday rhythm and slow growth.
fn day_weights(cal: &Calendar) -> Vec<f64> {
    (0..cal.days)
        .map(|d| {
            roster::WEEKDAY[cal.date(d).weekday().num_days_from_monday() as usize]
                * (1.0 + DAILY_GROWTH * f64::from(d))
        })
        .collect()
}

/// Where each day's rows start in the whole stream.
fn offsets(day_counts: &[u64]) -> Vec<u64> {
    let mut day_offsets = Vec::with_capacity(day_counts.len());
    let mut acc = 0;
    for &c in day_counts {
        day_offsets.push(acc);
        acc += c;
    }
    day_offsets
}

/// The ground truth: the configuration, what each effect actually did, the models' hidden
/// utilities and the background rates.
fn build_manifest(
    cfg: &GenConfig,
    lineup: &Lineup,
    mut effects: Vec<Effect>,
    counters: Counters,
    apps: AppsRecord,
    release: &Option<ReleasePlan>,
    outage: &Option<OutagePlan>,
) -> Manifest {
    let models = &lineup.models;
    let providers = &lineup.providers;
    let days = cfg.days;
    let cut_slugs: Vec<String> = effects
        .iter()
        .filter_map(|e| match e {
            Effect::PriceCut(c) => Some(c.slug.clone()),
            _ => None,
        })
        .collect();
    let trials = counters
        .trials
        .iter()
        .map(|((cause, task), tally)| {
            let (cause, model) = match cause {
                TrialCause::Background => ("background", None),
                TrialCause::Release => (
                    "model_release",
                    release
                        .as_ref()
                        .map(|r| models[r.model].spec.slug.to_owned()),
                ),
                TrialCause::PriceCut(ci) => ("price_cut", cut_slugs.get(*ci).cloned()),
            };
            TrialOutcome {
                cause: cause.to_owned(),
                model,
                task: task.to_string(),
                trials_started: tally.started,
                trials_switched: tally.switched,
                direct_switches: tally.direct,
            }
        })
        .collect();
    if let Some(r) = release {
        effects.push(Effect::ModelRelease(Release {
            slug: models[r.model].spec.slug.to_owned(),
            date: chrono::DateTime::from_timestamp_micros(r.ts_us)
                .map(|d| d.date_naive().to_string())
                .unwrap_or_default(),
            ts: rfc3339(r.ts_us),
            ts_us: r.ts_us,
            winning_task: r.win.to_string(),
            losing_task: r.lose.to_string(),
            utility_gain_winning: RELEASE_GAIN,
            utility_loss_losing: RELEASE_LOSS,
            reaction_hours: RELEASE_REACTION_HOURS,
            preview_app_tasks: counters.preview,
            adopting_app_tasks: counters.adopting,
            abandoning_app_tasks: counters.abandoning,
            context: Some(release_context()),
        }));
    }
    for (effect, migrating) in effects
        .iter_mut()
        .filter_map(|e| match e {
            Effect::PriceCut(c) => Some(c),
            _ => None,
        })
        .zip(counters.migrating)
    {
        effect.migrating_app_tasks = migrating;
    }
    if let Some(o) = &outage {
        let affected = models
            .iter()
            .filter(|m| m.providers.contains(&o.provider))
            .map(|m| m.spec.slug.to_owned())
            .collect();
        effects.push(Effect::ProviderOutage(Outage {
            provider: providers[o.provider as usize].name.clone(),
            start: rfc3339(o.start_us),
            end: rfc3339(o.end_us),
            start_us: o.start_us,
            end_us: o.end_us,
            affected_models: affected,
        }));
    }
    effects.sort_by_key(|e| match e {
        Effect::ModelRelease(r) => r.ts_us,
        Effect::PriceCut(c) => c.ts_us,
        Effect::ProviderOutage(o) => o.start_us,
    });
    Manifest {
        generator: "modelshare-gen".into(),
        format: 1,
        config: ConfigRecord {
            seed: cfg.seed,
            start: cfg.start.to_string(),
            days,
            apps: cfg.apps,
            events: cfg.events,
        },
        period: Period {
            start: cfg.start.to_string(),
            end: cfg.end().to_string(),
        },
        events: cfg.events,
        catalog: "genai-prices 0.2.3 (MIT, pydantic/genai-prices), data/model-prices.csv".into(),
        cost_model: "cost_usd = ((input_tokens - cached_tokens) * input + cached_tokens * \
                     cache_read (input when the model has no cache price) + output_tokens * \
                     output) / 1e6, prices in force on the event's UTC day, rounded once to \
                     micro-USD; output_tokens include reasoning_tokens; failed requests cost 0"
            .into(),
        effects,
        models: models
            .iter()
            .map(|m| ModelRecord {
                slug: m.spec.slug.to_owned(),
                author: m.slug.author().to_owned(),
                profile: m.spec.profile,
                reasoning: m.spec.reasoning,
                providers: m
                    .providers
                    .iter()
                    .zip(&m.provider_weights)
                    .map(|(&p, &w)| (providers[p as usize].name.clone(), w))
                    .collect(),
                utility: Task::ALL
                    .iter()
                    .map(|&t| (t.to_string(), round3(base_utility(m, t))))
                    .collect(),
                effective_preference: Task::ALL
                    .iter()
                    .map(|&t| {
                        let beta = apps
                            .mean_price_sensitivity
                            .get(t.as_str())
                            .copied()
                            .unwrap_or(0.0);
                        let released = release
                            .as_ref()
                            .filter(|r| models[r.model].spec.slug == m.spec.slug);
                        let u = hidden_utility(m, t, released)
                            - beta * m.ln_blended.last().copied().unwrap_or(0.0);
                        (t.to_string(), round3(u))
                    })
                    .collect(),
            })
            .collect(),
        trials,
        agents: None,
        context: Some(context_record()),
        apps,
        background: Background {
            trial_rate_per_day: TRIAL_RATE_PER_DAY,
            trial_days: TRIAL_DAYS,
            trial_share: TRIAL_SHARE,
            switch_cost: SWITCH_COST,
            taste_drift_per_week: TASTE_DRIFT_PER_WEEK,
            fallback_rate: FALLBACK_RATE,
            failure_rates: [
                ("error", FAIL_ERROR),
                ("timeout", FAIL_TIMEOUT),
                ("rate_limited", FAIL_RATE_LIMITED),
                ("cancelled", FAIL_CANCELLED),
                ("content_filtered", FAIL_CONTENT_FILTERED),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v))
            .collect(),
        },
    }
}

/// The release's dependence on context, as planned (generation fills in `moved_away`).
fn release_context() -> ReleaseContext {
    let names = |wins: bool| {
        Context::ALL
            .iter()
            .filter(|&&c| (c < RELEASE_LOSES_FROM) == wins)
            .map(|c| c.as_str().to_owned())
            .collect()
    };
    ReleaseContext {
        wins: names(true),
        loses: names(false),
        rule: "from the release on, a request of the winning task in a losing class that an app \
               picked the release for goes to the app's best model other than the release by \
               perceived utility (hidden utility + taste - price sensitivity x ln price) as of \
               the app's last change of models; when that model's window cannot hold the \
               prompt, to the first of the app's other models, else of the task's models by \
               hidden utility, that can"
            .into(),
        moved_away: None,
    }
}

/// The planned context mixes and how prompts are drawn and fitted to windows.
fn context_record() -> ContextRecord {
    let mixes = Task::ALL
        .iter()
        .zip(&CONTEXT_MIXES)
        .map(|(task, mix)| {
            let shares = Context::ALL
                .iter()
                .zip(mix)
                .map(|(c, &share)| (c.as_str().to_owned(), share))
                .collect();
            (task.to_string(), shares)
        })
        .collect();
    ContextRecord {
        bounds: CONTEXT_BOUNDS.to_vec(),
        mixes,
        within_class: format!(
            "short: the task's lognormal below {} tokens; medium, long and very_long: a \
             Pareto law of index {TAIL_INDEX} truncated to the class, very_long ending at \
             {LONGEST_PROMPT} tokens",
            CONTEXT_BOUNDS[0]
        ),
        window_rule: format!(
            "a prompt fills at most {MAX_INPUT_SHARE} of a model's context window; a request \
             whose prompt the picked model cannot hold goes to the first of the app's models \
             for the task, else of the task's models by hidden utility, that can (so its class \
             is kept); an agent's later calls stay with the extract model and are cut to fit it"
        ),
    }
}

/// Log of the blended price as apps weigh it: below 10 cents per million tokens price stops
/// mattering (otherwise near-free models would win every price-sensitive app).
fn ln_price(p: &Price) -> f64 {
    p.blended_usd_per_mtok().max(0.1).ln()
}

/// Hidden utility of a model for a task, before price and taste.
fn base_utility(m: &Model, t: Task) -> f64 {
    m.spec.quality + m.spec.profile.affinity(t)
}

/// Hidden utility of a model for a task, before price and taste, with the release's change when
/// `released` is the release of `m` and in force.
fn hidden_utility(m: &Model, t: Task, released: Option<&ReleasePlan>) -> f64 {
    let change = match released {
        Some(r) if t == r.win => RELEASE_GAIN,
        Some(r) if t == r.lose => -RELEASE_LOSS,
        _ => 0.0,
    };
    base_utility(m, t) + change
}

fn round3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Per task, the models by hidden utility, best first (ties by position in the lineup).
fn rank_by_utility(models: &[Model]) -> Vec<Vec<u16>> {
    Task::ALL
        .iter()
        .map(|&t| {
            let mut order: Vec<u16> = (0..models.len() as u16).collect();
            order.sort_by(|&a, &b| {
                base_utility(&models[usize::from(b)], t)
                    .total_cmp(&base_utility(&models[usize::from(a)], t))
            });
            order
        })
        .collect()
}

/// The position of each name in sorted order.
fn rank(names: &[&str]) -> Vec<u16> {
    let mut order: Vec<usize> = (0..names.len()).collect();
    order.sort_by_key(|&i| names[i]);
    let mut rank = vec![0u16; names.len()];
    for (r, i) in order.into_iter().enumerate() {
        rank[i] = r as u16;
    }
    rank
}

fn cumulative(w: &[f64]) -> Vec<f64> {
    let mut acc = 0.0;
    w.iter()
        .map(|x| {
            acc += x;
            acc
        })
        .collect()
}

/// Splits `total` into integers proportional to `weights` (largest remainder), summing exactly.
fn apportion(total: u64, weights: &[f64]) -> Vec<u64> {
    let sum: f64 = weights.iter().sum();
    let exact: Vec<f64> = weights.iter().map(|w| total as f64 * w / sum).collect();
    let mut out: Vec<u64> = exact.iter().map(|x| x.floor() as u64).collect();
    let mut rest = total.saturating_sub(out.iter().sum());
    let mut order: Vec<usize> = (0..weights.len()).collect();
    order.sort_by(|&a, &b| (exact[b] - exact[b].floor()).total_cmp(&(exact[a] - exact[a].floor())));
    for &i in order.iter().cycle().take(weights.len() * 2) {
        if rest == 0 {
            break;
        }
        out[i] += 1;
        rest -= 1;
    }
    out
}

/// What started a trial.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TrialCause {
    /// An app trying an alternative now and then.
    Background,
    /// The planted release, in its winning task.
    Release,
    /// The planted price cut with this index.
    PriceCut(usize),
}

/// How a cause's trials in one task turned out.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct TrialTally {
    started: u32,
    /// Ended with the trial model beating the primary by the switching cost.
    switched: u32,
    /// Primaries changed by the cause without a trial (a price cut's direct migrations).
    direct: u32,
}

#[derive(Debug, Default)]
struct Counters {
    preview: BTreeMap<String, u32>,
    adopting: u32,
    abandoning: u32,
    migrating: Vec<BTreeMap<String, u32>>,
    trials: BTreeMap<(TrialCause, Task), TrialTally>,
    /// Per task: the sum of the price sensitivity of its app×task units, and their number.
    price_sensitivity: BTreeMap<Task, (f64, u32)>,
}

impl Counters {
    fn merge(&mut self, other: Counters) {
        let add = |into: &mut BTreeMap<String, u32>, from: BTreeMap<String, u32>| {
            for (k, v) in from {
                *into.entry(k).or_default() += v;
            }
        };
        add(&mut self.preview, other.preview);
        self.adopting += other.adopting;
        self.abandoning += other.abandoning;
        if self.migrating.len() < other.migrating.len() {
            self.migrating
                .resize(other.migrating.len(), BTreeMap::new());
        }
        for (into, from) in self.migrating.iter_mut().zip(other.migrating) {
            add(into, from);
        }
        for (k, v) in other.trials {
            let t = self.trials.entry(k).or_default();
            t.started += v.started;
            t.switched += v.switched;
            t.direct += v.direct;
        }
        for (k, (sum, n)) in other.price_sensitivity {
            let e = self.price_sensitivity.entry(k).or_default();
            e.0 += sum;
            e.1 += n;
        }
    }

    fn tally(&mut self, cause: TrialCause, task: Task) -> &mut TrialTally {
        self.trials.entry((cause, task)).or_default()
    }
}

/// Simulates app timelines.
struct Planner<'a> {
    seed: u64,
    models: &'a [Model],
    start_us: i64,
    end_us: i64,
    days: u32,
    release: Option<ReleasePlan>,
    cuts: &'a [CutPlan],
}

/// What every task timeline of one app shares.
#[derive(Debug, Clone, Copy)]
struct AppTraits {
    index: u32,
    /// Price sensitivity: perceived utility lost per unit of ln(blended price).
    beta: f64,
    /// Size quantile (0 smallest, 1 largest).
    size_q: f64,
    /// When the app starts sending traffic.
    first_us: i64,
}

#[derive(Debug, Clone, Copy)]
struct Trial {
    model: usize,
    share: f64,
    end_us: i64,
    cause: TrialCause,
}

#[derive(Debug, Clone, Copy)]
struct State {
    primary: usize,
    trial: Option<Trial>,
    secondary: Option<(usize, f64)>,
}

#[derive(Debug, Clone, Copy)]
enum Action {
    Adopt,
    Abandon,
    Migrate(usize),
}

impl Planner<'_> {
    fn day_of(&self, t: i64) -> usize {
        ((t - self.start_us).div_euclid(US_PER_DAY)).clamp(0, i64::from(self.days) - 1) as usize
    }

    /// The utility an app perceives for model `m` in `task` at `t`.
    fn utility(&self, m: usize, task: Task, t: i64, taste: &[f64], beta: f64) -> f64 {
        let model = &self.models[m];
        let released = self.release.filter(|r| m == r.model && t >= r.ts_us);
        hidden_utility(model, task, released.as_ref()) + taste[m]
            - beta * model.ln_blended[self.day_of(t)]
    }

    /// The model maximising perceived utility plus `noise` × fresh Gumbel noise, excluding some.
    #[allow(clippy::too_many_arguments)]
    fn best(
        &self,
        rng: &mut Rng,
        task: Task,
        t: i64,
        taste: &[f64],
        beta: f64,
        noise: f64,
        exclude: &[usize],
    ) -> usize {
        let mut best = (f64::NEG_INFINITY, 0);
        for m in 0..self.models.len() {
            let g = if noise > 0.0 {
                noise * gumbel(rng.next_u64())
            } else {
                0.0
            };
            if exclude.contains(&m) {
                continue;
            }
            let u = self.utility(m, task, t, taste, beta) + g;
            if u > best.0 {
                best = (u, m);
            }
        }
        best.1
    }

    fn app(&self, i: u32, counters: &mut Counters) -> (App, &'static str) {
        let mut rng = Rng::new(hash(&[self.seed, 0xa99, u64::from(i)]));
        let arch = {
            let u = rng.f64();
            let mut acc = 0.0;
            ARCHETYPES
                .iter()
                .find(|a| {
                    acc += a.frac;
                    u < acc
                })
                .unwrap_or(&ARCHETYPES[0])
        };
        // Drawn by inversion so the quantile can also make big apps keener on price moves.
        let size_q = rng.f64();
        let weight = (1.0 - size_q).powf(-1.0 / 1.15) * arch.size;
        let beta = rng.range(arch.beta.0, arch.beta.1);
        let auto = rng.chance(0.06);
        let first_day = if rng.chance(0.12) {
            rng.below(u64::from(self.days)) as u32
        } else {
            0
        };
        let last_day = if rng.chance(0.08) {
            first_day + rng.below(u64::from(self.days - first_day)) as u32
        } else {
            self.days - 1
        };
        let vertical = VERTICALS[rng.below(VERTICALS.len() as u64) as usize];
        let mut mix: Vec<(Task, f64)> = arch
            .tasks
            .iter()
            .enumerate()
            .map(|(k, &(t, s))| {
                let t = if arch.name == "vertical" && k == 0 {
                    vertical
                } else {
                    t
                };
                (t, s * rng.lognormal(1.0, 0.3))
            })
            .collect();
        let total: f64 = mix.iter().map(|x| x.1).sum();
        mix.iter_mut().for_each(|x| x.1 /= total);
        let main = mix[0].0;
        mix.retain(|x| x.1 >= 0.02 || x.0 == main);

        let traits = AppTraits {
            index: i,
            beta,
            size_q,
            first_us: self.start_us + i64::from(first_day) * US_PER_DAY,
        };
        let tasks: Vec<AppTask> = mix
            .iter()
            .map(|&(task, _)| self.timeline(&mut rng, &traits, task, counters))
            .collect();
        let app = App {
            id: format!("app-{i:06}"),
            weight,
            first_day,
            last_day,
            auto,
            tasks,
            task_cum: cumulative(&mix.iter().map(|x| x.1).collect::<Vec<_>>()),
            extractor: None,
        };
        (app, arch.name)
    }

    /// The segment of an app×task in state `st` from `from_us` on. Its
    /// [`Segment::without_release`] is the app's favourite as it perceives models at `t` (with
    /// `taste` and price sensitivity `beta`).
    fn segment(
        &self,
        from_us: i64,
        st: &State,
        task: Task,
        t: i64,
        taste: &[f64],
        beta: f64,
    ) -> Segment {
        let (tm, ts) = st.trial.map_or((st.primary, 0.0), |t| (t.model, t.share));
        let (sm, ss) = st.secondary.map_or((st.primary, 0.0), |s| s);
        let p = (1.0 - ts - ss).max(0.2);
        let models = [st.primary, tm, sm];
        let without_release = match self.release {
            Some(r) if task == r.win && models.contains(&r.model) => {
                self.favourite(task, t, taste, beta, r.model)
            }
            _ => st.primary,
        };
        Segment {
            from_us,
            models: models.map(|m| m as u16),
            without_release: without_release as u16,
            cum: [p as f32, (p + ts) as f32, 1.0],
        }
    }

    /// The model with the highest perceived utility other than `excluded`, without noise (it
    /// draws nothing, so the app's timeline is the same whether or not it is asked for).
    fn favourite(&self, task: Task, t: i64, taste: &[f64], beta: f64, excluded: usize) -> usize {
        let mut best = (f64::NEG_INFINITY, excluded);
        for m in (0..self.models.len()).filter(|&m| m != excluded) {
            let u = self.utility(m, task, t, taste, beta);
            if u > best.0 {
                best = (u, m);
            }
        }
        best.1
    }

    fn timeline(
        &self,
        rng: &mut Rng,
        app: &AppTraits,
        task: Task,
        counters: &mut Counters,
    ) -> AppTask {
        let AppTraits {
            index,
            beta,
            size_q,
            first_us,
        } = *app;
        // Big apps pay the most, so they watch releases and prices most closely.
        let keen = 0.6 + 0.8 * size_q;
        let sensitivity = counters.price_sensitivity.entry(task).or_default();
        sensitivity.0 += beta;
        sensitivity.1 += 1;
        let n = self.models.len();
        let (seed, a, tk) = (self.seed, u64::from(index), task as u64);
        // An app's taste has a part shared by all its tasks and a task-specific part.
        let mut taste: Vec<f64> = (0..n as u64)
            .map(|m| {
                gumbel(hash(&[seed, a, tk, m, 1])) + 0.5 * (gumbel(hash(&[seed, a, m, 2])) - 0.577)
            })
            .collect();
        let t0 = first_us;
        let primary = self.best(rng, task, t0, &taste, beta, 0.0, &[]);
        let mut st = State {
            primary,
            trial: None,
            secondary: None,
        };
        if rng.chance(0.4) {
            let s = self.best(rng, task, t0, &taste, beta, 1.0, &[primary]);
            st.secondary = Some((s, rng.range(0.05, 0.2)));
        }
        let mut actions: Vec<(i64, Action)> = Vec::new();
        if let Some(r) = self.release
            && (task == r.win || task == r.lose)
        {
            if t0 < r.ts_us && primary != r.model && rng.chance(PREVIEW_P) {
                st.secondary = Some((r.model, rng.range(0.1, 0.25)));
                *counters.preview.entry(task.to_string()).or_default() += 1;
            }
            let delay = rng.range(0.0, f64::from(RELEASE_REACTION_HOURS) * US_PER_HOUR as f64);
            if task == r.win && rng.chance((ADOPT_P * keen).min(0.95)) {
                actions.push((r.ts_us + delay as i64, Action::Adopt));
            } else if task == r.lose {
                actions.push((r.ts_us + delay as i64, Action::Abandon));
            }
        }
        counters.migrating.resize(self.cuts.len(), BTreeMap::new());
        for (ci, cut) in self.cuts.iter().enumerate() {
            let delay = rng.range(0.0, f64::from(MIGRATION_HOURS) * US_PER_HOUR as f64);
            if beta >= 0.15 && rng.chance((cut.p_migrate * keen).min(0.95)) {
                actions.push((cut.ts_us + delay as i64, Action::Migrate(ci)));
            }
        }
        actions.sort_by_key(|a| a.0);

        let mut segments = vec![self.segment(i64::MIN, &st, task, t0, &taste, beta)];
        let trial_gap =
            |rng: &mut Rng| (rng.exponential(1.0 / TRIAL_RATE_PER_DAY) * US_PER_DAY as f64) as i64;
        let mut next_trial = t0 + trial_gap(rng);
        let mut next_secondary =
            t0 + (rng.exponential(SECONDARY_CHANGE_DAYS) * US_PER_DAY as f64) as i64;
        let mut taste_t = t0;
        let mut ai = 0;
        loop {
            let trial_end = st.trial.map_or(i64::MAX, |t| t.end_us);
            let natural = if st.trial.is_none() {
                next_trial
            } else {
                i64::MAX
            };
            let planted = actions.get(ai).map_or(i64::MAX, |a| a.0);
            let t = trial_end.min(natural).min(next_secondary).min(planted);
            if t >= self.end_us {
                break;
            }
            // Tastes drift as a random walk, so an incumbent can lose its edge over time.
            let weeks = (t - taste_t) as f64 / (7 * US_PER_DAY) as f64;
            if weeks > 0.0 {
                let sd = TASTE_DRIFT_PER_WEEK * weeks.sqrt();
                taste.iter_mut().for_each(|x| *x += sd * rng.normal());
                taste_t = t;
            }
            let before = (
                st.primary,
                st.trial.map(|x| x.model),
                st.secondary.map(|x| x.0),
            );
            if t == planted {
                let action = actions[ai].1;
                ai += 1;
                self.planted(rng, action, task, t, &taste, beta, &mut st, counters);
            } else if t == trial_end {
                if let Some(tr) = st.trial.take() {
                    let u_trial =
                        self.utility(tr.model, task, t, &taste, beta) + 0.3 * rng.normal();
                    let u_prim =
                        self.utility(st.primary, task, t, &taste, beta) + 0.3 * rng.normal();
                    let won = u_trial > u_prim + SWITCH_COST;
                    counters.tally(tr.cause, task).switched += u32::from(won);
                    if won {
                        let old = st.primary;
                        st.primary = tr.model;
                        if st.secondary.is_some_and(|s| s.0 == tr.model) {
                            st.secondary = None;
                        }
                        if rng.chance(0.3) {
                            st.secondary = Some((old, rng.range(0.05, 0.2)));
                        }
                    }
                }
                next_trial = t + trial_gap(rng);
            } else if t == natural {
                let mut exclude = vec![st.primary];
                exclude.extend(st.secondary.map(|s| s.0));
                let m = self.best(rng, task, t, &taste, beta, 1.0, &exclude);
                let days = rng.range(f64::from(TRIAL_DAYS[0]), f64::from(TRIAL_DAYS[1]));
                st.trial = Some(Trial {
                    model: m,
                    share: rng.range(TRIAL_SHARE[0], TRIAL_SHARE[1]),
                    end_us: t + (days * US_PER_DAY as f64) as i64,
                    cause: TrialCause::Background,
                });
                counters.tally(TrialCause::Background, task).started += 1;
            } else {
                if st.secondary.is_some() && rng.chance(0.5) {
                    st.secondary = None;
                } else {
                    let mut exclude = vec![st.primary];
                    exclude.extend(st.trial.map(|x| x.model));
                    let m = self.best(rng, task, t, &taste, beta, 1.0, &exclude);
                    st.secondary = Some((m, rng.range(0.05, 0.2)));
                }
                next_secondary =
                    t + (rng.exponential(SECONDARY_CHANGE_DAYS) * US_PER_DAY as f64) as i64;
            }
            let after = (
                st.primary,
                st.trial.map(|x| x.model),
                st.secondary.map(|x| x.0),
            );
            if before != after {
                // Two changes can fall on one microsecond; keep segments strictly ordered.
                let from = t.max(
                    segments
                        .last()
                        .map_or(i64::MIN, |s| s.from_us.saturating_add(1)),
                );
                segments.push(self.segment(from, &st, task, t, &taste, beta));
            }
        }
        AppTask { task, segments }
    }

    #[allow(clippy::too_many_arguments)]
    fn planted(
        &self,
        rng: &mut Rng,
        action: Action,
        task: Task,
        t: i64,
        taste: &[f64],
        beta: f64,
        st: &mut State,
        counters: &mut Counters,
    ) {
        match action {
            Action::Adopt => {
                let Some(r) = self.release else { return };
                if st.primary == r.model {
                    return;
                }
                if st.secondary.is_some_and(|s| s.0 == r.model) {
                    st.secondary = None;
                }
                let days = rng.range(4.0, 9.0);
                st.trial = Some(Trial {
                    model: r.model,
                    share: rng.range(0.3, 0.6),
                    end_us: t + (days * US_PER_DAY as f64) as i64,
                    cause: TrialCause::Release,
                });
                counters.adopting += 1;
                counters.tally(TrialCause::Release, task).started += 1;
            }
            Action::Abandon => {
                let Some(r) = self.release else { return };
                let mut changed = false;
                if st.primary == r.model {
                    st.primary = self.best(rng, task, t, taste, beta, 0.0, &[r.model]);
                    changed = true;
                }
                if st.trial.is_some_and(|x| x.model == r.model) {
                    st.trial = None;
                    changed = true;
                }
                if st
                    .secondary
                    .is_some_and(|s| s.0 == r.model || s.0 == st.primary)
                {
                    st.secondary = None;
                    changed = true;
                }
                counters.abandoning += u32::from(changed);
            }
            Action::Migrate(ci) => {
                let p = self.cuts[ci].model;
                if st.primary == p {
                    return;
                }
                let gap = self.utility(st.primary, task, t, taste, beta)
                    - self.utility(p, task, t, taste, beta);
                if gap > MIGRATION_SLACK {
                    return;
                }
                if rng.chance(0.65) {
                    counters.tally(TrialCause::PriceCut(ci), task).direct += 1;
                    let old = st.primary;
                    st.primary = p;
                    if st.trial.is_some_and(|x| x.model == p) {
                        st.trial = None;
                    }
                    st.secondary = if rng.chance(0.4) {
                        Some((old, rng.range(0.1, 0.3)))
                    } else {
                        None
                    };
                } else {
                    let days = rng.range(7.0, 14.0);
                    st.trial = Some(Trial {
                        model: p,
                        share: rng.range(0.3, 0.6),
                        end_us: t + (days * US_PER_DAY as f64) as i64,
                        cause: TrialCause::PriceCut(ci),
                    });
                    counters.tally(TrialCause::PriceCut(ci), task).started += 1;
                    if st.secondary.is_some_and(|s| s.0 == p) {
                        st.secondary = None;
                    }
                }
                *counters.migrating[ci].entry(task.to_string()).or_default() += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn apportion_is_exact() {
        let c = apportion(1000, &[1.0, 1.0, 1.0]);
        assert_eq!(c.iter().sum::<u64>(), 1000);
        assert!(c.iter().all(|&x| x == 333 || x == 334));
        assert_eq!(apportion(0, &[1.0, 2.0]), vec![0, 0]);
        assert_eq!(apportion(7, &[0.0, 1.0]), vec![0, 7]);
    }

    #[test]
    fn pick_day_keeps_distance() {
        let mut rng = Rng::new(1);
        for _ in 0..50 {
            let d = pick_day(&mut rng, 7, 49, &[21, 42], 5);
            assert!((7..=49).contains(&d));
            assert!(d.abs_diff(21) >= 5 && d.abs_diff(42) >= 5);
        }
        // Nothing fits: the farthest day wins.
        assert_eq!(pick_day(&mut rng, 2, 4, &[3], 5), 2);
    }
}
