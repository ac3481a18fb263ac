//! Building the public snapshot of a week: aggregate the week's `ok` events per group of the
//! publication rule (day, task, model, provider, context segment, first choice or fallback,
//! position in an agent trace; `modelshare_query::privacy`), and its other events per base cell
//! and status (day, task, model, provider, status: the units the API's provider figures count
//! unserved attempts in); add each publishable group to its (task, model, provider, segment) row
//! and each publishable failure unit to its (task, model, provider) row of no segment; and write the rows as a Parquet file whose bytes depend only on the rows (fixed row
//! order, fixed writer settings, no build time inside).
//!
//! Every `ok` figure of a row is so a sum over whole groups of at least `min_apps` apps — the
//! same groups every figure of the API sums — and its fallbacks are the requests of those of
//! its groups that were served after another attempt failed. A (task, model, provider)'s rows
//! add up to its leaderboard figures. Failures are never split by segment (the API counts them
//! per status, and the two splits would cross): they are in the row without a segment, which
//! holds nothing else; its `failures` are what the API's attempts minus served requests count.

use crate::source::{SourceFile, column, read_sources};
use crate::{IsoWeek, SnapshotError};
use arrow::array::{
    Array, ArrayRef, Decimal128Array, Decimal128Builder, Int64Array, Int64Builder, RecordBatch,
    StringArray, StringBuilder, UInt8Array, UInt32Array,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use modelshare_event::event::author_of;
use modelshare_event::{Context, MicroUsd};
use modelshare_query::publishable;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::{EnabledStatistics, WriterProperties, WriterVersion};
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashSet};
use std::path::Path;
use std::sync::Arc;

/// Version of the snapshot file layout (columns and their meaning) this build writes.
pub const SNAPSHOT_SCHEMA_VERSION: &str = "3";
/// The layout of files written before the `context` column: one row per (task, model,
/// provider). Such files are still read, listed and verified.
pub const SCHEMA_VERSION_WITHOUT_CONTEXT: &str = "1";
/// The layout of files written under the per-cell rule: the same columns, the whole of a cell
/// that was not split by segment in the row without a segment. Such files are still read,
/// listed and verified; their weeks are built again under the current rule.
pub const SCHEMA_VERSION_PER_CELL: &str = "2";
/// What wrote the file: this crate and its version.
pub const GENERATOR: &str = concat!("modelshare-snapshot ", env!("CARGO_PKG_VERSION"));

/// Key-value metadata keys of a snapshot file.
pub mod keys {
    pub const SCHEMA_VERSION: &str = "modelshare.snapshot.schema_version";
    pub const WEEK: &str = "modelshare.snapshot.week";
    pub const WEEK_START: &str = "modelshare.snapshot.week_start";
    pub const WEEK_END: &str = "modelshare.snapshot.week_end";
    pub const REVISION: &str = "modelshare.snapshot.revision";
    pub const ROWS: &str = "modelshare.snapshot.rows";
    pub const MIN_APPS: &str = "modelshare.snapshot.min_apps";
    pub const GENERATOR: &str = "modelshare.snapshot.generator";
    pub const CONTENT_SHA256: &str = "modelshare.snapshot.content_sha256";
}

/// One row of a public snapshot. Counts cover the week's events of the group; see
/// docs/SNAPSHOTS.md for exactly which events each column counts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRow {
    pub task: String,
    pub model: String,
    pub author: String,
    pub provider: String,
    /// The segment whose publishable groups the row holds; `None` for the row of failures (and
    /// for every row of a file without the `context` column).
    pub context: Option<Context>,
    pub requests: u64,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    pub cached_tokens: u64,
    pub cost: MicroUsd,
    pub apps: u64,
    pub failures: u64,
    pub fallbacks: u64,
    pub latency_p50_ms: Option<u64>,
    pub latency_p95_ms: Option<u64>,
}

/// The rows of one week, in file order, and the hash of their canonical text.
#[derive(Debug, Clone)]
pub struct WeekRows {
    pub week: IsoWeek,
    pub rows: Vec<SnapshotRow>,
    pub content_sha256: String,
}

/// The `ok` events of one group, or of one row's publishable groups.
#[derive(Debug, Default)]
struct Acc {
    requests: u64,
    input_tokens: u64,
    output_tokens: u64,
    reasoning_tokens: u64,
    cached_tokens: u64,
    cost: i64,
    apps: HashSet<String>,
    latencies: Vec<u32>,
    fallbacks: u64,
}

