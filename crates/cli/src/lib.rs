//! The `modelshare` command line.
//!
//! Layout:
//! - [`config`]: every flag and `MODELSHARE_*` variable, grouped by concern.
//! - [`serve`]: the HTTP server with durable ingest (`serve`, and the second half of `demo`).
//! - [`ingest`]: NDJSON files or stdin straight into a lake.
//! - [`query`]: ad-hoc SQL over the lake, printed as a table, CSV or JSON.
//! - [`rollup`]: the app-week rollup, built by hand or kept fresh by the server.
//! - [`generate`]: synthetic traffic into a lake or to a server; `demo` on top of it.
//! - [`export`]: a closed week's public snapshot or raw events to a Parquet file.
//! - [`keys`]: `modelshare keys create|list|revoke`.
//! - [`lake_copy`]: `generate`, `ingest`, `rollup` and `export` on a lake in a bucket, through a
//!   local copy under the writer lease.
//! - [`wal`]: `modelshare wal check|salvage`, for an operator after a damaged log.
//! - [`cluster`]: `modelshare cluster scheduler|executor` and the `--ballista` client (feature
//!   `ballista`).

pub mod apps;
pub mod cluster;
pub mod config;
pub mod export;
pub mod generate;
pub mod ingest;
pub mod keys;
pub mod lake_copy;
pub mod query;
pub mod rollup;
pub mod serve;
pub mod wal;

use clap::Parser;
use config::{Cli, Command};
use std::process::ExitCode;

/// Parses the command line, runs the command, and turns failures into a message and exit code.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing(cli.verbose);
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(args).await,
            Command::Demo(args) => generate::demo(args).await,
            Command::Ingest(args) => ingest::run(args).await,
            Command::Query(args) => query::run(args).await,
            Command::Generate(args) => generate::run(args).await,
            Command::Rollup(args) => rollup::run(args).await,
            Command::Export(args) => export::run(args).await,
            Command::Keys(args) => keys::run(args),
            Command::Apps(args) => apps::run(args),
            Command::Wal(args) => wal::run(args),
            Command::Cluster(role) => cluster::run(role).await,
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_env("MODELSHARE_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    // Colour only on a terminal: `modelshare demo > out.log 2>&1` must not write escape codes.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .try_init();
}

/// `dir`, created if missing; or, when none is given, a new temporary directory named after
/// `prefix`, removed with what is in it when the returned guard drops.
pub(crate) fn dir_or_temporary(
    dir: Option<std::path::PathBuf>,
    prefix: &str,
) -> anyhow::Result<(std::path::PathBuf, Option<tempfile::TempDir>)> {
    use anyhow::Context;
    match dir {
        Some(dir) => {
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            Ok((dir, None))
        }
        None => {
            let temporary = tempfile::Builder::new()
                .prefix(prefix)
                .tempdir()
                .context("cannot create a temporary directory")?;
            Ok((temporary.path().to_owned(), Some(temporary)))
        }
    }
}
