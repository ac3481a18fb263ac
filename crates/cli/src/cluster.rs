//! `modelshare cluster scheduler|executor`: members of an Apache DataFusion Ballista cluster
//! over the lake, and the client `query --ballista` and `serve --ballista` use
//! (`modelshare_query::distributed`). A build without the `ballista` feature parses the same
//! flags and says how to get a build that has it.

use crate::config::ClusterRole;
use modelshare_query::QueryEngine;
use std::process::ExitCode;
use std::time::Duration;

/// What a build without Ballista answers to its commands and flags.
#[cfg(not(feature = "ballista"))]
const NOT_BUILT: &str = "this modelshare was built without Ballista; build it with \
    `cargo build --release --features ballista` to use `--ballista` and `modelshare cluster`";

#[cfg(feature = "ballista")]
pub use with_ballista::*;

#[cfg(not(feature = "ballista"))]
pub async fn run(_role: ClusterRole) -> anyhow::Result<ExitCode> {
    anyhow::bail!(NOT_BUILT)
}

/// Runs `sql` on the cluster at `scheduler` over the lake at `location`.
#[cfg(not(feature = "ballista"))]
pub async fn query(
    _scheduler: &str,
    _location: &modelshare_query::LakeLocation,
    _sql: &str,
    _timeout: Duration,
) -> anyhow::Result<Vec<arrow::array::RecordBatch>> {
    anyhow::bail!(NOT_BUILT)
}

/// `engine`, sending its ad-hoc SQL to the cluster at `scheduler` (`serve --ballista`).
#[cfg(not(feature = "ballista"))]
pub fn route_sql(
    _engine: QueryEngine,
    _scheduler: &str,
    _location: &modelshare_query::LakeLocation,
) -> anyhow::Result<QueryEngine> {
    anyhow::bail!(NOT_BUILT)
}

#[cfg(feature = "ballista")]
mod with_ballista {
    use super::*;
    use crate::config::{ExecutorArgs, SchedulerArgs};
    use anyhow::Context;
    use modelshare_query::LakeLocation;
    use modelshare_query::distributed::{
        BallistaSql, ExecutorSettings, SchedulerUrl, run_executor, run_scheduler,
    };
    use std::sync::Arc;

    pub async fn run(role: ClusterRole) -> anyhow::Result<ExitCode> {
        match role {
            ClusterRole::Scheduler(args) => scheduler(args).await,
            ClusterRole::Executor(args) => executor(args).await,
        }
    }

    async fn scheduler(args: SchedulerArgs) -> anyhow::Result<ExitCode> {
        let location = LakeLocation::parse(&args.data_dir)?;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let addr = listener.local_addr()?;
        // Tests and scripts read this line to find the port.
        println!("modelshare cluster scheduler listening on df://{addr} (lake: {location})");
        tokio::select! {
            result = run_scheduler(listener, &location) => result?,
            () = crate::serve::shutdown_signal()? => {}
        }
        Ok(ExitCode::SUCCESS)
    }

    async fn executor(args: ExecutorArgs) -> anyhow::Result<ExitCode> {
        let location = LakeLocation::parse(&args.data_dir)?;
        let scheduler: SchedulerUrl = args.scheduler.parse()?;
        anyhow::ensure!(
            args.listen.port() != 0,
            "--listen needs a port: the executor tells the scheduler where to reach it"
        );
        anyhow::ensure!(
            !args.listen.ip().is_unspecified() || args.advertise_host.is_some(),
            "--listen {} needs --advertise-host: the others cannot reach a wildcard address",
            args.listen
        );
        // Kept until the executor stops, then removed with what is left in it.
        let (work_dir, _temporary) =
            crate::dir_or_temporary(args.work_dir, "modelshare-executor-")?;
        let slots = args
            .slots
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(2, |n| n.get()));
        println!(
            "modelshare cluster executor on {} with {slots} slots, for scheduler {scheduler} (lake: {location})",
            args.listen
        );
        let settings = ExecutorSettings {
            scheduler,
            bind: args.listen,
            advertise_host: args.advertise_host,
            slots,
            work_dir,
        };
        run_executor(settings, &location).await?;
        Ok(ExitCode::SUCCESS)
    }

    /// Runs `sql` on the cluster at `scheduler` over the lake at `location`.
    pub async fn query(
        scheduler: &str,
        location: &LakeLocation,
        sql: &str,
        timeout: Duration,
    ) -> anyhow::Result<Vec<arrow::array::RecordBatch>> {
        let client = BallistaSql::new(scheduler.parse()?, location)?;
        Ok(client.sql(sql, timeout).await?)
    }

    /// `engine`, sending its ad-hoc SQL to the cluster at `scheduler` (`serve --ballista`).
    pub fn route_sql(
        engine: QueryEngine,
        scheduler: &str,
        location: &LakeLocation,
    ) -> anyhow::Result<QueryEngine> {
        let client = BallistaSql::new(scheduler.parse()?, location)?;
        Ok(engine.with_remote_sql(Arc::new(client)))
    }
}
