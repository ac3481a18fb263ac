//! `modelshare wal check|salvage`: what the write-ahead log holds, and recovery of the whole
//! records a damaged segment still has after its damage. The server quarantines such segments
//! at start (after replaying their good prefix) and keeps running; this is the operator's half.

use crate::config::{WalArgs, WalCommand};
use anyhow::Context;
use modelshare_ingest::Lake;
use modelshare_ingest::wal::{self, Damage, SegmentScan};
use std::path::Path;
use std::process::ExitCode;

pub fn run(args: WalArgs) -> anyhow::Result<ExitCode> {
    let (WalCommand::Check { lake } | WalCommand::Salvage { lake }) = &args.which;
    let lake = Lake::open(&lake.data_dir)
        .with_context(|| format!("cannot open the lake at {}", lake.data_dir.display()))?;
    match args.which {
        WalCommand::Check { .. } => check(&lake),
        WalCommand::Salvage { .. } => salvage(&lake),
    }
}

fn describe(scan: &SegmentScan) -> String {
    let events: usize = scan.records.iter().map(|r| r.events.len()).sum();
    let head = format!(
        "{} records, {events} events, {} of {} bytes good",
        scan.records.len(),
        scan.good_len,
        scan.len
    );
    match &scan.damage {
        None => head,
        Some(Damage::TornTail { offset, why }) => {
            format!(
                "{head}; torn tail at offset {offset} ({why}; never acknowledged, cut at start)"
            )
        }
        Some(Damage::Middle {
            offset,
            why,
            salvageable,
        }) => format!(
            "{head}; DAMAGED at offset {offset} ({why}); {salvageable} whole records after it"
        ),
    }
}

fn check(lake: &Lake) -> anyhow::Result<ExitCode> {
    let wal_dir = lake.wal_dir();
    let mut trouble = false;
    let segments = wal::list_segments(&wal_dir)?;
    println!("{}: {} segment(s)", wal_dir.display(), segments.len());
    for (_, path) in &segments {
        let scan = wal::scan_segment(path)?;
        trouble |= matches!(scan.damage, Some(Damage::Middle { .. }));
        println!("  {}: {}", name(path), describe(&scan));
    }
    let quarantined = wal::quarantined(&wal_dir);
    if quarantined.is_empty() {
        println!("quarantine: empty");
    } else {
        trouble = true;
        println!(
            "quarantine: {} segment(s) waiting; `modelshare wal salvage` recovers their whole records",
            quarantined.len()
        );
        for (_, path) in &quarantined {
            println!("  {}: {}", name(path), describe(&wal::scan_segment(path)?));
        }
    }
    Ok(if trouble {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn salvage(lake: &Lake) -> anyhow::Result<ExitCode> {
    // A running server owns the log; putting segments back under it would race its flushes.
    let _lock = lake
        .lock()
        .context("the lake is in use: stop `modelshare serve` first, then salvage")?;
    let wal_dir = lake.wal_dir();
    let quarantined = wal::quarantined(&wal_dir);
    if quarantined.is_empty() {
        println!("nothing in quarantine");
        return Ok(ExitCode::SUCCESS);
    }
    for (seq, path) in quarantined {
        let done = wal::salvage(&wal_dir, seq)
            .with_context(|| format!("cannot salvage {}", path.display()))?;
        println!(
            "{}: {} whole record(s), {} event(s) put back into the log; the damaged file is kept at {}",
            name(&path),
            done.records,
            done.events,
            done.kept_at.display()
        );
    }
    println!("start the server to replay them (events already stored count once)");
    Ok(ExitCode::SUCCESS)
}

fn name(path: &Path) -> String {
    path.file_name().map_or_else(
        || path.display().to_string(),
        |n| n.to_string_lossy().into_owned(),
    )
}
