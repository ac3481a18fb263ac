//! The app-week rollup: per (ISO week, app, task, model) requests, tokens and spend of successful
//! requests, one Parquet file per closed week, so analyses never rescan raw events of a closed
//! week.
//!
//! ```text
//! <lake>/rollups/app_week/
//!   2026-11-16.json         manifest: the current file and the event files it was built from
//!   2026-11-16.g3.parquet   generation 3 of that week (the manifest names the current one)
//! ```
//!
//! A week is rebuilt when the event files of its seven days differ from the ones its manifest
//! lists (late events were flushed, or files were added by `modelshare ingest`). A rebuild writes
//! a new generation and then swaps the manifest atomically; the generation before it is kept, so
//! a query planned against it can still read it, and older ones are deleted.

use crate::AnalyticsError;
use arrow::array::RecordBatch;
use arrow::compute::cast;
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::{DateTime, Days, NaiveDate, Utc};
use modelshare_ingest::Lake;
use modelshare_ingest::lake::sync_dir;
use modelshare_query::period::week_start;
use modelshare_query::{FileTable, QueryEngine};
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::metadata::KeyValue;
use parquet::file::properties::WriterProperties;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::fs::{self, File};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Version of what a rollup file holds, written into each file's key-value metadata and its
/// week's manifest; a week built under another version is built again (2: the calls an app
/// chose, without an agent's later calls; 3: split by context segment).
pub const ROLLUP_VERSION: &str = "3";
const ROLLUP_VERSION_KEY: &str = "modelshare.rollup_version";

/// Columns of a rollup file.
pub fn rollup_schema() -> SchemaRef {
    Arc::new(Schema::new(vec![
        Field::new("week", DataType::Utf8, false),
        Field::new("app_id", DataType::Utf8, false),
        Field::new("task", DataType::Utf8, false),
        Field::new("model", DataType::Utf8, false),
        Field::new("context", DataType::UInt8, false),
        Field::new("requests", DataType::Int64, false),
        Field::new("input_tokens", DataType::Int64, false),
        Field::new("output_tokens", DataType::Int64, false),
        Field::new("cost_usd", DataType::Decimal128(18, 6), false),
    ]))
}

/// One event file a rollup was built from (path relative to `events/`, and its size).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SourceFile {
    pub path: String,
    pub bytes: u64,
}

/// What a week's rollup currently is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WeekManifest {
    /// Monday of the ISO week, `YYYY-MM-DD`.
    pub week: NaiveDate,
    pub generation: u32,
    /// File name of the current generation, in the rollup directory.
    pub file: String,
    pub rows: u64,
    pub sources: Vec<SourceFile>,
    /// [`ROLLUP_VERSION`] when it was built (manifests from before the field have none).
    #[serde(default)]
    pub version: String,
}

impl WeekManifest {
    /// Whether the week's rollup holds what this version puts in one.
    pub fn is_current_version(&self) -> bool {
        self.version == ROLLUP_VERSION
    }
}

/// What a refresh did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RefreshReport {
    /// Weeks built for the first time or rebuilt because their event files changed.
    pub built: Vec<NaiveDate>,
    /// Closed weeks whose rollup was already current.
    pub current: usize,
}

/// The rollup directory of a lake.
#[derive(Debug, Clone)]
pub struct Rollups {
    lake: Lake,
    dir: PathBuf,
}

