//! `modelshare generate` (synthetic traffic into a lake, or streamed to a server) and
//! `modelshare demo` (generate once, then serve).

use crate::config::{
    CommandLakeArgs, DemoArgs, GenerateArgs, IngestTuning, QueryTuning, RollupTuning, ServeArgs,
    ServeLakeArgs, SnapshotTuning,
};
use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};
use modelshare_gen::{GenConfig, Manifest};
use modelshare_ingest::Lake;
use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

fn progress_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::new(total);
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} {elapsed_precise} [{bar:40}] {human_pos}/{human_len} events ({per_sec}, eta {eta})",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar
}

fn gen_config(args: &GenerateArgs) -> GenConfig {
    let defaults = GenConfig::default();
    GenConfig {
        seed: args.seed,
        events: args.events,
        apps: args.apps,
        days: args.days,
        start: args.start.unwrap_or(defaults.start),
    }
}

/// Generates into the lake with a progress bar; returns the manifest.
fn generate_into(dir: &Path, cfg: &GenConfig) -> anyhow::Result<Manifest> {
    let lake = Lake::open(dir)?;
    let bar = progress_bar(cfg.events);
    let started = Instant::now();
    let manifest = modelshare_gen::generate_to_lake(&lake, cfg, &|n| bar.inc(n))
        .context("generation failed")?;
    bar.finish_and_clear();
    let secs = started.elapsed().as_secs_f64();
    println!(
        "generated {} events in {secs:.1} s ({:.0} events/s) into {}",
        cfg.events,
        cfg.events as f64 / secs.max(1e-9),
        lake.root().display()
    );
    Ok(manifest)
}

