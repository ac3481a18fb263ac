//! The generated data carries the effects its manifest lists, computed straight from the events
//! (no query engine): the release moves share the right way in both tasks, price cuts pull
//! traffic within 48 h and are billed at the real new price, the outage fails over, and a seed
//! fixes the data.
#![allow(clippy::unwrap_used)]

use chrono::NaiveDate;
use modelshare_catalog::Catalog;
use modelshare_event::{Event, Status, Task, Timestamp, Validator};
use modelshare_gen::{GenConfig, Generator, to_json};
use std::collections::{HashMap, HashSet};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::LazyLock;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

fn config(seed: u64) -> GenConfig {
    GenConfig {
        seed,
        start: NaiveDate::from_ymd_opt(2026, 10, 5).unwrap(),
        days: 28,
        apps: 400,
        events: 250_000,
    }
}

/// One data set shared by the tests of this binary.
static DATA: LazyLock<(Generator, Vec<Event>)> = LazyLock::new(|| {
    let g = Generator::new(&config(7)).unwrap();
    let events: Vec<Event> = g.events().collect();
    (g, events)
});

/// Token share of `model` among successful requests matching `task` in `[from, to)`.
fn share(events: &[Event], model: &str, task: Option<Task>, from: i64, to: i64) -> f64 {
    let (mut mine, mut all) = (0u64, 0u64);
    for e in events {
        if e.status != Status::Ok || !(from..to).contains(&e.ts.0) {
            continue;
        }
        if task.is_some_and(|t| t != e.task) {
            continue;
        }
        all += e.tokens();
        if e.model.as_str() == model {
            mine += e.tokens();
        }
    }
    mine as f64 / all.max(1) as f64
}

#[test]
fn every_row_is_valid_and_round_trips_through_the_wire_format() {
    let (g, events) = &*DATA;
    assert_eq!(events.len() as u64, g.config().events);
    let validator = Validator::at(Timestamp(i64::MAX / 2));
    let mut ids = HashSet::new();
    for e in events {
        assert!(
            ids.insert(e.event_id.as_str()),
            "duplicate id {}",
            e.event_id
        );
        assert!(e.ttft_ms < e.latency_ms, "{e:?}");
        assert!(e.cost.0 >= 0);
        assert!(e.reasoning_tokens <= e.output_tokens);
        assert!(e.cached_tokens <= e.input_tokens);
        assert!(e.event_id.starts_with("gen-") && e.app_id.starts_with("app-"));
    }
    for e in events.iter().step_by(97) {
        assert_eq!(&validator.parse(to_json(e).as_bytes()).unwrap(), e);
    }
    // Timestamps stay inside the period.
    let start = g
        .date(0)
        .and_hms_opt(0, 0, 0)
        .unwrap()
        .and_utc()
        .timestamp_micros();
    assert!(
        events
            .iter()
            .all(|e| (start..start + 28 * DAY).contains(&e.ts.0))
    );
}

