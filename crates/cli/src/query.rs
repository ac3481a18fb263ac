//! `modelshare query "SQL"`: ad-hoc, read-only SQL over the lake's Parquet files.

use crate::config::{OutputFormat, QueryArgs};
use anyhow::Context;
use modelshare_ingest::Lake;
use modelshare_query::{QueryConfig, QueryEngine};
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        args.lake.data_dir.join("events").is_dir(),
        "no lake at {} (expected an events/ directory); pass --data-dir",
        args.lake.data_dir.display()
    );
    let lake = Lake::open(&args.lake.data_dir)?;
    let config = QueryConfig {
        timeout: Duration::from_secs(args.timeout_secs.max(1)),
        ..Default::default()
    };
    let engine = QueryEngine::new(lake.events_dir(), None, config)?;
    let batches = engine.sql(&args.sql).await?;
    let mut out = Vec::new();
    match args.format {
        OutputFormat::Table => {
            let table = arrow::util::pretty::pretty_format_batches(&batches)?;
            out.extend_from_slice(format!("{table}\n").as_bytes());
        }
        OutputFormat::Csv => {
            let mut w = arrow::csv::WriterBuilder::new()
                .with_header(true)
                .build(&mut out);
            for b in &batches {
                w.write(b)?;
            }
        }
        OutputFormat::Json => {
            let mut w = arrow::json::ArrayWriter::new(&mut out);
            let refs: Vec<&arrow::array::RecordBatch> = batches.iter().collect();
            w.write_batches(&refs)?;
            w.finish()?;
            out.push(b'\n');
        }
    }
    use std::io::Write;
    std::io::stdout()
        .write_all(&out)
        .context("cannot write to stdout")?;
    Ok(ExitCode::SUCCESS)
}
