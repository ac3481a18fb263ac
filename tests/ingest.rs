//! `POST /v1/events` through the real server: per-event validation, every body format and
//! encoding, limits, retries, backpressure, visibility before flush, graceful shutdown.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Server, event, files_in, ndjson, sql, wait_until, with};
use serde_json::{Value, json};
use std::io::Write;

fn good(id: &str) -> Value {
    event(
        id,
        "2026-11-17T10:00:00Z",
        "app-1",
        "openai/gpt-4o",
        100,
        50,
        0.00125,
    )
}

#[tokio::test]
async fn bad_events_are_reported_and_good_ones_stored() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--min-apps", "1"]);
    let mut body = Vec::new();
    body.extend_from_slice(format!("{}\n", good("g1")).as_bytes()); // 0
    body.extend_from_slice(b"{\"event_id\": \"broken\", \n"); // 1: malformed JSON line
    body.extend_from_slice(
        format!("{}\n", with(good("x2"), "input_tokens", json!("lots"))).as_bytes(),
    ); // 2
    body.extend_from_slice(
        format!("{}\n", with(good("x3"), "output_tokens", json!(-4))).as_bytes(),
    ); // 3
    body.extend_from_slice(b"\n   \n"); // blank lines are not events
    body.extend_from_slice(b"{\"event_id\": \"\xff\xfe\", \"ts\": 1}\n"); // 4: invalid UTF-8
    body.extend_from_slice(
        format!(
            "{}\n",
            with(good("x5"), "ts", json!("2099-01-01T00:00:00Z"))
        )
        .as_bytes(),
    ); // 5
    let mut missing = good("x6");
    missing.as_object_mut().unwrap().remove("app_id");
    body.extend_from_slice(format!("{missing}\n").as_bytes()); // 6
    body.extend_from_slice(format!("{}", good("g2")).as_bytes()); // 7, no trailing newline
    let (status, r) = s.post("application/x-ndjson", body).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["accepted"], 2);
    assert_eq!(r["rejected"], 6);
    assert_eq!(r["duplicates"], 0);
    let errors = r["errors"].as_array().unwrap();
    let indexes: Vec<u64> = errors
        .iter()
        .map(|e| e["index"].as_u64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 2, 3, 4, 5, 6]);
    assert!(
        errors[0]["message"]
            .as_str()
            .unwrap()
            .starts_with("not valid JSON")
    );
    assert_eq!(
        errors[1]["message"],
        "field `input_tokens`: invalid type: string \"lots\", expected i64"
    );
    assert_eq!(
        errors[2]["message"],
        "field `output_tokens`: -4 is outside 0..=4294967295"
    );
    assert!(
        errors[3]["message"].as_str().unwrap().contains("UTF-8")
            || errors[3]["message"].as_str().unwrap().contains("unicode"),
        "{}",
        errors[3]
    );
    assert_eq!(
        errors[4]["message"],
        "field `ts`: 2099-01-01T00:00:00+00:00 is more than a day in the future"
    );
    assert_eq!(errors[5]["message"], "missing required field `app_id`");

    // Acknowledged events are queryable at once, before any flush.
    let (_, lb) = s.get("/v1/leaderboard?date=2026-11-17").await;
    assert_eq!(lb["totals"]["requests"], 2);
    assert_eq!(lb["totals"]["tokens"], 300);
    assert_eq!(lb["totals"]["cost_usd"], 0.0025);
}

#[tokio::test]
async fn json_bodies_and_compression() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--min-apps", "1"]);
    let (status, r) = s.post("application/json", good("single").to_string()).await;
    assert_eq!((status, r["accepted"].clone()), (200, json!(1)), "{r}");

    let arr = json!([good("arr1"), {"event_id": "bad"}, good("arr2")]);
    let (status, r) = s
        .post("application/json; charset=utf-8", arr.to_string())
        .await;
    assert_eq!(status, 200);
    assert_eq!(r["accepted"], 2);
    assert_eq!(
        r["errors"],
        json!([{"index": 1, "message": "missing required field `ts`"}])
    );

    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(ndjson(&[good("gz1"), good("gz2")]).as_bytes())
        .unwrap();
    let (status, r) = s
        .post_with(
            "application/x-ndjson",
            &[("content-encoding", "gzip")],
            gz.finish().unwrap(),
        )
        .await;
    assert_eq!((status, r["accepted"].clone()), (200, json!(2)), "{r}");

    let z = zstd::encode_all(
        ndjson(&[good("zs1"), good("zs2"), good("zs3")]).as_bytes(),
        3,
    )
    .unwrap();
    let (status, r) = s
        .post_with("application/x-ndjson", &[("content-encoding", "zstd")], z)
        .await;
    assert_eq!((status, r["accepted"].clone()), (200, json!(3)), "{r}");

    let (_, lb) = s.get("/v1/leaderboard?date=2026-11-17").await;
    assert_eq!(lb["totals"]["requests"], 8);
}