impl Acc {
    /// Adds the events of `other`, another group of the same row.
    fn absorb(&mut self, other: Acc) {
        self.requests += other.requests;
        self.input_tokens += other.input_tokens;
        self.output_tokens += other.output_tokens;
        self.reasoning_tokens += other.reasoning_tokens;
        self.cached_tokens += other.cached_tokens;
        self.cost += other.cost;
        self.apps.extend(other.apps);
        self.latencies.extend(other.latencies);
        self.fallbacks += other.fallbacks;
    }
}

/// The failed events of one base cell of one status.
#[derive(Debug, Default)]
struct Failed {
    requests: u64,
    apps: HashSet<String>,
}

/// One row being built from the publishable groups and failure units it covers.
#[derive(Debug, Default)]
struct RowAcc {
    ok: Acc,
    failures: u64,
}

impl RowAcc {
    fn into_row(mut self, key: RowKey) -> SnapshotRow {
        let (task, model, provider, context) = key;
        let ok = &mut self.ok;
        ok.latencies.sort_unstable();
        SnapshotRow {
            author: author_of(&model).to_owned(),
            task,
            model,
            provider,
            context,
            requests: ok.requests,
            input_tokens: ok.input_tokens,
            output_tokens: ok.output_tokens,
            reasoning_tokens: ok.reasoning_tokens,
            cached_tokens: ok.cached_tokens,
            cost: MicroUsd(ok.cost),
            apps: ok.apps.len() as u64,
            failures: self.failures,
            fallbacks: ok.fallbacks,
            latency_p50_ms: percentile(&ok.latencies, 50),
            latency_p95_ms: percentile(&ok.latencies, 95),
        }
    }
}

/// The nearest-rank percentile of sorted values: the smallest value with at least `p`% of the
/// values at or below it. `None` for no values.
pub fn percentile(sorted: &[u32], p: u64) -> Option<u64> {
    if sorted.is_empty() {
        return None;
    }
    let n = sorted.len() as u64;
    let rank = (p * n).div_ceil(100).max(1);
    sorted.get((rank - 1) as usize).map(|v| u64::from(*v))
}

const SOURCE_COLUMNS: &[&str] = &[
    "app_id",
    "task",
    "model",
    "provider",
    "input_tokens",
    "output_tokens",
    "reasoning_tokens",
    "cached_tokens",
    "cost_usd",
    "latency_ms",
    "status",
    "attempt",
    "step",
];

/// A base cell: (day, task, model, provider); the day is the file's `date=` partition, as for
/// the query engine.
type CellKey = (String, String, String, String);

/// A group of the publication rule: its base cell, context segment, 1 for a fallback (0 for a
/// first choice) and position in an agent trace (0 none, 1 first call, 2 later call).
type GroupKey = (CellKey, Context, u8, u8);

/// A row of the file: (task, model, provider, context segment or none). Its order is the file's
/// row order: `None` before the segments, segments in code order.
type RowKey = (String, String, String, Option<Context>);

