//! Prints a summary of a generated data set: token share by task, author and model, distinct
//! apps per task and week, status mix, and the planted effects seen in the data.
//!
//! `cargo run --release -p modelshare-gen --example gen_stats -- [events] [apps] [days] [seed]`

use modelshare_event::{Event, Status};
use modelshare_gen::{GenConfig, Generator};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::time::Instant;

fn arg(i: usize) -> Option<u64> {
    std::env::args().nth(i).and_then(|a| a.parse().ok())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut cfg = GenConfig::default();
    if let Some(n) = arg(1) {
        cfg.events = n;
    }
    if let Some(n) = arg(2) {
        cfg.apps = n as u32;
    }
    if let Some(n) = arg(3) {
        cfg.days = n as u32;
    }
    if let Some(n) = arg(4) {
        cfg.seed = n;
    }
    let t0 = Instant::now();
    let g = Generator::new(&cfg)?;
    let plan_s = t0.elapsed().as_secs_f64();
    let t1 = Instant::now();
    let mut tokens_task: BTreeMap<String, u64> = BTreeMap::new();
    let mut tokens_model_task: HashMap<(String, String), u64> = HashMap::new();
    let mut tokens_author: HashMap<String, u64> = HashMap::new();
    let mut tokens_model: HashMap<String, u64> = HashMap::new();
    let mut apps_task_week: BTreeMap<(String, u32), HashSet<String>> = BTreeMap::new();
    let mut status: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut app_tokens: HashMap<String, u64> = HashMap::new();
    let mut n = 0u64;
    let mut spend = 0i64;
    let mut attempts = 0u64;
    for day in 0..g.days() {
        g.for_each_event(day, |e: &Event| {
            n += 1;
            *status.entry(e.status.as_str()).or_default() += 1;
            attempts += u64::from(e.attempt > 0);
            spend += e.cost.0;
            if e.status != Status::Ok {
                return;
            }
            let t = e.tokens();
            *tokens_task.entry(e.task.to_string()).or_default() += t;
            *tokens_model_task
                .entry((e.task.to_string(), e.model.to_string()))
                .or_default() += t;
            *tokens_author
                .entry(e.model.author().to_owned())
                .or_default() += t;
            *tokens_model.entry(e.model.to_string()).or_default() += t;
            *app_tokens.entry(e.app_id.clone()).or_default() += t;
            apps_task_week
                .entry((e.task.to_string(), day / 7))
                .or_default()
                .insert(e.app_id.clone());
        });
    }
    let gen_s = t1.elapsed().as_secs_f64();
    println!(
        "{n} events, plan {plan_s:.2}s, generate {gen_s:.2}s ({:.0} ev/s single thread), spend ${:.0}, attempt>0 {attempts}",
        n as f64 / gen_s,
        spend as f64 / 1e6
    );
    let total: u64 = tokens_task.values().sum();
    println!("total tokens {:.3e}", total as f64);
    let mut by: Vec<_> = tokens_task.iter().collect();
    by.sort_by(|a, b| b.1.cmp(a.1));
    for (t, v) in &by {
        let mut top: Vec<_> = tokens_model_task
            .iter()
            .filter(|((tt, _), _)| tt == *t)
            .collect();
        top.sort_by(|a, b| b.1.cmp(a.1));
        let tops: Vec<String> = top
            .iter()
            .take(5)
            .map(|((_, m), x)| format!("{m} {:.1}%", 100.0 * **x as f64 / **v as f64))
            .collect();
        println!(
            "{t:12} {:5.1}%  {}",
            100.0 * **v as f64 / total as f64,
            tops.join(", ")
        );
    }
    let mut au: Vec<_> = tokens_author.iter().collect();
    au.sort_by(|a, b| b.1.cmp(a.1));
    let s: Vec<String> = au
        .iter()
        .take(10)
        .map(|(a, x)| format!("{a} {:.1}%", 100.0 * **x as f64 / total as f64))
        .collect();
    println!("authors: {}", s.join(", "));
    let mut md: Vec<_> = tokens_model.iter().collect();
    md.sort_by(|a, b| b.1.cmp(a.1));
    let with_traffic = md
        .iter()
        .filter(|(_, x)| **x as f64 > total as f64 * 0.0005)
        .count();
    println!(
        "models: {} total, {with_traffic} with >0.05% of tokens",
        md.len()
    );
    for (m, x) in md.iter().take(20) {
        println!("  {m:45} {:.2}%", 100.0 * **x as f64 / total as f64);
    }
    let mut at: Vec<u64> = app_tokens.values().copied().collect();
    at.sort_unstable_by(|a, b| b.cmp(a));
    let top10: u64 = at.iter().take(10).sum();
    println!(
        "apps with tokens {}, top 10 apps carry {:.1}% of tokens",
        at.len(),
        100.0 * top10 as f64 / total as f64
    );
    for ((t, w), s) in &apps_task_week {
        if *w == 0 || *w == 3 {
            print!("{t}/w{w}:{} ", s.len());
        }
    }
    println!();
    println!("status: {status:?}");
    println!("{}", serde_json::to_string_pretty(&g.manifest().effects)?);
    Ok(())
}
