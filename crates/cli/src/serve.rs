//! `modelshare serve`: open the lake for ingest, start the HTTP server, shut down cleanly.

use crate::config::ServeArgs;
use anyhow::Context;
use modelshare_analytics::Rollups;
use modelshare_ingest::bucket::{BucketLake, LastHolder, LocalCopy};
use modelshare_ingest::location::LakeLocation;
use modelshare_ingest::{IngestError, Ingester, Lake};
use modelshare_query::QueryEngine;
use modelshare_web::AppState;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

pub async fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    run_with_banner(args, |_| {}).await
}

/// Starts the server; `banner` is called with the bound address (so `demo` can print URLs that
/// name the real port).
pub async fn run_with_banner(
    args: ServeArgs,
    banner: impl FnOnce(std::net::SocketAddr),
) -> anyhow::Result<ExitCode> {
    let location = LakeLocation::parse(&args.lake.data_dir)?;
    let (root, bucket) = match &location {
        LakeLocation::Local(dir) => {
            anyhow::ensure!(
                !args.lake.join && !args.lake.standby,
                "--join and --standby are for a lake in a bucket (--data-dir s3://BUCKET/PREFIX); \
                 a lake in a directory has one writer, which holds its LOCK"
            );
            (dir.clone(), None)
        }
        LakeLocation::Bucket(b) => {
            let node = node_id(args.lake.node_id.as_deref())?;
            anyhow::ensure!(
                args.lake.lease_secs >= 4,
                "--lease-secs must be at least 4 (it is renewed every quarter of it)"
            );
            let lease = Duration::from_secs(args.lake.lease_secs);
            (
                args.lake.local_dir.clone(),
                Some(Arc::new(BucketLake::new(b.clone(), node, lease)?)),
            )
        }
    };
    // Dashboards before the lake: an invalid file must stop start-up before the lake is opened.
    let mut registry = modelshare_site::queries::Registry::builtin();
    let public_apps = Arc::new(modelshare_web::public_apps::PublicAppStore::open(&root));
    modelshare_web::site_queries::register(&mut registry, &root, &public_apps)
        .context("cannot register the analytics queries")?;
    let site = modelshare_site::Site::load(registry, args.dashboards.as_deref())
        .context("invalid dashboards")?;
    let ingest_config = args.ingest.to_config()?;
    let (lake, ingester) = {
        let root = root.clone();
        let bucket = bucket.clone();
        let taking = if args.lake.join {
            Taking::Join
        } else if args.lake.standby {
            Taking::Wait
        } else {
            Taking::Now
        };
        tokio::task::spawn_blocking(move || open_lake(&root, bucket, taking, ingest_config))
            .await
            .context("ingest start-up panicked")??
    };
    let ingester = Arc::new(ingester);
    let mut query = QueryEngine::new(
        lake.events_dir(),
        Some(ingester.live()),
        args.query.to_config(),
    )?;
    if !args.query.raw_reads {
        query = query.with_coverage(ingester.coverage());
    }
    let rollups = Rollups::new(lake.clone());
    let refresher = crate::rollup::spawn_refresher(
        rollups.clone(),
        query.clone(),
        args.rollup.interval()?,
        args.rollup.grace(),
        upkeep(&ingester),
    );
    let (limits, sql_limits) = args.limits.to_configs()?;
    let connections = args.connections.to_config()?;
    let trust_loopback = args.trust.trust_loopback(args.listen);
    let proxies = args.trust.trusted_proxies.clone();
    let keys =
        modelshare_web::keys::KeyStore::open(lake.root()).context("cannot read the key file")?;
    let snapshot_task = spawn_snapshot_task(&args, lake.root(), upkeep(&ingester));
    let bucket_task = match &bucket {
        Some(b) => Some(spawn_bucket_tasks(
            Arc::clone(b),
            Arc::clone(&ingester),
            root.clone(),
            args.lake.bucket_sync_secs,
        )?),
        None => None,
    };
    let maintenance_task = spawn_maintenance(
        Arc::clone(&ingester),
        query.clone(),
        args.compaction.cube_interval()?,
        args.compaction
            .interval()?
            .map(|every| (every, args.compaction.grace())),
    );
    // Ad-hoc SQL on a cluster reads the lake of record (the bucket), which every executor sees;
    // the public reads stay on this node's cube.
    let query = match &args.ballista.ballista {
        Some(scheduler) => crate::cluster::route_sql(query, scheduler, &location)?,
        None => query,
    };
    let state = AppState::new(Some(Arc::clone(&ingester)), query, args.max_body_bytes)
        .with_rollups(rollups)
        .with_snapshots(lake.root())
        .with_keys(Arc::new(keys))
        .with_public_apps(public_apps)
        .with_loopback_trust(trust_loopback)
        .with_trusted_proxies(proxies.clone())
        .with_limits(limits)
        .with_sql_limits(sql_limits)
        .with_site(site);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    // Install the handlers before announcing the port: a SIGTERM sent as soon as the banner is
    // read must drain and flush, not kill the process with the default action.
    let shutdown = shutdown_signal()?;
    // Tests and scripts read this line to find the port.
    banner(addr);
    println!("modelshare listening on http://{addr} (lake: {location})");
    tracing::info!(
        trust_loopback,
        trusted_proxies = %proxies,
        "who may write without a key, and whose forwarding headers count"
    );
    modelshare_web::serve(listener, state, connections, shutdown)
        .await
        .context("server failed")?;
    refresher.abort();
    if let Some(task) = snapshot_task {
        task.abort();
    }
    maintenance_task.abort();
    tracing::info!("flushing buffered rows before exit");
    tokio::task::spawn_blocking(move || ingester.shutdown())
        .await
        .context("shutdown panicked")?;
    if let (Some(task), Some(b)) = (bucket_task, bucket) {
        task.abort();
        // The last flush's files are in the bucket already; this carries the rest and lets
        // the lease go, so another node need not wait for it to expire.
        tokio::task::spawn_blocking(move || {
            // A joined node without the lease has nothing to put but its flushes (made).
            match if b.syncs_as_holder() { b.sync(&root) } else { Ok(Default::default()) } {
                Ok(synced) => tracing::info!(put = synced.put, deleted = synced.deleted, lake = %b.url(), "bucket synced at shutdown"),
                Err(e) => tracing::warn!(error = %e, "bucket sync at shutdown failed; the next start of this node carries it"),
            }
            if let Err(e) = b.release_lease() {
                tracing::warn!(error = %e, "could not release the writer lease; it expires by itself");
            }
        })
        .await
        .context("shutdown panicked")?;
    }
    Ok(ExitCode::SUCCESS)
}

