//! `compaction`: a closed day of a lake two nodes write at once, compacted as the node holding
//! the lease does it. The day's rows become the flush files of two nodes, the second of which
//! also took a share of the first one's events (a router's retries sent elsewhere); compaction
//! sorts the day into few files and keeps one row per `(app_id, event_id)`. Printed: the time of
//! the search for repeats and of the whole compaction, rows and repeats dropped, this process's
//! peak memory, and DuckDB doing the same (one row per id, sorted, written as zstd Parquet) on
//! the same files in the same run.

use crate::args::BenchCompactionArgs;
use crate::bench::{machine, ms, peak_rss, python_json, report};
use anyhow::Context;
use arrow::array::{BooleanArray, RecordBatch};
use arrow::compute::{concat_batches, filter_record_batch};
use chrono::NaiveDate;
use modelshare_event::live::LiveBuffer;
use modelshare_gen::GenConfig;
use modelshare_ingest::lake::{IdRun, Lake, write_batches};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

/// The date of a `date=YYYY-MM-DD` directory.
fn date_of(day: &Path) -> anyhow::Result<NaiveDate> {
    day.file_name()
        .and_then(|n| n.to_str())
        .and_then(modelshare_ingest::lake::partition_day)
        .with_context(|| format!("{} is not a date=YYYY-MM-DD directory", day.display()))
}

fn parquet_files(dir: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .with_context(|| format!("cannot read {}", dir.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "parquet"))
        .collect();
    files.sort();
    Ok(files)
}

fn rows_in(path: &Path) -> anyhow::Result<usize> {
    let file = std::fs::File::open(path)?;
    let rows = ParquetRecordBatchReaderBuilder::try_new(file)?
        .metadata()
        .file_metadata()
        .num_rows();
    Ok(usize::try_from(rows).unwrap_or(0))
}

/// Every `1 / share`-th row of `batch` (at least none, at most all).
fn every_nth(batch: &RecordBatch, share: f64) -> anyhow::Result<RecordBatch> {
    let step = if share > 0.0 {
        (1.0 / share).round().max(1.0) as usize
    } else {
        usize::MAX
    };
    let keep: BooleanArray = (0..batch.num_rows())
        .map(|i| Some(step != usize::MAX && i % step == 0))
        .collect();
    Ok(filter_record_batch(batch, &keep)?)
}

/// Writes the day at `day` into `lake` as `flushes` files of node a, each followed by a file of
/// node b with `share` of its rows; returns the rows written and the repeats planted.
fn two_nodes_day(
    day: &Path,
    lake: &Lake,
    flushes: usize,
    share: f64,
) -> anyhow::Result<(usize, usize)> {
    let sources = parquet_files(day)?;
    let total: usize = sources
        .iter()
        .map(|p| rows_in(p))
        .sum::<anyhow::Result<_>>()?;
    anyhow::ensure!(total > 0, "{} holds no rows", day.display());
    let per_flush = total.div_ceil(flushes.max(1));
    let (mut written, mut repeats, mut flush) = (0, 0, 0u64);
    let mut pending: Vec<RecordBatch> = Vec::new();
    let mut pending_rows = 0;
    let mut write = |batches: &[RecordBatch]| -> anyhow::Result<()> {
        let Some(first) = batches.first() else {
            return Ok(());
        };
        let chunk = concat_batches(&first.schema(), batches)?;
        flush += 1;
        write_batches(
            lake,
            std::slice::from_ref(&chunk),
            &format!("w{flush:016}-a"),
            IdRun::Skip,
        )?;
        let again = every_nth(&chunk, share)?;
        repeats += again.num_rows();
        written += chunk.num_rows() + again.num_rows();
        write_batches(lake, &[again], &format!("w{flush:016}-b"), IdRun::Skip)?;
        Ok(())
    };
    for path in &sources {
        let file = std::fs::File::open(path)?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let batch = modelshare_event::schema::conform(&batch?)?;
            pending_rows += batch.num_rows();
            pending.push(batch);
            if pending_rows >= per_flush {
                write(&std::mem::take(&mut pending))?;
                pending_rows = 0;
            }
        }
    }
    write(&pending)?;
    Ok((written, repeats))
}

