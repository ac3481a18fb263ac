//! The DataFusion session over the lake.
//!
//! Table `events` = the Parquet files under `events/date=YYYY-MM-DD/` (a listing table whose
//! `date` partition column prunes whole days) UNION ALL the live rows that are acknowledged but
//! not flushed yet. Each query plans under a [`LivePin`](modelshare_event::live::LivePin), so a
//! flush finishing mid-query can neither hide nor double a row.
//!
//! Table `app_days` = the app-day cube's files (`modelshare_event::cube`), as they are on disk.
//!
//! View `cell_apps` = the sums of `ok` events per (date, task, model, provider, app, attempt,
//! position: an agent call's place in its trace, context: the segment's code),
//! which every public figure is computed from: from `app_days` for the days the engine's
//! [`Coverage`] says the cube answers for, from raw events for the other days, plus the live
//! rows. Without a coverage (or before the lake is checked) every day is read raw: that is the
//! reference the cube is tested against.
//!
//! View `cell_groups` = one row per group of the publication rule (date, task, model, provider,
//! context, fallback, position; see `crate::privacy`) of `cell_apps`: its distinct apps and
//! sums. The rule and every additive public figure read it.
//!
//! View `group_presence` = one row per (group, app key) with the group's distinct apps
//! (`group_apps`): distinct apps of published groups are counted on it.
//!
//! View `hourly` = every attempt's counts, sums and latency histogram per (date, hour, task,
//! model, provider, status), from the hourly files of closed days where they are current
//! (see [`crate::hourly`]).
//!
//! Table `week_presence` = the week presence files (`modelshare_event::cube`); view `presence`
//! = `group_presence` without the provider and the group key, where the whole weeks a query asks for (and whose
//! week file is current) are read from their week files instead of their days.

use crate::QueryError;
use crate::fragments::{FALLBACK, OK_ROWS, POSITION, context_code};
use crate::hourly::{hourly_schema, hourly_view};
use arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use chrono::NaiveDate;
use datafusion::catalog::TableProvider;
use datafusion::datasource::MemTable;
use datafusion::datasource::file_format::parquet::ParquetFormat;
use datafusion::datasource::listing::{
    ListingOptions, ListingTable, ListingTableConfig, ListingTableUrl,
};
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::execution::runtime_env::{RuntimeEnv, RuntimeEnvBuilder};
use datafusion::physical_plan::collect;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
pub use datafusion::scalar::ScalarValue;
use modelshare_event::cube::{
    APP_DAYS_DIR, Coverage, GROUP_PRESENCE_DIR, GROUPS_DIR, HOURLY_DIR, WEEK_PRESENCE_DIR,
    app_days_schema, app_key, group_presence_schema, groups_schema, monday_of,
    week_presence_schema,
};
use modelshare_event::live::LiveBuffer;
use modelshare_event::schema::event_schema;
use modelshare_ingest::location::{Bucket, LakeLocation};
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Settings of the query engine.
#[derive(Debug, Clone)]
pub struct QueryConfig {
    /// Longest a query may run before it is cancelled.
    pub timeout: Duration,
    /// Groups with fewer distinct apps are not published (see [`crate::privacy`]).
    pub min_apps: u64,
    /// Threads DataFusion may use per query.
    pub target_partitions: usize,
    /// Memory the queries' operators may reserve together; `None` for no limit.
    pub memory_bytes: Option<usize>,
}

impl Default for QueryConfig {
    fn default() -> Self {
        QueryConfig {
            timeout: Duration::from_secs(30),
            min_apps: crate::privacy::DEFAULT_MIN_APPS,
            target_partitions: std::thread::available_parallelism().map_or(2, |n| n.get()),
            memory_bytes: None,
        }
    }
}

/// How often a query is planned again when files it listed were swapped away meanwhile.
const MAX_REPLANS: u32 = 5;

/// Runs SQL over the lake plus the live buffer.
#[derive(Debug, Clone)]
pub struct QueryEngine {
    root: Root,
    pub(crate) live: Option<Arc<LiveBuffer>>,
    pub(crate) coverage: Option<Arc<Coverage>>,
    pub(crate) runtime: Arc<RuntimeEnv>,
    pub(crate) config: QueryConfig,
    pub(crate) stats: Arc<QueryStats>,
    /// Answers shared by the reads of one unit of work (see [`QueryEngine::sharing_answers`]).
    pub(crate) shared: Option<Arc<SharedAnswers>>,
    /// Where ad-hoc SQL runs instead of this process, when set (see [`crate::sandbox`]).
    pub(crate) remote: Option<Arc<dyn crate::sandbox::RemoteSql>>,
}

