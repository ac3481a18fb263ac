//! The ground-truth manifest: every effect the generator planted, with dates, slugs, tasks and
//! providers, plus the config and seed, so analytics can be checked against what is known to be
//! in the data. Written as `manifest.json` in the lake root.

use crate::GenError;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};

/// The file name of the manifest in the lake root.
pub const MANIFEST_FILE: &str = "manifest.json";

/// Everything known about a generated data set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// Always `"modelshare-gen"`.
    pub generator: String,
    /// Version of this manifest's shape.
    pub format: u32,
    pub config: ConfigRecord,
    /// First and last day of the period (inclusive), `YYYY-MM-DD`.
    pub period: Period,
    /// Event rows in the data set.
    pub events: u64,
    /// Where slugs and prices come from.
    pub catalog: String,
    /// How `cost_usd` is computed.
    pub cost_model: String,
    /// The planted effects, in date order.
    pub effects: Vec<Effect>,
    /// The models that receive traffic and their hidden per-task utility.
    pub models: Vec<ModelRecord>,
    pub apps: AppsRecord,
    /// The background behaviour every app follows (documentation of the traffic model).
    pub background: Background,
    /// What generation did with trials, per cause and task: how many started and how many
    /// became switches. Absent from manifests written before it was recorded.
    #[serde(default)]
    pub trials: Vec<TrialOutcome>,
    /// The planted agent apps (absent from manifests written before them).
    #[serde(default)]
    pub agents: Option<AgentsRecord>,
    /// How long prompts are, per task (absent from manifests written before context classes).
    #[serde(default)]
    pub context: Option<ContextRecord>,
}

/// How long prompts are: each task's planned mix over the context classes of
/// `modelshare_event::Context`, how lengths are drawn within a class, and what happens to a
/// prompt a model's window cannot hold.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContextRecord {
    /// The first input-token count of `medium`, `long` and `very_long`.
    pub bounds: Vec<u64>,
    /// Per task, the planned share of its requests in each class (`short`, `medium`, `long`,
    /// `very_long`; the shares of a task sum to 1). Every request draws its class from its
    /// task's mix; an agent's later calls are cut to their extract model's window (see
    /// `window_rule`), which can move a few of them to a shorter class.
    pub mixes: BTreeMap<String, BTreeMap<String, f64>>,
    /// How input tokens are drawn within a class.
    pub within_class: String,
    /// What happens to a request whose prompt the chosen model's window cannot hold.
    pub window_rule: String,
}

/// Apps that run agents: traces of several calls, an expensive first call and cheap later ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AgentsRecord {
    pub apps: u32,
    /// The mean a trace is drawn with; an app's requests of the day cap its last trace, so
    /// the traces in the data are shorter on average.
    pub planned_mean_calls_per_trace: f64,
    /// The cheap models later calls go to (each agent app uses one).
    pub extract_models: Vec<String>,
    pub pattern: String,
}

/// The trials of one cause in one task, as generation played them out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrialOutcome {
    /// `background` (apps trying alternatives now and then), `model_release` or `price_cut`.
    pub cause: String,
    /// The released or cut model (none for background trials).
    pub model: Option<String>,
    pub task: String,
    pub trials_started: u32,
    /// Trials that ended with the trial model beating the primary by the switching cost and
    /// becoming primary. Trials still running at the period's end are started, not switched.
    pub trials_switched: u32,
    /// Primaries the cause changed without a trial (a price cut's direct migrations).
    pub direct_switches: u32,
}

/// The config, as given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConfigRecord {
    pub seed: u64,
    pub start: String,
    pub days: u32,
    pub apps: u32,
    pub events: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Period {
    pub start: String,
    pub end: String,
}

/// A planted effect.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Effect {
    ModelRelease(Release),
    PriceCut(PriceCut),
    ProviderOutage(Outage),
}

