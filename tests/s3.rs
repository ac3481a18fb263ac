//! A lake in an S3 API bucket, against a real S3 server started by the test on loopback
//! (moto's `moto_server`, which `scripts/test.sh` installs and names in
//! `MODELSHARE_MOTO_SERVER`):
//! - `modelshare query --data-dir s3://BUCKET/PREFIX` over a lake's files copied into a bucket
//!   answers exactly as over the directory; bad locations are refused with the reason;
//! - `modelshare serve --data-dir s3://…` ingests into the bucket and answers the leaderboard
//!   as a local lake of the same events does, after a restart, on a new node with an empty
//!   disk, and after a kill -9 with acknowledged events not yet in the bucket; a second node
//!   is refused while the first holds the writer lease;
//! - while the store refuses connections (a proxy in front of it cut), events are still
//!   acknowledged until the buffer is full, then answered 503 with Retry-After; nothing
//!   acknowledged is lost and the bucket catches up when the store is back.
#![allow(clippy::unwrap_used)]

mod common;

use common::s3::{PER_MODEL, S3Server, events, per_model_answer, rows, serve_node};
use common::{BIN, Server, event, stderr_of_failure, stdout_of_success};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[tokio::test]
async fn query_reads_a_lake_in_a_bucket_as_it_reads_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    common::ingest(&lake, &events());
    let s3 = S3Server::start();
    s3.upload("lakes", "prod/lake", &lake).await;

    let per_model = PER_MODEL;
    let from_bucket = rows(&s3.query("s3://lakes/prod/lake", per_model));
    assert_eq!(from_bucket, per_model_answer());
    let local = rows(&s3.query(lake.to_str().unwrap(), per_model));
    assert_eq!(from_bucket, local);
    // The date partitions prune the same way, and the app-day cube is read from the bucket too.
    let by_day = "SELECT date, count(*) AS n FROM events GROUP BY date ORDER BY date";
    assert_eq!(
        rows(&s3.query("s3://lakes/prod/lake/", by_day)),
        rows(&s3.query(lake.to_str().unwrap(), by_day))
    );
    let cube = "SELECT CAST(sum(requests) AS BIGINT) AS requests FROM app_days";
    assert_eq!(
        rows(&s3.query("s3://lakes/prod/lake", cube)),
        vec![json!({"requests": 5})]
    );

    // A prefix with no lake answers from no files; a bucket that does not exist is an error
    // that names the location.
    assert_eq!(
        rows(&s3.query("s3://lakes/elsewhere", "SELECT count(*) AS n FROM events")),
        vec![json!({"n": 0})]
    );
    let missing = s3.query("s3://no-such-bucket/lake", "SELECT count(*) FROM events");
    let stderr = stderr_of_failure(&missing, "the query");
    assert!(stderr.contains("s3://no-such-bucket/lake/"), "{stderr}");
}

#[test]
fn bad_locations_are_refused_with_the_reason() {
    for (location, needle) in [
        ("s3://", "no bucket"),
        ("s3:///lake", "no bucket"),
        ("gs://lakes/lake", "not supported"),
        ("https://example.com/lake", "not supported"),
    ] {
        let out = Command::new(BIN)
            .args(["query", "--data-dir", location, "SELECT 1"])
            .env("MODELSHARE_LOG", "warn")
            .output()
            .unwrap();
        let stderr = stderr_of_failure(&out, location);
        assert!(stderr.contains(needle), "{location}: {stderr}");
    }
    // Nodes share a lake in a bucket only.
    let dir = tempfile::tempdir().unwrap();
    for flag in ["--join", "--standby"] {
        let out = Command::new(BIN)
            .args(["serve", "--listen", "127.0.0.1:0", flag, "--data-dir"])
            .arg(dir.path())
            .env("MODELSHARE_LOG", "warn")
            .output()
            .unwrap();
        let stderr = stderr_of_failure(&out, flag);
        assert!(
            stderr.contains("are for a lake in a bucket"),
            "{flag}: {stderr}"
        );
    }
    // Commands that work on a local lake only refuse a URL, and say which ones take it.
    for command in [
        "keys --data-dir s3://lakes/prod list",
        "wal check --data-dir s3://lakes/prod",
        "apps --data-dir s3://lakes/prod list",
    ] {
        let out = Command::new(BIN)
            .args(command.split(' '))
            .env("MODELSHARE_LOG", "warn")
            .output()
            .unwrap();
        let stderr = stderr_of_failure(&out, command);
        assert!(
            stderr.contains("is a URL")
                && stderr.contains("`generate`, `ingest`, `rollup` and `export`"),
            "{command}: {stderr}"
        );
    }
}

