//! Weekly snapshots end to end, against the real binary: the server builds them at start-up,
//! lists them, serves them with ETag / Range / 304 / 416, refuses path tricks, publishes a new
//! revision for a late event; `modelshare export` writes snapshots and raw exports and fails
//! clearly on bad input.
#![allow(clippy::unwrap_used)]

mod common;
use arrow::array::{Array, Decimal128Array, Int64Array, StringArray};
use common::{BIN, Server, event, ingest, wait_until, with};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use std::io::{Read, Write};
use std::path::Path;
use std::process::Command;

/// Week 2026-W45 (2026-11-02 .. 2026-11-09): three apps on a/x on the 4th (one base cell of
/// three apps), one on b/y.
fn w45_events() -> Vec<Value> {
    vec![
        event("e1", "2026-11-04T08:00:00Z", "A1", "a/x", 100, 10, 0.001),
        event("e2", "2026-11-04T09:00:00Z", "A2", "a/x", 200, 20, 0.002),
        with(
            event("e3", "2026-11-04T10:00:00Z", "A3", "a/x", 300, 30, 0.003),
            "latency_ms",
            json!(5000),
        ),
        event("e4", "2026-11-05T10:00:00Z", "A1", "b/y", 7, 7, 0.5),
        with(
            event("f1", "2026-11-06T10:00:00Z", "A2", "a/x", 1, 0, 0.0),
            "status",
            json!("error"),
        ),
    ]
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// One row of a snapshot, as read back from its bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Row {
    model: String,
    provider: String,
    context: Option<String>,
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_micro_usd: i128,
    apps: i64,
    failures: i64,
    latency_p95_ms: Option<i64>,
}

/// The rows of snapshot bytes, in file order.
fn rows_of(bytes: Vec<u8>) -> Vec<Row> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(bytes::Bytes::from(bytes))
        .unwrap()
        .build()
        .unwrap();
    let mut out = Vec::new();
    for b in reader {
        let b = b.unwrap();
        let column = |n: &str| b.column_by_name(n).unwrap().as_any();
        let s = |n: &str| column(n).downcast_ref::<StringArray>().unwrap().clone();
        let i = |n: &str| column(n).downcast_ref::<Int64Array>().unwrap().clone();
        let (model, provider, context) = (s("model"), s("provider"), s("context"));
        let (requests, input, output, apps, failures, p95) = (
            i("requests"),
            i("input_tokens"),
            i("output_tokens"),
            i("apps"),
            i("failures"),
            i("latency_p95_ms"),
        );
        let cost = column("cost_usd")
            .downcast_ref::<Decimal128Array>()
            .unwrap()
            .clone();
        for r in 0..b.num_rows() {
            out.push(Row {
                model: model.value(r).to_owned(),
                provider: provider.value(r).to_owned(),
                context: (!context.is_null(r)).then(|| context.value(r).to_owned()),
                requests: requests.value(r),
                input_tokens: input.value(r),
                output_tokens: output.value(r),
                cost_micro_usd: cost.value(r),
                apps: apps.value(r),
                failures: failures.value(r),
                latency_p95_ms: (!p95.is_null(r)).then(|| p95.value(r)),
            });
        }
    }
    out
}

/// (model, context, requests, input_tokens, apps, latency_p95_ms) of a row.
type Usage = (String, Option<String>, i64, i64, i64, Option<i64>);

/// The [`Usage`] of each row.
fn usage_of(bytes: Vec<u8>) -> Vec<Usage> {
    rows_of(bytes)
        .into_iter()
        .map(|r| {
            (
                r.model,
                r.context,
                r.requests,
                r.input_tokens,
                r.apps,
                r.latency_p95_ms,
            )
        })
        .collect()
}