impl Rollups {
    pub fn new(lake: Lake) -> Self {
        let dir = lake.root().join("rollups").join("app_week");
        Rollups { lake, dir }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The manifests of every rolled-up week.
    pub fn manifests(&self) -> Result<BTreeMap<NaiveDate, WeekManifest>, AnalyticsError> {
        let mut out = BTreeMap::new();
        let entries = match fs::read_dir(&self.dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
            Err(e) => return Err(AnalyticsError::io(&self.dir, e)),
        };
        for entry in entries {
            let path = entry.map_err(|e| AnalyticsError::io(&self.dir, e))?.path();
            if path.extension().is_none_or(|x| x != "json") {
                continue;
            }
            let text = fs::read_to_string(&path).map_err(|e| AnalyticsError::io(&path, e))?;
            let manifest: WeekManifest =
                serde_json::from_str(&text).map_err(|e| AnalyticsError::Manifest {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            out.insert(manifest.week, manifest);
        }
        Ok(out)
    }

    /// A table named `name` over the current rollup files of `weeks`.
    pub fn table(
        &self,
        name: &str,
        manifests: &BTreeMap<NaiveDate, WeekManifest>,
        weeks: impl IntoIterator<Item = NaiveDate>,
    ) -> FileTable {
        FileTable {
            name: name.to_owned(),
            schema: rollup_schema(),
            files: weeks
                .into_iter()
                .filter_map(|w| manifests.get(&w))
                .map(|m| self.dir.join(&m.file))
                .collect(),
        }
    }

    /// The event files of the seven days of `week`, as a rollup records them.
    fn sources_of(&self, week: NaiveDate) -> Result<Vec<SourceFile>, AnalyticsError> {
        let events = self.lake.events_dir();
        let mut sources = Vec::new();
        for day in 0..7 {
            let date = week + Days::new(day);
            let dir = self.lake.partition_dir(date);
            let entries = match fs::read_dir(&dir) {
                Ok(e) => e,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                Err(e) => return Err(AnalyticsError::io(&dir, e)),
            };
            for entry in entries {
                let entry = entry.map_err(|e| AnalyticsError::io(&dir, e))?;
                let path = entry.path();
                if path.extension().is_none_or(|x| x != "parquet") {
                    continue;
                }
                let bytes = entry
                    .metadata()
                    .map_err(|e| AnalyticsError::io(&path, e))?
                    .len();
                let rel = path.strip_prefix(&events).unwrap_or(&path);
                sources.push(SourceFile {
                    path: rel.to_string_lossy().into_owned(),
                    bytes,
                });
            }
        }
        sources.sort();
        Ok(sources)
    }

    /// Weeks that have event partitions, by their Monday.
    fn weeks_with_events(&self) -> Result<BTreeSet<NaiveDate>, AnalyticsError> {
        let dir = self.lake.events_dir();
        let mut weeks = BTreeSet::new();
        let entries = match fs::read_dir(&dir) {
            Ok(e) => e,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(weeks),
            Err(e) => return Err(AnalyticsError::io(&dir, e)),
        };
        for entry in entries {
            let name = entry
                .map_err(|e| AnalyticsError::io(&dir, e))?
                .file_name()
                .to_string_lossy()
                .into_owned();
            if let Some(date) = name
                .strip_prefix("date=")
                .and_then(|d| d.parse::<NaiveDate>().ok())
            {
                weeks.insert(week_start(date));
            }
        }
        Ok(weeks)
    }

    /// Builds the rollup of every closed week that has none, or whose event files changed since it
    /// was built. A week is closed once its end (next Monday 00:00 UTC) is `grace` in the past.
    pub async fn refresh(
        &self,
        engine: &QueryEngine,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<RefreshReport, AnalyticsError> {
        self.build_closed(engine, now, grace, false).await
    }

    /// Rebuilds every closed week from scratch, as a new generation.
    pub async fn rebuild_all(
        &self,
        engine: &QueryEngine,
        now: DateTime<Utc>,
        grace: Duration,
    ) -> Result<RefreshReport, AnalyticsError> {
        self.build_closed(engine, now, grace, true).await
    }

    async fn build_closed(
        &self,
        engine: &QueryEngine,
        now: DateTime<Utc>,
        grace: Duration,
        force: bool,
    ) -> Result<RefreshReport, AnalyticsError> {
        let manifests = self.manifests()?;
        let mut report = RefreshReport::default();
        for week in self.weeks_with_events()? {
            if !is_closed(week, now, grace) {
                continue;
            }
            let sources = self.sources_of(week)?;
            if !force
                && manifests
                    .get(&week)
                    .is_some_and(|m| m.sources == sources && m.is_current_version())
            {
                report.current += 1;
                continue;
            }
            let generation = manifests.get(&week).map_or(1, |m| m.generation + 1);
            self.build(engine, week, generation, sources).await?;
            report.built.push(week);
        }
        Ok(report)
    }

    async fn build(
        &self,
        engine: &QueryEngine,
        week: NaiveDate,
        generation: u32,
        sources: Vec<SourceFile>,
    ) -> Result<(), AnalyticsError> {
        let batches = engine.app_week_rollup(week).await?;
        let schema = rollup_schema();
        let batches = batches
            .iter()
            .map(|b| conform(b, &schema))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: u64 = batches.iter().map(|b| b.num_rows() as u64).sum();

        fs::create_dir_all(&self.dir).map_err(|e| AnalyticsError::io(&self.dir, e))?;
        let file = format!("{week}.g{generation}.parquet");
        let path = self.dir.join(&file);
        let temp = self.dir.join(format!(".{file}.tmp"));
        // Either the new generation and its manifest both land, or the previous generation
        // stays the one in use and nothing of the attempt is left on disk (a full disk must
        // not fill up further with half-written rollups).
        if let Err(e) = write_parquet(&temp, &schema, &batches, week)
            .and_then(|()| fs::rename(&temp, &path).map_err(|e| AnalyticsError::io(&path, e)))
        {
            let _ = fs::remove_file(&temp);
            return Err(e);
        }

        let manifest = WeekManifest {
            week,
            generation,
            file,
            rows,
            sources,
            version: ROLLUP_VERSION.to_owned(),
        };
        let json_path = self.dir.join(format!("{week}.json"));
        let json_temp = self.dir.join(format!(".{week}.json.tmp"));
        let text = serde_json::to_vec_pretty(&manifest).map_err(|e| AnalyticsError::Manifest {
            path: json_path.clone(),
            message: e.to_string(),
        })?;
        let manifest_written = write_synced(&json_temp, &text).and_then(|()| {
            fs::rename(&json_temp, &json_path).map_err(|e| AnalyticsError::io(&json_path, e))
        });
        if let Err(e) = manifest_written {
            // The old manifest still names the old generation: the new file is an orphan.
            let _ = fs::remove_file(&json_temp);
            let _ = fs::remove_file(&path);
            return Err(e);
        }
        sync_dir(&self.dir)?;
        self.remove_old_generations(week, generation)?;
        tracing::info!(%week, generation, rows, "app-week rollup built");
        Ok(())
    }

    /// Deletes generations of `week` older than the one before `current`.
    fn remove_old_generations(&self, week: NaiveDate, current: u32) -> Result<(), AnalyticsError> {
        let prefix = format!("{week}.g");
        for entry in fs::read_dir(&self.dir).map_err(|e| AnalyticsError::io(&self.dir, e))? {
            let path = entry.map_err(|e| AnalyticsError::io(&self.dir, e))?.path();
            let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
                continue;
            };
            let generation = name
                .strip_prefix(&prefix)
                .and_then(|rest| rest.strip_suffix(".parquet"))
                .and_then(|g| g.parse::<u32>().ok());
            if generation.is_some_and(|g| g + 1 < current) {
                fs::remove_file(&path).map_err(|e| AnalyticsError::io(&path, e))?;
            }
        }
        Ok(())
    }
}

/// True when `week` (a Monday) ended at least `grace` before `now`.
pub fn is_closed(week: NaiveDate, now: DateTime<Utc>, grace: Duration) -> bool {
    let end = (week + Days::new(7))
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc());
    let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
    end.is_some_and(|end| end + grace <= now)
}

/// Casts a query result onto the rollup schema (aggregates come back as whatever DataFusion
/// chose: counts as Int64, sums possibly nullable).
fn conform(batch: &RecordBatch, schema: &SchemaRef) -> Result<RecordBatch, AnalyticsError> {
    let columns = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| cast(batch.column(i), f.data_type()))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(Arc::clone(schema), columns)?)
}

