//! Faults at every stage of the write path, against the real `modelshare serve` binary: a full
//! disk (a size-limited tmpfs) and injected I/O errors (libfiu's POSIX preload through `fiu-run
//! -x`, switched on and off at run time with `fiu-ctrl`), combined with SIGTERM and SIGKILL.
//! The lake's files are written with `pwrite` and nothing else in the server uses it, so
//! `posix/io/rw/pwrite` fails exactly the lake's writes; failing plain `write` would also break
//! sockets and the async runtime's wake-ups, which no full or failing disk does.
//!
//! After every case the server is restarted and must hold every acknowledged event exactly once
//! and no refused event. Each case prints one `fault-matrix:` line with its figures (the table
//! in docs/RELIABILITY.md is made from them).
//!
//! Needs root for `mount -t tmpfs` (CI runs as root) and `fiu-utils` (installed by
//! `scripts/test.sh`). A case that cannot mount says so and is skipped; a missing `fiu-run` is
//! a failure, since the test command installs it.
#![allow(clippy::unwrap_used)]

mod common;
use common::{Server, event, ndjson, run_ok, sql};
use serde_json::Value;
use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const EIO: i32 = 5;
const ENOSPC: i32 = 28;

/// A size-limited tmpfs mounted for one test, unmounted on drop.
struct Tmpfs {
    mount: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `mib` MiB, or says why it cannot and returns `None`.
    fn mount(mib: u64) -> Option<Tmpfs> {
        let mount = tempfile::tempdir().unwrap();
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(mount.path())
            .output();
        match out {
            Ok(o) if o.status.success() => Some(Tmpfs { mount }),
            Ok(o) => {
                eprintln!(
                    "SKIPPED: cannot mount a tmpfs here (needs root): {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                );
                None
            }
            Err(e) => {
                eprintln!("SKIPPED: cannot run mount: {e}");
                None
            }
        }
    }

    fn path(&self) -> &Path {
        self.mount.path()
    }

    fn resize(&self, mib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(self.path())
            .status()
            .unwrap();
        assert!(status.success(), "remount failed");
    }

    /// Takes every free byte with a filler file; returns its path.
    fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.path().join("filler");
        let mut f = std::fs::File::create(&path).unwrap();
        let block = vec![0xA5u8; 64 * 1024];
        loop {
            if f.write_all(&block).is_err() {
                break;
            }
        }
        // Small writes until not even one byte fits.
        while f.write_all(&[0u8; 512]).is_ok() {}
        while f.write_all(&[0u8; 1]).is_ok() {}
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.path()).status();
    }
}

fn fiu_run() -> Vec<&'static str> {
    let found = Command::new("sh")
        .args(["-c", "command -v fiu-run && command -v fiu-ctrl"])
        .output()
        .is_ok_and(|o| o.status.success());
    assert!(
        found,
        "fiu-run/fiu-ctrl not found: install Debian's fiu-utils (scripts/test.sh does)"
    );
    vec!["fiu-run", "-x"]
}

