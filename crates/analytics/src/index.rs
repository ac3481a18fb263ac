//! The preference index: a Bradley–Terry rating per model, fitted to pairwise outcomes that apps
//! revealed by what they did, with bootstrap intervals over apps.
//!
//! Outcomes, per unit (app×task), over consecutive active weeks of the window:
//! - *switch*: the primary moved A → B: B beats A;
//! - *trial kept*: in week w the unit's primary was A, another model B carried at least
//!   [`TRIAL_MIN_SHARE`] of its tokens, A was still primary in the unit's next active week, and
//!   B never became its primary later in the window: A beats B.
//!
//! A unit contributes each ordered (winner, loser) pair at most once, so a model kept as a
//! secondary for months is one outcome, not one per week.
//!
//! The fit maximises the Bradley–Terry likelihood by Newton's method with one virtual win and
//! one virtual loss against a reference of strength 1 per model, which keeps
//! ratings finite for models that never lost or never won. Ratings are on the Elo scale:
//! `1000 + 400 · log10(strength)`, so 1000 is "no evidence either way" and a 400-point gap means
//! 10:1 odds. Intervals are the 2.5 % and 97.5 % percentiles of ratings refitted on apps drawn
//! with replacement (a cluster bootstrap: an app's outcomes stay together), from a seed fixed by
//! the request, so the same data gives the same interval.
//!
//! Only publishable outcomes enter the fit and every count: both models of an outcome must have
//! outcomes from at least `min_apps` apps in its task (see [`publishable_outcomes`]).

use crate::AnalyticsConfig;
use crate::panel::Panel;
use crate::stats::{SplitMix, quantile};
use modelshare_event::Task;
use modelshare_query::publishable;
use std::collections::{BTreeMap, BTreeSet};

/// Smallest share of a unit's weekly tokens that counts as having really tried a model.
pub const TRIAL_MIN_SHARE: f64 = 0.05;

/// Settings of one index request.
#[derive(Debug, Clone, Copy)]
pub struct IndexConfig {
    pub analytics: AnalyticsConfig,
    /// Models with fewer outcomes are listed as unranked.
    pub min_observations: u64,
    /// Bootstrap resamples for the intervals.
    pub resamples: u32,
    pub seed: u64,
}

/// The bootstrap seed of an index over `task` (`None`: all tasks) and `weeks`: every place that
/// shows the index (API, website) derives it here, so they show the same intervals.
pub fn seed_for(task: Option<modelshare_event::Task>, weeks: &crate::Weeks) -> u64 {
    crate::stats::seed_of(&format!(
        "{}/{}/{}",
        task.map_or("all", |t| t.as_str()),
        weeks.first,
        weeks.count
    ))
}

/// How many outcomes of each kind the window produced.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OutcomeCounts {
    pub switches: u64,
    pub trials_kept: u64,
}

/// One ranked model.
#[derive(Debug, Clone, PartialEq)]
pub struct Rating {
    pub rank: u32,
    pub model: String,
    pub rating: f64,
    pub lower: f64,
    pub upper: f64,
    /// Outcomes the model took part in, won, and the distinct apps behind them.
    pub observations: u64,
    pub wins: u64,
    pub apps: u64,
}

/// A model seen in outcomes of enough apps to be named, but with too few outcomes to rank.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unranked {
    pub model: String,
    pub observations: u64,
    pub apps: u64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct PreferenceIndex {
    pub ranked: Vec<Rating>,
    pub unranked: Vec<Unranked>,
    /// Models whose outcomes were all left out as unpublishable: counted, never named.
    pub hidden_models: u64,
    pub outcomes: OutcomeCounts,
    /// Apps that contributed at least one outcome.
    pub apps: u64,
}

/// One outcome of one unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outcome {
    app: u32,
    task: Task,
    winner: u32,
    loser: u32,
    switch: bool,
}

