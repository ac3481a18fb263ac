//! `scale`: the public reads at a router's volume. Generates a large lake with the real
//! `modelshare generate` (time, peak RSS, bytes per event), starts the real server on it
//! (time to listen, time until the app-day cube is checked, RSS), times each public read cold
//! (first request) and warm (median), then a mixed read load at a fixed rate while events are
//! ingested at a fixed rate (latency percentiles, and how long an acknowledged event takes to
//! show in a query), and runs the same questions in DuckDB over the raw Parquet files.

use crate::args::BenchScaleArgs;
use crate::bench::{
    ServerChild, dir_bytes, machine, ms, peak_rss, python_json, report, rss, server_binary,
    start_server,
};
use anyhow::Context;
use chrono::{Days, NaiveDate};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn mib(bytes: u64) -> f64 {
    bytes as f64 / (1u64 << 20) as f64
}

/// The lake's generator manifest says it holds exactly this data set.
fn lake_holds(dir: &Path, args: &BenchScaleArgs) -> bool {
    let text = std::fs::read_to_string(dir.join("manifest.json")).unwrap_or_default();
    let Ok(m) = serde_json::from_str::<serde_json::Value>(&text) else {
        return false;
    };
    let c = &m["config"];
    c["events"] == args.events
        && c["apps"] == args.apps
        && c["days"] == args.days
        && c["seed"] == args.seed
        && c["start"] == args.start.to_string()
}

/// Runs `modelshare generate` into `dir`; returns (seconds, peak RSS bytes).
fn generate(exe: &Path, dir: &Path, args: &BenchScaleArgs) -> anyhow::Result<(f64, u64)> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    println!(
        "generating {} events into {} ...",
        args.events,
        dir.display()
    );
    let started = Instant::now();
    let mut child = Command::new(exe)
        .args(["generate", "--data-dir"])
        .arg(dir)
        .args(["--events", &args.events.to_string()])
        .args(["--apps", &args.apps.to_string()])
        .args(["--days", &args.days.to_string()])
        .args(["--seed", &args.seed.to_string()])
        .args(["--start", &args.start.to_string()])
        .env("MODELSHARE_LOG", "warn")
        .stdout(Stdio::null())
        .spawn()
        .context("cannot start modelshare generate")?;
    let mut peak = 0;
    loop {
        peak = peak.max(peak_rss(child.id()).unwrap_or(0));
        if let Some(status) = child.try_wait()? {
            anyhow::ensure!(status.success(), "generate exited with {status}");
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Ok((started.elapsed().as_secs_f64(), peak))
}

struct Server {
    child: std::process::Child,
    url: String,
    client: reqwest::Client,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    async fn get(&self, path: &str) -> anyhow::Result<(Duration, serde_json::Value)> {
        let t = Instant::now();
        let resp = self
            .client
            .get(format!("{}{path}", self.url))
            .send()
            .await?;
        let status = resp.status();
        let body = resp.bytes().await?;
        anyhow::ensure!(
            status.is_success(),
            "{path}: {status} {}",
            String::from_utf8_lossy(&body)
        );
        let elapsed = t.elapsed();
        Ok((
            elapsed,
            serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null),
        ))
    }
}

/// The public reads timed, as (label, path).
fn reads(last: NaiveDate, days: u32) -> Vec<(String, String)> {
    let first = last - Days::new(u64::from(days) - 1);
    let weeks12 = last - Days::new(83.min(u64::from(days) - 1));
    vec![
        (
            "/v1/leaderboard?period=week".into(),
            format!("/v1/leaderboard?period=week&date={last}"),
        ),
        (
            "/v1/leaderboard?period=month".into(),
            format!("/v1/leaderboard?period=month&date={last}"),
        ),
        (
            "/v1/authors?period=week".into(),
            format!("/v1/authors?period=week&date={last}"),
        ),
        (
            "/v1/tasks?period=week".into(),
            format!("/v1/tasks?period=week&date={last}"),
        ),
        (
            "/v1/share?task=programming&granularity=week (12 weeks)".into(),
            format!("/v1/share?task=programming&granularity=week&from={weeks12}&to={last}"),
        ),
        (
            format!("/v1/share?granularity=day ({days} days)"),
            format!("/v1/share?granularity=day&from={first}&to={last}"),
        ),
        (
            "/v1/price-share?period=week".into(),
            format!("/v1/price-share?period=week&date={last}&task=programming"),
        ),
        ("/ (home page)".into(), format!("/?date={last}")),
        (
            "/tasks/programming".into(),
            format!("/tasks/programming?date={last}"),
        ),
    ]
}

