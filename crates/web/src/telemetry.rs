//! Ingest of foreign telemetry: `POST /v1/traces` (OTLP/HTTP, protobuf or JSON),
//! `POST /v1/litellm` (LiteLLM logging payloads) and `POST /v1/openrouter` (OpenRouter
//! generation stats). Bodies are mapped by `modelshare-formats` and stored through the same
//! durable, deduplicated path as `POST /v1/events`, under the same auth and body limits.

use crate::auth::Writer;
use crate::ingest::{EventErrorEntry, IngestAnswer, content_encoding, decode_body, read_body};
use crate::openapi::{Binary, PayloadsBody};
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use modelshare_event::Validator;
use modelshare_formats::otlp_proto::{ExportTracePartialSuccess, ExportTraceServiceResponse};
use modelshare_formats::{Context, FormatError, Mapped};
use modelshare_ingest::ingester::{Receipt, Submission};
use prost::Message;
use serde_json::json;
use std::sync::atomic::Ordering::Relaxed;

type Body = Result<Bytes, axum::extract::rejection::BytesRejection>;

/// Rejection reasons quoted in an OTLP `partialSuccess.errorMessage`.
const QUOTED_REASONS: usize = 5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    OtlpProtobuf,
    OtlpJson,
    LiteLlm,
    OpenRouter,
}

fn mime(headers: &HeaderMap) -> String {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

/// Authenticates, decodes, maps and stores; returns what happened.
async fn ingest(
    state: &AppState,
    writer: Writer,
    headers: &HeaderMap,
    body: Body,
    source: Source,
) -> Result<(Mapped, Receipt), ApiError> {
    let Some(ingester) = state.ingester.clone() else {
        return Err(ApiError::NotFound("this server is read-only".into()));
    };
    state.counters.ingest_requests.fetch_add(1, Relaxed);
    let body = read_body(state, body)?;
    let encoding = content_encoding(headers);
    let limit = state.max_body_bytes;
    let ctx = Context {
        bound_app: writer.bound_app().map(str::to_owned),
        validator: Validator::now(),
    };
    let mapped = tokio::task::spawn_blocking(move || {
        let raw = decode_body(body, encoding.as_deref(), limit)?;
        let mapped = match source {
            Source::OtlpProtobuf => modelshare_formats::otlp::from_protobuf(&raw, &ctx),
            Source::OtlpJson => modelshare_formats::otlp::from_json(&raw, &ctx),
            Source::LiteLlm => modelshare_formats::litellm::from_json(&raw, &ctx),
            Source::OpenRouter => modelshare_formats::openrouter::from_json(&raw, &ctx),
        };
        mapped.map_err(|e: FormatError| ApiError::BadRequest(e.to_string()))
    })
    .await
    .map_err(|e| ApiError::Internal(format!("mapping task failed: {e}")))??;
    let c = &state.counters;
    c.events_rejected
        .fetch_add(mapped.rejected.len() as u64, Relaxed);
    c.items_ignored.fetch_add(mapped.ignored as u64, Relaxed);
    let mut mapped = mapped;
    let events = std::mem::take(&mut mapped.events);
    let receipt = if events.is_empty() {
        Receipt::default()
    } else {
        ingester
            .submit(Submission {
                events,
                idempotency_key: None,
                annotation: None,
            })
            .await?
    };
    Ok((mapped, receipt))
}

fn count_headers(resp: &mut Response, mapped: &Mapped, receipt: Receipt) {
    let h = resp.headers_mut();
    for (name, n) in [
        ("x-modelshare-accepted", receipt.stored + receipt.duplicates),
        ("x-modelshare-duplicates", receipt.duplicates),
        ("x-modelshare-rejected", mapped.rejected.len()),
        ("x-modelshare-ignored", mapped.ignored),
    ] {
        h.insert(name, HeaderValue::from(n));
    }
}

/// OTLP/HTTP traces; spans with GenAI attributes become events
///
/// An `ExportTraceServiceRequest`, answered in the request's encoding with `partialSuccess`
/// naming rejected GenAI spans and the ignored non-GenAI ones.
#[utoipa::path(post, path = "/v1/traces",
    request_body(content((Binary = "application/x-protobuf"), (Object = "application/json"))),
    responses((status = 200, description = "an ExportTraceServiceResponse", content(
        (Binary = "application/x-protobuf"), (Object = "application/json")))),
    security(("bearer" = [])))]
