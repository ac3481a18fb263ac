//! Request fences applied to every route by one middleware ([`guard`]): CORS for the public
//! read API (preflight answered here), a per-client rate limit on public reads (the `governor`
//! crate's keyed GCRA limiter, equivalent to a token bucket; 429 with `Retry-After`), and a time
//! limit on every request (408), which also covers clients that send their body too slowly.
//! Body size limits live with the routes.
//!
//! The client is the one [`crate::client`] resolves: the TCP peer, or behind a trusted proxy the
//! address the proxy names (a trusted proxy that names nobody is one client).

use crate::ApiError;
use crate::client::Client;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota};
use std::net::{IpAddr, Ipv4Addr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

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

/// Clients tracked before those whose allowance is full again are forgotten.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Per-client rate limits.
#[derive(Debug)]
pub struct Limits {
    pub config: LimitConfig,
    /// `None` when rate limiting is off.
    limiter: Option<DefaultKeyedRateLimiter<IpAddr>>,
    clock: DefaultClock,
    /// Requests refused with 429 (exported on `/metrics`).
    pub throttled: std::sync::atomic::AtomicU64,
}

impl Limits {
    pub fn new(config: LimitConfig) -> Arc<Limits> {
        // One request every 1/rate seconds, `burst` at once after a quiet spell.
        let quota = (config.rate_per_sec > 0.0)
            .then(|| Quota::with_period(Duration::from_secs_f64(1.0 / config.rate_per_sec)))
            .flatten()
            .map(|q| {
                let burst = config.burst.max(1.0).min(f64::from(u32::MAX)).round() as u32;
                q.allow_burst(NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN))
            });
        Arc::new(Limits {
            config,
            limiter: quota.map(DefaultKeyedRateLimiter::keyed),
            clock: DefaultClock::default(),
            throttled: Default::default(),
        })
    }

    /// Takes one request from `client`'s allowance, or says how many seconds until it has one.
    fn take(&self, client: IpAddr) -> Result<(), u64> {
        let Some(limiter) = &self.limiter else {
            return Ok(());
        };
        if limiter.len() >= MAX_TRACKED_CLIENTS {
            limiter.retain_recent();
        }
        limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(self.clock.now());
            wait.as_secs_f64().ceil().max(1.0) as u64
        })
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
        if let Err(secs) = limits.take(client) {
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
    fn allowance_refills_at_the_configured_rate() {
        let l = Limits::new(LimitConfig {
            rate_per_sec: 0.5,
            burst: 2.0,
            request_timeout: Duration::from_secs(1),
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert_eq!(l.take(ip), Ok(()));
        assert_eq!(l.take(ip), Ok(()));
        assert_eq!(l.take(ip), Err(2), "one request per 2 s after the burst");
        let other = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        assert_eq!(l.take(other), Ok(()), "each client has its own allowance");

        let fast = Limits::new(LimitConfig {
            rate_per_sec: 50.0,
            burst: 1.0,
            request_timeout: Duration::from_secs(1),
        });
        assert_eq!(fast.take(ip), Ok(()));
        assert_eq!(fast.take(ip), Err(1), "less than a second is asked as 1 s");
        std::thread::sleep(Duration::from_millis(40));
        assert_eq!(fast.take(ip), Ok(()), "refilled after 1/rate");
    }

    #[test]
    fn no_rate_means_no_limit() {
        let l = Limits::new(LimitConfig {
            rate_per_sec: 0.0,
            ..LimitConfig::default()
        });
        let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
        assert!((0..10_000).all(|_| l.take(ip).is_ok()));
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
