//! Writing and keeping the app-day cube (see `modelshare_event::cube` for what it is).
//!
//! - **On the write path**: every events file a flush (or bulk ingest, or the generator) writes
//!   gets a cube file of the same name, folded from the same rows and published in the same
//!   all-or-nothing step ([`crate::lake::stage_batches`]). Late events land in their own day's
//!   cube the same way.
//! - **Check** ([`check_day`]): a day's cube files must summarize exactly the day's events files:
//!   the event count in the cube files' metadata equals the rows in the events files' footers,
//!   and every cube file decodes. A day that fails (a cube file missing or damaged, events
//!   copied in by hand, a lake older than the cube, a crash between the two halves of a
//!   publication) is read from raw events and rebuilt.
//! - **Rebuild** ([`rebuild_day`]): the day's events files are folded into one new cube file,
//!   which replaces the day's cube files under a journal.
//! - **Merge** ([`merge_day`]): a day's many small cube files (one per flush) are folded into
//!   one, under a journal, so a read of the open day costs one file too.
//!
//! Replacements take the live buffer's gate, so a query lists either the cube files before or
//! after a swap; the file lists they fold are taken under the same gate, so a flush that
//! publishes in between adds an events file together with its cube file and both stay.

use crate::IngestError;
use crate::compact::{self, day_files};
use crate::lake::{self, Lake, StagedFile};
use arrow::array::{
    Array, ArrayRef, Decimal128Array, Int64Array, RecordBatch, StringArray, UInt8Array,
    UInt32Array, UInt64Array,
};
use arrow::compute::filter_record_batch;
use arrow::datatypes::DataType;
use arrow::row::{RowConverter, Rows, SortField};
use chrono::NaiveDate;
use hashbrown::HashTable;
use modelshare_event::Context;
use modelshare_event::cube::{
    APP_DAYS_EVENTS_KEY, Coverage, RETIRED_DIRS, app_days_schema, app_key, group_presence_schema,
    groups_schema,
};
use modelshare_event::live::LiveBuffer;
use modelshare_event::schema::{COST_PRECISION, COST_SCALE};
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use parquet::file::properties::WriterProperties;
use std::collections::BTreeSet;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A day with more cube files than this is merged by the next maintenance pass. One pass every
/// ten minutes and a flush a minute keep an open day at about this many files.
pub const MERGE_ABOVE: usize = 8;

/// The largest spend a cube row can hold: `cost_usd` is stored as a 64-bit integer of micro-USD.
const MAX_COST_MICROS: i128 = 999_999_999_999_999_999;

/// Sums of one cube row.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Measures {
    requests: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_micros: i128,
}

impl Measures {
    fn add(&mut self, other: Measures) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.cost_micros += other.cost_micros;
    }
}

/// Folds rows into cube rows: one per distinct key, its measures summed.
pub(crate) struct Folder {
    converter: RowConverter,
    keys: Rows,
    index: HashTable<usize>,
    measures: Vec<Measures>,
    /// Events (of any status) folded so far.
    events: u64,
}

fn key_fields() -> Vec<SortField> {
    let utf8 = || SortField::new(DataType::Utf8);
    vec![
        utf8(),
        utf8(),
        utf8(),
        utf8(),
        SortField::new(DataType::UInt8),
        SortField::new(DataType::UInt8),
        SortField::new(DataType::UInt8),
    ]
}

pub(crate) fn column<'a, T: 'static>(
    batch: &'a RecordBatch,
    name: &'static str,
) -> Result<&'a T, IngestError> {
    batch
        .column_by_name(name)
        .and_then(|c| c.as_any().downcast_ref::<T>())
        .ok_or(IngestError::Schema(
            "a column the app-day cube needs is missing or has another type",
        ))
}

fn key_columns(batch: &RecordBatch) -> Result<Vec<ArrayRef>, IngestError> {
    modelshare_event::cube::APP_DAYS_KEY
        .iter()
        .map(|name| match batch.column_by_name(name) {
            Some(c) => Ok(Arc::clone(c)),
            // Events carry their step, from which the cube's `position` follows.
            None if *name == "position" && batch.column_by_name("status").is_some() => {
                position_of_events(batch)
            }
            // And their input tokens, from which the context segment follows.
            None if *name == "context" && batch.column_by_name("status").is_some() => {
                context_of_events(batch)
            }
            None => Err(IngestError::Schema(
                "a key column of the app-day cube is missing",
            )),
        })
        .collect()
}