pub async fn post_traces(
    State(state): State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let source = match mime(&headers).as_str() {
        "application/x-protobuf" | "application/protobuf" => Source::OtlpProtobuf,
        "application/json" => Source::OtlpJson,
        other => {
            return Err(ApiError::UnsupportedMediaType(format!(
                "Content-Type {other:?} is not supported; accepted: application/x-protobuf, application/json"
            )));
        }
    };
    let (mapped, receipt) = ingest(&state, writer, &headers, body, source).await?;
    let mut message = Vec::new();
    if !mapped.rejected.is_empty() {
        let reasons: Vec<String> = mapped
            .rejected
            .iter()
            .take(QUOTED_REASONS)
            .map(|r| format!("span {}: {}", r.index, r.message))
            .collect();
        message.push(format!(
            "{} GenAI spans rejected ({})",
            mapped.rejected.len(),
            reasons.join("; ")
        ));
    }
    if mapped.ignored > 0 {
        message.push(format!(
            "{} spans without gen_ai model attributes ignored",
            mapped.ignored
        ));
    }
    let partial = (!message.is_empty()).then(|| ExportTracePartialSuccess {
        rejected_spans: mapped.rejected.len() as i64,
        error_message: message.join("; "),
    });
    let mut resp = if source == Source::OtlpProtobuf {
        let body = ExportTraceServiceResponse {
            partial_success: partial,
        }
        .encode_to_vec();
        ([(header::CONTENT_TYPE, "application/x-protobuf")], body).into_response()
    } else {
        let body = match partial {
            Some(p) => json!({"partialSuccess": {
                "rejectedSpans": p.rejected_spans.to_string(),
                "errorMessage": p.error_message,
            }}),
            None => json!({}),
        };
        axum::Json(body).into_response()
    };
    count_headers(&mut resp, &mapped, receipt);
    Ok(resp)
}

fn json_answer(mapped: &Mapped, receipt: Receipt) -> Response {
    let errors: Vec<_> = mapped
        .rejected
        .iter()
        .take(crate::ingest::MAX_LISTED_ERRORS)
        .map(|r| EventErrorEntry {
            index: r.index,
            message: r.message.clone(),
        })
        .collect();
    let mut resp = axum::Json(IngestAnswer {
        accepted: receipt.stored + receipt.duplicates,
        rejected: mapped.rejected.len(),
        duplicates: receipt.duplicates,
        ignored: Some(mapped.ignored),
        errors: &errors,
    })
    .into_response();
    count_headers(&mut resp, mapped, receipt);
    resp
}

fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    match mime(headers).as_str() {
        "application/json" | "application/x-ndjson" | "application/ndjson" => Ok(()),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {other:?} is not supported; accepted: application/json, application/x-ndjson"
        ))),
    }
}

/// LiteLLM StandardLoggingPayloads (generic HTTP logging callback)
///
/// A JSON array, one object, or NDJSON.
#[utoipa::path(post, path = "/v1/litellm",
    request_body(content((PayloadsBody = "application/json"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "what was stored, duplicated, rejected and ignored", body = IngestAnswer)),
    security(("bearer" = [])))]
pub async fn post_litellm(
    State(state): State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let (mapped, receipt) = ingest(&state, writer, &headers, body, Source::LiteLlm).await?;
    Ok(json_answer(&mapped, receipt))
}

/// OpenRouter generation stats (`/api/v1/generation` data objects)
///
/// One object, an array, or `{"data": {...}}`.
#[utoipa::path(post, path = "/v1/openrouter",
    request_body(content((PayloadsBody = "application/json"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "what was stored, duplicated, rejected and ignored", body = IngestAnswer)),
    security(("bearer" = [])))]
pub async fn post_openrouter(
    State(state): State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    require_json(&headers)?;
    let (mapped, receipt) = ingest(&state, writer, &headers, body, Source::OpenRouter).await?;
    Ok(json_answer(&mapped, receipt))
}