fn write_parquet(
    path: &Path,
    schema: &SchemaRef,
    batches: &[RecordBatch],
    week: NaiveDate,
) -> Result<(), AnalyticsError> {
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3).unwrap_or_default()))
        .set_key_value_metadata(Some(vec![
            KeyValue::new(ROLLUP_VERSION_KEY.to_owned(), ROLLUP_VERSION.to_owned()),
            KeyValue::new("modelshare.week".to_owned(), week.to_string()),
        ]))
        .build();
    let file = File::create(path).map_err(|e| AnalyticsError::io(path, e))?;
    let mut writer = ArrowWriter::try_new(file, Arc::clone(schema), Some(props))?;
    for batch in batches {
        writer.write(batch)?;
    }
    let file = writer.into_inner()?;
    file.sync_all().map_err(|e| AnalyticsError::io(path, e))?;
    Ok(())
}

fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), AnalyticsError> {
    let mut f = File::create(path).map_err(|e| AnalyticsError::io(path, e))?;
    f.write_all(bytes)
        .map_err(|e| AnalyticsError::io(path, e))?;
    f.sync_all().map_err(|e| AnalyticsError::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_week_closes_after_its_sunday_plus_grace() {
        let week = NaiveDate::from_ymd_opt(2026, 11, 16).unwrap_or_default();
        let at = |s: &str| s.parse::<DateTime<Utc>>().unwrap_or_default();
        let grace = Duration::from_secs(600);
        assert!(!is_closed(week, at("2026-11-22T23:59:59Z"), grace));
        assert!(!is_closed(week, at("2026-11-23T00:09:59Z"), grace));
        assert!(is_closed(week, at("2026-11-23T00:10:00Z"), grace));
    }
}
