//! Share shifts: which models gained or lost token share in a task between a period and the one
//! before, and whether the movement is broad across apps rather than one app's noise.
//!
//! The share moved is token-weighted (the model's tokens / the task's tokens). Whether it is a
//! real movement is tested on apps, the independent units: among apps active in the task in both
//! periods, each app whose own share of the model went up is a "+", down a "−", unchanged
//! (including never used) is left out. Under no movement "+" and "−" are equally likely; the sign
//! test statistic is z = (|n₊ − n₋| − 1) / √(n₊ + n₋) (normal approximation with continuity
//! correction), with a two-sided p-value. A token-weighted test would let one large app decide
//! (token volume is heavy-tailed across apps); the sign test asks whether apps *broadly* moved.
//!
//! Because one request tests every model of every task, significance is decided on
//! Benjamini–Hochberg q-values (false discovery rate 5 %) over all the tests in the answer, and
//! a movement is reported only when the token share moved in the same direction as the apps.
//!
//! Each movement carries the catalog price changes of its model that took effect from 48 hours
//! before the period's start to its end.

use crate::AnalyticsConfig;
use crate::panel::Panel;
use crate::stats::{benjamini_hochberg, two_sided_p};
use chrono::{Days, NaiveDate};
use modelshare_catalog::{Catalog, PriceChange};
use modelshare_event::Task;
use modelshare_query::publishable;
use std::collections::{BTreeMap, BTreeSet, HashMap};

/// False discovery rate at which a movement is reported.
pub const FDR: f64 = 0.05;

/// One significant movement.
#[derive(Debug, Clone, PartialEq)]
pub struct Movement {
    pub model: String,
    pub share: f64,
    pub previous_share: f64,
    pub change: f64,
    pub z: f64,
    pub p_value: f64,
    pub q_value: f64,
    /// Distinct apps of the model's publishable cells in the period and the one before.
    pub apps: u64,
    pub previous_apps: u64,
    /// Apps active in both periods whose own share of the model rose / fell.
    pub apps_up: u64,
    pub apps_down: u64,
    pub price_changes: Vec<PriceChange>,
}

/// Gainers and losers of one task.
#[derive(Debug, Clone, PartialEq)]
pub struct TaskShifts {
    pub task: Task,
    /// Largest gain first.
    pub gainers: Vec<Movement>,
    /// Largest loss first.
    pub losers: Vec<Movement>,
    /// Models tested in this task.
    pub tested: u64,
}

/// Per task and model, per slot (0 = previous, 1 = current): per app tokens on the model, and
/// per app tokens in the task.
struct Tallies {
    /// (task, model) → slot → app → tokens.
    model: BTreeMap<(Task, u32), [HashMap<u32, u64>; 2]>,
    /// task → slot → app → tokens.
    task: BTreeMap<Task, [HashMap<u32, u64>; 2]>,
}

fn tallies(panel: &Panel) -> Tallies {
    let mut t = Tallies {
        model: BTreeMap::new(),
        task: BTreeMap::new(),
    };
    for unit in &panel.units {
        for slot in 0..2 {
            let Some(Some(week)) = unit.weeks.get(slot) else {
                continue;
            };
            *t.task.entry(unit.task).or_default()[slot]
                .entry(unit.app)
                .or_default() += week.tokens;
            for u in &week.uses {
                *t.model.entry((unit.task, u.model)).or_default()[slot]
                    .entry(unit.app)
                    .or_default() += u.tokens;
            }
        }
    }
    t
}

/// Apps (active in the task in both slots) whose own share of the model rose, and fell.
fn signs(slots: &[HashMap<u32, u64>; 2], task: &[HashMap<u32, u64>; 2]) -> (u64, u64) {
    let (mut up, mut down) = (0, 0);
    for (app, &x0) in &task[0] {
        let Some(&x1) = task[1].get(app) else {
            continue;
        };
        let y0 = slots[0].get(app).copied().unwrap_or(0);
        let y1 = slots[1].get(app).copied().unwrap_or(0);
        // y1/x1 vs y0/x0 without division.
        match (u128::from(y1) * u128::from(x0)).cmp(&(u128::from(y0) * u128::from(x1))) {
            std::cmp::Ordering::Greater => up += 1,
            std::cmp::Ordering::Less => down += 1,
            std::cmp::Ordering::Equal => {}
        }
    }
    (up, down)
}