#[tokio::test]
async fn unreadable_bodies_are_refused_whole() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--max-body-bytes", "4096"]);
    // (content type, headers, body, expected status, expected error code)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, Vec<u8>, u16, &'a str);
    let cases: Vec<Case> = vec![
        (
            "text/plain",
            vec![],
            good("a").to_string().into_bytes(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/xml",
            vec![],
            b"<e/>".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/json",
            vec![],
            b"[{\"event_id\": 1},".to_vec(),
            400,
            "bad_request",
        ),
        (
            "application/json",
            vec![],
            b"\"just a string\"".to_vec(),
            400,
            "bad_request",
        ),
        (
            "application/json",
            vec![],
            b"{\"truncated\": ".to_vec(),
            400,
            "bad_request",
        ),
        (
            "application/x-ndjson",
            vec![],
            b"".to_vec(),
            400,
            "bad_request",
        ),
        (
            "application/x-ndjson",
            vec![],
            b"\n\n".to_vec(),
            400,
            "bad_request",
        ),
        (
            "application/x-ndjson",
            vec![("content-encoding", "gzip")],
            b"not gzip at all".to_vec(),
            400,
            "bad_request",
        ),
        (
            "application/x-ndjson",
            vec![("content-encoding", "br")],
            b"x".to_vec(),
            415,
            "unsupported_media_type",
        ),
        (
            "application/x-ndjson",
            vec![],
            vec![b' '; 5000],
            413,
            "payload_too_large",
        ),
        (
            "application/x-ndjson",
            vec![("idempotency-key", "")],
            good("k").to_string().into_bytes(),
            400,
            "bad_request",
        ),
    ];
    for (ct, headers, body, want, code) in cases {
        let (status, r) = s.post_with(ct, &headers, body).await;
        assert_eq!(status, want, "{ct} {headers:?}: {r}");
        assert_eq!(r["error"]["code"], code, "{r}");
        assert!(!r["error"]["message"].as_str().unwrap().is_empty());
    }
    // A small gzip body that inflates past the limit (a zip bomb) is refused, not inflated.
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    gz.write_all(&vec![b'\n'; 1 << 20]).unwrap();
    let bomb = gz.finish().unwrap();
    assert!(bomb.len() < 4096);
    let (status, r) = s
        .post_with(
            "application/x-ndjson",
            &[("content-encoding", "gzip")],
            bomb,
        )
        .await;
    assert_eq!(
        (status, r["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );
    // Nothing of the above was stored.
    let (_, m) = s.get("/metrics").await;
    assert!(
        m.as_str()
            .unwrap()
            .contains("modelshare_events_accepted_total 0\n"),
        "{m}"
    );
}

/// Every flush adds a run of event ids; the server's upkeep merges them, so lookups do not read
/// one more block per flush forever, and duplicates are still found after the merge.
#[tokio::test]
async fn id_runs_are_merged_and_still_find_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let flags = [
        "--min-apps",
        "1",
        "--flush-interval-secs",
        "0.05",
        "--cube-interval-secs",
        "0.1",
        "--compact-interval-secs",
        "0",
    ];
    let s = Server::start(dir.path(), &flags);
    for i in 0..12 {
        let (status, r) = s.ndjson(&[good(&format!("m{i}"))]).await;
        assert_eq!((status, r["accepted"].as_u64()), (200, Some(1)), "{r}");
        // One flush (one events file, one run) per event.
        wait_until(|| async {
            files_in(&dir.path().join("events/date=2026-11-17"), ".parquet").len() == i + 1
        })
        .await;
    }
    // Twelve runs were written; fewer than eight left means they were merged (none is old
    // enough to expire).
    wait_until(|| async { files_in(&dir.path().join("ids"), ".ids").len() < 8 }).await;
    let again: Vec<Value> = (0..12).map(|i| good(&format!("m{i}"))).collect();
    let (_, r) = s.ndjson(&again).await;
    assert_eq!(r["duplicates"], 12, "{r}");
    s.stop();
}

#[tokio::test]
async fn retries_count_once() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--min-apps", "1"]);
    let body = ndjson(&[good("r1"), good("r2"), json!({"event_id": "r3"})]);
    let key = [("idempotency-key", "batch-0001")];
    let (s1, first) = s
        .post_with("application/x-ndjson", &key, body.clone())
        .await;
    let (s2, second) = s
        .post_with("application/x-ndjson", &key, body.clone())
        .await;
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(first, second);
    assert_eq!(first["accepted"], 2);
    assert_eq!(first["rejected"], 1);
    // Without the key, the event ids still keep the figures honest.
    let (_, third) = s.ndjson(&[good("r1"), good("r2"), good("r4")]).await;
    assert_eq!(third["accepted"], 3);
    assert_eq!(third["duplicates"], 2);
    let (_, lb) = s.get("/v1/leaderboard?date=2026-11-17").await;
    assert_eq!(lb["totals"]["requests"], 3);
    let (_, m) = s.get("/metrics").await;
    let m = m.as_str().unwrap().to_owned();
    assert!(m.contains("modelshare_events_accepted_total 3\n"), "{m}");
    assert!(m.contains("modelshare_events_duplicate_total 2\n"), "{m}");
    assert!(m.contains("modelshare_idempotent_replays_total 1\n"), "{m}");
    assert!(
        m.contains("# TYPE modelshare_wal_bytes_total counter"),
        "{m}"
    );

    // After a restart, the same key still answers the same and nothing is stored twice.
    s.stop();
    let s = Server::start(dir.path(), &["--min-apps", "1"]);
    let (_, again) = s.post_with("application/x-ndjson", &key, body).await;
    assert_eq!(again["accepted"], 2, "{again}");
    let (_, again) = s.ndjson(&[good("r1"), good("r4")]).await;
    assert_eq!(again["duplicates"], 2, "{again}");
    let (_, lb) = s.get("/v1/leaderboard?date=2026-11-17").await;
    assert_eq!(lb["totals"]["requests"], 3);

    // Ids are unique within an app: another app's "r1" is its own event, also after a restart
    // (the filter is rebuilt from the Parquet files by (app, id)).
    let mut other = good("r1");
    other["app_id"] = json!("another-app");
    let (_, r) = s.ndjson(std::slice::from_ref(&other)).await;
    assert_eq!(
        (r["accepted"].as_u64(), r["duplicates"].as_u64()),
        (Some(1), Some(0)),
        "{r}"
    );
    s.stop();
    let s = Server::start(dir.path(), &["--min-apps", "1"]);
    let (_, r) = s.ndjson(&[other, good("r1")]).await;
    assert_eq!(r["duplicates"], 2, "{r}");
    let (_, lb) = s.get("/v1/leaderboard?date=2026-11-17").await;
    assert_eq!(lb["totals"]["requests"], 4);
}

#[tokio::test]
async fn backpressure_answers_503_with_retry_after() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(
        dir.path(),
        &["--max-buffered-rows", "3", "--flush-interval-secs", "3600"],
    );
    let events: Vec<Value> = (0..5).map(|i| good(&format!("bp{i}"))).collect();
    let resp = s
        .client
        .post(format!("{}/v1/events", s.url))
        .header("content-type", "application/x-ndjson")
        .body(ndjson(&events))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unavailable");
    // A batch that fits is taken.
    let (status, r) = s.ndjson(&events[..3]).await;
    assert_eq!((status, r["accepted"].clone()), (200, json!(3)));
}