/// Aggregates the week's events from `sources` per group and failure unit, and adds the
/// publishable ones to their rows (see the module docs).
pub fn aggregate(
    lake_root: &Path,
    week: IsoWeek,
    sources: &[SourceFile],
    min_apps: u64,
) -> Result<WeekRows, SnapshotError> {
    let mut ok: BTreeMap<GroupKey, Acc> = BTreeMap::new();
    let mut failed: BTreeMap<(CellKey, String), Failed> = BTreeMap::new();
    for src in sources {
        let day = src
            .file
            .split('/')
            .next()
            .and_then(|part| part.strip_prefix("date="))
            .ok_or_else(|| {
                SnapshotError::Schema(format!("{} is not in a date= partition", src.file))
            })?
            .to_owned();
        for batch in read_sources(lake_root, std::slice::from_ref(src), Some(SOURCE_COLUMNS))? {
            let app = column::<StringArray>(&batch, "app_id")?;
            let task = column::<StringArray>(&batch, "task")?;
            let model = column::<StringArray>(&batch, "model")?;
            let provider = column::<StringArray>(&batch, "provider")?;
            let input = column::<UInt32Array>(&batch, "input_tokens")?;
            let output = column::<UInt32Array>(&batch, "output_tokens")?;
            let reasoning = column::<UInt32Array>(&batch, "reasoning_tokens")?;
            let cached = column::<UInt32Array>(&batch, "cached_tokens")?;
            let cost = column::<Decimal128Array>(&batch, "cost_usd")?;
            let latency = column::<UInt32Array>(&batch, "latency_ms")?;
            let status = column::<StringArray>(&batch, "status")?;
            let attempt = column::<UInt8Array>(&batch, "attempt")?;
            // Files from before agent steps have no `step` column: no call has a position.
            let step = match batch.column_by_name("step") {
                Some(_) => Some(column::<UInt32Array>(&batch, "step")?),
                None => None,
            };
            for i in 0..batch.num_rows() {
                let key = (
                    day.clone(),
                    task.value(i).to_owned(),
                    model.value(i).to_owned(),
                    provider.value(i).to_owned(),
                );
                let app_id = app.value(i);
                if status.value(i) != "ok" {
                    let f = failed.entry((key, status.value(i).to_owned())).or_default();
                    f.requests += 1;
                    if !f.apps.contains(app_id) {
                        f.apps.insert(app_id.to_owned());
                    }
                    continue;
                }
                let position = match step.filter(|s| s.is_valid(i)).map(|s| s.value(i)) {
                    None => 0,
                    Some(0) => 1,
                    Some(_) => 2,
                };
                let group = (
                    key,
                    Context::of(u64::from(input.value(i))),
                    u8::from(attempt.value(i) > 0),
                    position,
                );
                let acc = ok.entry(group).or_default();
                acc.requests += 1;
                acc.input_tokens += u64::from(input.value(i));
                acc.output_tokens += u64::from(output.value(i));
                acc.reasoning_tokens += u64::from(reasoning.value(i));
                acc.cached_tokens += u64::from(cached.value(i));
                let micro = i64::try_from(cost.value(i)).map_err(|_| {
                    SnapshotError::Schema(format!("cost_usd {} out of range", cost.value(i)))
                })?;
                acc.cost = acc.cost.checked_add(micro).ok_or_else(|| {
                    SnapshotError::Schema("the week's spend overflows 64-bit micro-USD".into())
                })?;
                if attempt.value(i) > 0 {
                    acc.fallbacks += 1;
                }
                if !acc.apps.contains(app_id) {
                    acc.apps.insert(app_id.to_owned());
                }
                // 0 means "not reported" (the field is optional on input): it must not drag the
                // percentiles down.
                if latency.value(i) > 0 {
                    acc.latencies.push(latency.value(i));
                }
            }
        }
    }
    Ok(fold(week, ok, failed, min_apps))
}

/// Applies the publication rule of `modelshare_query::privacy`: a row (task, model, provider,
/// segment) is the sum of the segment's publishable groups of that task, model and provider, the
/// row (task, model, provider, none) the sum of its publishable failure units (a base cell's
/// failed requests of one status). Groups are publishable on the apps of their `ok` requests,
/// failure units on the apps of their failed requests of that status. A row with neither is not written. Every figure of the file is so a sum of groups
/// of at least `min_apps` apps, and the sums over a (task, model, provider)'s rows are its
/// leaderboard figures. Rows are ordered by task, model, provider, then the row of no segment
/// and the segments in code order.
fn fold(
    week: IsoWeek,
    ok: BTreeMap<GroupKey, Acc>,
    failed: BTreeMap<(CellKey, String), Failed>,
    min_apps: u64,
) -> WeekRows {
    let mut rows: BTreeMap<RowKey, RowAcc> = BTreeMap::new();
    for (((_, task, model, provider), segment, _, _), group) in ok {
        if publishable(group.apps.len() as u64, min_apps) {
            rows.entry((task, model, provider, Some(segment)))
                .or_default()
                .ok
                .absorb(group);
        }
    }
    for (((_, task, model, provider), _), cell) in failed {
        if publishable(cell.apps.len() as u64, min_apps) {
            rows.entry((task, model, provider, None))
                .or_default()
                .failures += cell.requests;
        }
    }
    // Rows exist only for publishable groups, so every row has something to show.
    let rows: Vec<SnapshotRow> = rows.into_iter().map(|(k, r)| r.into_row(k)).collect();
    let content_sha256 = content_hash(week, &rows);
    WeekRows {
        week,
        rows,
        content_sha256,
    }
}