pub async fn run(args: GenerateArgs) -> anyhow::Result<ExitCode> {
    let cfg = gen_config(&args);
    match &args.to {
        None => {
            let lake = args.lake.clone();
            tokio::task::spawn_blocking(move || {
                crate::lake_copy::with_lake(&lake, |root| generate_into(root, &cfg))
            })
            .await
            .context("generator panicked")??;
        }
        Some(url) => stream_to_server(url, &cfg, args.batch).await?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams generated events as NDJSON to a running server, `batch` events per request.
async fn stream_to_server(url: &str, cfg: &GenConfig, batch: usize) -> anyhow::Result<()> {
    let endpoint = format!("{}/v1/events", url.trim_end_matches('/'));
    let client = reqwest::Client::new();
    let bar = progress_bar(cfg.events);
    let mut body = Vec::new();
    let mut in_body = 0usize;
    let (tx, mut rx) = tokio::sync::mpsc::channel::<Vec<u8>>(4);
    let cfg2 = cfg.clone();
    let events = modelshare_gen::events(&cfg2)?;
    let producer = tokio::task::spawn_blocking(move || {
        for e in events {
            body.extend_from_slice(modelshare_gen::to_json(&e).as_bytes());
            body.push(b'\n');
            in_body += 1;
            if in_body == batch.max(1) {
                if tx.blocking_send(std::mem::take(&mut body)).is_err() {
                    return;
                }
                in_body = 0;
            }
        }
        if !body.is_empty() {
            let _ = tx.blocking_send(body);
        }
    });
    while let Some(chunk) = rx.recv().await {
        loop {
            let resp = client
                .post(&endpoint)
                .header("content-type", "application/x-ndjson")
                .body(chunk.clone())
                .send()
                .await
                .with_context(|| format!("cannot reach {endpoint}"))?;
            let status = resp.status();
            if status == reqwest::StatusCode::SERVICE_UNAVAILABLE {
                tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                continue;
            }
            let v: serde_json::Value = resp.json().await.context("server answer is not JSON")?;
            anyhow::ensure!(status.is_success(), "server answered {status}: {v}");
            bar.inc(v["accepted"].as_u64().unwrap_or(0) + v["rejected"].as_u64().unwrap_or(0));
            break;
        }
    }
    producer.await.context("generator panicked")?;
    bar.finish();
    Ok(())
}

/// Generated apps the demo shows by name.
const DEMO_SHOWN_APPS: [&str; 3] = ["app-000000", "app-000001", "app-000002"];

pub async fn demo(args: DemoArgs) -> anyhow::Result<ExitCode> {
    let manifest_path = args.data_dir.join("manifest.json");
    let manifest: Manifest = if manifest_path.exists() {
        let text = std::fs::read_to_string(&manifest_path)
            .with_context(|| format!("cannot read {}", manifest_path.display()))?;
        let m: Manifest = serde_json::from_str(&text)
            .with_context(|| format!("{} is not a demo manifest", manifest_path.display()))?;
        println!(
            "reusing the demo lake at {} (delete it to regenerate)",
            args.data_dir.display()
        );
        m
    } else {
        let has_events = std::fs::read_dir(args.data_dir.join("events"))
            .map(|mut d| d.next().is_some())
            .unwrap_or(false);
        anyhow::ensure!(
            !has_events,
            "{} already holds events that are not demo traffic; pass --data-dir to use another directory",
            args.data_dir.display()
        );
        let gen_args = GenerateArgs {
            lake: CommandLakeArgs::local(&args.data_dir),
            events: args.events,
            apps: GenConfig::default().apps,
            days: GenConfig::default().days,
            start: None,
            seed: args.seed,
            to: None,
            batch: 1000,
        };
        let cfg = gen_config(&gen_args);
        let dir = args.data_dir.clone();
        let manifest = tokio::task::spawn_blocking(move || generate_into(&dir, &cfg))
            .await
            .context("generator panicked")??;
        // A few generated apps agree to be shown, so /apps has something to show; a reused
        // lake keeps whatever consents it has.
        for (i, app) in DEMO_SHOWN_APPS.iter().enumerate() {
            modelshare_web::public_apps::publish(
                &args.data_dir,
                app,
                &format!("Example app {}", i + 1),
                None,
            )?;
        }
        manifest
    };
    let start: chrono::NaiveDate = manifest
        .config
        .start
        .parse()
        .with_context(|| format!("bad start date in {}", manifest_path.display()))?;
    let last_day = start + chrono::Days::new(u64::from(manifest.config.days.saturating_sub(1)));
    if args.no_serve {
        println!(
            "demo lake ready at {}; last day {last_day}",
            args.data_dir.display()
        );
        return Ok(ExitCode::SUCCESS);
    }
    let banner = move |addr: std::net::SocketAddr| {
        let base = format!("http://{addr}");
        println!("demo traffic ends {last_day}; open:");
        println!("  {base}/");
        println!("  {base}/index?date={last_day}");
        println!("  {base}/providers?date={last_day}");
        println!("  {base}/apps?date={last_day}");
        println!("  {base}/snapshots");
        println!("  {base}/v1/leaderboard?period=week&date={last_day}");
        println!("  {base}/v1/authors?period=week&date={last_day}");
        println!("  {base}/v1/tasks?period=week&date={last_day}");
        println!("  {base}/v1/share?granularity=week&to={last_day}&task=programming");
        println!("  {base}/v1/index?task=programming&date={last_day}");
        println!("  {base}/v1/retention?task=programming&date={last_day}");
        println!("  {base}/v1/shifts?date={last_day}");
        println!("  {base}/v1/apps?date={last_day}");
        println!("  {base}/v1/snapshots");
        println!("  {base}/metrics");
    };
    let serve = ServeArgs {
        lake: ServeLakeArgs::local(&args.data_dir),
        listen: args.listen,
        max_body_bytes: modelshare_web::DEFAULT_MAX_BODY_BYTES,
        ingest: IngestTuning {
            flush_rows: 1_000_000,
            flush_interval_secs: 60.0,
            max_buffered_rows: 4_000_000,
        },
        query: QueryTuning {
            min_apps: modelshare_query::DEFAULT_MIN_APPS,
            query_timeout_secs: 30,
            query_memory_mb: crate::config::DEFAULT_QUERY_MEMORY_MB,
            raw_reads: false,
        },
        rollup: RollupTuning {
            rollup_interval_secs: 60.0,
            rollup_grace_secs: 600,
        },
        compaction: crate::config::CompactionTuning::default(),
        snapshots: SnapshotTuning::default(),
        limits: crate::config::LimitArgs::default(),
        connections: crate::config::ConnectionArgs::default(),
        trust: crate::config::TrustArgs::default(),
        ballista: crate::config::BallistaArgs { ballista: None },
        dashboards: None,
    };
    crate::serve::run_with_banner(serve, banner).await
}
