//! The DataFusion session over the lake.
//!
//! Table `events` = the Parquet files under `events/date=YYYY-MM-DD/` (a listing table whose
//! `date` partition column prunes whole days) UNION ALL the live rows that are acknowledged but
//! not flushed yet. Each query plans under a [`LivePin`](modelshare_event::live::LivePin), so a
//! flush finishing mid-query can neither hide nor double a row.

use crate::QueryError;
use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_plan::collect;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
pub use datafusion::scalar::ScalarValue;
use modelshare_event::live::LiveBuffer;
use modelshare_event::schema::event_schema;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the query engine.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Longest a query may run before it is cancelled.
    pub timeout: Duration,
    /// Base cells with fewer distinct apps are not published (see [`crate::privacy`]).
    pub min_apps: u64,
    /// Threads DataFusion may use per query.
    pub target_partitions: usize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(30),
            min_apps: 5,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
        }
    }
}

/// Runs SQL over the lake plus the live buffer.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    pub(crate) events_dir: PathBuf,
    pub(crate) live: Option<Arc<LiveBuffer>>,
    pub(crate) runtime: Arc<RuntimeEnv>,
    pub(crate) config: QueryConfig,
    pub(crate) stats: Arc<QueryStats>,
}

/// Query counters for `/metrics`.
#[derive(Debug, Default)]
pub struct QueryStats {
    pub queries: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    pub micros: std::sync::atomic::AtomicU64,
}

/// The schema of `events` as queries see it: the file schema plus the `date` partition.
pub fn table_schema() -> SchemaRef {
    let mut fields: Vec<Field> = event_schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    fields.push(Field::new("date", DataType::Utf8, false));
    Arc::new(Schema::new(fields))
}