/// Every unit's deduplicated outcomes.
fn outcomes_of(panel: &Panel) -> Vec<Outcome> {
    let mut out = Vec::new();
    for unit in &panel.units {
        let mut seen: BTreeSet<(u32, u32)> = BTreeSet::new();
        let mut push = |winner: u32, loser: u32, switch: bool| {
            if seen.insert((winner, loser)) {
                out.push(Outcome {
                    app: unit.app,
                    task: unit.task,
                    winner,
                    loser,
                    switch,
                });
            }
        };
        let active: Vec<(usize, &crate::panel::UnitWeek)> = unit
            .weeks
            .iter()
            .enumerate()
            .filter_map(|(i, w)| w.as_ref().map(|w| (i, w)))
            .collect();
        for (k, &(i, now)) in active.iter().enumerate() {
            let Some(&(j, next)) = active.get(k + 1) else {
                continue;
            };
            if now.primary != next.primary {
                if j == i + 1 {
                    push(next.primary, now.primary, true);
                }
                continue;
            }
            // A trial is judged kept only if the tried model never becomes primary later in the
            // window: a trial that spans a week boundary and then wins is a switch, not a loss.
            for u in &now.uses {
                let tried = u.model != now.primary
                    && u.tokens > 0
                    && u.tokens as f64 >= TRIAL_MIN_SHARE * now.tokens as f64;
                let wins_later = active[k + 1..].iter().any(|(_, w)| w.primary == u.model);
                if tried && !wins_later {
                    push(now.primary, u.model, false);
                }
            }
        }
    }
    out
}

/// The outcomes the index may use, per the publication rule of `modelshare_query::privacy`
/// with the index's own cells: (task, model). An outcome is kept when both its models have
/// outcomes from at least `min_apps` distinct apps in its task among the kept outcomes (dropping
/// one can push another model under the threshold, hence the loop). Decided per task, so the
/// index over all tasks is fitted on exactly the union of the per-task sets.
fn publishable_outcomes(mut outcomes: Vec<Outcome>, min_apps: u64) -> Vec<Outcome> {
    loop {
        let mut apps: BTreeMap<(Task, u32), BTreeSet<u32>> = BTreeMap::new();
        for o in &outcomes {
            for m in [o.winner, o.loser] {
                apps.entry((o.task, m)).or_default().insert(o.app);
            }
        }
        let public = |task: Task, m: u32| {
            apps.get(&(task, m))
                .is_some_and(|a| publishable(a.len() as u64, min_apps))
        };
        let before = outcomes.len();
        outcomes.retain(|o| public(o.task, o.winner) && public(o.task, o.loser));
        if outcomes.len() == before {
            return outcomes;
        }
    }
}

/// Per app: its (winner, loser) outcomes; and how many there are of each kind.
fn by_app(outcomes: &[Outcome]) -> (Vec<Vec<(u32, u32)>>, OutcomeCounts) {
    let mut by_app: BTreeMap<u32, Vec<(u32, u32)>> = BTreeMap::new();
    let mut counts = OutcomeCounts::default();
    for o in outcomes {
        by_app.entry(o.app).or_default().push((o.winner, o.loser));
        if o.switch {
            counts.switches += 1;
        } else {
            counts.trials_kept += 1;
        }
    }
    (by_app.into_values().collect(), counts)
}

/// Virtual games each model plays against the reference of strength 1 (half won, half lost).
const PRIOR_GAMES: f64 = 2.0;

/// Wins matrix `w[i * m + j]` = times i beat j.
fn wins_matrix(
    m: usize,
    apps: impl Iterator<Item = usize>,
    outcomes: &[Vec<(u32, u32)>],
) -> Vec<f64> {
    let mut w = vec![0.0; m * m];
    for a in apps {
        for &(win, lose) in &outcomes[a] {
            w[win as usize * m + lose as usize] += 1.0;
        }
    }
    w
}

