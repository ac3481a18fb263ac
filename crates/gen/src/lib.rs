//! Deterministic synthetic router traffic with planted, documented effects.
//!
//! A seed, a period, a number of apps and a number of events determine a data set completely:
//! the same config gives the same events whatever the thread count or dependency versions. The
//! traffic looks like a public router's: heavy-tailed app sizes, programming then roleplay
//! carrying most tokens, sticky apps that trial alternatives and sometimes switch, prompts whose
//! length (context class) follows each task's mix, real model slugs with their real catalog
//! prices, and dated market events — a model release that wins at short prompts and loses at long
//! ones, real price cuts, a provider outage — whose ground truth is written to a manifest next to
//! the data.
//!
//! Layout:
//! - [`config`]: [`GenConfig`] (the demo default) and [`GenError`].
//! - [`manifest`]: the ground-truth [`Manifest`] (`manifest.json` in the lake root).
//! - [`wire`]: [`to_json`], the NDJSON wire format for sending events to a server.
//! - `rng` (private): SplitMix64 / xoshiro256** and the distributions used.
//! - `roster` (private): the models, app archetypes, task token shapes and provider speeds.
//! - `prompt` (private): each task's context mix and the draw of a prompt's length.
//! - `plan` (private): the world — models and prices per day, apps and their model timelines,
//!   the planted effects.
//! - `emit` (private): one day of the plan → events, routing each request by its prompt.
//! - this module: [`Generator`], [`events`], [`generate_to_lake`].

pub mod config;
mod emit;
pub mod manifest;
mod plan;
mod prompt;
mod rng;
mod roster;
pub mod wire;

pub use config::{DEMO_SEED, GenConfig, GenError};
pub use manifest::{Effect, MANIFEST_FILE, Manifest};
pub use roster::Profile;
pub use wire::to_json;

use chrono::{Days, NaiveDate};
use modelshare_event::Event;
use modelshare_event::schema::EventBatchBuilder;
use modelshare_ingest::lake::{IdRun, Lake, write_batches};
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};

/// Worker threads for [`generate_to_lake`] (the target machine has two cores; more threads
/// would not change the output, only the speed).
const THREADS: usize = 2;
/// Rows per Arrow batch handed to the lake writer.
const BATCH_ROWS: usize = 64 * 1024;
/// Rows per Parquet file at most: what compaction makes of a closed day, so it finds nothing to
/// do in a generated lake. A bigger day is split into equal files, any two of which together
/// are more than compaction would merge.
const FILE_ROWS: usize = modelshare_ingest::compact::ROWS_PER_FILE;

/// A planned data set: build once, then generate any day, in any order, on any thread.
#[derive(Debug)]
pub struct Generator {
    world: plan::World,
    /// Per day, once it has been drawn: the requests it moved away from the release, by context
    /// class code (what the manifest's release record reports).
    moved_from_release: Mutex<Vec<Option<[u64; 4]>>>,
    /// The manifest with what generation did, once every day has been drawn.
    generated: OnceLock<Manifest>,
}

impl Generator {
    /// Plans the data set (models, prices, apps, their timelines, planted effects).
    pub fn new(cfg: &GenConfig) -> Result<Generator, GenError> {
        let world = plan::World::build(cfg)?;
        Ok(Generator {
            moved_from_release: Mutex::new(vec![None; world.cfg.days as usize]),
            generated: OnceLock::new(),
            world,
        })
    }

    pub fn config(&self) -> &GenConfig {
        &self.world.cfg
    }

    /// The ground truth of this data set. Until every day has been drawn (by any of the methods
    /// that visit a day's events, in any order) it is the plan, whose counts of what
    /// generation did (the release's `context.moved_away`) are `None`; from then on it has them.
    pub fn manifest(&self) -> &Manifest {
        self.generated.get().unwrap_or(&self.world.manifest)
    }

    /// Draws the rows of day `day` and records what routing did on it.
    fn day_rows(&self, day: u32) -> emit::DayRows {
        let rows = emit::day_rows(&self.world, day);
        self.record(day, rows.moved_by_context());
        rows
    }

    /// Records the requests day `day` moved away from the release; when that was the last day
    /// not yet drawn, completes the manifest. Days are drawn the same every time, so drawing
    /// one again changes nothing.
    fn record(&self, day: u32, moved: [u64; 4]) {
        if self.generated.get().is_some() {
            return;
        }
        let mut days = self
            .moved_from_release
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(slot) = days.get_mut(day as usize) {
            *slot = Some(moved);
        }
        let Some(all) = days.iter().copied().collect::<Option<Vec<_>>>() else {
            return;
        };
        let mut total = [0u64; 4];
        for day in all {
            total.iter_mut().zip(day).for_each(|(t, d)| *t += d);
        }
        // Only one caller gets here with every day drawn while the lock is held; a later one
        // finds the manifest set and returns above.
        let _ = self.generated.set(self.world.generated_manifest(total));
    }

