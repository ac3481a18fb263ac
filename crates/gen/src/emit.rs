//! Turning one day of the plan into events: request start times with a diurnal rhythm, the app,
//! task, prompt length and model each request goes to, provider routing and failover, token
//! counts, latency, status and cost.
//!
//! A request draws its prompt (context class and input tokens, `prompt`) before its model, so
//! where it goes can depend on its length. It goes to the model its app×task picks, unless
//! - the release refuses it (the winning task, from the release on, a class the release loses:
//!   [`crate::plan::ReleasePlan::refuses`]): it goes to the segment's
//!   [`Segment::without_release`] and, when the release's window would have held it, the day
//!   records it as moved away from the release;
//! - the model's window cannot hold the prompt: it goes to the first of the app's models for the
//!   task, else of the task's models by hidden utility ([`World::ranked`]), that can.
//!
//! Routing draws nothing, so the random stream of a request does not depend on where it went
//! before the provider is drawn. An agent's later calls stay with the extract model, their prompt
//! cut to its window.
//!
//! A day is drawn from its own random stream (seed, day), so any thread can generate any day
//! and the result is the same. Drawing produces compact [`Row`]s app by app (each app's plan
//! stays in cache); rows are then ordered — by time for the event API, by the lake's storage
//! order (task, model, ts) for Parquet, so the writer's sort finds them already sorted — and
//! only then turned into [`Event`]s.

use crate::plan::{
    AGENT_MEAN_CALLS, FAIL_TIMEOUT, FALLBACK_RATE, Segment, US_PER_DAY, US_PER_HOUR, World,
};
use crate::plan::{FAIL_CANCELLED, FAIL_CONTENT_FILTERED, FAIL_ERROR, FAIL_RATE_LIMITED};
use crate::prompt::{self, Prompt};
use crate::rng::{Alias, Rng, hash, mix64, pick_cumulative, push_base62, unit};
use crate::roster::SHAPES;
use modelshare_event::{Context, Event, MicroUsd, Status, Task, Timestamp};

/// Longest visible completion; longer answers stop with `finish_reason: "length"`.
const MAX_VISIBLE_OUTPUT: f64 = 16_000.0;
const MAX_REASONING: f64 = 32_000.0;

/// `finish_reason` values, indexed by [`Row::finish`] (0 = none).
const FINISH: [Option<&str>; 5] = [
    None,
    Some("stop"),
    Some("length"),
    Some("tool_calls"),
    Some("content_filter"),
];

/// One event before it has strings: indices into the plan plus the numbers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Row {
    pub(crate) ts: i64,
    cost: i64,
    /// Position in the day's drawing order; with the day's offset it numbers the event id.
    pub(crate) seq: u32,
    app: u32,
    pub(crate) requested: u16,
    pub(crate) model: u16,
    provider: u16,
    pub(crate) task: u8,
    status: u8,
    finish: u8,
    attempt: u8,
    input: u32,
    output: u32,
    reasoning: u32,
    cached: u32,
    latency: u32,
    ttft: u32,
    /// The app's trace number on this day (1-based; 0: not traced) and the call's step in it.
    trace: u32,
    step: u16,
}

/// Token counts of one request.
#[derive(Debug, Clone, Copy)]
struct Tokens {
    input: u32,
    visible: u32,
    reasoning: u32,
    cached: u32,
    truncated: bool,
}

/// One day's rows, and what routing did while drawing them.
#[derive(Debug)]
pub(crate) struct DayRows {
    /// In drawing order (app by app); [`Row::seq`] is the position.
    pub(crate) rows: Vec<Row>,
    /// The first row (by position) of each request the release refused (its window would have
    /// held the prompt) and its app sent to another model (see the module documentation).
    pub(crate) moved_from_release: Vec<u32>,
}

impl DayRows {
    /// The requests moved away from the release, by context class code.
    pub(crate) fn moved_by_context(&self) -> [u64; 4] {
        let mut counts = [0u64; 4];
        for &i in &self.moved_from_release {
            let input = u64::from(self.rows[i as usize].input);
            counts[usize::from(Context::of(input).code())] += 1;
        }
        counts
    }
}

