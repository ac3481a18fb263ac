//! End-to-end tests of the server's doors against the real binary: slow, silent and idle
//! connections are closed and counted, the connection cap holds, every write is refused from its
//! headers before its body arrives, revoking the last key closes writes and SQL, and forwarding
//! headers count only from trusted proxies.
#![allow(clippy::unwrap_used)]

mod common;

use common::{BIN, Server, keys};
use serde_json::{Value, json};
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

/// Generous bound for "the server closed the socket": far above the timeouts the tests set, far
/// below forever.
const CLOSED_WITHIN: Duration = Duration::from_secs(15);

/// What a raw connection saw: the bytes the server sent, and when (after connecting) it closed
/// the connection, if it did within the limit.
#[derive(Debug)]
struct Seen {
    text: String,
    closed_after: Option<Duration>,
}

/// Connects, sends `first`, then the bytes of `trickle` one every `every`, reading all along,
/// until the server closes the connection or `limit` passes.
fn hold(addr: &str, first: &[u8], trickle: &[u8], every: Duration, limit: Duration) -> Seen {
    let start = Instant::now();
    let mut conn = TcpStream::connect(addr).unwrap();
    conn.set_read_timeout(Some(every)).unwrap();
    let mut text = Vec::new();
    let closed = |text: Vec<u8>| Seen {
        text: String::from_utf8_lossy(&text).into_owned(),
        closed_after: Some(start.elapsed()),
    };
    if conn.write_all(first).is_err() {
        return closed(text);
    }
    let mut trickle = trickle.iter();
    let mut buf = [0u8; 4096];
    while start.elapsed() < limit {
        match conn.read(&mut buf) {
            Ok(0) => return closed(text),
            Ok(n) => {
                text.extend_from_slice(&buf[..n]);
                continue;
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => return closed(text),
        }
        if let Some(b) = trickle.next()
            && conn.write_all(&[*b]).is_err()
        {
            return closed(text);
        }
    }
    Seen {
        text: String::from_utf8_lossy(&text).into_owned(),
        closed_after: None,
    }
}

/// The host:port of a server.
fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_owned()
}

/// A counter or gauge from `/metrics`.
async fn metric(server: &Server, name: &str) -> f64 {
    let (status, text) = server.get("/metrics").await;
    assert_eq!(status, 200);
    let text = text.as_str().unwrap().to_owned();
    text.lines()
        .find_map(|l| l.strip_prefix(&format!("modelshare_{name} ")))
        .unwrap_or_else(|| panic!("no {name} in {text}"))
        .parse()
        .unwrap()
}

/// Status line and JSON body of a raw HTTP answer.
fn answer(text: &str) -> (String, Value) {
    let status = text.lines().next().unwrap_or("").to_owned();
    let body = text.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    (
        status,
        serde_json::from_str(body).unwrap_or(Value::String(body.into())),
    )
}

fn unauthorized(message: &str) -> Value {
    json!({"error": {"code": "unauthorized", "message": message}})
}

fn event(id: &str, app: &str) -> String {
    common::ndjson(&[common::event(
        id,
        "2026-11-20T10:00:00Z",
        app,
        "openai/gpt-4o",
        10,
        5,
        0.0,
    )])
}

/// `POST path` with optional headers; status and JSON body.
async fn post(server: &Server, path: &str, headers: &[(&str, &str)], body: String) -> (u16, Value) {
    let content_type = if path == "/v1/events" {
        "application/x-ndjson"
    } else {
        "application/json"
    };
    server.post_to(path, content_type, headers, body).await
}

async fn get_with(server: &Server, path: &str, headers: &[(&str, &str)]) -> u16 {
    let mut req = server.client.get(format!("{}{path}", server.url));
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap().status().as_u16()
}