/// Answers of identical queries (same SQL, parameters and weeks) asked within one unit of work,
/// such as the panels of one page: the first asker computes, the others wait and reuse. Only
/// answers are shared; an asker whose computation fails returns its own error, and the next
/// asker tries again.
#[derive(Debug, Default)]
pub(crate) struct SharedAnswers {
    cells: std::sync::Mutex<
        std::collections::HashMap<String, Arc<tokio::sync::OnceCell<Vec<RecordBatch>>>>,
    >,
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
    with_date(&event_schema())
}

/// Where the engine's tables are listed.
#[derive(Debug, Clone)]
enum Root {
    /// The lake's `events/` directory; the rollups are beside it.
    EventsDir(PathBuf),
    /// A lake in a bucket, its store registered in the engine's runtime.
    Bucket(Bucket),
}

impl Root {
    /// The table over the `<partition>=…` partitions of `relative` (a directory of the lake):
    /// empty when a local lake has no such directory; a bucket lists what is there.
    fn table(
        &self,
        relative: &str,
        schema: SchemaRef,
        partition: &str,
    ) -> Result<Arc<dyn TableProvider>, QueryError> {
        match self {
            Root::EventsDir(events) => {
                let root = events.parent().unwrap_or_else(|| Path::new("."));
                optional_table(&root.join(relative), schema, partition)
            }
            Root::Bucket(b) => Ok(partitioned_table(&b.url_of(relative), schema, partition)?),
        }
    }

    /// The events table.
    fn events(&self) -> Result<Arc<ListingTable>, QueryError> {
        match self {
            Root::EventsDir(events) => partitioned_table(&dir_url(events), event_schema(), "date"),
            Root::Bucket(b) => partitioned_table(&b.url_of("events"), event_schema(), "date"),
        }
    }
}

impl QueryEngine {
    /// An engine over `events_dir` (the lake's `events/` directory) and, when a server is
    /// ingesting, its live buffer.
    pub fn new(
        events_dir: impl Into<PathBuf>,
        live: Option<Arc<LiveBuffer>>,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        Self::with_root(Root::EventsDir(events_dir.into()), live, config)
    }

    /// An engine over the lake at `location`, a directory or a bucket, with no live rows (a
    /// reader of the lake's files, like `modelshare query`).
    pub fn at(location: &LakeLocation, config: QueryConfig) -> Result<Self, QueryError> {
        let root = match location {
            LakeLocation::Local(dir) => Root::EventsDir(dir.join("events")),
            LakeLocation::Bucket(b) => Root::Bucket(b.clone()),
        };
        Self::with_root(root, None, config)
    }

    fn with_root(
        root: Root,
        live: Option<Arc<LiveBuffer>>,
        config: QueryConfig,
    ) -> Result<Self, QueryError> {
        // The default list-files cache never expires: new Parquet files would stay invisible.
        let cache = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let mut runtime = RuntimeEnvBuilder::new().with_cache_manager(cache);
        if let Some(bytes) = config.memory_bytes {
            runtime = runtime.with_memory_limit(bytes, 1.0);
        }
        let runtime = runtime.build_arc()?;
        if let Root::Bucket(b) = &root {
            let url = ObjectStoreUrl::parse(b.store_url())?;
            runtime.register_object_store(url.as_ref(), Arc::clone(&b.store));
        }
        Ok(QueryEngine {
            root,
            live,
            coverage: None,
            runtime,
            config,
            stats: Arc::new(QueryStats::default()),
            shared: None,
            remote: None,
        })
    }

    /// Answers public figures from the app-day cube for the days `coverage` vouches for.
    pub fn with_coverage(mut self, coverage: Arc<Coverage>) -> Self {
        self.coverage = Some(coverage);
        self
    }

    /// This engine, sharing the answers of identical queries among the reads made through it
    /// (and its clones): for the panels of one page, which ask some questions twice. Make one
    /// per unit of work; answers are never shared beyond it.
    pub fn sharing_answers(&self) -> QueryEngine {
        QueryEngine {
            shared: Some(Arc::new(SharedAnswers::default())),
            ..self.clone()
        }
    }

