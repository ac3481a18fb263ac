//! Agent steps: events that name their `trace_id` and `step`. `GET /v1/agents` with exact
//! figures on hand-made traces and the publication rule; bad agent fields refused per event; a
//! lake written before the fields existed still read (the columns as null), extended and
//! compacted with traced events.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, event};
use serde_json::{Value, json};
use std::path::Path;

const MON: &str = "2026-11-02";
const REASON: &str = "openai/o3";
const EXTRACT: &str = "openai/gpt-4o-mini";
const THIRD: &str = "anthropic/claude-haiku-4.5";
const FLASH: &str = "google/gemini-2.5-flash";

fn call(id: &str, app: &str, model: &str, trace: Option<(&str, u64)>) -> Value {
    let e = event(id, &format!("{MON}T10:00:00Z"), app, model, 100, 10, 0.01);
    match trace {
        Some((t, step)) => common::with(common::with(e, "trace_id", json!(t)), "step", json!(step)),
        None => e,
    }
}

/// a1's traces: t1 = o3 then mini ×3 then haiku (5 calls), t2 = o3, mini (2), t3 = o3 (1),
/// t4 = gemini ×2 (2). a2's: u1 = o3 then mini ×5 (6), u2 = o3 (1), u3 = gemini (1). a3 and a4
/// call o3 and mini without a trace.
fn events() -> Vec<Value> {
    let mut out = Vec::new();
    let mut trace = |app: &str, name: &str, models: &[&str]| {
        for (step, model) in models.iter().enumerate() {
            out.push(call(
                &format!("{name}-{step}"),
                app,
                model,
                Some((name, step as u64)),
            ));
        }
    };
    trace("a1", "t1", &[REASON, EXTRACT, EXTRACT, EXTRACT, THIRD]);
    trace("a1", "t2", &[REASON, EXTRACT]);
    trace("a1", "t3", &[REASON]);
    trace("a1", "t4", &[FLASH, FLASH]);
    trace(
        "a2",
        "u1",
        &[REASON, EXTRACT, EXTRACT, EXTRACT, EXTRACT, EXTRACT],
    );
    trace("a2", "u2", &[REASON]);
    trace("a2", "u3", &[FLASH]);
    for app in ["a3", "a4"] {
        out.push(call(&format!("{app}-r"), app, REASON, None));
        out.push(call(&format!("{app}-x"), app, EXTRACT, None));
    }
    out
}

/// By hand, at two apps. Positions are groups of the rule: o3's first calls (a1, a2) are 5;
/// mini's later calls (a1, a2) are 9; haiku's later call has one app (withheld); gemini's first
/// calls (a1, a2) are 2, its later call (a1 alone) is withheld. Trace figures count the same 16
/// calls: t1 4 (haiku withheld), t2 2, t3 1, t4 1 (its later call withheld), u1 6, u2 1, u3 1;
/// sorted 1 1 1 1 2 4 6, p50 the 4th = 1, p95 the 7th = 6; the apps' longest are 4 and 6, so the
/// maximum two apps reached is 4; 12 of 16 calls are in traces of more than one call.
fn monday_answer() -> Value {
    json!({
        "traces": 7, "traced_calls": 16,
        "calls_per_trace": { "p50": 1, "p95": 6, "max": 4 },
        "multi_call_share": 12.0 / 16.0,
        "first_calls": [
            { "model": REASON, "calls": 5, "share": 5.0 / 7.0 },
            { "model": FLASH, "calls": 2, "share": 2.0 / 7.0 },
        ],
        "later_calls": [{ "model": EXTRACT, "calls": 9, "share": 1.0 }],
    })
}

