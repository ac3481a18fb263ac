//! An S3 API server for the tests of lakes in a bucket: moto's `moto_server`, which
//! `scripts/test.sh` installs and names in `MODELSHARE_MOTO_SERVER`, started on a loopback port.

use super::{BIN, Server};
use serde_json::{Value, json};
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// A running `moto_server` on a loopback port, stopped when dropped.
pub struct S3Server {
    child: Child,
    pub endpoint: String,
}

impl S3Server {
    pub fn start() -> S3Server {
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
    pub async fn upload(&self, bucket: &str, prefix: &str, dir: &Path) {
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

    /// The store's variables for a client of this server at `endpoint` (this server, or a
    /// proxy in front of it), with test credentials.
    pub fn env_via(endpoint: &str) -> Vec<(&'static str, String)> {
        vec![
            ("AWS_ENDPOINT_URL", endpoint.to_owned()),
            ("AWS_ALLOW_HTTP", "true".into()),
            ("AWS_ACCESS_KEY_ID", "test".into()),
            ("AWS_SECRET_ACCESS_KEY", "test".into()),
            ("AWS_REGION", "us-east-1".into()),
        ]
    }

    pub async fn create_bucket(&self, bucket: &str) {
        let made = reqwest::Client::new()
            .put(format!("{}/{bucket}", self.endpoint))
            .send()
            .await
            .unwrap();
        assert!(made.status().is_success(), "{made:?}");
    }

    /// `modelshare query --format json --data-dir LOCATION SQL` with this server's endpoint and
    /// test credentials in the environment.
    pub fn query(&self, location: &str, sql: &str) -> Output {
        Command::new(BIN)
            .args(["query", "--format", "json", "--data-dir", location, sql])
            .env("MODELSHARE_LOG", "warn")
            .envs(S3Server::env_via(&self.endpoint))
            .output()
            .unwrap()
    }
}

/// `modelshare serve` on the lake at `location` (an `s3://` URL), through `endpoint` (the
/// store, or a proxy in front of it), with the node's local directory `local` and `extra`
/// flags. A standby blocks here until it writes: call it from another thread.
pub fn serve_node(endpoint: &str, location: &str, local: &Path, extra: &[&str]) -> Server {
    let mut args = vec!["--data-dir", location, "--local-dir"];
    let local_str = local.to_str().unwrap();
    args.push(local_str);
    args.extend_from_slice(extra);
    let env = S3Server::env_via(endpoint);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Server::start_with_env(&args, &env, local)
}

impl S3Server {
    /// Events in the lake at `location` as the bucket holds it.
    pub fn count(&self, location: &str) -> u64 {
        let out = self.query(location, "SELECT count(*) AS n FROM events");
        rows(&out)[0]["n"].as_u64().unwrap()
    }

    /// Waits (30 s at most) until the bucket holds `n` events.
    pub async fn wait_for_count(&self, location: &str, n: u64) {
        let started = Instant::now();
        loop {
            let have = self.count(location);
            if have == n {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "the bucket holds {have} events, not {n}"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn rows(out: &Output) -> Vec<Value> {
    serde_json::from_str(&super::stdout_of_success(out)).unwrap()
}

/// Two days, three apps, two models: 5 `ok` requests and a failure.
pub fn events() -> Vec<Value> {
    vec![
        super::event(
            "e1",
            "2026-11-02T10:00:00Z",
            "a1",
            "openai/o3",
            1_000,
            10,
            0.01,
        ),
        super::event(
            "e2",
            "2026-11-02T11:00:00Z",
            "a2",
            "openai/o3",
            2_000,
            20,
            0.02,
        ),
        super::event(
            "e3",
            "2026-11-03T09:00:00Z",
            "a3",
            "openai/o3",
            40_000,
            30,
            0.03,
        ),
        super::event(
            "e4",
            "2026-11-03T10:00:00Z",
            "a1",
            "anthropic/claude-haiku-4.5",
            500,
            5,
            0.001,
        ),
        super::event(
            "e5",
            "2026-11-03T12:00:00Z",
            "a2",
            "anthropic/claude-haiku-4.5",
            700,
            7,
            0.002,
        ),
        super::with(
            super::event("e6", "2026-11-03T13:00:00Z", "a3", "openai/o3", 9, 0, 0.0),
            "status",
            json!("error"),
        ),
    ]
}

/// Per model over the `ok` events of [`events`]: requests, tokens and distinct apps.
pub const PER_MODEL: &str = "SELECT model, count(*) AS requests, \
                             sum(input_tokens + output_tokens) AS tokens, \
                             count(DISTINCT app_id) AS apps \
                             FROM events WHERE status = 'ok' GROUP BY model ORDER BY model";

/// [`PER_MODEL`]'s answer over [`events`].
pub fn per_model_answer() -> Vec<Value> {
    vec![
        json!({"model": "anthropic/claude-haiku-4.5", "requests": 2, "tokens": 1_212, "apps": 2}),
        json!({"model": "openai/o3", "requests": 3, "tokens": 43_060, "apps": 3}),
    ]
}
