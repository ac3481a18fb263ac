//! Week presence files: for each closed ISO week whose days are all summarized, one row per
//! (task, model, app key) with the largest group app count the app was seen with (see
//! `modelshare_event::cube`). Derived from the days' presence files only, so they are rebuilt
//! whenever a day of the week gets a new presence file (a late event), and found current by
//! name after a restart without reading anything.

use crate::IngestError;
use crate::app_days::{self, existing_day_files};
use crate::lake::{self, Lake};
use arrow::array::{ArrayRef, Int64Array, RecordBatch, StringArray, UInt64Array};
use chrono::{Days, NaiveDate};
use modelshare_event::cube::{Coverage, WEEK_PRESENCE_PREFIX, closed_weeks, week_presence_schema};
use modelshare_event::live::LiveBuffer;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::path::PathBuf;
use std::sync::Arc;

/// The group presence files of the week of Monday `week`, one per day with data, or `None` when a day
/// with data is not summarized (its cube is not one checked file yet).
fn sources(
    lake: &Lake,
    coverage: &Coverage,
    days: &[NaiveDate],
    week: NaiveDate,
) -> Result<Option<Vec<PathBuf>>, IngestError> {
    let summarized = coverage.summarized_days();
    let mut files = Vec::new();
    for day in days
        .iter()
        .filter(|d| **d >= week && **d < week + Days::new(7))
    {
        if !summarized.contains(day) {
            return Ok(None);
        }
        match existing_day_files(&lake.group_presence_partition_dir(*day))?.as_slice() {
            [only] => files.push(only.clone()),
            _ => return Ok(None),
        }
    }
    Ok(Some(files))
}

/// (task, model, app key) → the largest group app count, over the rows of `sources`.
fn fold(sources: &[PathBuf]) -> Result<RecordBatch, IngestError> {
    let mut strings: HashMap<String, u32> = HashMap::new();
    let mut names: Vec<String> = Vec::new();
    let mut intern = |s: &str| -> u32 {
        if let Some(i) = strings.get(s) {
            return *i;
        }
        let i = names.len() as u32;
        names.push(s.to_owned());
        strings.insert(s.to_owned(), i);
        i
    };
    let mut rows: HashMap<(u32, u32, u64), i64> = HashMap::new();
    for path in sources {
        let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            let batch = batch?;
            let task: &StringArray = app_days::column(&batch, "task")?;
            let model: &StringArray = app_days::column(&batch, "model")?;
            let key: &UInt64Array = app_days::column(&batch, "app_key")?;
            let apps: &Int64Array = app_days::column(&batch, "group_apps")?;
            for i in 0..batch.num_rows() {
                let k = (intern(task.value(i)), intern(model.value(i)), key.value(i));
                let most = rows.entry(k).or_insert(0);
                *most = (*most).max(apps.value(i));
            }
        }
    }
    // Sorted by task, model and key: the filters of a read prune row groups, and equal inputs
    // give equal files.
    let sorted: BTreeMap<(&str, &str, u64), i64> = rows
        .into_iter()
        .map(|((t, m, k), n)| {
            (
                (names[t as usize].as_str(), names[m as usize].as_str(), k),
                n,
            )
        })
        .collect();
    let columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(sorted.keys().map(|k| k.0))),
        Arc::new(StringArray::from_iter_values(sorted.keys().map(|k| k.1))),
        Arc::new(UInt64Array::from_iter_values(sorted.keys().map(|k| k.2))),
        Arc::new(Int64Array::from_iter_values(sorted.values().copied())),
    ];
    Ok(RecordBatch::try_new(week_presence_schema(), columns)?)
}

/// Makes the week presence file of every closed week with data current: found by name (when
/// `verify`, only if it decodes), or written (unless `write` is false: a node without the lease
/// of a lake in a bucket only takes the holder's files). Returns how many weeks are current.
/// `days`: the days with data.
pub fn ensure_weeks(
    lake: &Lake,
    live: &LiveBuffer,
    coverage: &Coverage,
    days: &[NaiveDate],
    today: NaiveDate,
    verify: bool,
    write: bool,
) -> Result<usize, IngestError> {
    let current = coverage.weeks();
    let mut done = 0;
    for week in closed_weeks(days, today) {
        if current.contains(&week) {
            done += 1;
            continue;
        }
        let Some(sources) = sources(lake, coverage, days, week)? else {
            continue;
        };
        // A hash of the sources' names, which change with every new cube file of their day.
        let name = app_days::summary_name(WEEK_PRESENCE_PREFIX, &sources);
        let dir = lake.week_presence_partition_dir(week);
        let existing = existing_day_files(&dir)?;
        if !write {
            // A node without the lease takes the holder's file when it is current.
            if app_days::holds_current(&existing, &name, verify) {
                coverage.week_written(week);
                done += 1;
            }
            continue;
        }
        let staged = if app_days::holds_current(&existing, &name, verify) {
            None
        } else {
            let batch = fold(&sources)?;
            Some(lake::stage_parquet(
                &dir,
                &name,
                &batch,
                app_days::writer_properties(0),
            )?)
        };
        // Under the gate: the days must still be summarized by the same files (a flush may have
        // added a late event meanwhile).
        let published = live.swap_files(|| {
            if self::sources(lake, coverage, days, week)?.as_deref() != Some(sources.as_slice()) {
                staged.into_iter().for_each(lake::StagedFile::discard);
                return Ok::<bool, IngestError>(false);
            }
            if let Some(staged) = staged {
                lake::publish_all(vec![staged])?;
            }
            for old in existing.iter().filter(|p| !p.ends_with(&name)) {
                std::fs::remove_file(old).map_err(|e| IngestError::io(old, e))?;
            }
            coverage.week_written(week);
            Ok(true)
        })?;
        done += usize::from(published);
    }
    Ok(done)
}