fn without_period(mut v: Value) -> Value {
    let o = v.as_object_mut().unwrap();
    o.remove("period");
    o.remove("task");
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_figures_are_exact_and_follow_the_rule() {
    let dir = tempfile::tempdir().unwrap();
    common::ingest(dir.path(), &events());
    let server = Server::start(dir.path(), &["--min-apps", "2"]);
    let day = format!("/v1/agents?period=day&date={MON}");
    let answer = server.get_ok(&day).await;
    assert_eq!(answer["period"]["start"], MON);
    assert_eq!(without_period(answer), monday_answer());
    // The same over the week, and nothing in another task.
    let week = server
        .get_ok(&format!("/v1/agents?period=week&date={MON}"))
        .await;
    assert_eq!(without_period(week), monday_answer());
    let other = server
        .get_ok(&format!("/v1/agents?period=day&date={MON}&task=legal"))
        .await;
    assert_eq!(other["traces"], Value::Null);
    assert_eq!(other["first_calls"], json!([]));
    // The /agents page shows the same.
    let (status, html) = server
        .get_text(&format!("/agents?period=day&date={MON}"))
        .await;
    assert_eq!(status, 200);
    let tables = common::html_tables(&html);
    let rows = |panel: &str| {
        tables
            .iter()
            .find(|(id, _, _)| id == panel)
            .unwrap_or_else(|| panic!("no table {panel}"))
            .2
            .clone()
    };
    let values: Vec<String> = rows("traces").into_iter().map(|r| r[1].clone()).collect();
    assert_eq!(values, ["7", "16", "1", "6", "4", "75.0%"]);
    assert_eq!(
        rows("models"),
        [
            ["first", REASON, "5", "0.7142857142857143"].map(String::from),
            ["first", FLASH, "2", "0.2857142857142857"].map(String::from),
            ["later", EXTRACT, "9", "1"].map(String::from)
        ]
    );
    // A `top` of 0 is refused.
    let (status, answer) = server
        .get(&format!("/v1/agents?period=day&date={MON}&top=0"))
        .await;
    assert_eq!(status, 400, "{answer}");
    assert!(answer["error"]["message"].as_str().unwrap().contains("top"));
    server.stop();

    // At three apps: the traces come from two apps, and no part of a split has three.
    let strict = Server::start(dir.path(), &["--min-apps", "3"]);
    let answer = strict.get_ok(&day).await;
    assert_eq!(
        without_period(answer),
        json!({
            "traces": null, "traced_calls": null, "calls_per_trace": null,
            "multi_call_share": null, "first_calls": [], "later_calls": [],
        })
    );
    strict.stop();
}

#[tokio::test]
async fn bad_agent_fields_are_refused_per_event() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let good = call("ok-1", "a1", REASON, Some(("t", 0)));
    let long = common::with(
        call("bad-1", "a1", REASON, None),
        "trace_id",
        json!("t".repeat(129)),
    );
    let negative = call("bad-2", "a1", REASON, Some(("t", 0)));
    let negative = common::with(negative, "step", json!(-1));
    let orphan = common::with(call("bad-3", "a1", REASON, None), "step", json!(2));
    let empty = common::with(call("bad-4", "a1", REASON, None), "trace_id", json!(""));
    let text = common::with(
        call("bad-5", "a1", REASON, Some(("t", 0))),
        "step",
        json!("two"),
    );
    let (status, answer) = server
        .ndjson(&[good, long, negative, orphan, empty, text])
        .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["accepted"], 1);
    let messages: Vec<(u64, String)> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| {
            (
                e["index"].as_u64().unwrap(),
                e["message"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expect = [
        (1, "trace_id`: is 129 bytes long; at most 128 accepted"),
        (2, "step`: -1 is outside 0..=4294967295"),
        (3, "step`: needs trace_id"),
        (4, "trace_id`: must not be empty"),
        (5, "step"),
    ];
    assert_eq!(messages.len(), expect.len(), "{messages:?}");
    for ((index, message), (want_index, needle)) in messages.iter().zip(expect) {
        assert_eq!(*index, want_index);
        assert!(message.contains(needle), "{index}: {message}");
    }
    server.stop();
}

/// Rewrites every events file under `lake` without the agent columns, as a writer from before
/// them would have left it.
fn strip_agent_columns(lake: &Path) -> usize {
    use parquet::arrow::ArrowWriter;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let mut files = 0;
    for day in common::files_in(&lake.join("events"), "") {
        for path in common::files_in(&day, ".parquet") {
            let reader =
                ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&path).unwrap())
                    .unwrap()
                    .build()
                    .unwrap();
            let batches: Vec<_> = reader
                .map(|b| {
                    let b = b.unwrap();
                    let keep: Vec<usize> = (0..b.num_columns())
                        .filter(|&i| {
                            !["trace_id", "step"].contains(&b.schema().field(i).name().as_str())
                        })
                        .collect();
                    b.project(&keep).unwrap()
                })
                .collect();
            let mut w = ArrowWriter::try_new(
                std::fs::File::create(&path).unwrap(),
                batches[0].schema(),
                None,
            )
            .unwrap();
            for b in &batches {
                w.write(b).unwrap();
            }
            w.close().unwrap();
            files += 1;
        }
    }
    files
}

fn columns_of(path: &Path) -> Vec<String> {
    let b = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        std::fs::File::open(path).unwrap(),
    )
    .unwrap();
    b.schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lake_from_before_the_agent_fields_is_read_extended_and_compacted() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    // The untraced half of the events, in files without the agent columns.
    let (traced, untraced): (Vec<Value>, Vec<Value>) = events()
        .into_iter()
        .partition(|e| e.get("trace_id").is_some());
    common::ingest(lake, &untraced);
    assert!(strip_agent_columns(lake) > 0);
    let day_dir = lake.join("events").join(format!("date={MON}"));
    let old = common::files_in(&day_dir, ".parquet");
    assert!(!columns_of(&old[0]).contains(&"trace_id".to_owned()));

    let server = Server::start(lake, &["--min-apps", "2", "--compact-interval-secs", "0"]);
    let lb = server
        .get_ok(&format!("/v1/leaderboard?period=day&date={MON}"))
        .await;
    assert_eq!(lb["totals"]["requests"], 4, "{lb}");
    let agents = server
        .get_ok(&format!("/v1/agents?period=day&date={MON}"))
        .await;
    assert_eq!(agents["traces"], Value::Null);
    // The traced half arrives through the API and is flushed beside the old files.
    let (status, answer) = server.ndjson(&traced).await;
    assert_eq!(status, 200, "{answer}");
    server.stop();
    assert!(common::files_in(&day_dir, ".parquet").len() > old.len());

    let server = Server::start(
        lake,
        &[
            "--min-apps",
            "2",
            "--compact-interval-secs",
            "0.2",
            "--compact-grace-secs",
            "0",
        ],
    );
    let day = format!("/v1/agents?period=day&date={MON}");
    assert_eq!(without_period(server.get_ok(&day).await), monday_answer());
    // Compaction folds old and new files into one with the agent columns.
    common::wait_until(async || common::files_in(&day_dir, ".parquet").len() == 1).await;
    let merged = &common::files_in(&day_dir, ".parquet")[0];
    let columns = columns_of(merged);
    assert_eq!(columns[columns.len() - 2..], ["trace_id", "step"]);
    server.stop();
    let server = Server::start(lake, &["--min-apps", "2"]);
    assert_eq!(without_period(server.get_ok(&day).await), monday_answer());
    server.stop();
}
