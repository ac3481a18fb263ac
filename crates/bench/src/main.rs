//! `modelshare-bench`: the benchmark programs, kept out of the product binary. They drive a
//! real `modelshare serve` child process, generate lakes, and run DuckDB (from a Python
//! interpreter) on the same files in the same run; see docs/BENCHMARKS.md.
//!
//! Layout:
//! - [`args`]: the command line.
//! - [`bench`]: shared helpers, and the `ingest` and `query` benchmarks.
//! - [`analytics`]: the preference-index and retention benchmark.
//! - [`scale`]: the public reads at a router's volume, start-up, memory, a mixed load.
//! - [`encodings`]: bytes per event of an events file in other orders and writer settings.
//! - [`cluster`]: the same cold raw-event queries on one node and on a Ballista cluster.
//! - [`compaction`]: a day two nodes wrote, some events in both, compacted to one row per id.

mod analytics;
mod args;
mod bench;
mod cluster;
mod compaction;
mod encodings;
mod scale;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = args::Cli::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MODELSHARE_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
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
    match runtime.block_on(bench::run(cli.which)) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
