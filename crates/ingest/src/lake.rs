//! The lake directory: where things live on disk, the single-writer lock, and atomic publication
//! of Parquet files.
//!
//! ```text
//! <data-dir>/
//!   LOCK                              held by the one process writing this lake
//!   wal/<seq>.wal                     write-ahead log segments
//!   events/date=YYYY-MM-DD/*.parquet  one partition per UTC day
//!   ids/*.ids                         sorted id hashes of each flush (see `id_index`)
//!   rollups/app_days/date=YYYY-MM-DD/*.parquet
//!                                     the app-day cube: one file per events file, same name
//!                                     (see `modelshare_event::cube`)
//!   rollups/groups/date=YYYY-MM-DD/*.parquet
//!                                     the day's groups of the publication rule, when its
//!                                     cube is one file
//!   rollups/group_presence/date=YYYY-MM-DD/*.parquet
//!                                     and the (group, app) presence with each group's apps
//! ```

use crate::IngestError;
use arrow::array::{Array, RecordBatch, TimestampMicrosecondArray};
use arrow::compute::{SortColumn, concat_batches, lexsort_to_indices, take_record_batch};
use chrono::NaiveDate;
use modelshare_event::schema::event_schema;
use modelshare_event::{SCHEMA_VERSION, SCHEMA_VERSION_KEY};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, Encoding, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterPropertiesBuilder};
use parquet::schema::types::ColumnPath;
use std::collections::BTreeMap;
use std::fs::{self, File};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// The lock file of a directory one process writes (the lake's, the snapshot store's).
pub const LOCK_FILE: &str = "LOCK";

/// The write-ahead log's directory in the lake's (or a node's local) directory.
pub const WAL_DIR: &str = "wal";

/// A lake rooted at a directory: the lake itself, or a node's local copy of a lake kept in a
/// bucket (see [`crate::bucket`]).
#[derive(Debug, Clone)]
pub struct Lake {
    root: PathBuf,
    bucket: Option<std::sync::Arc<crate::bucket::BucketLake>>,
}

/// Held while a process writes the lake; released on drop (or when the process dies).
#[derive(Debug)]
pub struct LakeLock {
    _file: File,
}

impl Lake {
    /// Opens (creating if needed) the lake at `root`.
    pub fn open(root: impl Into<PathBuf>) -> Result<Lake, IngestError> {
        let lake = Lake {
            root: root.into(),
            bucket: None,
        };
        for dir in [
            lake.root.clone(),
            lake.events_dir(),
            lake.wal_dir(),
            lake.cube_dir(),
        ] {
            fs::create_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
        }
        Ok(lake)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// This directory as the local copy of the lake in `bucket`: flushes put their files there
    /// before they publish them here.
    pub fn with_bucket(mut self, bucket: std::sync::Arc<crate::bucket::BucketLake>) -> Lake {
        self.bucket = Some(bucket);
        self
    }

    /// The bucket this directory is the local copy of, if any.
    pub fn bucket(&self) -> Option<&std::sync::Arc<crate::bucket::BucketLake>> {
        self.bucket.as_ref()
    }

    /// `<root>/events`, the table the query layer reads.
    pub fn events_dir(&self) -> PathBuf {
        self.root.join("events")
    }

    pub fn wal_dir(&self) -> PathBuf {
        self.root.join(WAL_DIR)
    }

    /// The directory of one day's partition.
    pub fn partition_dir(&self, date: NaiveDate) -> PathBuf {
        self.events_dir().join(format!("date={date}"))
    }

    /// `<root>/ids`, the runs of the id index.
    pub fn ids_dir(&self) -> PathBuf {
        self.root.join("ids")
    }

    /// `<root>/rollups/app_days`, the app-day cube.
    pub fn cube_dir(&self) -> PathBuf {
        self.root.join(modelshare_event::cube::APP_DAYS_DIR)
    }

    /// `<root>/rollups/groups`, the per-day groups summaries.
    pub fn groups_dir(&self) -> PathBuf {
        self.root.join(modelshare_event::cube::GROUPS_DIR)
    }

    /// `<root>/rollups/group_presence`, the per-day (group, app) presence.
    pub fn group_presence_dir(&self) -> PathBuf {
        self.root.join(modelshare_event::cube::GROUP_PRESENCE_DIR)
    }

    /// The directory of one ISO week's presence file (`week` is its Monday).
    pub fn week_presence_partition_dir(&self, week: NaiveDate) -> PathBuf {
        self.root
            .join(modelshare_event::cube::WEEK_PRESENCE_DIR)
            .join(format!("week={week}"))
    }

    /// The directory of one day's hourly summary.
    pub fn hourly_partition_dir(&self, date: NaiveDate) -> PathBuf {
        self.root
            .join(modelshare_event::cube::HOURLY_DIR)
            .join(format!("date={date}"))
    }

    /// The directory of one day's group presence file.
    pub fn group_presence_partition_dir(&self, date: NaiveDate) -> PathBuf {
        self.group_presence_dir().join(format!("date={date}"))
    }

    /// The directory of one day's groups summary.
    pub fn groups_partition_dir(&self, date: NaiveDate) -> PathBuf {
        self.groups_dir().join(format!("date={date}"))
    }

    /// The directory of one day's cube partition.
    pub fn cube_partition_dir(&self, date: NaiveDate) -> PathBuf {
        self.cube_dir().join(format!("date={date}"))
    }

    /// Takes the single-writer lock, failing at once if another process holds it.
    pub fn lock(&self) -> Result<LakeLock, IngestError> {
        let path = self.root.join(LOCK_FILE);
        let file = File::options()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| IngestError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => Ok(LakeLock { _file: file }),
            Err(fs::TryLockError::WouldBlock) => Err(IngestError::Locked(self.root.clone())),
            Err(fs::TryLockError::Error(e)) => Err(IngestError::io(&path, e)),
        }
    }