/// How a node of a lake in a bucket takes the writer lease at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Taking {
    /// Now, or fail naming the node that holds it.
    Now,
    /// Wait until it is free (`--standby`).
    Wait,
    /// Take it if it is free, else write beside the node that holds it (`--join`).
    Join,
}

/// Whether this node does the lake's work that must happen once (see
/// [`Ingester::may_maintain`]), asked at each pass: a joined node may take the lease later.
fn upkeep(ingester: &Arc<Ingester>) -> impl Fn() -> bool + Send + 'static {
    let ingester = Arc::clone(ingester);
    move || ingester.may_maintain()
}

/// Opens the lake for ingest. For a lake in a bucket, in this order: the local directory's
/// lock (one process per directory), the writer lease (one node per lake, unless nodes join),
/// the local copy (copied down when empty), then the WAL's replay.
fn open_lake(
    root: &std::path::Path,
    bucket: Option<Arc<BucketLake>>,
    taking: Taking,
    config: modelshare_ingest::IngestConfig,
) -> anyhow::Result<(Lake, Ingester)> {
    let lake =
        Lake::open(root).with_context(|| format!("cannot open the lake at {}", root.display()))?;
    let Some(bucket) = bucket else {
        let ingester = Ingester::open(lake.clone(), config)?;
        return Ok((lake, ingester));
    };
    let lock = lake.lock()?;
    bucket.adopt_copy(root);
    if taking == Taking::Join {
        bucket.share_writes();
    }
    let last = if taking == Taking::Join {
        match bucket.acquire_lease() {
            Ok(last) => Some(last),
            Err(IngestError::LeaseHeld { node, .. }) => {
                tracing::info!(writer = %node, lake = %bucket.url(), "joining the lake beside the node that holds its lease");
                None
            }
            Err(e) => return Err(e.into()),
        }
    } else {
        Some(take_lease(&bucket, taking == Taking::Wait)?)
    };
    let prepared = match &last {
        Some(last) => bucket.prepare_local_copy(root, last),
        None => bucket.prepare_member_copy(root),
    }
    .with_context(|| format!("cannot prepare the local copy of {}", bucket.url()));
    if prepared.is_err()
        && let Err(e) = bucket.release_lease()
    {
        tracing::warn!(error = %e, "could not release the writer lease; it expires by itself");
    }
    match prepared? {
        LocalCopy::Kept => {}
        LocalCopy::Pulled {
            files,
            bytes,
            removed,
        } => tracing::info!(
            files,
            bytes,
            removed,
            lake = %bucket.url(),
            local = %root.display(),
            last_writer = ?last,
            "brought the local copy to the bucket's state"
        ),
    }
    let lake = lake.with_bucket(bucket);
    let ingester = Ingester::open_locked(lake.clone(), lock, config)?;
    Ok((lake, ingester))
}