/// A call's place in its agent trace: 0 without a step, 1 for the first call (`step = 0`), 2
/// for the calls after it; events files from before steps existed have no `step` column.
fn position_of_events(batch: &RecordBatch) -> Result<ArrayRef, IngestError> {
    let position: UInt8Array = match batch.column_by_name("step") {
        None => UInt8Array::from(vec![0u8; batch.num_rows()]),
        Some(c) => {
            let steps = c
                .as_any()
                .downcast_ref::<UInt32Array>()
                .ok_or(IngestError::Schema("step must be a UInt32 column"))?;
            steps
                .iter()
                .map(|s| Some(s.map_or(0, |s| if s > 0 { 2 } else { 1 })))
                .collect()
        }
    };
    Ok(Arc::new(position))
}

/// The context segment's code of each event, from its input tokens.
fn context_of_events(batch: &RecordBatch) -> Result<ArrayRef, IngestError> {
    let input: &UInt32Array = column(batch, "input_tokens")?;
    let codes: UInt8Array = input
        .values()
        .iter()
        .map(|n| Some(Context::of(u64::from(*n)).code()))
        .collect();
    Ok(Arc::new(codes))
}

fn hash(row: &[u8]) -> u64 {
    xxhash_rust::xxh3::xxh3_64(row)
}

impl Folder {
    pub(crate) fn new() -> Result<Folder, IngestError> {
        let converter = RowConverter::new(key_fields())?;
        let keys = converter.empty_rows(0, 0);
        Ok(Folder {
            converter,
            keys,
            index: HashTable::new(),
            measures: Vec::new(),
            events: 0,
        })
    }

    /// Folds a batch of events (lake schema): every event counts towards [`Folder::events`],
    /// only `ok` ones towards the cube's sums.
    pub(crate) fn fold_events(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        self.events += batch.num_rows() as u64;
        let status: &StringArray = column(batch, "status")?;
        let ok: arrow::array::BooleanArray = status
            .iter()
            .map(|s| Some(s == Some(modelshare_event::Status::Ok.as_str())))
            .collect();
        let batch = filter_record_batch(batch, &ok)?;
        let input: &UInt32Array = column(&batch, "input_tokens")?;
        let output: &UInt32Array = column(&batch, "output_tokens")?;
        let cost: &Decimal128Array = column(&batch, "cost_usd")?;
        let measures = (0..batch.num_rows()).map(|i| Measures {
            requests: 1,
            input_tokens: i64::from(input.value(i)),
            output_tokens: i64::from(output.value(i)),
            cost_micros: cost.value(i),
        });
        self.add(&key_columns(&batch)?, measures)
    }

    /// Folds a batch of cube rows (their event count is added per file, see [`fold_files`]).
    fn fold_cube(&mut self, batch: &RecordBatch) -> Result<(), IngestError> {
        // Files of an older layout lack the key: the check fails and the day is rebuilt.
        let _: &UInt64Array = column(batch, "app_key")?;
        let requests: &Int64Array = column(batch, "requests")?;
        let input: &Int64Array = column(batch, "input_tokens")?;
        let output: &Int64Array = column(batch, "output_tokens")?;
        let cost: &Decimal128Array = column(batch, "cost_usd")?;
        let measures = (0..batch.num_rows()).map(|i| Measures {
            requests: requests.value(i),
            input_tokens: input.value(i),
            output_tokens: output.value(i),
            cost_micros: cost.value(i),
        });
        self.add(&key_columns(batch)?, measures)
    }

    fn add(
        &mut self,
        keys: &[ArrayRef],
        measures: impl Iterator<Item = Measures>,
    ) -> Result<(), IngestError> {
        let rows = self.converter.convert_columns(keys)?;
        let Folder {
            keys: known,
            index,
            measures: sums,
            ..
        } = self;
        for (i, m) in measures.enumerate() {
            let row = rows.row(i);
            let h = hash(row.as_ref());
            let group = match index.find(h, |g| known.row(*g) == row) {
                Some(g) => *g,
                None => {
                    let g = known.num_rows();
                    known.push(row);
                    sums.push(Measures::default());
                    index.insert_unique(h, g, |g| hash(known.row(*g).as_ref()));
                    g
                }
            };
            sums[group].add(m);
        }
        Ok(())
    }