#[test]
fn traffic_has_realistic_structure() {
    let (_, events) = &*DATA;
    let ok: Vec<&Event> = events.iter().filter(|e| e.status == Status::Ok).collect();
    let ok_share = ok.len() as f64 / events.len() as f64;
    assert!((0.95..0.995).contains(&ok_share), "{ok_share}");
    let mut by_task: HashMap<Task, u64> = HashMap::new();
    let mut by_model: HashMap<&str, u64> = HashMap::new();
    let mut by_author: HashMap<&str, u64> = HashMap::new();
    let mut by_app: HashMap<&str, u64> = HashMap::new();
    let mut apps_week: HashMap<(Task, i64), HashSet<&str>> = HashMap::new();
    let t0 = events[0].ts.0;
    for e in &ok {
        *by_task.entry(e.task).or_default() += e.tokens();
        *by_model.entry(e.model.as_str()).or_default() += e.tokens();
        *by_author.entry(e.model.author()).or_default() += e.tokens();
        *by_app.entry(&e.app_id).or_default() += e.tokens();
        apps_week
            .entry((e.task, (e.ts.0 - t0) / (7 * DAY)))
            .or_default()
            .insert(&e.app_id);
    }
    let total: u64 = by_task.values().sum();
    let frac = |x: u64| x as f64 / total as f64;
    // Programming carries the most tokens, roleplay the second most.
    let mut tasks: Vec<_> = by_task.iter().collect();
    tasks.sort_by(|a, b| b.1.cmp(a.1));
    assert_eq!(*tasks[0].0, Task::Programming);
    assert_eq!(*tasks[1].0, Task::Roleplay);
    assert!(frac(*tasks[0].1) > 0.4);
    // Many models have real traffic; a handful of authors dominate.
    let models = by_model.values().filter(|&&x| frac(x) > 0.0005).count();
    assert!((30..=80).contains(&models), "{models}");
    let mut authors: Vec<u64> = by_author.values().copied().collect();
    authors.sort_unstable_by(|a, b| b.cmp(a));
    assert!(frac(authors.iter().take(5).sum()) > 0.5);
    // Heavy-tailed apps: the top 5 % carry a large share.
    let mut apps: Vec<u64> = by_app.values().copied().collect();
    apps.sort_unstable_by(|a, b| b.cmp(a));
    assert!(frac(apps.iter().take(apps.len() / 20).sum()) > 0.3);
    // Big tasks have plenty of distinct apps every week (400 apps in this small set).
    for week in 0..4 {
        for task in [Task::Programming, Task::Technology] {
            let n = apps_week.get(&(task, week)).map_or(0, HashSet::len);
            assert!(n >= 100, "{task} week {week}: {n} apps");
        }
        assert!(
            apps_week
                .get(&(Task::Roleplay, week))
                .map_or(0, HashSet::len)
                >= 30
        );
    }
    // Some apps route through openrouter/auto; reasoning and cache tokens appear.
    assert!(
        events
            .iter()
            .any(|e| e.model_requested == "openrouter/auto")
    );
    assert!(ok.iter().any(|e| e.reasoning_tokens > 0));
    assert!(ok.iter().any(|e| e.cached_tokens > 0));
}

#[test]
fn release_wins_share_in_one_task_and_loses_it_in_another() {
    let (g, events) = &*DATA;
    let r = g
        .manifest()
        .release()
        .expect("a 4-week period has a release");
    let win: Task = r.winning_task.parse().unwrap();
    let lose: Task = r.losing_task.parse().unwrap();
    let week = 7 * DAY;
    let before_win = share(events, &r.slug, Some(win), r.ts_us - week, r.ts_us);
    let after_win = share(events, &r.slug, Some(win), r.ts_us, r.ts_us + week);
    let before_lose = share(events, &r.slug, Some(lose), r.ts_us - week, r.ts_us);
    let after_lose = share(events, &r.slug, Some(lose), r.ts_us, r.ts_us + week);
    eprintln!(
        "{}: {win} {before_win:.4} → {after_win:.4}; {lose} {before_lose:.4} → {after_lose:.4}",
        r.slug
    );
    assert!(after_win > before_win * 1.5, "{before_win} → {after_win}");
    assert!(before_lose > 0.0);
    assert!(
        after_lose < before_lose * 0.6,
        "{before_lose} → {after_lose}"
    );
    assert!(r.adopting_app_tasks > 0 && r.abandoning_app_tasks > 0);
}

#[test]
fn price_cuts_pull_traffic_within_48_hours_at_the_real_new_price() {
    let (g, events) = &*DATA;
    let catalog = Catalog::embedded();
    let cuts: Vec<_> = g.manifest().price_cuts().collect();
    assert!(!cuts.is_empty());
    for c in cuts {
        // The cut is real: the catalog has this change on the real date.
        let real = NaiveDate::parse_from_str(&c.real_date, "%Y-%m-%d").unwrap();
        let change = catalog
            .price_changes()
            .iter()
            .find(|ch| ch.slug == c.slug && ch.date == real)
            .unwrap();
        assert!(change.is_cut());
        assert_eq!(c.new.input_usd_per_mtok, change.new.input_usd_per_mtok);
        let before = share(events, &c.slug, None, c.ts_us - 48 * HOUR, c.ts_us);
        let after = share(events, &c.slug, None, c.ts_us, c.ts_us + 48 * HOUR);
        eprintln!(
            "{} cut {}% on {}: {before:.4} → {after:.4}",
            c.slug, c.blended_change_percent, c.date
        );
        assert!(after > before, "{}: {before} → {after}", c.slug);
        // Requests are billed at the old price before the cut and the new one after it (a
        // shifted cut switches on its shifted date; a real one follows the catalog's dates).
        let cut_day = NaiveDate::parse_from_str(&c.date, "%Y-%m-%d").unwrap();
        if !c.shifted {
            assert_eq!(catalog.price_at(&c.slug, cut_day), Some(change.new));
        }
        let mut checked = 0;
        for e in events
            .iter()
            .filter(|e| e.model.as_str() == c.slug && e.status == Status::Ok)
        {
            let p = match (c.shifted, e.ts.0 < c.ts_us) {
                (true, true) => change.old,
                (true, false) => change.new,
                (false, _) => catalog.price_at(&c.slug, e.ts.date()).unwrap(),
            };
            assert_eq!(
                e.cost.0,
                p.cost_micro_usd(e.input_tokens, e.output_tokens, e.cached_tokens),
                "{e:?}"
            );
            checked += 1;
        }
        assert!(checked > 100);
    }
}

