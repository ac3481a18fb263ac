//! Typed access to result columns, so query code never downcasts by hand.

use crate::QueryError;
use arrow::array::{Array, AsArray, RecordBatch};
use arrow::datatypes::{DataType, Decimal128Type, Int64Type, UInt64Type};
use modelshare_event::MicroUsd;

fn column<'a>(batch: &'a RecordBatch, name: &str) -> Result<&'a dyn Array, QueryError> {
    batch
        .column_by_name(name)
        .map(|c| c.as_ref())
        .ok_or_else(|| QueryError::Shape(format!("missing column {name}")))
}

/// A non-negative integer count or sum (NULL, e.g. the sum of no rows, reads as 0).
pub fn u64_at(batch: &RecordBatch, name: &str, row: usize) -> Result<u64, QueryError> {
    let col = column(batch, name)?;
    if col.is_null(row) {
        return Ok(0);
    }
    match col.data_type() {
        DataType::Int64 => Ok(col.as_primitive::<Int64Type>().value(row).max(0) as u64),
        DataType::UInt64 => Ok(col.as_primitive::<UInt64Type>().value(row)),
        other => Err(QueryError::Shape(format!(
            "{name} is {other}, expected an integer"
        ))),
    }
}

/// A sum of `cost_usd` (decimal, scale 6) as exact micro-USD.
pub fn micro_usd_at(batch: &RecordBatch, name: &str, row: usize) -> Result<MicroUsd, QueryError> {
    let col = column(batch, name)?;
    if col.is_null(row) {
        return Ok(MicroUsd(0));
    }
    match col.data_type() {
        DataType::Decimal128(_, 6) => {
            let v = col.as_primitive::<Decimal128Type>().value(row);
            i64::try_from(v)
                .map(MicroUsd)
                .map_err(|_| QueryError::Shape(format!("{name} overflows i64 micro-USD")))
        }
        other => Err(QueryError::Shape(format!(
            "{name} is {other}, expected decimal(_, 6)"
        ))),
    }
}

/// A string cell (NULL reads as empty).
pub fn str_at<'a>(batch: &'a RecordBatch, name: &str, row: usize) -> Result<&'a str, QueryError> {
    let col = column(batch, name)?;
    if col.is_null(row) {
        return Ok("");
    }
    match col.data_type() {
        DataType::Utf8 => Ok(col.as_string::<i32>().value(row)),
        DataType::LargeUtf8 => Ok(col.as_string::<i64>().value(row)),
        DataType::Utf8View => Ok(col.as_string_view().value(row)),
        other => Err(QueryError::Shape(format!(
            "{name} is {other}, expected a string"
        ))),
    }
}