/// DuckDB keeping one row per id of the files in `dir`, sorted as the lake sorts, written as
/// zstd Parquet to `out`: (ms, rows written, version).
fn duckdb(python: &str, dir: &Path, out: &Path) -> anyhow::Result<(f64, u64, String)> {
    let glob = format!("{}/*.parquet", dir.display());
    let sql = format!(
        "COPY (SELECT * FROM read_parquet('{glob}') \
         QUALIFY row_number() OVER (PARTITION BY app_id, event_id ORDER BY ts) = 1 \
         ORDER BY task, model, ts) TO '{}' (FORMAT parquet, COMPRESSION zstd)",
        out.display()
    );
    let script = format!(
        r#"
import duckdb, json, time
con = duckdb.connect(); con.execute("SET threads = 2"); con.execute("SET enable_progress_bar = false")
t = time.perf_counter(); con.execute({sql:?}); took = time.perf_counter() - t
rows = con.execute("SELECT count(*) FROM read_parquet('{}')").fetchone()[0]
print(json.dumps({{"ms": took * 1e3, "rows": rows, "version": duckdb.__version__}}))
"#,
        out.display()
    );
    let v = python_json(python, &script)?;
    Ok((
        v["ms"].as_f64().unwrap_or(0.0),
        v["rows"].as_u64().unwrap_or(0),
        v["version"].as_str().unwrap_or("?").to_owned(),
    ))
}

/// A day of `events` generated under `work/source` (reused when it is there).
fn generated_day(work: &Path, events: u64) -> anyhow::Result<PathBuf> {
    let cfg = GenConfig {
        seed: modelshare_gen::DEMO_SEED,
        start: NaiveDate::from_ymd_opt(2026, 11, 17).context("a date")?,
        days: 1,
        apps: 20_000,
        events,
    };
    let source = work.join("source");
    let day = source.join("events").join(format!("date={}", cfg.start));
    if !source.join("manifest.json").exists() {
        if source.exists() {
            std::fs::remove_dir_all(&source)?;
        }
        println!(
            "generating a day of {events} events into {} ...",
            source.display()
        );
        modelshare_gen::generate_to_lake(&Lake::open(&source)?, &cfg, &|_| {})?;
    }
    Ok(day)
}

pub(crate) fn run(args: BenchCompactionArgs) -> anyhow::Result<ExitCode> {
    let day = match &args.day {
        Some(day) => day.clone(),
        None => generated_day(&args.work, args.events)?,
    };
    let date = date_of(&day)?;
    let lake_dir = args.work.join("lake");
    if lake_dir.exists() {
        std::fs::remove_dir_all(&lake_dir)
            .with_context(|| format!("cannot empty {}", lake_dir.display()))?;
    }
    let lake = Lake::open(&lake_dir)?;
    let started = Instant::now();
    let (rows, repeats) = two_nodes_day(&day, &lake, args.flushes, args.repeat_percent / 100.0)?;
    let setup = started.elapsed();
    let dir = lake.partition_dir(date);
    let files = parquet_files(&dir)?;
    let mut lines = vec![
        format!(
            "# compaction of a day two nodes wrote ({}; {})",
            chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
            machine()
        ),
        format!(
            "day {date}: {rows} rows in {} flush files of two nodes, {repeats} of them repeats ({} %), written in {:.1} s",
            files.len(),
            args.repeat_percent,
            setup.as_secs_f64()
        ),
    ];
    // DuckDB first: compaction replaces these files.
    match duckdb(&args.python, &dir, &args.work.join("duckdb.parquet")) {
        Ok((took, kept, version)) => lines.push(format!(
            "duckdb {version}: one row per id, sorted, written: {took:.0} ms, {kept} rows"
        )),
        Err(e) => lines.push(format!("duckdb skipped: {e:#}")),
    }
    let with_rows: Vec<(PathBuf, usize)> = files
        .iter()
        .map(|p| Ok((p.clone(), rows_in(p)?)))
        .collect::<anyhow::Result<_>>()?;
    let search = Instant::now();
    let repeated = modelshare_ingest::compact::repeated_ids(&with_rows)?;
    let search = search.elapsed();
    let compaction = Instant::now();
    let done = modelshare_ingest::compact::compact_day(
        &lake,
        &LiveBuffer::new(),
        date,
        modelshare_ingest::compact::Repeats::Drop,
    )?
    .context("compaction found nothing to do")?;
    let compaction = compaction.elapsed();
    lines.push(format!(
        "modelshare: search for repeats {:.0} ms ({} ids repeated); compaction (search included) {:.0} ms: {} files -> {}, {} rows kept, {} repeats dropped, {:.1} MB -> {:.1} MB",
        ms(search),
        repeated.len(),
        ms(compaction),
        done.files_before,
        done.files_after,
        done.rows,
        done.duplicates,
        done.bytes_before as f64 / 1e6,
        done.bytes_after as f64 / 1e6,
    ));
    lines.push(format!(
        "peak RSS of this process (setup included): {} MiB",
        peak_rss(std::process::id()).unwrap_or(0) >> 20
    ));
    report(&args.out, &lines)?;
    anyhow::ensure!(
        done.duplicates as usize == repeats && done.rows as usize == rows - repeats,
        "compaction kept {} rows and dropped {}; expected {} and {}",
        done.rows,
        done.duplicates,
        rows - repeats,
        repeats
    );
    Ok(ExitCode::SUCCESS)
}