/// Switches a libfiu failure point of the running server on (with a probability and errno) or
/// off. libfiu answers over a FIFO with plain `write`, which these tests never fail; the time
/// limit only keeps a broken `fiu-ctrl` from hanging the suite.
fn fiu_ctrl(server: &Server, command: &str) {
    let out = Command::new("timeout")
        .args([
            "10",
            "fiu-ctrl",
            "-c",
            command,
            &server.child.id().to_string(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "fiu-ctrl {command}: {:?} {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn inject(server: &Server, point: &str, probability: f64, errno: i32) {
    fiu_ctrl(
        server,
        &format!("enable_random name={point},probability={probability},failinfo={errno}"),
    );
}

fn clear(server: &Server, point: &str) {
    fiu_ctrl(server, &format!("disable name={point}"));
}

/// What the client learnt about each event it sent.
#[derive(Debug, Default)]
struct Ledger {
    acked: HashSet<String>,
    refused: HashSet<String>,
    acked_batches: usize,
    refused_batches: usize,
    statuses: Vec<u16>,
}

impl Ledger {
    fn record(&mut self, ids: Vec<String>, status: Option<u16>, body: &Value) {
        match status {
            Some(200) => {
                assert_eq!(
                    body["accepted"].as_u64().unwrap() + body["duplicates"].as_u64().unwrap(),
                    ids.len() as u64,
                    "{body}"
                );
                self.acked.extend(ids);
                self.acked_batches += 1;
            }
            Some(s) => {
                self.statuses.push(s);
                self.refused.extend(ids);
                self.refused_batches += 1;
            }
            // No answer (the server was killed): neither promised nor refused.
            None => {}
        }
    }
}

fn batch(tag: &str, n: usize, size: usize) -> (Vec<String>, String) {
    let ids: Vec<String> = (0..size).map(|i| format!("{tag}-b{n}-e{i}")).collect();
    let events: Vec<Value> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            let ts = format!("2026-11-{:02}T{:02}:17:00Z", 20 + n % 5, i % 24);
            event(
                id,
                &ts,
                &format!("app-{}", i % 7),
                "meta/llama-3.1-8b",
                100 + i as u64,
                20,
                0.000_123,
            )
        })
        .collect();
    (ids, ndjson(&events))
}

/// Sends one batch; `None` when no answer came (connection dropped).
async fn send(http: &reqwest::Client, url: &str, body: String) -> (Option<u16>, Value) {
    let sent = http
        .post(format!("{url}/v1/events"))
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await;
    let Ok(resp) = sent else {
        return (None, Value::Null);
    };
    let status = resp.status().as_u16();
    if status == 503 {
        assert!(
            resp.headers().contains_key("retry-after"),
            "a 503 must say when to retry"
        );
    }
    match resp.text().await {
        Ok(text) => (
            Some(status),
            serde_json::from_str(&text).unwrap_or(Value::Null),
        ),
        Err(_) => (None, Value::Null),
    }
}

/// Sends batch `n` of `tag`, which must be acknowledged; its ids and the answer.
async fn send_ok(
    http: &reqwest::Client,
    url: &str,
    tag: &str,
    n: usize,
    size: usize,
) -> (Vec<String>, Option<u16>, Value) {
    let (ids, body) = batch(tag, n, size);
    let (status, answer) = send(http, url, body).await;
    assert_eq!(status, Some(200), "{tag} batch {n}: {answer}");
    (ids, status, answer)
}

/// Restarts the server on `dir` and says how long it took to listen.
fn restart(dir: &Path, flags: &[&str]) -> (Server, Duration) {
    let started = Instant::now();
    let server = Server::start(dir, flags);
    (server, started.elapsed())
}

/// The lake's event ids, read with `modelshare query` (the server must be stopped).
fn stored_ids(dir: &Path) -> (u64, HashSet<String>) {
    let rows = sql(dir, "SELECT event_id FROM events");
    let total = rows.len() as u64;
    let ids = rows
        .into_iter()
        .map(|r| r["event_id"].as_str().unwrap().to_owned())
        .collect();
    (total, ids)
}

/// The promise: every acknowledged event once, no refused event. Prints the case's figures.
fn verify(case: &str, dir: &Path, ledger: &Ledger, restart_time: Duration) {
    let (total, present) = stored_ids(dir);
    let lost = ledger.acked.difference(&present).count();
    let doubled = total - present.len() as u64;
    let refused_present = ledger.refused.intersection(&present).count();
    println!(
        "fault-matrix: {case}: batches acked {}, refused {}; events acked {}, refused {}, \
         lost {lost}, doubled {doubled}, refused-but-stored {refused_present}; restart {} ms",
        ledger.acked_batches,
        ledger.refused_batches,
        ledger.acked.len(),
        ledger.refused.len(),
        restart_time.as_millis()
    );
    assert_eq!(lost, 0, "{case}: acknowledged events lost");
    assert_eq!(doubled, 0, "{case}: events stored twice");
    assert_eq!(refused_present, 0, "{case}: refused events stored");
    assert!(
        restart_time < Duration::from_secs(30),
        "{case}: restart hung ({restart_time:?})"
    );
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("modelshare_{name} ")))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("metric {name} missing"))
}