/// Takes the writer lease; a standby waits for it (until the node holding it stops, or its
/// lease expires) instead of failing.
fn take_lease(bucket: &BucketLake, standby: bool) -> anyhow::Result<LastHolder> {
    loop {
        match bucket.acquire_lease() {
            Ok(last) => return Ok(last),
            Err(IngestError::LeaseHeld { node, seconds, .. }) if standby => {
                tracing::info!(
                    writer = %node,
                    lease_secs_left = seconds,
                    "standby: waiting for the writer lease"
                );
                let wait = Duration::from_secs(seconds.max(1)).min(bucket.lease_ttl() / 4);
                std::thread::sleep(wait.max(Duration::from_millis(500)));
            }
            // A store that does not answer is waited out too: a standby is for outages.
            Err(e) if standby && e.is_retryable() => {
                tracing::warn!(error = %e, "standby: cannot read the writer lease; trying again");
                std::thread::sleep((bucket.lease_ttl() / 4).max(Duration::from_millis(500)));
            }
            Err(e) => return Err(e.into()),
        }
    }
}

/// This node's name in the writer lease: `--node-id`, or the host name.
pub(crate) fn node_id(given: Option<&str>) -> anyhow::Result<String> {
    let valid = |id: &str| {
        !id.is_empty()
            && id.len() <= 64
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
    };
    if let Some(id) = given {
        anyhow::ensure!(
            valid(id),
            "--node-id {id:?}: use 1 to 64 letters, digits, '-' or '_'"
        );
        return Ok(id.to_owned());
    }
    let host = std::fs::read_to_string("/etc/hostname")
        .ok()
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_default();
    let host: String = host
        .trim()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    Ok(if valid(&host) {
        host
    } else {
        "node".to_owned()
    })
}

/// The bucket's background work, in two tasks so a long sync never delays a renewal: the
/// writer lease renewed every quarter of its time, and the bucket made equal to the local copy
/// every `every_secs` (see `modelshare_ingest::bucket`). A failed pass is logged and tried again
/// at the next tick; a node that cannot renew stops writing to the bucket.
struct BucketTasks {
    renew: tokio::task::JoinHandle<()>,
    sync: tokio::task::JoinHandle<()>,
}

impl BucketTasks {
    fn abort(&self) {
        self.renew.abort();
        self.sync.abort();
    }
}

fn spawn_bucket_tasks(
    bucket: Arc<BucketLake>,
    ingester: Arc<Ingester>,
    root: std::path::PathBuf,
    every_secs: f64,
) -> anyhow::Result<BucketTasks> {
    anyhow::ensure!(
        every_secs.is_finite() && every_secs > 0.0,
        "--bucket-sync-secs must be a positive number of seconds"
    );
    let every = Duration::from_secs_f64(every_secs);
    let renewer = Arc::clone(&bucket);
    let renew = repeat_blocking(renewer.lease_ttl() / 4, "lease renewal", move || {
        // A joined node without the lease has nothing to renew; the sync task takes it over.
        if renewer.writes_are_shared() && !renewer.lease_taken() {
            return Ok(());
        }
        renewer.renew_lease()
    });
    let sync = repeat_blocking(every, "bucket sync", move || {
        if !bucket.syncs_as_holder() {
            return join_pass(&bucket, &ingester);
        }
        let synced = bucket.sync(&root)?;
        if synced.put > 0 || synced.deleted > 0 {
            tracing::info!(
                put = synced.put,
                put_bytes = synced.put_bytes,
                deleted = synced.deleted,
                deferred = synced.deferred,
                "bucket synced with the local copy"
            );
        }
        if bucket.writes_are_shared() {
            log_refresh(&ingester.refresh_from_bucket(false)?);
        }
        Ok(())
    });
    Ok(BucketTasks { renew, sync })
}

