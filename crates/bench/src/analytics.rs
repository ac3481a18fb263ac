//! `bench analytics`: the preference index and retention for one task over 12 weeks of a large
//! generated lake, answered from the app-week rollup and from raw events, with DuckDB running
//! the same app-week aggregation over the same files in the same run.

use crate::args::BenchAnalyticsArgs;
use crate::bench::{dir_bytes, ensure_lake, machine, ms, python_json, report};
use chrono::Days;
use modelshare_analytics::index::{IndexConfig, preference_index};
use modelshare_analytics::retention::retention_all;
use modelshare_analytics::{AnalyticsConfig, Panel, Rollups, Weeks};
use modelshare_event::Task;
use modelshare_gen::GenConfig;
use modelshare_ingest::Lake;
use modelshare_query::{QueryConfig, QueryEngine};
use std::process::ExitCode;
use std::time::{Duration, Instant};

/// Time of one full answer (load the panel, fit the index with 200 resamples, retention of every
/// model), split by stage.
#[derive(Debug, Clone, Copy)]
struct Timing {
    load: Duration,
    index: Duration,
    retention: Duration,
}

impl Timing {
    fn total(&self) -> Duration {
        self.load + self.index + self.retention
    }
}

async fn answer(
    engine: &QueryEngine,
    rollups: &Rollups,
    task: Task,
    weeks: Weeks,
) -> anyhow::Result<(Timing, usize, usize)> {
    let t = Instant::now();
    let panel = Panel::load(engine, rollups, Some(task), None, weeks).await?;
    let load = t.elapsed();
    let analytics = AnalyticsConfig {
        min_apps: modelshare_query::DEFAULT_MIN_APPS,
    };
    let t = Instant::now();
    let idx = preference_index(
        &panel,
        IndexConfig {
            analytics,
            min_observations: 20,
            resamples: 200,
            seed: 1,
        },
    );
    let index = t.elapsed();
    let t = Instant::now();
    let retained = retention_all(&panel, analytics);
    let retention = t.elapsed();
    let uses = panel
        .units
        .iter()
        .flat_map(|u| u.weeks.iter().flatten())
        .map(|w| w.uses.len())
        .sum();
    anyhow::ensure!(
        !idx.ranked.is_empty() && !retained.is_empty(),
        "empty answer"
    );
    Ok((
        Timing {
            load,
            index,
            retention,
        },
        uses,
        idx.ranked.len(),
    ))
}

pub(crate) async fn run(args: BenchAnalyticsArgs) -> anyhow::Result<ExitCode> {
    let task: Task = args
        .task
        .parse()
        .map_err(|e| anyhow::anyhow!("--task: {e}"))?;
    let base = GenConfig::default();
    let last_day = base.start + Days::new(u64::from(base.days) - 1);
    let days = args.weeks * 7;
    let cfg = GenConfig {
        events: args.events,
        apps: args.apps,
        days,
        start: last_day - Days::new(u64::from(days) - 1),
        ..base
    };
    ensure_lake(&args.dir, &cfg).await?;
    let lake = Lake::open(&args.dir)?;
    let query_config = QueryConfig {
        timeout: Duration::from_secs(3600),
        ..QueryConfig::default()
    };
    let engine = QueryEngine::new(lake.events_dir(), None, query_config.clone())?;
    let rollups = Rollups::new(lake.clone());
    let t = Instant::now();
    let built = rollups
        .rebuild_all(&engine, chrono::Utc::now(), Duration::ZERO)
        .await?;
    let rollup_time = t.elapsed();
    let weeks = Weeks::ending(last_day, args.weeks);

    // From the rollup: cold (fresh engine) and warm.
    let fresh = || QueryEngine::new(lake.events_dir(), None, query_config.clone());
    let (cold, uses, ranked) = answer(&fresh()?, &rollups, task, weeks).await?;
    let warm_engine = fresh()?;
    let mut warm = Vec::new();
    for _ in 0..args.runs.max(1) {
        warm.push(answer(&warm_engine, &rollups, task, weeks).await?.0);
    }
    warm.sort_by_key(Timing::total);
    let warm = warm[warm.len() / 2];

    // From raw events: the same panel without a rollup (an empty rollup directory).
    let scratch = std::env::temp_dir().join(format!("modelshare-bench-{}", std::process::id()));
    let no_rollups = Rollups::new(Lake::open(&scratch)?);
    let mut raw = Vec::new();
    for _ in 0..2 {
        raw.push(answer(&warm_engine, &no_rollups, task, weeks).await?);
    }
    std::fs::remove_dir_all(&scratch).ok();
    let (raw_timing, raw_uses, _) = raw[1];
    anyhow::ensure!(
        raw_uses == uses,
        "raw panel has {raw_uses} rows, rollup {uses}"
    );

    let bytes = dir_bytes(&lake.events_dir());
    let rollup_bytes = dir_bytes(rollups.dir());
    let mut lines = vec![
        format!("bench analytics on {}", machine()),
        format!(
            "lake: {} events, {} apps, {} weeks, {} bytes of Parquet; rollup {} weeks, {} bytes, built in {:.2} s",
            args.events,
            args.apps,
            args.weeks,
            bytes,
            built.built.len(),
            rollup_bytes,
            rollup_time.as_secs_f64()
        ),
        format!(
            "task {task}, {} weeks {}..{}: panel of {uses} app-week-model rows, {ranked} models ranked",
            weeks.count,
            weeks.first,
            weeks.end()
        ),
        format!(
            "from the rollup: cold {:.1} ms (fresh engine), warm median {:.1} ms = load {:.1} + index (200 resamples) {:.1} + retention (all models) {:.1}",
            ms(cold.total()),
            ms(warm.total()),
            ms(warm.load),
            ms(warm.index),
            ms(warm.retention)
        ),
        format!(
            "from raw events (no rollup): warm {:.1} ms, of which load {:.1} ms",
            ms(raw_timing.total()),
            ms(raw_timing.load)
        ),
    ];
    match duckdb(&args, &lake, &rollups, task, weeks, uses) {
        Ok(line) => lines.push(line),
        Err(e) => lines.push(format!("duckdb: not run ({e:#})")),
    }
    report(&args.out, &lines)?;
    Ok(ExitCode::SUCCESS)
}