    /// Days in the period.
    pub fn days(&self) -> u32 {
        self.world.cfg.days
    }

    /// The UTC date of day `day` (0-based) of the period.
    pub fn date(&self, day: u32) -> NaiveDate {
        self.world.cfg.start + Days::new(u64::from(day))
    }

    /// Rows that day `day` has.
    pub fn rows_on_day(&self, day: u32) -> u64 {
        self.world
            .day_counts
            .get(day as usize)
            .copied()
            .unwrap_or(0)
    }

    /// Visits every event of day `day` in order of request start. The event passed is a
    /// reused scratch value (no allocation per event); clone it to keep it.
    pub fn for_each_event(&self, day: u32, mut f: impl FnMut(&Event)) {
        let rows = self.day_rows(day).rows;
        let order = emit::time_order(&self.world, day, &rows);
        if let Some(mut m) = emit::Materializer::new(&self.world, day) {
            order.iter().for_each(|&i| f(m.event(&rows[i as usize])));
        }
    }

    /// Like [`for_each_event`](Self::for_each_event), in the lake's storage order (task, model,
    /// ts), which lets the Parquet writer's sort run over already sorted rows.
    fn for_each_event_in_storage_order(&self, day: u32, mut f: impl FnMut(&Event)) {
        let rows = self.day_rows(day).rows;
        let order = emit::storage_order(&self.world, day, &rows);
        if let Some(mut m) = emit::Materializer::new(&self.world, day) {
            order.iter().for_each(|&i| f(m.event(&rows[i as usize])));
        }
    }

    /// The events of day `day`.
    pub fn day_events(&self, day: u32) -> Vec<Event> {
        let mut out = Vec::with_capacity(self.rows_on_day(day) as usize);
        self.for_each_event(day, |e| out.push(e.clone()));
        out
    }

    /// Every event of the period, day by day (one day buffered at a time).
    pub fn events(&self) -> impl Iterator<Item = Event> + '_ {
        (0..self.days()).flat_map(|d| self.day_events(d))
    }

    /// Writes every day as Parquet into the lake (holding its writer lock), two days at a time
    /// in parallel, then `manifest.json` (with what generation did) into the lake root.
    /// `progress` is called with the number of rows each finished file added (an increment,
    /// from worker threads). Returns the number of rows written.
    ///
    /// The lake lock is taken here, so the caller must not hold it. Rows are added to whatever
    /// the lake already holds; writing the same config twice duplicates every event.
    pub fn write_to_lake(
        &self,
        lake: &Lake,
        progress: &(dyn Fn(u64) + Sync),
    ) -> Result<u64, GenError> {
        let _lock = lake.lock()?;
        // Generated history is not in the duplicate window (nobody sends it again): the index
        // exists, so a server does not index the files at its first start, and holds no run.
        let ids = lake.ids_dir();
        std::fs::create_dir_all(&ids).map_err(|source| GenError::Io {
            path: ids.clone(),
            source,
        })?;
        let next_day = AtomicU32::new(0);
        let stop = AtomicBool::new(false);
        let worker = || -> Result<u64, GenError> {
            let mut rows = 0u64;
            let mut builder = EventBatchBuilder::with_capacity(BATCH_ROWS);
            let mut batches = Vec::new();
            let mut pending = 0usize;
            let flush = |batches: &mut Vec<_>, pending: &mut usize| -> Result<(), GenError> {
                if *pending > 0 {
                    write_batches(lake, batches, "gen", IdRun::Skip)?;
                    progress(*pending as u64);
                }
                batches.clear();
                *pending = 0;
                Ok(())
            };
            while !stop.load(Ordering::Relaxed) {
                let day = next_day.fetch_add(1, Ordering::Relaxed);
                if day >= self.days() {
                    break;
                }
                let mut result = Ok(());
                let day_rows = self.rows_on_day(day) as usize;
                let file_rows = day_rows.div_ceil(day_rows.div_ceil(FILE_ROWS).max(1));
                self.for_each_event_in_storage_order(day, |e| {
                    builder.push(e);
                    if builder.len() == BATCH_ROWS || pending + builder.len() == file_rows {
                        pending += builder.len();
                        batches.push(builder.finish());
                        if pending >= file_rows && result.is_ok() {
                            result = flush(&mut batches, &mut pending);
                        }
                    }
                });
                if !builder.is_empty() {
                    pending += builder.len();
                    batches.push(builder.finish());
                }
                rows += self.rows_on_day(day);
                if let Err(e) = result.and_then(|()| flush(&mut batches, &mut pending)) {
                    stop.store(true, Ordering::Relaxed);
                    return Err(e);
                }
            }
            Ok(rows)
        };
        let results: Vec<Result<u64, GenError>> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS).map(|_| s.spawn(worker)).collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or(Err(GenError::WorkerPanicked)))
                .collect()
        });
        let mut total = 0;
        for r in results {
            total += r?;
        }
        self.manifest().write(lake.root())?;
        Ok(total)
    }
}

