//! Switching flows: units (app×task) whose primary model changed from A to B between two
//! consecutive weeks in which they were active. Published per the publication rule of
//! `modelshare_query::privacy`, with flow cells of (task, week, from, to).
//!
//! A flow carries counts (switches, apps), no token volume: the switching units' tokens would
//! include their requests in groups the usage figures withhold, and the task's published total
//! minus them could show such a group.

use crate::AnalyticsConfig;
use crate::panel::Panel;
use modelshare_event::Task;
use modelshare_query::publishable;
use std::collections::{BTreeMap, BTreeSet};

/// One published flow A → B.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flow {
    pub from: String,
    pub to: String,
    /// Switches (a unit switching twice counts twice).
    pub switches: u64,
    /// Distinct apps behind the switches.
    pub apps: u64,
}

/// All flows of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switches {
    /// Flows made of publishable cells, most switches first.
    pub flows: Vec<Flow>,
    /// Consecutive active week pairs in publishable transition cells (the denominator of a
    /// switching rate).
    pub transitions: u64,
    /// Switches of the published flows.
    pub switches: u64,
}

#[derive(Default)]
struct Acc {
    switches: u64,
    apps: BTreeSet<u32>,
}

/// The flows of the panel's window; with `model`, only flows into or out of it.
///
/// The same rule as every other public figure, with the analysis' own cells: a *flow cell* is
/// (task, week of the switch, from, to) and a *transition cell* (task, week); a cell counts only
/// when at least `min_apps` distinct apps are in it ([`publishable`]). A flow is the sum of its
/// publishable cells, so flows of all tasks are sums of the flows of each task and a longer
/// window adds whole weeks: no difference between two answers isolates fewer than `min_apps`
/// apps. Nothing is folded into an `other` flow: every publishable cell belongs to a listed flow.
pub fn switches(panel: &Panel, model: Option<u32>, config: AnalyticsConfig) -> Switches {
    let mut flow_cells: BTreeMap<(Task, usize, u32, u32), Acc> = BTreeMap::new();
    let mut transition_cells: BTreeMap<(Task, usize), Acc> = BTreeMap::new();
    for unit in &panel.units {
        for (w, pair) in unit.weeks.windows(2).enumerate() {
            let (Some(before), Some(after)) = (&pair[0], &pair[1]) else {
                continue;
            };
            let week = w + 1;
            let t = transition_cells.entry((unit.task, week)).or_default();
            t.switches += 1;
            t.apps.insert(unit.app);
            if before.primary == after.primary {
                continue;
            }
            if model.is_some_and(|m| m != before.primary && m != after.primary) {
                continue;
            }
            let acc = flow_cells
                .entry((unit.task, week, before.primary, after.primary))
                .or_default();
            acc.switches += 1;
            acc.apps.insert(unit.app);
        }
    }
    let public = |acc: &Acc| publishable(acc.apps.len() as u64, config.min_apps);
    let transitions = transition_cells
        .values()
        .filter(|a| public(a))
        .map(|a| a.switches)
        .sum();
    let mut flows: BTreeMap<(u32, u32), Acc> = BTreeMap::new();
    for ((_, _, from, to), cell) in flow_cells {
        if public(&cell) {
            let acc = flows.entry((from, to)).or_default();
            acc.switches += cell.switches;
            acc.apps.extend(cell.apps);
        }
    }
    let mut published: Vec<Flow> = flows
        .into_iter()
        .map(|((from, to), acc)| Flow {
            from: panel.models[from as usize].clone(),
            to: panel.models[to as usize].clone(),
            switches: acc.switches,
            apps: acc.apps.len() as u64,
        })
        .collect();
    published.sort_by(|a, b| {
        b.switches
            .cmp(&a.switches)
            .then(b.apps.cmp(&a.apps))
            .then(a.from.cmp(&b.from))
            .then(a.to.cmp(&b.to))
    });
    let switches = published.iter().map(|f| f.switches).sum();
    Switches {
        flows: published,
        transitions,
        switches,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{PanelBuilder, Weeks};

    #[test]
    fn flows_by_hand() {
        let weeks = Weeks::ending("2026-11-23".parse().unwrap_or_default(), 3);
        let mut b = PanelBuilder::new(weeks);
        // a1: A → B in week 1 (carries 300 tokens that week), stays.
        b.add("a1", Task::Programming, 0, "m/A", 1, 100, 0);
        b.add("a1", Task::Programming, 1, "m/B", 1, 300, 0);
        b.add("a1", Task::Programming, 2, "m/B", 1, 300, 0);
        // a2: A → B in week 2 (B 80 of 100 tokens).
        b.add("a2", Task::Programming, 0, "m/A", 1, 50, 0);
        b.add("a2", Task::Programming, 1, "m/A", 1, 50, 0);
        b.add("a2", Task::Programming, 2, "m/B", 1, 80, 0);
        b.add("a2", Task::Programming, 2, "m/A", 1, 20, 0);
        // a3: B → C in week 1, inactive in week 2.
        b.add("a3", Task::Programming, 0, "m/B", 1, 10, 0);
        b.add("a3", Task::Programming, 1, "m/C", 1, 10, 0);
        let p = b.finish();
        // Each flow cell (task, week, from, to) has one app: none reaches 2. The transition
        // cells have 3 apps (week 1: a1, a2, a3) and 2 apps (week 2: a1, a2).
        let s = switches(&p, None, AnalyticsConfig { min_apps: 2 });
        assert_eq!(s.transitions, 5);
        assert_eq!(s.switches, 0);
        assert_eq!(s.flows, vec![]);
        let all = switches(&p, None, AnalyticsConfig { min_apps: 1 });
        assert_eq!(all.switches, 3);
        assert_eq!(
            all.flows[0],
            Flow {
                from: "m/A".into(),
                to: "m/B".into(),
                switches: 2,
                apps: 2,
            }
        );
        assert_eq!(all.flows.len(), 2);

        let c = p.model_index("m/C");
        let only_c = switches(&p, c, AnalyticsConfig { min_apps: 1 });
        assert_eq!(only_c.flows.len(), 1);
        assert_eq!(
            (only_c.flows[0].from.as_str(), only_c.flows[0].to.as_str()),
            ("m/B", "m/C")
        );
    }

    /// A flow is the sum of its publishable (task, week) cells: the week where two apps switched
    /// A → B is published, the week where one app did is not, in a window holding both.
    #[test]
    fn a_flow_sums_its_publishable_weeks() {
        let weeks = Weeks::ending("2026-11-23".parse().unwrap_or_default(), 3);
        let mut b = PanelBuilder::new(weeks);
        for (app, tokens) in [("a1", 300), ("a2", 200)] {
            b.add(app, Task::Programming, 0, "m/A", 1, 100, 0);
            b.add(app, Task::Programming, 1, "m/B", 1, tokens, 0);
        }
        b.add("a3", Task::Programming, 0, "m/A", 1, 100, 0);
        b.add("a3", Task::Programming, 1, "m/A", 1, 100, 0);
        b.add("a3", Task::Programming, 2, "m/B", 1, 70, 0);
        // The same switch in another task is another cell.
        b.add("a4", Task::Legal, 0, "m/A", 1, 100, 0);
        b.add("a4", Task::Legal, 1, "m/B", 1, 900, 0);
        let p = b.finish();
        let s = switches(&p, None, AnalyticsConfig { min_apps: 2 });
        assert_eq!(
            s.flows,
            vec![Flow {
                from: "m/A".into(),
                to: "m/B".into(),
                switches: 2,
                apps: 2,
            }]
        );
        assert_eq!(s.switches, 2);
        // Transition cells: programming week 1 (a1, a2, a3) = 3; week 2 has a3 only; legal
        // week 1 has a4 only.
        assert_eq!(s.transitions, 3);
    }
}
