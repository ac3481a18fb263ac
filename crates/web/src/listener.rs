//! The HTTP listener: accepts TCP connections, serves HTTP/1.1 on each with hyper, and closes the
//! ones that hold the server without using it.
//!
//! Why not `axum::serve`: it has no header-read or idle timeout and no connection cap, so a client
//! trickling one header byte every few seconds, a socket that sends nothing and an idle keep-alive
//! connection each held a socket and a task for as long as they liked. hyper's own
//! `header_read_timeout` restarts after every response, so it would also be the keep-alive
//! timeout; the two bounds differ, so one watchdog per connection enforces both:
//!
//! - a new connection must deliver its first request head within `header_read_timeout` of
//!   opening; later, a request head must be complete `header_read_timeout` after its first byte;
//! - between requests, a connection silent for `idle_timeout` after its last response is closed;
//! - while a request is handled (its body read included) the request time limit in
//!   [`crate::limits`] governs instead;
//! - while a response streams, a client that takes nothing for `idle_timeout` is cut off.
//!
//! At most `max_connections` are open at once (a semaphore); one more is closed as soon as it is
//! accepted, and counted. On shutdown the listener stops accepting, asks every connection to
//! finish the request in flight and close, and returns once all have: getting every permit of the
//! semaphore back is the signal.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame, Incoming, SizeHint};
use hyper::server::conn::http1;
use hyper_util::rt::TokioIo;
use std::convert::Infallible;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::{Pin, pin};
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, watch};
use tokio::time::Instant;

/// Default `header_read_timeout`.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default `idle_timeout`.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default `max_connections`.
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;

/// Bounds on connections (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerConfig {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Default for ListenerConfig {
    fn default() -> Self {
        ListenerConfig {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Connection counters exported on `/metrics`.
#[derive(Debug, Default)]
pub struct ConnCounters {
    /// Connections open now.
    pub open: AtomicU64,
    /// Connections closed at once because `max_connections` were open.
    pub refused: AtomicU64,
    /// Connections closed because a request head did not arrive in time.
    pub header_timeouts: AtomicU64,
    /// Connections closed because they sat idle (or stopped reading a response).
    pub idle_timeouts: AtomicU64,
}

/// Why the watchdog closed a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    Header,
    Idle,
}

/// What one connection is doing, updated by its socket and its requests.
#[derive(Debug)]
struct Activity {
    /// Requests whose handler has not answered yet.
    handling: u32,
    /// Responses whose body is still being sent.
    streaming: u32,
    /// Requests started on this connection.
    served: u64,
    /// When the connection opened or last became free of requests.
    free_since: Instant,
    /// First byte read while free: the start of the next request head.
    head_started: Option<Instant>,
    /// Last byte read or written.
    last_io: Instant,
}

impl Activity {
    fn new(now: Instant) -> Self {
        Activity {
            handling: 0,
            streaming: 0,
            served: 0,
            free_since: now,
            head_started: None,
            last_io: now,
        }
    }

    fn is_free(&self) -> bool {
        self.handling == 0 && self.streaming == 0
    }

    fn on_read(&mut self, now: Instant) {
        self.last_io = now;
        if self.is_free() && self.head_started.is_none() {
            self.head_started = Some(now);
        }
    }

    fn on_write(&mut self, now: Instant) {
        self.last_io = now;
    }

    fn begin_request(&mut self) {
        self.handling += 1;
        self.served += 1;
        self.head_started = None;
    }

    fn settle(&mut self, now: Instant) {
        if self.is_free() {
            self.free_since = now;
            self.head_started = None;
        }
    }

    /// When, and why, the connection is cut if nothing happens; `None` while a handler runs.
    fn deadline(&self, config: &ListenerConfig) -> Option<(Instant, Cut)> {
        if self.handling > 0 {
            None
        } else if self.streaming > 0 {
            Some((self.last_io + config.idle_timeout, Cut::Idle))
        } else if self.served == 0 {
            Some((self.free_since + config.header_read_timeout, Cut::Header))
        } else if let Some(started) = self.head_started {
            Some((started + config.header_read_timeout, Cut::Header))
        } else {
            Some((self.free_since + config.idle_timeout, Cut::Idle))
        }
    }
}

type Shared = Arc<Mutex<Activity>>;

fn lock(activity: &Mutex<Activity>) -> MutexGuard<'_, Activity> {
    activity.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Serves `router` on `listener` until `shutdown` resolves, then drains (see the module docs).
pub async fn run(
    listener: TcpListener,
    router: Router,
    config: ListenerConfig,
    counters: Arc<ConnCounters>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> io::Result<()> {
    let permits = config
        .max_connections
        .clamp(1, Semaphore::MAX_PERMITS.min(u32::MAX as usize));
    let slots = Arc::new(Semaphore::new(permits));
    let (stop, stopping) = watch::channel(false);
    let mut shutdown = pin!(shutdown);
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = &mut shutdown => break,
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(e) => {
                    pause_after_accept_error(e).await;
                    continue;
                }
            },
        };
        let Ok(permit) = Arc::clone(&slots).try_acquire_owned() else {
            counters.refused.fetch_add(1, Relaxed);
            tracing::debug!(%peer, "connection refused: too many open connections");
            drop(stream);
            continue;
        };
        counters.open.fetch_add(1, Relaxed);
        let open = Open {
            counters: Arc::clone(&counters),
            _permit: permit,
        };
        tokio::spawn(serve_connection(
            stream,
            peer,
            router.clone(),
            config,
            stopping.clone(),
            open,
        ));
    }
    drop(listener);
    let _ = stop.send(true);
    // Each connection gives its permit back when it closes.
    let drained = slots.acquire_many(permits as u32).await;
    drop(drained);
    Ok(())
}