    /// The cube rows, sorted by key, and the number of events they summarize.
    pub(crate) fn finish(self) -> Result<(RecordBatch, u64), IngestError> {
        let mut order: Vec<usize> = (0..self.keys.num_rows()).collect();
        order.sort_unstable_by(|a, b| self.keys.row(*a).cmp(&self.keys.row(*b)));
        let mut columns = self
            .converter
            .convert_rows(order.iter().map(|g| self.keys.row(*g)))?;
        let pick = |f: fn(&Measures) -> i64| -> ArrayRef {
            Arc::new(Int64Array::from_iter_values(
                order.iter().map(|g| f(&self.measures[*g])),
            ))
        };
        columns.push(pick(|m| m.requests));
        columns.push(pick(|m| m.input_tokens));
        columns.push(pick(|m| m.output_tokens));
        if order
            .iter()
            .any(|g| self.measures[*g].cost_micros > MAX_COST_MICROS)
        {
            return Err(IngestError::Schema(
                "a cube row's spend exceeds what cost_usd can hold",
            ));
        }
        let cost =
            Decimal128Array::from_iter_values(order.iter().map(|g| self.measures[*g].cost_micros))
                .with_precision_and_scale(COST_PRECISION, COST_SCALE)?;
        columns.push(Arc::new(cost));
        let apps: &StringArray = columns[3]
            .as_any()
            .downcast_ref()
            .ok_or(IngestError::Schema("app_id must be a string column"))?;
        let keys = UInt64Array::from_iter_values(apps.iter().map(|a| app_key(a.unwrap_or(""))));
        // After the keys (task, model, provider, app_id, attempt, position, context), as the schema
        // has it.
        columns.insert(modelshare_event::cube::APP_DAYS_KEY.len(), Arc::new(keys));
        Ok((
            RecordBatch::try_new(app_days_schema(), columns)?,
            self.events,
        ))
    }
}

/// Writer settings of cube files; the file's event count goes into its metadata.
pub(crate) fn writer_properties(events: u64) -> WriterProperties {
    lake::lake_writer_properties(APP_DAYS_EVENTS_KEY, events.to_string()).build()
}

fn stage(
    lake: &Lake,
    date: NaiveDate,
    name: &str,
    folder: Folder,
) -> Result<StagedFile, IngestError> {
    let (rows, events) = folder.finish()?;
    lake::stage_parquet(
        &lake.cube_partition_dir(date),
        name,
        &rows,
        writer_properties(events),
    )
}

/// The cube file of the events of one day that a flush is about to publish as `name`.
pub(crate) fn stage_for_events(
    lake: &Lake,
    date: NaiveDate,
    name: &str,
    events: &RecordBatch,
) -> Result<StagedFile, IngestError> {
    let mut folder = Folder::new()?;
    folder.fold_events(events)?;
    stage(lake, date, name, folder)
}

/// The number of events a cube file summarizes (from its metadata).
fn events_summarized(meta: &parquet::file::metadata::ParquetMetaData) -> Result<u64, IngestError> {
    meta.file_metadata()
        .key_value_metadata()
        .into_iter()
        .flatten()
        .find(|kv| kv.key == APP_DAYS_EVENTS_KEY)
        .and_then(|kv| kv.value.as_deref()?.parse().ok())
        .ok_or(IngestError::Schema("a cube file without its event count"))
}

/// Folds Parquet files (events or cube files) into `folder`, batch by batch.
fn fold_files(folder: &mut Folder, paths: &[PathBuf], cube: bool) -> Result<(), IngestError> {
    for path in paths {
        let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
        let reader = ParquetRecordBatchReaderBuilder::try_new(file)?;
        if cube {
            folder.events += events_summarized(reader.metadata())?;
        }
        for batch in reader.build()? {
            let batch = batch?;
            if cube {
                folder.fold_cube(&batch)?;
            } else {
                folder.fold_events(&batch)?;
            }
        }
    }
    Ok(())
}

/// The events files and cube files of a day, listed under the live buffer's gate so that no
/// flush is half visible in them.
fn list_day(
    lake: &Lake,
    live: &LiveBuffer,
    date: NaiveDate,
) -> Result<(Vec<PathBuf>, Vec<PathBuf>), IngestError> {
    live.swap_files(|| {
        Ok((
            existing_day_files(&lake.partition_dir(date))?,
            existing_day_files(&lake.cube_partition_dir(date))?,
        ))
    })
}