/// Where one request goes.
#[derive(Debug, Clone, Copy)]
struct Route {
    model: usize,
    /// The app picked the release, whose window would have held the prompt but which refuses
    /// its class, and the request went to another model.
    moved_from_release: bool,
}

struct DayGen<'w> {
    world: &'w World,
    day: usize,
    rng: Rng,
    rows: Vec<Row>,
    moved_from_release: Vec<u32>,
}

impl DayGen<'_> {
    /// The token counts of a request with `prompt` to `model`: the prompt's input tokens (cut to
    /// what the model's window holds, which routing leaves to agents' later calls), then the
    /// answer's visible, reasoning and cached tokens from the task's shape.
    fn tokens(&mut self, model: usize, task: Task, prompt: Prompt) -> Tokens {
        let shape = &SHAPES[task as usize];
        let m = &self.world.models[model];
        let rng = &mut self.rng;
        let input = prompt.input.clamp(16.0, m.max_input());
        let raw_out = if task == Task::Translation {
            input * rng.range(0.8, 1.3)
        } else {
            rng.lognormal(shape.output_median, shape.output_sigma)
        };
        let visible = raw_out.clamp(1.0, MAX_VISIBLE_OUTPUT);
        let reasoning = if m.spec.reasoning && rng.chance(0.85) {
            rng.lognormal(shape.reasoning_median, 0.9)
                .clamp(16.0, MAX_REASONING)
        } else {
            0.0
        };
        let cached =
            if m.prices[self.day].cache_read_usd_per_mtok.is_some() && rng.chance(shape.cache_p) {
                let (lo, hi) = if task == Task::Programming {
                    (0.5, 0.95)
                } else {
                    (0.3, 0.9)
                };
                input * rng.range(lo, hi)
            } else {
                0.0
            };
        Tokens {
            input: input as u32,
            visible: visible as u32,
            reasoning: reasoning as u32,
            cached: (cached as u32).min(input as u32),
            truncated: raw_out >= MAX_VISIBLE_OUTPUT,
        }
    }

    /// Draws how the request ended (unless `fail` forces a failed attempt) and appends its row.
    #[allow(clippy::too_many_arguments)]
    fn push(
        &mut self,
        ts: i64,
        app: usize,
        task: Task,
        requested: usize,
        model: usize,
        provider: u16,
        tok: Tokens,
        attempt: u8,
        fail: Option<(Status, f64)>,
    ) {
        let w = self.world;
        let m = &w.models[model];
        let p = &w.providers[provider as usize];
        let rng = &mut self.rng;
        let status = match fail {
            Some((s, _)) => s,
            None => {
                let f = p.speed.flakiness;
                let filtered =
                    if task == Task::Roleplay { 8.0 } else { 1.0 } * FAIL_CONTENT_FILTERED;
                let u = rng.f64();
                let mut acc = 0.0;
                let mut status = Status::Ok;
                for (s, rate) in [
                    (Status::Error, FAIL_ERROR * f),
                    (Status::Timeout, FAIL_TIMEOUT * f),
                    (Status::RateLimited, FAIL_RATE_LIMITED * f),
                    (Status::Cancelled, FAIL_CANCELLED),
                    (Status::ContentFiltered, filtered),
                ] {
                    acc += rate;
                    if u < acc {
                        status = s;
                        break;
                    }
                }
                status
            }
        };
        let tps = p.speed.tokens_per_s * m.speed * rng.lognormal(1.0, 0.25);
        let ttft =
            p.speed.ttft_ms * rng.lognormal(1.0, 0.5) * (1.0 + f64::from(tok.input) / 60_000.0)
                + f64::from(tok.reasoning) / tps * 1000.0;
        let gen_ms = f64::from(tok.visible) / tps * 1000.0;
        let price = &m.prices[self.day];
        let cost = |out: u32| price.cost_micro_usd(tok.input, out, tok.cached);
        let (output, reasoning, ttft_ms, latency_ms, finish, cost) = match status {
            Status::Ok => {
                let finish = if tok.truncated || rng.chance(0.04) {
                    2
                } else if rng.chance(SHAPES[task as usize].tool_calls) {
                    3
                } else {
                    1
                };
                let out = tok.visible + tok.reasoning;
                (out, tok.reasoning, ttft, ttft + gen_ms, finish, cost(out))
            }
            Status::Cancelled => {
                let part = rng.f64();
                let out = (f64::from(tok.visible) * part) as u32 + tok.reasoning;
                (out, tok.reasoning, ttft, ttft + gen_ms * part, 0, cost(out))
            }
            Status::ContentFiltered => {
                let out = (f64::from(tok.visible) * rng.range(0.0, 0.3)) as u32;
                (out, 0, ttft, ttft + gen_ms * 0.3, 4, cost(out))
            }
            Status::Timeout => (0, 0, 0.0, rng.range(60_000.0, 300_000.0), 0, 0),
            Status::RateLimited => (0, 0, 0.0, rng.range(40.0, 400.0), 0, 0),
            Status::Error => (0, 0, 0.0, rng.range(150.0, 3_000.0), 0, 0),
        };
        let latency_ms = fail.map_or(latency_ms, |(_, ms)| ms);
        let ttft_ms = ttft_ms.min(3.0e9) as u32;
        self.rows.push(Row {
            ts,
            cost,
            seq: self.rows.len() as u32,
            app: app as u32,
            requested: requested as u16,
            model: model as u16,
            provider,
            task: task as u8,
            status: status as u8,
            finish,
            attempt,
            input: tok.input,
            output,
            reasoning,
            cached: tok.cached,
            // Time to first token is strictly inside the request.
            latency: (latency_ms.min(4.0e9) as u32).max(ttft_ms.saturating_add(1)),
            ttft: ttft_ms,
            trace: 0,
            step: 0,
        });
    }

    /// The later calls of an agent trace whose first call (at `t`, the last row pushed) went
    /// to the app's model: up to `room` calls to `extractor`, seconds apart, on this day, each
    /// at a provider that is not down. Returns how many it pushed.
    #[allow(clippy::too_many_arguments)]
    fn agent_steps(
        &mut self,
        app: usize,
        task: Task,
        t: i64,
        day_us: i64,
        extractor: usize,
        trace: u32,
        room: u32,
    ) -> u32 {
        if let Some(first) = self.rows.last_mut() {
            first.trace = trace;
            first.step = 0;
        }
        let extra = (self.rng.exponential(AGENT_MEAN_CALLS - 1.0) as u32).min(room);
        let mut at = t;
        let mut pushed = 0;
        for step in 1..=extra {
            at = (at + (self.rng.range(0.5, 8.0) * 1e6) as i64).min(day_us + US_PER_DAY - 1);
            let m = &self.world.models[extractor];
            let mut provider = m.providers[pick_cumulative(&m.provider_cum, self.rng.f64())];
            if let Some(o) = self
                .world
                .outage
                .as_ref()
                .filter(|o| (o.start_us..o.end_us).contains(&at) && o.provider == provider)
            {
                match self.other_provider(extractor, &[o.provider]) {
                    Some(p) => provider = p,
                    None => break,
                }
            }
            let prompt = prompt::draw(&mut self.rng, task);
            let tok = self.tokens(extractor, task, prompt);
            self.push(at, app, task, extractor, extractor, provider, tok, 0, None);
            if let Some(row) = self.rows.last_mut() {
                row.trace = trace;
                row.step = step as u16;
            }
            pushed += 1;
        }
        pushed
    }

    /// Whether `model` can take a request of `task` at `t` with `prompt`: its window holds the
    /// prompt, the release does not refuse it, and a provider outside `avoid` serves it.
    fn can_take(&self, model: usize, task: Task, t: i64, prompt: Prompt, avoid: &[u16]) -> bool {
        let m = &self.world.models[model];
        let refused = self
            .world
            .release
            .is_some_and(|r| r.refuses(model, task, t, prompt.context));
        prompt.input <= m.max_input() && !refused && m.providers.iter().any(|p| !avoid.contains(p))
    }

    /// Where a request the app picked `pick` for goes (see the module documentation): `pick`
    /// when it can take it, else the first that can of: the segment's model without the release
    /// (when the release refused it), the segment's models, the task's models by hidden utility.
    /// When none can (no model in the lineup holds the prompt), `pick`, whose window then cuts
    /// the prompt.
    fn route(
        &self,
        seg: &Segment,
        pick: usize,
        task: Task,
        t: i64,
        prompt: Prompt,
        avoid: &[u16],
    ) -> Route {
        if self.can_take(pick, task, t, prompt, avoid) {
            return Route {
                model: pick,
                moved_from_release: false,
            };
        }
        let refused = self
            .world
            .release
            .is_some_and(|r| r.refuses(pick, task, t, prompt.context));
        let model = refused
            .then_some(seg.without_release)
            .into_iter()
            .chain(seg.models)
            .chain(self.world.ranked[task as usize].iter().copied())
            .map(usize::from)
            .find(|&m| self.can_take(m, task, t, prompt, avoid))
            .unwrap_or(pick);
        let held = prompt.input <= self.world.models[pick].max_input();
        Route {
            model,
            moved_from_release: refused && held && model != pick,
        }
    }

    /// Another provider of `model`, by routing weight, avoiding those in `avoid`; `None` when
    /// it has none.
    fn other_provider(&mut self, model: usize, avoid: &[u16]) -> Option<u16> {
        let m = &self.world.models[model];
        let usable = |p: &u16| !avoid.contains(p);
        let total: f64 = m
            .providers
            .iter()
            .zip(&m.provider_weights)
            .filter(|(p, _)| usable(p))
            .map(|(_, w)| w)
            .sum();
        if total <= 0.0 {
            return None;
        }
        let mut x = self.rng.f64() * total;
        let mut last = None;
        for (&p, &w) in m.providers.iter().zip(&m.provider_weights) {
            if !usable(&p) {
                continue;
            }
            last = Some(p);
            if x < w {
                return Some(p);
            }
            x -= w;
        }
        last
    }

    /// Draws `slots` rows of app `app`. Returns nothing; rows go to `self.rows`.
    fn app_rows(&mut self, app: usize, slots: u32, day_us: i64) {
        let world = self.world;
        let a = &world.apps[app];
        let mut k = 0;
        let mut traces = 0;
        while k < slots {
            let hour = world.hourly.sample(&mut self.rng) as i64;
            let t = day_us + hour * US_PER_HOUR + self.rng.below(US_PER_HOUR as u64) as i64;
            let at = &a.tasks[pick_cumulative(&a.task_cum, self.rng.f64())];
            let task = at.task;
            let prompt = prompt::draw(&mut self.rng, task);
            let seg: Segment = *at.at(t);
            let pick = seg.pick(self.rng.f64() as f32) as usize;
            let route = self.route(&seg, pick, task, t, prompt, &[]);
            let model = route.model;
            if route.moved_from_release {
                // Whichever way the request ends, its first row is the next one pushed.
                self.moved_from_release.push(self.rows.len() as u32);
            }
            let m = &world.models[model];
            let provider = m.providers[pick_cumulative(&m.provider_cum, self.rng.f64())];
            let tok = self.tokens(model, task, prompt);
            let down = world
                .outage
                .as_ref()
                .filter(|o| (o.start_us..o.end_us).contains(&t));
            let in_outage = down.is_some_and(|o| o.provider == provider);
            let flaky = world.providers[provider as usize].speed.flakiness;
            let background_fail = !in_outage && self.rng.chance(FALLBACK_RATE * flaky);
            let room = k + 1 < slots;

            if !(in_outage || background_fail && room) {
                self.push(t, app, task, model, model, provider, tok, 0, None);
                k += 1;
                if let Some(extractor) = a.extractor {
                    traces += 1;
                    k += self.agent_steps(
                        app,
                        task,
                        t,
                        day_us,
                        usize::from(extractor),
                        traces,
                        slots - k,
                    );
                }
                continue;
            }

            // The first attempt fails; the router moves on. When this app has no slot left
            // today for the failed attempt's own row, only the retry is recorded.
            let fail_ms = self.rng.range(150.0, 3_000.0);
            if room {
                let status = if in_outage || self.rng.chance(0.4) {
                    Status::Error
                } else {
                    Status::RateLimited
                };
                self.push(
                    t,
                    app,
                    task,
                    model,
                    model,
                    provider,
                    tok,
                    0,
                    Some((status, fail_ms)),
                );
                k += 1;
            }
            // The retry avoids the provider that just failed and, while it is down, the outage's.
            let avoid = [provider, down.map_or(provider, |o| o.provider)];
            let (model2, provider2) = match self.other_provider(model, &avoid) {
                Some(p) => (model, p),
                None if in_outage => {
                    // Nobody else serves this model: fall back to another of the app's models,
                    // or to the best model for the task, that a working provider serves (and
                    // that holds the prompt and does not refuse it).
                    let alt = self.route(&seg, model, task, t, prompt, &avoid).model;
                    let p = self.other_provider(alt, &avoid).unwrap_or(provider);
                    (alt, p)
                }
                // A lone provider that rate-limited is simply retried (it is not the one down:
                // a request to that one is `in_outage`).
                None => (model, provider),
            };
            // The same prompt, answered by another model.
            let tok2 = if model2 == model {
                tok
            } else {
                self.tokens(model2, task, prompt)
            };
            // The retry starts when the failure came back, but stays on this day's partition.
            let t2 = (t + (fail_ms * 1000.0) as i64).min(day_us + US_PER_DAY - 1);
            self.push(t2, app, task, model, model2, provider2, tok2, 1, None);
            k += 1;
        }
    }
}