/// Sends one raw HTTP/1.1 request (no client-side path normalisation) and returns the status.
fn raw_status(url: &str, target: &str) -> u16 {
    let addr = url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {target} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap_or_default();
    resp.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn listing(server: &Server) -> Vec<Value> {
    let (status, body) = server.get("/v1/snapshots").await;
    assert_eq!(status, 200, "{body}");
    body["snapshots"].as_array().unwrap().clone()
}

/// A server on `lake` at two apps that builds snapshots of closed weeks every 0.2 s (no grace)
/// and flushes as often, once its first snapshot is listed.
async fn snapshot_server(lake: &Path) -> Server {
    let server = Server::start(
        lake,
        &[
            "--min-apps",
            "2",
            "--snapshot-interval-secs",
            "0.2",
            "--snapshot-grace-secs",
            "0",
            "--flush-interval-secs",
            "0.2",
        ],
    );
    wait_until(async || !listing(&server).await.is_empty()).await;
    server
}

#[tokio::test]
async fn serve_builds_lists_and_serves_snapshots_with_ranges_and_revisions() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &w45_events());
    let server = snapshot_server(&lake).await;
    let list = listing(&server).await;
    assert_eq!(list.len(), 1, "{list:?}");
    let s = &list[0];
    assert_eq!(s["name"], "2026-W45.r1");
    assert_eq!(s["week"], "2026-W45");
    assert_eq!(s["revision"], 1);
    assert_eq!(s["rows"], 1);
    assert_eq!(s["url"], "/v1/snapshots/2026-W45.r1.parquet");
    let sha = s["sha256"].as_str().unwrap().to_owned();
    let len = s["bytes"].as_u64().unwrap();
    let on_disk = std::fs::read(lake.join("snapshots/2026-W45.r1.parquet")).unwrap();
    assert_eq!(on_disk.len() as u64, len);
    assert_eq!(sha256_hex(&on_disk), sha);

    let url = format!("{}/v1/snapshots/2026-W45.r1.parquet", server.url);
    let c = &server.client;
    let etag = format!("\"{sha}\"");
    // Whole file.
    let resp = c.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let h = resp.headers().clone();
    assert_eq!(h["etag"], etag.as_str());
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-length"], len.to_string().as_str());
    assert_eq!(h["content-type"], "application/vnd.apache.parquet");
    let full = resp.bytes().await.unwrap().to_vec();
    assert_eq!(full, on_disk);
    // Exact figures: a/x's cell has 3 apps (published), all with short prompts (its one
    // segment); b/y's has one and is published nowhere.
    assert_eq!(
        usage_of(full.clone()),
        [(
            "a/x".to_owned(),
            Some("short".to_owned()),
            3,
            600,
            3,
            Some(5000)
        )]
    );

    // Conditional requests.
    for inm in [
        etag.clone(),
        format!("W/{etag}"),
        format!("\"x\", {etag}"),
        "*".into(),
    ] {
        let r = c
            .get(&url)
            .header("if-none-match", &inm)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 304, "{inm}");
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert!(r.bytes().await.unwrap().is_empty());
    }
    let r = c
        .get(&url)
        .header("if-none-match", "\"stale\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    // Ranges.
    let range = async |spec: &str| {
        let r = c.get(&url).header("range", spec).send().await.unwrap();
        let status = r.status().as_u16();
        let cr = r
            .headers()
            .get("content-range")
            .map(|v| v.to_str().unwrap().to_owned());
        let cl = r
            .headers()
            .get("content-length")
            .map(|v| v.to_str().unwrap().to_owned());
        (status, cr, cl, r.bytes().await.unwrap().to_vec())
    };
    let (st, cr, cl, body) = range("bytes=0-3").await;
    assert_eq!(
        (st, cr.as_deref(), cl.as_deref()),
        (206, Some(format!("bytes 0-3/{len}").as_str()), Some("4"))
    );
    assert_eq!(body, b"PAR1");
    let (st, cr, _, body) = range("bytes=-4").await;
    assert_eq!(
        (st, cr),
        (206, Some(format!("bytes {}-{}/{len}", len - 4, len - 1)))
    );
    assert_eq!(body, b"PAR1");
    let (st, _, _, body) = range("bytes=100-").await;
    assert_eq!((st, body.as_slice()), (206, &full[100..]));
    let (st, _, _, body) = range(&format!("bytes=10-{}", len + 50)).await;
    assert_eq!((st, body.as_slice()), (206, &full[10..]));
    let (st, cr, _, _) = range(&format!("bytes={len}-")).await;
    assert_eq!((st, cr), (416, Some(format!("bytes */{len}"))));
    let (st, _, _, _) = range("bytes=-0").await;
    assert_eq!(st, 416);
    let (st, cr, _, body) = range("bytes=0-1,4-5").await;
    assert_eq!(
        (st, cr, body.len() as u64),
        (200, None, len),
        "several ranges: whole file"
    );
    // A stale If-Range gets the whole file.
    let r = c
        .get(&url)
        .header("range", "bytes=0-3")
        .header("if-range", "\"old\"")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // HEAD: headers only.
    let r = c.head(&url).send().await.unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-length"], len.to_string().as_str());
    assert_eq!(r.headers()["etag"], etag.as_str());

    // Names are strict: nothing outside the published Parquet files is reachable.
    for target in [
        "/v1/snapshots/../snapshots/LOCK",
        "/v1/snapshots/..%2F..%2Fapp-id-hmac.key",
        "/v1/snapshots/%2Fetc%2Fpasswd",
        "/v1/snapshots//etc/passwd",
        "/v1/snapshots/LOCK",
        "/v1/snapshots/2026-W45.r1.json",
        "/v1/snapshots/2026-W45.r1",
        "/v1/snapshots/2026-W45.r9.parquet",
        "/v1/snapshots/2026-W45.r01.parquet",
        "/v1/snapshots/2026-W45.r1.parquet/x",
        "/v1/snapshots/.2026-W45.r1.parquet.1.tmp",
    ] {
        assert_eq!(raw_status(&server.url, target), 404, "{target}");
    }
    assert_eq!(raw_status(&server.url, "/v1/snapshots/%ff.parquet"), 400);
    let (st, body) = server.get("/v1/snapshots?week=2026-W45").await;
    assert_eq!(st, 400, "{body}");
    assert_eq!(body["error"]["code"], "invalid_parameter");

    // A late event for the closed week, from a fourth app on a/x: r2, r1 untouched.
    let (st, _) = server
        .ndjson(&[event(
            "late",
            "2026-11-04T12:00:00Z",
            "A4",
            "a/x",
            1000,
            1,
            0.01,
        )])
        .await;
    assert_eq!(st, 200);
    wait_until(async || listing(&server).await.len() == 2).await;
    let list = listing(&server).await;
    assert_eq!(list[0]["sha256"], sha.as_str());
    assert_eq!(list[1]["name"], "2026-W45.r2");
    assert_ne!(list[1]["content_sha256"], list[0]["content_sha256"]);
    assert_eq!(
        std::fs::read(lake.join("snapshots/2026-W45.r1.parquet")).unwrap(),
        on_disk
    );
    let r2 = c
        .get(format!(
            "{}{}",
            server.url,
            list[1]["url"].as_str().unwrap()
        ))
        .send()
        .await
        .unwrap()
        .bytes()
        .await
        .unwrap()
        .to_vec();
    assert_eq!(sha256_hex(&r2), list[1]["sha256"].as_str().unwrap());
    assert_eq!(
        usage_of(r2)[0],
        (
            "a/x".to_owned(),
            Some("short".to_owned()),
            4,
            1600,
            4,
            Some(5000)
        )
    );
    server.stop();
}

