//! Shared helpers for the end-to-end tests: start the real `modelshare` binary on a random
//! loopback port against a temporary lake, talk HTTP to it, stop or kill it.
#![allow(dead_code, unreachable_pub, clippy::unwrap_used)]

use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

pub mod s3;

pub const BIN: &str = env!("CARGO_BIN_EXE_modelshare");

#[derive(Debug)]
pub struct Server {
    pub child: Child,
    pub url: String,
    pub dir: PathBuf,
    pub client: reqwest::Client,
}

impl Server {
    /// Starts `modelshare serve` on `dir` with extra flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        Server::start_via(&[], "127.0.0.1:0", dir, extra)
    }

    /// Starts `modelshare serve` listening on `listen` (port 0: a free one).
    pub fn start_on(listen: &str, dir: &Path, extra: &[&str]) -> Server {
        Server::start_via(&[], listen, dir, extra)
    }

    /// Starts `modelshare serve` through a launcher (e.g. `fiu-run -x`, which execs it, so the
    /// child's pid is the server's).
    pub fn start_via(launcher: &[&str], listen: &str, dir: &Path, extra: &[&str]) -> Server {
        let mut command = match launcher.split_first() {
            Some((program, args)) => {
                let mut c = Command::new(program);
                c.args(args).arg(BIN);
                c
            }
            None => Command::new(BIN),
        };
        command
            .args(["serve", "--listen", listen, "--data-dir"])
            .arg(dir)
            .args(extra);
        Server::spawn(command, dir)
    }

    /// Starts `modelshare serve --listen 127.0.0.1:0 ARGS` with `env` added to its environment
    /// (for a lake in a bucket: `--data-dir s3://…` and the store's variables). `dir` is the
    /// node's local directory.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)], dir: &Path) -> Server {
        let mut command = Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .envs(env.iter().copied());
        Server::spawn(command, dir)
    }

    fn spawn(mut command: Command, dir: &Path) -> Server {
        let mut child = command
            .env("MODELSHARE_LOG", "warn")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start modelshare serve");
        let stdout = child.stdout.take().unwrap();
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        // A server listening on every address is reached through loopback.
        let url = line
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .unwrap_or_else(|| panic!("no url in {line:?}"))
            .replace("//0.0.0.0:", "//127.0.0.1:");
        Server {
            child,
            url,
            dir: dir.to_owned(),
            client: reqwest::Client::new(),
        }
    }

    /// The port the server listens on.
    pub fn port(&self) -> u16 {
        self.url.rsplit(':').next().unwrap().parse().unwrap()
    }

    pub async fn post(&self, content_type: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        self.post_with(content_type, &[], body).await
    }

    pub async fn post_with(
        &self,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        self.post_to("/v1/events", content_type, headers, body)
            .await
    }

    /// POSTs `body` to `path`; the status and the JSON answer (or its text as a string).
    pub async fn post_to(
        &self,
        path: &str,
        content_type: &str,
        headers: &[(&str, &str)],
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value) {
        let mut req = self
            .client
            .post(format!("{}{path}", self.url))
            .header("content-type", content_type)
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// `POST /v1/sql` of `query` as JSON, from loopback: status and answer.
    pub async fn post_sql(&self, query: &str) -> (u16, Value) {
        let body = json!({ "sql": query }).to_string();
        self.post_to("/v1/sql", "application/json", &[], body).await
    }

    /// Rows of a `POST /v1/sql` query that must succeed.
    pub async fn sql_rows(&self, headers: &[(&str, &str)], query: &str) -> Vec<Value> {
        let body = json!({ "sql": query }).to_string();
        let (status, answer) = self
            .post_to("/v1/sql", "application/json", headers, body)
            .await;
        assert_eq!(status, 200, "{query}: {answer}");
        answer["rows"].as_array().unwrap().clone()
    }

    pub async fn ndjson(&self, events: &[Value]) -> (u16, Value) {
        self.post("application/x-ndjson", ndjson(events)).await
    }

    pub async fn get(&self, path_and_query: &str) -> (u16, Value) {
        let (status, text) = self.get_text(path_and_query).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::String(text)),
        )
    }

    /// A GET of a page: its status and body text.
    pub async fn get_text(&self, path_and_query: &str) -> (u16, String) {
        let resp = self
            .client
            .get(format!("{}{path_and_query}", self.url))
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.text().await.unwrap())
    }

    /// Waits (30 s at most) until `/healthz` counts `days` closed days with a current hourly
    /// file.
    pub async fn wait_for_hourly_days(&self, days: u64) {
        for _ in 0..600 {
            if self.get_ok("/healthz").await["cube"]["hourly_days"] == days {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("{days} days did not get their hourly file within 30 s");
    }

    /// A GET that must answer 200; its JSON body.
    pub async fn get_ok(&self, path_and_query: &str) -> Value {
        let (status, body) = self.get(path_and_query).await;
        assert_eq!(status, 200, "{path_and_query}: {body}");
        body
    }

    /// Waits (30 s at most) until the server has checked its app-day cube against the events and
    /// every day has its groups summary; returns `/healthz`.
    pub async fn wait_for_cube(&self) -> Value {
        for _ in 0..600 {
            let health = self.get_ok("/healthz").await;
            let cube = &health["cube"];
            if cube["raw_days"] == json!([])
                && cube["summarized_days"] == cube["days"]
                && cube["summarized_weeks"] == cube["weeks"]
            {
                return health;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("the cube was not checked and summarized within 30 s");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "server exited with {status}");
    }

    /// SIGKILL: no chance to flush anything.
    pub fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// A valid event; override fields with `with`.
pub fn event(
    id: &str,
    ts: &str,
    app: &str,
    model: &str,
    input: u64,
    output: u64,
    cost: f64,
) -> Value {
    json!({
        "event_id": id, "ts": ts, "app_id": app, "task": "programming",
        "model": model, "provider": model.split('/').next().unwrap(),
        "input_tokens": input, "output_tokens": output, "cost_usd": cost,
        "latency_ms": 800, "ttft_ms": 200, "status": "ok", "finish_reason": "stop"
    })
}

pub fn with(mut e: Value, key: &str, value: Value) -> Value {
    e[key] = value;
    e
}

/// Runs `modelshare query --format json` on a lake and returns the rows.
pub fn sql(dir: &Path, query: &str) -> Vec<Value> {
    let out = run_ok([
        "query".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--data-dir".as_ref(),
        dir.as_os_str(),
        query.as_ref(),
    ]);
    serde_json::from_str(&out).unwrap()
}

/// The visible files of `dir` (not its subdirectories) whose name ends with `suffix`, sorted;
/// none when `dir` does not exist.
pub fn files_in(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .map(|d| {
            d.filter_map(Result::ok)
                .map(|e| e.path())
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.ends_with(suffix) && !n.starts_with('.'))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

pub fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-12
}

pub async fn wait_until(mut cond: impl AsyncFnMut() -> bool) {
    for _ in 0..100 {
        if cond().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("condition not met within 5 s");
}

/// Runs `modelshare` with `args` (warnings only in the log) and returns its standard output;
/// panics with its standard error when it fails.
pub fn run_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let out = Command::new(BIN)
        .args(args)
        .env("MODELSHARE_LOG", "warn")
        .output()
        .unwrap();
    stdout_of_success(&out)
}

/// The standard output of a run that must have succeeded (its standard error is the panic's
/// message otherwise).
pub fn stdout_of_success(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

/// The standard error of a run that must have failed; `what` names the run in the panic.
pub fn stderr_of_failure(out: &std::process::Output, what: &str) -> String {
    assert!(!out.status.success(), "{what} succeeded");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// Runs `modelshare keys ARGS` on the lake at `dir`; its trimmed standard output (for `create`,
/// the secret).
pub fn keys(dir: &Path, args: &[&str]) -> String {
    let mut all: Vec<&std::ffi::OsStr> =
        vec!["keys".as_ref(), "--data-dir".as_ref(), dir.as_os_str()];
    all.extend(args.iter().map(|a| std::ffi::OsStr::new(*a)));
    run_ok(all).trim().to_owned()
}

/// Writes `events` into the lake at `lake` with `modelshare ingest` (Parquet files, as a
/// flushed server would leave them).
pub fn ingest(lake: &Path, events: &[Value]) {
    let file = lake.with_extension("ndjson");
    std::fs::write(&file, ndjson(events)).unwrap();
    run_ok([
        "ingest".as_ref(),
        "--data-dir".as_ref(),
        lake.as_os_str(),
        file.as_os_str(),
    ]);
    // On a size-limited disk the input must not keep the space the lake needs.
    std::fs::remove_file(&file).unwrap();
}

/// The data tables of an HTML page: per table its panel id, column names (`data-column`) and
/// the rows' raw cell values (`data-value`), as the site writes them.
pub fn html_tables(html: &str) -> Vec<(String, Vec<String>, Vec<Vec<String>>)> {
    let attr = |s: &str, name: &str| -> Vec<String> {
        let needle = format!("{name}=\"");
        s.match_indices(&needle)
            .map(|(i, _)| {
                let rest = &s[i + needle.len()..];
                unescape(&rest[..rest.find('"').unwrap()])
            })
            .collect()
    };
    let mut out = Vec::new();
    for table in html.split("<table class=\"data\"").skip(1) {
        let table = &table[..table.find("</table>").unwrap()];
        let panel = attr(table, "data-panel").remove(0);
        let (head, body) = table.split_once("</thead>").unwrap();
        let rows = body
            .split("<tr>")
            .skip(1)
            .map(|row| attr(row, "data-value"))
            .collect();
        out.push((panel, attr(head, "data-column"), rows));
    }
    out
}

fn unescape(s: &str) -> String {
    s.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}