pub(crate) fn existing_day_files(dir: &Path) -> Result<Vec<PathBuf>, IngestError> {
    if !dir.is_dir() {
        return Ok(Vec::new());
    }
    day_files(dir)
}

/// Whether `date`'s cube files summarize exactly its events files, every cube file decoding.
pub fn check_day(lake: &Lake, live: &LiveBuffer, date: NaiveDate) -> Result<bool, IngestError> {
    let (events, cube) = list_day(lake, live, date)?;
    let mut event_rows = 0u64;
    for path in &events {
        event_rows += compact::file_rows(path)? as u64;
    }
    let mut folder = Folder::new()?;
    match fold_files(&mut folder, &cube, true) {
        Ok(()) => Ok(folder.events == event_rows),
        Err(e) => {
            tracing::warn!(error = %e, %date, "a cube file of the day cannot be read");
            Ok(false)
        }
    }
}

/// The days with events or cube files, oldest first.
pub fn days(lake: &Lake) -> Result<Vec<NaiveDate>, IngestError> {
    let mut days: BTreeSet<NaiveDate> = compact::days_in(&lake.events_dir())?.into_iter().collect();
    days.extend(compact::days_in(&lake.cube_dir())?);
    Ok(days.into_iter().collect())
}

/// Replaces `date`'s cube with one file folded from its events files.
pub fn rebuild_day(lake: &Lake, live: &LiveBuffer, date: NaiveDate) -> Result<(), IngestError> {
    let (events, cube) = list_day(lake, live, date)?;
    let mut folder = Folder::new()?;
    fold_files(&mut folder, &events, false)?;
    let staged = stage(lake, date, &lake::new_file_name("r"), folder)?;
    compact::replace_files(live, &lake.cube_partition_dir(date), vec![staged], &cube)
}

/// Folds `date`'s cube files into one when it has more than `above`. Returns whether it did.
pub fn merge_day(
    lake: &Lake,
    live: &LiveBuffer,
    date: NaiveDate,
    above: usize,
) -> Result<bool, IngestError> {
    let (_, cube) = list_day(lake, live, date)?;
    if cube.len() <= above.max(1) {
        return Ok(false);
    }
    let mut folder = Folder::new()?;
    fold_files(&mut folder, &cube, true)?;
    let staged = stage(lake, date, &lake::new_file_name("m"), folder)?;
    compact::replace_files(live, &lake.cube_partition_dir(date), vec![staged], &cube)?;
    Ok(true)
}

/// A group of the publication rule in a day: (task, model, provider, context segment, fallback,
/// position), see `modelshare_event::cube::GROUP_KEY`.
type GroupKey = (String, String, String, [u8; 3]);

/// A group's distinct app keys and sums.
type Group = (BTreeSet<u64>, Measures);

/// The summaries of a day's single cube file.
struct Summaries {
    /// Per group: distinct apps and sums.
    groups: RecordBatch,
    /// Per group and app key: the group's distinct apps.
    presence: RecordBatch,
}

/// The summaries of a day's single cube file.
fn groups_of(cube_file: &Path) -> Result<Summaries, IngestError> {
    let mut groups: std::collections::BTreeMap<GroupKey, Group> = Default::default();
    let file = File::open(cube_file).map_err(|e| IngestError::io(cube_file, e))?;
    for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
        let batch = batch?;
        let task: &StringArray = column(&batch, "task")?;
        let model: &StringArray = column(&batch, "model")?;
        let provider: &StringArray = column(&batch, "provider")?;
        let context: &UInt8Array = column(&batch, "context")?;
        let attempt: &UInt8Array = column(&batch, "attempt")?;
        let position: &UInt8Array = column(&batch, "position")?;
        let key: &UInt64Array = column(&batch, "app_key")?;
        let requests: &Int64Array = column(&batch, "requests")?;
        let input: &Int64Array = column(&batch, "input_tokens")?;
        let output: &Int64Array = column(&batch, "output_tokens")?;
        let cost: &Decimal128Array = column(&batch, "cost_usd")?;
        for i in 0..batch.num_rows() {
            let group = (
                task.value(i).to_owned(),
                model.value(i).to_owned(),
                provider.value(i).to_owned(),
                [
                    context.value(i),
                    u8::from(attempt.value(i) > 0),
                    position.value(i),
                ],
            );
            let (apps, sums) = groups.entry(group).or_default();
            apps.insert(key.value(i));
            sums.add(Measures {
                requests: requests.value(i),
                input_tokens: input.value(i),
                output_tokens: output.value(i),
                cost_micros: cost.value(i),
            });
        }
    }
    let rows: Vec<(&GroupKey, &Group)> = groups.iter().collect();
    let mut columns = group_key_columns(rows.iter().map(|(k, _)| *k));
    columns.extend(group_columns(rows.iter().map(|(_, g)| *g))?);
    let groups_batch = RecordBatch::try_new(groups_schema(), columns)?;

    // Presence rows: (group, app key, the group's distinct apps).
    let all: Vec<(&GroupKey, u64, usize)> = groups
        .iter()
        .flat_map(|(group, (apps, _))| apps.iter().map(move |k| (group, *k, apps.len())))
        .collect();
    let mut presence = group_key_columns(all.iter().map(|(g, _, _)| *g));
    presence.push(Arc::new(UInt64Array::from_iter_values(
        all.iter().map(|(_, k, _)| *k),
    )));
    presence.push(Arc::new(Int64Array::from_iter_values(
        all.iter().map(|(_, _, n)| *n as i64),
    )));
    Ok(Summaries {
        groups: groups_batch,
        presence: RecordBatch::try_new(group_presence_schema(), presence)?,
    })
}

