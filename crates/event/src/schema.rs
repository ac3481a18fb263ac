//! The Arrow schema of the lake and the builder that turns events into record batches.
//!
//! `cost_usd` is a `Decimal128(18, 6)`: the raw value is micro-USD, so sums are exact integer
//! arithmetic while DuckDB, pandas and Spark still read dollars.
//!
//! `trace_id` and `step` came later: files written before them lack the two columns, and every
//! reader of the lake's files reads them as null ([`conform`]; the query engine's listing table
//! does the same from the schema).

use crate::Event;
use arrow::array::{
    ArrayRef, Decimal128Builder, RecordBatch, StringBuilder, TimestampMicrosecondBuilder,
    UInt8Builder, UInt32Builder,
};
use arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use std::sync::{Arc, LazyLock};

/// Precision and scale of `cost_usd`.
pub const COST_PRECISION: u8 = 18;
pub const COST_SCALE: i8 = 6;

static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, false);
    let u32f = |name: &str| Field::new(name, DataType::UInt32, false);
    Arc::new(Schema::new(vec![
        utf8("event_id"),
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        utf8("app_id"),
        utf8("task"),
        utf8("model_requested"),
        utf8("model"),
        utf8("provider"),
        u32f("input_tokens"),
        u32f("output_tokens"),
        u32f("reasoning_tokens"),
        u32f("cached_tokens"),
        Field::new(
            "cost_usd",
            DataType::Decimal128(COST_PRECISION, COST_SCALE),
            false,
        ),
        u32f("latency_ms"),
        u32f("ttft_ms"),
        utf8("status"),
        Field::new("finish_reason", DataType::Utf8, true),
        Field::new("attempt", DataType::UInt8, false),
        Field::new("trace_id", DataType::Utf8, true),
        Field::new("step", DataType::UInt32, true),
    ]))
});

/// The schema of every events Parquet file (the `date` partition column lives in the path).
pub fn event_schema() -> SchemaRef {
    Arc::clone(&SCHEMA)
}

/// Column builders for one record batch of events.
#[derive(Debug)]
pub struct EventBatchBuilder {
    event_id: StringBuilder,
    ts: TimestampMicrosecondBuilder,
    app_id: StringBuilder,
    task: StringBuilder,
    model_requested: StringBuilder,
    model: StringBuilder,
    provider: StringBuilder,
    input_tokens: UInt32Builder,
    output_tokens: UInt32Builder,
    reasoning_tokens: UInt32Builder,
    cached_tokens: UInt32Builder,
    cost_usd: Decimal128Builder,
    latency_ms: UInt32Builder,
    ttft_ms: UInt32Builder,
    status: StringBuilder,
    finish_reason: StringBuilder,
    attempt: UInt8Builder,
    trace_id: StringBuilder,
    step: UInt32Builder,
    rows: usize,
}

impl EventBatchBuilder {
    /// Builders sized for `capacity` rows.
    pub fn with_capacity(capacity: usize) -> Self {
        let s = || StringBuilder::with_capacity(capacity, capacity * 16);
        let u = || UInt32Builder::with_capacity(capacity);
        EventBatchBuilder {
            event_id: s(),
            ts: TimestampMicrosecondBuilder::with_capacity(capacity).with_timezone("UTC"),
            app_id: s(),
            task: s(),
            model_requested: s(),
            model: s(),
            provider: s(),
            input_tokens: u(),
            output_tokens: u(),
            reasoning_tokens: u(),
            cached_tokens: u(),
            cost_usd: Decimal128Builder::with_capacity(capacity)
                .with_data_type(DataType::Decimal128(COST_PRECISION, COST_SCALE)),
            latency_ms: u(),
            ttft_ms: u(),
            status: s(),
            finish_reason: s(),
            attempt: UInt8Builder::with_capacity(capacity),
            trace_id: StringBuilder::new(),
            step: UInt32Builder::new(),
            rows: 0,
        }
    }

    /// Appends one event.
    pub fn push(&mut self, e: &Event) {
        self.event_id.append_value(&e.event_id);
        self.ts.append_value(e.ts.0);
        self.app_id.append_value(&e.app_id);
        self.task.append_value(e.task.as_str());
        self.model_requested.append_value(&e.model_requested);
        self.model.append_value(e.model.as_str());
        self.provider.append_value(&e.provider);
        self.input_tokens.append_value(e.input_tokens);
        self.output_tokens.append_value(e.output_tokens);
        self.reasoning_tokens.append_value(e.reasoning_tokens);
        self.cached_tokens.append_value(e.cached_tokens);
        self.cost_usd.append_value(i128::from(e.cost.0));
        self.latency_ms.append_value(e.latency_ms);
        self.ttft_ms.append_value(e.ttft_ms);
        self.status.append_value(e.status.as_str());
        self.finish_reason.append_option(e.finish_reason.as_deref());
        self.attempt.append_value(e.attempt);
        self.trace_id.append_option(e.trace_id.as_deref());
        self.step.append_option(e.step);
        self.rows += 1;
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// True when no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// The batch of everything appended so far; the builder starts empty again.
    pub fn finish(&mut self) -> RecordBatch {
        let columns: Vec<ArrayRef> = vec![
            Arc::new(self.event_id.finish()),
            Arc::new(self.ts.finish()),
            Arc::new(self.app_id.finish()),
            Arc::new(self.task.finish()),
            Arc::new(self.model_requested.finish()),
            Arc::new(self.model.finish()),
            Arc::new(self.provider.finish()),
            Arc::new(self.input_tokens.finish()),
            Arc::new(self.output_tokens.finish()),
            Arc::new(self.reasoning_tokens.finish()),
            Arc::new(self.cached_tokens.finish()),
            Arc::new(self.cost_usd.finish()),
            Arc::new(self.latency_ms.finish()),
            Arc::new(self.ttft_ms.finish()),
            Arc::new(self.status.finish()),
            Arc::new(self.finish_reason.finish()),
            Arc::new(self.attempt.finish()),
            Arc::new(self.trace_id.finish()),
            Arc::new(self.step.finish()),
        ];
        self.rows = 0;
        // The columns are built from the schema's own types, so this cannot fail.
        RecordBatch::try_new(event_schema(), columns)
            .unwrap_or_else(|e| panic!("event batch does not match its schema: {e}"))
    }
}

/// `batch` (read from an events file of any age) with exactly the lake schema's columns: the
/// columns a file predates (nullable ones only) are null.
pub fn conform(batch: &RecordBatch) -> Result<RecordBatch, arrow::error::ArrowError> {
    let schema = event_schema();
    let columns = schema
        .fields()
        .iter()
        .map(|f| match batch.column_by_name(f.name()) {
            Some(c) => Ok(Arc::clone(c)),
            None if f.is_nullable() => Ok(arrow::array::new_null_array(
                f.data_type(),
                batch.num_rows(),
            )),
            None => Err(arrow::error::ArrowError::SchemaError(format!(
                "events file without column {}",
                f.name()
            ))),
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(schema, columns)
}

/// Builds one record batch from a slice of events.
pub fn events_to_batch(events: &[Event]) -> RecordBatch {
    let mut b = EventBatchBuilder::with_capacity(events.len());
    for e in events {
        b.push(e);
    }
    b.finish()
}