/// `modelshare ARGS` with the store's variables; its output.
fn command(s3: &S3Server, args: &[&str]) -> Output {
    Command::new(BIN)
        .args(args)
        .env("MODELSHARE_LOG", "warn")
        .envs(S3Server::env_via(&s3.endpoint))
        .output()
        .unwrap()
}

/// The keys of the objects under `prefix` in `bucket`.
async fn object_keys(s3: &S3Server, bucket: &str, prefix: &str) -> Vec<String> {
    let body = reqwest::get(format!(
        "{}/{bucket}?list-type=2&prefix={prefix}&max-keys=1000",
        s3.endpoint
    ))
    .await
    .unwrap()
    .text()
    .await
    .unwrap();
    body.split("<Key>")
        .skip(1)
        .filter_map(|k| k.split_once("</Key>").map(|(k, _)| k.to_owned()))
        .collect()
}

#[tokio::test]
async fn generate_ingest_rollup_and_export_work_on_a_lake_in_a_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("lakes").await;
    let local = dir.path().join("local");
    let (local_str, bucket) = (local.to_str().unwrap(), "s3://lakes/gen");
    // The same synthetic traffic into a directory and into the bucket.
    let generate = |to: &str, extra: &[&str]| {
        let mut args = vec![
            "generate",
            "--data-dir",
            to,
            "--events",
            "4000",
            "--apps",
            "60",
            "--days",
            "15",
            "--start",
            "2026-10-05",
            "--seed",
            "11",
        ];
        args.extend_from_slice(extra);
        stdout_of_success(&command(&s3, &args))
    };
    generate(local_str, &[]);
    let out = generate(bucket, &["--node-id", "gen1"]);
    assert!(out.contains("into s3://lakes/gen/"), "{out}");
    let per_model = "SELECT model, count(*) AS n, sum(output_tokens) AS output FROM events \
                     GROUP BY model ORDER BY model";
    let from_bucket = rows(&s3.query(bucket, per_model));
    assert_eq!(from_bucket, rows(&s3.query(local_str, per_model)));
    assert_eq!(s3.count(bucket), 4_000);
    // The node's name is in the files the command wrote.
    let files = object_keys(&s3, "lakes", "gen/events/").await;
    assert!(
        !files.is_empty() && files.iter().all(|k| k.contains("-gen1-")),
        "{files:?}"
    );

    // NDJSON through the durable path, into the bucket.
    let file = dir.path().join("events.ndjson");
    std::fs::write(&file, common::ndjson(&events())).unwrap();
    let out = stdout_of_success(&command(
        &s3,
        &[
            "ingest",
            "--data-dir",
            bucket,
            "--node-id",
            "gen1",
            file.to_str().unwrap(),
        ],
    ));
    assert!(out.contains("put "), "{out}");
    assert_eq!(s3.count(bucket), 4_006);

    // The rollup is built on the copy and put into the bucket; the copy given is kept.
    let copy = dir.path().join("copy");
    stdout_of_success(&command(
        &s3,
        &[
            "rollup",
            "--data-dir",
            bucket,
            "--local-dir",
            copy.to_str().unwrap(),
            "--node-id",
            "gen1",
        ],
    ));
    let rollups = object_keys(&s3, "lakes", "gen/rollups/").await;
    assert!(!rollups.is_empty(), "no rollup objects");
    assert!(copy.join("rollups").is_dir());

    // A closed week's public snapshot: the same rows as from the directory, and published in
    // the bucket.
    let export = |lake: &str, out: &Path| {
        let args = [
            "export",
            "--data-dir",
            lake,
            "--week",
            "2026-W42",
            "--min-apps",
            "1",
            "-o",
            out.to_str().unwrap(),
        ];
        stdout_of_success(&command(&s3, &args))
    };
    let from_dir = export(local_str, &dir.path().join("w42-local.parquet"));
    let from_bucket = export(bucket, &dir.path().join("w42-bucket.parquet"));
    let rows_of = |line: &str| {
        line.split(" rows")
            .next()
            .and_then(|l| l.rsplit('(').next())
            .map(str::to_owned)
    };
    assert_eq!(
        rows_of(&from_dir),
        rows_of(&from_bucket),
        "{from_dir} / {from_bucket}"
    );
    assert!(
        from_bucket.contains("wrote snapshot 2026-W42"),
        "{from_bucket}"
    );
    let snapshots = object_keys(&s3, "lakes", "gen/snapshots/").await;
    assert!(
        snapshots.iter().any(|k| k.contains("2026-W42")),
        "{snapshots:?}"
    );

    // While a server writes the lake, the commands are refused and say by whom.
    let node = serve_node(
        &s3.endpoint,
        bucket,
        &dir.path().join("node"),
        &["--node-id", "n1"],
    );
    let refused = command(&s3, &["rollup", "--data-dir", bucket, "--node-id", "gen1"]);
    let stderr = stderr_of_failure(&refused, "rollup");
    assert!(stderr.contains("is written by node n1"), "{stderr}");
    // The server has the lake the commands wrote.
    let (status, answer) = node.post_sql("SELECT count(*) AS n FROM events").await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["rows"][0]["n"], 4_006, "{answer}");
    node.stop();
}