fn export(lake: &Path, args: &[&str]) -> (bool, String, String) {
    let out = Command::new(BIN)
        .args(["export", "--data-dir"])
        .arg(lake)
        .args(args)
        .env("MODELSHARE_LOG", "warn")
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn export_writes_snapshots_and_raw_events_and_refuses_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &w45_events());
    let out = dir.path().join("w45.parquet");
    let o = out.to_str().unwrap();

    let (ok, stdout, stderr) = export(&lake, &["--week", "2026-W45", "--min-apps", "2", "-o", o]);
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("wrote snapshot 2026-W45.r1 (1 rows,"),
        "{stdout}"
    );
    let published = std::fs::read(lake.join("snapshots/2026-W45.r1.parquet")).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), published);
    // Again: same file, no new revision.
    let (ok, stdout, _) = export(&lake, &["--week", "2026-W45", "--min-apps", "2", "-o", o]);
    assert!(ok && stdout.contains("2026-W45.r1"), "{stdout}");
    assert!(!lake.join("snapshots/2026-W45.r2.parquet").exists());

    // Raw: every event of the week, app ids replaced by a stable keyed hash.
    let raw = dir.path().join("raw.parquet");
    let (ok, stdout, stderr) = export(
        &lake,
        &["--week", "2026-W45", "--raw", "-o", raw.to_str().unwrap()],
    );
    assert!(ok, "{stderr}");
    assert!(stdout.starts_with("wrote 5 events of 2026-W45"), "{stdout}");
    let reader = ParquetRecordBatchReaderBuilder::try_new(std::fs::File::open(&raw).unwrap())
        .unwrap()
        .build()
        .unwrap();
    let (mut ids, mut apps) = (Vec::new(), Vec::new());
    for b in reader {
        let b = b.unwrap();
        let col = |n: &str| {
            b.column_by_name(n)
                .unwrap()
                .as_any()
                .downcast_ref::<StringArray>()
                .unwrap()
                .clone()
        };
        let (id, app) = (col("event_id"), col("app_id"));
        for r in 0..b.num_rows() {
            ids.push(id.value(r).to_owned());
            apps.push(app.value(r).to_owned());
        }
    }
    assert_eq!(ids, ["e1", "e2", "e3", "e4", "f1"], "sorted by ts");
    assert!(
        apps.iter()
            .all(|a| a.len() == 32 && a.bytes().all(|c| c.is_ascii_hexdigit())),
        "{apps:?}"
    );
    // e1 and e4 are both A1; e2 and f1 both A2.
    assert_eq!(apps[0], apps[3]);
    assert_eq!(apps[1], apps[4]);
    assert_ne!(apps[0], apps[1]);
    assert!(!apps.iter().any(|a| a.starts_with('A')));
    use std::os::unix::fs::PermissionsExt;
    let key = std::fs::metadata(lake.join("app-id-hmac.key")).unwrap();
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    // Errors.
    let open = chrono::Utc::now().date_naive().format("%G-W%V").to_string();
    let cases: Vec<(Vec<String>, String)> = vec![
        (
            vec!["--week".into(), "2026-W60".into()],
            "\"2026-W60\" is not an ISO week: week 60 does not exist in 2026".into(),
        ),
        (
            vec!["--week".into(), "2026-47".into()],
            "\"2026-47\" is not an ISO week: wrong shape; expected YYYY-Www".into(),
        ),
        (
            vec!["--week".into(), open.clone()],
            format!("week {open} is still open: it closes at"),
        ),
        (
            vec!["--week".into(), "2026-W30".into()],
            "week 2026-W30 has no events in the lake".into(),
        ),
        (
            vec!["--week".into(), "2026-W30".into(), "--raw".into()],
            "week 2026-W30 has no events in the lake".into(),
        ),
    ];
    for (args, want) in cases {
        let mut a: Vec<&str> = args.iter().map(String::as_str).collect();
        a.extend(["-o", o]);
        let (ok, _, stderr) = export(&lake, &a);
        assert!(!ok, "{args:?}");
        assert!(stderr.contains(&want), "{args:?}: {stderr}");
    }
    let missing = dir.path().join("no/such/dir/x.parquet");
    for raw in [false, true] {
        let mut a = vec!["--week", "2026-W45", "-o", missing.to_str().unwrap()];
        if raw {
            a.push("--raw");
        }
        let (ok, _, stderr) = export(&lake, &a);
        assert!(!ok);
        assert!(
            stderr.contains(&format!("cannot write {}", missing.display())),
            "{stderr}"
        );
    }
    let (ok, _, stderr) = export(
        &lake,
        &["--week", "2026-W45", "-o", dir.path().to_str().unwrap()],
    );
    assert!(!ok && stderr.contains("it is a directory"), "{stderr}");
    let (ok, _, stderr) = export(&dir.path().join("nolake"), &["--week", "2026-W45", "-o", o]);
    assert!(!ok && stderr.contains("no lake at"), "{stderr}");
    // Nothing but the one revision was published by all of the above.
    let names: Vec<String> = std::fs::read_dir(lake.join("snapshots"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".parquet"))
        .collect();
    assert_eq!(names, ["2026-W45.r1.parquet"]);
}