/// Draws every row of day `day`, in drawing order (app by app).
pub(crate) fn day_rows(world: &World, day: u32) -> DayRows {
    let empty = DayRows {
        rows: Vec::new(),
        moved_from_release: Vec::new(),
    };
    let Some(&n) = world.day_counts.get(day as usize) else {
        return empty;
    };
    if n == 0 || world.apps.is_empty() || world.models.is_empty() {
        return empty;
    }
    let seed = world.cfg.seed;
    let mut g = DayGen {
        world,
        day: day as usize,
        rng: Rng::new(hash(&[seed, 0xda7, u64::from(day)])),
        rows: Vec::with_capacity(n as usize),
        moved_from_release: Vec::new(),
    };
    let day_us = world.start_us + i64::from(day) * US_PER_DAY;

    // Apps active today, each with its own day-to-day wobble.
    let mut active: Vec<usize> = (0..world.apps.len())
        .filter(|&a| (world.apps[a].first_day..=world.apps[a].last_day).contains(&day))
        .collect();
    if active.is_empty() {
        active = (0..world.apps.len()).collect();
    }
    let weights: Vec<f64> = active
        .iter()
        .map(|&a| {
            let h = hash(&[seed, 0x3a7, a as u64, u64::from(day)]);
            world.apps[a].weight * (0.6 * (unit(h) - 0.5)).exp()
        })
        .collect();
    // Deal the day's rows to apps (a multinomial draw), then draw each app's rows together.
    let alias = Alias::new(&weights);
    let mut slots = vec![0u32; active.len()];
    for _ in 0..n {
        slots[alias.sample(&mut g.rng)] += 1;
    }
    for (i, &app) in active.iter().enumerate() {
        g.app_rows(app, slots[i], day_us);
    }
    DayRows {
        rows: g.rows,
        moved_from_release: g.moved_from_release,
    }
}

