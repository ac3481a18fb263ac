//! The panel every analysis reads: for each app×task (a *unit*) and each week of a window, the
//! models it used (requests, tokens, spend of successful requests) and its *primary* model.
//!
//! Closed weeks are read from the app-week rollup; weeks the rollup does not cover are aggregated
//! in the same query from `cell_apps` (the app-day cube, or raw events for days it does not
//! answer for; see `modelshare_query::engine`). App ids stay inside this crate as dense numbers; nothing
//! here is ever published per app.

use crate::AnalyticsError;
use crate::rollup::Rollups;
use chrono::{Days, NaiveDate};
use modelshare_event::{Context, Task};
use modelshare_query::QueryEngine;
use modelshare_query::period::week_start;
use modelshare_query::values::{micro_usd_at, str_at, u64_at};
use std::collections::HashMap;

/// A window of consecutive ISO weeks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weeks {
    /// Monday of the first week.
    pub first: NaiveDate,
    pub count: u32,
}

impl Weeks {
    /// `count` weeks ending with the week that contains `date`.
    pub fn ending(date: NaiveDate, count: u32) -> Weeks {
        let last = week_start(date);
        let first = last - Days::new(7 * u64::from(count.saturating_sub(1)));
        Weeks { first, count }
    }

    /// Monday of week `i` of the window.
    pub fn start(&self, i: usize) -> NaiveDate {
        self.first + Days::new(7 * i as u64)
    }

    /// The Monday after the window (exclusive end).
    pub fn end(&self) -> NaiveDate {
        self.start(self.count as usize)
    }

    pub fn iter(&self) -> impl Iterator<Item = NaiveDate> + '_ {
        (0..self.count as usize).map(|i| self.start(i))
    }

    /// The position of the week starting on `monday`, if it is in the window.
    pub fn index_of(&self, monday: NaiveDate) -> Option<usize> {
        let days = (monday - self.first).num_days();
        (days >= 0 && days % 7 == 0 && days / 7 < i64::from(self.count))
            .then_some((days / 7) as usize)
    }
}

/// One model's traffic from one unit in one week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Use {
    pub model: u32,
    pub requests: u64,
    pub tokens: u64,
    /// Micro-USD.
    pub cost: i64,
}

/// A unit's week: what it used, and its primary model.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnitWeek {
    /// Sorted by model index.
    pub uses: Vec<Use>,
    /// The model with the most tokens (ties: most requests, then the smaller slug).
    pub primary: u32,
    pub tokens: u64,
}

impl UnitWeek {
    pub fn tokens_of(&self, model: u32) -> u64 {
        self.uses
            .iter()
            .find(|u| u.model == model)
            .map_or(0, |u| u.tokens)
    }
}

/// One app×task over the window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unit {
    /// Dense app number (index into nothing public).
    pub app: u32,
    pub task: Task,
    /// One entry per week of the window; `None` when the unit had no successful request.
    pub weeks: Vec<Option<UnitWeek>>,
}

/// Units × weeks for a task (or all tasks) and a window.
#[derive(Debug, Clone)]
pub struct Panel {
    pub weeks: Weeks,
    /// Model slugs; `Use::model` and `UnitWeek::primary` index into this.
    pub models: Vec<String>,
    pub units: Vec<Unit>,
    /// Distinct apps in the panel.
    pub apps: usize,
}

impl Panel {
    pub fn model_index(&self, slug: &str) -> Option<u32> {
        self.models.iter().position(|m| m == slug).map(|i| i as u32)
    }

    /// Loads the panel: rollup files for the weeks they cover, raw events for the others. With
    /// a `context` segment, a unit's weeks hold only its requests of that segment.
    pub async fn load(
        engine: &QueryEngine,
        rollups: &Rollups,
        task: Option<Task>,
        context: Option<Context>,
        weeks: Weeks,
    ) -> Result<Panel, AnalyticsError> {
        let manifests = rollups.manifests()?;
        let covered: Vec<NaiveDate> = weeks
            .iter()
            .filter(|w| manifests.get(w).is_some_and(|m| m.is_current_version()))
            .collect();
        let raw = uncovered_ranges(&weeks, &covered);
        let rollup = (!covered.is_empty())
            .then(|| rollups.table("rollup", &manifests, covered.iter().copied()));
        let batches = engine.app_weeks(task, context, rollup, &raw).await?;

        let mut builder = PanelBuilder::new(weeks);
        builder.add_batches(&batches, "week", |week| weeks.index_of(week))?;
        Ok(builder.finish())
    }
}

