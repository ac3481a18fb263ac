//! Cohort retention: of the units (app×task) whose primary model *became* M in week w, the
//! fraction whose primary is still M after 1, 2, … weeks.
//!
//! A unit's primary became M in week w (w ≥ 1 in the window; week 0 is the baseline) when M is
//! its primary in w and either its latest earlier active week in the window had another primary,
//! or it had no earlier active week in the window (it arrived). It is retained after k weeks when
//! M is its primary in week w + k; a unit with no successful request that week is not retained.

use crate::AnalyticsConfig;
use crate::panel::{Panel, Unit};
use chrono::NaiveDate;
use modelshare_event::Task;
use modelshare_query::publishable;
use std::collections::{BTreeMap, BTreeSet};

/// The units that entered one model's cohort in one week.
#[derive(Debug, Clone, PartialEq)]
pub struct Cohort {
    pub week: NaiveDate,
    /// Units in the cohort's publishable (task, week) cells; `None` when it has none.
    pub units: Option<u64>,
    /// Fraction retained after 1, 2, … weeks, as far as the window reaches.
    pub retained: Vec<Option<f64>>,
}

/// Retention pooled over the public cohorts that can be observed `after_weeks` later.
#[derive(Debug, Clone, PartialEq)]
pub struct Pooled {
    pub after_weeks: u32,
    pub units: u64,
    pub retained: u64,
    /// `retained / units`.
    pub rate: Option<f64>,
}

/// One model's retention.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRetention {
    pub model: String,
    pub cohorts: Vec<Cohort>,
    pub pooled: Vec<Pooled>,
}

/// Where each unit's primary became `model`, as week indices.
fn entries(unit: &Unit, model: u32) -> Vec<usize> {
    let mut out = Vec::new();
    let mut last_primary: Option<u32> = None;
    for (i, week) in unit.weeks.iter().enumerate() {
        let Some(week) = week else { continue };
        if i >= 1 && week.primary == model && last_primary != Some(model) {
            out.push(i);
        }
        last_primary = Some(week.primary);
    }
    out
}

fn primary_at(unit: &Unit, i: usize) -> Option<u32> {
    unit.weeks
        .get(i)
        .and_then(|w| w.as_ref())
        .map(|w| w.primary)
}

/// Retention of `model` over the panel's window.
///
/// A cohort is published per the publication rule of `modelshare_query::privacy`, with cohort
/// cells of (task, entry week): a cell counts only when its units belong to at least `min_apps`
/// distinct apps ([`publishable`]). The cohort of a week is the sum of its publishable cells, so
/// a cohort over all tasks is the sum of the per-task cohorts, and pooled figures sum published
/// cohorts only: no difference between two answers isolates a smaller group.
pub fn retention(panel: &Panel, model: u32, config: AnalyticsConfig) -> ModelRetention {
    let n = panel.weeks.count as usize;
    // Per cohort week and task: the units (by index) that entered it.
    let mut cells: Vec<BTreeMap<Task, Vec<usize>>> = vec![BTreeMap::new(); n];
    for (u, unit) in panel.units.iter().enumerate() {
        for w in entries(unit, model) {
            cells[w].entry(unit.task).or_default().push(u);
        }
    }
    let apps_of = |members: &[usize]| -> u64 {
        members
            .iter()
            .map(|&u| panel.units[u].app)
            .collect::<BTreeSet<_>>()
            .len() as u64
    };
    let retained_after = |members: &[usize], w: usize, k: usize| -> u64 {
        members
            .iter()
            .filter(|&&u| primary_at(&panel.units[u], w + k) == Some(model))
            .count() as u64
    };
    // Per week: the units of its publishable cells, and whether it had any entry at all.
    let cohorts: Vec<(Vec<usize>, bool)> = cells
        .iter()
        .map(|by_task| {
            let members = by_task
                .values()
                .filter(|m| publishable(apps_of(m), config.min_apps))
                .flatten()
                .copied()
                .collect();
            (members, !by_task.is_empty())
        })
        .collect();

    let mut out_cohorts = Vec::new();
    for (w, (members, entered)) in cohorts.iter().enumerate().skip(1) {
        if !entered {
            continue;
        }
        let public = !members.is_empty();
        let retained = (1..n - w)
            .map(|k| public.then(|| retained_after(members, w, k) as f64 / members.len() as f64))
            .collect();
        out_cohorts.push(Cohort {
            week: panel.weeks.start(w),
            units: public.then_some(members.len() as u64),
            retained,
        });
    }

    // Pooled figures sum only the published cohort cells: including a private one would let
    // anyone recover it by subtracting consecutive pooled figures.
    let mut pooled = Vec::new();
    for k in 1..n.saturating_sub(1) {
        let mut units = 0u64;
        let mut retained = 0u64;
        for (w, (members, _)) in cohorts.iter().enumerate().skip(1) {
            if w + k >= n {
                break;
            }
            units += members.len() as u64;
            retained += retained_after(members, w, k);
        }
        if units == 0 {
            continue;
        }
        pooled.push(Pooled {
            after_weeks: k as u32,
            units,
            retained,
            rate: Some(retained as f64 / units as f64),
        });
    }
    ModelRetention {
        model: panel.models[model as usize].clone(),
        cohorts: out_cohorts,
        pooled,
    }
}