#[tokio::test]
async fn slow_silent_and_idle_connections_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &[
            "--header-read-timeout-secs",
            "2",
            "--idle-timeout-secs",
            "3",
        ],
    );
    let a = addr(&server);
    let every = Duration::from_secs(1);
    let slowloris = {
        let a = a.clone();
        // One header byte every second never completes a head; each byte must not buy time.
        std::thread::spawn(move || {
            let head =
                b"GET /healthz HTTP/1.1\r\nhost: x\r\nx-padding: aaaaaaaaaaaaaaaaaaaaaaaa\r\n\r\n";
            hold(&a, b"", head, every, CLOSED_WITHIN)
        })
    };
    let silent = {
        let a = a.clone();
        std::thread::spawn(move || hold(&a, b"", b"", every, CLOSED_WITHIN))
    };
    let idle = {
        let a = a.clone();
        std::thread::spawn(move || {
            hold(
                &a,
                b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
                b"",
                every,
                CLOSED_WITHIN,
            )
        })
    };
    let slowloris = slowloris.join().unwrap();
    assert!(slowloris.closed_after.is_some(), "{slowloris:?}");
    assert_eq!(slowloris.text, "", "a cut head gets no answer");
    let silent = silent.join().unwrap();
    assert!(silent.closed_after.is_some(), "{silent:?}");
    let idle = idle.join().unwrap();
    assert!(idle.closed_after.is_some(), "{idle:?}");
    assert!(idle.text.starts_with("HTTP/1.1 200 OK\r\n"), "{idle:?}");
    // The slow head and the silent socket ran out of header time; the served one went idle.
    common::wait_until(async || {
        metric(&server, "connections_header_timeout_total").await == 2.0
            && metric(&server, "connections_idle_timeout_total").await == 1.0
            && metric(&server, "connections_open").await == 1.0
    })
    .await;
    server.stop();
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-connections", "2"]);
    let a = addr(&server);
    // Two keep-alive connections, each served once, hold both slots.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut conn = TcpStream::connect(&a).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        conn.write_all(b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n")
            .unwrap();
        let mut buf = [0u8; 1024];
        let n = conn.read(&mut buf).unwrap();
        assert!(buf[..n].starts_with(b"HTTP/1.1 200 OK\r\n"));
        held.push(conn);
    }
    // The third is closed without an answer.
    let third = hold(
        &a,
        b"GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n",
        b"",
        Duration::from_millis(200),
        CLOSED_WITHIN,
    );
    assert!(third.closed_after.is_some(), "{third:?}");
    assert_eq!(third.text, "");
    // Closing one frees its slot.
    drop(held.pop());
    let mut refused = 0.0;
    for _ in 0..100 {
        if let Ok(resp) = server
            .client
            .get(format!("{}/metrics", server.url))
            .send()
            .await
            && let Ok(text) = resp.text().await
        {
            refused = text
                .lines()
                .find_map(|l| l.strip_prefix("modelshare_connections_refused_total "))
                .unwrap()
                .parse()
                .unwrap();
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(refused >= 1.0, "the third connection was not counted");
    drop(held);
    server.stop();
}

/// Every way to write, and a few routes that take no writes at all.
const WRITE_PATHS: [&str; 9] = [
    "/v1/events",
    "/v1/traces",
    "/v1/litellm",
    "/v1/openrouter",
    "/v1/sql",
    "/v1/admin/apps/app-a",
    "/v1/no-such-route",
    "/v1/leaderboard",
    "/",
];

/// Sends only the head of a 1 MB POST: the answer must come from the head alone.
fn head_only(addr: &str, path: &str) -> (String, Value, Duration) {
    let head = format!(
        "POST {path} HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000000\r\n\r\n"
    );
    let seen = hold(
        addr,
        head.as_bytes(),
        b"",
        Duration::from_millis(100),
        CLOSED_WITHIN,
    );
    let took = seen.closed_after.unwrap_or(CLOSED_WITHIN);
    let (status, body) = answer(&seen.text);
    (status, body, took)
}

#[tokio::test]
async fn writes_are_refused_from_their_headers_before_the_body_arrives() {
    let dir = tempfile::tempdir().unwrap();
    keys(dir.path(), &["create", "--app", "app-a"]);
    // A request time limit far above the bound below: only an answer from the head is fast.
    let server = Server::start(dir.path(), &["--request-timeout-secs", "60"]);
    let a = addr(&server);
    for path in WRITE_PATHS {
        let (status, body, took) = head_only(&a, path);
        assert_eq!(status, "HTTP/1.1 401 Unauthorized", "{path}: {body}");
        let message = if path == "/v1/sql" || path.starts_with("/v1/admin/") {
            "a key is needed to run SQL or change which apps are shown: send `Authorization: Bearer <key>`"
        } else {
            "a key is needed to send events: send `Authorization: Bearer <key>`"
        };
        assert_eq!(body, unauthorized(message), "{path}");
        assert!(
            took < Duration::from_secs(5),
            "{path}: answered after {took:?}"
        );
    }
    server.stop();

    // A server that trusts no keyless client refuses the same way, with 403.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--trust-loopback=false"]);
    let (status, body, took) = head_only(&addr(&server), "/v1/events");
    assert_eq!(status, "HTTP/1.1 403 Forbidden", "{body}");
    assert_eq!(
        body["error"]["message"],
        "no key is configured and this server does not trust keyless clients (--trust-loopback is off); create one with `modelshare keys create --app APP`"
    );
    assert!(took < Duration::from_secs(5), "answered after {took:?}");
    server.stop();
}

#[tokio::test]
async fn revoking_the_last_key_closes_ingest_and_sql() {
    let dir = tempfile::tempdir().unwrap();
    let secret = keys(dir.path(), &["create", "--app", "ops", "--admin"]);
    let id = keys(dir.path(), &["list"])
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    let server = Server::start(dir.path(), &[]);
    let auth = format!("Bearer {secret}");
    let (status, _) = post(
        &server,
        "/v1/events",
        &[("authorization", &auth)],
        event("r1", "ops"),
    )
    .await;
    assert_eq!(status, 200);
    keys(dir.path(), &["revoke", &id]);

    let events_closed = "a key is needed to send events, and this server has no active key \
        (every key is revoked); create one with `modelshare keys create --app APP`";
    let sql_closed = "a key is needed to run SQL or change which apps are shown, and this server has no active key \
        (every key is revoked); create one with `modelshare keys create --app APP --admin`";
    let check = async |server: &Server| {
        // Loopback without a key: not reopened.
        let (status, body) = post(server, "/v1/events", &[], event("r2", "ops")).await;
        assert_eq!((status, body), (401, unauthorized(events_closed)));
        let sql = r#"{"sql":"SELECT 1"}"#.to_owned();
        let (status, body) = post(server, "/v1/sql", &[], sql).await;
        assert_eq!((status, body), (401, unauthorized(sql_closed)));
        // The revoked key itself.
        for path in ["/v1/events", "/v1/sql"] {
            let key = [("authorization", auth.as_str())];
            let (status, body) = post(server, path, &key, event("r3", "ops")).await;
            let revoked = unauthorized("this key has been revoked");
            assert_eq!((status, body), (401, revoked), "{path}");
        }
    };
    check(&server).await;
    // Nor after a restart: the key file still says keys were configured.
    server.stop();
    let server = Server::start(dir.path(), &[]);
    check(&server).await;
    server.stop();

    // A key file that lists no key at all counts as configured too.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("keys.json"), r#"{"keys": []}"#).unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, body) = post(&server, "/v1/events", &[], event("e1", "a")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (401, json!("unauthorized"))
    );
    server.stop();
}

