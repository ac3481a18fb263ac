//! Foreign telemetry → [`modelshare_event::Event`]s: the formats routers, gateways and SDKs
//! already emit, mapped field by field (see `docs/FORMATS.md`).
//!
//! Every format maps a body to a [`Mapped`]: events that passed the same validation as
//! `POST /v1/events` (each built as a schema-v1 JSON object and run through
//! [`Validator`](modelshare_event::Validator)), per-item rejections with a reason, and the number
//! of items that are not LLM calls at all (ignored, counted).
//!
//! Layout:
//! - [`otlp`]: OTLP/HTTP traces (protobuf and JSON) with OpenTelemetry GenAI span attributes.
//! - [`otlp_proto`]: the OTLP trace messages (from `opentelemetry-proto`).
//! - [`litellm`]: LiteLLM's `StandardLoggingPayload` (its generic HTTP logging callback).
//! - [`openrouter`]: OpenRouter generation stats (`/api/v1/generation` `data` objects).
//! - [`common`]: the shared pieces: app binding, model slug resolution, the draft event.

pub mod common;
pub mod litellm;
pub mod openrouter;
pub mod otlp;
pub mod otlp_proto;

pub use common::{Context, Mapped, Rejection};

/// A body that cannot be read at all (as opposed to one bad item in it).
#[derive(Debug, thiserror::Error)]
pub enum FormatError {
    #[error("body is not a valid OTLP protobuf ExportTraceServiceRequest: {0}")]
    Protobuf(String),
    #[error("body is not valid JSON: {0}")]
    Json(String),
    #[error("{0}")]
    Shape(String),
}
