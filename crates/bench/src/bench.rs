//! Shared helpers of the benchmark programs, and the ingest and query benchmarks.
//!
//! - `ingest`: a real `modelshare serve` child process on loopback, concurrent HTTP
//!   clients, batched and one-event requests; durable events/s, bytes/event on disk, peak RSS.
//! - `query`: the leaderboard question over a generated lake, cold and warm, next to DuckDB
//!   answering the same SQL on the same Parquet files in the same run.
//! - `analytics`: see [`crate::analytics`].

use crate::args::{BenchCommand, BenchIngestArgs, BenchQueryArgs};
use anyhow::Context;
use modelshare_gen::GenConfig;
use modelshare_ingest::Lake;
use modelshare_query::{
    GroupBy, LeaderboardQuery, Measure, Period, PeriodKind, QueryConfig, QueryEngine,
};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

pub(crate) async fn run(which: BenchCommand) -> anyhow::Result<ExitCode> {
    match which {
        BenchCommand::Ingest(a) => ingest(a).await,
        BenchCommand::Query(a) => query(a).await,
        BenchCommand::Analytics(a) => crate::analytics::run(a).await,
        BenchCommand::Scale(a) => crate::scale::run(a).await,
        BenchCommand::Encodings(a) => crate::encodings::run(a),
        BenchCommand::Cluster(a) => crate::cluster::run(a),
        // Blocking file work (the live buffer's gate included), off the async workers.
        BenchCommand::Compaction(a) => tokio::task::block_in_place(|| crate::compaction::run(a)),
    }
}

/// The `modelshare` binary: given, or the one cargo built next to this program.
pub(crate) fn server_binary(given: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    let path = match given {
        Some(p) => p,
        None => std::env::current_exe()?
            .parent()
            .context("this program has no directory")?
            .join("modelshare"),
    };
    anyhow::ensure!(
        path.is_file(),
        "{} not found: build it first (`cargo build --release -p modelshare`) or pass --server-bin",
        path.display()
    );
    Ok(path)
}

pub(crate) fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown cpu".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    format!("{cores} cores, {cpu}")
}

pub(crate) fn report(out: &Path, lines: &[String]) -> anyhow::Result<()> {
    for l in lines {
        println!("{l}");
    }
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir).ok();
    }
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(out)
        .with_context(|| format!("cannot write {}", out.display()))?;
    writeln!(f, "## {}", chrono::Utc::now().to_rfc3339())?;
    for l in lines {
        writeln!(f, "{l}")?;
    }
    println!("(figures appended to {})", out.display());
    Ok(())
}

/// Peak resident set size of a live process, from /proc (kB → bytes).
pub(crate) fn peak_rss(pid: u32) -> Option<u64> {
    proc_status_bytes(pid, "VmHWM:")
}

/// Current resident set size of a live process, from /proc (kB → bytes).
pub(crate) fn rss(pid: u32) -> Option<u64> {
    proc_status_bytes(pid, "VmRSS:")
}

fn proc_status_bytes(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

pub(crate) fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "parquet") {
                total += e.metadata().map_or(0, |m| m.len());
            }
        }
    }
    total
}

pub(crate) struct ServerChild {
    pub(crate) child: std::process::Child,
    pub(crate) url: String,
}

/// Starts `exe serve` on `dir` with `extra` flags; returns once it prints its address.
pub(crate) fn start_server(exe: &Path, dir: &Path, extra: &[&str]) -> anyhow::Result<ServerChild> {
    let mut args = vec!["--data-dir".to_owned(), dir.display().to_string()];
    args.extend(extra.iter().map(|a| (*a).to_owned()));
    start_server_with(exe, &args)
}

/// Starts `exe serve --listen 127.0.0.1:0 ARGS`; returns once it prints its address.
pub(crate) fn start_server_with(exe: &Path, args: &[String]) -> anyhow::Result<ServerChild> {
    let mut child = Command::new(exe)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .env("MODELSHARE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start the server")?;
    let stdout = child.stdout.take().context("no server stdout")?;
    let mut line = String::new();
    BufReader::new(stdout).read_line(&mut line)?;
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .context("server did not print its address")?
        .to_owned();
    Ok(ServerChild { child, url })
}

fn stop_server(mut s: ServerChild) -> anyhow::Result<()> {
    Command::new("kill")
        .args(["-TERM", &s.child.id().to_string()])
        .status()?;
    let status = s.child.wait()?;
    anyhow::ensure!(status.success(), "server exited with {status}");
    Ok(())
}