impl QueryEngine {
    /// An engine over `events_dir` (the lake's `events/` directory) and, when a server is
    /// ingesting, its live buffer.
    pub fn new(
        events_dir: impl Into<PathBuf>,
        live: Option<Arc<LiveBuffer>>,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        // The default list-files cache never expires: new Parquet files would stay invisible.
        let cache = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(cache)
            .build_arc()?;
        Ok(QueryEngine {
            events_dir: events_dir.into(),
            live,
            runtime,
            config,
            stats: Arc::new(QueryStats::default()),
        })
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    pub fn stats(&self) -> Arc<QueryStats> {
        Arc::clone(&self.stats)
    }

    pub(crate) fn session(
        &self,
        live_batches: Vec<RecordBatch>,
    ) -> Result<SessionContext, QueryError> {
        let config = SessionConfig::new()
            .with_target_partitions(self.config.target_partitions)
            .with_information_schema(false);
        let ctx = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
        let url = ListingTableUrl::parse(dir_url(&self.events_dir))?;
        let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
            .with_file_extension(".parquet")
            .with_table_partition_cols(vec![("date".to_owned(), DataType::Utf8)]);
        let lake = ListingTable::try_new(
            ListingTableConfig::new(url)
                .with_listing_options(options)
                .with_schema(event_schema()),
        )?;
        let live_rows = live_batches
            .iter()
            .map(with_date_column)
            .collect::<Result<Vec<_>, _>>()?;
        let live = MemTable::try_new(table_schema(), vec![live_rows])?;
        ctx.register_table("lake", Arc::new(lake))?;
        ctx.register_table("live", Arc::new(live))?;
        Ok(ctx)
    }

    /// Runs one read-only SQL statement against table `events`.
    pub async fn sql(&self, sql: &str) -> Result<Vec<RecordBatch>, QueryError> {
        self.sql_with_params(sql, Vec::new()).await
    }

    /// Runs one read-only SQL statement with named placeholders (`$name`) bound to `params`:
    /// values are bound into the plan, never pasted into the SQL text.
    pub async fn sql_with_params(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let started = Instant::now();
        let result = self.sql_inner(sql, params, &[]).await;
        self.count(started, result.is_err());
        result
    }

    /// Like [`sql`](Self::sql), with extra tables over explicit Parquet files registered next to
    /// `events` (derived data such as rollups, whose current files a manifest names).
    pub async fn sql_with_tables(
        &self,
        sql: &str,
        tables: &[FileTable],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let started = Instant::now();
        let result = self.sql_inner(sql, Vec::new(), tables).await;
        self.count(started, result.is_err());
        result
    }

    fn count(&self, started: Instant, failed: bool) {
        use std::sync::atomic::Ordering::Relaxed;
        self.stats.queries.fetch_add(1, Relaxed);
        self.stats
            .micros
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        if failed {
            self.stats.failures.fetch_add(1, Relaxed);
        }
    }

    async fn sql_inner(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
        tables: &[FileTable],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        match self.sql_once(sql, params.clone(), tables).await {
            // Files are listed when the query is planned and opened while it runs: a compaction
            // that swapped a day's files in between removed some of those listed. Planned again,
            // the query lists the day's new files.
            Err(QueryError::DataFusion(e)) if is_missing_file(&e) => {
                tracing::debug!(error = %e, "a listed file was compacted away; planning again");
                self.sql_once(sql, params, tables).await
            }
            other => other,
        }
    }

    async fn sql_once(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
        tables: &[FileTable],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let pin = match &self.live {
            Some(live) => Some(live.pin().await),
            None => None,
        };
        let batches = pin.as_ref().map(|p| p.batches.clone()).unwrap_or_default();
        let ctx = self.session(batches)?;
        for table in tables {
            register_file_table(&ctx, table)?;
        }
        // `events` is a view so filters on `date` reach the listing table and prune partitions.
        ctx.sql("CREATE VIEW events AS SELECT * FROM lake UNION ALL SELECT * FROM live")
            .await?;
        let read_only = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let mut frame = ctx.sql_with_options(sql, read_only).await?;
        if !params.is_empty() {
            frame = frame.with_param_values(params)?;
        }
        let plan = frame.create_physical_plan().await?;
        // Files are listed during planning; from here on a flush may publish new ones.
        drop(pin);
        match tokio::time::timeout(self.config.timeout, collect(plan, ctx.task_ctx())).await {
            Ok(result) => Ok(result?),
            Err(_) => Err(QueryError::Timeout(self.config.timeout)),
        }
    }
}

/// A table over an explicit list of Parquet files sharing one schema.
#[derive(Debug, Clone)]
pub struct FileTable {
    pub name: String,
    pub schema: SchemaRef,
    pub files: Vec<PathBuf>,
}

fn register_file_table(ctx: &SessionContext, table: &FileTable) -> Result<(), QueryError> {
    if table.files.is_empty() {
        let empty = MemTable::try_new(Arc::clone(&table.schema), vec![vec![]])?;
        ctx.register_table(table.name.as_str(), Arc::new(empty))?;
        return Ok(());
    }
    let urls = table
        .files
        .iter()
        .map(|f| {
            let abs = std::path::absolute(f).unwrap_or_else(|_| f.clone());
            ListingTableUrl::parse(abs.to_string_lossy())
        })
        .collect::<Result<Vec<_>, _>>()?;
    let options =
        ListingOptions::new(Arc::new(ParquetFormat::default())).with_file_extension(".parquet");
    let listing = ListingTable::try_new(
        ListingTableConfig::new_with_multi_paths(urls)
            .with_listing_options(options)
            .with_schema(Arc::clone(&table.schema)),
    )?;
    ctx.register_table(table.name.as_str(), Arc::new(listing))?;
    Ok(())
}

fn dir_url(dir: &Path) -> String {
    let abs = std::path::absolute(dir).unwrap_or_else(|_| dir.to_owned());
    let mut s = abs.to_string_lossy().into_owned();
    if !s.ends_with('/') {
        s.push('/');
    }
    s
}

/// Adds the `date` partition column (the UTC day of `ts`) to a live batch.
fn with_date_column(batch: &RecordBatch) -> Result<RecordBatch, QueryError> {
    let ts = batch
        .column_by_name("ts")
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or_else(|| QueryError::Shape("live batch without ts".into()))?;
    let dates: StringArray = ts
        .values()
        .iter()
        .map(|us| Some(modelshare_event::Timestamp(*us).date().to_string()))
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(dates));
    Ok(RecordBatch::try_new(table_schema(), columns)?)
}

/// Quotes a string as a SQL literal.
/// True when `e` is an object store's "not found" (a file listed at planning that is gone).
fn is_missing_file(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::error::DataFusionError;
    match e.find_root() {
        DataFusionError::ObjectStore(inner) => {
            matches!(**inner, datafusion::object_store::Error::NotFound { .. })
        }
        DataFusionError::IoError(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    }
}

pub fn sql_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}