/// The key columns of summary rows: task, model, provider, then the group key.
fn group_key_columns<'a>(groups: impl Iterator<Item = &'a GroupKey> + Clone) -> Vec<ArrayRef> {
    let mut columns: Vec<ArrayRef> = vec![
        Arc::new(StringArray::from_iter_values(groups.clone().map(|g| &g.0))),
        Arc::new(StringArray::from_iter_values(groups.clone().map(|g| &g.1))),
        Arc::new(StringArray::from_iter_values(groups.clone().map(|g| &g.2))),
    ];
    for i in 0..3 {
        columns.push(Arc::new(UInt8Array::from_iter_values(
            groups.clone().map(|g| g.3[i]),
        )));
    }
    columns
}

/// The distinct apps of groups, then their sums: the columns after a summary row's keys.
fn group_columns<'a>(
    groups: impl Iterator<Item = &'a Group> + Clone,
) -> Result<Vec<ArrayRef>, IngestError> {
    let ints = |f: fn(&Group) -> i64| -> ArrayRef {
        Arc::new(Int64Array::from_iter_values(groups.clone().map(f)))
    };
    let mut columns = vec![ints(|(apps, _)| apps.len() as i64)];
    columns.push(ints(|(_, m)| m.requests));
    columns.push(ints(|(_, m)| m.input_tokens));
    columns.push(ints(|(_, m)| m.output_tokens));
    let cost = Decimal128Array::from_iter_values(groups.map(|(_, m)| m.cost_micros))
        .with_precision_and_scale(COST_PRECISION, COST_SCALE)?;
    columns.push(Arc::new(cost));
    Ok(columns)
}

/// Whether every row of the Parquet file at `path` decodes (a warning names it when not).
fn decodes(path: &Path) -> bool {
    let read = || -> Result<(), IngestError> {
        let file = File::open(path).map_err(|e| IngestError::io(path, e))?;
        for batch in ParquetRecordBatchReaderBuilder::try_new(file)?.build()? {
            batch?;
        }
        Ok(())
    };
    match read() {
        Ok(()) => true,
        Err(e) => {
            tracing::warn!(error = %e, path = %path.display(), "a cube summary file cannot be read; writing it again");
            false
        }
    }
}

/// The name of a summary built from `sources`: `<prefix>-<hash of their day and file
/// names>.parquet`, so a new or renamed source makes another name.
pub(crate) fn summary_name(prefix: &str, sources: &[PathBuf]) -> String {
    let mut names = String::new();
    for s in sources {
        let day = s.parent().and_then(Path::file_name).unwrap_or_default();
        let file = s.file_name().unwrap_or_default();
        names.push_str(&format!(
            "{}/{}\n",
            day.to_string_lossy(),
            file.to_string_lossy()
        ));
    }
    format!(
        "{prefix}-{:016x}.parquet",
        xxhash_rust::xxh3::xxh3_64(names.as_bytes())
    )
}