/// DuckDB builds the same app-week rows: from raw events, and from the rollup files.
fn duckdb(
    args: &BenchAnalyticsArgs,
    lake: &Lake,
    rollups: &Rollups,
    task: Task,
    weeks: Weeks,
    uses: usize,
) -> anyhow::Result<String> {
    let events = format!(
        "read_parquet('{}/*/*.parquet', hive_partitioning = true)",
        std::path::absolute(lake.events_dir())?.display()
    );
    let raw_sql = format!(
        "SELECT CAST(date_trunc('week', ts) AS DATE) AS week, app_id, model, count(*) AS requests, \
         sum(CAST(input_tokens AS BIGINT) + CAST(output_tokens AS BIGINT)) AS tokens, \
         sum(cost_usd) AS cost FROM {events} WHERE status = 'ok' AND task = '{task}' \
         AND date >= '{}' AND date < '{}' GROUP BY ALL",
        weeks.first,
        weeks.end()
    );
    // The current generation of each week (older ones may still be on disk).
    let files: Vec<String> = rollups
        .table("rollup", &rollups.manifests()?, weeks.iter())
        .files
        .iter()
        .map(|f| Ok(format!("'{}'", std::path::absolute(f)?.display())))
        .collect::<std::io::Result<_>>()?;
    let rollup_sql = format!(
        "SELECT week, app_id, model, requests, input_tokens + output_tokens AS tokens, cost_usd \
         FROM read_parquet([{}]) WHERE task = '{task}'",
        files.join(", ")
    );
    let script = format!(
        r#"
import duckdb, json, time
def timed(con, sql, runs):
    t = time.perf_counter(); n = len(con.execute(sql).fetchall()); cold = time.perf_counter() - t
    warm = []
    for _ in range(runs):
        t = time.perf_counter(); con.execute(sql).fetchall(); warm.append(time.perf_counter() - t)
    warm.sort()
    return n, cold * 1e3, warm[len(warm) // 2] * 1e3
con = duckdb.connect()
con.execute("SET enable_progress_bar = false")
raw = timed(con, {raw_sql:?}, {runs})
rollup = timed(con, {rollup_sql:?}, {runs})
print(json.dumps({{"raw": raw, "rollup": rollup, "version": duckdb.__version__}}))
"#,
        runs = args.runs.max(1)
    );
    let v = python_json(&args.python, &script)?;
    let rows = |k: &str| v[k][0].as_u64().unwrap_or(0);
    let agree = rows("raw") == uses as u64 && rows("rollup") == uses as u64;
    Ok(format!(
        "duckdb {}: app-week rows from raw events cold {:.1} ms, warm {:.1} ms; from the rollup files cold {:.1} ms, warm {:.1} ms; {} rows ({})",
        v["version"].as_str().unwrap_or("?"),
        v["raw"][1].as_f64().unwrap_or(f64::NAN),
        v["raw"][2].as_f64().unwrap_or(f64::NAN),
        v["rollup"][1].as_f64().unwrap_or(f64::NAN),
        v["rollup"][2].as_f64().unwrap_or(f64::NAN),
        rows("raw"),
        if agree {
            "same as modelshare's panel"
        } else {
            "DIFFERS from modelshare's panel"
        }
    ))
}
