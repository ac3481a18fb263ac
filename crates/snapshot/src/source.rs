//! The source of a snapshot: the lake's Parquet event files of one week, listed with their sizes
//! (what a revision records it was built from) and read column by column.

use crate::{IsoWeek, SnapshotError};
use arrow::array::{Array, RecordBatch};
use parquet::arrow::ProjectionMask;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// One events file a snapshot was built from, relative to `<lake>/events/`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceFile {
    /// e.g. `date=2026-11-16/00000012-4711-0.parquet`
    pub file: String,
    pub bytes: u64,
}

/// The published events files of `week`, sorted by name. Temporary files of flushes in progress
/// (hidden `.tmp` names) are not part of the lake and are skipped.
pub fn week_sources(lake_root: &Path, week: IsoWeek) -> Result<Vec<SourceFile>, SnapshotError> {
    let events = lake_root.join("events");
    let mut out = Vec::new();
    for day in week.days() {
        let part = format!("date={day}");
        let dir = events.join(&part);
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(SnapshotError::io(&dir, e)),
        };
        for entry in entries {
            let entry = entry.map_err(|e| SnapshotError::io(&dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') || !name.ends_with(".parquet") {
                continue;
            }
            let meta = entry
                .metadata()
                .map_err(|e| SnapshotError::io(&entry.path(), e))?;
            if meta.is_file() {
                out.push(SourceFile {
                    file: format!("{part}/{name}"),
                    bytes: meta.len(),
                });
            }
        }
    }
    out.sort();
    Ok(out)
}

/// The weeks that have at least one day partition in the lake, ascending.
pub fn weeks_with_data(lake_root: &Path) -> Result<Vec<IsoWeek>, SnapshotError> {
    let events = lake_root.join("events");
    let entries = match fs::read_dir(&events) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(SnapshotError::io(&events, e)),
    };
    let mut weeks = std::collections::BTreeSet::new();
    for entry in entries {
        let entry = entry.map_err(|e| SnapshotError::io(&events, e))?;
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(date) = name
            .strip_prefix("date=")
            .and_then(|d| d.parse::<chrono::NaiveDate>().ok())
        {
            weeks.insert(IsoWeek::containing(date));
        }
    }
    Ok(weeks.into_iter().collect())
}

/// Reads `columns` of every source file, in source order.
pub(crate) fn read_sources(
    lake_root: &Path,
    sources: &[SourceFile],
    columns: Option<&[&str]>,
) -> Result<Vec<RecordBatch>, SnapshotError> {
    let mut batches = Vec::new();
    for src in sources {
        let path: PathBuf = lake_root.join("events").join(&src.file);
        let file = File::open(&path).map_err(|e| SnapshotError::io(&path, e))?;
        let corrupt = |e: &dyn std::fmt::Display| SnapshotError::Corrupt {
            path: path.clone(),
            message: e.to_string(),
        };
        let mut builder =
            ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| corrupt(&e))?;
        if let Some(cols) = columns {
            let mask = ProjectionMask::columns(builder.parquet_schema(), cols.iter().copied());
            builder = builder.with_projection(mask);
        }
        for batch in builder.build().map_err(|e| corrupt(&e))? {
            let batch = batch.map_err(|e| corrupt(&e))?;
            // Whole rows come in the lake schema's columns, whatever the file's age.
            batches.push(match columns {
                Some(_) => batch,
                None => modelshare_event::schema::conform(&batch).map_err(|e| corrupt(&e))?,
            });
        }
    }
    Ok(batches)
}

/// A typed column of a batch, or a clear error naming the column.
pub(crate) fn column<'a, T: Array + 'static>(
    batch: &'a RecordBatch,
    name: &str,
) -> Result<&'a T, SnapshotError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or_else(|| SnapshotError::Schema(format!("events column {name:?} missing or mistyped")))
}