/// The sign test's z (continuity-corrected, signed like `up − down`).
fn sign_z(up: u64, down: u64) -> f64 {
    let n = (up + down) as f64;
    if n == 0.0 {
        return 0.0;
    }
    let d = up as f64 - down as f64;
    d.signum() * (d.abs() - 1.0).max(0.0) / n.sqrt()
}

/// Published token figures of the two periods (slot 0 = the previous period, 1 = the period),
/// each computed from publishable base cells only (`QueryEngine::published`).
#[derive(Debug, Clone, Default)]
pub struct Published {
    /// (task, model slug) → per slot (tokens, distinct apps).
    pub models: BTreeMap<(Task, String), [(u64, u64); 2]>,
    /// task → per slot (tokens, distinct apps).
    pub tasks: BTreeMap<Task, [(u64, u64); 2]>,
}

/// Shifts between slot 0 (the previous period) and slot 1 (the period) of a two-slot panel.
/// `start` and `end` bound the period, for the price-change annotation.
///
/// Shares, their denominators and app counts are the published figures of `published`, so they
/// follow the publication rule like every leaderboard figure; the panel only decides the sign
/// test (which apps moved). A model is tested only when it has published figures in the task
/// and the task has them in both periods.
pub fn shifts(
    panel: &Panel,
    published: &Published,
    start: NaiveDate,
    end: NaiveDate,
    catalog: &Catalog,
    config: AnalyticsConfig,
) -> Vec<TaskShifts> {
    let t = tallies(panel);
    struct Test {
        task: Task,
        model: u32,
        share: f64,
        previous: f64,
        z: f64,
        p: f64,
        apps: [u64; 2],
        up: u64,
        down: u64,
    }
    let mut tests = Vec::new();
    for (&(task, model), slots) in &t.model {
        let Some(task_slots) = t.task.get(&task) else {
            continue;
        };
        let zero = [(0, 0); 2];
        let figures = published
            .models
            .get(&(task, panel.models[model as usize].clone()))
            .unwrap_or(&zero);
        let task_figures = published.tasks.get(&task).unwrap_or(&zero);
        let public = figures.iter().any(|&(_, apps)| apps > 0)
            && task_figures
                .iter()
                .all(|&(_, apps)| publishable(apps, config.min_apps));
        if !public {
            continue;
        }
        let share = |s: usize| {
            let (x, y) = (task_figures[s].0, figures[s].0);
            if x == 0 { 0.0 } else { y as f64 / x as f64 }
        };
        let (r0, r1) = (share(0), share(1));
        let apps = [figures[0].1, figures[1].1];
        let (up, down) = signs(slots, task_slots);
        if up + down == 0 {
            continue;
        }
        let z = sign_z(up, down);
        tests.push(Test {
            task,
            model,
            share: r1,
            previous: r0,
            z,
            p: two_sided_p(z),
            apps,
            up,
            down,
        });
    }
    let q = benjamini_hochberg(&tests.iter().map(|t| t.p).collect::<Vec<_>>());

    let window_start = start - Days::new(2);
    let changes_of = |slug: &str| -> Vec<PriceChange> {
        catalog
            .price_changes()
            .iter()
            .filter(|c| c.slug == slug && c.date >= window_start && c.date < end)
            .cloned()
            .collect()
    };
    let mut by_task: BTreeMap<Task, TaskShifts> = BTreeMap::new();
    let tasks: BTreeSet<Task> = tests.iter().map(|t| t.task).collect();
    for task in tasks {
        by_task.insert(
            task,
            TaskShifts {
                task,
                gainers: Vec::new(),
                losers: Vec::new(),
                tested: 0,
            },
        );
    }
    for (test, q) in tests.iter().zip(q) {
        let Some(entry) = by_task.get_mut(&test.task) else {
            continue;
        };
        entry.tested += 1;
        let change = test.share - test.previous;
        if q >= FDR || change * test.z <= 0.0 {
            continue;
        }
        let model = panel.models[test.model as usize].clone();
        let movement = Movement {
            price_changes: changes_of(&model),
            model,
            share: test.share,
            previous_share: test.previous,
            change: test.share - test.previous,
            z: test.z,
            p_value: test.p,
            q_value: q,
            apps: test.apps[1],
            previous_apps: test.apps[0],
            apps_up: test.up,
            apps_down: test.down,
        };
        if movement.change > 0.0 {
            entry.gainers.push(movement);
        } else {
            entry.losers.push(movement);
        }
    }
    let mut out: Vec<TaskShifts> = by_task.into_values().collect();
    for t in &mut out {
        t.gainers
            .sort_by(|a, b| b.change.total_cmp(&a.change).then(a.model.cmp(&b.model)));
        t.losers
            .sort_by(|a, b| a.change.total_cmp(&b.change).then(a.model.cmp(&b.model)));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{PanelBuilder, Weeks};

    #[test]
    fn sign_test_by_hand() {
        let task = [
            HashMap::from([(0, 100), (1, 100), (2, 100), (3, 100)]),
            HashMap::from([(0, 200), (1, 100), (2, 100), (4, 100)]),
        ];
        // App 0: 10/100 → 30/200 up; app 1: 50 → 20 down; app 2: 0 → 0 left out; app 3 and 4
        // are active in one period only.
        let model = [
            HashMap::from([(0, 10), (1, 50), (3, 100)]),
            HashMap::from([(0, 30), (1, 20), (4, 100)]),
        ];
        assert_eq!(signs(&model, &task), (1, 1));
        assert_eq!(sign_z(1, 1), 0.0);
        // 30 up, 0 down: (30 − 1) / √30.
        assert!((sign_z(30, 0) - 29.0 / 30f64.sqrt()).abs() < 1e-12);
        assert!((sign_z(0, 30) + 29.0 / 30f64.sqrt()).abs() < 1e-12);
    }

    /// The panel's own figures as the published ones (every cell publishable).
    fn everything_published(p: &Panel) -> Published {
        type Slots = [(u64, BTreeSet<u32>); 2];
        let mut models: BTreeMap<(Task, String), Slots> = BTreeMap::new();
        let mut tasks: BTreeMap<Task, Slots> = BTreeMap::new();
        for unit in &p.units {
            for (slot, week) in unit.weeks.iter().enumerate() {
                for u in week.iter().flat_map(|w| &w.uses) {
                    let key = (unit.task, p.models[u.model as usize].clone());
                    for e in [
                        &mut models.entry(key).or_default()[slot],
                        &mut tasks.entry(unit.task).or_default()[slot],
                    ] {
                        e.0 += u.tokens;
                        e.1.insert(unit.app);
                    }
                }
            }
        }
        let flat = |[a, b]: Slots| [(a.0, a.1.len() as u64), (b.0, b.1.len() as u64)];
        Published {
            models: models.into_iter().map(|(k, v)| (k, flat(v))).collect(),
            tasks: tasks.into_iter().map(|(k, v)| (k, flat(v))).collect(),
        }
    }

    #[test]
    fn a_broad_move_is_significant_and_noise_is_not() {
        let monday: NaiveDate = "2026-11-09".parse().unwrap_or_default();
        let mut b = PanelBuilder::new(Weeks {
            first: monday - Days::new(7),
            count: 2,
        });
        let t = Task::Programming;
        // 40 apps: all on m/A the week before; in the week, 30 of them moved wholly to m/B.
        // m/C keeps a steady 10 % everywhere (no movement).
        for i in 0..40 {
            let app = format!("app{i}");
            b.add(&app, t, 0, "m/A", 9, 900 + i, 0);
            b.add(&app, t, 0, "m/C", 1, 100, 0);
            let now = if i < 30 { "m/B" } else { "m/A" };
            b.add(&app, t, 1, now, 9, 900 + i, 0);
            b.add(&app, t, 1, "m/C", 1, 100, 0);
        }
        let p = b.finish();
        let s = shifts(
            &p,
            &everything_published(&p),
            monday,
            monday + Days::new(7),
            Catalog::embedded(),
            AnalyticsConfig { min_apps: 5 },
        );
        assert_eq!(s.len(), 1);
        let g: Vec<&str> = s[0].gainers.iter().map(|m| m.model.as_str()).collect();
        let l: Vec<&str> = s[0].losers.iter().map(|m| m.model.as_str()).collect();
        assert_eq!((g, l), (vec!["m/B"], vec!["m/A"]));
        assert_eq!(
            s[0].tested, 2,
            "m/C did not move in any app: nothing to test"
        );
        assert_eq!(s[0].gainers[0].previous_share, 0.0);
        assert_eq!(
            (s[0].gainers[0].apps, s[0].gainers[0].previous_apps),
            (30, 0)
        );
        assert_eq!(
            (s[0].gainers[0].apps_up, s[0].gainers[0].apps_down),
            (30, 0)
        );
        assert_eq!((s[0].losers[0].apps_up, s[0].losers[0].apps_down), (0, 30));
    }
}
