//! The HTTP service: event ingest, the `/v1` JSON API, health and metrics.
//!
//! Layout:
//! - [`error`]: [`ApiError`], the one JSON error shape and its status codes.
//! - [`ingest`]: `POST /v1/events` (NDJSON / JSON, gzip / zstd, idempotency keys).
//! - [`params`]: strict query-string parsing with errors that name the parameter.
//! - [`api`]: leaderboard, authors, share and tasks endpoints.
//! - [`ops`]: `/healthz` and Prometheus `/metrics`.
//! - [`analytics`]: retention, switches, preference index, price vs share, shifts.
//! - [`feed`]: `/feeds/shifts.atom`, the significant shifts as an Atom feed.
//! - [`snapshots`]: `/v1/snapshots` listing and Parquet downloads (ETag, Range).
//! - [`telemetry`]: `POST /v1/traces` (OTLP), `/v1/litellm`, `/v1/openrouter`.
//! - [`keys`], [`auth`]: hashed ingest/admin keys bound to apps; who may write and run SQL,
//!   checked from the request head before any body is read.
//! - [`public_apps`], [`apps`]: the apps that chose to be shown by name, `/v1/apps` and the
//!   admin endpoints that record or withdraw the consent.
//! - [`stored_file`]: the small JSON files beside the lake (keys, consents), written atomically
//!   and re-read when they change.
//! - [`client`]: who the client is (TCP peer, trusted proxies' forwarding headers), and whether
//!   it is local.
//! - [`limits`]: CORS, per-client rate limits on public reads, request time limit.
//! - [`listener`]: the accept loop: header-read and idle timeouts, connection cap, draining.
//! - [`sql`]: `POST /v1/sql`, read-only admin SQL with memory, time and row caps.
//! - [`openapi`]: `GET /v1/openapi.json`, derived from the handlers registered in
//!   [`public_api_routes`] and [`private_api_routes`].
//! - [`site`]: the website: dashboard pages, `/charts/...` SVGs, HTML error pages.
//! - [`site_queries`]: the index, retention and snapshot queries the dashboards can name.

pub mod analytics;
pub mod api;
pub mod apps;
pub mod auth;
pub mod client;
pub mod error;
pub mod feed;
pub mod ingest;
pub mod keys;
pub mod limits;
pub mod listener;
pub mod openapi;
pub mod ops;
pub mod params;
pub mod public_apps;
pub mod read_cache;
pub mod site;
pub mod site_queries;
pub mod snapshots;
pub mod sql;
pub mod stored_file;
pub mod telemetry;

pub use error::ApiError;

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::routing::get;
use modelshare_ingest::Ingester;
use modelshare_query::QueryEngine;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

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
    /// Lake root whose `snapshots/` are served; `None` serves none.
    pub snapshots: Option<std::path::PathBuf>,
    // Keys, request fences, admin SQL caps.
    pub keys: Arc<keys::KeyStore>,
    /// The apps that chose to be shown by name.
    pub public_apps: Arc<public_apps::PublicAppStore>,
    /// Keyless local clients may write and run SQL while no key has ever been configured.
    pub trust_loopback: bool,
    /// Networks whose forwarding headers are believed.
    pub proxies: Arc<client::TrustedProxies>,
    pub limits: Arc<limits::Limits>,
    pub sql_limits: modelshare_query::sandbox::SqlLimits,
    /// The website (dashboards); `None` serves the API only.
    pub site: Option<Arc<modelshare_site::Site>>,
    /// Answers of the public reads (see [`read_cache`]).
    pub read_cache: Arc<read_cache::ReadCache>,
}

/// Default caps of `POST /v1/sql`.
pub const DEFAULT_SQL_LIMITS: modelshare_query::sandbox::SqlLimits =
    modelshare_query::sandbox::SqlLimits {
        timeout: std::time::Duration::from_secs(10),
        memory_bytes: 256 << 20,
        max_rows: 10_000,
    };

