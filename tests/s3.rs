//! A lake in an S3 API bucket: `modelshare query --data-dir s3://BUCKET/PREFIX` against a real
//! S3 server started by the test on loopback (moto's `moto_server`, which `scripts/test.sh`
//! installs and names in `MODELSHARE_MOTO_SERVER`), with the lake's files copied into the
//! bucket as they are on disk. Exact answers, the same as over the local directory; bad
//! locations refused with the reason.
#![allow(clippy::unwrap_used)]

mod common;

use common::{BIN, event};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server` on a loopback port, stopped when dropped.
struct S3Server {
    child: Child,
    endpoint: String,
}

impl S3Server {
    fn start() -> S3Server {
        let binary = std::env::var_os("MODELSHARE_MOTO_SERVER")
            .map(PathBuf::from)
            .or_else(|| {
                let target = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from)?;
                Some(target.join("s3-venv/bin/moto_server"))
            })
            .filter(|p| p.is_file())
            .expect(
                "moto_server not found: run the tests with scripts/test.sh, which installs it \
                 and sets MODELSHARE_MOTO_SERVER",
            );
        // A free port: bound, read, released (the server binds it right after).
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(binary)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let started = Instant::now();
        while TcpStream::connect((Ipv4Addr::LOCALHOST, port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not listen"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        S3Server {
            child,
            endpoint: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Creates `bucket` and copies every file under `dir` into it under `prefix`, keyed by its
    /// path relative to `dir` (the bucket then holds the lake as a directory holds it).
    async fn upload(&self, bucket: &str, prefix: &str, dir: &Path) {
        let client = reqwest::Client::new();
        let put = |url: String, body: Vec<u8>| client.put(url).body(body).send();
        let made = put(format!("{}/{bucket}", self.endpoint), Vec::new())
            .await
            .unwrap();
        assert!(made.status().is_success(), "{made:?}");
        let mut stack = vec![dir.to_owned()];
        let mut uploaded = 0;
        while let Some(d) = stack.pop() {
            for entry in std::fs::read_dir(&d).unwrap() {
                let path = entry.unwrap().path();
                if path.is_dir() {
                    stack.push(path);
                    continue;
                }
                let key = path
                    .strip_prefix(dir)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                let url = format!("{}/{bucket}/{prefix}/{key}", self.endpoint);
                let sent = put(url, std::fs::read(&path).unwrap()).await.unwrap();
                assert!(sent.status().is_success(), "{key}: {sent:?}");
                uploaded += 1;
            }
        }
        assert!(uploaded > 0, "nothing under {}", dir.display());
    }

    /// `modelshare query --format json --data-dir LOCATION SQL` with this server's endpoint and
    /// test credentials in the environment.
    fn query(&self, location: &str, sql: &str) -> Output {
        Command::new(BIN)
            .args(["query", "--format", "json", "--data-dir", location, sql])
            .env("MODELSHARE_LOG", "warn")
            .env("AWS_ENDPOINT_URL", &self.endpoint)
            .env("AWS_ALLOW_HTTP", "true")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn rows(out: &Output) -> Vec<Value> {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Two days, three apps, two models: 5 `ok` requests and a failure.
fn events() -> Vec<Value> {
    vec![
        event(
            "e1",
            "2026-11-02T10:00:00Z",
            "a1",
            "openai/o3",
            1_000,
            10,
            0.01,
        ),
        event(
            "e2",
            "2026-11-02T11:00:00Z",
            "a2",
            "openai/o3",
            2_000,
            20,
            0.02,
        ),
        event(
            "e3",
            "2026-11-03T09:00:00Z",
            "a3",
            "openai/o3",
            40_000,
            30,
            0.03,
        ),
        event(
            "e4",
            "2026-11-03T10:00:00Z",
            "a1",
            "anthropic/claude-haiku-4.5",
            500,
            5,
            0.001,
        ),
        event(
            "e5",
            "2026-11-03T12:00:00Z",
            "a2",
            "anthropic/claude-haiku-4.5",
            700,
            7,
            0.002,
        ),
        common::with(
            event("e6", "2026-11-03T13:00:00Z", "a3", "openai/o3", 9, 0, 0.0),
            "status",
            json!("error"),
        ),
    ]
}

#[tokio::test]
async fn query_reads_a_lake_in_a_bucket_as_it_reads_a_directory() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    common::ingest(&lake, &events());
    let s3 = S3Server::start();
    s3.upload("lakes", "prod/lake", &lake).await;

    let per_model = "SELECT model, count(*) AS requests, \
                     sum(input_tokens + output_tokens) AS tokens, \
                     count(DISTINCT app_id) AS apps \
                     FROM events WHERE status = 'ok' GROUP BY model ORDER BY model";
    let from_bucket = rows(&s3.query("s3://lakes/prod/lake", per_model));
    assert_eq!(
        from_bucket,
        json!([
            {"model": "anthropic/claude-haiku-4.5", "requests": 2, "tokens": 1_212, "apps": 2},
            {"model": "openai/o3", "requests": 3, "tokens": 43_060, "apps": 3},
        ])
        .as_array()
        .unwrap()
        .clone()
    );
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
    assert!(!missing.status.success());
    let stderr = String::from_utf8_lossy(&missing.stderr);
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
        assert!(!out.status.success(), "{location}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(needle), "{location}: {stderr}");
    }
}
