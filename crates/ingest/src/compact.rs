//! Compaction of closed days: a day's many small flush files become a few large ones, sorted
//! like every lake file (task, model, ts), with statistics and page index, swapped in atomically.
//!
//! Why: a server flushes every minute, so a day holds up to 1,440 files per node; every query
//! pays per file (listing, footers, row-group pruning). A closed day no longer changes (late
//! events add a file, which the next pass folds in), so it is rewritten once.
//!
//! Order of a compaction, and why each crash point is safe:
//! 1. write the new files under temporary names and fsync them (a crash leaves only temporary
//!    files, removed at the next start);
//! 2. write the journal `<day>/.compaction.json` naming the new files and the files they replace,
//!    atomically ([`lake::write_atomically`]);
//! 3. under the live buffer's gate (no query is between snapshot and listing), rename the new
//!    files into place, then delete the replaced ones;
//! 4. delete the journal.
//!
//! A crash between 2 and 4 leaves a journal. [`recover_journals`] (run at every start and before
//! every pass) rolls it forward when every new file is in place (deletes what is left of the old
//! ones) and back otherwise (deletes the new files already renamed): either way each event is in
//! exactly one visible file. A write that fails (a full disk) discards the new files and leaves
//! the day as it was.
//!
//! A query that listed the old files before the swap and opens one after it finds it gone; the
//! query engine plans such a query again (see `modelshare_query::engine`).

use crate::IngestError;
use crate::lake::{self, Lake, StagedFile, sync_dir};
use arrow::array::RecordBatch;
use chrono::NaiveDate;
use modelshare_event::live::LiveBuffer;
use modelshare_event::schema::event_schema;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::fs::{self, File};
use std::path::{Path, PathBuf};

/// The journal of a compaction in flight, in the day's directory.
pub const JOURNAL: &str = ".compaction.json";

/// Most rows in one compacted file. A file's rows are sorted in memory, so this bounds what a
/// compaction holds at once (about 1 GB of Arrow data at 4 M events), whatever the day's size.
pub const ROWS_PER_FILE: usize = 4_000_000;

#[derive(Debug, Serialize, Deserialize)]
struct Journal {
    /// File names (in the day's directory) that replace `old`.
    new: Vec<String>,
    old: Vec<String>,
}

/// What one compaction did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Compacted {
    pub date: NaiveDate,
    pub files_before: usize,
    pub files_after: usize,
    pub bytes_before: u64,
    pub bytes_after: u64,
    pub rows: u64,
    /// Rows dropped as repeats of an `(app_id, event_id)` already in the day (an event two
    /// nodes of a lake in a bucket both took).
    pub duplicates: u64,
}

pub(crate) fn day_files(dir: &Path) -> Result<Vec<PathBuf>, IngestError> {
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(|e| IngestError::io(dir, e))? {
        let path = entry.map_err(|e| IngestError::io(dir, e))?.path();
        let visible = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| !n.starts_with('.') && n.ends_with(".parquet"));
        if visible {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

pub(crate) fn file_rows(path: &Path) -> Result<usize, IngestError> {
    let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)?;
    Ok(builder.metadata().file_metadata().num_rows().max(0) as usize)
}

fn read_rows(paths: &[PathBuf]) -> Result<RecordBatch, IngestError> {
    let schema = event_schema();
    let mut batches = Vec::new();
    for path in paths {
        let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            // The lake schema's columns (null where the file predates one), rebuilt so
            // metadata differences cannot matter.
            batches.push(modelshare_event::schema::conform(&batch?)?);
        }
    }
    Ok(arrow::compute::concat_batches(&schema, &batches)?)
}

/// Groups the day's files, in order, into runs of at most [`ROWS_PER_FILE`] rows (a file larger
/// than that is a run of its own).
fn plan(files: &[(PathBuf, usize)]) -> Vec<Vec<PathBuf>> {
    let mut runs: Vec<Vec<PathBuf>> = Vec::new();
    let mut rows = 0;
    for (path, n) in files {
        match runs.last_mut() {
            Some(run) if rows + n <= ROWS_PER_FILE => {
                run.push(path.clone());
                rows += n;
            }
            _ => {
                runs.push(vec![path.clone()]);
                rows = *n;
            }
        }
    }
    runs
}