async fn metrics(server: &Server) -> String {
    server
        .client
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

async fn admin_sql(server: &Server, sql: &str) -> Value {
    let resp = server
        .client
        .post(format!("{}/v1/sql", server.url))
        .header("content-type", "text/plain")
        .body(sql.to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status().as_u16(), 200);
    resp.json().await.unwrap()
}

async fn live_count(server: &Server) -> u64 {
    let v = admin_sql(server, "SELECT count(*) AS n FROM events").await;
    v["rows"][0]["n"].as_u64().unwrap_or_else(|| panic!("{v}"))
}

/// Once a clean start has checked the app-day cube (rebuilding what a crash left wrong), the
/// cube counts, day by day, exactly the `ok` events of the lake.
async fn verify_cube(case: &str, dir: &Path) {
    let server = Server::start(dir, &[]);
    server.wait_for_cube().await;
    let cube = admin_sql(
        &server,
        "SELECT date, CAST(sum(requests) AS BIGINT) AS n FROM app_days GROUP BY date ORDER BY date",
    )
    .await;
    let raw = admin_sql(
        &server,
        "SELECT date, count(*) AS n FROM events WHERE status = 'ok' GROUP BY date ORDER BY date",
    )
    .await;
    server.stop();
    assert!(!raw["rows"].as_array().unwrap().is_empty());
    assert_eq!(cube["rows"], raw["rows"], "{case}: cube and events differ");
}

fn files_named(dir: &Path, pred: &dyn Fn(&str) -> bool) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(files_named(&p, pred));
        } else if pred(&e.file_name().to_string_lossy()) {
            out.push(p);
        }
    }
    out
}

/// The operator's report, made a test: a 20 MB disk filled by 1,000-event batches, space given
/// back, one more batch, SIGTERM, restart. Before, segment 1 held a record torn by ENOSPC with
/// later appends after it, and the restart refused to start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_then_space_returns_then_restart() {
    let Some(fs) = Tmpfs::mount(20) else { return };
    let dir = fs.path().join("lake");
    let server = Server::start(&dir, &[]);
    let http = reqwest::Client::new();
    let mut ledger = Ledger::default();
    let mut refused_in_a_row = 0;
    for n in 0..1_500 {
        let (ids, body) = batch("fill", n, 1_000);
        let (status, answer) = send(&http, &server.url, body).await;
        ledger.record(ids, status, &answer);
        refused_in_a_row = if status == Some(200) {
            0
        } else {
            refused_in_a_row + 1
        };
        // Enough to show the disk stays full; the rest of the 1,500 would all be refused too.
        if refused_in_a_row == 100 {
            break;
        }
    }
    assert!(ledger.acked_batches > 10, "the disk filled too early");
    assert_eq!(refused_in_a_row, 100, "the disk never filled");
    assert!(
        ledger.statuses.iter().all(|s| *s == 503),
        "{:?}",
        ledger.statuses
    );

    fs.resize(400);
    let (ids, status, answer) = send_ok(&http, &server.url, "after", 0, 1_000).await;
    ledger.record(ids, status, &answer);
    server.stop();

    let (server, took) = restart(&dir, &[]);
    server.stop();
    verify("full disk, space returns, SIGTERM", &dir, &ledger, took);
}

/// SIGTERM while the disk is still full: the final flush cannot write, the rows stay in the
/// WAL, and the next start must not need the disk to replay them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_while_the_disk_is_still_full() {
    let Some(fs) = Tmpfs::mount(8) else { return };
    let dir = fs.path().join("lake");
    // No timed flush while the disk fills: every acknowledged row must still be in the WAL when
    // the server stops. After the restart, flushes retry every half second.
    let server = Server::start(&dir, &["--flush-interval-secs", "600"]);
    let flags = ["--flush-interval-secs", "0.5"];
    let http = reqwest::Client::new();
    let mut ledger = Ledger::default();
    let mut n = 0;
    // Leave about 1 MiB: a few batches fit in the WAL, then nothing does.
    let filler = fs.fill();
    let len = std::fs::metadata(&filler).unwrap().len();
    std::fs::File::options()
        .write(true)
        .open(&filler)
        .unwrap()
        .set_len(len.saturating_sub(1 << 20))
        .unwrap();
    loop {
        let (ids, body) = batch("full", n, 500);
        n += 1;
        let (status, answer) = send(&http, &server.url, body).await;
        let refused = status != Some(200);
        ledger.record(ids, status, &answer);
        if refused && ledger.refused_batches >= 5 {
            break;
        }
        assert!(n < 500, "the disk never filled");
    }
    assert!(ledger.acked_batches > 0);
    // Take the last free bytes too, so the final flush has nowhere to go.
    fs.fill();
    server.stop();
    let wal_segments = files_named(&dir.join("wal"), &|n| n.ends_with(".wal"));
    assert!(
        !wal_segments.is_empty(),
        "acknowledged rows must still be in the wal"
    );

    let (server, took) = restart(&dir, &flags);
    // Replayed into memory and queryable although nothing could be written.
    assert_eq!(live_count(&server).await, ledger.acked.len() as u64);
    let health = server.get_ok("/healthz").await;
    assert_eq!(health["wal_quarantine"], serde_json::json!([]), "{health}");
    std::fs::remove_file(&filler).unwrap();
    // The flush retries by itself once space is back.
    let mut flushed = false;
    for _ in 0..300 {
        let m = metrics(&server).await;
        if metric(&m, "flushes_total") >= 1.0 && metric(&m, "buffered_rows") == 0.0 {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flushed, "no flush after space came back");
    server.kill();
    let (server, _) = restart(&dir, &flags);
    server.stop();
    verify(
        "SIGTERM on a full disk, restart while full",
        &dir,
        &ledger,
        took,
    );
}