/// The raw-event SQL DuckDB answers for the comparable reads (table placeholder `T`): the
/// leaderboards with the publication rule applied (the same answer the server publishes), the
/// share series without it (a lower bound of DuckDB's cost for them).
fn duckdb_questions(last: NaiveDate, days: u32) -> Vec<(String, String)> {
    let week = modelshare_query::Period::containing(modelshare_query::PeriodKind::Week, last);
    let month = modelshare_query::Period::containing(modelshare_query::PeriodKind::Month, last);
    let first = last - Days::new(u64::from(days) - 1);
    let weeks12 = last - Days::new(83.min(u64::from(days) - 1));
    // The leaderboard's own answer: the publication rule's groups of `MIN_APPS` apps, written
    // out in SQL over the raw events (the segment, attempt kind and position keys included).
    let board = |start: NaiveDate, end: NaiveDate| {
        format!(
            "WITH e AS (SELECT date, task, model, provider, \
               CASE WHEN input_tokens >= 131072 THEN 3 WHEN input_tokens >= 32768 THEN 2 \
                 WHEN input_tokens >= 8192 THEN 1 ELSE 0 END AS ctx, \
               attempt > 0 AS fb, CASE WHEN step > 0 THEN 2 WHEN step = 0 THEN 1 ELSE 0 END AS pos, \
               app_id, CAST(input_tokens AS BIGINT) + output_tokens AS tokens, cost_usd FROM T \
             WHERE status = 'ok' AND date >= '{start}' AND date < '{end}'), \
             g AS (SELECT date, task, model, provider, ctx, fb, pos FROM e \
               GROUP BY ALL HAVING count(DISTINCT app_id) >= {min_apps}) \
             SELECT model, sum(tokens) AS tokens, count(*) AS requests, \
             count(DISTINCT app_id) AS apps, sum(cost_usd) AS cost \
             FROM e JOIN g USING (date, task, model, provider, ctx, fb, pos) \
             GROUP BY model ORDER BY tokens DESC LIMIT 20",
            min_apps = modelshare_query::DEFAULT_MIN_APPS,
        )
    };
    vec![
        (
            "/v1/leaderboard?period=week".into(),
            board(week.start, week.end),
        ),
        (
            "/v1/leaderboard?period=month".into(),
            board(month.start, month.end),
        ),
        (
            "/v1/share?task=programming&granularity=week (12 weeks)".into(),
            format!(
                "SELECT date_trunc('week', CAST(date AS DATE)) AS w, model, \
                 sum(input_tokens + output_tokens) AS tokens FROM T \
                 WHERE status = 'ok' AND task = 'programming' AND date >= '{weeks12}' \
                 GROUP BY 1, 2"
            ),
        ),
        (
            format!("/v1/share?granularity=day ({days} days)"),
            format!(
                "SELECT date, model, sum(input_tokens + output_tokens) AS tokens FROM T \
                 WHERE status = 'ok' AND date >= '{first}' GROUP BY 1, 2"
            ),
        ),
    ]
}

/// Cold (new connection) milliseconds of each question in DuckDB over the raw files.
fn duckdb(
    python: &str,
    events_dir: &Path,
    questions: &[(String, String)],
) -> anyhow::Result<(String, Vec<f64>)> {
    let glob = format!("{}/*/*.parquet", std::path::absolute(events_dir)?.display());
    let table = format!("read_parquet('{glob}', hive_partitioning = true)");
    let sqls: Vec<String> = questions
        .iter()
        .map(|(_, q)| q.replace(" T ", &format!(" {table} ")))
        .collect();
    let script = format!(
        r#"
import duckdb, json, time
out = []
for sql in {sqls:?}:
    con = duckdb.connect()
    # A query over a few seconds would draw a progress bar on stdout, where the answer goes.
    con.execute("SET enable_progress_bar = false")
    t = time.perf_counter(); con.execute(sql).fetchall(); out.append((time.perf_counter() - t) * 1e3)
    con.close()
print(json.dumps({{"ms": out, "version": duckdb.__version__}}))
"#
    );
    let v = python_json(python, &script)?;
    let times = v["ms"]
        .as_array()
        .context("no times from duckdb")?
        .iter()
        .map(|t| t.as_f64().unwrap_or(f64::NAN))
        .collect();
    Ok((v["version"].as_str().unwrap_or("?").to_owned(), times))
}

fn percentile(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    ms(sorted[i.min(sorted.len() - 1)])
}