/// Hex sha256 of the canonical text of `rows` under the current schema version (documented in
/// docs/SNAPSHOTS.md): a header line with the schema version and week, then one line per row,
/// columns tab-separated in file order, integers in decimal, `cost_usd` with six decimals,
/// empty for null.
pub fn content_hash(week: IsoWeek, rows: &[SnapshotRow]) -> String {
    canonical_hash(SNAPSHOT_SCHEMA_VERSION, week, rows)
}

/// The content hash of `rows` read from a file of schema `version`, as that file's writer
/// computed it: files without the `context` column hash their 15 columns after `week`. An error
/// names a version this build does not read.
pub fn content_hash_as(
    version: &str,
    week: IsoWeek,
    rows: &[SnapshotRow],
) -> Result<String, SnapshotError> {
    match version {
        SNAPSHOT_SCHEMA_VERSION | SCHEMA_VERSION_PER_CELL => {
            Ok(canonical_hash(version, week, rows))
        }
        SCHEMA_VERSION_WITHOUT_CONTEXT => {
            Ok(canonical_hash(SCHEMA_VERSION_WITHOUT_CONTEXT, week, rows))
        }
        other => Err(SnapshotError::Schema(format!(
            "snapshot schema version {other:?} is not one this build reads \
             ({SCHEMA_VERSION_WITHOUT_CONTEXT}, {SCHEMA_VERSION_PER_CELL} or \
             {SNAPSHOT_SCHEMA_VERSION})"
        ))),
    }
}

/// The hash of the canonical text of `rows` in the layout of schema `version`.
fn canonical_hash(version: &str, week: IsoWeek, rows: &[SnapshotRow]) -> String {
    let with_context = version != SCHEMA_VERSION_WITHOUT_CONTEXT;
    let mut h = Sha256::new();
    h.update(format!("modelshare-snapshot {version} {week}\n"));
    let opt = |v: Option<u64>| v.map(|v| v.to_string()).unwrap_or_default();
    for r in rows {
        let context = match (with_context, r.context) {
            (false, _) => String::new(),
            (true, Some(c)) => format!("{c}\t"),
            (true, None) => "\t".to_owned(),
        };
        h.update(format!(
            "{}\t{}\t{}\t{}\t{context}{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\t{}\n",
            r.task,
            r.model,
            r.author,
            r.provider,
            r.requests,
            r.input_tokens,
            r.output_tokens,
            r.reasoning_tokens,
            r.cached_tokens,
            r.cost,
            r.apps,
            r.failures,
            r.fallbacks,
            opt(r.latency_p50_ms),
            opt(r.latency_p95_ms),
        ));
    }
    hex::encode(h.finalize())
}

/// The Arrow schema of a snapshot file. Counts are signed 64-bit so Spark reads them natively.
pub fn snapshot_schema() -> SchemaRef {
    let s = |n: &str| Field::new(n, DataType::Utf8, false);
    let i = |n: &str| Field::new(n, DataType::Int64, false);
    Arc::new(Schema::new(vec![
        s("week"),
        s("task"),
        s("model"),
        s("author"),
        s("provider"),
        Field::new("context", DataType::Utf8, true),
        i("requests"),
        i("input_tokens"),
        i("output_tokens"),
        i("reasoning_tokens"),
        i("cached_tokens"),
        Field::new(
            "cost_usd",
            DataType::Decimal128(
                modelshare_event::schema::COST_PRECISION,
                modelshare_event::schema::COST_SCALE,
            ),
            false,
        ),
        i("apps"),
        i("failures"),
        i("fallbacks"),
        Field::new("latency_p50_ms", DataType::Int64, true),
        Field::new("latency_p95_ms", DataType::Int64, true),
    ]))
}

fn to_i64(v: u64) -> Result<i64, SnapshotError> {
    i64::try_from(v).map_err(|_| SnapshotError::Schema(format!("{v} does not fit a 64-bit column")))
}

