//! `modelshare rollup`: builds the app-week rollup of a lake's closed weeks; and the refresher
//! task with which `serve` keeps it current while events arrive.

use crate::config::RollupArgs;
use anyhow::Context;
use modelshare_analytics::Rollups;
use modelshare_ingest::Lake;
use modelshare_query::{QueryConfig, QueryEngine};
use std::path::Path;
use std::process::ExitCode;
use std::time::{Duration, Instant};

pub async fn run(args: RollupArgs) -> anyhow::Result<ExitCode> {
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        crate::lake_copy::with_lake(&args.lake, |root| handle.block_on(rollup(root, &args)))
    })
    .await
    .context("rollup panicked")??;
    Ok(ExitCode::SUCCESS)
}

async fn rollup(root: &Path, args: &RollupArgs) -> anyhow::Result<()> {
    let lake =
        Lake::open(root).with_context(|| format!("cannot open the lake at {}", root.display()))?;
    // The server keeps the rollup itself; two builders at once would race on generations.
    let _lock = lake.lock().context(
        "the lake is in use (is `modelshare serve` running on it? it refreshes the rollup itself)",
    )?;
    let engine = QueryEngine::new(
        lake.events_dir(),
        None,
        QueryConfig {
            timeout: Duration::from_secs(3600),
            ..QueryConfig::default()
        },
    )?;
    let rollups = Rollups::new(lake);
    let started = Instant::now();
    let grace = Duration::from_secs(args.grace_secs);
    let now = chrono::Utc::now();
    let report = if args.rebuild {
        rollups.rebuild_all(&engine, now, grace).await?
    } else {
        rollups.refresh(&engine, now, grace).await?
    };
    println!(
        "rolled up {} week(s) in {:.2} s; {} already current ({})",
        report.built.len(),
        started.elapsed().as_secs_f64(),
        report.current,
        rollups.dir().display()
    );
    Ok(())
}

/// Refreshes the rollup now and then every `interval`, logging failures and carrying on (the
/// analytics fall back to raw events for weeks the rollup does not cover).
pub fn spawn_refresher(
    rollups: Rollups,
    engine: QueryEngine,
    interval: Duration,
    grace: Duration,
    upkeep: impl Fn() -> bool + Send + 'static,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            if !upkeep() {
                continue;
            }
            match rollups.refresh(&engine, chrono::Utc::now(), grace).await {
                Ok(r) if !r.built.is_empty() => {
                    tracing::info!(weeks = r.built.len(), "app-week rollup refreshed");
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "app-week rollup refresh failed"),
            }
        }
    })
}
