//! `POST /v1/events`: read the body (bounded, decompressed), parse each event on its own, store
//! the good ones durably, report the bad ones by position.
//!
//! Answer: `200 {"accepted", "rejected", "duplicates", "errors": [{"index", "message"}]}` once the
//! accepted events are fsynced. `index` counts events in the body from 0 (NDJSON: non-blank lines;
//! JSON: array elements). A retry carrying an `Idempotency-Key` seen before gets the first answer.

use crate::auth::Writer;
use crate::openapi::EventsBody;
use crate::{ApiError, AppState};
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Response};
use modelshare_event::{Event, Validator};
use modelshare_ingest::ingester::{Receipt, Submission};
use serde::{Deserialize, Serialize};
use std::io::Read;
use std::sync::atomic::Ordering::Relaxed;

/// At most this many per-event errors are listed in an answer (all are counted).
pub const MAX_LISTED_ERRORS: usize = 1000;
/// Longest accepted `Idempotency-Key`.
pub const MAX_IDEMPOTENCY_KEY: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Ndjson,
    Json,
}

/// Why one item of a batch was rejected; `index` counts from 0 in the request.
#[derive(Debug, Serialize, Deserialize, utoipa::ToSchema)]
pub struct EventErrorEntry {
    pub index: usize,
    pub message: String,
}

/// What is kept with an idempotency key besides the receipt.
#[derive(Debug, Serialize, Deserialize)]
struct Annotation {
    rejected: usize,
    errors: Vec<EventErrorEntry>,
}

/// The answer to an ingest request. `accepted` counts stored events and duplicates of stored
/// ones; `errors` lists the first rejections.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct IngestAnswer<'a> {
    pub accepted: usize,
    pub rejected: usize,
    pub duplicates: usize,
    /// Foreign items that are not LLM calls (telemetry endpoints only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ignored: Option<usize>,
    pub errors: &'a [EventErrorEntry],
}

fn answer(receipt: Receipt, annotation: &Annotation) -> Response {
    axum::Json(IngestAnswer {
        accepted: receipt.stored + receipt.duplicates,
        rejected: annotation.rejected,
        duplicates: receipt.duplicates,
        ignored: None,
        errors: &annotation.errors,
    })
    .into_response()
}

/// The request body, or the error that says why it could not be read.
pub(crate) fn read_body(
    state: &AppState,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Bytes, ApiError> {
    body.map_err(|e| {
        if e.status() == axum::http::StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(state.max_body_bytes)
        } else {
            ApiError::BadRequest(format!("could not read the request body: {e}"))
        }
    })
}

/// The `Content-Encoding` of a request, lowercased.
pub(crate) fn content_encoding(headers: &HeaderMap) -> Option<String> {
    headers
        .get(header::CONTENT_ENCODING)
        .map(|v| v.to_str().unwrap_or("?").trim().to_ascii_lowercase())
}

/// Ingest schema-v1 events (NDJSON or JSON; gzip/zstd)
#[utoipa::path(post, path = "/v1/events",
    request_body(content((EventsBody = "application/json"), (String = "application/x-ndjson"))),
    responses((status = 200, description = "what was stored, duplicated and rejected", body = IngestAnswer)),
    security(("bearer" = [])))]
pub async fn post_events(
    State(state): State<AppState>,
    writer: Writer,
    headers: HeaderMap,
    body: Result<Bytes, axum::extract::rejection::BytesRejection>,
) -> Result<Response, ApiError> {
    let Some(ingester) = state.ingester.clone() else {
        return Err(ApiError::NotFound("this server is read-only".into()));
    };
    let bound = writer.bound_app().map(str::to_owned);
    state.counters.ingest_requests.fetch_add(1, Relaxed);
    let format = body_format(&headers)?;
    let body = read_body(&state, body)?;
    // Keys are scoped by app, so one app cannot read another's answers by guessing its keys.
    let key = idempotency_key(&headers)?.map(|k| match &bound {
        Some(app) => format!("{app}\u{0}{k}"),
        None => k,
    });
    if let Some(prev) = key.as_deref().and_then(|k| ingester.remembered(k)) {
        state.counters.idempotent_replays.fetch_add(1, Relaxed);
        let annotation = prev
            .annotation
            .and_then(|a| serde_json::from_slice::<Annotation>(&a).ok())
            .unwrap_or(Annotation {
                rejected: 0,
                errors: vec![],
            });
        return Ok(answer(prev.receipt, &annotation));
    }
    let encoding = content_encoding(&headers);
    let limit = state.max_body_bytes;
    // Inflating and parsing megabytes is CPU work: keep it off the async workers.
    let parsed = tokio::task::spawn_blocking(move || {
        let raw = decode_body(body, encoding.as_deref(), limit)?;
        parse_body(&raw, format, Validator::now(), bound.as_deref())
    })
    .await
    .map_err(|e| ApiError::Internal(format!("parser task failed: {e}")))??;
    let (events, errors_all) = parsed;
    let rejected = errors_all.len();
    state
        .counters
        .events_rejected
        .fetch_add(rejected as u64, Relaxed);
    let mut errors = errors_all;
    errors.truncate(MAX_LISTED_ERRORS);
    let annotation = Annotation { rejected, errors };
    let stored_annotation = match &key {
        Some(_) => serde_json::to_vec(&annotation).ok(),
        None => None,
    };
    let receipt = ingester
        .submit(Submission {
            events,
            idempotency_key: key,
            annotation: stored_annotation,
        })
        .await?;
    Ok(answer(receipt, &annotation))
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let accepted = "accepted: application/x-ndjson, application/json";
    let Some(ct) = headers.get(header::CONTENT_TYPE) else {
        return Err(ApiError::UnsupportedMediaType(format!(
            "missing Content-Type; {accepted}"
        )));
    };
    let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
    let mime = ct.split(';').next().unwrap_or("").trim();
    match mime {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(BodyFormat::Ndjson),
        "application/json" => Ok(BodyFormat::Json),
        other => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Type {other:?} is not supported; {accepted}"
        ))),
    }
}

