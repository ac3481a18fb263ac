//! `modelshare export --week 2026-W47 [--raw] -o FILE`: the public snapshot of a closed week
//! (built and published in the lake first if it is missing or out of date), or with `--raw` the
//! week's events with app ids replaced by a keyed hash.

use crate::config::ExportArgs;
use anyhow::Context;
use modelshare_snapshot::{BuildOutcome, IsoWeek, SnapshotError, build_week, ensure_closed};
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

pub async fn run(args: ExportArgs) -> anyhow::Result<ExitCode> {
    let week: IsoWeek = args.week.parse()?;
    tokio::task::spawn_blocking(move || {
        crate::lake_copy::with_lake(&args.lake, |root| export(root, &args, week))
    })
    .await
    .context("export panicked")??;
    Ok(ExitCode::SUCCESS)
}

fn export(root: &Path, args: &ExportArgs, week: IsoWeek) -> anyhow::Result<()> {
    anyhow::ensure!(
        root.join("events").is_dir(),
        "no lake at {} (no events directory); pass --data-dir",
        root.display()
    );
    ensure_closed(
        week,
        chrono::Utc::now(),
        Duration::from_secs(args.snapshot_grace_secs),
    )?;
    let out = &args.output;
    // Refuse an impossible output before publishing anything in the lake.
    let parent = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => std::path::PathBuf::from("."),
    };
    anyhow::ensure!(
        parent.is_dir(),
        "cannot write {}: {} is not a directory",
        out.display(),
        parent.display()
    );
    anyhow::ensure!(
        !out.is_dir(),
        "cannot write {}: it is a directory",
        out.display()
    );
    if args.raw {
        let done = modelshare_snapshot::raw::export_raw(root, week, out)
            .map_err(|e| output_error(e, out))?;
        println!(
            "wrote {} events of {week} ({} bytes, app_id = keyed hash) to {}",
            done.rows,
            done.bytes,
            out.display()
        );
        return Ok(());
    }
    let info = match build_week(root, week, args.min_apps)? {
        BuildOutcome::Empty => return Err(SnapshotError::EmptyWeek(week).into()),
        BuildOutcome::NothingPublishable => {
            return Err(SnapshotError::NothingPublishable {
                week,
                min_apps: args.min_apps,
            }
            .into());
        }
        BuildOutcome::Published(info) | BuildOutcome::Unchanged(info) => info,
    };
    let bytes = std::fs::read(&info.path)
        .with_context(|| format!("cannot read {}", info.path.display()))?;
    modelshare_snapshot::store::write_atomically(out, &bytes, false)
        .map_err(|e| output_error(e, out))?;
    println!(
        "wrote snapshot {} ({} rows, {} bytes, sha256 {}) to {}",
        info.name,
        info.rows,
        info.bytes,
        info.sha256,
        out.display()
    );
    Ok(())
}

fn output_error(e: SnapshotError, out: &std::path::Path) -> anyhow::Error {
    match e {
        SnapshotError::Io { path, source } if path == out => {
            anyhow::anyhow!("cannot write {}: {source}", out.display())
        }
        other => other.into(),
    }
}
