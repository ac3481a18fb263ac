//! The HTTP service: event ingest, the `/v1` JSON API, health and metrics.
//!
//! Layout:
//! - [`error`]: [`ApiError`], the one JSON error shape and its status codes.
//! - [`ingest`]: `POST /v1/events` (NDJSON / JSON, gzip / zstd, idempotency keys).
//! - [`params`]: strict query-string parsing with errors that name the parameter.
//! - [`api`]: leaderboard, authors, share and tasks endpoints.
//! - [`ops`]: `/healthz` and Prometheus `/metrics`.
//! - [`site`]: the website (#5): dashboard pages, `/charts/...` SVGs, HTML error pages.

pub mod api;
pub mod error;
pub mod ingest;
pub mod ops;
pub mod params;
pub mod site;

pub use error::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use modelshare_ingest::Ingester;
use modelshare_query::QueryEngine;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

/// Default largest accepted request body (after decompression): 16 MiB.
pub const DEFAULT_MAX_BODY_BYTES: usize = 16 << 20;

/// Everything a handler needs; cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    /// `None` for a read-only server (no ingest endpoint).
    pub ingester: Option<Arc<Ingester>>,
    pub query: QueryEngine,
    pub max_body_bytes: usize,
    pub counters: Arc<WebCounters>,
    /// The website (dashboards); `None` serves the API only.
    pub site: Option<Arc<modelshare_site::Site>>,
}

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct WebCounters {
    pub events_rejected: AtomicU64,
    pub ingest_requests: AtomicU64,
    pub idempotent_replays: AtomicU64,
}

impl AppState {
    pub fn new(ingester: Option<Arc<Ingester>>, query: QueryEngine, max_body_bytes: usize) -> Self {
        AppState {
            ingester,
            query,
            max_body_bytes,
            counters: Arc::default(),
            site: None,
        }
    }

    /// Serves `site`'s pages and charts too.
    pub fn with_site(mut self, site: modelshare_site::Site) -> Self {
        self.site = Some(Arc::new(site));
        self
    }
}

/// All routes, without a socket (tests can drive it with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    // Compressed bodies are bounded by the same limit before they are inflated.
    let limit = state.max_body_bytes;
    let mut router = Router::new();
    // Website (#5): one route per dashboard file, the charts, an HTML 404 outside /v1.
    if let Some(website) = &state.site {
        for d in &website.dashboards.pages {
            router = router.route(&d.route, site::page_route(&d.id));
        }
        router = router.route("/charts/{dashboard}/{file}", get(site::chart));
    }
    router
        .route("/v1/events", post(ingest::post_events))
        .route("/v1/leaderboard", get(api::leaderboard))
        .route("/v1/authors", get(api::authors))
        .route("/v1/share", get(api::share))
        .route("/v1/tasks", get(api::tasks))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        .fallback(site::fallback)
        .layer(DefaultBodyLimit::max(limit))
        .with_state(state)
}

/// Serves `state` on `listener` until `shutdown` resolves, letting in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
