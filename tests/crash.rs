//! Durability: a server killed with SIGKILL mid-stream loses no acknowledged event and, after
//! restart and client retries, holds every event exactly once.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Server, event, ndjson, sql};
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

const CLIENTS: usize = 4;
const BATCHES_PER_CLIENT: usize = 400;
const BATCH: usize = 50;

fn batch(client: usize, n: usize) -> (Vec<String>, String) {
    let ids: Vec<String> = (0..BATCH).map(|i| format!("c{client}-b{n}-e{i}")).collect();
    let events: Vec<_> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let ts = format!("2026-11-{:02}T{:02}:00:00Z", 10 + (n % 10), i % 24);
            event(
                id,
                &ts,
                &format!("app-{client}"),
                "meta/llama-3.1-8b",
                10,
                5,
                0.000001,
            )
        })
        .collect();
    (ids, ndjson(&events))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_stream_loses_no_acknowledged_event() {
    let dir = tempfile::tempdir().unwrap();
    // Small flushes so the kill lands between WAL, Parquet publication and WAL truncation.
    let flags = ["--flush-rows", "700", "--flush-interval-secs", "0.2"];
    let server = Server::start(dir.path(), &flags);
    let acked: Arc<Mutex<HashSet<String>>> = Arc::default();
    let url = server.url.clone();
    let mut clients = Vec::new();
    for c in 0..CLIENTS {
        let acked = Arc::clone(&acked);
        let url = url.clone();
        clients.push(tokio::spawn(async move {
            let http = reqwest::Client::new();
            for n in 0..BATCHES_PER_CLIENT {
                let (ids, body) = batch(c, n);
                let sent = http
                    .post(format!("{url}/v1/events"))
                    .header("content-type", "application/x-ndjson")
                    .body(body)
                    .send()
                    .await;
                let Ok(resp) = sent else { return };
                if resp.status().as_u16() == 200 {
                    let v: serde_json::Value = match resp.json().await {
                        Ok(v) => v,
                        Err(_) => return,
                    };
                    assert_eq!(v["accepted"], BATCH as u64);
                    acked.lock().unwrap().extend(ids);
                }
            }
        }));
    }
    // Let a good part of the stream through, then pull the plug.
    loop {
        tokio::time::sleep(Duration::from_millis(20)).await;
        if acked.lock().unwrap().len() >= 20_000 {
            break;
        }
    }
    server.kill();
    for c in clients {
        c.await.unwrap();
    }
    let acked = acked.lock().unwrap().clone();
    let total = CLIENTS * BATCHES_PER_CLIENT * BATCH;
    assert!(
        acked.len() >= 20_000 && acked.len() < total,
        "acked {}",
        acked.len()
    );

    // Restart: every acknowledged event is there.
    let server = Server::start(dir.path(), &flags);
    server.stop();
    let present: HashSet<String> = sql(dir.path(), "SELECT event_id FROM events")
        .into_iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    let lost: Vec<&String> = acked.difference(&present).take(5).collect();
    assert!(lost.is_empty(), "acknowledged events lost: {lost:?}");
    let counts = sql(
        dir.path(),
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events",
    );
    assert_eq!(counts[0]["n"], counts[0]["d"], "an event is stored twice");

    // Clients retry everything; the lake ends with each event exactly once.
    let server = Server::start(dir.path(), &flags);
    let mut duplicates = 0u64;
    for c in 0..CLIENTS {
        for n in 0..BATCHES_PER_CLIENT {
            let (_, body) = batch(c, n);
            let (status, r) = server.post("application/x-ndjson", body).await;
            assert_eq!(status, 200, "{r}");
            duplicates += r["duplicates"].as_u64().unwrap();
        }
    }
    server.stop();
    assert!(duplicates >= acked.len() as u64);
    let counts = sql(
        dir.path(),
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events",
    );
    assert_eq!(counts[0]["n"], total as u64);
    assert_eq!(counts[0]["d"], total as u64);
}

/// The moment a flush has published its events files but not yet its id run (nor deleted its
/// WAL segments), made by hand: the WAL of before the flush is put back and the run removed.
/// The restart must not store the replayed rows a second time, and the ids stay duplicates for
/// later retries and for the start after that.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flush_cut_before_its_id_run_counts_each_event_once() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path();
    // Rows stay in the WAL until the server stops.
    let flags = ["--flush-rows", "1000000", "--flush-interval-secs", "3600"];
    let server = Server::start(lake, &flags);
    let (_, body) = batch(0, 0);
    let (status, r) = server.post("application/x-ndjson", body.clone()).await;
    assert_eq!(
        (status, r["accepted"].as_u64()),
        (200, Some(BATCH as u64)),
        "{r}"
    );
    server.kill();
    let wal = lake.join("wal");
    let saved = tempfile::tempdir().unwrap();
    let segments = common::files_in(&wal, ".wal");
    assert!(!segments.is_empty());
    for s in &segments {
        std::fs::copy(s, saved.path().join(s.file_name().unwrap())).unwrap();
    }

    // A clean start and stop flushes the rows: events files, their id run, no WAL rows left.
    Server::start(lake, &flags).stop();
    let runs = common::files_in(&lake.join("ids"), ".ids");
    assert!(!runs.is_empty(), "the flush wrote no id run");
    for r in &runs {
        std::fs::remove_file(r).unwrap();
    }
    for s in common::files_in(&wal, ".wal") {
        std::fs::remove_file(s).unwrap();
    }
    for s in common::files_in(saved.path(), ".wal") {
        std::fs::copy(&s, wal.join(s.file_name().unwrap())).unwrap();
    }

    let once = |what: &str, expected: u64| {
        let counts = sql(
            lake,
            "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events",
        );
        assert_eq!(counts[0]["n"], expected, "{what}: {counts:?}");
        assert_eq!(counts[0]["d"], expected, "{what}: {counts:?}");
    };
    // The restart replays nothing new; its stop leaves the ids in a run and the WAL empty.
    Server::start(lake, &flags).stop();
    once("after the restart", BATCH as u64);
    assert!(common::files_in(&wal, ".wal").is_empty());
    let server = Server::start(lake, &flags);
    let (status, r) = server.post("application/x-ndjson", body.clone()).await;
    assert_eq!(
        (status, r["duplicates"].as_u64()),
        (200, Some(BATCH as u64)),
        "{r}"
    );
    let (_, other) = batch(1, 0);
    assert_eq!(server.post("application/x-ndjson", other).await.0, 200);
    server.stop();
    once("after retries and new rows", 2 * BATCH as u64);
    // Each flush of the day has its own tag: WAL numbering goes on across restarts, so a tag
    // still in the WAL can only be a flush cut short.
    let mut tags: Vec<String> = common::files_in(&lake.join("events/date=2026-11-10"), ".parquet")
        .iter()
        .map(|f| f.file_name().unwrap().to_string_lossy()[..17].to_owned())
        .collect();
    let flushes = tags.len();
    tags.dedup();
    assert_eq!((flushes, tags.len()), (2, 2), "{tags:?}");
}
