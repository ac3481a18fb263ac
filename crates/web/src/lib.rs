//! The HTTP service: event ingest, the `/v1` JSON API, health and metrics.
//!
//! Layout:
//! - [`error`]: [`ApiError`], the one JSON error shape and its status codes.
//! - [`ingest`]: `POST /v1/events` (NDJSON / JSON, gzip / zstd, idempotency keys).
//! - [`params`]: strict query-string parsing with errors that name the parameter.
//! - [`api`]: leaderboard, authors, share and tasks endpoints.
//! - [`ops`]: `/healthz` and Prometheus `/metrics`.
//! - [`analytics`]: retention, switches, preference index, price vs share, shifts.
//! - [`snapshots`]: `/v1/snapshots` listing and Parquet downloads (ETag, Range).

pub mod analytics;
pub mod api;
pub mod error;
pub mod ingest;
pub mod ops;
pub mod params;
pub mod snapshots;

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
    /// The app-week rollup the analytics read; `None` when there is no lake (tests of the
    /// router alone).
    pub rollups: Option<modelshare_analytics::Rollups>,
    /// Lake root whose `snapshots/` are served (issue #6); `None` serves none.
    pub snapshots: Option<std::path::PathBuf>,
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
            rollups: None,
            snapshots: None,
        }
    }

    /// Serves the revealed-preference analytics from this lake's rollup.
    pub fn with_rollups(mut self, rollups: modelshare_analytics::Rollups) -> Self {
        self.rollups = Some(rollups);
        self
    }

    /// Serves the weekly snapshots of the lake at `lake_root`.
    pub fn with_snapshots(mut self, lake_root: impl Into<std::path::PathBuf>) -> Self {
        self.snapshots = Some(lake_root.into());
        self
    }
}

/// All routes, without a socket (tests can drive it with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    // Compressed bodies are bounded by the same limit before they are inflated.
    let limit = state.max_body_bytes;
    Router::new()
        .route("/v1/events", post(ingest::post_events))
        .route("/v1/leaderboard", get(api::leaderboard))
        .route("/v1/authors", get(api::authors))
        .route("/v1/share", get(api::share))
        .route("/v1/tasks", get(api::tasks))
        .route("/v1/retention", get(analytics::retention_endpoint))
        .route("/v1/switches", get(analytics::switches_endpoint))
        .route("/v1/index", get(analytics::index_endpoint))
        .route("/v1/price-share", get(analytics::price_share_endpoint))
        .route("/v1/shifts", get(analytics::shifts_endpoint))
        .route("/healthz", get(ops::healthz))
        .route("/metrics", get(ops::metrics))
        // Issue #6: weekly snapshots.
        .route("/v1/snapshots", get(snapshots::list))
        .route("/v1/snapshots/{file}", get(snapshots::download))
        .fallback(|| async { ApiError::NotFound("no such endpoint".into()) })
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