/// Counters kept by the HTTP layer.
#[derive(Debug, Default)]
pub struct WebCounters {
    pub events_rejected: AtomicU64,
    pub ingest_requests: AtomicU64,
    pub idempotent_replays: AtomicU64,
    /// Telemetry items that are not LLM calls (e.g. spans without GenAI attributes).
    pub items_ignored: AtomicU64,
    /// Kept by the listener.
    pub connections: Arc<listener::ConnCounters>,
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
            keys: Arc::new(keys::KeyStore::empty()),
            public_apps: Arc::default(),
            trust_loopback: false,
            proxies: Arc::default(),
            limits: limits::Limits::new(limits::LimitConfig::default()),
            sql_limits: DEFAULT_SQL_LIMITS,
            site: None,
            read_cache: Arc::default(),
        }
    }

    /// Changes whenever ingest stores or publishes rows (0 for a read-only server), and
    /// whenever the apps shown by name change: cached answers computed at another generation
    /// are reused only while fresh.
    pub fn lake_generation(&self) -> u64 {
        use std::sync::atomic::Ordering::Relaxed;
        let rows = self.ingester.as_ref().map_or(0, |i| {
            let m = i.metrics();
            m.events_stored.load(Relaxed) ^ m.flushes.load(Relaxed).rotate_left(40)
        });
        rows ^ self.public_apps.version().rotate_left(20)
    }

    /// Serves `site`'s pages and charts too.
    pub fn with_site(mut self, site: modelshare_site::Site) -> Self {
        self.site = Some(Arc::new(site));
        self
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

    /// Uses `keys` to authenticate writers and admins.
    pub fn with_keys(mut self, keys: Arc<keys::KeyStore>) -> Self {
        self.keys = keys;
        self
    }

    /// Shows the apps `store` lists by name.
    pub fn with_public_apps(mut self, store: Arc<public_apps::PublicAppStore>) -> Self {
        self.public_apps = store;
        self
    }

    /// Lets keyless local clients write and run SQL while no key has ever been configured.
    pub fn with_loopback_trust(mut self, trust: bool) -> Self {
        self.trust_loopback = trust;
        self
    }

    /// Believes forwarding headers from these networks.
    pub fn with_trusted_proxies(mut self, proxies: client::TrustedProxies) -> Self {
        self.proxies = Arc::new(proxies);
        self
    }

    /// Sets the rate and time limits.
    pub fn with_limits(mut self, config: limits::LimitConfig) -> Self {
        self.limits = limits::Limits::new(config);
        self
    }

    /// Sets the caps of `POST /v1/sql`.
    pub fn with_sql_limits(mut self, sql: modelshare_query::sandbox::SqlLimits) -> Self {
        self.sql_limits = sql;
        self
    }
}

/// All routes, without a socket (tests can drive it with `tower::ServiceExt::oneshot`).
pub fn router(state: AppState) -> Router {
    // Compressed bodies are bounded by the same limit before they are inflated.
    let limit = state.max_body_bytes;
    let fences = Arc::clone(&state.limits);
    let proxies = Arc::clone(&state.proxies);
    // Public reads, pages and charts included: answered from the response cache when they can
    // be, computed once for identical requests arriving together.
    let mut public_reads = Router::new();
    // Website: one route per dashboard file, the charts, an HTML 404 outside /v1.
    if let Some(website) = &state.site {
        for d in &website.dashboards.pages {
            public_reads = public_reads.route(&d.route, site::page_route(&d.id));
        }
        public_reads = public_reads.route("/charts/{dashboard}/{file}", get(site::chart));
    }
    let (api_reads, _) = public_api_routes().split_for_parts();
    let (api_rest, _) = private_api_routes().split_for_parts();
    let public_reads =
        public_reads
            .merge(api_reads)
            .route_layer(axum::middleware::from_fn_with_state(
                state.clone(),
                read_cache::cached,
            ));
    Router::new()
        .merge(public_reads)
        .merge(api_rest)
        .fallback(site::fallback)
        .layer(DefaultBodyLimit::max(limit))
        // The last layer runs first: who the client is, then the fences, then auth from the
        // headers alone, so a refused writer never gets to send its body.
        .layer(axum::middleware::from_fn_with_state(
            state.clone(),
            auth::gate,
        ))
        .layer(axum::middleware::from_fn_with_state(fences, limits::guard))
        .layer(axum::middleware::from_fn_with_state(
            proxies,
            client::identify,
        ))
        .with_state(state)
}

/// The public reads of the API, answered through the response cache. With
/// [`private_api_routes`], the only way an API route is added: the OpenAPI document is built from
/// the same two lists.
pub(crate) fn public_api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(api::leaderboard))
        .routes(routes!(api::authors))
        .routes(routes!(api::share))
        .routes(routes!(api::tasks))
        .routes(routes!(api::providers))
        .routes(routes!(api::incidents))
        .routes(routes!(analytics::retention_endpoint))
        .routes(routes!(analytics::switches_endpoint))
        .routes(routes!(analytics::index_endpoint))
        .routes(routes!(analytics::price_share_endpoint))
        .routes(routes!(analytics::shifts_endpoint))
        .routes(routes!(feed::shifts_feed))
        .routes(routes!(apps::list_apps))
        .routes(routes!(api::agents))
}

/// Ingest in every format, admin SQL, snapshots, the API description, health and metrics.
pub(crate) fn private_api_routes() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(ingest::post_events))
        .routes(routes!(telemetry::post_traces))
        .routes(routes!(telemetry::post_litellm))
        .routes(routes!(telemetry::post_openrouter))
        .routes(routes!(sql::post_sql))
        .routes(routes!(apps::publish_app, apps::withdraw_app))
        .routes(routes!(snapshots::list))
        .routes(routes!(snapshots::download))
        .routes(routes!(openapi::get_openapi))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::metrics))
}

/// Serves `state` on `listener` until `shutdown` resolves, letting in-flight requests finish.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AppState,
    config: listener::ListenerConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let counters = Arc::clone(&state.counters.connections);
    listener::run(listener, router(state), config, counters, shutdown).await
}