/// The order to materialise a day's rows in: indices into the rows, sorted by a packed key.
/// Sorting 16-byte keys instead of whole rows keeps the sort cheap.
fn order_by(rows: &[Row], key: impl Fn(&Row) -> u64) -> Vec<u32> {
    let mut keyed: Vec<(u64, u32)> = rows.iter().map(|r| (key(r), r.seq)).collect();
    // `seq` is unique, so the order is fully determined whatever the sort algorithm.
    keyed.sort_unstable();
    keyed.into_iter().map(|(_, i)| i).collect()
}

/// Row indices in order of request start. Rows of one day start within 2^37 µs of midnight.
pub(crate) fn time_order(world: &World, day: u32, rows: &[Row]) -> Vec<u32> {
    let day_us = world.start_us + i64::from(day) * US_PER_DAY;
    order_by(rows, |r| (r.ts - day_us) as u64)
}

/// Row indices in the lake's storage order: task name, model slug, ts (names compared as bytes,
/// like Arrow's sort does).
pub(crate) fn storage_order(world: &World, day: u32, rows: &[Row]) -> Vec<u32> {
    let day_us = world.start_us + i64::from(day) * US_PER_DAY;
    order_by(rows, |r| {
        let task = u64::from(world.task_rank[r.task as usize]);
        let model = u64::from(world.model_rank[r.model as usize]);
        (task << 56) | (model << 40) | ((r.ts - day_us) as u64 & ((1 << 40) - 1))
    })
}