    /// `sql_inner`, through the shared answers when there are.
    async fn sql_shared(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
        weeks: &BTreeSet<NaiveDate>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let Some(shared) = &self.shared else {
            return self.sql_inner(sql, params, &[], weeks).await;
        };
        let key = format!("{sql}\n{params:?}\n{weeks:?}");
        let cell = {
            let mut cells = shared.cells.lock().unwrap_or_else(|p| p.into_inner());
            Arc::clone(cells.entry(key).or_default())
        };
        cell.get_or_try_init(|| self.sql_inner(sql, params, &[], weeks))
            .await
            .cloned()
    }

    /// Whether some public figures are read from the cube now (not all from raw events).
    fn trusts_cube(&self) -> bool {
        self.coverage
            .as_ref()
            .is_some_and(|c| c.raw_days().is_some())
    }

    pub fn config(&self) -> &QueryConfig {
        &self.config
    }

    pub fn stats(&self) -> Arc<QueryStats> {
        Arc::clone(&self.stats)
    }

    /// A session with the tables and views of the module docs, over `live_batches` as the live
    /// rows. Call under the live pin that produced them.
    pub(crate) async fn session(
        &self,
        live_batches: Vec<RecordBatch>,
        weeks: &BTreeSet<NaiveDate>,
    ) -> Result<SessionContext, QueryError> {
        let config = SessionConfig::new()
            .with_target_partitions(self.config.target_partitions)
            .with_information_schema(false);
        let ctx = SessionContext::new_with_config_rt(config, Arc::clone(&self.runtime));
        self.register_file_tables(&ctx, "lake")?;
        let mut live_days = BTreeSet::new();
        let live_rows = live_batches
            .iter()
            .map(|b| with_date_column(b, &mut live_days))
            .collect::<Result<Vec<_>, _>>()?;
        let live = MemTable::try_new(table_schema(), vec![live_rows])?;
        ctx.register_table("live", Arc::new(live))?;
        ctx.register_udf(app_key_udf());
        // Views, so filters on `date` reach the listing tables and prune partitions.
        ctx.sql("CREATE VIEW events AS SELECT * FROM lake UNION ALL SELECT * FROM live")
            .await?;
        let raw_days = self.coverage.as_ref().and_then(|c| c.raw_days());
        ctx.sql(&cell_apps_view(raw_days.as_ref())).await?;
        // A day with live rows is not summarized by its groups file.
        let summarized_days: BTreeSet<NaiveDate> = self
            .coverage
            .as_ref()
            .map(|c| c.summarized_days())
            .unwrap_or_default()
            .difference(&live_days)
            .copied()
            .collect();
        ctx.sql(&groups_view(&summarized_days)).await?;
        ctx.sql(&group_presence_view(&summarized_days)).await?;
        // Whole weeks asked for, with a current week file, no day of which has live rows.
        let weeks: BTreeSet<NaiveDate> = self
            .coverage
            .as_ref()
            .map(|c| c.weeks())
            .unwrap_or_default()
            .intersection(weeks)
            .filter(|w| !live_days.iter().any(|d| monday_of(*d) == **w))
            .copied()
            .collect();
        ctx.sql(&weeks_presence_view(&weeks)).await?;
        // Like the groups: a day with live rows is read raw, since its `day_apps` cannot be
        // added to the file's.
        let hour_days: BTreeSet<NaiveDate> = self
            .coverage
            .as_ref()
            .map(|c| c.hour_days())
            .unwrap_or_default()
            .difference(&live_days)
            .copied()
            .collect();
        let (from_files, computed) = in_and_out(&hour_days);
        ctx.sql(&hourly_view(&from_files, &computed)).await?;
        Ok(ctx)
    }

    /// Registers the tables read straight from the lake's files in `ctx`: the events (named
    /// `events_table`), the cube's day, group, presence and week files, and the hourly files.
    pub(crate) fn register_file_tables(
        &self,
        ctx: &SessionContext,
        events_table: &str,
    ) -> Result<(), QueryError> {
        let root = &self.root;
        ctx.register_table(events_table, root.events()?)?;
        for (name, dir, schema, partition) in [
            ("app_days", APP_DAYS_DIR, app_days_schema(), "date"),
            ("day_groups", GROUPS_DIR, groups_schema(), "date"),
            (
                "day_group_presence",
                GROUP_PRESENCE_DIR,
                group_presence_schema(),
                "date",
            ),
            (
                "week_presence",
                WEEK_PRESENCE_DIR,
                week_presence_schema(),
                "week",
            ),
            ("hour_files", HOURLY_DIR, hourly_schema(), "date"),
        ] {
            ctx.register_table(name, root.table(dir, schema, partition)?)?;
        }
        Ok(())
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
        let result = self.sql_shared(sql, params, &BTreeSet::new()).await;
        self.count(started, result.is_err());
        result
    }