/// Sends `bodies` with `clients` concurrent connections; returns elapsed time.
async fn blast(url: &str, bodies: Arc<Vec<Vec<u8>>>, clients: usize) -> anyhow::Result<Duration> {
    let endpoint = format!("{url}/v1/events");
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(clients)
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..clients {
        let (client, endpoint, bodies, next) = (
            client.clone(),
            endpoint.clone(),
            Arc::clone(&bodies),
            Arc::clone(&next),
        );
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(body) = bodies.get(i) else {
                    return Ok::<(), anyhow::Error>(());
                };
                loop {
                    let resp = client
                        .post(&endpoint)
                        .header("content-type", "application/x-ndjson")
                        .body(body.clone())
                        .send()
                        .await?;
                    if resp.status() == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                        tokio::time::sleep(Duration::from_millis(20)).await;
                        continue;
                    }
                    anyhow::ensure!(
                        resp.status().is_success(),
                        "server answered {}",
                        resp.status()
                    );
                    let _ = resp.bytes().await?;
                    break;
                }
            }
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok(started.elapsed())
}

fn ndjson_bodies(cfg: &GenConfig, per_body: usize) -> anyhow::Result<Vec<Vec<u8>>> {
    let mut bodies = Vec::new();
    let mut body = Vec::new();
    let mut n = 0;
    for e in modelshare_gen::events(cfg)? {
        body.extend_from_slice(modelshare_gen::to_json(&e).as_bytes());
        body.push(b'\n');
        n += 1;
        if n == per_body {
            bodies.push(std::mem::take(&mut body));
            n = 0;
        }
    }
    if !body.is_empty() {
        bodies.push(body);
    }
    Ok(bodies)
}

async fn ingest(args: BenchIngestArgs) -> anyhow::Result<ExitCode> {
    let server_bin = server_binary(args.server_bin.clone())?;
    let tmp;
    let dir: PathBuf = match &args.dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile_dir()?;
            tmp.clone()
        }
    };
    let today = chrono::Utc::now().date_naive();
    let base = GenConfig {
        days: 7,
        start: today - chrono::Days::new(7),
        ..GenConfig::default()
    };
    println!("preparing request bodies ...");
    let batched_cfg = GenConfig {
        events: args.events,
        seed: 1,
        ..base.clone()
    };
    let single_cfg = GenConfig {
        events: args.single_requests,
        seed: 2,
        ..base
    };
    let (batched, single) = tokio::task::spawn_blocking(move || {
        Ok::<_, anyhow::Error>((
            ndjson_bodies(&batched_cfg, args.batch)?,
            ndjson_bodies(&single_cfg, 1)?,
        ))
    })
    .await??;
    let body_bytes: usize = batched.iter().map(Vec::len).sum();

    // A lake in a bucket: the node's local copy is `dir`, the lake of record the bucket.
    let lake_args = match &args.bucket {
        Some(url) => vec![
            "--data-dir".to_owned(),
            url.clone(),
            "--local-dir".to_owned(),
            dir.display().to_string(),
            "--node-id".to_owned(),
            "bench".to_owned(),
        ],
        None => vec!["--data-dir".to_owned(), dir.display().to_string()],
    };
    let server = start_server_with(&server_bin, &lake_args)?;
    let pid = server.child.id();
    let t_batched = blast(&server.url, Arc::new(batched), args.clients.min(8)).await?;
    let t_single = blast(&server.url, Arc::new(single), args.clients).await?;
    let rss = peak_rss(pid).unwrap_or(0);
    let bucket_puts = match &args.bucket {
        Some(_) => Some(bucket_counters(&server.url).await?),
        None => None,
    };
    // The flush path (Parquet files, and into a bucket their puts) is off the acknowledgement
    // path: its own time shows what a bucket costs.
    let (flushes, flush_secs, flushed_rows) = (
        metric_value(&server.url, "flushes_total").await?,
        metric_value(&server.url, "flush_seconds_total").await?,
        metric_value(&server.url, "flushed_rows_total").await?,
    );
    stop_server(server)?;
    let events = args.events + args.single_requests;
    let bytes = dir_bytes(&dir.join("events"));
    let lake = args.bucket.as_deref().unwrap_or("a local directory");
    let mut lines = vec![
        format!("bench ingest on {} into {lake}", machine()),
        format!(
            "batched: {} events in {}-event requests, {} clients: {:.0} durable events/s ({:.1} s, {:.0} MB/s of NDJSON)",
            args.events,
            args.batch,
            args.clients.min(8),
            args.events as f64 / t_batched.as_secs_f64(),
            t_batched.as_secs_f64(),
            body_bytes as f64 / 1e6 / t_batched.as_secs_f64(),
        ),
        format!(
            "single: {} one-event requests, {} clients: {:.0} durable requests/s ({:.1} s)",
            args.single_requests,
            args.clients,
            args.single_requests as f64 / t_single.as_secs_f64(),
            t_single.as_secs_f64(),
        ),
        format!(
            "on disk: {bytes} bytes of Parquet for {events} events = {:.1} bytes/event",
            bytes as f64 / events as f64
        ),
        format!("server peak RSS: {:.0} MiB", rss as f64 / (1 << 20) as f64),
        format!(
            "flushes while the clients ran: {flushes:.0}, {flushed_rows:.0} rows in {flush_secs:.2} s \
             ({:.0} ms per million rows)",
            if flushed_rows > 0.0 {
                flush_secs * 1e9 / flushed_rows
            } else {
                0.0
            }
        ),
    ];
    if let (Some(url), Some((puts, put_bytes))) = (&args.bucket, bucket_puts) {
        lines.push(format!(
            "bucket: {puts} objects put, {put_bytes} bytes, while ingesting"
        ));
        // A node that lost its disk: start on an empty local directory, which copies the lake
        // down before the server listens.
        let fresh = dir.with_extension("fresh");
        let started = Instant::now();
        let replacement = start_server_with(
            &server_bin,
            &[
                "--data-dir".to_owned(),
                url.clone(),
                "--local-dir".to_owned(),
                fresh.display().to_string(),
                "--node-id".to_owned(),
                "bench-replacement".to_owned(),
            ],
        )?;
        let listening = started.elapsed();
        let restored = metric_value(&replacement.url, "bucket_restored_total").await?;
        stop_server(replacement)?;
        lines.push(format!(
            "replacement node on an empty disk: listening after {:.1} s, {restored:.0} objects \
             ({:.0} MB) copied down",
            listening.as_secs_f64(),
            dir_bytes(&fresh) as f64 / 1e6
        ));
        std::fs::remove_dir_all(&fresh).ok();
    }
    report(&args.out, &lines)?;
    if args.dir.is_none() {
        std::fs::remove_dir_all(&dir).ok();
    }
    Ok(ExitCode::SUCCESS)
}

