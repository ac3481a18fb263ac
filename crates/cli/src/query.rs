//! `modelshare query "SQL"`: ad-hoc, read-only SQL over the lake's Parquet files, in a directory
//! or an S3 API bucket.

use crate::config::{OutputFormat, QueryArgs};
use anyhow::Context;
use modelshare_query::{LakeLocation, QueryConfig, QueryEngine};
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(args: QueryArgs) -> anyhow::Result<ExitCode> {
    let location = LakeLocation::parse(&args.data_dir)?;
    if let LakeLocation::Local(dir) = &location {
        anyhow::ensure!(
            dir.join("events").is_dir(),
            "no lake at {} (expected an events/ directory); pass --data-dir",
            dir.display()
        );
    }
    let timeout = Duration::from_secs(args.timeout_secs.max(1));
    let batches = match &args.ballista {
        Some(scheduler) => crate::cluster::query(scheduler, &location, &args.sql, timeout)
            .await
            .with_context(|| {
                format!("query on the cluster at {scheduler} over the lake at {location}")
            })?,
        None => {
            let config = QueryConfig {
                timeout,
                ..Default::default()
            };
            QueryEngine::at(&location, config)?
                .sql(&args.sql)
                .await
                .with_context(|| format!("query over the lake at {location}"))?
        }
    };
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