    /// Every events Parquet file, sorted by path.
    pub fn event_files(&self) -> Result<Vec<PathBuf>, IngestError> {
        let mut files = Vec::new();
        let dir = self.events_dir();
        for part in fs::read_dir(&dir).map_err(|e| IngestError::io(&dir, e))? {
            let part = part.map_err(|e| IngestError::io(&dir, e))?.path();
            if !part.is_dir() {
                continue;
            }
            for f in fs::read_dir(&part).map_err(|e| IngestError::io(&part, e))? {
                let f = f.map_err(|e| IngestError::io(&part, e))?.path();
                if f.extension().is_some_and(|x| x == "parquet") {
                    files.push(f);
                }
            }
        }
        files.sort();
        Ok(files)
    }
}

/// A Parquet file written and fsynced under a temporary name, not yet part of the lake.
#[derive(Debug)]
pub struct StagedFile {
    temp: PathBuf,
    pub(crate) path: PathBuf,
    pub rows: usize,
    pub bytes: u64,
}

impl StagedFile {
    /// The day of the partition the file goes to, if it goes to one.
    pub(crate) fn day(&self) -> Option<NaiveDate> {
        partition_day(self.path.parent()?.file_name()?.to_str()?)
    }

    pub(crate) fn new(temp: PathBuf, path: PathBuf, rows: usize, bytes: u64) -> StagedFile {
        StagedFile {
            temp,
            path,
            rows,
            bytes,
        }
    }

    /// Where the file is until it is published.
    pub(crate) fn temp(&self) -> &Path {
        &self.temp
    }

    /// The name the file will have in the lake.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    /// Renames the file into place and fsyncs its directory: from here on it is in the lake.
    pub fn publish(&self) -> Result<PathBuf, IngestError> {
        fs::rename(&self.temp, &self.path).map_err(|e| IngestError::io(&self.path, e))?;
        if let Some(dir) = self.path.parent() {
            sync_dir(dir)?;
        }
        Ok(self.path.clone())
    }

    /// Deletes the temporary file of a flush that will not be published.
    pub fn discard(self) {
        let _ = fs::remove_file(&self.temp);
    }
}