/// Runs `batches` sequential batches while `point` fails with probability `p`.
async fn ingest_under_fault(
    server: &Server,
    ledger: &mut Ledger,
    tag: &str,
    point: &str,
    p: f64,
    errno: i32,
) {
    let http = reqwest::Client::new();
    inject(server, point, p, errno);
    for n in 0..80 {
        let (ids, body) = batch(tag, n, 200);
        let (status, answer) = send(&http, &server.url, body).await;
        ledger.record(ids, status, &answer);
    }
    clear(server, point);
    // Recovers by itself once the fault clears.
    for n in 80..90 {
        let (ids, status, answer) = send_ok(&http, &server.url, tag, n, 200).await;
        ledger.record(ids, status, &answer);
    }
}

/// WAL appends and their fsyncs failing at random (EIO and ENOSPC): a refused group never
/// leaves bytes that a later append could follow, and is never acknowledged.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wal_write_and_fsync_failures() {
    let launcher = fiu_run();
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--flush-interval-secs", "0.3"];
    let server = Server::start_via(&launcher, "127.0.0.1:0", dir.path(), &flags);
    let mut ledger = Ledger::default();
    // fsync only runs when a segment is created (after each flush seals one), so it fails more
    // often to be hit within the phase.
    for (tag, point, p, errno) in [
        ("write-eio", "posix/io/rw/pwrite", 0.5, EIO),
        ("write-enospc", "posix/io/rw/pwrite", 0.5, ENOSPC),
        ("fdatasync-eio", "posix/io/sync/fdatasync", 0.5, EIO),
        ("fsync-eio", "posix/io/sync/fsync", 0.9, EIO),
    ] {
        let before = ledger.refused_batches;
        ingest_under_fault(&server, &mut ledger, tag, point, p, errno).await;
        assert!(
            ledger.refused_batches > before,
            "{tag}: no batch was refused"
        );
    }
    assert!(
        ledger.statuses.iter().all(|s| *s == 503),
        "{:?}",
        ledger.statuses
    );
    let m = metrics(&server).await;
    assert!(metric(&m, "wal_write_errors_total") > 0.0);
    server.kill();
    let (server, took) = restart(dir.path(), &flags);
    server.stop();
    verify(
        "wal pwrite/fdatasync EIO+ENOSPC p=0.5, fsync EIO p=0.9, SIGKILL",
        dir.path(),
        &ledger,
        took,
    );
}