/// A model release: the model was available as a preview to a minority of apps before; at `ts`
/// its general release raises its hidden utility in `winning_task` and lowers it in
/// `losing_task`. Apps react within `reaction_hours`: in the winning task many start a trial,
/// which becomes a switch only when the model beats the app's primary by the switching cost
/// (how many did is in the manifest's `trials`); in the losing task every app using it drops it.
/// In the winning task it wins at short prompts only: `context` says which classes it loses and
/// how many requests generation sent elsewhere.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub slug: String,
    pub date: String,
    /// RFC 3339 instant of the release.
    pub ts: String,
    pub ts_us: i64,
    pub winning_task: String,
    pub losing_task: String,
    /// Change of hidden utility (log-odds of being chosen) in each task.
    pub utility_gain_winning: f64,
    pub utility_loss_losing: f64,
    pub reaction_hours: u32,
    /// App×task pairs that used the preview before the release, per task.
    pub preview_app_tasks: BTreeMap<String, u32>,
    /// App×task pairs that started a trial of it in the winning task after the release.
    pub adopting_app_tasks: u32,
    /// App×task pairs that dropped it in the losing task after the release.
    pub abandoning_app_tasks: u32,
    /// How the release's effect in the winning task depends on the context class (absent from
    /// manifests written before context classes).
    #[serde(default)]
    pub context: Option<ReleaseContext>,
}

/// The release by context class: in the winning task it wins at short prompts and loses at
/// long ones. From the release on, a request of the winning task in a losing class that an app
/// picked the release for goes to the app's best other model instead (`rule`); before it,
/// preview users sent the release every class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseContext {
    /// Classes (`short`, `medium`, …) in which apps send the release the winning task's
    /// requests as they pick it.
    pub wins: Vec<String>,
    /// Classes in which, from the release on, apps send the winning task's requests elsewhere.
    pub loses: Vec<String>,
    /// Where a refused request goes.
    pub rule: String,
    /// What generation did: per losing class, the requests of the winning task that apps had
    /// picked the release for and sent elsewhere because of this rule (requests the release's
    /// context window could not have held go elsewhere anyway and are not counted). `None` in
    /// the plan of a data set not yet generated (`Generator::manifest` before every day has
    /// been drawn).
    pub moved_away: Option<BTreeMap<String, u64>>,
}

/// A real price cut from the catalog's price history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PriceCut {
    pub slug: String,
    /// The date of the cut in the catalog.
    pub real_date: String,
    /// The date the cut takes effect in this data set (00:00 UTC).
    pub date: String,
    pub ts_us: i64,
    /// True when the real date lay outside the period and the cut was moved into it; the
    /// generated prices then switch from `old` to `new` on `date`.
    pub shifted: bool,
    pub old: PriceRecord,
    pub new: PriceRecord,
    /// Change of the blended (3:1 input:output) price, in percent (negative).
    pub blended_change_percent: f64,
    /// Price-sensitive apps migrate towards the model within this many hours of the cut.
    pub migration_window_hours: u32,
    /// App×task pairs that moved traffic to the model because of the cut, per task.
    pub migrating_app_tasks: BTreeMap<String, u32>,
}

/// Catalog prices, USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PriceRecord {
    pub input_usd_per_mtok: f64,
    pub output_usd_per_mtok: f64,
    pub cache_read_usd_per_mtok: Option<f64>,
}

impl From<modelshare_catalog::Price> for PriceRecord {
    fn from(p: modelshare_catalog::Price) -> Self {
        PriceRecord {
            input_usd_per_mtok: p.input_usd_per_mtok,
            output_usd_per_mtok: p.output_usd_per_mtok,
            cache_read_usd_per_mtok: p.cache_read_usd_per_mtok,
        }
    }
}

/// A provider outage: every request routed to `provider` in `[start, end)` fails (emitted as a
/// `status: "error"`, `attempt: 0` row at that provider) and is served by another provider of
/// the same model (`attempt: 1`), or by the app's fallback model when no other provider serves it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Outage {
    /// The provider name as events carry it.
    pub provider: String,
    pub start: String,
    pub end: String,
    pub start_us: i64,
    pub end_us: i64,
    /// Models with traffic that this provider serves.
    pub affected_models: Vec<String>,
}