fn write_journal(dir: &Path, journal: &Journal) -> Result<(), IngestError> {
    let path = dir.join(JOURNAL);
    let text = serde_json::to_vec(journal).map_err(|e| IngestError::CorruptJournal {
        path: path.clone(),
        message: e.to_string(),
    })?;
    lake::write_atomically(&path, &text)
}

fn remove_journal(dir: &Path) -> Result<(), IngestError> {
    let path = dir.join(JOURNAL);
    fs::remove_file(&path).map_err(|e| IngestError::io(&path, e))?;
    sync_dir(dir)
}

/// Whether a compaction keeps one row per `(app_id, event_id)` of the day.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repeats {
    /// Rows are kept as they are: a local lake's one writer stores an id once already (rows
    /// copied in by hand count as they are).
    Keep,
    /// The first row of each id is kept: a lake in a bucket, which several nodes may write,
    /// each of which may have taken an event a router sent to more than one.
    Drop,
}

impl Repeats {
    /// What compaction does with repeats in `lake`.
    pub fn of(lake: &Lake) -> Repeats {
        if lake.bucket().is_some() {
            Repeats::Drop
        } else {
            Repeats::Keep
        }
    }
}

/// Compacts the day `date` when it has more files than compaction would leave. Returns `None`
/// when there is nothing to gain.
pub fn compact_day(
    lake: &Lake,
    live: &LiveBuffer,
    date: NaiveDate,
    repeats: Repeats,
) -> Result<Option<Compacted>, IngestError> {
    let dir = lake.partition_dir(date);
    if dir.join(JOURNAL).exists() {
        recover_journal(&dir)?;
    }
    let paths = day_files(&dir)?;
    if paths.len() < 2 {
        // Every pass looks at every closed day: a compacted day costs one directory listing.
        return Ok(None);
    }
    let mut files = Vec::new();
    for path in paths {
        let rows = file_rows(&path)?;
        files.push((path, rows));
    }
    let runs = plan(&files);
    if runs.len() >= files.len() {
        return Ok(None);
    }
    let bytes_before = files
        .iter()
        .map(|(p, _)| fs::metadata(p).map_or(0, |m| m.len()))
        .sum();
    // The compacted file is named like the flush files it replaces, after the newest WAL segment
    // any of its rows was logged in. Nothing reads the tag back (the duplicate filter has the id
    // index); it tells an operator where a file's rows came from.
    let tag = files
        .iter()
        .filter_map(|(p, _)| lake::flush_tag(p))
        .max()
        .unwrap_or(0);
    let tag = format!("{}c", lake::flush_file_tag(tag));

    let repeated = match repeats {
        Repeats::Drop => repeated_ids(&files)?,
        Repeats::Keep => HashSet::new(),
    };
    let mut seen = HashMap::new();
    let mut duplicates = 0u64;
    let mut staged: Vec<StagedFile> = Vec::new();
    for run in &runs {
        let written = read_rows(run)
            .and_then(|batch| {
                let kept = keep_first(&batch, &repeated, &mut seen)?;
                duplicates += (batch.num_rows() - kept.num_rows()) as u64;
                Ok(kept)
            })
            .and_then(|batch| lake::stage_one(lake, date, &batch, &tag));
        match written {
            Ok(f) => staged.push(f),
            Err(e) => {
                staged.into_iter().for_each(StagedFile::discard);
                return Err(e);
            }
        }
    }
    let rows = staged.iter().map(|f| f.rows as u64).sum();
    let bytes_after = staged.iter().map(|f| f.bytes).sum();
    let files_after = staged.len();
    let old: Vec<PathBuf> = files.iter().map(|(p, _)| p.clone()).collect();
    replace_files(live, &dir, staged, &old)?;
    Ok(Some(Compacted {
        date,
        files_before: files.len(),
        files_after,
        bytes_before,
        bytes_after,
        rows,
        duplicates,
    }))
}

/// Most id hashes held at once while looking for repeats (512 MiB); a larger day is read in
/// that many passes, each keeping the hashes of one residue.
const HASHES_IN_MEMORY: usize = 64 << 20;