/// The value of `modelshare_NAME` on the server's `/metrics`.
async fn metric(server: &Server, name: &str) -> f64 {
    let (status, text) = server.get_text("/metrics").await;
    assert_eq!(status, 200);
    let prefix = format!("modelshare_{name} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("no {name} in /metrics"))
        .trim()
        .parse()
        .unwrap()
}

/// `modelshare serve` on `location` as node `node`, expected to refuse to start: its stderr.
fn serve_refused(s3: &S3Server, location: &str, local: &Path, node: &str) -> String {
    use std::io::Read;
    let mut child = Command::new(BIN)
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", location])
        .arg("--local-dir")
        .arg(local)
        .args(["--node-id", node])
        .env("MODELSHARE_LOG", "warn")
        .envs(S3Server::env_via(&s3.endpoint))
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let started = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(!status.success(), "the node exited cleanly");
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return stderr;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("node {node} started on a lake another node writes");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Two more `ok` requests of o3 on the 3rd, from two new apps: 303 tokens.
fn late_events() -> Vec<Value> {
    vec![
        event(
            "e7",
            "2026-11-03T14:00:00Z",
            "a4",
            "openai/o3",
            100,
            1,
            0.001,
        ),
        event(
            "e8",
            "2026-11-03T15:00:00Z",
            "a5",
            "openai/o3",
            200,
            2,
            0.002,
        ),
    ]
}

const BUCKET_LAKE: &str = "s3://lakes/prod";
const BOARD: &str = "/v1/leaderboard?period=week&date=2026-11-03";

/// Flags of a node that flushes and syncs within the test's patience.
fn node_flags(node: &str) -> Vec<&str> {
    vec![
        "--min-apps",
        "1",
        "--flush-interval-secs",
        "0.2",
        "--bucket-sync-secs",
        "0.5",
        "--cube-interval-secs",
        "0.5",
        "--node-id",
        node,
    ]
}

#[tokio::test]
async fn serve_on_a_bucket_answers_as_a_local_lake_across_restarts_and_lost_disks() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("lakes").await;

    // The reference: the same events in a local lake.
    let local = Server::start(
        &dir.path().join("local"),
        &[
            "--min-apps",
            "1",
            "--flush-interval-secs",
            "0.2",
            "--cube-interval-secs",
            "0.5",
        ],
    );
    let (status, r) = local.ndjson(&events()).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(6)), "{r}");
    local.wait_for_cube().await;
    let want = local.get_ok(BOARD).await;
    assert_eq!(want["totals"]["tokens"], 44_272, "{want}");
    local.stop();

    // Node n1 ingests into the bucket: the flush puts the files, the leaderboard is the same.
    let node1_dir = dir.path().join("node1");
    let node1 = serve_node(&s3.endpoint, BUCKET_LAKE, &node1_dir, &node_flags("n1"));
    let (status, r) = node1.ndjson(&events()).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(6)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 6).await;
    node1.wait_for_cube().await;
    assert_eq!(node1.get_ok(BOARD).await, want);
    // One node writes a lake: another is refused while n1's lease runs.
    let refused = serve_refused(&s3, BUCKET_LAKE, &dir.path().join("node3"), "n3");
    assert!(refused.contains("is written by node n1"), "{refused}");
    // The same node name on another local copy is another process, not n1's restart.
    let refused = serve_refused(&s3, BUCKET_LAKE, &dir.path().join("node3"), "n1");
    assert!(
        refused.contains("is written by node n1 (another process"),
        "{refused}"
    );
    node1.stop();

    // A new node with an empty disk (n1 let its lease go at its clean stop): the lake is copied
    // down, the answers are the same, and the events it has stored are known as duplicates.
    let node2_dir = dir.path().join("node2");
    let node2 = serve_node(&s3.endpoint, BUCKET_LAKE, &node2_dir, &node_flags("n2"));
    node2.wait_for_cube().await;
    assert_eq!(node2.get_ok(BOARD).await, want);
    let restored = metric(&node2, "bucket_restored_total").await;
    assert!(restored >= 10.0, "{restored} objects restored");
    assert_eq!(metric(&node2, "bucket_lease_held").await, 1.0);
    let (status, again) = node2.ndjson(&events()).await;
    assert_eq!((status, &again["duplicates"]), (200, &json!(6)), "{again}");
    node2.stop();

    // Acknowledged but not yet flushed (an hour's flush interval), then kill -9: the events
    // are in node2's local WAL only. Its restart replays them into the bucket.
    let mut slow = node_flags("n2");
    slow[3] = "3600";
    let node2 = serve_node(&s3.endpoint, BUCKET_LAKE, &node2_dir, &slow);
    let late = late_events();
    let (status, r) = node2.ndjson(&late).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(2)), "{r}");
    node2.kill();
    assert_eq!(s3.count(BUCKET_LAKE), 6);
    // The same node takes its own lease back at once, though it has not expired.
    let node2 = serve_node(&s3.endpoint, BUCKET_LAKE, &node2_dir, &node_flags("n2"));
    s3.wait_for_count(BUCKET_LAKE, 8).await;
    node2.wait_for_cube().await;
    assert_eq!(node2.get_ok(BOARD).await["totals"]["tokens"], 44_575);
    node2.stop();
    // After a clean stop the bucket equals the node's copy, rollups included: the cube files
    // the node merged away are gone from the bucket too (a reader would count them twice).
    let cube = "SELECT count(*) AS files, CAST(sum(requests) AS BIGINT) AS requests \
                FROM (SELECT DISTINCT * FROM app_days)";
    let node2_local = node2_dir.to_str().unwrap();
    assert_eq!(
        rows(&s3.query(BUCKET_LAKE, cube)),
        rows(&s3.query(node2_local, cube))
    );
    let cube_rows = "SELECT CAST(sum(requests) AS BIGINT) AS requests FROM app_days";
    assert_eq!(
        rows(&s3.query(BUCKET_LAKE, cube_rows)),
        vec![json!({"requests": 7})]
    );

    // A flush puts its files into the bucket before its WAL segments go: with no sync pass
    // at all (an hour apart), the bucket holds the event once it is flushed, and a node that
    // then loses its disk loses nothing.
    let mut no_sync = node_flags("n2");
    no_sync[5] = "3600";
    no_sync.extend(["--lease-secs", "4"]);
    let node2 = serve_node(&s3.endpoint, BUCKET_LAKE, &node2_dir, &no_sync);
    let one = [event(
        "e9",
        "2026-11-03T16:00:00Z",
        "a6",
        "openai/o3",
        300,
        3,
        0.003,
    )];
    let (status, r) = node2.ndjson(&one).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(1)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 9).await;
    node2.kill();
    std::fs::remove_dir_all(&node2_dir).unwrap();
    // On a new disk the node cannot tell itself from another process with its name: it waits
    // for its old lease to expire (a standby), then copies the lake down.
    let mut replaced = node_flags("n2");
    replaced.extend(["--lease-secs", "4", "--standby"]);
    let node2 = serve_node(&s3.endpoint, BUCKET_LAKE, &node2_dir, &replaced);
    node2.wait_for_cube().await;
    assert_eq!(node2.get_ok(BOARD).await["totals"]["tokens"], 44_878);
    node2.stop();

    // A local directory that holds another lake is not taken as the copy of this one (its
    // files would be put into the bucket), and the refused node lets the lease go.
    let refused = serve_refused(&s3, BUCKET_LAKE, &dir.path().join("local"), "n5");
    assert!(
        refused.contains("holds files that are not a copy of a lake in a bucket"),
        "{refused}"
    );
    let node6 = serve_node(
        &s3.endpoint,
        BUCKET_LAKE,
        &dir.path().join("node6"),
        &node_flags("n6"),
    );
    assert_eq!(node6.get_ok(BOARD).await["totals"]["tokens"], 44_878);
    node6.stop();
    // What a reader of the bucket sees: the same per-model figures as the server.
    let per_model = "SELECT model, count(*) AS requests FROM events WHERE status = 'ok' \
                     GROUP BY model ORDER BY model";
    assert_eq!(
        rows(&s3.query(BUCKET_LAKE, per_model)),
        vec![
            json!({"model": "anthropic/claude-haiku-4.5", "requests": 2}),
            json!({"model": "openai/o3", "requests": 6}),
        ]
    );
}