impl Panel {
    /// A panel whose slots are `days` consecutive days from `first` (for day-level shifts, which
    /// the weekly rollup cannot answer): `weeks.first` is then the first day and slot i is day i.
    pub async fn load_days(
        engine: &QueryEngine,
        task: Option<Task>,
        context: Option<Context>,
        first: NaiveDate,
        days: u32,
    ) -> Result<Panel, AnalyticsError> {
        let end = first + Days::new(u64::from(days));
        let slots = Weeks { first, count: days };
        let mut builder = PanelBuilder::new(slots);
        builder.add_batches(
            &engine.app_days(task, context, first, end).await?,
            "date",
            |date| {
                let slot = (date - first).num_days();
                (0..i64::from(days))
                    .contains(&slot)
                    .then_some(slot as usize)
            },
        )?;
        Ok(builder.finish())
    }
}

/// Date ranges `[start, end)` of the weeks of `weeks` not in `covered`, merged when adjacent.
fn uncovered_ranges(weeks: &Weeks, covered: &[NaiveDate]) -> Vec<(NaiveDate, NaiveDate)> {
    let mut ranges: Vec<(NaiveDate, NaiveDate)> = Vec::new();
    for w in weeks.iter().filter(|w| !covered.contains(w)) {
        let end = w + Days::new(7);
        match ranges.last_mut() {
            Some(last) if last.1 == w => last.1 = end,
            _ => ranges.push((w, end)),
        }
    }
    ranges
}

/// Builds a [`Panel`] row by row (also used by tests with hand-made rows).
#[derive(Debug)]
pub struct PanelBuilder {
    weeks: Weeks,
    models: Vec<String>,
    model_ids: HashMap<String, u32>,
    app_ids: HashMap<String, u32>,
    units: HashMap<(u32, Task), Vec<Vec<Use>>>,
}

impl PanelBuilder {
    pub fn new(weeks: Weeks) -> Self {
        PanelBuilder {
            weeks,
            models: Vec::new(),
            model_ids: HashMap::new(),
            app_ids: HashMap::new(),
            units: HashMap::new(),
        }
    }

    /// Adds one (app, task, week index, model) figure; repeated keys add up.
    #[allow(clippy::too_many_arguments)]
    pub fn add(
        &mut self,
        app: &str,
        task: Task,
        week: usize,
        model: &str,
        requests: u64,
        tokens: u64,
        cost: i64,
    ) {
        let next_app = self.app_ids.len() as u32;
        let app = *self.app_ids.entry(app.to_owned()).or_insert(next_app);
        let model = match self.model_ids.get(model) {
            Some(&m) => m,
            None => {
                let m = self.models.len() as u32;
                self.models.push(model.to_owned());
                self.model_ids.insert(model.to_owned(), m);
                m
            }
        };
        let weeks = self.weeks.count as usize;
        let unit = self
            .units
            .entry((app, task))
            .or_insert_with(|| vec![Vec::new(); weeks]);
        let uses = &mut unit[week];
        match uses.iter_mut().find(|u| u.model == model) {
            Some(u) => {
                u.requests += requests;
                u.tokens += tokens;
                u.cost += cost;
            }
            None => uses.push(Use {
                model,
                requests,
                tokens,
                cost,
            }),
        }
    }

    /// Adds query rows (columns `slot_column` as a date string, app_id, task, model, requests,
    /// tokens, cost_usd); `slot_of` places a date in the panel, rows outside it are skipped.
    fn add_batches(
        &mut self,
        batches: &[arrow::array::RecordBatch],
        slot_column: &str,
        slot_of: impl Fn(NaiveDate) -> Option<usize>,
    ) -> Result<(), AnalyticsError> {
        for batch in batches {
            for row in 0..batch.num_rows() {
                let date: NaiveDate = str_at(batch, slot_column, row)?.parse().map_err(|_| {
                    modelshare_query::QueryError::Shape(format!("{slot_column} is not a date"))
                })?;
                let Some(slot) = slot_of(date) else {
                    continue;
                };
                let Ok(task) = str_at(batch, "task", row)?.parse::<Task>() else {
                    continue;
                };
                self.add(
                    str_at(batch, "app_id", row)?,
                    task,
                    slot,
                    str_at(batch, "model", row)?,
                    u64_at(batch, "requests", row)?,
                    u64_at(batch, "tokens", row)?,
                    micro_usd_at(batch, "cost_usd", row)?.0,
                );
            }
        }
        Ok(())
    }