/// Week 2026-W45 for the context segments (short < 8,192 input tokens, medium < 32,768, long <
/// 131,072, very long above). A row sums its segment's groups (day, first choice or fallback,
/// position) of `min_apps` apps; the row of no segment (`context` null) holds the failures, whose
/// cells are never split. With --min-apps 2:
/// - a/x on 11-04: short from A1 A2, long from A2 A3: in the short and long rows.
/// - a/x on 11-06: short from A1 alone (withheld), medium from A1 A2 (the medium row).
/// - a/x's failures on 11-04 (A4 A5): in a/x's null row.
/// - b/y on 11-05: short from B1 B2 B3 (the short row), very long from B1 alone (withheld); its
///   failures (short from B4, long from B5) are one cell of two apps: in its null row.
/// - c/z on 11-05: one app, published nowhere.
fn segment_events() -> Vec<Value> {
    let failed = |id: &str, ts: &str, app: &str, model: &str, input: u64| {
        with(
            event(id, ts, app, model, input, 0, 0.0),
            "status",
            json!("error"),
        )
    };
    vec![
        event("s1", "2026-11-04T08:00:00Z", "A1", "a/x", 100, 1, 0.000_100),
        event("s2", "2026-11-04T09:00:00Z", "A2", "a/x", 200, 2, 0.000_200),
        event("l1", "2026-11-04T10:00:00Z", "A2", "a/x", 40_000, 3, 0.040),
        event("l2", "2026-11-04T11:00:00Z", "A3", "a/x", 50_000, 4, 0.050),
        failed("f1", "2026-11-04T12:00:00Z", "A4", "a/x", 9_000),
        failed("f2", "2026-11-04T13:00:00Z", "A5", "a/x", 9_000),
        event("w1", "2026-11-06T08:00:00Z", "A1", "a/x", 10, 5, 0.000_010),
        event("w2", "2026-11-06T09:00:00Z", "A1", "a/x", 10_000, 6, 0.010),
        event("w3", "2026-11-06T10:00:00Z", "A2", "a/x", 20_000, 7, 0.020),
        event("b1", "2026-11-05T08:00:00Z", "B1", "b/y", 10, 1, 0.000_010),
        event("b2", "2026-11-05T09:00:00Z", "B2", "b/y", 20, 1, 0.000_020),
        event("b3", "2026-11-05T10:00:00Z", "B3", "b/y", 30, 1, 0.000_030),
        event("b4", "2026-11-05T11:00:00Z", "B1", "b/y", 200_000, 1, 0.2),
        failed("g1", "2026-11-05T12:00:00Z", "B4", "b/y", 10),
        failed("g2", "2026-11-05T13:00:00Z", "B5", "b/y", 40_000),
        event("c1", "2026-11-05T08:00:00Z", "C1", "c/z", 10, 1, 0.000_010),
    ]
}