#[tokio::test]
async fn flushes_to_parquet_and_shuts_down_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start(dir.path(), &["--min-apps", "1", "--flush-rows", "2"]);
    let (_, r) = s
        .ndjson(&[
            good("f1"),
            good("f2"),
            with(good("f3"), "ts", json!("2026-11-18T00:00:00Z")),
        ])
        .await;
    assert_eq!(r["accepted"], 3);
    // Size-triggered flush: the first three rows reach Parquet without a restart.
    wait_until(async || {
        let (_, m) = s.get("/metrics").await;
        m.as_str()
            .unwrap()
            .contains("modelshare_flushed_rows_total 3\n")
    })
    .await;
    let (_, r) = s.ndjson(&[good("f4")]).await;
    assert_eq!(r["accepted"], 1);
    let (_, lb) = s.get("/v1/leaderboard?date=2026-11-17").await;
    assert_eq!(
        lb["totals"]["requests"], 4,
        "flushed and buffered rows both count, once"
    );
    s.stop();
    assert_eq!(
        std::fs::read_dir(dir.path().join("wal")).unwrap().count(),
        0,
        "every row is in Parquet, so no segment is left (the next write creates one)"
    );
    let rows = sql(
        dir.path(),
        "SELECT date, count(*) AS n, sum(input_tokens) AS input FROM events GROUP BY date ORDER BY date",
    );
    assert_eq!(
        rows,
        vec![
            json!({"date": "2026-11-17", "n": 3, "input": 300}),
            json!({"date": "2026-11-18", "n": 1, "input": 100}),
        ]
    );
    let cost = sql(
        dir.path(),
        "SELECT CAST(sum(cost_usd) AS VARCHAR) AS cost FROM events",
    );
    assert_eq!(cost, vec![json!({"cost": "0.005000"})]);
}
