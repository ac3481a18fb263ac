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