/// The value of `modelshare_NAME` on a server's `/metrics`.
async fn metric_value(url: &str, name: &str) -> anyhow::Result<f64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    let prefix = format!("modelshare_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .with_context(|| format!("no {name} on /metrics"))?
        .trim()
        .parse()
        .with_context(|| format!("{name} is not a number"))
}

/// Objects and bytes a node has put into its bucket.
async fn bucket_counters(url: &str) -> anyhow::Result<(u64, u64)> {
    Ok((
        metric_value(url, "bucket_puts_total").await? as u64,
        metric_value(url, "bucket_put_bytes_total").await? as u64,
    ))
}

fn tempfile_dir() -> anyhow::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("modelshare-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The core of the leaderboard question as one SQL statement both engines run.
fn leaderboard_sql(table: &str, period: &Period) -> String {
    format!(
        "SELECT model, sum(CAST(input_tokens AS BIGINT) + CAST(output_tokens AS BIGINT)) AS tokens, \
         count(*) AS requests, count(DISTINCT app_id) AS apps, sum(cost_usd) AS cost \
         FROM {table} WHERE status = 'ok' AND date >= '{}' AND date < '{}' \
         GROUP BY model ORDER BY tokens DESC, model LIMIT 20",
        period.start, period.end
    )
}

async fn query(args: BenchQueryArgs) -> anyhow::Result<ExitCode> {
    let cfg = GenConfig {
        events: args.events,
        ..GenConfig::default()
    };
    ensure_lake(&args.dir, &cfg).await?;
    let lake = Lake::open(&args.dir)?;
    let last_day = cfg.start + chrono::Days::new(u64::from(cfg.days.saturating_sub(1)));
    let period = Period::containing(PeriodKind::Week, last_day);
    let bytes = dir_bytes(&lake.events_dir());

    let time_engine = |engine: QueryEngine, sql: String| async move {
        let t = Instant::now();
        let b = engine.sql(&sql).await?;
        Ok::<(Duration, Vec<arrow::array::RecordBatch>), anyhow::Error>((t.elapsed(), b))
    };
    let sql = leaderboard_sql("events", &period);
    let fresh = || QueryEngine::new(lake.events_dir(), None, QueryConfig::default());
    let (cold, first) = time_engine(fresh()?, sql.clone()).await?;
    let warm_engine = fresh()?;
    time_engine(warm_engine.clone(), sql.clone()).await?;
    let mut warm = Vec::new();
    for _ in 0..args.runs {
        warm.push(time_engine(warm_engine.clone(), sql.clone()).await?.0);
    }
    warm.sort();
    let warm_median = warm[warm.len() / 2];
    let lb_query = LeaderboardQuery {
        period,
        task: None,
        context: None,
        by: Measure::Tokens,
        group: GroupBy::Model,
        limit: 20,
    };
    let mut full = Vec::new();
    for _ in 0..args.runs {
        let t = Instant::now();
        warm_engine.leaderboard(lb_query.clone()).await?;
        full.push(t.elapsed());
    }
    full.sort();
    let top_tokens = modelshare_query::values::u64_at(&first[0], "tokens", 0).unwrap_or(0);

    let mut lines = vec![
        format!("bench query on {}", machine()),
        format!(
            "lake: {} events, {} bytes of Parquet ({:.1} bytes/event); week {}..{}",
            args.events,
            bytes,
            bytes as f64 / args.events as f64,
            period.start,
            period.end
        ),
        format!(
            "modelshare (DataFusion): leaderboard SQL cold {:.1} ms (fresh engine), warm median {:.1} ms; full /v1/leaderboard (publishable cells of the week and the one before, one pass; other) warm median {:.1} ms",
            ms(cold),
            ms(warm_median),
            ms(full[full.len() / 2])
        ),
    ];
    match duckdb(&args, &lake, &period, top_tokens) {
        Ok(line) => lines.push(line),
        Err(e) => lines.push(format!("duckdb: not run ({e:#})")),
    }
    report(&args.out, &lines)?;
    Ok(ExitCode::SUCCESS)
}

/// Generates `cfg` into `dir` unless the lake there already holds exactly that data set.
pub(crate) async fn ensure_lake(dir: &Path, cfg: &GenConfig) -> anyhow::Result<()> {
    let manifest = dir.join("manifest.json");
    let have = std::fs::read_to_string(&manifest)
        .ok()
        .and_then(|t| serde_json::from_str::<modelshare_gen::Manifest>(&t).ok())
        .is_some_and(|m| {
            m.config.events == cfg.events
                && m.config.apps == cfg.apps
                && m.config.days == cfg.days
                && m.config.seed == cfg.seed
        });
    if have {
        return Ok(());
    }
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    println!(
        "generating {} events into {} ...",
        cfg.events,
        dir.display()
    );
    let (dir, cfg) = (dir.to_owned(), cfg.clone());
    let started = Instant::now();
    tokio::task::spawn_blocking(move || {
        let lake = Lake::open(&dir)?;
        modelshare_gen::generate_to_lake(&lake, &cfg, &|_| {}).map_err(anyhow::Error::from)
    })
    .await??;
    println!("generated in {:.1} s", started.elapsed().as_secs_f64());
    Ok(())
}

/// Runs a Python script (DuckDB's side of a comparison) and parses the JSON it prints.
pub(crate) fn python_json(python: &str, script: &str) -> anyhow::Result<serde_json::Value> {
    let out = Command::new(python)
        .args(["-c", script])
        .env("OMP_NUM_THREADS", "2")
        .output()
        .with_context(|| format!("cannot run {python}"))?;
    anyhow::ensure!(
        out.status.success(),
        "{python} failed: {}",
        String::from_utf8_lossy(&out.stderr)
            .lines()
            .last()
            .unwrap_or("")
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn duckdb(
    args: &BenchQueryArgs,
    lake: &Lake,
    period: &Period,
    top_tokens: u64,
) -> anyhow::Result<String> {
    let glob = format!(
        "{}/*/*.parquet",
        std::path::absolute(lake.events_dir())?.display()
    );
    let table = format!("read_parquet('{glob}', hive_partitioning = true)");
    let sql = leaderboard_sql(&table, period);
    let script = format!(
        r#"
import duckdb, json, time
sql = {sql:?}
t = time.perf_counter(); con = duckdb.connect(); rows = con.execute(sql).fetchall(); cold = time.perf_counter() - t
warm = []
for _ in range({runs}):
    t = time.perf_counter(); con.execute(sql).fetchall(); warm.append(time.perf_counter() - t)
warm.sort()
print(json.dumps({{"cold_ms": cold * 1e3, "warm_ms": warm[len(warm) // 2] * 1e3, "top_tokens": int(rows[0][1]), "version": duckdb.__version__}}))
"#,
        runs = args.runs
    );
    let v = python_json(&args.python, &script)?;
    let agree = v["top_tokens"].as_u64() == Some(top_tokens);
    Ok(format!(
        "duckdb {}: same SQL cold {:.1} ms (new connection), warm median {:.1} ms; top model tokens {} ({})",
        v["version"].as_str().unwrap_or("?"),
        v["cold_ms"].as_f64().unwrap_or(f64::NAN),
        v["warm_ms"].as_f64().unwrap_or(f64::NAN),
        v["top_tokens"],
        if agree {
            "agrees with modelshare"
        } else {
            "DIFFERS from modelshare"
        }
    ))
}