/// Pooled retention of every model with a public cohort, best retention after one week first.
pub fn retention_all(panel: &Panel, config: AnalyticsConfig) -> Vec<ModelRetention> {
    let mut all: Vec<ModelRetention> = (0..panel.models.len() as u32)
        .map(|m| retention(panel, m, config))
        .filter(|r| r.pooled.first().is_some_and(|p| p.rate.is_some()))
        .collect();
    let first = |r: &ModelRetention| r.pooled.first().and_then(|p| p.rate).unwrap_or(0.0);
    all.sort_by(|a, b| first(b).total_cmp(&first(a)).then(a.model.cmp(&b.model)));
    all
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{PanelBuilder, Weeks};

    /// Primary per week for each app ('-' = inactive), each week one model with 100 tokens.
    fn panel(rows: &[(&str, &str)]) -> Panel {
        let weeks = Weeks::ending("2026-11-23".parse().unwrap_or_default(), 4);
        let mut b = PanelBuilder::new(weeks);
        for (app, seq) in rows {
            for (i, c) in seq.chars().enumerate() {
                if c != '-' {
                    b.add(app, Task::Programming, i, &format!("m/{c}"), 1, 100, 0);
                }
            }
        }
        b.finish()
    }

    #[test]
    fn cohorts_by_hand() {
        let p = panel(&[
            ("a1", "AABB"), // B cohort week 2, retained after 1
            ("a2", "ABBB"), // B cohort week 1, retained after 1 and 2
            ("a3", "ABAB"), // B cohort week 1 (lost after 1, back after 2), and week 3
            ("a4", "-B-A"), // arrives on B in week 1; inactive in week 2; A in week 3
            ("a5", "BBBB"), // B from the start: baseline, never a cohort entry
        ]);
        let b = p.model_index("m/B").unwrap_or(0);
        let r = retention(&p, b, AnalyticsConfig { min_apps: 1 });
        assert_eq!(r.cohorts.len(), 3);
        // Week 1: a2, a3, a4.
        assert_eq!(r.cohorts[0].units, Some(3));
        assert_eq!(
            r.cohorts[0].retained,
            vec![Some(1.0 / 3.0), Some(2.0 / 3.0)]
        );
        // Week 2: a1.
        assert_eq!(r.cohorts[1].units, Some(1));
        assert_eq!(r.cohorts[1].retained, vec![Some(1.0)]);
        // Week 3: a3, nothing observable after it.
        assert_eq!(r.cohorts[2].units, Some(1));
        assert!(r.cohorts[2].retained.is_empty());
        // Pooled after 1 week: weeks 1 and 2 cohorts, 4 units, 2 retained; after 2: 3 units, 2.
        assert_eq!(r.pooled.len(), 2);
        assert_eq!((r.pooled[0].units, r.pooled[0].retained), (4, 2));
        assert_eq!(r.pooled[0].rate, Some(0.5));
        assert_eq!((r.pooled[1].units, r.pooled[1].retained), (3, 2));
    }

    #[test]
    fn small_cohorts_are_not_published() {
        let p = panel(&[("a1", "AABB"), ("a2", "ABBB"), ("a3", "ABBB")]);
        let b = p.model_index("m/B").unwrap_or(0);
        let r = retention(&p, b, AnalyticsConfig { min_apps: 2 });
        assert_eq!(r.cohorts[0].units, Some(2));
        assert_eq!(r.cohorts[1].units, None);
        assert_eq!(r.cohorts[1].retained, vec![None]);
        // Pooled figures leave the private cohort out (else pooled − public would reveal it).
        assert_eq!((r.pooled[0].units, r.pooled[0].retained), (2, 2));
        assert_eq!(r.pooled[1].units, 2);
    }
}