/// The id hashes ([`crate::dedup::id_hash`]) that occur more than once among the rows of
/// `files` (with their row counts). One node stores an id once (its duplicate filter and id index); two nodes writing
/// one lake in a bucket may both take a retried event, and compaction keeps one.
pub fn repeated_ids(files: &[(PathBuf, usize)]) -> Result<HashSet<u64>, IngestError> {
    let rows: usize = files.iter().map(|(_, n)| n).sum();
    let passes = rows.div_ceil(HASHES_IN_MEMORY).max(1) as u64;
    let mut repeated = HashSet::new();
    for pass in 0..passes {
        let mut hashes = Vec::new();
        for (path, _) in files {
            let ids = crate::lake::read_id_hashes(path)?;
            hashes.extend(ids.into_iter().filter(|h| h % passes == pass));
        }
        hashes.sort_unstable();
        repeated.extend(hashes.windows(2).filter(|w| w[0] == w[1]).map(|w| w[0]));
    }
    Ok(repeated)
}

/// The `(app_id, event_id)` pairs kept so far whose hash is repeated in the day.
type Kept = HashMap<u64, Vec<(String, String)>>;

/// The rows of `batch` but the repeats of a pair already kept (`seen`). A row is dropped only
/// when its very pair was kept, not merely its hash (two events may share one).
fn keep_first(
    batch: &RecordBatch,
    repeated: &HashSet<u64>,
    seen: &mut Kept,
) -> Result<RecordBatch, IngestError> {
    if repeated.is_empty() {
        return Ok(batch.clone());
    }
    let hashes = crate::lake::id_hashes(std::slice::from_ref(batch))?;
    let (ids, apps) = crate::lake::id_columns(batch)?;
    let keep: arrow::array::BooleanArray = hashes
        .iter()
        .enumerate()
        .map(|(i, h)| {
            if !repeated.contains(h) {
                return Some(true);
            }
            let pair = (apps.value(i), ids.value(i));
            let kept = seen.entry(*h).or_default();
            if kept.iter().any(|(a, e)| (a.as_str(), e.as_str()) == pair) {
                Some(false)
            } else {
                kept.push((pair.0.to_owned(), pair.1.to_owned()));
                Some(true)
            }
        })
        .collect();
    Ok(arrow::compute::filter_record_batch(batch, &keep)?)
}

/// Replaces the files `old` of the directory `dir` by the `staged` ones, crash-safe and atomic
/// for queries (steps 2 to 4 of the module docs). On failure the directory is as it was, or the
/// journal left behind finishes the replacement at the next start.
pub(crate) fn replace_files(
    live: &LiveBuffer,
    dir: &Path,
    staged: Vec<StagedFile>,
    old: &[PathBuf],
) -> Result<(), IngestError> {
    let name = |p: &Path| {
        p.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let journal = Journal {
        new: staged.iter().map(|f| name(&f.path)).collect(),
        old: old.iter().map(|p| name(p)).collect(),
    };
    if let Err(e) = write_journal(dir, &journal) {
        staged.into_iter().for_each(StagedFile::discard);
        return Err(e);
    }
    let swapped = live.swap_files(|| {
        lake::publish_all(staged)?;
        // From here the new files are the directory's: what is left of the old ones is rolled
        // forward by the journal if this process stops before it has deleted them.
        for path in old {
            fs::remove_file(path).map_err(|e| IngestError::io(path, e))?;
        }
        sync_dir(dir)
    });
    match swapped {
        Ok(()) => remove_journal(dir),
        Err(e) => {
            // Either nothing was published (publish_all took its files back) or the new files
            // are all in place: the journal decides which, now or at the next start.
            recover_journal(dir)?;
            Err(e)
        }
    }
}

/// Finishes or undoes the compaction whose journal is in `dir` (see the module docs).
fn recover_journal(dir: &Path) -> Result<(), IngestError> {
    let path = dir.join(JOURNAL);
    let text = fs::read(&path).map_err(|e| IngestError::io(&path, e))?;
    let journal: Journal =
        serde_json::from_slice(&text).map_err(|e| IngestError::CorruptJournal {
            path: path.clone(),
            message: e.to_string(),
        })?;
    let all_new_in_place = journal.new.iter().all(|n| dir.join(n).exists());
    let doomed = if all_new_in_place {
        &journal.old
    } else {
        &journal.new
    };
    for name in doomed {
        let p = dir.join(name);
        match fs::remove_file(&p) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(IngestError::io(&p, e)),
        }
    }
    tracing::warn!(
        dir = %dir.display(),
        rolled = if all_new_in_place { "forward" } else { "back" },
        "finished an interrupted compaction"
    );
    remove_journal(dir)
}