/// Whether `files` hold one named `name` (which, when `verify`, decodes): a summary current for
/// the sources its name was derived from.
pub(crate) fn holds_current(files: &[PathBuf], name: &str, verify: bool) -> bool {
    files
        .iter()
        .any(|p| p.ends_with(name) && (!verify || decodes(p)))
}

/// Makes `date`'s groups files current when its cube is one file: reuses files of the same
/// name (when `verify`, only if they decode), or writes them. Returns whether the day's groups are
/// current now.
pub fn ensure_groups(
    lake: &Lake,
    live: &LiveBuffer,
    coverage: &Coverage,
    date: NaiveDate,
    verify: bool,
) -> Result<bool, IngestError> {
    let Some(SummaryTarget { only, name, dirs }) = summary_target(lake, live, date)? else {
        return Ok(false);
    };
    let existing = dirs
        .iter()
        .map(|d| existing_day_files(d))
        .collect::<Result<Vec<_>, _>>()?;
    let current = existing.iter().all(|e| holds_current(e, &name, verify));
    let mut staged = Vec::new();
    if !current {
        let s = groups_of(&only)?;
        for (dir, batch) in dirs.iter().zip([&s.groups, &s.presence]) {
            match lake::stage_parquet(dir, &name, batch, writer_properties(0)) {
                Ok(f) => staged.push(f),
                Err(e) => {
                    staged.into_iter().for_each(StagedFile::discard);
                    return Err(e);
                }
            }
        }
    }
    // Under the gate: the cube must still be that one file (a flush may have added one).
    live.swap_files(|| {
        if existing_day_files(&lake.cube_partition_dir(date))?.as_slice() != [only.clone()] {
            staged.into_iter().for_each(StagedFile::discard);
            return Ok(false);
        }
        lake::publish_all(staged)?;
        for old in existing.iter().flatten().filter(|p| !p.ends_with(&name)) {
            std::fs::remove_file(old).map_err(|e| IngestError::io(old, e))?;
        }
        coverage.summaries_written(date);
        Ok(true)
    })
}

/// What one maintenance pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Maintained {
    /// Days checked (all of them on the first pass, then those read raw).
    pub checked: usize,
    pub rebuilt: Vec<NaiveDate>,
    pub merged: usize,
    /// Days whose groups files were written or found current.
    pub summarized: usize,
    /// Closed weeks whose week presence file is current.
    pub weeks: usize,
}

/// One maintenance pass: check every day when the lake is unchecked, rebuild the days that failed
/// (or are still read raw after an earlier pass stopped), merge days with more than
/// `merge_above` cube files, summarize days with one cube file into groups and group presence, and
/// closed weeks into week presence. Days become readable from the cube as soon as they pass.
/// Stops at the first failure, which leaves that day read raw.
pub fn maintain(
    lake: &Lake,
    live: &LiveBuffer,
    coverage: &Coverage,
    merge_above: usize,
) -> Result<Maintained, IngestError> {
    let mut done = Maintained::default();
    let all = days(lake)?;
    let raw_days = match coverage.raw_days() {
        Some(raw) => raw,
        None => {
            let mut raw = BTreeSet::new();
            for day in &all {
                if !check_day(lake, live, *day)? {
                    raw.insert(*day);
                }
            }
            done.checked = all.len();
            coverage.checked(raw.clone());
            raw
        }
    };
    for day in raw_days {
        tracing::warn!(%day, "the day's app-day cube does not match its events; rebuilding it from raw events");
        rebuild_day(lake, live, day)?;
        coverage.rebuilt(day);
        done.rebuilt.push(day);
    }
    let today = chrono::Utc::now().date_naive();
    // After a full check (start-up, or a read that found a damaged file), summaries found by
    // name are read through before they are trusted again.
    let verify = done.checked > 0;
    if verify {
        remove_retired_summaries(lake)?;
    }
    let summarized = coverage.summarized_days();
    for &day in &all {
        // A closed day becomes one file; the open day is merged once it has many.
        let above = if day < today { 1 } else { merge_above };
        if merge_day(lake, live, day, above)? {
            done.merged += 1;
        }
        if !summarized.contains(&day) && ensure_groups(lake, live, coverage, day, verify)? {
            done.summarized += 1;
        }
    }
    done.weeks =
        crate::week_presence::ensure_weeks(lake, live, coverage, &all, today, verify, true)?;
    Ok(done)
}