/// The bucket pass of a joined node without the lease: it takes the lease when it is free
/// (settling what the last holder left unfinished, then bringing its copy to the bucket's
/// state) and does the lake's upkeep from then on; otherwise it copies down what the other
/// nodes wrote.
fn join_pass(bucket: &BucketLake, ingester: &Ingester) -> Result<(), IngestError> {
    let taken = if bucket.takeover_pending() {
        // An earlier tick took the lease and could not finish the takeover: again.
        Ok(LastHolder::ThisNode)
    } else {
        bucket.acquire_lease()
    };
    match taken {
        Ok(last) => {
            // No upkeep and no sync until the copy is the bucket's state under this lease.
            bucket.set_takeover_pending(true);
            tracing::info!(last_writer = ?last, lake = %bucket.url(), "took the writer lease: this node now does the lake's upkeep");
            bucket.settle_unfinished_sync()?;
            log_refresh(&ingester.refresh_from_bucket(true)?);
            bucket.set_takeover_pending(false);
            Ok(())
        }
        Err(IngestError::LeaseHeld { .. }) => {
            log_refresh(&ingester.refresh_from_bucket(false)?);
            Ok(())
        }
        Err(e) => Err(e),
    }
}

fn log_refresh(refreshed: &modelshare_ingest::bucket::Refreshed) {
    if !refreshed.is_empty() {
        tracing::info!(
            fetched = refreshed.fetched.len(),
            removed = refreshed.removed.len(),
            "copied down what other nodes wrote"
        );
    }
}

/// Runs `pass` on the blocking pool every `period` (the first right away), logging failures.
fn repeat_blocking(
    period: Duration,
    what: &'static str,
    pass: impl Fn() -> Result<(), IngestError> + Send + Sync + 'static,
) -> tokio::task::JoinHandle<()> {
    let pass = Arc::new(pass);
    tokio::spawn(async move {
        let mut ticker = tokio::time::interval(period);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticker.tick().await;
            let pass = Arc::clone(&pass);
            match tokio::task::spawn_blocking(move || pass()).await {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "{what} failed; tried again at the next tick")
                }
                Err(e) if e.is_cancelled() => return,
                Err(e) => tracing::error!(error = %e, "{what} panicked"),
            }
        }
    })
}

/// Registers SIGTERM and Ctrl-C handlers now and returns a future that resolves on either.
pub(crate) fn shutdown_signal()
-> anyhow::Result<impl std::future::Future<Output = ()> + Send + 'static> {
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

/// Starts the background task that snapshots closed weeks: once at start-up, then
/// every `--snapshot-interval-secs`. Builds run on the blocking pool, never on request threads.
fn spawn_snapshot_task(
    args: &ServeArgs,
    lake_root: &std::path::Path,
    upkeep: impl Fn() -> bool + Send + 'static,
) -> Option<tokio::task::JoinHandle<()>> {
    let every = args.snapshots.snapshot_interval_secs;
    if !(every.is_finite() && every > 0.0) {
        return None;
    }
    let every = std::time::Duration::from_secs_f64(every);
    // Rows still buffered for Parquet are not in the files a snapshot reads: a week must not
    // close before a flush has had the chance to publish its last rows.
    let grace = std::time::Duration::from_secs(args.snapshots.snapshot_grace_secs).max(
        std::time::Duration::from_secs_f64(args.ingest.flush_interval_secs.max(0.0)),
    );
    let mut refresher = modelshare_snapshot::Refresher::new(lake_root, args.query.min_apps, grace);
    Some(tokio::spawn(async move {
        loop {
            if !upkeep() {
                tokio::time::sleep(every).await;
                continue;
            }
            let pass = tokio::task::spawn_blocking(move || {
                let result = refresher.refresh(chrono::Utc::now());
                (refresher, result)
            })
            .await;
            match pass {
                Ok((r, result)) => {
                    refresher = r;
                    match result {
                        Ok(built) => {
                            for info in built {
                                tracing::info!(snapshot = %info.name, rows = info.rows, "snapshot published");
                            }
                        }
                        Err(e) => tracing::warn!(error = %e, "snapshot build failed"),
                    }
                }
                Err(e) => {
                    tracing::error!(error = %e, "snapshot task panicked; snapshots stop");
                    return;
                }
            }
            tokio::time::sleep(every).await;
        }
    }))
}