    /// Like [`sql_with_params`](Self::sql_with_params), with the `presence` view reading the
    /// week presence files of `weeks` (Mondays) where they are current (see [`crate::privacy`]
    /// for when a query may).
    pub(crate) async fn sql_over_weeks(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
        weeks: &BTreeSet<NaiveDate>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let started = Instant::now();
        let result = self.sql_shared(sql, params, weeks).await;
        self.count(started, result.is_err());
        result
    }

    /// Like [`sql_with_params`](Self::sql_with_params), with extra tables over explicit Parquet
    /// files registered next to `events` (derived data such as rollups, whose current files a
    /// manifest names).
    pub(crate) async fn sql_with_tables_and_params(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
        tables: &[FileTable],
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let started = Instant::now();
        let result = self.sql_inner(sql, params, tables, &BTreeSet::new()).await;
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
        weeks: &BTreeSet<NaiveDate>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let mut replans = 0;
        let mut distrusted = false;
        loop {
            match self.sql_once(sql, params.clone(), tables, weeks).await {
                // A cube, groups, presence or week file that does not decode: answer from raw
                // events (exact, slower) until the maintenance pass has checked the cube and
                // rewritten what it finds damaged.
                Err(QueryError::DataFusion(e))
                    if !distrusted && is_damaged_file(&e) && self.trusts_cube() =>
                {
                    distrusted = true;
                    tracing::warn!(error = %e, "a cube file cannot be read; answering from raw events until the cube is checked and its damaged files are rebuilt");
                    if let Some(c) = &self.coverage {
                        c.distrust();
                    }
                }
                // Files are listed when the query is planned and opened while it runs: a
                // compaction or cube merge that swapped a day's files in between removed some of
                // those listed. Planned again, the query lists the day's new files.
                Err(QueryError::DataFusion(e)) if replans < MAX_REPLANS && is_missing_file(&e) => {
                    replans += 1;
                    tracing::debug!(error = %e, "a listed file was swapped away; planning again");
                }
                Err(QueryError::DataFusion(e))
                    if matches!(
                        e.find_root(),
                        datafusion::error::DataFusionError::ResourcesExhausted(_)
                    ) =>
                {
                    tracing::warn!(error = %e, "query refused: the memory pool is full");
                    return Err(QueryError::Busy);
                }
                other => return other,
            }
        }
    }