/// Out of file descriptors and the like: wait instead of spinning on `accept`. A peer that gave
/// up before it was accepted is routine.
async fn pause_after_accept_error(e: io::Error) {
    use io::ErrorKind::{ConnectionAborted, ConnectionRefused, ConnectionReset};
    if matches!(
        e.kind(),
        ConnectionAborted | ConnectionRefused | ConnectionReset
    ) {
        return;
    }
    tracing::error!(error = %e, "accept failed; retrying in 1 s");
    tokio::time::sleep(Duration::from_secs(1)).await;
}

/// Held by a connection's task: counts it open and keeps its slot.
#[derive(Debug)]
struct Open {
    counters: Arc<ConnCounters>,
    _permit: OwnedSemaphorePermit,
}

impl Drop for Open {
    fn drop(&mut self) {
        self.counters.open.fetch_sub(1, Relaxed);
    }
}

async fn serve_connection(
    stream: TcpStream,
    peer: SocketAddr,
    router: Router,
    config: ListenerConfig,
    mut stopping: watch::Receiver<bool>,
    open: Open,
) {
    let activity: Shared = Arc::new(Mutex::new(Activity::new(Instant::now())));
    let io = TokioIo::new(Watched {
        stream,
        activity: Arc::clone(&activity),
    });
    let service = ConnService {
        router,
        peer,
        activity: Arc::clone(&activity),
    };
    let mut builder = http1::Builder::new();
    // The watchdog enforces the header timeout; hyper's would also cut idle keep-alives.
    builder.header_read_timeout(None::<Duration>);
    let mut conn = pin!(builder.serve_connection(io, service));
    let mut watchdog = pin!(watchdog(activity, config));
    let mut draining = false;
    loop {
        tokio::select! {
            served = conn.as_mut() => {
                if let Err(e) = served {
                    tracing::debug!(%peer, error = %e, "connection ended with an error");
                }
                break;
            }
            cut = &mut watchdog => {
                let counter = match cut {
                    Cut::Header => &open.counters.header_timeouts,
                    Cut::Idle => &open.counters.idle_timeouts,
                };
                counter.fetch_add(1, Relaxed);
                tracing::debug!(%peer, ?cut, "connection closed by its timeout");
                break;
            }
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

/// Resolves when the connection's current deadline passes.
async fn watchdog(activity: Shared, config: ListenerConfig) -> Cut {
    // While a handler runs there is no deadline; look again this often.
    let recheck = config.header_read_timeout.min(config.idle_timeout);
    loop {
        let next = lock(&activity).deadline(&config);
        match next {
            Some((at, cut)) if at <= Instant::now() => return cut,
            Some((at, _)) => tokio::time::sleep_until(at).await,
            None => tokio::time::sleep(recheck).await,
        }
    }
}

/// The socket, recording when bytes move.
#[derive(Debug)]
struct Watched {
    stream: TcpStream,
    activity: Shared,
}

impl AsyncRead for Watched {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let polled = Pin::new(&mut this.stream).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            lock(&this.activity).on_read(Instant::now());
        }
        polled
    }
}

impl Watched {
    fn wrote(&self, polled: &Poll<io::Result<usize>>) {
        if matches!(polled, Poll::Ready(Ok(n)) if *n > 0) {
            lock(&self.activity).on_write(Instant::now());
        }
    }
}

impl AsyncWrite for Watched {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write(cx, buf);
        this.wrote(&polled);
        polled
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.stream).poll_write_vectored(cx, bufs);
        this.wrote(&polled);
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_flush(cx)
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().stream).poll_shutdown(cx)
    }
}