fn rows_to_batch(week: IsoWeek, rows: &[SnapshotRow]) -> Result<RecordBatch, SnapshotError> {
    let n = rows.len();
    let strings = |f: &dyn Fn(&SnapshotRow) -> &str| -> ArrayRef {
        let mut b = StringBuilder::with_capacity(n, n * 16);
        rows.iter().for_each(|r| b.append_value(f(r)));
        Arc::new(b.finish())
    };
    let ints = |f: &dyn Fn(&SnapshotRow) -> Option<u64>| -> Result<ArrayRef, SnapshotError> {
        let mut b = Int64Builder::with_capacity(n);
        for r in rows {
            b.append_option(f(r).map(to_i64).transpose()?);
        }
        Ok(Arc::new(b.finish()))
    };
    let mut cost = Decimal128Builder::with_capacity(n).with_data_type(DataType::Decimal128(
        modelshare_event::schema::COST_PRECISION,
        modelshare_event::schema::COST_SCALE,
    ));
    rows.iter()
        .for_each(|r| cost.append_value(i128::from(r.cost.0)));
    let columns: Vec<ArrayRef> = vec![
        {
            let week_s = week.to_string();
            let mut b = StringBuilder::with_capacity(n, n * week_s.len());
            rows.iter().for_each(|_| b.append_value(&week_s));
            Arc::new(b.finish()) as ArrayRef
        },
        strings(&|r| &r.task),
        strings(&|r| &r.model),
        strings(&|r| &r.author),
        strings(&|r| &r.provider),
        {
            let mut b = StringBuilder::with_capacity(n, n * 8);
            rows.iter()
                .for_each(|r| b.append_option(r.context.map(Context::as_str)));
            Arc::new(b.finish()) as ArrayRef
        },
        ints(&|r| Some(r.requests))?,
        ints(&|r| Some(r.input_tokens))?,
        ints(&|r| Some(r.output_tokens))?,
        ints(&|r| Some(r.reasoning_tokens))?,
        ints(&|r| Some(r.cached_tokens))?,
        Arc::new(cost.finish()),
        ints(&|r| Some(r.apps))?,
        ints(&|r| Some(r.failures))?,
        ints(&|r| Some(r.fallbacks))?,
        ints(&|r| r.latency_p50_ms)?,
        ints(&|r| r.latency_p95_ms)?,
    ];
    Ok(RecordBatch::try_new(snapshot_schema(), columns)?)
}

/// Fixed writer settings: every byte of the file follows from the rows and the metadata.
fn writer_properties(kv: Vec<KeyValue>) -> WriterProperties {
    WriterProperties::builder()
        .set_writer_version(WriterVersion::PARQUET_1_0)
        .set_created_by(GENERATOR.to_owned())
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Chunk)
        .set_max_row_group_row_count(Some(1 << 20))
        .set_key_value_metadata(Some(kv))
        .build()
}

/// The bytes of the snapshot file of `rows` as revision `revision`.
pub fn write_file(rows: &WeekRows, revision: u32, min_apps: u64) -> Result<Vec<u8>, SnapshotError> {
    let week = rows.week;
    let kv = [
        (keys::SCHEMA_VERSION, SNAPSHOT_SCHEMA_VERSION.to_owned()),
        (keys::WEEK, week.to_string()),
        (keys::WEEK_START, week.start().to_string()),
        (keys::WEEK_END, week.end().to_string()),
        (keys::REVISION, revision.to_string()),
        (keys::ROWS, rows.rows.len().to_string()),
        (keys::MIN_APPS, min_apps.to_string()),
        (keys::GENERATOR, GENERATOR.to_owned()),
        (keys::CONTENT_SHA256, rows.content_sha256.clone()),
    ]
    .into_iter()
    .map(|(k, v)| KeyValue::new(k.to_owned(), v))
    .collect();
    let batch = rows_to_batch(week, &rows.rows)?;
    let mut writer =
        ArrowWriter::try_new(Vec::new(), snapshot_schema(), Some(writer_properties(kv)))?;
    writer.write(&batch)?;
    Ok(writer.into_inner()?)
}