/// Bradley–Terry log-strengths θ maximising the likelihood plus [`PRIOR_GAMES`] virtual games
/// per model against a reference with θ = 0 (half won, half lost). The penalised log-likelihood
/// is strictly concave, so Newton's method converges in a handful of steps; each step solves the
/// m × m system by Cholesky. `start` warms the iteration (bootstrap refits start from the fit).
fn fit(m: usize, w: &[f64], start: Option<&[f64]>, tolerance: f64) -> Vec<f64> {
    let mut pairs: Vec<(usize, usize, f64)> = Vec::new();
    let mut wins = vec![PRIOR_GAMES / 2.0; m];
    for i in 0..m {
        for j in 0..m {
            wins[i] += w[i * m + j];
            if i < j {
                let games = w[i * m + j] + w[j * m + i];
                if games > 0.0 {
                    pairs.push((i, j, games));
                }
            }
        }
    }
    let sigmoid = |x: f64| 1.0 / (1.0 + (-x).exp());
    let mut theta: Vec<f64> = start.map_or_else(|| vec![0.0; m], <[f64]>::to_vec);
    let mut grad = vec![0.0; m];
    // Negative Hessian, row-major.
    let mut h = vec![0.0; m * m];
    for _ in 0..100 {
        for i in 0..m {
            let s = sigmoid(theta[i]);
            grad[i] = wins[i] - PRIOR_GAMES * s;
            h.iter_mut().skip(i * m).take(m).for_each(|x| *x = 0.0);
            h[i * m + i] = PRIOR_GAMES * s * (1.0 - s);
        }
        for &(i, j, games) in &pairs {
            let p = sigmoid(theta[i] - theta[j]);
            grad[i] -= games * p;
            grad[j] -= games * (1.0 - p);
            let v = games * p * (1.0 - p);
            h[i * m + i] += v;
            h[j * m + j] += v;
            h[i * m + j] -= v;
            h[j * m + i] -= v;
        }
        let Some(mut step) = cholesky_solve(&mut h, &grad, m) else {
            break;
        };
        // Damp very long steps from a cold start; the objective is concave, so this only slows.
        let longest = step.iter().fold(0.0f64, |a, x| a.max(x.abs()));
        if longest > 2.0 {
            step.iter_mut().for_each(|x| *x *= 2.0 / longest);
        }
        for (t, d) in theta.iter_mut().zip(&step) {
            *t += d;
        }
        if longest < tolerance {
            break;
        }
    }
    theta
}

/// Solves `a x = b` for symmetric positive definite `a` (overwritten by its Cholesky factor).
fn cholesky_solve(a: &mut [f64], b: &[f64], m: usize) -> Option<Vec<f64>> {
    for j in 0..m {
        let mut d = a[j * m + j];
        for k in 0..j {
            d -= a[j * m + k] * a[j * m + k];
        }
        if d <= 0.0 || !d.is_finite() {
            return None;
        }
        let d = d.sqrt();
        a[j * m + j] = d;
        for i in j + 1..m {
            let mut v = a[i * m + j];
            for k in 0..j {
                v -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = v / d;
        }
    }
    let mut y = vec![0.0; m];
    for i in 0..m {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * m + k] * y[k];
        }
        y[i] = v / a[i * m + i];
    }
    let mut x = vec![0.0; m];
    for i in (0..m).rev() {
        let mut v = y[i];
        for k in i + 1..m {
            v -= a[k * m + i] * x[k];
        }
        x[i] = v / a[i * m + i];
    }
    Some(x)
}

fn elo(log_strength: f64) -> f64 {
    1000.0 + 400.0 * log_strength / std::f64::consts::LN_10
}