/// The snapshot's rows of the events of [`segment_events`], exactly; per (model, provider) they
/// add up to the sums over the publishable groups and failure cells.
#[test]
fn export_rows_sum_the_groups_of_their_segment() {
    let events = segment_events();
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &events);
    let out = dir.path().join("w45.parquet");
    let (ok, stdout, stderr) = export(
        &lake,
        &[
            "--week",
            "2026-W45",
            "--min-apps",
            "2",
            "-o",
            out.to_str().unwrap(),
        ],
    );
    assert!(ok, "{stderr}");
    assert!(
        stdout.starts_with("wrote snapshot 2026-W45.r1 (6 rows,"),
        "{stdout}"
    );
    let rows = rows_of(std::fs::read(&out).unwrap());
    let row = |model: &str, context: Option<&str>, figures: [i64; 5], cost: i128| Row {
        model: model.to_owned(),
        provider: model[..1].to_owned(),
        context: context.map(str::to_owned),
        requests: figures[0],
        input_tokens: figures[1],
        output_tokens: figures[2],
        cost_micro_usd: cost,
        apps: figures[3],
        failures: figures[4],
        latency_p95_ms: (figures[0] > 0).then_some(800),
    };
    assert_eq!(
        rows,
        [
            row("a/x", None, [0, 0, 0, 0, 2], 0),
            row("a/x", Some("short"), [2, 300, 3, 2, 0], 300),
            row("a/x", Some("medium"), [2, 30_000, 13, 2, 0], 30_000),
            row("a/x", Some("long"), [2, 90_000, 7, 2, 0], 90_000),
            row("b/y", None, [0, 0, 0, 0, 2], 0),
            row("b/y", Some("short"), [3, 60, 3, 3, 0], 60),
        ]
    );

    // Per (model, provider), the rows add up to the sums over the publishable groups (ok
    // requests per day and segment: no fallbacks or traces here) and failure cells (per day),
    // computed here from the events themselves.
    type Sums = [i128; 5];
    let segment = |input: i64| match input {
        ..8_192 => 0,
        8_192..32_768 => 1,
        32_768..131_072 => 2,
        _ => 3,
    };
    // (day, model, segment of an ok group or None for a failure cell) → sums and apps.
    type Group = (String, String, Option<u8>);
    let mut cells: std::collections::BTreeMap<Group, (Sums, Vec<String>)> = Default::default();
    for e in &events {
        let ok = e["status"] == "ok";
        let key = (
            e["ts"].as_str().unwrap()[..10].to_owned(),
            e["model"].as_str().unwrap().to_owned(),
            ok.then(|| segment(e["input_tokens"].as_i64().unwrap())),
        );
        let (sums, apps) = cells.entry(key).or_default();
        let added = if ok {
            [
                1,
                e["input_tokens"].as_i64().unwrap().into(),
                e["output_tokens"].as_i64().unwrap().into(),
                (e["cost_usd"].as_f64().unwrap() * 1e6).round() as i128,
                0,
            ]
        } else {
            [0, 0, 0, 0, 1]
        };
        for (s, a) in sums.iter_mut().zip(added) {
            *s += a;
        }
        apps.push(e["app_id"].as_str().unwrap().to_owned());
    }
    let mut published: std::collections::BTreeMap<String, Sums> = Default::default();
    for ((_, model, _), (sums, mut apps)) in cells {
        apps.sort();
        apps.dedup();
        if apps.len() >= 2 {
            let total = published.entry(model).or_default();
            for (t, s) in total.iter_mut().zip(sums) {
                *t += s;
            }
        }
    }
    let mut from_rows: std::collections::BTreeMap<String, Sums> = Default::default();
    for r in &rows {
        let total = from_rows.entry(r.model.clone()).or_default();
        let figures = [
            r.requests.into(),
            r.input_tokens.into(),
            r.output_tokens.into(),
            r.cost_micro_usd,
            r.failures.into(),
        ];
        for (t, f) in total.iter_mut().zip(figures) {
            *t += f;
        }
    }
    assert_eq!(from_rows, published);
    assert_eq!(
        published.keys().collect::<Vec<_>>(),
        ["a/x", "b/y"],
        "c/z is published nowhere"
    );
}