/// A model with traffic.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub slug: String,
    pub author: String,
    pub profile: crate::roster::Profile,
    pub reasoning: bool,
    /// Provider names as events carry them, with their routing weights.
    pub providers: BTreeMap<String, f64>,
    /// Hidden utility by task before planted effects and price (apps add their own taste and
    /// subtract price sensitivity × ln(blended price)).
    pub utility: BTreeMap<String, f64>,
    /// What apps weigh at the period's end, by task: hidden utility with the release's change,
    /// minus the task's mean price sensitivity × ln(blended price on the last day). Apps' tastes
    /// are drawn alike for every model, so this is the order an unbiased index should recover.
    #[serde(default)]
    pub effective_preference: BTreeMap<String, f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppsRecord {
    pub total: u32,
    pub by_archetype: BTreeMap<String, u32>,
    /// Apps that request `openrouter/auto` instead of naming a model.
    pub openrouter_auto: u32,
    /// Apps that start during the period / stop before its end.
    pub joining: u32,
    pub leaving: u32,
    /// Share of all requests (before failures) made by the largest 1 % of apps.
    pub top_1_percent_request_share: f64,
    /// Mean price sensitivity (perceived utility lost per unit of ln(blended price)) of the
    /// app×task units of each task.
    #[serde(default)]
    pub mean_price_sensitivity: BTreeMap<String, f64>,
}

/// The background behaviour, stated so analyses can be judged against it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Background {
    /// Every app×task has a sticky primary model; trials start at this rate per day.
    pub trial_rate_per_day: f64,
    pub trial_days: [u32; 2],
    pub trial_share: [f64; 2],
    /// Utility margin a trial must beat the primary by to become primary.
    pub switch_cost: f64,
    /// Weekly standard deviation of each app's drifting taste.
    pub taste_drift_per_week: f64,
    /// Share of requests whose first provider fails and that a second provider serves.
    pub fallback_rate: f64,
    /// Shares of final statuses other than ok (before provider flakiness).
    pub failure_rates: BTreeMap<String, f64>,
}

impl Manifest {
    /// The planted model release, if the period was long enough for one.
    pub fn release(&self) -> Option<&Release> {
        self.effects.iter().find_map(|e| match e {
            Effect::ModelRelease(r) => Some(r),
            _ => None,
        })
    }

    /// The planted price cuts.
    pub fn price_cuts(&self) -> impl Iterator<Item = &PriceCut> {
        self.effects.iter().filter_map(|e| match e {
            Effect::PriceCut(c) => Some(c),
            _ => None,
        })
    }

    /// The planted provider outage.
    pub fn outage(&self) -> Option<&Outage> {
        self.effects.iter().find_map(|e| match e {
            Effect::ProviderOutage(o) => Some(o),
            _ => None,
        })
    }

    /// Writes `manifest.json` into `dir` atomically (temporary file, fsync, rename).
    pub fn write(&self, dir: &Path) -> Result<PathBuf, GenError> {
        let path = dir.join(MANIFEST_FILE);
        let temp = dir.join(format!(".{MANIFEST_FILE}.tmp"));
        let json = serde_json::to_vec_pretty(self).map_err(|source| GenError::Manifest {
            path: path.clone(),
            source,
        })?;
        let io = |source| GenError::Io {
            path: temp.clone(),
            source,
        };
        {
            use std::io::Write;
            let mut f = fs::File::create(&temp).map_err(io)?;
            f.write_all(&json).map_err(io)?;
            f.write_all(b"\n").map_err(io)?;
            f.sync_all().map_err(io)?;
        }
        fs::rename(&temp, &path).map_err(|source| GenError::Io {
            path: path.clone(),
            source,
        })?;
        Ok(path)
    }

    /// Reads `manifest.json` from `dir`.
    pub fn read(dir: &Path) -> Result<Manifest, GenError> {
        let path = dir.join(MANIFEST_FILE);
        let bytes = fs::read(&path).map_err(|source| GenError::Io {
            path: path.clone(),
            source,
        })?;
        serde_json::from_slice(&bytes).map_err(|source| GenError::Manifest { path, source })
    }
}