/// Fits the index on the panel's window.
pub fn preference_index(panel: &Panel, config: IndexConfig) -> PreferenceIndex {
    let m = panel.models.len();
    let all = outcomes_of(panel);
    let mut seen_in = vec![false; m];
    for o in &all {
        seen_in[o.winner as usize] = true;
        seen_in[o.loser as usize] = true;
    }
    let (outcomes, counts) = by_app(&publishable_outcomes(all, config.analytics.min_apps));
    let n_apps = outcomes.len();

    let mut observations = vec![0u64; m];
    let mut wins = vec![0u64; m];
    let mut apps_of: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); m];
    for (a, list) in outcomes.iter().enumerate() {
        for &(win, lose) in list {
            wins[win as usize] += 1;
            for x in [win, lose] {
                observations[x as usize] += 1;
                apps_of[x as usize].insert(a);
            }
        }
    }

    let point = fit(m, &wins_matrix(m, 0..n_apps, &outcomes), None, 1e-10);
    let mut draws: Vec<Vec<f64>> = vec![Vec::with_capacity(config.resamples as usize); m];
    if n_apps > 0 {
        let mut rng = SplitMix::new(config.seed);
        for _ in 0..config.resamples {
            let sample: Vec<usize> = (0..n_apps).map(|_| rng.below(n_apps)).collect();
            let w = wins_matrix(m, sample.into_iter(), &outcomes);
            let refit = fit(m, &w, Some(&point), 1e-8);
            for (i, r) in refit.into_iter().enumerate() {
                draws[i].push(elo(r));
            }
        }
    }

    let mut ranked = Vec::new();
    let mut unranked = Vec::new();
    let mut hidden = 0u64;
    for i in 0..m {
        let apps = apps_of[i].len() as u64;
        if observations[i] == 0 {
            // Outcomes it had were all left out as unpublishable.
            if seen_in[i] {
                hidden += 1;
            }
            continue;
        }
        if observations[i] < config.min_observations {
            unranked.push(Unranked {
                model: panel.models[i].clone(),
                observations: observations[i],
                apps,
            });
            continue;
        }
        let mut d = std::mem::take(&mut draws[i]);
        d.sort_by(f64::total_cmp);
        let rating = elo(point[i]);
        ranked.push(Rating {
            rank: 0,
            model: panel.models[i].clone(),
            rating,
            lower: quantile(&d, 0.025).unwrap_or(rating),
            upper: quantile(&d, 0.975).unwrap_or(rating),
            observations: observations[i],
            wins: wins[i],
            apps,
        });
    }
    ranked.sort_by(|a, b| b.rating.total_cmp(&a.rating).then(a.model.cmp(&b.model)));
    for (i, r) in ranked.iter_mut().enumerate() {
        r.rank = i as u32 + 1;
    }
    unranked.sort_by(|a, b| {
        b.observations
            .cmp(&a.observations)
            .then(a.model.cmp(&b.model))
    });
    PreferenceIndex {
        ranked,
        unranked,
        hidden_models: hidden,
        outcomes: counts,
        apps: n_apps as u64,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::panel::{PanelBuilder, Weeks};

    #[test]
    fn two_models_fit_matches_the_closed_form() {
        // A beat B 3 times, B beat A once. With one virtual win and loss each against a
        // reference of strength 1, the optimum satisfies the MM fixed-point equations (Hunter 2004); check them directly.
        let w = vec![0.0, 3.0, 1.0, 0.0];
        let r = fit(2, &w, None, 1e-12);
        let (pa, pb) = (r[0].exp(), r[1].exp());
        let lhs_a = 4.0 / (4.0 / (pa + pb) + 2.0 / (pa + 1.0));
        let lhs_b = 2.0 / (4.0 / (pa + pb) + 2.0 / (pb + 1.0));
        assert!((lhs_a - pa).abs() < 1e-9 && (lhs_b - pb).abs() < 1e-9);
        assert!(pa > 1.0 && pb < 1.0);
        // Symmetric data gives equal ratings of exactly 1000.
        let even = fit(2, &[0.0, 2.0, 2.0, 0.0], None, 1e-12);
        assert!((elo(even[0]) - 1000.0).abs() < 1e-6 && (elo(even[1]) - 1000.0).abs() < 1e-6);
    }

    /// Five apps, two switches A → B, one trial of C kept on A, one trial below the threshold.
    #[test]
    fn outcomes_by_hand() {
        let weeks = Weeks::ending("2026-11-23".parse().unwrap_or_default(), 3);
        let mut b = PanelBuilder::new(weeks);
        let t = Task::Programming;
        for app in ["s1", "s2"] {
            b.add(app, t, 0, "m/A", 1, 100, 0);
            b.add(app, t, 1, "m/B", 1, 100, 0);
            b.add(app, t, 2, "m/B", 1, 100, 0);
        }
        // k1 tries C with 30 % in week 0 and keeps A.
        b.add("k1", t, 0, "m/A", 1, 70, 0);
        b.add("k1", t, 0, "m/C", 1, 30, 0);
        b.add("k1", t, 1, "m/A", 1, 100, 0);
        // n1 touches C with 4 %: not a trial.
        b.add("n1", t, 0, "m/A", 1, 96, 0);
        b.add("n1", t, 0, "m/C", 1, 4, 0);
        b.add("n1", t, 1, "m/A", 1, 100, 0);
        // q1 stays on A all along.
        for w in 0..3 {
            b.add("q1", t, w, "m/A", 1, 100, 0);
        }
        let p = b.finish();
        let (outcomes, counts) = by_app(&outcomes_of(&p));
        assert_eq!(
            counts,
            OutcomeCounts {
                switches: 2,
                trials_kept: 1
            }
        );
        let (a, bm, c) = (
            p.model_index("m/A").unwrap_or(9),
            p.model_index("m/B").unwrap_or(9),
            p.model_index("m/C").unwrap_or(9),
        );
        let mut all: Vec<(u32, u32)> = outcomes.concat();
        all.sort();
        let mut want = vec![(bm, a), (bm, a), (a, c)];
        want.sort();
        assert_eq!(all, want);

        let idx = preference_index(
            &p,
            IndexConfig {
                analytics: AnalyticsConfig { min_apps: 1 },
                min_observations: 2,
                resamples: 50,
                seed: 1,
            },
        );
        assert_eq!(idx.apps, 3);
        let names: Vec<&str> = idx.ranked.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(names, ["m/B", "m/A"]);
        assert_eq!(
            (
                idx.ranked[1].observations,
                idx.ranked[1].wins,
                idx.ranked[1].apps
            ),
            (3, 1, 3)
        );
        assert_eq!(
            idx.unranked,
            vec![Unranked {
                model: "m/C".into(),
                observations: 1,
                apps: 1
            }]
        );
        for r in &idx.ranked {
            assert!(r.lower <= r.rating && r.rating <= r.upper, "{r:?}");
        }
        // The same seed gives the same intervals.
        let again = preference_index(
            &p,
            IndexConfig {
                analytics: AnalyticsConfig { min_apps: 1 },
                min_observations: 2,
                resamples: 50,
                seed: 1,
            },
        );
        assert_eq!(idx, again);
    }

    /// Apps behave as Bradley–Terry says with planted strengths: each week an app may trial a
    /// random other model and switch to it with probability p_B / (p_A + p_B). The index must
    /// recover the planted order, and the best model's interval must clear the worst's.
    #[test]
    fn planted_strengths_are_recovered() {
        let log_strength: [f64; 4] = [1.2, 0.6, 0.0, -0.6];
        let names = ["m/best", "m/good", "m/fair", "m/poor"];
        let weeks = Weeks::ending("2026-11-23".parse().unwrap_or_default(), 8);
        let mut b = PanelBuilder::new(weeks);
        let mut rng = SplitMix::new(2026);
        let uniform = |rng: &mut SplitMix| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        for app in 0..600 {
            let app = format!("app{app}");
            let mut primary = rng.below(4);
            for w in 0..8 {
                if uniform(&mut rng) < 0.5 {
                    let other = (primary + 1 + rng.below(3)) % 4;
                    b.add(&app, Task::Programming, w, names[primary], 8, 800, 0);
                    b.add(&app, Task::Programming, w, names[other], 2, 200, 0);
                    let (pa, pb) = (log_strength[primary].exp(), log_strength[other].exp());
                    if uniform(&mut rng) < pb / (pa + pb) {
                        primary = other;
                    }
                } else {
                    b.add(&app, Task::Programming, w, names[primary], 10, 1000, 0);
                }
            }
        }
        let idx = preference_index(
            &b.finish(),
            IndexConfig {
                analytics: AnalyticsConfig { min_apps: 5 },
                min_observations: 20,
                resamples: 100,
                seed: 9,
            },
        );
        let order: Vec<&str> = idx.ranked.iter().map(|r| r.model.as_str()).collect();
        assert_eq!(order, names);
        assert!(idx.ranked[0].lower > idx.ranked[3].upper, "{idx:?}");
        // Planted gap best − poor is 1.8 in log-strength, 313 Elo points; the prior shrinks it.
        let gap = idx.ranked[0].rating - idx.ranked[3].rating;
        assert!((200.0..=330.0).contains(&gap), "gap {gap}");
    }
}