/// A TCP proxy on loopback in front of the S3 server: `cut` closes its connections and refuses
/// new ones until `mend`.
struct Link {
    endpoint: String,
    cut: Arc<std::sync::atomic::AtomicBool>,
    open: Arc<std::sync::Mutex<Vec<TcpStream>>>,
}

impl Link {
    fn start(upstream: &str) -> Link {
        use std::sync::atomic::Ordering;
        let upstream = upstream.trim_start_matches("http://").to_owned();
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let cut = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let open = Arc::new(std::sync::Mutex::new(Vec::new()));
        let (is_cut, conns) = (Arc::clone(&cut), Arc::clone(&open));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { continue };
                if is_cut.load(Ordering::SeqCst) {
                    continue; // dropped: the connection is reset
                }
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (Ok(c2), Ok(s2)) = (client.try_clone(), server.try_clone()) else {
                    continue;
                };
                {
                    let mut conns = conns.lock().unwrap();
                    conns.extend(client.try_clone());
                    conns.extend(server.try_clone());
                }
                pipe(client, server);
                pipe(s2, c2);
            }
        });
        Link {
            endpoint: format!("http://127.0.0.1:{port}"),
            cut,
            open,
        }
    }

    fn cut(&self) {
        self.cut.store(true, std::sync::atomic::Ordering::SeqCst);
        for conn in self.open.lock().unwrap().drain(..) {
            let _ = conn.shutdown(std::net::Shutdown::Both);
        }
    }

    fn mend(&self) {
        self.cut.store(false, std::sync::atomic::Ordering::SeqCst);
    }
}