/// Looks after the lake in the background, on the blocking pool, one step at a time: a pass
/// over the app-day cube and the id index (expiry, merges) at once (until it has checked the lake, public figures come from raw
/// events) and then every `cube_every`; compaction of closed days every `compaction.0` (days
/// that ended `compaction.1` ago). Failures (a full disk) are logged and leave the files as they
/// were, for the next pass.
fn spawn_maintenance(
    ingester: Arc<Ingester>,
    query: QueryEngine,
    cube_every: std::time::Duration,
    compaction: Option<(std::time::Duration, std::time::Duration)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let tick = compaction.map_or(cube_every, |(every, _)| every.min(cube_every));
        let mut ticker = tokio::time::interval(tick);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let due = |last: Option<tokio::time::Instant>, every| {
            last.is_none_or(|t: tokio::time::Instant| t.elapsed() + tick / 2 >= every)
        };
        let mut cube_at: Option<tokio::time::Instant> = None;
        let mut compacted_at: Option<tokio::time::Instant> = None;
        loop {
            ticker.tick().await;
            // A node of a lake in a bucket without the writer lease does none of the work that
            // must happen once: it learns from the holder's files what the cube answers for.
            let maintains = ingester.may_maintain();
            if due(cube_at, cube_every) {
                cube_at = Some(tokio::time::Instant::now());
                let ing = Arc::clone(&ingester);
                let started = std::time::Instant::now();
                let ids = Arc::clone(&ingester);
                let pass = move || {
                    if maintains {
                        ing.maintain_cube()
                    } else {
                        ing.observe_cube()
                    }
                };
                match tokio::task::spawn_blocking(pass).await {
                    Ok(Ok(pass)) => {
                        if pass.checked > 0 || !pass.rebuilt.is_empty() {
                            tracing::info!(
                                days_checked = pass.checked,
                                days_rebuilt = pass.rebuilt.len(),
                                days_merged = pass.merged,
                                ms = started.elapsed().as_millis() as u64,
                                "app-day cube checked; public figures come from it"
                            );
                        }
                    }
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "app-day cube upkeep failed; days not checked are read raw")
                    }
                    // The runtime is shutting down: not a fault.
                    Err(e) if e.is_cancelled() => return,
                    Err(e) => tracing::error!(error = %e, "app-day cube upkeep panicked"),
                }
                if !maintains {
                    continue;
                }
                // Runs past the duplicate window dropped, small ones merged: a lookup reads one
                // block per run, so their number must not grow with every flush.
                match tokio::task::spawn_blocking(move || ids.maintain_ids()).await {
                    Ok(Ok(_)) => {}
                    Ok(Err(e)) => {
                        tracing::warn!(error = %e, "id index upkeep failed; its runs stay as they are")
                    }
                    // The runtime is shutting down: not a fault.
                    Err(e) if e.is_cancelled() => return,
                    Err(e) => tracing::error!(error = %e, "id index upkeep panicked"),
                }
                let started = std::time::Instant::now();
                match summarize_hours(&ingester, &query).await {
                    Ok(0) => {}
                    Ok(days) => tracing::info!(
                        days,
                        ms = started.elapsed().as_millis() as u64,
                        "hourly summaries of closed days written"
                    ),
                    Err(e) => {
                        tracing::warn!(error = %e, "hourly summary upkeep failed; days without one are read raw")
                    }
                }
            }
            let Some((every, grace)) = compaction.filter(|_| maintains) else {
                continue;
            };
            if !due(compacted_at, every) {
                continue;
            }
            compacted_at = Some(tokio::time::Instant::now());
            let ing = Arc::clone(&ingester);
            match tokio::task::spawn_blocking(move || ing.compact_closed_days(grace)).await {
                Ok(Ok(done)) => {
                    for c in done {
                        tracing::info!(
                            date = %c.date,
                            files_before = c.files_before,
                            files_after = c.files_after,
                            bytes_before = c.bytes_before,
                            bytes_after = c.bytes_after,
                            rows = c.rows,
                            duplicates = c.duplicates,
                            "compacted a closed day"
                        );
                    }
                }
                Ok(Err(e)) => tracing::warn!(error = %e, "compaction failed; the day is unchanged"),
                // The runtime is shutting down: not a fault.
                Err(e) if e.is_cancelled() => return,
                Err(e) => tracing::error!(error = %e, "compaction panicked"),
            }
        }
    })
}

/// Writes the hourly summary of every closed day that lacks a current one (see
/// `modelshare_ingest::hourly`); returns how many it wrote.
async fn summarize_hours(ingester: &Arc<Ingester>, query: &QueryEngine) -> anyhow::Result<usize> {
    let ing = Arc::clone(ingester);
    let jobs = tokio::task::spawn_blocking(move || ing.hourly_jobs()).await??;
    let mut written = 0;
    for job in jobs {
        let rows = query.hour_summary(&job.events).await?;
        let ing = Arc::clone(ingester);
        if tokio::task::spawn_blocking(move || ing.publish_hourly(&job, &rows)).await?? {
            written += 1;
        }
    }
    Ok(written)
}