fn idempotency_key(headers: &HeaderMap) -> Result<Option<String>, ApiError> {
    let Some(v) = headers.get("idempotency-key") else {
        return Ok(None);
    };
    let key = v
        .to_str()
        .map_err(|_| ApiError::BadRequest("Idempotency-Key must be visible ASCII".into()))?
        .trim();
    if key.is_empty() || key.len() > MAX_IDEMPOTENCY_KEY {
        return Err(ApiError::BadRequest(format!(
            "Idempotency-Key must be 1 to {MAX_IDEMPOTENCY_KEY} characters"
        )));
    }
    Ok(Some(key.to_owned()))
}

/// Inflates gzip / zstd bodies, refusing to produce more than `limit` bytes (zip bombs).
pub(crate) fn decode_body(
    body: Bytes,
    encoding: Option<&str>,
    limit: usize,
) -> Result<Vec<u8>, ApiError> {
    let inflate = |reader: &mut dyn Read, what: &str| -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::new();
        let read = reader
            .take(limit as u64 + 1)
            .read_to_end(&mut out)
            .map_err(|e| ApiError::BadRequest(format!("body is not valid {what}: {e}")))?;
        if read > limit {
            return Err(ApiError::PayloadTooLarge(limit));
        }
        Ok(out)
    };
    match encoding {
        None | Some("identity") | Some("") => Ok(body.to_vec()),
        Some("gzip") | Some("x-gzip") => {
            inflate(&mut flate2::read::MultiGzDecoder::new(&body[..]), "gzip")
        }
        Some("zstd") => {
            let mut decoder = zstd::stream::read::Decoder::new(&body[..])
                .map_err(|e| ApiError::BadRequest(format!("body is not valid zstd: {e}")))?;
            inflate(&mut decoder, "zstd")
        }
        Some(other) => Err(ApiError::UnsupportedMediaType(format!(
            "Content-Encoding {other:?} is not supported; accepted: gzip, zstd"
        ))),
    }
}

type Parsed = (Vec<Event>, Vec<EventErrorEntry>);

/// Splits the body into events and validates each on its own; with a key bound to an app, an
/// event naming another app is rejected.
fn parse_body(
    raw: &[u8],
    format: BodyFormat,
    validator: Validator,
    bound: Option<&str>,
) -> Result<Parsed, ApiError> {
    let mut events = Vec::new();
    let mut errors = Vec::new();
    let mut take = |index: usize, result: Result<Event, modelshare_event::EventError>| match result
    {
        Ok(e) if bound.is_some_and(|b| b != e.app_id) => errors.push(EventErrorEntry {
            index,
            message: format!(
                "app_id {:?} does not match the ingest key's app {:?}",
                e.app_id,
                bound.unwrap_or_default()
            ),
        }),
        Ok(e) => events.push(e),
        Err(e) => errors.push(EventErrorEntry {
            index,
            message: e.to_string(),
        }),
    };
    match format {
        BodyFormat::Ndjson => {
            let lines = raw
                .split(|b| *b == b'\n')
                .map(|l| l.strip_suffix(b"\r").unwrap_or(l))
                .filter(|l| !l.iter().all(u8::is_ascii_whitespace));
            for (index, line) in lines.enumerate() {
                take(index, validator.parse(line));
            }
        }
        BodyFormat::Json => {
            let first = raw.iter().find(|b| !b.is_ascii_whitespace());
            match first {
                Some(b'[') => {
                    let items: Vec<&serde_json::value::RawValue> = serde_json::from_slice(raw)
                        .map_err(|e| {
                            ApiError::BadRequest(format!("body is not a valid JSON array: {e}"))
                        })?;
                    for (index, item) in items.into_iter().enumerate() {
                        take(index, validator.parse_value(item));
                    }
                }
                Some(b'{') => {
                    let item: &serde_json::value::RawValue =
                        serde_json::from_slice(raw).map_err(|e| {
                            ApiError::BadRequest(format!("body is not valid JSON: {e}"))
                        })?;
                    take(0, validator.parse_value(item));
                }
                _ => {
                    return Err(ApiError::BadRequest(
                        "a JSON body must be an event object or an array of them".into(),
                    ));
                }
            }
        }
    }
    if events.is_empty() && errors.is_empty() {
        return Err(ApiError::BadRequest("the body holds no events".into()));
    }
    Ok((events, errors))
}
