//! Ad-hoc SQL for administrators (`POST /v1/sql`), fenced in: read-only (no DDL, DML, `COPY`
//! or `SET`; the session registers no file-reading table functions and no URL tables, so only
//! the lake's tables and views can be read: `events`, `hourly`, `app_days`, `day_groups`,
//! `day_group_presence`, `week_presence`, `cell_apps`, `cell_groups`, `group_presence`,
//! `presence`), a memory
//! pool of its own, a time limit, and a row cap that stops the query once enough rows have
//! arrived.
//!
//! With a [`RemoteSql`] set (a Ballista cluster, `serve --ballista`), the statement runs there
//! instead, over the lake's files in the bucket (tables `events`, `app_days`, `day_groups`,
//! `day_group_presence`, `week_presence`, `hour_files`; no live rows, no views), under the same
//! time limit and row cap; the cluster's executors have their own memory pools.

use crate::{QueryEngine, QueryError};
use arrow::array::RecordBatch;
use arrow::datatypes::SchemaRef;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::cache::cache_manager::CacheManagerConfig;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::physical_plan::execute_stream;
use datafusion::prelude::SQLOptions;
use futures::StreamExt;
use futures::future::BoxFuture;
use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The fences of one sandboxed query.
#[derive(Debug, Clone, Copy)]
pub struct SqlLimits {
    /// Cancel after this long.
    pub timeout: Duration,
    /// Most memory the query's operators may reserve (sorts, joins, aggregations).
    pub memory_bytes: usize,
    /// Rows returned at most; the query stops once one more has arrived.
    pub max_rows: usize,
}

/// The rows of a sandboxed query.
#[derive(Debug)]
pub struct SqlAnswer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    /// True when the query had more rows than `max_rows`.
    pub truncated: bool,
}

/// The read-only statement options every sandboxed query is verified against.
pub fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// An engine elsewhere that runs a read-only statement over this lake's files.
pub trait RemoteSql: std::fmt::Debug + Send + Sync {
    /// Plans `sql` and starts it, answering its rows as they come.
    fn stream<'a>(
        &'a self,
        sql: &'a str,
    ) -> BoxFuture<'a, Result<SendableRecordBatchStream, QueryError>>;

    /// The kind of a failure met while reading the stream (a member of the cluster that cannot
    /// be reached is transient).
    fn classify(&self, e: QueryError) -> QueryError {
        e
    }
}

impl QueryEngine {
    /// This engine, running ad-hoc SQL ([`sql_capped`](Self::sql_capped)) on `remote`.
    pub fn with_remote_sql(mut self, remote: Arc<dyn RemoteSql>) -> Self {
        self.remote = Some(remote);
        self
    }

    /// A copy of this engine whose queries share a memory pool of `limits.memory_bytes`.
    pub fn sandboxed(&self, limits: SqlLimits) -> Result<QueryEngine, QueryError> {
        let cache = CacheManagerConfig::default().with_list_files_cache_limit(0);
        let runtime = RuntimeEnvBuilder::new()
            .with_cache_manager(cache)
            .with_memory_limit(limits.memory_bytes, 1.0)
            .build_arc()?;
        let mut engine = self.clone();
        engine.runtime = runtime;
        engine.config.timeout = limits.timeout;
        Ok(engine)
    }

    /// Runs one read-only statement, stopping at `max_rows` rows.
    pub async fn sql_capped(&self, sql: &str, max_rows: usize) -> Result<SqlAnswer, QueryError> {
        use std::sync::atomic::Ordering::Relaxed;
        let started = Instant::now();
        let result = tokio::time::timeout(self.config.timeout, self.capped_inner(sql, max_rows))
            .await
            .unwrap_or(Err(QueryError::Timeout(self.config.timeout)));
        self.stats.queries.fetch_add(1, Relaxed);
        self.stats
            .micros
            .fetch_add(started.elapsed().as_micros() as u64, Relaxed);
        if result.is_err() {
            self.stats.failures.fetch_add(1, Relaxed);
        }
        result
    }

    async fn capped_inner(&self, sql: &str, max_rows: usize) -> Result<SqlAnswer, QueryError> {
        match &self.remote {
            Some(remote) => {
                let stream = remote.stream(sql).await.map_err(|e| remote.classify(e))?;
                first_rows(stream, max_rows)
                    .await
                    .map_err(|e| remote.classify(e))
            }
            None => first_rows(self.stream_here(sql).await?, max_rows).await,
        }
    }

    /// Plans `sql` in this process over the lake and the live rows, and starts it.
    async fn stream_here(&self, sql: &str) -> Result<SendableRecordBatchStream, QueryError> {
        let pin = match &self.live {
            Some(live) => Some(live.pin().await),
            None => None,
        };
        let batches = pin.as_ref().map(|p| p.batches.clone()).unwrap_or_default();
        let ctx = self.session(batches, &BTreeSet::new()).await?;
        let plan = ctx
            .sql_with_options(sql, read_only())
            .await?
            .create_physical_plan()
            .await?;
        drop(pin);
        Ok(execute_stream(plan, ctx.task_ctx())?)
    }
}

/// The first `max_rows` rows of `stream`; the rest is not read.
async fn first_rows(
    mut stream: SendableRecordBatchStream,
    max_rows: usize,
) -> Result<SqlAnswer, QueryError> {
    let schema = stream.schema();
    let mut out = Vec::new();
    let mut rows = 0usize;
    let mut truncated = false;
    while let Some(batch) = stream.next().await {
        let batch = batch?;
        if rows + batch.num_rows() > max_rows {
            out.push(batch.slice(0, max_rows - rows));
            truncated = true;
            break;
        }
        rows += batch.num_rows();
        out.push(batch);
    }
    Ok(SqlAnswer {
        schema,
        batches: out,
        truncated,
    })
}