/// One request's place in [`Activity`]: handled, then streaming, then done (on drop, also when
/// the connection is dropped mid-request).
#[derive(Debug)]
struct InFlight {
    activity: Shared,
    streaming: bool,
}

impl InFlight {
    fn begin(activity: &Shared) -> Self {
        lock(activity).begin_request();
        InFlight {
            activity: Arc::clone(activity),
            streaming: false,
        }
    }

    /// The handler has answered; the body is being sent.
    fn respond(&mut self) {
        let mut a = lock(&self.activity);
        a.handling -= 1;
        a.streaming += 1;
        self.streaming = true;
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        let mut a = lock(&self.activity);
        if self.streaming {
            a.streaming -= 1;
        } else {
            a.handling -= 1;
        }
        a.settle(Instant::now());
    }
}

/// The router as one connection's hyper service: adds the peer address and tracks requests.
#[derive(Debug, Clone)]
struct ConnService {
    router: Router,
    peer: SocketAddr,
    activity: Shared,
}

impl hyper::service::Service<hyper::Request<Incoming>> for ConnService {
    type Response = hyper::Response<Tracked>;
    type Error = Infallible;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Infallible>> + Send>>;

    fn call(&self, req: hyper::Request<Incoming>) -> Self::Future {
        let mut flight = InFlight::begin(&self.activity);
        let mut router = self.router.clone();
        let mut req = req.map(Body::new);
        req.extensions_mut().insert(ConnectInfo(self.peer));
        Box::pin(async move {
            // A router is always ready (its `poll_ready` returns `Ready` at once).
            let resp = tower_service::Service::call(&mut router, req).await?;
            flight.respond();
            Ok(resp.map(|body| Tracked {
                body,
                flight: Some(flight),
            }))
        })
    }
}

/// A response body that marks its request done once it has been sent.
#[derive(Debug)]
struct Tracked {
    body: Body,
    flight: Option<InFlight>,
}

impl HttpBody for Tracked {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, axum::Error>>> {
        let this = self.get_mut();
        let polled = Pin::new(&mut this.body).poll_frame(cx);
        if matches!(polled, Poll::Ready(None | Some(Err(_)))) {
            this.flight = None;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONFIG: ListenerConfig = ListenerConfig {
        header_read_timeout: Duration::from_secs(10),
        idle_timeout: Duration::from_secs(60),
        max_connections: 4,
    };

    fn at(a: &Activity, t0: Instant) -> Option<(u64, Cut)> {
        a.deadline(&CONFIG)
            .map(|(t, cut)| (t.duration_since(t0).as_secs(), cut))
    }

    #[test]
    fn deadlines_follow_the_connection_state() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut a = Activity::new(t0);
        // New and silent, or trickling its first head: the header clock runs from the opening.
        assert_eq!(at(&a, t0), Some((10, Cut::Header)));
        a.on_read(t0 + s(9));
        assert_eq!(at(&a, t0), Some((10, Cut::Header)));
        // Handling: no deadline, whatever the socket does.
        a.begin_request();
        a.on_read(t0 + s(30));
        assert_eq!(at(&a, t0), None);
        // Streaming the response: cut when the client stops taking bytes.
        a.handling -= 1;
        a.streaming += 1;
        a.on_write(t0 + s(40));
        assert_eq!(at(&a, t0), Some((100, Cut::Idle)));
        // Done: idle keep-alive, then a new head with its own header clock.
        a.streaming -= 1;
        a.settle(t0 + s(41));
        assert_eq!(at(&a, t0), Some((101, Cut::Idle)));
        a.on_read(t0 + s(90));
        assert_eq!(at(&a, t0), Some((100, Cut::Header)));
        a.on_read(t0 + s(95));
        assert_eq!(at(&a, t0), Some((100, Cut::Header)));
    }
}