/// Reads at `rate`/s over `paths` for `seconds`, while events are posted at `ingest_rate`/s
/// (batches of 100, stamped now). Returns the latencies of the reads that succeeded, how many
/// failed, ingest acks, and freshness samples
/// (ack → the event counted by a query).
async fn mixed_load(
    server: &Arc<Server>,
    paths: &[String],
    rate: u32,
    ingest_rate: u32,
    seconds: u64,
) -> anyhow::Result<(Vec<Duration>, u64, u64, Vec<Duration>)> {
    let stop = Instant::now() + Duration::from_secs(seconds);
    let paths = Arc::new(paths.to_vec());
    let mut readers = Vec::new();
    // Open-loop: each tick starts a request whether or not earlier ones finished.
    let period = Duration::from_secs_f64(1.0 / f64::from(rate.max(1)));
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let ingest = {
        let server = Arc::clone(server);
        tokio::spawn(async move {
            let batch = 100u32;
            let mut tick = tokio::time::interval(Duration::from_secs_f64(
                f64::from(batch) / f64::from(ingest_rate.max(1)),
            ));
            let mut sent = 0u64;
            let mut fresh = Vec::new();
            let mut n = 0u64;
            while Instant::now() < stop {
                tick.tick().await;
                let now = chrono::Utc::now();
                let mut body = String::new();
                let probe = format!("probe-{n}");
                for i in 0..batch {
                    let id = if i == 0 {
                        probe.clone()
                    } else {
                        format!("load-{n}-{i}")
                    };
                    body.push_str(&serde_json::json!({
                        "event_id": id, "ts": now.to_rfc3339(), "app_id": format!("load-app-{}", i % 50),
                        "task": "programming", "model": "openai/gpt-4o", "provider": "openai",
                        "input_tokens": 1000, "output_tokens": 100, "cost_usd": 0.001,
                        "latency_ms": 900, "ttft_ms": 200, "status": "ok"
                    }).to_string());
                    body.push('\n');
                }
                n += 1;
                let resp = server
                    .client
                    .post(format!("{}/v1/events", server.url))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                let acked = Instant::now();
                if resp.is_ok_and(|r| r.status().is_success()) {
                    sent += u64::from(batch);
                    if n.is_multiple_of(20) {
                        // Freshness: how long until a query counts the acknowledged event.
                        let sql =
                            format!("SELECT count(*) AS n FROM events WHERE event_id = '{probe}'");
                        loop {
                            let r = server
                                .client
                                .post(format!("{}/v1/sql", server.url))
                                .header("content-type", "text/plain")
                                .body(sql.clone())
                                .send()
                                .await;
                            let seen = match r {
                                Ok(r) => r
                                    .json::<serde_json::Value>()
                                    .await
                                    .ok()
                                    .and_then(|v| v["rows"][0]["n"].as_u64())
                                    .unwrap_or(0),
                                Err(_) => 0,
                            };
                            if seen > 0 || acked.elapsed() > Duration::from_secs(10) {
                                fresh.push(acked.elapsed());
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(5)).await;
                        }
                    }
                }
            }
            (sent, fresh)
        })
    };
    let mut i = 0usize;
    while Instant::now() < stop {
        ticker.tick().await;
        let server = Arc::clone(server);
        let path = paths[i % paths.len()].clone();
        i += 1;
        readers.push(tokio::spawn(async move {
            server.get(&path).await.map(|(d, _)| d)
        }));
    }
    let mut latencies = Vec::new();
    let mut failed = 0u64;
    for r in readers {
        match r.await? {
            Ok(d) => latencies.push(d),
            Err(_) => failed += 1,
        }
    }
    let (sent, fresh) = ingest.await?;
    Ok((latencies, failed, sent, fresh))
}