/// The cube pass of a node that does not hold the lease of a lake in a bucket. It writes no
/// cube file but its flushes', so it learns from the files the holder wrote which days the cube
/// answers for, and which days' groups, hourly and week presence files are current; it writes
/// nothing. `changed`: the days whose files a refresh changed; `None` checks every day, once
/// (later passes leave the coverage to the refreshes).
pub fn observe(
    lake: &Lake,
    live: &LiveBuffer,
    coverage: &Coverage,
    changed: Option<&BTreeSet<NaiveDate>>,
) -> Result<Maintained, IngestError> {
    let mut done = Maintained::default();
    let all = days(lake)?;
    let looked_at: Vec<NaiveDate> = match (changed, coverage.raw_days()) {
        (None, Some(_)) => return Ok(done),
        (Some(changed), Some(_)) => {
            for day in changed {
                coverage.set_raw(*day, !check_day(lake, live, *day)?);
            }
            changed.iter().copied().collect()
        }
        (_, None) => {
            let mut raw = BTreeSet::new();
            for day in &all {
                if !check_day(lake, live, *day)? {
                    raw.insert(*day);
                }
            }
            coverage.checked(raw);
            all.clone()
        }
    };
    done.checked = looked_at.len();
    for day in looked_at {
        if groups_current(lake, live, day)? {
            coverage.summaries_written(day);
            done.summarized += 1;
        }
    }
    let today = chrono::Utc::now().date_naive();
    // Marks the days whose hourly file is current; the jobs are the holder's.
    crate::hourly::pending(lake, live, coverage, today)?;
    done.weeks =
        crate::week_presence::ensure_weeks(lake, live, coverage, &all, today, true, false)?;
    Ok(done)
}

/// Whether `date`'s cube is one file that its groups and group presence files summarize
/// (each decoding).
fn groups_current(lake: &Lake, live: &LiveBuffer, date: NaiveDate) -> Result<bool, IngestError> {
    let Some(target) = summary_target(lake, live, date)? else {
        return Ok(false);
    };
    for dir in &target.dirs {
        if !holds_current(&existing_day_files(dir)?, &target.name, true) {
            return Ok(false);
        }
    }
    Ok(true)
}

/// A day whose cube is one file: that file, the name its summaries carry, and the groups and
/// group presence directories.
struct SummaryTarget {
    only: PathBuf,
    name: String,
    dirs: [PathBuf; 2],
}

/// The day's [`SummaryTarget`], or `None` while its cube is not one file.
fn summary_target(
    lake: &Lake,
    live: &LiveBuffer,
    date: NaiveDate,
) -> Result<Option<SummaryTarget>, IngestError> {
    let (_, cube) = list_day(lake, live, date)?;
    let [only] = cube.as_slice() else {
        return Ok(None);
    };
    let name = only
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    Ok(Some(SummaryTarget {
        only: only.clone(),
        name,
        dirs: [
            lake.groups_partition_dir(date),
            lake.group_presence_partition_dir(date),
        ],
    }))
}