/// Publishes every staged file of one flush, or none: when one rename (or the fsync of its
/// directory) fails, the files already renamed are taken back out, so the lake never holds part
/// of a flush whose rows also stay in memory for the retry.
pub fn publish_all(staged: Vec<StagedFile>) -> Result<(), IngestError> {
    let mut published: Vec<PathBuf> = Vec::with_capacity(staged.len());
    let mut rest = staged.into_iter();
    while let Some(file) = rest.next() {
        if let Err(e) = file.publish() {
            // A rename that happened before its directory fsync failed is visible: undo it too.
            published.push(file.path.clone());
            for path in &published {
                if let Err(undo) = fs::remove_file(path)
                    && undo.kind() != std::io::ErrorKind::NotFound
                {
                    tracing::error!(error = %undo, path = %path.display(), "could not take back a partly published flush; its rows may count twice until restart");
                }
            }
            file.discard();
            rest.for_each(StagedFile::discard);
            return Err(e);
        }
        published.push(file.path.clone());
    }
    Ok(())
}

/// Removes temporary files that a crash left in the lake's partitions: they were never part of
/// the lake, and on a full disk their space is what the next flush needs.
pub fn remove_stale_temps(lake: &Lake) -> usize {
    let mut removed = 0;
    let parts = [
        lake.events_dir(),
        lake.cube_dir(),
        lake.groups_dir(),
        lake.group_presence_dir(),
    ]
    .into_iter()
    .filter_map(|tree| fs::read_dir(tree).ok())
    .flatten();
    for part in parts.flatten() {
        let Ok(files) = fs::read_dir(part.path()) else {
            continue;
        };
        for f in files.flatten() {
            let name = f.file_name();
            let name = name.to_string_lossy();
            if is_temp_name(&name) && fs::remove_file(f.path()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

/// The hidden temporary name beside `dir/name` that a file is written under before it is
/// renamed into place; what a crash leaves is recognised by [`is_temp_name`] and removed.
pub(crate) fn temp_path(dir: &Path, name: &str) -> PathBuf {
    dir.join(format!(".{name}.tmp"))
}

/// True for a name made by [`temp_path`].
pub(crate) fn is_temp_name(name: &str) -> bool {
    name.starts_with('.') && name.ends_with(".tmp")
}

/// Writes `bytes` to `path` so that it appears whole or not at all: a temporary file beside it
/// (a hidden `.tmp` name, which start-up removes if a crash leaves it), fsync, rename, fsync of
/// the directory.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), IngestError> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .ok_or_else(|| IngestError::io(path, std::io::Error::other("not a file path")))?
        .to_string_lossy();
    let temp = temp_path(dir, &name);
    let written = File::create(&temp)
        .and_then(|mut f| std::io::Write::write_all(&mut f, bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&temp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&temp);
        return Err(IngestError::io(path, e));
    }
    sync_dir(dir)
}

/// Fsyncs a directory so a rename or create inside it survives a crash.
pub fn sync_dir(dir: &Path) -> Result<(), IngestError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| IngestError::io(dir, e))
}

static FILE_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writer settings every Parquet file of the lake shares: zstd, dictionaries, page statistics,
/// row groups of up to 1 M rows, and `key = value` in the file's metadata.
pub(crate) fn lake_writer_properties(key: &str, value: String) -> WriterPropertiesBuilder {
    WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_key_value_metadata(Some(vec![KeyValue::new(key.to_owned(), value)]))
}

/// Writer settings for events files: the lake's, with encodings that suit each column (unique
/// ids share prefixes; timestamps are sorted within a model).
pub fn writer_properties() -> WriterProperties {
    lake_writer_properties(SCHEMA_VERSION_KEY, SCHEMA_VERSION.to_owned())
        .set_column_dictionary_enabled(ColumnPath::from("event_id"), false)
        .set_column_encoding(ColumnPath::from("event_id"), Encoding::DELTA_BYTE_ARRAY)
        .set_column_dictionary_enabled(ColumnPath::from("ts"), false)
        .set_column_encoding(ColumnPath::from("ts"), Encoding::DELTA_BINARY_PACKED)
        .build()
}

/// Which ids a write enters into the id index (the duplicate filter's memory of published rows).
#[derive(Debug, Clone, Copy)]
pub enum IdRun<'a> {
    /// The rows' ids and these ids of published rows that no run holds yet: a flush.
    RowsAnd(&'a [u64]),
    /// None: history written in bulk (the generator), which no client sends again, so it does
    /// not take 8 bytes per event of runs.
    Skip,
}

/// Splits rows by UTC day, sorts each day by (task, model, ts) and writes one staged Parquet
/// file per day, for each the day's app-day cube file of the same name, and the run of the id
/// index that `ids` asks for. `tag` becomes part of the file names (the WAL segment for a
/// flush).
pub fn stage_batches(
    lake: &Lake,
    batches: &[RecordBatch],
    tag: &str,
    ids: IdRun<'_>,
) -> Result<Vec<StagedFile>, IngestError> {
    let mut events = Vec::new();
    let mut cube = Vec::new();
    for (date, batch) in split_by_date(batches)? {
        let staged = stage_one(lake, date, &batch, tag).and_then(|file| {
            let name = file.file_name();
            events.push(file);
            crate::app_days::stage_for_events(lake, date, &name, &batch)
        });
        match staged {
            Ok(f) => cube.push(f),
            Err(e) => {
                events.into_iter().chain(cube).for_each(StagedFile::discard);
                return Err(e);
            }
        }
    }
    // Events first, the id run last. A crash in between leaves a day whose cube is short, which
    // the start-up check finds and rebuilds, or events whose ids no run holds, which the
    // start-up finds by the flush tag of their file (their WAL segments are still there).
    events.extend(cube);
    let IdRun::RowsAnd(also_index) = ids else {
        return Ok(events);
    };
    let hashes = id_hashes(batches).map(|mut h| {
        h.extend_from_slice(also_index);
        h
    });
    match hashes.and_then(|h| crate::id_index::stage_run(lake, &new_file_name(tag), h)) {
        Ok(run) => events.push(run),
        Err(e) => {
            events.into_iter().for_each(StagedFile::discard);
            return Err(e);
        }
    }
    Ok(events)
}

/// The `event_id` and `app_id` columns of a batch of events.
pub(crate) fn id_columns(
    batch: &RecordBatch,
) -> Result<(&arrow::array::StringArray, &arrow::array::StringArray), IngestError> {
    let column = |name: &str| {
        batch
            .column_by_name(name)
            .and_then(|c| c.as_any().downcast_ref::<arrow::array::StringArray>())
            .ok_or(IngestError::Schema(
                "event_id and app_id must be string columns",
            ))
    };
    Ok((column("event_id")?, column("app_id")?))
}

/// The duplicate-filter hashes of the rows of `batches`.
pub(crate) fn id_hashes(batches: &[RecordBatch]) -> Result<Vec<u64>, IngestError> {
    let mut out = Vec::new();
    for batch in batches {
        let (ids, apps) = id_columns(batch)?;
        out.extend((0..ids.len()).map(|i| crate::dedup::id_hash(apps.value(i), ids.value(i))));
    }
    Ok(out)
}

/// Writes and publishes in one go (returning the events files, not their cube files), for
/// writers that hold the lake lock and have no live buffer to coordinate with (the generator,
/// tests). `ids` says whether their ids enter the duplicate filter's index.
pub fn write_batches(
    lake: &Lake,
    batches: &[RecordBatch],
    tag: &str,
    ids: IdRun<'_>,
) -> Result<Vec<PathBuf>, IngestError> {
    let staged = stage_batches(lake, batches, tag, ids)?;
    let events = lake.events_dir();
    let paths = staged
        .iter()
        .map(|f| f.path.clone())
        .filter(|p| p.starts_with(&events))
        .collect();
    publish_all(staged)?;
    Ok(paths)
}

fn split_by_date(batches: &[RecordBatch]) -> Result<BTreeMap<NaiveDate, RecordBatch>, IngestError> {
    let all = concat_batches(&event_schema(), batches)?;
    let ts = all
        .column_by_name("ts")
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or(IngestError::Schema("ts column missing or not a timestamp"))?;
    let mut rows_by_date: BTreeMap<NaiveDate, Vec<u32>> = BTreeMap::new();
    for (i, micros) in ts.values().iter().enumerate() {
        let date = modelshare_event::Timestamp(*micros).date();
        rows_by_date.entry(date).or_default().push(i as u32);
    }
    let mut out = BTreeMap::new();
    if rows_by_date.len() == 1 {
        if let Some((date, _)) = rows_by_date.pop_first() {
            out.insert(date, all);
        }
        return Ok(out);
    }
    for (date, rows) in rows_by_date {
        let idx = arrow::array::UInt32Array::from(rows);
        out.insert(date, take_record_batch(&all, &idx)?);
    }
    Ok(out)
}

fn sort_for_storage(batch: &RecordBatch) -> Result<RecordBatch, IngestError> {
    let col = |name: &'static str| {
        batch
            .column_by_name(name)
            .cloned()
            .ok_or(IngestError::Schema("sort column missing"))
    };
    let columns = vec![
        SortColumn {
            values: col("task")?,
            options: None,
        },
        SortColumn {
            values: col("model")?,
            options: None,
        },
        SortColumn {
            values: col("ts")?,
            options: None,
        },
    ];
    // Writers that produce storage order already (the generator, compaction of one sorted
    // file) skip the sort and the copy: one pass of comparisons tells.
    let comparator = arrow::compute::LexicographicalComparator::try_new(&columns)?;
    if (1..batch.num_rows()).all(|i| comparator.compare(i - 1, i).is_le()) {
        return Ok(batch.clone());
    }
    let idx = lexsort_to_indices(&columns, None)?;
    Ok(take_record_batch(batch, &idx)?)
}