/// Reads a snapshot file back: its rows and its key-value metadata. Files of schema version
/// [`SCHEMA_VERSION_WITHOUT_CONTEXT`] have no `context` column: their rows have none.
pub fn read_file(
    path: &Path,
) -> Result<(Vec<SnapshotRow>, BTreeMap<String, String>), SnapshotError> {
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let file = std::fs::File::open(path).map_err(|e| SnapshotError::io(path, e))?;
    let corrupt = |e: &dyn std::fmt::Display| SnapshotError::Corrupt {
        path: path.to_owned(),
        message: e.to_string(),
    };
    let builder = ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| corrupt(&e))?;
    let kv: BTreeMap<String, String> = builder
        .metadata()
        .file_metadata()
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|k| k.value.clone().map(|v| (k.key.clone(), v)))
                .collect()
        })
        .unwrap_or_default();
    let with_context =
        kv.get(keys::SCHEMA_VERSION).map(String::as_str) != Some(SCHEMA_VERSION_WITHOUT_CONTEXT);
    let mut rows = Vec::new();
    for batch in builder.build().map_err(|e| corrupt(&e))? {
        let b = batch.map_err(|e| corrupt(&e))?;
        let s = |n: &str| column::<StringArray>(&b, n);
        let i = |n: &str| column::<Int64Array>(&b, n);
        let (task, model, author, provider) =
            (s("task")?, s("model")?, s("author")?, s("provider")?);
        let context = if with_context {
            Some(s("context")?)
        } else {
            None
        };
        let cols = [
            "requests",
            "input_tokens",
            "output_tokens",
            "reasoning_tokens",
            "cached_tokens",
            "apps",
            "failures",
            "fallbacks",
            "latency_p50_ms",
            "latency_p95_ms",
        ]
        .map(i);
        let [req, inp, out, rea, cac, apps, fail, fb, p50, p95] = cols;
        let (req, inp, out, rea, cac, apps, fail, fb, p50, p95) =
            (req?, inp?, out?, rea?, cac?, apps?, fail?, fb?, p50?, p95?);
        let cost = column::<Decimal128Array>(&b, "cost_usd")?;
        let u = |a: &Int64Array, r: usize| a.value(r).max(0) as u64;
        let o = |a: &Int64Array, r: usize| (!a.is_null(r)).then(|| a.value(r).max(0) as u64);
        for r in 0..b.num_rows() {
            let context = match context {
                Some(c) if !c.is_null(r) => {
                    Some(c.value(r).parse::<Context>().map_err(|e| corrupt(&e))?)
                }
                _ => None,
            };
            rows.push(SnapshotRow {
                task: task.value(r).to_owned(),
                model: model.value(r).to_owned(),
                author: author.value(r).to_owned(),
                provider: provider.value(r).to_owned(),
                context,
                requests: u(req, r),
                input_tokens: u(inp, r),
                output_tokens: u(out, r),
                reasoning_tokens: u(rea, r),
                cached_tokens: u(cac, r),
                cost: MicroUsd(i64::try_from(cost.value(r)).unwrap_or(i64::MAX)),
                apps: u(apps, r),
                failures: u(fail, r),
                fallbacks: u(fb, r),
                latency_p50_ms: o(p50, r),
                latency_p95_ms: o(p95, r),
            });
        }
    }
    Ok((rows, kv))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        assert_eq!(percentile(&[], 50), None);
        assert_eq!(percentile(&[7], 50), Some(7));
        assert_eq!(percentile(&[7], 95), Some(7));
        assert_eq!(percentile(&[1, 2, 3, 4], 50), Some(2));
        assert_eq!(percentile(&[1, 2, 3, 4], 95), Some(4));
        let v: Vec<u32> = (1..=100).collect();
        assert_eq!(percentile(&v, 50), Some(50));
        assert_eq!(percentile(&v, 95), Some(95));
        let v: Vec<u32> = (1..=21).collect();
        assert_eq!(percentile(&v, 95), Some(20)); // ceil(19.95) = 20
    }

    /// An `ok` group: one request of 100 input tokens and latency 10 ms per app in `apps`, each
    /// a fallback when `fallback`.
    fn ok_group(apps: &[&str], fallback: bool) -> Acc {
        let mut acc = Acc::default();
        for app in apps {
            acc.requests += 1;
            acc.input_tokens += 100;
            acc.cost += 1;
            acc.apps.insert((*app).to_owned());
            acc.latencies.push(10);
            acc.fallbacks += u64::from(fallback);
        }
        acc
    }

    fn failed_cell(apps: &[&str]) -> Failed {
        Failed {
            requests: apps.len() as u64,
            apps: apps.iter().map(|a| (*a).to_owned()).collect(),
        }
    }

    fn cell(day: &str) -> CellKey {
        (day.into(), "programming".into(), "a/x".into(), "p1".into())
    }

    fn week() -> IsoWeek {
        "2026-W45".parse().unwrap()
    }

    /// At `min_apps` 2. On 11-02 the short first choices (A1, A2) are published, the short
    /// fallback (A1 alone) is not, the medium first choices (A3, A4) and fallbacks (A3, A4) are.
    /// On 11-03 the short first choices (A1, A2) and fallbacks (A2, A3) are; the long later
    /// call (A1 alone) is not. Failure cells are whole, never split, in the row of no segment.
    #[test]
    fn rows_sum_the_publishable_groups_of_their_segment() {
        use Context::{Long, Medium, Short};
        let mut ok = BTreeMap::new();
        let mut put = |day: &str, c: Context, fallback: bool, position: u8, apps: &[&str]| {
            ok.insert(
                (cell(day), c, u8::from(fallback), position),
                ok_group(apps, fallback),
            );
        };
        put("2026-11-02", Short, false, 0, &["A1", "A2"]);
        put("2026-11-02", Short, true, 0, &["A1"]);
        put("2026-11-02", Medium, false, 0, &["A3", "A4"]);
        put("2026-11-02", Medium, true, 0, &["A3", "A4"]);
        put("2026-11-03", Short, false, 0, &["A1", "A2"]);
        put("2026-11-03", Short, true, 0, &["A2", "A3"]);
        put("2026-11-03", Long, false, 2, &["A1"]);
        let mut failed = BTreeMap::new();
        let error = || "error".to_owned();
        failed.insert(
            (cell("2026-11-02"), error()),
            failed_cell(&["A5", "A6", "A6"]),
        );
        failed.insert((cell("2026-11-03"), error()), failed_cell(&["A7"]));
        // One app's rate-limited attempts are a unit of their own: withheld, or they would be
        // the difference between this row and the API's attempts minus served requests.
        failed.insert(
            (cell("2026-11-02"), "rate_limited".to_owned()),
            failed_cell(&["A8"]),
        );
        let rows = fold(week(), ok, failed, 2).rows;
        let got: Vec<_> = rows
            .iter()
            .map(|r| {
                (
                    r.context,
                    [r.requests, r.input_tokens, r.apps, r.fallbacks, r.failures],
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (None, [0, 0, 0, 0, 3]),
                (Some(Short), [6, 600, 3, 2, 0]),
                (Some(Medium), [4, 400, 2, 2, 0]),
            ]
        );
    }

    #[test]
    fn the_canonical_text_has_the_context_only_from_version_2() {
        let row = SnapshotRow {
            task: "legal".into(),
            model: "c/z".into(),
            author: "c".into(),
            provider: "p1".into(),
            context: Some(Context::VeryLong),
            requests: 2,
            input_tokens: 300_000,
            output_tokens: 4,
            reasoning_tokens: 0,
            cached_tokens: 1,
            cost: MicroUsd(7),
            apps: 2,
            failures: 1,
            fallbacks: 0,
            latency_p50_ms: Some(30),
            latency_p95_ms: None,
        };
        let sha = |text: &str| hex::encode(Sha256::digest(text));
        let v3 = "modelshare-snapshot 3 2026-W45\n\
                  legal\tc/z\tc\tp1\tvery_long\t2\t300000\t4\t0\t1\t0.000007\t2\t1\t0\t30\t\n";
        assert_eq!(content_hash(week(), std::slice::from_ref(&row)), sha(v3));
        let unsplit = SnapshotRow {
            context: None,
            ..row.clone()
        };
        let v3_null = v3.replace("very_long", "");
        assert_eq!(content_hash(week(), &[unsplit]), sha(&v3_null));
        // Version 2 files hash the same text under their version.
        let v2 = v3.replace("snapshot 3", "snapshot 2");
        assert_eq!(
            content_hash_as("2", week(), std::slice::from_ref(&row)).unwrap(),
            sha(&v2)
        );
        // Version 1 files hash the same row without the column.
        let v1 = "modelshare-snapshot 1 2026-W45\n\
                  legal\tc/z\tc\tp1\t2\t300000\t4\t0\t1\t0.000007\t2\t1\t0\t30\t\n";
        assert_eq!(content_hash_as("1", week(), &[row]).unwrap(), sha(v1));
        assert!(content_hash_as("4", week(), &[]).is_err());
    }
}