pub(crate) async fn run(args: BenchScaleArgs) -> anyhow::Result<ExitCode> {
    let exe = server_binary(args.server_bin.clone())?;
    let dir = args.dir.clone();
    let mut lines = vec![format!(
        "bench scale on {}: {} events, {} apps, {} days from {} (seed {})",
        machine(),
        args.events,
        args.apps,
        args.days,
        args.start,
        args.seed
    )];
    if lake_holds(&dir, &args) {
        lines.push("generate: lake reused".into());
    } else {
        let (secs, peak) = generate(&exe, &dir, &args)?;
        lines.push(format!(
            "generate: {secs:.1} s ({:.2} M events/s), peak RSS {:.0} MiB",
            args.events as f64 / secs / 1e6,
            mib(peak)
        ));
        println!("{}", lines[lines.len() - 1]);
    }
    // The app-week rollup of closed weeks, as a server that has run for a while has it.
    let started = Instant::now();
    let status = Command::new(&exe)
        .args(["rollup", "--data-dir"])
        .arg(&dir)
        .env("MODELSHARE_LOG", "warn")
        .stdout(Stdio::null())
        .status()
        .context("cannot run modelshare rollup")?;
    anyhow::ensure!(status.success(), "modelshare rollup exited with {status}");
    lines.push(format!(
        "rollup (app-week, closed weeks; a no-op when current): {:.1} s",
        started.elapsed().as_secs_f64()
    ));
    println!("{}", lines[lines.len() - 1]);
    let events_bytes = dir_bytes(&dir.join("events"));
    let cube_bytes = dir_bytes(&dir.join("rollups/app_days"));
    lines.push(format!(
        "on disk: events {:.2} GB = {:.1} bytes/event; app-day cube {:.1} MB",
        events_bytes as f64 / 1e9,
        events_bytes as f64 / args.events as f64,
        cube_bytes as f64 / 1e6,
    ));

    // Start-up.
    let started = Instant::now();
    let ServerChild { child, url } = start_server(
        &exe,
        &dir,
        // One loopback client stands for many visitors: no per-client rate limit.
        &[
            "--trust-loopback",
            "--snapshot-interval-secs",
            "0",
            "--rate-limit-rps",
            "1000000",
            "--rate-limit-burst",
            "1000000",
        ],
    )?;
    let listening = started.elapsed();
    let server = Arc::new(Server {
        child,
        url,
        client: reqwest::Client::new(),
    });
    let pid = server.child.id();
    let cube_ready = loop {
        let (_, health) = server.get("/healthz").await?;
        let cube = &health["cube"];
        // Today's cube (events a mixed load of an earlier run posted) is summarized only once
        // it is one file, which it need not be yet: every other day must be.
        let days = cube["days"].as_u64().unwrap_or(u64::MAX);
        let summarized = cube["summarized_days"].as_u64().unwrap_or(0);
        if cube["raw_days"] == serde_json::json!([])
            && summarized + 1 >= days
            && cube["summarized_weeks"] == cube["weeks"]
            && cube["hourly_days"].as_u64().unwrap_or(0) + 1 >= days
        {
            break started.elapsed();
        }
        anyhow::ensure!(
            started.elapsed() < Duration::from_secs(3600),
            "the cube was not ready within an hour"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    lines.push(format!(
        "serve: listening after {:.2} s (RSS {:.0} MiB); cube checked and every day summarized (groups, group presence, hourly) after {:.1} s (RSS {:.0} MiB)",
        listening.as_secs_f64(),
        mib(rss(pid).unwrap_or(0)),
        cube_ready.as_secs_f64(),
        mib(rss(pid).unwrap_or(0)),
    ));

    // Reads, cold then warm.
    let last = args.start + Days::new(u64::from(args.days) - 1);
    let reads = reads(last, args.days);
    let mut timed = Vec::new();
    for (label, path) in &reads {
        let (cold, _) = server.get(path).await?;
        let mut warm = Vec::new();
        for _ in 0..args.runs {
            warm.push(server.get(path).await?.0);
        }
        warm.sort();
        timed.push((label.clone(), cold, warm[warm.len() / 2]));
    }
    let after_reads = peak_rss(pid).unwrap_or(0);

    // DuckDB on the raw files.
    let questions = duckdb_questions(last, args.days);
    let duck = duckdb(&args.python, &dir.join("events"), &questions);
    lines.push("| read | modelshare cold ms | warm ms | DuckDB raw cold ms | ratio |".into());
    lines.push("| --- | --- | --- | --- | --- |".into());
    for (label, cold, warm) in &timed {
        let d = match &duck {
            Ok((_, times)) => questions
                .iter()
                .position(|(l, _)| l == label)
                .map(|i| times[i]),
            Err(_) => None,
        };
        lines.push(format!(
            "| {label} | {:.1} | {:.1} | {} | {} |",
            ms(*cold),
            ms(*warm),
            d.map_or("–".into(), |d| format!("{d:.0}")),
            d.map_or("–".into(), |d| format!("{:.3}×", ms(*cold) / d)),
        ));
    }
    match &duck {
        Ok((version, _)) => lines.push(format!("DuckDB {version}, a new connection per question")),
        Err(e) => lines.push(format!("duckdb: not run ({e:#})")),
    }
    lines.push(format!(
        "server peak RSS after the reads: {:.0} MiB",
        mib(after_reads)
    ));

    // Mixed load.
    let paths: Vec<String> = reads.iter().map(|(_, p)| p.clone()).collect();
    let (mut latencies, failed, sent, mut fresh) = mixed_load(
        &server,
        &paths,
        args.read_rate,
        args.ingest_rate,
        args.load_secs,
    )
    .await?;
    latencies.sort();
    fresh.sort();
    lines.push(format!(
        "mixed load {} s: {} reads at {}/s ({failed} failed): p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms; ingest {} events ({:.0}/s); freshness ack → counted by a query p50 {:.1} ms, max {:.1} ms ({} probes); server peak RSS {:.0} MiB",
        args.load_secs,
        latencies.len(),
        args.read_rate,
        percentile(&latencies, 0.5),
        percentile(&latencies, 0.99),
        percentile(&latencies, 1.0),
        sent,
        sent as f64 / args.load_secs as f64,
        percentile(&fresh, 0.5),
        percentile(&fresh, 1.0),
        fresh.len(),
        mib(peak_rss(pid).unwrap_or(0)),
    ));
    drop(server);
    report(&args.out, &lines)?;
    Ok(ExitCode::SUCCESS)
}