pub(crate) fn stage_one(
    lake: &Lake,
    date: NaiveDate,
    batch: &RecordBatch,
    tag: &str,
) -> Result<StagedFile, IngestError> {
    let sorted = sort_for_storage(batch)?;
    stage_parquet(
        &lake.partition_dir(date),
        &new_file_name(tag),
        &sorted,
        writer_properties(),
    )
}

/// The node name new file names carry, once a process writes a lake in a bucket (where several
/// nodes write, and the same process id on two machines must not make the same name).
static NODE_NAME: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every file this process names from now on carry `node` (the first call wins).
pub fn name_files_after_node(node: &str) {
    let _ = NODE_NAME.set(node.to_owned());
}

/// A fresh file name for this process: `<tag>-<pid>-<n>.parquet`, or
/// `<tag>-<node>-<pid>-<n>.parquet` once a node name is set.
pub(crate) fn new_file_name(tag: &str) -> String {
    let n = FILE_COUNTER.fetch_add(1, Ordering::Relaxed);
    let pid = std::process::id();
    match NODE_NAME.get() {
        Some(node) => format!("{tag}-{node}-{pid}-{n}.parquet"),
        None => format!("{tag}-{pid}-{n}.parquet"),
    }
}

/// Writes `batch` as the Parquet file `dir/name` under a temporary name, fsynced, ready to be
/// published.
pub(crate) fn stage_parquet(
    dir: &Path,
    name: &str,
    batch: &RecordBatch,
    properties: WriterProperties,
) -> Result<StagedFile, IngestError> {
    fs::create_dir_all(dir).map_err(|e| IngestError::io(dir, e))?;
    let path = dir.join(name);
    let temp = temp_path(dir, name);
    let file = File::create(&temp).map_err(|e| IngestError::io(&temp, e))?;
    let result = (|| {
        let sink = PositionalWriter {
            file: &file,
            offset: 0,
        };
        let mut writer = ArrowWriter::try_new(sink, batch.schema(), Some(properties))?;
        writer.write(batch)?;
        writer.close()?;
        file.sync_all().map_err(|e| IngestError::io(&temp, e))?;
        file.metadata().map_err(|e| IngestError::io(&temp, e))
    })()
    .map_err(|e| e.in_file(&temp));
    match result {
        Ok(meta) => Ok(StagedFile {
            temp,
            path,
            rows: batch.num_rows(),
            bytes: meta.len(),
        }),
        Err(e) => {
            let _ = fs::remove_file(&temp);
            Err(e)
        }
    }
}

