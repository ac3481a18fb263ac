//! `modelshare ingest FILE...`: NDJSON into the lake through the same durable path as the server
//! (validation, duplicate filter, WAL, Parquet), reporting bad lines by file and line number.

use crate::config::IngestArgs;
use anyhow::Context;
use modelshare_event::Validator;
use modelshare_ingest::ingester::Submission;
use modelshare_ingest::{IngestConfig, Ingester, Lake};
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::ExitCode;

const BATCH: usize = 50_000;
const SHOWN_ERRORS: usize = 20;

pub async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    tokio::task::spawn_blocking(move || {
        crate::lake_copy::with_lake(&args.lake, |root| run_blocking(root, &args))
    })
    .await
    .context("ingest panicked")?
}

fn run_blocking(root: &Path, args: &IngestArgs) -> anyhow::Result<ExitCode> {
    let lake = Lake::open(root)?;
    let ingester = Ingester::open(lake, IngestConfig::default())?;
    let validator = Validator::now();
    let (mut stored, mut duplicates, mut rejected) = (0usize, 0usize, 0usize);
    for path in &args.files {
        let name = path.display().to_string();
        let reader: Box<dyn Read> = if name == "-" {
            Box::new(std::io::stdin())
        } else {
            Box::new(std::fs::File::open(path).with_context(|| format!("cannot open {name}"))?)
        };
        let mut batch = Vec::with_capacity(BATCH);
        let mut line = Vec::new();
        let mut reader = BufReader::new(reader);
        let mut line_no = 0usize;
        loop {
            line.clear();
            let n = reader
                .read_until(b'\n', &mut line)
                .with_context(|| format!("cannot read {name}"))?;
            if n == 0 {
                break;
            }
            line_no += 1;
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            match validator.parse(line.trim_ascii()) {
                Ok(e) => batch.push(e),
                Err(e) => {
                    rejected += 1;
                    if rejected <= SHOWN_ERRORS {
                        eprintln!("{name}:{line_no}: {e}");
                    }
                }
            }
            if batch.len() >= BATCH {
                let r = ingester.submit_blocking(Submission {
                    events: std::mem::take(&mut batch),
                    idempotency_key: None,
                    annotation: None,
                })?;
                stored += r.stored;
                duplicates += r.duplicates;
            }
        }
        if !batch.is_empty() {
            let r = ingester.submit_blocking(Submission {
                events: batch,
                idempotency_key: None,
                annotation: None,
            })?;
            stored += r.stored;
            duplicates += r.duplicates;
        }
    }
    ingester.flush_blocking()?;
    ingester.shutdown();
    if rejected > SHOWN_ERRORS {
        eprintln!("... and {} more rejected lines", rejected - SHOWN_ERRORS);
    }
    println!("stored {stored} events, {duplicates} duplicates skipped, {rejected} lines rejected");
    Ok(if rejected > 0 {
        ExitCode::from(2)
    } else {
        ExitCode::SUCCESS
    })
}