fn set(dst: &mut String, src: &str) {
    dst.clear();
    dst.push_str(src);
}

/// Turns rows into events, reusing one scratch [`Event`] (no allocation per event except when
/// the model changes).
#[derive(Debug)]
pub(crate) struct Materializer<'w> {
    world: &'w World,
    base_row: u64,
    e: Event,
}

impl<'w> Materializer<'w> {
    pub(crate) fn new(world: &'w World, day: u32) -> Option<Self> {
        let first = world.models.first()?;
        Some(Materializer {
            world,
            base_row: world.day_offsets.get(day as usize).copied().unwrap_or(0),
            e: Event {
                event_id: String::with_capacity(32),
                ts: Timestamp(0),
                app_id: String::with_capacity(16),
                task: Task::Other,
                model_requested: String::with_capacity(48),
                model: first.slug.clone(),
                provider: String::with_capacity(24),
                input_tokens: 0,
                output_tokens: 0,
                reasoning_tokens: 0,
                cached_tokens: 0,
                cost: MicroUsd(0),
                latency_ms: 0,
                ttft_ms: 0,
                status: Status::Ok,
                finish_reason: Some(String::with_capacity(16)),
                attempt: 0,
                trace_id: None,
                step: None,
            },
        })
    }

    pub(crate) fn event(&mut self, r: &Row) -> &Event {
        let w = self.world;
        let e = &mut self.e;
        e.event_id.clear();
        e.event_id.push_str("gen-");
        push_decimal(&mut e.event_id, r.ts.div_euclid(1_000_000).max(0) as u64);
        e.event_id.push('-');
        // A bijection of the row number, so ids are unique without any bookkeeping.
        push_base62(
            &mut e.event_id,
            mix64((self.base_row + u64::from(r.seq)) ^ w.id_key),
            11,
        );
        e.ts = Timestamp(r.ts);
        let app = &w.apps[r.app as usize];
        set(&mut e.app_id, &app.id);
        e.task = Task::ALL[r.task as usize];
        if app.auto {
            set(&mut e.model_requested, "openrouter/auto");
        } else {
            set(
                &mut e.model_requested,
                w.models[r.requested as usize].slug.as_str(),
            );
        }
        let model = &w.models[r.model as usize].slug;
        if e.model != *model {
            e.model = model.clone();
        }
        set(&mut e.provider, &w.providers[r.provider as usize].name);
        e.input_tokens = r.input;
        e.output_tokens = r.output;
        e.reasoning_tokens = r.reasoning;
        e.cached_tokens = r.cached;
        e.cost = MicroUsd(r.cost);
        e.latency_ms = r.latency;
        e.ttft_ms = r.ttft;
        e.status = Status::ALL[r.status as usize];
        match (FINISH[r.finish as usize], e.finish_reason.as_mut()) {
            (Some(f), Some(s)) => set(s, f),
            (Some(f), None) => e.finish_reason = Some(f.to_owned()),
            (None, _) => e.finish_reason = None,
        }
        e.attempt = r.attempt;
        if r.trace == 0 {
            e.trace_id = None;
            e.step = None;
        } else {
            // Unique per app: its day and its trace number that day.
            let day = (r.ts - w.start_us).div_euclid(US_PER_DAY);
            e.trace_id = Some(format!("{}-d{day}-t{}", app.id, r.trace));
            e.step = Some(u32::from(r.step));
        }
        &self.e
    }
}