/// Rolls every interrupted compaction of the lake forward or back. Run before anything reads
/// the lake's files at start.
pub fn recover_journals(lake: &Lake) -> Result<usize, IngestError> {
    let mut recovered = 0;
    for tree in [lake.events_dir(), lake.cube_dir()] {
        if !tree.is_dir() {
            continue;
        }
        for part in fs::read_dir(&tree).map_err(|e| IngestError::io(&tree, e))? {
            let dir = part.map_err(|e| IngestError::io(&tree, e))?.path();
            if dir.join(JOURNAL).is_file() {
                recover_journal(&dir)?;
                recovered += 1;
            }
        }
    }
    Ok(recovered)
}

/// The days of the lake's events, oldest first (from the partition directories).
pub fn days(lake: &Lake) -> Result<Vec<NaiveDate>, IngestError> {
    days_in(&lake.events_dir())
}

/// The days of the `date=` partitions under `tree`, oldest first.
pub(crate) fn days_in(tree: &Path) -> Result<Vec<NaiveDate>, IngestError> {
    let mut out = Vec::new();
    if !tree.is_dir() {
        return Ok(out);
    }
    for part in fs::read_dir(tree).map_err(|e| IngestError::io(tree, e))? {
        let dir = part.map_err(|e| IngestError::io(tree, e))?.path();
        let date = dir
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(lake::partition_day);
        if let Some(d) = date.filter(|_| dir.is_dir()) {
            out.push(d);
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::lake::{IdRun, read_event_keys, write_batches};
    use modelshare_event::schema::events_to_batch;
    use modelshare_event::{Event, Task};

    fn event(id: u32, model: &str) -> Event {
        let task = if id.is_multiple_of(2) {
            Task::Programming
        } else {
            Task::Roleplay
        };
        let ts = crate::fixtures::MONDAY_US + i64::from(id) * 1_000_000;
        crate::fixtures::event(
            &format!("e{id}"),
            ts,
            &format!("a{}", id % 3),
            task,
            model,
            id,
        )
    }

    /// Five flushes of one day, as a server leaves them.
    fn five_flushes(lake: &Lake) -> NaiveDate {
        for f in 0..5u32 {
            let events: Vec<Event> = (f * 10..f * 10 + 10)
                .map(|i| event(i, if i.is_multiple_of(3) { "b/b" } else { "a/a" }))
                .collect();
            write_batches(
                lake,
                &[events_to_batch(&events)],
                &lake::flush_file_tag(u64::from(f) + 1),
                IdRun::RowsAnd(&[]),
            )
            .unwrap();
        }
        "2026-11-17".parse().unwrap()
    }

    fn keys(lake: &Lake) -> Vec<(String, String)> {
        let mut all: Vec<_> = lake
            .event_files()
            .unwrap()
            .iter()
            .flat_map(|f| read_event_keys(f).unwrap())
            .collect();
        all.sort();
        all
    }

    #[test]
    fn an_event_two_nodes_both_took_is_kept_once() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        // Two nodes' flushes of one day: e0..e9 and e6..e15 (e6..e9 taken by both, one of
        // them with another model: the first kept is the one in the earlier file).
        let first: Vec<Event> = (0..10).map(|i| event(i, "a/a")).collect();
        let second: Vec<Event> = (6..16).map(|i| event(i, "b/b")).collect();
        for (n, events) in [first, second].iter().enumerate() {
            write_batches(
                &lake,
                &[events_to_batch(events)],
                &lake::flush_file_tag(n as u64 + 1),
                IdRun::RowsAnd(&[]),
            )
            .unwrap();
        }
        let day = "2026-11-17".parse().unwrap();
        let c = compact_day(&lake, &LiveBuffer::new(), day, Repeats::Drop)
            .unwrap()
            .unwrap();
        assert_eq!((c.files_before, c.files_after), (2, 1));
        assert_eq!((c.rows, c.duplicates), (16, 4));
        let keys = keys(&lake);
        let ids: Vec<String> = keys.iter().map(|(_, id)| id.clone()).collect();
        let mut expected: Vec<String> = (0..16).map(|i| format!("e{i}")).collect();
        expected.sort();
        let mut got = ids.clone();
        got.sort();
        assert_eq!(got, expected);
        assert_eq!(ids.len(), 16);
        // Compacting again finds nothing to drop (and nothing to gain).
        assert_eq!(
            compact_day(&lake, &LiveBuffer::new(), day, Repeats::Drop).unwrap(),
            None
        );
        // The repeats kept the first file's rows: model a/a for e6..e9.
        let file = lake.event_files().unwrap().remove(0);
        let batch = read_rows(&[file]).unwrap();
        let models = arrow::compute::cast(
            batch.column_by_name("model").unwrap(),
            &arrow::datatypes::DataType::Utf8,
        )
        .unwrap();
        let models = models
            .as_any()
            .downcast_ref::<arrow::array::StringArray>()
            .unwrap()
            .iter()
            .flatten()
            .filter(|m| *m == "a/a")
            .count();
        assert_eq!(models, 10);
    }

    #[test]
    fn a_day_of_flushes_becomes_one_sorted_file_with_the_same_rows() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let day = five_flushes(&lake);
        let before = keys(&lake);
        let done = compact_day(&lake, &LiveBuffer::new(), day, Repeats::Keep)
            .unwrap()
            .unwrap();
        assert_eq!((done.files_before, done.files_after, done.rows), (5, 1, 50));
        let files = lake.event_files().unwrap();
        assert_eq!(files.len(), 1);
        assert_eq!(keys(&lake), before);
        // Tagged with the newest segment of its inputs, so start-up still finds it.
        assert_eq!(lake::flush_tag(&files[0]), Some(5));
        // Sorted by (task, model, ts): programming before roleplay, a/a before b/b.
        let ids: Vec<String> = read_event_keys(&files[0])
            .unwrap()
            .into_iter()
            .map(|k| k.1)
            .collect();
        assert_eq!(&ids[..3], ["e2", "e4", "e8"]);
        assert!(!lake.partition_dir(day).join(JOURNAL).exists());
        // A second pass has nothing to gain.
        assert_eq!(
            compact_day(&lake, &LiveBuffer::new(), day, Repeats::Keep).unwrap(),
            None
        );
    }

    fn journal_of(lake: &Lake, day: NaiveDate) -> (PathBuf, Vec<PathBuf>) {
        let dir = lake.partition_dir(day);
        (dir.clone(), day_files(&dir).unwrap())
    }

    #[test]
    fn an_interrupted_swap_rolls_back_before_every_new_file_is_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let day = five_flushes(&lake);
        let before = keys(&lake);
        let (pdir, old) = journal_of(&lake, day);
        // Crash after the journal and one of two renames: both new files named, one present.
        let present = pdir.join("w0000000000000005c-1-1.parquet");
        fs::copy(&old[0], &present).unwrap();
        let journal = Journal {
            new: vec![
                "w0000000000000005c-1-1.parquet".into(),
                "w0000000000000005c-1-2.parquet".into(),
            ],
            old: old
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into())
                .collect(),
        };
        write_journal(&pdir, &journal).unwrap();
        assert_eq!(recover_journals(&lake).unwrap(), 1);
        assert_eq!(
            keys(&lake),
            before,
            "rolled back: the old files, each event once"
        );
        assert!(!present.exists());
        assert!(!pdir.join(JOURNAL).exists());
    }

    #[test]
    fn an_interrupted_swap_rolls_forward_once_every_new_file_is_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let day = five_flushes(&lake);
        let before = keys(&lake);
        let (pdir, old) = journal_of(&lake, day);
        // The new file is the compaction of all five; crash after deleting two old ones.
        let batch = read_rows(&old).unwrap();
        let staged = lake::stage_one(&lake, day, &batch, "w0000000000000005c").unwrap();
        let new_name = staged
            .path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let journal = Journal {
            new: vec![new_name],
            old: old
                .iter()
                .map(|p| p.file_name().unwrap().to_string_lossy().into())
                .collect(),
        };
        write_journal(&pdir, &journal).unwrap();
        lake::publish_all(vec![staged]).unwrap();
        fs::remove_file(&old[0]).unwrap();
        fs::remove_file(&old[1]).unwrap();
        recover_journals(&lake).unwrap();
        assert_eq!(lake.event_files().unwrap().len(), 1);
        assert_eq!(
            keys(&lake),
            before,
            "rolled forward: the new file, each event once"
        );
    }

    #[test]
    fn runs_respect_the_row_bound() {
        let f = |n: usize| (PathBuf::from(format!("{n}")), n);
        let runs = plan(&[f(1), f(ROWS_PER_FILE - 1), f(5), f(ROWS_PER_FILE + 7), f(2)]);
        let sizes: Vec<usize> = runs.iter().map(Vec::len).collect();
        assert_eq!(sizes, vec![2, 1, 1, 1]);
    }
}