    /// The panel, numbered independently of the order rows arrived in (apps and models in
    /// sorted order), so bootstrap draws are the same whether rows came from the rollup or from
    /// raw events.
    pub fn finish(self) -> Panel {
        let mut model_order: Vec<u32> = (0..self.models.len() as u32).collect();
        model_order.sort_by(|&a, &b| self.models[a as usize].cmp(&self.models[b as usize]));
        let mut model_rank = vec![0u32; self.models.len()];
        for (rank, &m) in model_order.iter().enumerate() {
            model_rank[m as usize] = rank as u32;
        }
        let models: Vec<String> = model_order
            .iter()
            .map(|&m| self.models[m as usize].clone())
            .collect();
        let mut app_names: Vec<(&String, u32)> =
            self.app_ids.iter().map(|(k, &v)| (k, v)).collect();
        app_names.sort();
        let mut app_rank = vec![0u32; app_names.len()];
        for (rank, (_, id)) in app_names.iter().enumerate() {
            app_rank[*id as usize] = rank as u32;
        }
        let apps = app_names.len();
        let mut units: Vec<Unit> = self
            .units
            .into_iter()
            .map(|((app, task), weeks)| Unit {
                app: app_rank[app as usize],
                task,
                weeks: weeks
                    .into_iter()
                    .map(|mut uses| {
                        uses.retain(|u| u.requests > 0);
                        if uses.is_empty() {
                            return None;
                        }
                        for u in &mut uses {
                            u.model = model_rank[u.model as usize];
                        }
                        uses.sort_by_key(|u| u.model);
                        // Models are numbered in slug order, so the smaller index is the smaller
                        // slug.
                        let primary = uses
                            .iter()
                            .max_by(|a, b| {
                                a.tokens
                                    .cmp(&b.tokens)
                                    .then(a.requests.cmp(&b.requests))
                                    .then(b.model.cmp(&a.model))
                            })
                            .map_or(0, |u| u.model);
                        let tokens = uses.iter().map(|u| u.tokens).sum();
                        Some(UnitWeek {
                            uses,
                            primary,
                            tokens,
                        })
                    })
                    .collect(),
            })
            .collect();
        // A fixed order, so bootstrap draws and ties do not depend on hash order.
        units.sort_by_key(|u| (u.app, u.task));
        Panel {
            weeks: self.weeks,
            models,
            units,
            apps,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        s.parse().unwrap_or_default()
    }

    #[test]
    fn weeks_window_and_ranges() {
        let w = Weeks::ending(d("2026-11-25"), 3);
        assert_eq!(w.first, d("2026-11-09"));
        assert_eq!(w.end(), d("2026-11-30"));
        assert_eq!(w.index_of(d("2026-11-16")), Some(1));
        assert_eq!(w.index_of(d("2026-11-17")), None);
        assert_eq!(w.index_of(d("2026-11-30")), None);
        let r = uncovered_ranges(&w, &[d("2026-11-16")]);
        assert_eq!(
            r,
            vec![
                (d("2026-11-09"), d("2026-11-16")),
                (d("2026-11-23"), d("2026-11-30"))
            ]
        );
        assert_eq!(
            uncovered_ranges(&w, &[]),
            vec![(d("2026-11-09"), d("2026-11-30"))]
        );
    }

    #[test]
    fn primary_is_most_tokens_then_requests_then_slug() {
        let mut b = PanelBuilder::new(Weeks::ending(d("2026-11-16"), 1));
        b.add("a", Task::Programming, 0, "x/b", 1, 100, 0);
        b.add("a", Task::Programming, 0, "x/a", 1, 100, 0);
        b.add("c", Task::Programming, 0, "x/b", 2, 100, 0);
        b.add("c", Task::Programming, 0, "x/a", 1, 100, 0);
        let p = b.finish();
        let primary =
            |u: &Unit| p.models[u.weeks[0].as_ref().map_or(0, |w| w.primary) as usize].clone();
        assert_eq!(primary(&p.units[0]), "x/a");
        assert_eq!(primary(&p.units[1]), "x/b");
        assert_eq!(p.apps, 2);
    }
}