/// Appends `n` in decimal (the event id's seconds), without the formatting machinery.
fn push_decimal(out: &mut String, mut n: u64) {
    let mut buf = [0u8; 20];
    let mut i = buf.len();
    loop {
        i -= 1;
        buf[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    for &b in &buf[i..] {
        out.push(char::from(b));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::GenConfig;
    use chrono::NaiveDate;

    /// Three weeks (long enough for a release), 150 apps, 60,000 events.
    fn small_world() -> World {
        World::build(&GenConfig {
            seed: 9,
            start: NaiveDate::from_ymd_opt(2026, 10, 5).unwrap(),
            days: 21,
            apps: 150,
            events: 60_000,
        })
        .unwrap()
    }

    #[test]
    fn the_release_gets_short_prompts_of_its_winning_task_and_loses_long_ones() {
        let world = small_world();
        let r = world.release.expect("three weeks have a release");
        let win = r.win as u8;
        let (mut short_after, mut long_before, mut moved) = (0, 0, 0);
        for day in 0..world.cfg.days {
            let drawn = day_rows(&world, day);
            for row in drawn.rows.iter().filter(|row| row.task == win) {
                let context = Context::of(u64::from(row.input));
                let to_release = usize::from(row.model) == r.model;
                if row.ts < r.ts_us {
                    long_before += u32::from(to_release && context >= Context::Long);
                } else if context >= Context::Long {
                    assert!(
                        !to_release,
                        "a {context} request went to the release: {row:?}"
                    );
                } else {
                    short_after += u32::from(to_release && context == Context::Short);
                }
            }
            for &i in &drawn.moved_from_release {
                let row = &drawn.rows[i as usize];
                let app = &world.apps[row.app as usize];
                let at = app.tasks.iter().find(|t| t.task as u8 == row.task).unwrap();
                let seg = at.at(row.ts);
                // A request of the winning task, from the release on, of a class it loses, by an
                // app×task that sends the release a share of its requests, which asked for and
                // got another model: the one it uses without the release when that holds it.
                assert_eq!(row.task, win);
                assert!(row.ts >= r.ts_us);
                assert!(
                    Context::of(u64::from(row.input)) >= Context::Long,
                    "{row:?}"
                );
                assert!(seg.models.contains(&(r.model as u16)), "{seg:?}");
                assert_ne!(usize::from(row.model), r.model);
                assert_eq!(row.requested, row.model);
                let instead = &world.models[usize::from(seg.without_release)];
                if f64::from(row.input) <= instead.max_input() && row.attempt == 0 {
                    assert_eq!(row.model, seg.without_release, "{row:?}");
                }
            }
            moved += drawn.moved_from_release.len();
        }
        assert!(
            short_after > 0,
            "no short request went to the release after it"
        );
        assert!(
            long_before > 0,
            "no preview user sent the release a long prompt"
        );
        assert!(moved > 0, "nothing was moved away from the release");
    }

    #[test]
    fn decimal_digits() {
        let mut s = String::new();
        push_decimal(&mut s, 0);
        s.push(' ');
        push_decimal(&mut s, 1_795_168_800);
        assert_eq!(s, "0 1795168800");
    }
}
