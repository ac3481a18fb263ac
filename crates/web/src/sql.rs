//! `POST /v1/sql`: read-only SQL over `events` for administrators, with its own memory pool,
//! time limit and row cap (see `modelshare_query::sandbox`).
//!
//! Request: `{"sql": "SELECT ..."}` (JSON) or the statement as `text/plain`. Answer:
//! `{"columns": [{"name", "type"}], "rows": [{...}], "row_count", "truncated"}`.

use crate::auth::Admin;
use crate::ingest::read_body;
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use modelshare_query::QueryError;
use serde_json::{Value, json};

/// The JSON body: one statement.
#[derive(Debug, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SqlRequest {
    pub sql: String,
}

/// Longest SQL text accepted.
pub const MAX_SQL_BYTES: usize = 64 * 1024;

/// Read-only SQL over table `events` (admin; memory, time and row caps)
#[utoipa::path(post, path = "/v1/sql",
    request_body(content((SqlRequest = "application/json"), (String = "text/plain"))),
    responses((status = 200, description = "the result's columns and rows", body = Object)),
    security(("bearer" = [])))]
pub async fn post_sql(
    State(state): State<AppState>,
    _admin: Admin,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let body = read_body(&state, body)?;
    let mime = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    let sql = match mime.as_str() {
        "application/json" => {
            serde_json::from_slice::<SqlRequest>(&body)
                .map_err(|e| {
                    ApiError::BadRequest(format!("body must be {{\"sql\": \"...\"}}: {e}"))
                })?
                .sql
        }
        "text/plain" | "application/sql" => String::from_utf8(body.to_vec())
            .map_err(|_| ApiError::BadRequest("SQL must be UTF-8".into()))?,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type {other:?} is not supported; accepted: application/json, text/plain"
            )));
        }
    };
    if sql.trim().is_empty() {
        return Err(ApiError::BadRequest("the SQL statement is empty".into()));
    }
    if sql.len() > MAX_SQL_BYTES {
        return Err(ApiError::BadRequest(format!(
            "the SQL statement is longer than {MAX_SQL_BYTES} bytes"
        )));
    }
    let limits = state.sql_limits;
    let engine = state.query.sandboxed(limits)?;
    let answer = match engine.sql_capped(&sql, limits.max_rows).await {
        Ok(a) => a,
        Err(QueryError::Timeout(_)) => return Err(ApiError::QueryTimeout),
        // The statement is the admin's own: planning and execution errors (refused writes,
        // unknown columns, memory cap) are answered with DataFusion's message.
        Err(QueryError::DataFusion(e)) => {
            return Err(ApiError::BadRequest(format!("SQL refused or failed: {e}")));
        }
        Err(other) => return Err(other.into()),
    };
    let columns: Vec<Value> = answer
        .schema
        .fields()
        .iter()
        .map(|f| json!({"name": f.name(), "type": f.data_type().to_string()}))
        .collect();
    let mut writer = arrow::json::ArrayWriter::new(Vec::new());
    let batches: Vec<&arrow::array::RecordBatch> = answer.batches.iter().collect();
    writer
        .write_batches(&batches)
        .map_err(|e| ApiError::Internal(format!("rows to JSON: {e}")))?;
    writer
        .finish()
        .map_err(|e| ApiError::Internal(format!("rows to JSON: {e}")))?;
    let raw = writer.into_inner();
    let rows: Value = if raw.is_empty() {
        json!([])
    } else {
        serde_json::from_slice(&raw).map_err(|e| ApiError::Internal(format!("rows JSON: {e}")))?
    };
    let row_count = rows.as_array().map_or(0, Vec::len);
    Ok(axum::Json(json!({
        "columns": columns,
        "rows": rows,
        "row_count": row_count,
        "truncated": answer.truncated,
    }))
    .into_response())
}