#[test]
fn costs_use_the_catalog_price_of_the_day() {
    let (g, events) = &*DATA;
    let catalog = Catalog::embedded();
    let shifted: HashSet<&str> = g
        .manifest()
        .price_cuts()
        .filter(|c| c.shifted)
        .map(|c| c.slug.as_str())
        .collect();
    let mut checked = 0;
    for e in events.iter().step_by(13) {
        if e.status != Status::Ok || shifted.contains(e.model.as_str()) {
            continue;
        }
        let price = catalog.price_at(e.model.as_str(), e.ts.date()).unwrap();
        assert_eq!(
            e.cost.0,
            price.cost_micro_usd(e.input_tokens, e.output_tokens, e.cached_tokens)
        );
        checked += 1;
    }
    assert!(checked > 1000);
}

#[test]
fn the_outage_fails_over_to_other_providers() {
    let (g, events) = &*DATA;
    let o = g.manifest().outage().expect("an outage is planted");
    let window = o.start_us..o.end_us;
    let inside: Vec<&Event> = events.iter().filter(|e| window.contains(&e.ts.0)).collect();
    assert!(!inside.is_empty());
    // Nothing succeeds at the failed provider; its attempts are errors at attempt 0.
    assert!(
        inside
            .iter()
            .filter(|e| e.provider == o.provider)
            .all(|e| e.status == Status::Error && e.attempt == 0)
    );
    let failed = inside.iter().filter(|e| e.provider == o.provider).count();
    assert!(failed > 0, "no request hit {}", o.provider);
    // Each failed attempt is followed by the same request served elsewhere at attempt 1.
    let mut served = 0;
    for (i, e) in inside.iter().enumerate() {
        if e.provider != o.provider {
            continue;
        }
        let next = inside[i + 1..]
            .iter()
            .find(|n| n.app_id == e.app_id && n.task == e.task);
        if let Some(n) = next.filter(|n| n.attempt > 0) {
            assert_ne!(n.provider, o.provider);
            assert_eq!(n.model_requested, e.model_requested);
            served += 1;
        }
    }
    assert!(
        served * 10 >= failed * 9,
        "{served} of {failed} failed over"
    );
    // Fallbacks are far more common inside the window than outside.
    let rate = |v: &mut dyn Iterator<Item = &Event>| {
        let (mut n, mut a) = (0, 0);
        for e in v {
            n += 1;
            a += u32::from(e.attempt > 0);
        }
        f64::from(a) / f64::from(n.max(1))
    };
    let in_rate = rate(&mut inside.iter().copied());
    let out_rate = rate(&mut events.iter().filter(|e| !window.contains(&e.ts.0)));
    assert!(in_rate > 3.0 * out_rate, "{in_rate} vs {out_rate}");
}

fn digest(events: impl Iterator<Item = Event>) -> u64 {
    let mut h = DefaultHasher::new();
    for e in events {
        to_json(&e).hash(&mut h);
    }
    h.finish()
}

#[test]
fn a_seed_fixes_the_data() {
    let small = |seed| GenConfig {
        apps: 60,
        events: 20_000,
        days: 14,
        ..config(seed)
    };
    let a = digest(modelshare_gen::events(&small(11)).unwrap());
    let b = digest(modelshare_gen::events(&small(11)).unwrap());
    let c = digest(modelshare_gen::events(&small(12)).unwrap());
    assert_eq!(a, b);
    assert_ne!(a, c);
    // Days generated out of order (as threads do) are the same days.
    let g = Generator::new(&small(11)).unwrap();
    let mut days: Vec<Vec<Event>> = (0..14).rev().map(|d| g.day_events(d)).collect();
    days.reverse();
    assert_eq!(digest(days.into_iter().flatten()), a);
}
