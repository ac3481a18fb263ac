//! `modelshare-bench cluster`: the same raw-event queries run by `modelshare query` on one node
//! and with `--ballista` on a cluster of a scheduler and executors started here (`modelshare
//! cluster …`), each run a new client process, next to DuckDB on the same files. The answers
//! must agree; on one machine the cluster's members share its cores, which the figures say.

use crate::args::BenchClusterArgs;
use crate::bench::{machine, ms, peak_rss, python_json, report, server_binary};
use anyhow::Context;
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// A cluster member, stopped (SIGTERM) when dropped.
struct Member(Child);

impl Drop for Member {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn spawn(exe: &Path, args: &[&str]) -> anyhow::Result<(Member, String)> {
    let mut child = Command::new(exe)
        .arg("cluster")
        .args(args)
        .env("MODELSHARE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("cannot start a cluster member")?;
    let stdout = child.stdout.take().context("no stdout")?;
    let mut banner = String::new();
    BufReader::new(stdout).read_line(&mut banner)?;
    anyhow::ensure!(
        banner.starts_with("modelshare cluster"),
        "`modelshare cluster {}` did not start (is the binary built with --features ballista?)",
        args.join(" ")
    );
    Ok((Member(child), banner))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind(("127.0.0.1", 0))?
        .local_addr()?
        .port())
}

/// Runs `modelshare query --format json` (with `--ballista URL` when given) and times it.
fn timed_query(
    exe: &Path,
    lake: &str,
    ballista: Option<&str>,
    sql: &str,
) -> anyhow::Result<(Duration, serde_json::Value)> {
    let mut command = Command::new(exe);
    command.args(["query", "--format", "json", "--data-dir", lake]);
    if let Some(url) = ballista {
        command.args(["--ballista", url]);
    }
    let started = Instant::now();
    let out = command
        .arg(sql)
        .env("MODELSHARE_LOG", "warn")
        .output()
        .context("cannot run modelshare query")?;
    let took = started.elapsed();
    anyhow::ensure!(
        out.status.success(),
        "query failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    Ok((took, serde_json::from_slice(&out.stdout)?))
}

fn median(mut v: Vec<Duration>) -> f64 {
    v.sort();
    ms(v[v.len() / 2])
}

/// The queries: a week's leaderboard, the whole lake by task and model, distinct apps per
/// model over the whole lake (a shuffle of app ids). Integer sums only, so the engines' answers
/// can be compared exactly.
fn queries(first: &str, last: &str) -> Vec<(&'static str, String)> {
    let last_day = chrono::NaiveDate::parse_from_str(last, "%Y-%m-%d").unwrap_or_default();
    let week_start = (last_day - chrono::Days::new(6)).to_string();
    vec![
        (
            "last week by model",
            format!(
                "SELECT model, sum(CAST(input_tokens AS BIGINT) + CAST(output_tokens AS BIGINT)) AS tokens, \
                 count(*) AS requests, count(DISTINCT app_id) AS apps FROM events \
                 WHERE status = 'ok' AND date >= '{week_start}' AND date <= '{last}' \
                 GROUP BY model ORDER BY tokens DESC, model LIMIT 20"
            ),
        ),
        (
            "whole lake by task and model",
            format!(
                "SELECT task, model, count(*) AS requests, sum(CAST(output_tokens AS BIGINT)) AS output \
                 FROM events WHERE date >= '{first}' GROUP BY task, model \
                 ORDER BY requests DESC, task, model LIMIT 20"
            ),
        ),
        (
            "whole lake distinct apps by model",
            "SELECT model, count(DISTINCT app_id) AS apps FROM events GROUP BY model \
             ORDER BY apps DESC, model LIMIT 20"
                .to_owned(),
        ),
    ]
}

fn duckdb_ms(python: &str, lake: &Path, sql: &str) -> anyhow::Result<(f64, String)> {
    let glob = format!(
        "{}/events/*/*.parquet",
        std::path::absolute(lake)?.display()
    );
    let sql = sql.replace(
        "FROM events",
        &format!("FROM read_parquet('{glob}', hive_partitioning = true)"),
    );
    let script = format!(
        r#"
import duckdb, json, time
t = time.perf_counter(); con = duckdb.connect(); rows = con.execute({sql:?}).fetchall(); took = time.perf_counter() - t
print(json.dumps({{"ms": took * 1e3, "version": duckdb.__version__, "first": str(rows[0]) if rows else ""}}))
"#
    );
    let v = python_json(python, &script)?;
    Ok((
        v["ms"].as_f64().unwrap_or(f64::NAN),
        v["version"].as_str().unwrap_or("?").to_owned(),
    ))
}

pub(crate) fn run(args: BenchClusterArgs) -> anyhow::Result<ExitCode> {
    let exe = server_binary(args.server_bin.clone())?;
    let runs = args.runs.max(1);
    // The lake's days, from one node.
    let (_, span) = timed_query(
        &exe,
        &args.lake,
        None,
        "SELECT min(date) AS first, max(date) AS last, count(*) AS events FROM events",
    )?;
    let first = span[0]["first"].as_str().context("empty lake")?.to_owned();
    let last = span[0]["last"].as_str().context("empty lake")?.to_owned();
    let events = span[0]["events"].as_u64().unwrap_or(0);

    let (scheduler, banner) = spawn(
        &exe,
        &[
            "scheduler",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &args.lake,
        ],
    )?;
    let url = banner
        .split_whitespace()
        .find(|w| w.starts_with("df://"))
        .context("the scheduler printed no address")?
        .to_owned();
    let mut executors = Vec::new();
    for _ in 0..args.executors.max(1) {
        let listen = format!("127.0.0.1:{}", free_port()?);
        let slots = args.slots.to_string();
        let (member, _) = spawn(
            &exe,
            &[
                "executor",
                "--scheduler",
                &url,
                "--listen",
                &listen,
                "--slots",
                &slots,
                "--data-dir",
                &args.lake,
            ],
        )?;
        executors.push(member);
    }

    let mut lines = vec![
        format!("bench cluster on {}", machine()),
        format!(
            "lake {}: {events} events, {first}..{last}; cluster: 1 scheduler, {} executors x {} slots (all on this machine); each run a new `modelshare query` process, median of {runs}",
            args.lake,
            executors.len(),
            args.slots
        ),
    ];
    let local_lake = (!args.lake.contains("://")).then(|| Path::new(&args.lake));
    for (name, sql) in queries(&first, &last) {
        let (mut one, mut on_cluster) = (Vec::new(), Vec::new());
        let mut answers = Vec::new();
        // Alternating, so neither engine always runs on the files the other has just read.
        for _ in 0..runs {
            let (t, a) = timed_query(&exe, &args.lake, None, &sql)?;
            one.push(t);
            answers.push(a);
            let (t, b) = timed_query(&exe, &args.lake, Some(&url), &sql)?;
            on_cluster.push(t);
            answers.push(b);
        }
        let agree = answers.windows(2).all(|w| w[0] == w[1]);
        let mut line = format!(
            "{name}: one node {:.0} ms, Ballista {:.0} ms (first run {:.0} ms); answers {}",
            median(one),
            median(on_cluster.clone()),
            ms(on_cluster[0]),
            if agree { "identical" } else { "DIFFER" }
        );
        if let Some(dir) = local_lake {
            match duckdb_ms(&args.python, dir, &sql) {
                Ok((t, version)) => line.push_str(&format!("; DuckDB {version} {t:.0} ms")),
                Err(e) => line.push_str(&format!("; DuckDB not run ({e:#})")),
            }
        }
        lines.push(line);
        anyhow::ensure!(
            agree,
            "{name}: the cluster's answer differs from one node's"
        );
    }
    let rss: Vec<String> = executors
        .iter()
        .map(|m| peak_rss(m.0.id()).map_or("?".into(), |b| format!("{} MiB", b >> 20)))
        .collect();
    lines.push(format!(
        "peak RSS: scheduler {}, executors {}",
        peak_rss(scheduler.0.id()).map_or("?".into(), |b| format!("{} MiB", b >> 20)),
        rss.join(", ")
    ));
    drop(executors);
    drop(scheduler);
    report(&args.out, &lines)?;
    Ok(ExitCode::SUCCESS)
}
