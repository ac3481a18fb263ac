//! End-to-end tests of the server's doors against the real binary: slow, silent and idle
//! connections are closed and counted, and the connection cap holds.
#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
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
