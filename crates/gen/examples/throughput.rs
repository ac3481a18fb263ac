//! Times `generate_to_lake` (plan + events + Arrow + sorted zstd Parquet, two threads) on the
//! demo config or a given size, into a temporary lake, and prints events per second.
//!
//! `cargo run --release -p modelshare-gen --example throughput -- [events] [apps] [days]`

use modelshare_gen::{GenConfig, generate_to_lake};
use modelshare_ingest::lake::Lake;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let arg = |i: usize| std::env::args().nth(i).and_then(|a| a.parse::<u64>().ok());
    let mut cfg = GenConfig::default();
    cfg.events = arg(1).unwrap_or(cfg.events);
    cfg.apps = arg(2).map_or(cfg.apps, |a| a as u32);
    cfg.days = arg(3).map_or(cfg.days, |d| d as u32);
    let dir = tempfile::tempdir()?;
    let lake = Lake::open(dir.path())?;
    let written = AtomicU64::new(0);
    let t = Instant::now();
    let manifest = generate_to_lake(&lake, &cfg, &|n| {
        written.fetch_add(n, Ordering::Relaxed);
    })?;
    let secs = t.elapsed().as_secs_f64();
    let bytes: u64 = lake
        .event_files()?
        .iter()
        .filter_map(|f| std::fs::metadata(f).ok())
        .map(|m| m.len())
        .sum();
    println!(
        "{} events ({} reported) over {} days, {} apps: {secs:.2} s, {:.2} M events/s, {:.1} MB Parquet ({:.1} B/event), {} effects",
        manifest.events,
        written.load(Ordering::Relaxed),
        cfg.days,
        cfg.apps,
        manifest.events as f64 / secs / 1e6,
        bytes as f64 / 1e6,
        bytes as f64 / manifest.events.max(1) as f64,
        manifest.effects.len(),
    );
    Ok(())
}