fn pipe(mut from: TcpStream, mut to: TcpStream) {
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from, &mut to);
        let _ = to.shutdown(std::net::Shutdown::Both);
    });
}

#[tokio::test]
async fn a_store_outage_answers_503_loses_nothing_and_catches_up() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("lakes").await;
    let link = Link::start(&s3.endpoint);
    let mut flags = node_flags("n1");
    flags.extend(["--max-buffered-rows", "4"]);
    let node = serve_node(
        &link.endpoint,
        BUCKET_LAKE,
        &dir.path().join("node"),
        &flags,
    );
    let all = events();
    let (status, r) = node.ndjson(&all[..3]).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(3)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 3).await;
    // The bucket holds the flush's files a moment before the flush lets go of its rows.
    common::wait_until(async || metric(&node, "buffered_rows").await == 0.0).await;

    // The store is unreachable: events are still acknowledged (fsynced in the local WAL) while
    // the buffer has room; flushes fail and keep their rows.
    link.cut();
    let (status, r) = node.ndjson(&all[3..5]).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(2)), "{r}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(s3.count(BUCKET_LAKE), 3);
    // Past the buffer: 503 with Retry-After, nothing stored.
    let mut rest = vec![all[5].clone()];
    rest.extend(late_events());
    let refused = node
        .client
        .post(format!("{}/v1/events", node.url))
        .header("content-type", "application/x-ndjson")
        .body(common::ndjson(&rest))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status().as_u16(), 503);
    assert!(refused.headers().contains_key("retry-after"), "{refused:?}");
    // The acknowledged rows are answered from memory meanwhile.
    let board = node.get_ok(BOARD).await;
    assert_eq!(board["totals"]["requests"], 5, "{board}");

    // The store is back: the buffered rows reach the bucket, and the refused batch is taken.
    link.mend();
    s3.wait_for_count(BUCKET_LAKE, 5).await;
    common::wait_until(async || metric(&node, "buffered_rows").await == 0.0).await;
    let (status, r) = node.ndjson(&rest).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(3)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 8).await;
    node.stop();
}