/// Removes the summary directories of older layouts ([`RETIRED_DIRS`]): no read uses them, and
/// at scale they hold gigabytes.
fn remove_retired_summaries(lake: &Lake) -> Result<(), IngestError> {
    for dir in RETIRED_DIRS.map(|d| lake.root().join(d)) {
        if dir.is_dir() {
            tracing::info!(dir = %dir.display(), "removing summaries of an older layout");
            std::fs::remove_dir_all(&dir).map_err(|e| IngestError::io(&dir, e))?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::fixtures::{MONDAY_US, event};
    use crate::lake::{IdRun, write_batches};
    use modelshare_event::schema::events_to_batch;
    use modelshare_event::{Event, Status, Task};

    fn monday() -> NaiveDate {
        modelshare_event::Timestamp(MONDAY_US).date()
    }

    fn cube_rows(lake: &Lake, date: NaiveDate) -> Vec<(String, String, i64, i64, i128)> {
        let mut out = Vec::new();
        for path in day_files(&lake.cube_partition_dir(date)).unwrap() {
            for b in ParquetRecordBatchReaderBuilder::try_new(File::open(path).unwrap())
                .unwrap()
                .build()
                .unwrap()
            {
                let b = b.unwrap();
                let app: &StringArray = column(&b, "app_id").unwrap();
                let model: &StringArray = column(&b, "model").unwrap();
                let req: &Int64Array = column(&b, "requests").unwrap();
                let input: &Int64Array = column(&b, "input_tokens").unwrap();
                let cost: &Decimal128Array = column(&b, "cost_usd").unwrap();
                for i in 0..b.num_rows() {
                    out.push((
                        app.value(i).to_owned(),
                        model.value(i).to_owned(),
                        req.value(i),
                        input.value(i),
                        cost.value(i),
                    ));
                }
            }
        }
        out.sort();
        out
    }

    fn failed(mut e: Event) -> Event {
        e.status = Status::Error;
        e
    }

    #[test]
    fn a_flush_writes_the_cube_of_its_ok_events_beside_them() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let events = vec![
            event("1", MONDAY_US, "a", Task::Programming, "x/m", 10),
            event("2", MONDAY_US + 1, "a", Task::Programming, "x/m", 20),
            event("3", MONDAY_US + 2, "b", Task::Programming, "x/m", 5),
            failed(event("4", MONDAY_US + 3, "a", Task::Programming, "x/m", 7)),
        ];
        let files =
            write_batches(&lake, &[events_to_batch(&events)], "t", IdRun::RowsAnd(&[])).unwrap();
        assert_eq!(files.len(), 1, "the published events files");
        let cube = day_files(&lake.cube_partition_dir(monday())).unwrap();
        assert_eq!(cube.len(), 1);
        assert_eq!(cube[0].file_name(), files[0].file_name(), "same name");
        assert_eq!(
            events_summarized(
                ParquetRecordBatchReaderBuilder::try_new(File::open(&cube[0]).unwrap())
                    .unwrap()
                    .metadata()
            )
            .unwrap(),
            4,
            "every status counts"
        );
        assert_eq!(
            cube_rows(&lake, monday()),
            vec![
                ("a".into(), "x/m".into(), 2, 30, 6),
                ("b".into(), "x/m".into(), 1, 5, 3),
            ]
        );
        let live = LiveBuffer::new();
        assert!(check_day(&lake, &live, monday()).unwrap());
    }

    #[test]
    fn a_day_whose_cube_is_missing_or_damaged_is_rebuilt_exactly() {
        let dir = tempfile::tempdir().unwrap();
        let lake = Lake::open(dir.path()).unwrap();
        let live = LiveBuffer::new();
        for (i, app) in ["a", "b", "a"].iter().enumerate() {
            let e = event(
                &i.to_string(),
                MONDAY_US + i as i64,
                app,
                Task::Legal,
                "x/m",
                1,
            );
            write_batches(
                &lake,
                &[events_to_batch(&[e])],
                &format!("t{i}"),
                IdRun::RowsAnd(&[]),
            )
            .unwrap();
        }
        let expected = vec![
            ("a".to_owned(), "x/m".to_owned(), 2, 2, 6),
            ("b".to_owned(), "x/m".to_owned(), 1, 1, 3),
        ];
        let coverage = Coverage::unchecked();
        let pass = maintain(&lake, &live, &coverage, 1).unwrap();
        assert_eq!((pass.checked, pass.rebuilt.len(), pass.merged), (1, 0, 1));
        assert_eq!(coverage.raw_days(), Some(BTreeSet::new()));
        assert_eq!(cube_rows(&lake, monday()), expected, "merged, same sums");
        assert_eq!(
            day_files(&lake.cube_partition_dir(monday())).unwrap().len(),
            1
        );

        // Damage the only cube file: the check fails, the day is read raw, then rebuilt.
        let cube = day_files(&lake.cube_partition_dir(monday())).unwrap();
        std::fs::write(&cube[0], b"PAR1 not a parquet file").unwrap();
        assert!(!check_day(&lake, &live, monday()).unwrap());
        let coverage = Coverage::unchecked();
        let pass = maintain(&lake, &live, &coverage, 1).unwrap();
        assert_eq!(pass.rebuilt, vec![monday()]);
        assert_eq!(cube_rows(&lake, monday()), expected);
        assert!(check_day(&lake, &live, monday()).unwrap());

        // Lose it: same.
        for f in day_files(&lake.cube_partition_dir(monday())).unwrap() {
            std::fs::remove_file(f).unwrap();
        }
        let coverage = Coverage::unchecked();
        assert_eq!(
            maintain(&lake, &live, &coverage, 1).unwrap().rebuilt,
            vec![monday()]
        );
        assert_eq!(cube_rows(&lake, monday()), expected);
        assert_eq!(coverage.raw_days(), Some(BTreeSet::new()));
    }
}