/// Owning iterator over a data set's events, day by day.
#[derive(Debug)]
pub struct EventIter {
    generator: Generator,
    next_day: u32,
    buffer: std::vec::IntoIter<Event>,
}

impl EventIter {
    /// The manifest of the data set being iterated (see [`Generator::manifest`]: it has what
    /// generation did once the last day has been drawn).
    pub fn manifest(&self) -> &Manifest {
        self.generator.manifest()
    }
}

impl Iterator for EventIter {
    type Item = Event;

    fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(e) = self.buffer.next() {
                return Some(e);
            }
            if self.next_day >= self.generator.days() {
                return None;
            }
            self.buffer = self.generator.day_events(self.next_day).into_iter();
            self.next_day += 1;
        }
    }
}

/// Every event of the data set `cfg` describes, in time order day by day (for streaming NDJSON
/// to a server with [`to_json`]).
pub fn events(cfg: &GenConfig) -> Result<EventIter, GenError> {
    Ok(EventIter {
        generator: Generator::new(cfg)?,
        next_day: 0,
        buffer: Vec::new().into_iter(),
    })
}

/// Generates the data set `cfg` describes straight into the lake as Parquet (Arrow batches, no
/// JSON), writes `manifest.json` into the lake root and returns the manifest. See
/// [`Generator::write_to_lake`] for locking and progress.
pub fn generate_to_lake(
    lake: &Lake,
    cfg: &GenConfig,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Manifest, GenError> {
    let generator = Generator::new(cfg)?;
    generator.write_to_lake(lake, progress)?;
    Ok(generator.manifest().clone())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use modelshare_event::{Context, Task};
    use std::collections::{BTreeMap, HashSet};

    #[test]
    fn the_manifest_counts_the_requests_moved_away_from_the_release() {
        let g = Generator::new(&GenConfig {
            seed: 9,
            start: NaiveDate::from_ymd_opt(2026, 10, 5).unwrap(),
            days: 21,
            apps: 150,
            events: 60_000,
        })
        .unwrap();
        let planned = g.manifest().release().unwrap().context.clone().unwrap();
        assert_eq!(planned.wins, ["short", "medium"]);
        assert_eq!(planned.loses, ["long", "very_long"]);
        assert_eq!(planned.moved_away, None);

        // The ids of the events that carry a moved request's first row.
        let mut moved_ids = HashSet::new();
        for day in (0..g.days()).rev() {
            let drawn = emit::day_rows(&g.world, day);
            let mut m = emit::Materializer::new(&g.world, day).unwrap();
            for &i in &drawn.moved_from_release {
                moved_ids.insert(m.event(&drawn.rows[i as usize]).event_id.clone());
            }
        }
        let events: Vec<Event> = g.events().collect();
        let release = g.manifest().release().unwrap();
        let win: Task = release.winning_task.parse().unwrap();
        let mut counted: BTreeMap<String, u64> =
            planned.loses.iter().map(|c| (c.clone(), 0)).collect();
        for e in events.iter().filter(|e| moved_ids.contains(&e.event_id)) {
            let context = Context::of(u64::from(e.input_tokens)).to_string();
            assert_eq!(e.task, win);
            assert!(e.ts.0 >= release.ts_us);
            assert_ne!(e.model.as_str(), release.slug);
            assert_ne!(e.model_requested, release.slug);
            *counted.get_mut(&context).unwrap() += 1;
        }
        assert!(counted.values().sum::<u64>() > 0, "nothing moved");
        assert_eq!(counted.values().sum::<u64>(), moved_ids.len() as u64);
        // What drawing the events recorded (days in time order, against reverse order above)
        // is what the events show.
        let generated = release.context.as_ref().unwrap();
        assert_eq!(generated.moved_away.as_ref(), Some(&counted));
        // Every long prompt of the winning task after the release went elsewhere.
        assert!(!events.iter().any(|e| {
            e.task == win
                && e.ts.0 >= release.ts_us
                && Context::of(u64::from(e.input_tokens)) >= Context::Long
                && e.model.as_str() == release.slug
        }));
        // The planned mixes are in the manifest, for every task.
        let mixes = &g.manifest().context.as_ref().unwrap().mixes;
        assert_eq!(mixes.len(), Task::ALL.len());
        assert!(mixes["programming"]["long"] + mixes["programming"]["very_long"] >= 0.08);
    }
}
