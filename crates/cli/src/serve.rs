//! `modelshare serve`: open the lake for ingest, start the HTTP server, shut down cleanly.

use crate::config::ServeArgs;
use anyhow::Context;
use modelshare_ingest::{Ingester, Lake};
use modelshare_query::QueryEngine;
use modelshare_web::AppState;
use std::process::ExitCode;
use std::sync::Arc;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    run_with_banner(args, |_| {}).await
}

/// Starts the server; `banner` is called with the bound address (so `demo` can print URLs that
/// name the real port).
pub async fn run_with_banner(
    args: ServeArgs,
    banner: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<ExitCode> {
    // Dashboards first: an invalid file must stop start-up before anything is opened.
    let site = modelshare_site::Site::load(
        modelshare_site::queries::Registry::builtin(),
        args.dashboards.as_deref(),
    )
    .context("invalid dashboards")?;
    let lake = Lake::open(&args.lake.data_dir)
        .with_context(|| format!("cannot open the lake at {}", args.lake.data_dir.display()))?;
    let ingest_config = args.ingest.to_config()?;
    let lake_for_open = lake.clone();
    let ingester =
        tokio::task::spawn_blocking(move || Ingester::open(lake_for_open, ingest_config))
            .await
            .context("ingest start-up panicked")??;
    let ingester = Arc::new(ingester);
    let query = QueryEngine::new(
        lake.events_dir(),
        Some(ingester.live()),
        args.query.to_config(),
    )?;
    let state =
        AppState::new(Some(Arc::clone(&ingester)), query, args.max_body_bytes).with_site(site);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Install the handlers before announcing the port: a SIGTERM sent as soon as the banner is
    // read must drain and flush, not kill the process with the default action.
    let shutdown = shutdown_signal()?;
    // Tests and scripts read this line to find the port.
    banner(addr);
    println!(
        "modelshare listening on http://{addr} (lake: {})",
        lake.root().display()
    );
    modelshare_web::serve(listener, state, shutdown)
        .await
        .context("server failed")?;
    tracing::info!("flushing buffered rows before exit");
    tokio::task::spawn_blocking(move || ingester.shutdown())
        .await
        .context("shutdown panicked")?;
    Ok(ExitCode::SUCCESS)
}

/// Registers SIGTERM and Ctrl-C handlers now and returns a future that resolves on either.
fn shutdown_signal() -> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("cannot install the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("cannot install the SIGINT handler")?;
    Ok(async move {
        tokio::select! {
            _ = term.recv() => {},
            _ = int.recv() => {},
        }
        tracing::info!("shutdown signal received");
    })
}