/// The server builds the snapshot of [`segment_events`] itself, and each segment's rows add up
/// to the week's leaderboard for that segment (`context=`), all rows to the leaderboard of all
/// lengths: the same rule on the same groups.
#[tokio::test]
async fn segment_rows_add_up_to_the_leaderboard_of_their_segment() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    ingest(&lake, &segment_events());
    let server = snapshot_server(&lake).await;
    let rows = rows_of(std::fs::read(lake.join("snapshots/2026-W45.r1.parquet")).unwrap());
    server.wait_for_cube().await;
    let segments = [
        None,
        Some("short"),
        Some("medium"),
        Some("long"),
        Some("very_long"),
    ];
    for segment in segments {
        let in_segment = rows
            .iter()
            .filter(|r| segment.is_none() || r.context.as_deref() == segment);
        let (tokens, requests) = in_segment.fold((0, 0), |(t, q), r| {
            (t + r.input_tokens + r.output_tokens, q + r.requests)
        });
        let query = segment.map_or(String::new(), |c| format!("&context={c}"));
        let board = server
            .get_ok(&format!(
                "/v1/leaderboard?period=week&date=2026-11-02&task=programming{query}"
            ))
            .await;
        assert_eq!(
            (
                board["totals"]["tokens"].as_i64(),
                board["totals"]["requests"].as_i64()
            ),
            (Some(tokens), Some(requests)),
            "{segment:?}: {board}"
        );
    }
    server.stop();
}
