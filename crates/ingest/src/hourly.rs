//! Keeping the hourly summaries of closed days (`rollups/hourly/date=D/h2-<hash>.parquet`).
//!
//! A closed day's hourly file holds, per hour and (task, model, provider, status), the counts,
//! sums and latency histogram of the day's events files; its name is a hash of those files'
//! names, so a late event (a new file) or a compaction (renamed files) makes it stale, and a
//! file found by name after a restart is current. The rows are computed by the query engine
//! (the same SQL that reads the days without a current file); this module decides which days
//! need a file and swaps files in under the live buffer's gate, so a flush that adds an events
//! file to the day in between leaves the day read raw.

use crate::IngestError;
use crate::app_days::{existing_day_files, holds_current, summary_name};
use crate::lake::{self, Lake};
use arrow::array::RecordBatch;
use arrow::compute::concat_batches;
use chrono::NaiveDate;
use modelshare_event::cube::{Coverage, HOURLY_PREFIX};
use modelshare_event::live::LiveBuffer;
use std::path::PathBuf;

/// Footer key of an hourly file: the names of the events files it summarizes (its own name is
/// their hash), for an operator who asks.
const HOURLY_SOURCES_KEY: &str = "modelshare.hourly.sources";

/// A closed day whose hourly file is missing or stale: the events files to summarize.
#[derive(Debug, Clone)]
pub struct HourlyJob {
    pub date: NaiveDate,
    pub events: Vec<PathBuf>,
    name: String,
}

/// For each day before `today` that `coverage` does not list as summarized: marks it when a
/// current hourly file is found (it must decode), or returns it as a job.
pub fn pending(
    lake: &Lake,
    live: &LiveBuffer,
    coverage: &Coverage,
    today: NaiveDate,
) -> Result<Vec<HourlyJob>, IngestError> {
    let done = coverage.hour_days();
    let mut jobs = Vec::new();
    for date in crate::app_days::days(lake)? {
        if date >= today || done.contains(&date) {
            continue;
        }
        let events = live.swap_files(|| existing_day_files(&lake.partition_dir(date)))?;
        if events.is_empty() {
            continue;
        }
        let name = summary_name(HOURLY_PREFIX, &events);
        let existing = existing_day_files(&lake.hourly_partition_dir(date))?;
        if holds_current(&existing, &name, true) {
            coverage.hours_written(date);
            continue;
        }
        jobs.push(HourlyJob { date, events, name });
    }
    Ok(jobs)
}

/// Writes `rows` (the summary of `job.events`) as the day's hourly file and marks the day,
/// unless a flush or compaction changed the day's events files meanwhile. Returns whether it
/// did.
pub fn publish(
    lake: &Lake,
    live: &LiveBuffer,
    coverage: &Coverage,
    job: &HourlyJob,
    rows: &[RecordBatch],
) -> Result<bool, IngestError> {
    let Some(first) = rows.first() else {
        return Ok(false);
    };
    let batch = concat_batches(&first.schema(), rows)?;
    let dir = lake.hourly_partition_dir(job.date);
    let sources: Vec<String> = job
        .events
        .iter()
        .filter_map(|f| f.file_name())
        .map(|n| n.to_string_lossy().into_owned())
        .collect();
    let properties = lake::lake_writer_properties(HOURLY_SOURCES_KEY, sources.join(",")).build();
    let staged = lake::stage_parquet(&dir, &job.name, &batch, properties)?;
    live.swap_files(|| {
        if existing_day_files(&lake.partition_dir(job.date))? != job.events {
            staged.discard();
            return Ok(false);
        }
        let old = existing_day_files(&dir)?;
        lake::publish_all(vec![staged])?;
        for f in old.iter().filter(|p| !p.ends_with(&job.name)) {
            std::fs::remove_file(f).map_err(|e| IngestError::io(f, e))?;
        }
        coverage.hours_written(job.date);
        Ok(true)
    })
}