#[tokio::test]
async fn loopback_trust_defaults_to_the_listen_address() {
    // On a loopback listener keyless loopback clients may write; elsewhere only when asked.
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let (status, _) = post(&server, "/v1/events", &[], event("l1", "a")).await;
    assert_eq!(status, 200);
    server.stop();
    let server = Server::start_on("0.0.0.0:0", dir.path(), &[]);
    let (status, body) = post(&server, "/v1/events", &[], event("l2", "a")).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (403, json!("forbidden")),
        "{body}"
    );
    server.stop();
    let server = Server::start_on("0.0.0.0:0", dir.path(), &["--trust-loopback"]);
    let (status, _) = post(&server, "/v1/events", &[], event("l3", "a")).await;
    assert_eq!(status, 200);
    server.stop();
}

#[tokio::test]
async fn forwarding_headers_count_only_from_trusted_proxies() {
    let rate = ["--rate-limit-rps", "0.01", "--rate-limit-burst", "1"];
    let local_only = "no key is configured, so only loopback clients connecting directly may send events; create one with `modelshare keys create --app APP`";

    // The test's own address is a trusted proxy.
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--trusted-proxies", "10.0.0.0/8,127.0.0.1"];
    flags.extend(rate);
    let server = Server::start(dir.path(), &flags);
    for headers in [
        // A proxy that adds no header cannot make the world local,
        vec![],
        // nor one that names a remote client,
        vec![("x-forwarded-for", "203.0.113.9")],
        // nor one that names (or passes on a client's claim of) loopback.
        vec![("x-forwarded-for", "127.0.0.1")],
        vec![("forwarded", "for=127.0.0.1")],
    ] {
        let (status, body) = post(&server, "/v1/events", &headers, event("p1", "a")).await;
        assert_eq!(status, 403, "{headers:?}: {body}");
        assert_eq!(body["error"]["message"], local_only, "{headers:?}");
    }
    // The named client is the one rate limited.
    let tasks = "/v1/tasks?date=2026-11-20";
    let from = |ip| [("x-forwarded-for", ip)];
    assert_eq!(get_with(&server, tasks, &from("203.0.113.1")).await, 200);
    assert_eq!(get_with(&server, tasks, &from("203.0.113.1")).await, 429);
    assert_eq!(get_with(&server, tasks, &from("203.0.113.2")).await, 200);
    // Hops the client wrote itself sit left of what the proxy appends.
    let spoofed = [("x-forwarded-for", "203.0.113.3, 203.0.113.2")];
    assert_eq!(get_with(&server, tasks, &spoofed).await, 429);
    server.stop();

    // The test's address is not a trusted proxy: its headers are not believed.
    let dir = tempfile::tempdir().unwrap();
    let mut flags = vec!["--trusted-proxies", "10.0.0.0/8"];
    flags.extend(rate);
    let server = Server::start(dir.path(), &flags);
    let (status, body) = post(
        &server,
        "/v1/events",
        &[("x-forwarded-for", "127.0.0.1")],
        event("u1", "a"),
    )
    .await;
    assert_eq!(
        (status, body["error"]["message"].clone()),
        (403, json!(local_only))
    );
    let (status, _) = post(&server, "/v1/events", &[], event("u2", "a")).await;
    assert_eq!(status, 200, "a direct loopback client stays local");
    assert_eq!(get_with(&server, tasks, &from("203.0.113.1")).await, 200);
    assert_eq!(
        get_with(&server, tasks, &from("203.0.113.2")).await,
        429,
        "another claimed address is still the same peer"
    );
    server.stop();
}

#[test]
fn bad_trusted_proxies_stop_start_up_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    for (flag, wanted) in [
        (
            "10.0.0.0/33",
            "\"10.0.0.0/33\" has a prefix length outside 0..=32",
        ),
        (
            "10.0.0.0/8,proxy.internal",
            "\"proxy.internal\" is not an IP address or network",
        ),
    ] {
        let out = Command::new(BIN)
            .args([
                "serve",
                "--listen",
                "127.0.0.1:0",
                "--trusted-proxies",
                flag,
                "--data-dir",
            ])
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(wanted), "{flag}: {err}");
        assert!(err.contains("--trusted-proxies"), "{flag}: {err}");
    }
}