#[tokio::test]
async fn a_standby_takes_over_a_dead_writer_and_the_old_writer_comes_back_to_the_new_state() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("lakes").await;
    let short_lease = |node: &'static str| {
        let mut flags = node_flags(node);
        flags.extend(["--lease-secs", "4"]);
        flags
    };
    let (a_dir, b_dir) = (dir.path().join("a"), dir.path().join("b"));
    let a = serve_node(&s3.endpoint, BUCKET_LAKE, &a_dir, &short_lease("a"));
    let (status, r) = a.ndjson(&events()).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(6)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 6).await;

    // b waits as a standby while a holds the lease, and does not listen.
    let standby = {
        let (endpoint, b_dir) = (s3.endpoint.clone(), b_dir.clone());
        std::thread::spawn(move || {
            let mut flags = short_lease("b");
            flags.push("--standby");
            serve_node(&endpoint, BUCKET_LAKE, &b_dir, &flags)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(!standby.is_finished(), "b started while a holds the lease");

    // a dies without letting its lease go: b takes over once it expires, from the bucket.
    let died = Instant::now();
    a.kill();
    let b = tokio::task::spawn_blocking(move || standby.join().unwrap())
        .await
        .unwrap();
    let took = died.elapsed();
    assert!(took < Duration::from_secs(15), "b took over after {took:?}");
    b.wait_for_cube().await;
    assert_eq!(b.get_ok(BOARD).await["totals"]["tokens"], 44_272);
    let late = late_events();
    let (status, r) = b.ndjson(&late).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(2)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 8).await;
    b.stop();

    // a comes back with its old copy: b wrote the lake since, so a brings its copy to the
    // bucket's state first. Its sync then keeps b's files (a stale copy taken as the truth
    // would delete them), and its answers include b's events.
    let a = serve_node(&s3.endpoint, BUCKET_LAKE, &a_dir, &short_lease("a"));
    a.wait_for_cube().await;
    assert_eq!(a.get_ok(BOARD).await["totals"]["tokens"], 44_575);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    assert_eq!(s3.count(BUCKET_LAKE), 8);
    // Files carry the name of the node that wrote them (flushes and compactions alike): two
    // nodes never make the same name.
    let named = rows(&s3.query(
        BUCKET_LAKE,
        "SELECT count(*) AS files, \
         count(*) FILTER (WHERE f ~ '/w[0-9]+c?-(a|b)-[0-9]+-[0-9]+[.]parquet$') AS named \
         FROM (SELECT DISTINCT input_file_name() AS f FROM events)",
    ));
    assert_eq!(named[0]["files"], named[0]["named"], "{named:?}");
    assert!(named[0]["files"].as_u64().unwrap() >= 2, "{named:?}");
    a.stop();
}

/// Waits (30 s at most) until `server`'s week leaderboard counts `tokens`, its cube checked.
async fn wait_for_tokens(server: &Server, tokens: u64, who: &str) {
    let started = Instant::now();
    loop {
        let board = server.get_ok(BOARD).await;
        let health = server.get_ok("/healthz").await;
        if board["totals"]["tokens"] == tokens && health["cube"]["raw_days"] == json!([]) {
            return;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{who}: the leaderboard counts {} tokens, not {tokens} ({})",
            board["totals"]["tokens"],
            health["cube"]
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn two_nodes_ingesting_at_once_count_disjoint_and_overlapping_events_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let s3 = S3Server::start();
    s3.create_bucket("lakes").await;
    // Both nodes join: a takes the lease (it comes first), b writes beside it. Closed days are
    // compacted at once.
    let joined = |node: &'static str| {
        let mut flags = node_flags(node);
        flags.extend([
            "--join",
            "--lease-secs",
            "4",
            "--compact-interval-secs",
            "0.5",
            "--compact-grace-secs",
            "0",
        ]);
        flags
    };
    let a = serve_node(
        &s3.endpoint,
        BUCKET_LAKE,
        &dir.path().join("a"),
        &joined("a"),
    );
    let b = serve_node(
        &s3.endpoint,
        BUCKET_LAKE,
        &dir.path().join("b"),
        &joined("b"),
    );
    assert_eq!(metric(&a, "bucket_lease_held").await, 1.0);
    assert_eq!(metric(&b, "bucket_lease_held").await, 0.0);

    // b takes e4 and e5 (which a takes too: a router that retried them elsewhere) and e7, e8;
    // a takes e1..e6. Sent at once, neither node has the other's ids yet.
    let all = events();
    let late = late_events();
    let to_b: Vec<Value> = all[3..5].iter().chain(&late).cloned().collect();
    let ((status_a, ra), (status_b, rb)) = tokio::join!(a.ndjson(&all), b.ndjson(&to_b));
    assert_eq!((status_a, status_b), (200, 200), "{ra} {rb}");
    assert_eq!(
        (&ra["accepted"], &rb["accepted"]),
        (&json!(6), &json!(4)),
        "{ra} {rb}"
    );

    // The lake holds each event once: a copied b's files down, compacted the closed days
    // (dropping the second copy of e4 and e5), and b's copy followed.
    s3.wait_for_count(BUCKET_LAKE, 8).await;
    let distinct = rows(&s3.query(
        BUCKET_LAKE,
        "SELECT count(*) AS n, count(DISTINCT event_id) AS ids FROM events",
    ));
    assert_eq!(distinct, vec![json!({"n": 8, "ids": 8})]);
    let per_model = "SELECT model, count(*) AS requests, \
                     sum(input_tokens + output_tokens) AS tokens FROM events \
                     WHERE status = 'ok' GROUP BY model ORDER BY model";
    let expected = vec![
        json!({"model": "anthropic/claude-haiku-4.5", "requests": 2, "tokens": 1_212}),
        json!({"model": "openai/o3", "requests": 5, "tokens": 43_363}),
    ];
    assert_eq!(rows(&s3.query(BUCKET_LAKE, per_model)), expected);
    // Both nodes answer the public leaderboard as one lake of the eight events does, from
    // their cubes (b reads the cube a rebuilt after dropping the repeats).
    wait_for_tokens(&a, 44_575, "a").await;
    wait_for_tokens(&b, 44_575, "b").await;
    for (node, server) in [("a", &a), ("b", &b)] {
        let answer = server.sql_rows(&[], per_model).await;
        assert_eq!(answer, expected, "{node}");
    }

    // Once b has a's id runs, a retry of a's event to b is a duplicate at ingest: stored
    // nowhere again.
    let (status, r) = b.ndjson(&all[..1]).await;
    assert_eq!((status, &r["duplicates"]), (200, &json!(1)), "{r}");

    // a stops (letting its lease go): b takes the lease over and does the upkeep from then on;
    // an event b takes after that is in the lake once.
    a.stop();
    let started = Instant::now();
    while metric(&b, "bucket_lease_held").await != 1.0 {
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "b did not take the lease"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let one_more = vec![event(
        "e9",
        "2026-11-03T16:00:00Z",
        "a6",
        "openai/o3",
        1_000,
        0,
        0.001,
    )];
    let (status, r) = b.ndjson(&one_more).await;
    assert_eq!((status, &r["accepted"]), (200, &json!(1)), "{r}");
    s3.wait_for_count(BUCKET_LAKE, 9).await;
    wait_for_tokens(&b, 45_575, "b, holding the lease").await;
    b.stop();
}
