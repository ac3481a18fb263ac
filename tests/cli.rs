//! The `modelshare ingest` and `modelshare query` commands on a real lake.
#![allow(clippy::unwrap_used)]

mod common;
use common::{BIN, event, ndjson, sql, with};
use serde_json::json;
use std::io::Write;
use std::process::{Command, Stdio};

#[test]
fn ingest_files_and_stdin_then_query() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.ndjson");
    // Sent again on stdin below, where it must count as a duplicate.
    let e1 = event(
        "e1",
        "2026-11-17T10:00:00Z",
        "app1",
        "openai/gpt-4o",
        10,
        5,
        0.001,
    );
    let mut body = ndjson(&[
        e1.clone(),
        with(
            event(
                "e2",
                "2026-11-17T11:00:00Z",
                "app1",
                "openai/gpt-4o",
                1,
                1,
                0.0,
            ),
            "task",
            json!("cooking"),
        ),
    ]);
    body.push_str("not json\n");
    std::fs::write(&file, body).unwrap();
    let lake = dir.path().join("lake");

    let out = Command::new(BIN)
        .args(["ingest", "--data-dir"])
        .arg(&lake)
        .arg(&file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "some lines were rejected");
    let stderr = String::from_utf8_lossy(&out.stderr);
    let name = file.display().to_string();
    assert!(
        stderr.contains(&format!("{name}:2: field `task`: unknown task \"cooking\"")),
        "{stderr}"
    );
    assert!(
        stderr.contains(&format!("{name}:3: not valid JSON")),
        "{stderr}"
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "stored 1 events, 0 duplicates skipped, 2 lines rejected"
    );

    // stdin, with one duplicate of the file's event.
    let mut child = Command::new(BIN)
        .args(["ingest", "--data-dir"])
        .arg(&lake)
        .arg("-")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(
            ndjson(&[
                e1,
                event(
                    "e3",
                    "2026-11-18T10:00:00Z",
                    "app2",
                    "anthropic/claude-3.5-haiku",
                    7,
                    3,
                    0.002,
                ),
            ])
            .as_bytes(),
        )
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "stored 1 events, 1 duplicates skipped, 0 lines rejected"
    );

    let rows = sql(
        &lake,
        "SELECT event_id, model, input_tokens + output_tokens AS tokens FROM events ORDER BY event_id",
    );
    assert_eq!(
        rows,
        vec![
            json!({"event_id": "e1", "model": "openai/gpt-4o", "tokens": 15}),
            json!({"event_id": "e3", "model": "anthropic/claude-3.5-haiku", "tokens": 10}),
        ]
    );
    let csv = Command::new(BIN)
        .args(["query", "--format", "csv", "--data-dir"])
        .arg(&lake)
        .arg("SELECT count(*) AS n FROM events")
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&csv.stdout), "n\n2\n");

    // Writes and bad SQL are refused with a message.
    for q in [
        "DROP TABLE events",
        "INSERT INTO events VALUES (1)",
        "SELECT nope FROM events",
        "COPY events TO '/tmp/x.csv'",
    ] {
        let out = Command::new(BIN)
            .args(["query", "--data-dir"])
            .arg(&lake)
            .arg(q)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{q}");
        assert!(
            String::from_utf8_lossy(&out.stderr).starts_with("error: "),
            "{q}"
        );
    }
    // A missing lake is a clear error.
    let out = Command::new(BIN)
        .args(["query", "--data-dir", "/nonexistent/lake", "SELECT 1"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&out.stderr).contains("no lake at /nonexistent/lake"));
}

/// The product binary's commands; benchmark programs live in `modelshare-bench`, not here.
#[test]
fn help_lists_the_product_commands_and_no_benchmarks() {
    let out = common::run_ok(["--help"]);
    let commands: Vec<&str> = out
        .lines()
        .skip_while(|l| !l.starts_with("Commands:"))
        .skip(1)
        .take_while(|l| l.starts_with("  "))
        .filter_map(|l| l.split_whitespace().next())
        .collect();
    assert_eq!(
        commands,
        [
            "serve", "demo", "ingest", "query", "generate", "rollup", "export", "keys", "apps",
            "wal", "cluster", "help"
        ],
        "{out}"
    );
}