    async fn sql_once(
        &self,
        sql: &str,
        params: Vec<(String, ScalarValue)>,
        tables: &[FileTable],
        weeks: &BTreeSet<NaiveDate>,
    ) -> Result<Vec<RecordBatch>, QueryError> {
        let pin = match &self.live {
            Some(live) => Some(live.pin().await),
            None => None,
        };
        let batches = pin.as_ref().map(|p| p.batches.clone()).unwrap_or_default();
        let ctx = self.session(batches, weeks).await?;
        for table in tables {
            register_file_table(&ctx, table)?;
        }
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

/// The `cell_apps` view (see the module docs). `raw_days`: the days the cube does not answer
/// for; `None` when it answers for none.
fn cell_apps_view(raw_days: Option<&BTreeSet<NaiveDate>>) -> String {
    let (from_lake, from_cube) = match raw_days {
        None => ("true".to_owned(), "false".to_owned()),
        Some(raw) => in_and_out(raw),
    };
    let raw_rows = |table: &str, days: &str| {
        format!(
            "SELECT date, task, model, provider, app_id, attempt, {POSITION} AS position, \
               {context} AS context, app_key(app_id) AS app_key, CAST(1 AS BIGINT) AS requests, \
               CAST(input_tokens AS BIGINT) AS input_tokens, \
               CAST(output_tokens AS BIGINT) AS output_tokens, cost_usd \
             FROM {table} WHERE {OK_ROWS} AND {days}",
            context = context_code(),
        )
    };
    format!(
        "CREATE VIEW cell_apps AS \
         SELECT date, task, model, provider, app_id, attempt, position, context, app_key, \
           requests, input_tokens, output_tokens, cost_usd \
         FROM app_days WHERE {from_cube} \
         UNION ALL {lake} UNION ALL {live}",
        lake = raw_rows("lake", &from_lake),
        live = raw_rows("live", "true"),
    )
}

/// Predicates on `date` for the rows of `days` and for the others (`false` and `true` when
/// there are none). Dates are formatted from `NaiveDate`s, never from input.
fn in_and_out(days: &BTreeSet<NaiveDate>) -> (String, String) {
    in_and_out_of("date", days)
}

/// [`in_and_out`] on another date column (`week` for the week presence files).
fn in_and_out_of(column: &str, days: &BTreeSet<NaiveDate>) -> (String, String) {
    if days.is_empty() {
        return ("false".to_owned(), "true".to_owned());
    }
    let listed = days
        .iter()
        .map(|d| format!("'{d}'"))
        .collect::<Vec<_>>()
        .join(", ");
    (
        format!("{column} IN ({listed})"),
        format!("{column} NOT IN ({listed})"),
    )
}

/// The columns of a group of the publication rule in the `cell_groups` view.
pub(crate) const GROUP: &str = "date, task, model, provider, context, fallback, position";

/// The `cell_groups` view: one row per group of the publication rule ([`GROUP`]) with its
/// distinct apps and the sums of its `ok` events; from the groups files of `summarized_days`,
/// computed from `cell_apps` for the other days.
fn groups_view(summarized_days: &BTreeSet<NaiveDate>) -> String {
    let (from_files, computed) = in_and_out(summarized_days);
    format!(
        "CREATE VIEW cell_groups AS \
         SELECT {GROUP}, apps, requests, input_tokens, output_tokens, \
           CAST(cost_usd AS DECIMAL(38, 6)) AS cost_usd \
         FROM day_groups WHERE {from_files} \
         UNION ALL \
         SELECT {GROUP}, CAST(count(DISTINCT app_key) AS BIGINT) AS apps, \
           sum(requests) AS requests, sum(input_tokens) AS input_tokens, \
           sum(output_tokens) AS output_tokens, \
           CAST(sum(cost_usd) AS DECIMAL(38, 6)) AS cost_usd \
         FROM ({rows}) GROUP BY {GROUP}",
        rows = group_rows(&computed),
    )
}

/// The `cell_apps` rows of `days` with their group's key columns ([`GROUP`]) and the app key.
fn group_rows(days: &str) -> String {
    format!(
        "SELECT date, task, model, provider, context, {FALLBACK} AS fallback, position, app_key, \
           requests, input_tokens, output_tokens, cost_usd \
         FROM cell_apps WHERE {days}"
    )
}

/// The `group_presence` view: one row per (group, app key) with the group's distinct apps
/// (`group_apps`); from the group presence files of `summarized_days`, from `cell_apps` and
/// `cell_groups` for the other days.
fn group_presence_view(summarized_days: &BTreeSet<NaiveDate>) -> String {
    let (from_files, computed) = in_and_out(summarized_days);
    format!(
        "CREATE VIEW group_presence AS \
         SELECT {GROUP}, app_key, group_apps \
         FROM day_group_presence WHERE {from_files} \
         UNION ALL \
         SELECT a.date, a.task, a.model, a.provider, a.context, a.fallback, a.position, \
           a.app_key, g.apps AS group_apps \
         FROM (SELECT DISTINCT {GROUP}, app_key FROM ({rows})) a \
         JOIN cell_groups g ON a.date = g.date AND a.task = g.task AND a.model = g.model \
           AND a.provider = g.provider AND a.context = g.context \
           AND a.fallback = g.fallback AND a.position = g.position",
        rows = group_rows(&computed),
    )
}

/// The `presence` view: one row per (date, task, model, app key) with a distinct-app count that
/// publishes the app's row when it reaches the threshold: for each of `weeks`, its week
/// presence rows dated on its Monday; for every other day, `group_presence` without the
/// provider and the group key.
fn weeks_presence_view(weeks: &BTreeSet<NaiveDate>) -> String {
    let days: BTreeSet<NaiveDate> = weeks
        .iter()
        .flat_map(|w| (0..7).map(move |i| *w + chrono::Days::new(i)))
        .collect();
    let (_, other_days) = in_and_out(&days);
    let (from_weeks, _) = in_and_out_of("week", weeks);
    format!(
        "CREATE VIEW presence AS \
         SELECT week AS date, task, model, app_key, group_apps FROM week_presence \
         WHERE {from_weeks} \
         UNION ALL \
         SELECT date, task, model, app_key, group_apps FROM group_presence WHERE {other_days}"
    )
}

/// A listing table over the partitions under `dir`, or an empty table when there is none.
fn optional_table(
    dir: &Path,
    schema: SchemaRef,
    partition: &str,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    if dir.is_dir() {
        Ok(partitioned_table(&dir_url(dir), schema, partition)?)
    } else {
        Ok(Arc::new(MemTable::try_new(
            with_partition(&schema, partition),
            vec![vec![]],
        )?))
    }
}

/// `app_key(app_id)`: the key distinct apps are counted on (`modelshare_event::cube::app_key`).
pub(crate) fn app_key_udf() -> datafusion::logical_expr::ScalarUDF {
    use arrow::array::UInt64Array;
    use datafusion::logical_expr::{ColumnarValue, Volatility, create_udf};
    let hash = Arc::new(|args: &[ColumnarValue]| {
        let [arg] = args else {
            return Err(datafusion::error::DataFusionError::Plan(
                "app_key takes one argument".into(),
            ));
        };
        match arg {
            ColumnarValue::Array(a) => {
                let apps = a.as_any().downcast_ref::<StringArray>().ok_or_else(|| {
                    datafusion::error::DataFusionError::Plan("app_key takes a string".into())
                })?;
                let keys: UInt64Array = apps.iter().map(|a| a.map(app_key)).collect();
                Ok(ColumnarValue::Array(Arc::new(keys)))
            }
            ColumnarValue::Scalar(ScalarValue::Utf8(a)) => Ok(ColumnarValue::Scalar(
                ScalarValue::UInt64(a.as_deref().map(app_key)),
            )),
            ColumnarValue::Scalar(_) => Err(datafusion::error::DataFusionError::Plan(
                "app_key takes a string".into(),
            )),
        }
    });
    create_udf(
        "app_key",
        vec![DataType::Utf8],
        DataType::UInt64,
        Volatility::Immutable,
        hash,
    )
}

/// A listing table over the `<partition>=YYYY-MM-DD/*.parquet` partitions under the directory
/// `url` (a path or URL ending in `/`), with the partition column after the columns of `schema`.
fn partitioned_table(
    url: &str,
    schema: SchemaRef,
    partition: &str,
) -> Result<Arc<ListingTable>, QueryError> {
    let url = ListingTableUrl::parse(url)?;
    let options = ListingOptions::new(Arc::new(ParquetFormat::default()))
        .with_file_extension(".parquet")
        .with_table_partition_cols(vec![(partition.to_owned(), DataType::Utf8)]);
    Ok(Arc::new(ListingTable::try_new(
        ListingTableConfig::new(url)
            .with_listing_options(options)
            .with_schema(schema),
    )?))
}

/// `schema` plus the `date` partition column.
fn with_date(schema: &Schema) -> SchemaRef {
    with_partition(schema, "date")
}

/// `schema` plus a partition column.
fn with_partition(schema: &Schema, partition: &str) -> SchemaRef {
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new(partition, DataType::Utf8, false));
    Arc::new(Schema::new(fields))
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

/// Adds the `date` partition column (the UTC day of `ts`) to a live batch, and its days to
/// `days`.
fn with_date_column(
    batch: &RecordBatch,
    days: &mut BTreeSet<NaiveDate>,
) -> Result<RecordBatch, QueryError> {
    let ts = batch
        .column_by_name("ts")
        .and_then(|c| c.as_any().downcast_ref::<TimestampMicrosecondArray>())
        .ok_or_else(|| QueryError::Shape("live batch without ts".into()))?;
    let dates: StringArray = ts
        .values()
        .iter()
        .map(|us| {
            let day = modelshare_event::Timestamp(*us).date();
            days.insert(day);
            Some(day.to_string())
        })
        .collect();
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    columns.push(Arc::new(dates));
    Ok(RecordBatch::try_new(table_schema(), columns)?)
}

/// True when `e` is an object store's "not found" (a file listed at planning that is gone),
/// however deep the readers wrapped it.
/// Whether a query failed on a Parquet file that does not decode.
fn is_damaged_file(e: &datafusion::error::DataFusionError) -> bool {
    matches!(
        e.find_root(),
        datafusion::error::DataFusionError::ParquetError(_)
    )
}

fn is_missing_file(e: &datafusion::error::DataFusionError) -> bool {
    use datafusion::object_store::Error as StoreError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(err) = cause {
        if let Some(StoreError::NotFound { .. }) = err.downcast_ref::<StoreError>() {
            return true;
        }
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::NotFound
        {
            return true;
        }
        cause = err.source();
    }
    false
}