/// Flush files are named `w<segment>-...`: the last WAL segment whose rows they may contain.
pub(crate) fn flush_file_tag(segment: u64) -> String {
    format!("w{segment:016}")
}

pub(crate) fn flush_tag(path: &Path) -> Option<u64> {
    let name = path.file_name()?.to_str()?;
    name.strip_prefix('w')?.get(..16)?.parse().ok()
}

/// Writes a file front to back with positional writes (`pwrite`). The lake's durable files
/// (WAL segments, Parquet) are written this way and nothing else in the process uses `pwrite`
/// (sockets and the runtime's wake-ups use `write`), so fault-injection tests can fail exactly
/// the lake's writes.
#[derive(Debug)]
struct PositionalWriter<'a> {
    file: &'a File,
    offset: u64,
}

impl std::io::Write for PositionalWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        use std::os::unix::fs::FileExt;
        let n = self.file.write_at(buf, self.offset)?;
        self.offset += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Reads the `(app_id, event_id)` pairs of a Parquet file (to rebuild the duplicate filter on
/// start).
/// The day of a partition directory named `date=YYYY-MM-DD`.
pub fn partition_day(name: &str) -> Option<NaiveDate> {
    name.strip_prefix("date=")?.parse().ok()
}

/// The batches of the events file at `path`, with only its two id columns.
fn id_batches(
    path: &Path,
) -> Result<parquet::arrow::arrow_reader::ParquetRecordBatchReader, IngestError> {
    use parquet::arrow::ProjectionMask;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    let mask = ProjectionMask::columns(builder.parquet_schema(), ["event_id", "app_id"]);
    Ok(builder.with_projection(mask).build()?)
}

/// The duplicate-filter hashes of the rows of the events file at `path` (reading only the two
/// id columns).
pub(crate) fn read_id_hashes(path: &Path) -> Result<Vec<u64>, IngestError> {
    let mut hashes = Vec::new();
    for batch in id_batches(path)? {
        hashes.extend(id_hashes(&[batch?]).map_err(|e| e.in_file(path))?);
    }
    Ok(hashes)
}

pub fn read_event_keys(path: &Path) -> Result<Vec<(String, String)>, IngestError> {
    let mut keys = Vec::new();
    for batch in id_batches(path)? {
        let batch = batch?;
        let (ids, apps) = id_columns(&batch)?;
        keys.extend((0..ids.len()).map(|i| (apps.value(i).to_owned(), ids.value(i).to_owned())));
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelshare_event::schema::events_to_batch;
    use modelshare_event::{Event, Task};
    use parquet::file::reader::{FileReader, SerializedFileReader};

    fn event(id: &str, day: i64, task: Task, model: &str) -> Event {
        let ts = crate::fixtures::MONDAY_US + day * 86_400_000_000 + 1000;
        crate::fixtures::event(id, ts, "a", task, model, 1)
    }

    #[test]
    fn writes_one_sorted_file_per_day_with_schema_version() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let events = vec![
            event("3", 0, Task::Roleplay, "z/z"),
            event("1", 1, Task::Legal, "b/b"),
            event("2", 0, Task::Programming, "a/a"),
            event("4", 0, Task::Programming, "a/0"),
        ];
        let files =
            write_batches(&lake, &[events_to_batch(&events)], "t", IdRun::RowsAnd(&[])).unwrap();
        assert_eq!(files.len(), 2);
        assert!(files[0].starts_with(lake.partition_dir("2026-11-17".parse().unwrap())));
        assert!(files[1].starts_with(lake.partition_dir("2026-11-18".parse().unwrap())));
        let reader = SerializedFileReader::new(File::open(&files[0]).unwrap()).unwrap();
        let kv = reader
            .metadata()
            .file_metadata()
            .key_value_metadata()
            .unwrap();
        assert!(
            kv.iter()
                .any(|k| k.key == SCHEMA_VERSION_KEY && k.value.as_deref() == Some(SCHEMA_VERSION))
        );
        assert_eq!(
            read_event_keys(&files[0])
                .unwrap()
                .into_iter()
                .map(|(_, id)| id)
                .collect::<Vec<_>>(),
            vec!["4", "2", "3"],
            "sorted by task, model, ts"
        );
        assert_eq!(lake.event_files().unwrap(), files);
        // No temporary files are left behind.
        let names: Vec<_> = fs::read_dir(lake.partition_dir("2026-11-17".parse().unwrap()))
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1);
    }

    #[test]
    fn second_writer_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let _held = lake.lock().unwrap();
        assert!(matches!(lake.lock(), Err(IngestError::Locked(_))));
    }
}
