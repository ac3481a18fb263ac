//! Switching flows: units (app×task) whose primary model changed from A to B between two
//! consecutive weeks in which they were active, with the tokens they carried in the week after
//! the switch (the volume that moved to B).

use crate::AnalyticsConfig;
use crate::panel::Panel;
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
    /// Tokens of the switching units in the week after each switch.
    pub tokens: u64,
}

/// All flows of a window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Switches {
    /// Flows with at least `min_apps` distinct apps, most switches first.
    pub flows: Vec<Flow>,
    /// Everything else, summed (`from`/`to` = "other"); `None` when nothing was folded or the
    /// folded flows have fewer than `min_apps` apps between them.
    pub other: Option<Flow>,
    /// Consecutive active week pairs observed (the denominator of a switching rate).
    pub transitions: u64,
    pub switches: u64,
}

#[derive(Default)]
struct Acc {
    switches: u64,
    tokens: u64,
    apps: BTreeSet<u32>,
}

/// The flows of the panel's window; with `model`, only flows into or out of it.
pub fn switches(panel: &Panel, model: Option<u32>, config: AnalyticsConfig) -> Switches {
    let mut flows: BTreeMap<(u32, u32), Acc> = BTreeMap::new();
    let mut transitions = 0u64;
    for unit in &panel.units {
        for pair in unit.weeks.windows(2) {
            let (Some(before), Some(after)) = (&pair[0], &pair[1]) else {
                continue;
            };
            transitions += 1;
            if before.primary == after.primary {
                continue;
            }
            if model.is_some_and(|m| m != before.primary && m != after.primary) {
                continue;
            }
            let acc = flows.entry((before.primary, after.primary)).or_default();
            acc.switches += 1;
            acc.tokens += after.tokens;
            acc.apps.insert(unit.app);
        }
    }
    let total: u64 = flows.values().map(|a| a.switches).sum();
    let mut published = Vec::new();
    let mut rest = Acc::default();
    for ((from, to), acc) in flows {
        if acc.apps.len() as u64 >= config.min_apps {
            published.push(Flow {
                from: panel.models[from as usize].clone(),
                to: panel.models[to as usize].clone(),
                switches: acc.switches,
                apps: acc.apps.len() as u64,
                tokens: acc.tokens,
            });
        } else {
            rest.switches += acc.switches;
            rest.tokens += acc.tokens;
            rest.apps.extend(acc.apps);
        }
    }
    published.sort_by(|a, b| {
        b.switches
            .cmp(&a.switches)
            .then(b.tokens.cmp(&a.tokens))
            .then(a.from.cmp(&b.from))
            .then(a.to.cmp(&b.to))
    });
    // The folded rest is published only as a total, and only when it is itself large enough;
    // otherwise a flow of one app would show through it.
    let other = (rest.apps.len() as u64 >= config.min_apps).then(|| Flow {
        from: "other".to_owned(),
        to: "other".to_owned(),
        switches: rest.switches,
        apps: rest.apps.len() as u64,
        tokens: rest.tokens,
    });
    Switches {
        flows: published,
        other,
        transitions,
        switches: total,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{PanelBuilder, Weeks};
    use modelshare_event::Task;

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
        let s = switches(&p, None, AnalyticsConfig { min_apps: 2 });
        assert_eq!(s.transitions, 5);
        assert_eq!(s.switches, 3);
        assert_eq!(
            s.flows,
            vec![Flow {
                from: "m/A".into(),
                to: "m/B".into(),
                switches: 2,
                apps: 2,
                tokens: 400
            }]
        );
        // B → C (one app) is folded, and the fold itself has too few apps to publish.
        assert_eq!(s.other, None);
        let all = switches(&p, None, AnalyticsConfig { min_apps: 1 });
        assert_eq!(all.flows.len(), 2);
        assert_eq!(all.other, None);

        let c = p.model_index("m/C");
        let only_c = switches(&p, c, AnalyticsConfig { min_apps: 1 });
        assert_eq!(only_c.flows.len(), 1);
        assert_eq!(
            (only_c.flows[0].from.as_str(), only_c.flows[0].to.as_str()),
            ("m/B", "m/C")
        );
    }
}
