//! Request fences applied to every route by one middleware ([`guard`]): CORS for the public
//! read API (preflight answered here), a per-client token bucket on public reads (`GET`/`HEAD`
//! under `/v1/`; 429 with `Retry-After`), and a time limit on every request (408), which also
//! covers clients that send their body too slowly. Body size limits live with the routes.
//!
//! The client is the one [`crate::client`] resolves: the TCP peer, or behind a trusted proxy the
//! address the proxy names (a trusted proxy that names nobody is one client).

use crate::ApiError;
use crate::client::Client;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Settings of the fences.
#[derive(Debug, Clone, Copy)]
pub struct LimitConfig {
    /// Sustained public read requests per second per client; 0 turns rate limiting off.
    pub rate_per_sec: f64,
    /// Requests a client may make in a burst before the sustained rate applies.
    pub burst: f64,
    /// Longest a request (reading its body included) may take.
    pub request_timeout: Duration,
}

impl Default for LimitConfig {
    fn default() -> Self {
        LimitConfig {
            rate_per_sec: 20.0,
            burst: 100.0,
            request_timeout: Duration::from_secs(60),
        }
    }
}

/// Buckets kept before idle full ones are dropped.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Per-client token buckets.
#[derive(Debug)]
pub struct Limits {
    pub config: LimitConfig,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
    /// Requests refused with 429 (exported on `/metrics`).
    pub throttled: std::sync::atomic::AtomicU64,
}

impl Limits {
    pub fn new(config: LimitConfig) -> Arc<Limits> {
        Arc::new(Limits {
            config,
            buckets: Mutex::new(HashMap::new()),
            throttled: Default::default(),
        })
    }

    /// Takes one token for `client`, or says how many seconds until one is available.
    fn take(&self, client: IpAddr, now: Instant) -> Result<(), u64> {
        let c = self.config;
        if c.rate_per_sec <= 0.0 {
            return Ok(());
        }
        let burst = c.burst.max(1.0);
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_TRACKED_CLIENTS {
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * c.rate_per_sec < burst
            });
        }
        let (tokens, at) = buckets.entry(client).or_insert((burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * c.rate_per_sec).min(burst);
        *at = now;
        if *tokens >= 1.0 {
            *tokens -= 1.0;
            Ok(())
        } else {
            Err(((1.0 - *tokens) / c.rate_per_sec).ceil().max(1.0) as u64)
        }
    }
}

/// Reads that cost the server work: the `/v1` API, and the website's pages and charts (a page
/// with a new date runs its panels' queries). Health checks and metrics scrapes are exempt.
fn is_public_read(req: &Request) -> bool {
    (req.method() == Method::GET || req.method() == Method::HEAD)
        && !matches!(req.uri().path(), "/healthz" | "/metrics")
}

/// The rate-limit bucket of a client: its IPv4 address, or its IPv6 /64 (one subscriber's
/// prefix; keying full addresses would hand every client 2^64 buckets).
fn bucket_of(ip: IpAddr) -> IpAddr {
    match ip.to_canonical() {
        IpAddr::V6(v6) => {
            let s = v6.segments();
            IpAddr::V6(std::net::Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
        }
        v4 => v4,
    }
}

/// The middleware: CORS preflight, rate limit, time limit, CORS response header.
pub async fn guard(State(limits): State<Arc<Limits>>, req: Request, next: Next) -> Response {
    if req.method() == Method::OPTIONS && req.headers().contains_key(header::ORIGIN) {
        return preflight(&req);
    }
    let cors = req.headers().contains_key(header::ORIGIN)
        && (req.method() == Method::GET || req.method() == Method::HEAD);
    if is_public_read(&req) {
        let client = req
            .extensions()
            .get::<Client>()
            .map_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED), |c| {
                bucket_of(c.rate_key())
            });
        if let Err(secs) = limits.take(client, Instant::now()) {
            limits
                .throttled
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            return with_cors(ApiError::TooManyRequests(secs).into_response(), cors);
        }
    }
    let timeout = limits.config.request_timeout;
    let resp = match tokio::time::timeout(timeout, next.run(req)).await {
        Ok(resp) => resp,
        Err(_) => ApiError::RequestTimeout(timeout.as_secs().max(1)).into_response(),
    };
    with_cors(resp, cors)
}

fn with_cors(mut resp: Response, cors: bool) -> Response {
    if cors {
        resp.headers_mut().insert(
            header::ACCESS_CONTROL_ALLOW_ORIGIN,
            HeaderValue::from_static("*"),
        );
    }
    resp
}

/// Browsers may read the public API from any origin; cross-origin writes are not offered.
fn preflight(req: &Request) -> Response {
    let wanted = req
        .headers()
        .get(header::ACCESS_CONTROL_REQUEST_METHOD)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    if !matches!(wanted, "GET" | "HEAD") || !req.uri().path().starts_with("/v1/") {
        return ApiError::Forbidden(format!(
            "cross-origin {wanted} requests to {} are not allowed; the public API is GET only",
            req.uri().path()
        ))
        .into_response();
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    let h = resp.headers_mut();
    h.insert(
        header::ACCESS_CONTROL_ALLOW_ORIGIN,
        HeaderValue::from_static("*"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_METHODS,
        HeaderValue::from_static("GET, HEAD, OPTIONS"),
    );
    h.insert(
        header::ACCESS_CONTROL_ALLOW_HEADERS,
        HeaderValue::from_static("content-type"),
    );
    h.insert(
        header::ACCESS_CONTROL_MAX_AGE,
        HeaderValue::from_static("86400"),
    );
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_refills_at_the_configured_rate() {
        let l = Limits::new(LimitConfig {
            rate_per_sec: 0.5,
            burst: 2.0,
            request_timeout: Duration::from_secs(1),
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let t0 = Instant::now();
        assert_eq!(l.take(ip, t0), Ok(()));
        assert_eq!(l.take(ip, t0), Ok(()));
        assert_eq!(l.take(ip, t0), Err(2));
        assert_eq!(l.take(ip, t0 + Duration::from_secs(2)), Ok(()));
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(l.take(other, t0), Ok(()));
    }

    #[test]
    fn ipv6_clients_share_their_64() {
        let a: IpAddr = "2001:db8:1:2:aaaa::1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let b: IpAddr = "2001:db8:1:2:bbbb::9"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        let c: IpAddr = "2001:db8:1:3::1"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(bucket_of(a), bucket_of(b));
        assert_ne!(bucket_of(a), bucket_of(c));
        let mapped: IpAddr = "::ffff:192.0.2.7"
            .parse()
            .unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
        assert_eq!(bucket_of(mapped), IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7)));
    }
}
