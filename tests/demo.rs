//! `modelshare demo` on a small generated lake: it generates once, serves, and the API's
//! figures agree exactly with SQL over the same Parquet files that applies the publication rule.
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

mod common;
use common::{BIN, sql};
use serde_json::Value;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

fn start_demo(dir: &std::path::Path) -> (std::process::Child, String, String, Vec<String>) {
    let mut child = Command::new(BIN)
        .args([
            "demo",
            "--events",
            "150000",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
        ])
        .arg(dir)
        .env("MODELSHARE_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let mut seen = Vec::new();
    let mut last_day = String::new();
    loop {
        let line = lines.next().expect("demo ended early").unwrap();
        if let Some(rest) = line.strip_prefix("demo traffic ends ") {
            last_day = rest.split(';').next().unwrap().to_owned();
        }
        seen.push(line.clone());
        if line.contains("listening on") {
            let url = line
                .split_whitespace()
                .find(|w| w.starts_with("http://"))
                .unwrap()
                .to_owned();
            return (child, url, last_day, seen);
        }
    }
}

/// Requests, tokens and distinct apps of the successful requests of `[start, end)` in base cells
/// (day, task, model, provider) of at least 5 apps (the demo's threshold), written out here
/// independently of the server's SQL: a join with the cells instead of its window.
fn published_truth(dir: &std::path::Path, start: &str, end: &str, and: &str) -> Vec<Value> {
    // The publication rule's groups, written out from the raw events: (day, task, model,
    // provider, context segment, first choice or fallback, position in an agent trace).
    let grouped = format!(
        "SELECT *, \
           CASE WHEN input_tokens >= 131072 THEN 3 WHEN input_tokens >= 32768 THEN 2 \
             WHEN input_tokens >= 8192 THEN 1 ELSE 0 END AS g_context, \
           attempt > 0 AS g_fallback, \
           CASE WHEN step > 0 THEN 2 WHEN step = 0 THEN 1 ELSE 0 END AS g_position \
         FROM events WHERE status = 'ok' AND date >= '{start}' AND date < '{end}'"
    );
    sql(
        dir,
        &format!(
            "SELECT count(*) AS requests, \
             sum(CAST(e.input_tokens AS BIGINT) + e.output_tokens) AS tokens, \
             count(DISTINCT e.app_id) AS apps \
             FROM ({grouped}) e JOIN (\
               SELECT date, task, model, provider, g_context, g_fallback, g_position \
               FROM ({grouped}) \
               GROUP BY 1, 2, 3, 4, 5, 6, 7 HAVING count(DISTINCT app_id) >= 5) c \
             ON e.date = c.date AND e.task = c.task AND e.model = c.model \
               AND e.provider = c.provider AND e.g_context = c.g_context \
               AND e.g_fallback = c.g_fallback AND e.g_position = c.g_position \
             WHERE true {and}"
        ),
    )
}

#[tokio::test]
async fn demo_serves_a_generated_lake_that_matches_sql() {
    let dir = tempfile::tempdir().unwrap();
    let (mut child, url, last_day, lines) = start_demo(dir.path());
    assert!(!last_day.is_empty(), "{lines:?}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains(&format!("/v1/leaderboard?period=week&date={last_day}")))
    );
    let lb: Value = reqwest::get(format!(
        "{url}/v1/leaderboard?period=week&date={last_day}&limit=1000"
    ))
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    let start = lb["period"]["start"].as_str().unwrap();
    let end = lb["period"]["end"].as_str().unwrap();
    let models = lb["models"].as_array().unwrap();
    assert!(models.len() >= 10, "{lb}");
    let share_sum: f64 = models.iter().map(|m| m["share"].as_f64().unwrap()).sum();
    assert!((share_sum - 1.0).abs() < 1e-9, "{share_sum}");

    let truth = published_truth(dir.path(), start, end, "");
    assert_eq!(lb["totals"]["requests"], truth[0]["requests"]);
    assert_eq!(lb["totals"]["tokens"], truth[0]["tokens"]);
    assert_eq!(lb["totals"]["apps"], truth[0]["apps"]);
    let top = models[0]["model"].as_str().unwrap();
    let top_truth = published_truth(dir.path(), start, end, &format!("AND e.model = '{top}'"));
    assert_eq!(models[0]["requests"], top_truth[0]["requests"]);
    assert_eq!(models[0]["apps"], top_truth[0]["apps"]);
    // The demo shows three generated apps by name (those with counted traffic in the week).
    let apps: Value = reqwest::get(format!("{url}/v1/apps?period=week&date={last_day}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let names: Vec<&str> = apps["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["name"].as_str().unwrap())
        .collect();
    assert!(!names.is_empty(), "{apps}");
    assert!(
        names.iter().all(|n| n.starts_with("Example app ")),
        "{names:?}"
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());

    // A second run reuses the lake instead of generating again.
    let (mut child, _, _, lines) = start_demo(dir.path());
    assert!(
        lines.iter().any(|l| l.starts_with("reusing the demo lake")),
        "{lines:?}"
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

#[tokio::test]
async fn generate_streams_ndjson_to_a_server() {
    let dir = tempfile::tempdir().unwrap();
    let server = common::Server::start(&dir.path().join("lake"), &[]);
    let out = Command::new(BIN)
        .args([
            "generate", "--events", "5000", "--apps", "200", "--days", "7", "--batch", "700",
            "--to",
        ])
        .arg(&server.url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (_, metrics) = server.get("/metrics").await;
    let metrics = metrics.as_str().unwrap();
    assert!(
        metrics.contains("modelshare_events_accepted_total 5000\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("modelshare_events_rejected_total 0\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("modelshare_ingest_requests_total 8\n"),
        "{metrics}"
    );
}