/// Parquet flushes failing (every fsync answers EIO, so no staged file can be made durable):
/// rows stay visible from memory and in the WAL, no partial file appears, new events are
/// refused 503 (a fresh WAL segment cannot be made durable either), and the flush succeeds by
/// itself once fsync works again. Sockets never fsync, so the server stays observable.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parquet_flush_failures_keep_rows_until_writes_work() {
    let launcher = fiu_run();
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--flush-interval-secs", "3"];
    let server = Server::start_via(&launcher, "127.0.0.1:0", dir.path(), &flags);
    let http = reqwest::Client::new();
    let mut ledger = Ledger::default();
    // Acknowledged before the fault (the first write creates the WAL segment, which needs
    // fsync); the flush, three seconds later, runs into it.
    for n in 0..5 {
        let (ids, status, answer) = send_ok(&http, &server.url, "flush", n, 400).await;
        ledger.record(ids, status, &answer);
    }
    inject(&server, "posix/io/sync/fsync", 1.0, EIO);
    let mut attempted = false;
    for _ in 0..600 {
        if metric(&metrics(&server).await, "flush_errors_total") >= 1.0 {
            attempted = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(attempted, "no flush was attempted within 30 s");
    let m = metrics(&server).await;
    assert_eq!(metric(&m, "flushes_total"), 0.0);
    assert_eq!(
        metric(&m, "buffered_rows"),
        2_000.0,
        "rows must stay in memory"
    );
    assert_eq!(live_count(&server).await, 2_000);
    let parquet = files_named(&dir.path().join("events"), &|n| n.ends_with(".parquet"));
    let temps = files_named(&dir.path().join("events"), &|n| n.ends_with(".tmp"));
    assert!(parquet.is_empty(), "a failed flush published {parquet:?}");
    assert!(temps.is_empty(), "a failed flush left {temps:?}");
    let (ids, body) = batch("flush-refused", 0, 100);
    let (status, answer) = send(&http, &server.url, body).await;
    assert_eq!(status, Some(503), "{answer}");
    assert_eq!(answer["error"]["code"], "unavailable", "{answer}");
    ledger.record(ids, status, &answer);

    clear(&server, "posix/io/sync/fsync");
    let mut flushed = false;
    for _ in 0..300 {
        let m = metrics(&server).await;
        if metric(&m, "buffered_rows") == 0.0 && metric(&m, "flushes_total") >= 1.0 {
            flushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(flushed, "the flush did not recover");
    assert_eq!(live_count(&server).await, 2_000);
    let (ids, status, answer) = send_ok(&http, &server.url, "flush-after", 0, 100).await;
    ledger.record(ids, status, &answer);
    server.kill();
    let (server, took) = restart(dir.path(), &flags);
    server.stop();
    verify(
        "parquet flush: fsync EIO p=1, then SIGKILL",
        dir.path(),
        &ledger,
        took,
    );
}

/// Two closed weeks of events from eight apps, loaded offline into `dir`.
fn closed_weeks_lake(dir: &Path) {
    let events: Vec<Value> = (0..40)
        .flat_map(|n| (0..25).map(move |i| (n, i)))
        .map(|(n, i)| {
            let ts = format!("2026-11-{:02}T{:02}:00:00Z", 2 + n % 12, i % 24);
            let model = if i % 2 == 0 {
                "meta/llama-3.1-8b"
            } else {
                "openai/gpt-4o"
            };
            event(
                &format!("old-{n}-{i}"),
                &ts,
                &format!("app-{}", i % 8),
                model,
                1_000,
                100,
                0.001,
            )
        })
        .collect();
    common::ingest(dir, &events);
}

/// Rollups and snapshots of closed weeks refreshed every second.
const REFRESH_EVERY_SECOND: [&str; 10] = [
    "--rollup-interval-secs",
    "1",
    "--rollup-grace-secs",
    "0",
    "--snapshot-interval-secs",
    "1",
    "--snapshot-grace-secs",
    "0",
    "--min-apps",
    "2",
];

/// While the fault lasts: the server answers, and nothing partial is under `rollups/app_week/` or
/// `snapshots/` (the snapshot builder's empty `LOCK` file aside).
async fn assert_nothing_partial(server: &Server, dir: &Path) {
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert_eq!(server.get_ok("/healthz").await["status"], "ok");
    let written = |n: &str| n != "LOCK";
    let partial: Vec<PathBuf> = files_named(&dir.join("rollups/app_week"), &written)
        .into_iter()
        .chain(files_named(&dir.join("snapshots"), &written))
        .collect();
    assert!(
        partial.is_empty(),
        "partial files during the fault: {partial:?}"
    );
    assert_eq!(
        server.get_ok("/v1/snapshots").await["snapshots"],
        serde_json::json!([])
    );
}

/// Once the fault clears: both weeks' rollup and snapshot are built, no temporary file left.
async fn assert_built_after(server: &Server, dir: &Path) {
    let mut built = false;
    for _ in 0..300 {
        let list = server.get_ok("/v1/snapshots").await;
        let manifests = files_named(&dir.join("rollups"), &|n| n.ends_with(".json"));
        if list["snapshots"].as_array().is_some_and(|s| s.len() == 2) && manifests.len() == 2 {
            built = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        built,
        "rollup and snapshots were not built once the fault cleared"
    );
    assert!(files_named(dir, &|n| n.ends_with(".tmp")).is_empty());
}

/// Closed weeks in the lake, then a full disk when the server starts: the app-week rollup and
/// the weekly snapshot cannot be written. Nothing partial may appear, the server keeps running,
/// and both are built once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_and_snapshots_on_a_full_disk() {
    let Some(fs) = Tmpfs::mount(48) else { return };
    let dir = fs.path().join("lake");
    closed_weeks_lake(&dir);
    let filler = fs.fill();
    let (server, took) = restart(&dir, &REFRESH_EVERY_SECOND);
    assert_nothing_partial(&server, &dir).await;
    std::fs::remove_file(&filler).unwrap();
    assert_built_after(&server, &dir).await;
    server.stop();
    println!(
        "fault-matrix: rollup+snapshots on a full disk: nothing partial while full, 2 weeks built after; restart {} ms",
        took.as_millis()
    );
}

/// The same with every fsync failing EIO from the moment the server starts (the rollup and the
/// snapshot are made durable with fsync before they are renamed into place).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollup_and_snapshots_when_fsync_fails() {
    let enable = format!("enable name=posix/io/sync/fsync,failinfo={EIO}");
    let launcher: Vec<&str> = fiu_run()
        .into_iter()
        .chain(["-c", enable.as_str()])
        .collect();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("lake");
    closed_weeks_lake(&dir);
    let server = Server::start_via(&launcher, "127.0.0.1:0", &dir, &REFRESH_EVERY_SECOND);
    assert_nothing_partial(&server, &dir).await;
    clear(&server, "posix/io/sync/fsync");
    assert_built_after(&server, &dir).await;
    server.stop();
    println!(
        "fault-matrix: rollup+snapshots with fsync EIO p=1: nothing partial during, 2 weeks built after"
    );
}

/// Small xorshift generator: the kill moments are random but reproducible from the seed printed.
struct Rng(u64);

impl Rng {
    /// Seeded from the clock; the seed is printed so a failing run can be replayed.
    fn from_clock() -> Rng {
        let seed = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as u64
            | 1;
        println!("kill-moment seed {seed}");
        Rng(seed)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// SIGKILL at random moments while four clients write and writes and fsyncs fail at random.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_at_random_moments_under_io_faults() {
    let launcher = fiu_run();
    let mut rng = Rng::from_clock();
    let dir = tempfile::tempdir().unwrap();
    // Cube upkeep (merges of the many small cube files, rebuilds after a crash) all the time,
    // so kills and faults land in it too.
    let flags = [
        "--flush-rows",
        "900",
        "--flush-interval-secs",
        "0.2",
        "--cube-interval-secs",
        "0.1",
    ];
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut slowest_restart = Duration::ZERO;
    // Four rounds, and more (up to twenty) while no write has been refused yet: the faults are
    // random, and a short round (a busy machine sends fewer batches before the kill) can miss
    // them all.
    let mut round = 0;
    while round < 4 || (round < 20 && ledger.lock().unwrap().refused_batches == 0) {
        round += 1;
        let server = Server::start_via(&launcher, "127.0.0.1:0", dir.path(), &flags);
        inject(&server, "posix/io/rw/pwrite", 0.05, EIO);
        inject(&server, "posix/io/sync/fdatasync", 0.05, EIO);
        let mut clients = Vec::new();
        for c in 0..4 {
            let url = server.url.clone();
            let ledger = Arc::clone(&ledger);
            clients.push(tokio::spawn(async move {
                let http = reqwest::Client::new();
                for n in 0..10_000 {
                    let (ids, body) = batch(&format!("r{round}c{c}"), n, 100);
                    let (status, answer) = send(&http, &url, body).await;
                    if status.is_none() {
                        return;
                    }
                    ledger.lock().unwrap().record(ids, status, &answer);
                }
            }));
        }
        tokio::time::sleep(Duration::from_millis(300 + rng.below(1_200))).await;
        server.kill();
        for c in clients {
            c.await.unwrap();
        }
        let (server, took) = restart(dir.path(), &flags);
        slowest_restart = slowest_restart.max(took);
        server.stop();
    }
    let case = "SIGKILL x4 (or more, until a write is refused) at random moments, pwrite+fdatasync EIO p=0.05";
    {
        let ledger = ledger.lock().unwrap();
        assert!(
            ledger.acked_batches > 0 && ledger.refused_batches > 0,
            "{} acked, {} refused",
            ledger.acked_batches,
            ledger.refused_batches
        );
        assert!(
            ledger.statuses.iter().all(|s| *s == 503),
            "{:?}",
            ledger.statuses
        );
        verify(case, dir.path(), &ledger, slowest_restart);
    }
    verify_cube(case, dir.path()).await;
}

/// Damage in the middle of a WAL segment (a flipped bit in an acknowledged record): the server
/// still starts, replays the good prefix, keeps the segment in quarantine and says so on
/// `/healthz` and `/metrics`; `modelshare wal salvage` puts the whole records after the damage
/// back, and the next start counts them once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn damaged_wal_is_quarantined_and_salvaged() {
    let dir = tempfile::tempdir().unwrap();
    let flags = ["--flush-interval-secs", "3600"];
    let server = Server::start(dir.path(), &flags);
    let http = reqwest::Client::new();
    let mut batches = Vec::new();
    for n in 0..3 {
        batches.push(send_ok(&http, &server.url, "wal", n, 50).await.0);
    }
    server.kill();

    // Flip one byte inside the second record's payload.
    let segment = dir.path().join("wal").join("0000000000000001.wal");
    let mut bytes = std::fs::read(&segment).unwrap();
    let first_len = u32::from_le_bytes(bytes[8..12].try_into().unwrap()) as usize;
    let second = 8 + 8 + first_len;
    bytes[second + 8 + 40] ^= 0x10;
    std::fs::write(&segment, &bytes).unwrap();

    let (server, took) = restart(dir.path(), &flags);
    let health = server.get_ok("/healthz").await;
    assert_eq!(
        health["wal_quarantine"],
        serde_json::json!(["0000000000000001.wal"])
    );
    let m = metrics(&server).await;
    assert_eq!(metric(&m, "wal_quarantined_segments_total"), 1.0);
    assert_eq!(
        live_count(&server).await,
        50,
        "only the good prefix is replayed"
    );
    server.stop();

    let data_dir = dir.path().as_os_str();
    let check = Command::new(common::BIN)
        .args([
            "wal".as_ref(),
            "check".as_ref(),
            "--data-dir".as_ref(),
            data_dir,
        ])
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{report}");
    assert!(report.contains("DAMAGED at offset"), "{report}");
    assert!(report.contains("1 whole records after it"), "{report}");

    let salvaged = run_ok([
        "wal".as_ref(),
        "salvage".as_ref(),
        "--data-dir".as_ref(),
        data_dir,
    ]);
    assert!(
        salvaged.contains("1 whole record(s), 50 event(s) put back"),
        "{salvaged}"
    );
    let server = Server::start(dir.path(), &flags);
    server.stop();
    let (total, present) = stored_ids(dir.path());
    assert_eq!(total, 100, "each event once");
    for id in batches[0].iter().chain(&batches[2]) {
        assert!(present.contains(id), "{id} missing");
    }
    assert!(
        batches[1].iter().all(|id| !present.contains(id)),
        "the damaged record is gone"
    );
    let clean = run_ok([
        "wal".as_ref(),
        "check".as_ref(),
        "--data-dir".as_ref(),
        data_dir,
    ]);
    assert!(clean.contains("quarantine: empty"), "{clean}");
    println!(
        "fault-matrix: damaged wal record: prefix replayed, segment quarantined, 1 record salvaged; restart {} ms",
        took.as_millis()
    );
}

/// `rounds` offline loads of `per_day` events on each of three closed days: one file per day
/// per load, as a day of minute flushes leaves many small files. Returns the events loaded.
fn small_files(dir: &Path, first_round: usize, rounds: usize, per_day: usize) -> u64 {
    for r in first_round..first_round + rounds {
        let events: Vec<Value> = (0..3 * per_day)
            .map(|i| {
                let ts = format!("2026-11-{:02}T{:02}:{:02}:00Z", 10 + i % 3, i % 24, i % 60);
                event(
                    &format!("r{r}-e{i}"),
                    &ts,
                    &format!("app-{}", i % 9),
                    ["meta/llama-3.1-8b", "openai/gpt-4o", "x-ai/grok-4"][i % 3],
                    100 + i as u64,
                    10,
                    0.000_01,
                )
            })
            .collect();
        common::ingest(dir, &events);
    }
    (rounds * 3 * per_day) as u64
}

fn day_file_counts(dir: &Path) -> Vec<usize> {
    (10..13)
        .map(|d| {
            files_named(&dir.join(format!("events/date=2026-11-{d}")), &|n| {
                !n.starts_with('.') && n.ends_with(".parquet")
            })
            .len()
        })
        .collect()
}

/// Count, distinct ids and token sum of the lake (server stopped).
fn lake_totals(dir: &Path) -> Value {
    sql(
        dir,
        "SELECT count(*) AS n, count(DISTINCT event_id) AS d, sum(input_tokens) AS t FROM events",
    )
    .remove(0)
}

/// Waits (30 s at most) until each of the three days is one file.
async fn wait_until_compacted(dir: &Path) {
    for _ in 0..300 {
        if day_file_counts(dir) == [1, 1, 1] {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not compacted; files per day: {:?}", day_file_counts(dir));
}

const COMPACT_NOW: [&str; 4] = [
    "--compact-interval-secs",
    "0.2",
    "--compact-grace-secs",
    "0",
];

/// A running server compacts each closed day into one file; every public answer and the rows
/// stay the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn closed_days_are_compacted_with_the_same_answers() {
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("lake");
    let loaded = small_files(&dir, 0, 6, 500);
    assert_eq!(day_file_counts(&dir), [6, 6, 6]);
    let totals = lake_totals(&dir);
    assert_eq!(totals["n"], loaded);
    let questions = [
        "/v1/leaderboard?period=week&date=2026-11-11",
        "/v1/authors?period=week&date=2026-11-11",
        "/v1/share?granularity=day&from=2026-11-10&to=2026-11-12",
    ];
    let server = Server::start(&dir, &["--compact-interval-secs", "0", "--min-apps", "2"]);
    let mut before = Vec::new();
    for q in questions {
        before.push(server.get_ok(q).await);
    }
    server.stop();

    let mut flags = COMPACT_NOW.to_vec();
    flags.extend(["--min-apps", "2"]);
    let server = Server::start(&dir, &flags);
    wait_until_compacted(&dir).await;
    for (q, b) in questions.iter().zip(&before) {
        assert_eq!(&server.get_ok(q).await, b, "{q}");
    }
    server.stop();
    assert_eq!(lake_totals(&dir), totals);
    assert!(files_named(&dir, &|n| n.ends_with(".tmp") || n == ".compaction.json").is_empty());
}

/// SIGKILL at random moments while days are compacted, round after round with new small files:
/// after every restart each event is stored exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_during_compaction_counts_each_event_once() {
    let mut rng = Rng::from_clock();
    let scratch = tempfile::tempdir().unwrap();
    let dir = scratch.path().join("lake");
    let mut loaded = 0;
    let mut mid_compaction = 0;
    for round in 0..6 {
        loaded += small_files(&dir, round * 3, 3, 10_000);
        let server = Server::start(&dir, &COMPACT_NOW);
        // The first pass starts with the server; it rewrites the three days in a few hundred ms.
        tokio::time::sleep(Duration::from_millis(rng.below(400))).await;
        // A temporary file or a journal: the kill lands inside a compaction.
        let in_flight = files_named(&dir.join("events"), &|n| {
            n == ".compaction.json" || (n.starts_with(".w") && n.ends_with(".tmp"))
        });
        server.kill();
        mid_compaction += usize::from(!in_flight.is_empty());
        let (server, _) = restart(&dir, &["--compact-interval-secs", "0"]);
        server.stop();
        let totals = lake_totals(&dir);
        assert_eq!(totals["n"], loaded, "round {round}: {totals}");
        assert_eq!(
            totals["d"], loaded,
            "round {round}: an event is stored twice"
        );
    }
    println!(
        "fault-matrix: SIGKILL x6 during compaction: {loaded} events, lost 0, doubled 0; \
         {mid_compaction} of 6 kills landed inside a compaction; files per day at the end {:?}",
        day_file_counts(&dir)
    );
}

/// A full disk while a day is compacted: the old files stay in place, nothing partial is left,
/// ingest answers 503, and the day is compacted once space returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn full_disk_during_compaction_keeps_the_old_files() {
    let Some(fs) = Tmpfs::mount(32) else { return };
    let dir = fs.path().join("lake");
    let loaded = small_files(&dir, 0, 5, 2_000);
    let before = day_file_counts(&dir);
    let filler = fs.fill();
    let server = Server::start(&dir, &COMPACT_NOW);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        day_file_counts(&dir),
        before,
        "compaction changed a day on a full disk"
    );
    // Attempts keep failing every 0.2 s, each with a temporary file while it runs: what must
    // not happen is a file left behind, so the lake is seen without one between attempts.
    let mut clean = false;
    for _ in 0..100 {
        if files_named(&dir, &|n| n.ends_with(".tmp") || n == ".compaction.json").is_empty() {
            clean = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!(clean, "a failed compaction left its files behind");
    let http = reqwest::Client::new();
    let (ids, body) = batch("during-compaction", 0, 100);
    let (status, answer) = send(&http, &server.url, body).await;
    assert_eq!(status, Some(503), "{answer}");
    drop(ids);
    std::fs::remove_file(&filler).unwrap();
    wait_until_compacted(&dir).await;
    server.stop();
    let totals = lake_totals(&dir);
    assert_eq!(
        (totals["n"].as_u64(), totals["d"].as_u64()),
        (Some(loaded), Some(loaded))
    );
    println!(
        "fault-matrix: full disk during compaction: old files kept, ingest 503, compacted after space returned; {loaded} events once"
    );
}
