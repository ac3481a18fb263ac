//! `GET /v1/openapi.json`: the API described as OpenAPI 3.1, derived with `utoipa` from the
//! routes themselves.
//!
//! - Each API handler carries a `#[utoipa::path]` attribute: method, path, summary (its doc
//!   comment), request body and answer. The router registers those handlers through
//!   `utoipa_axum::routes!` in [`crate::api_routes`], and [`spec`] is built from the same list, so a
//!   route cannot exist undescribed nor be described without existing.
//! - Query parameters: each handler parses with the names of a [`query_params!`] type, which is
//!   also what its attribute lists; each name is described once, in [`param`].
//! - The answers every route shares (400, 401/403, 404, 413/415, 429, 503) follow from what the
//!   operation takes and who may call it, added in one place by [`shared_answers`].
//!
//! Adding an endpoint: give the handler a `#[utoipa::path]` and register it in
//! [`crate::api_routes`]; a parameter name not in [`param`] fails `every_parameter_is_described`.

use modelshare_event::{Context, Status, Task};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::LazyLock;
use utoipa::openapi::path::{Parameter, ParameterIn};
use utoipa::openapi::{RefOr, schema::Schema};
use utoipa::{PartialSchema, ToSchema};

/// Declares a handler's query parameters: `NAMES`, the list it parses with, and through
/// `utoipa::IntoParams` their descriptions (from [`param`]) in the document.
macro_rules! query_params {
    ($(#[$doc:meta])* $name:ident = [$($p:literal),* $(,)?]) => {
        $(#[$doc])*
        #[derive(Debug)]
        pub struct $name;
        impl $name {
            /// The accepted parameter names.
            pub const NAMES: &'static [&'static str] = &[$($p),*];
        }
        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $crate::openapi::query_parameters(Self::NAMES)
            }
        }
    };
}
pub(crate) use query_params;

/// The described query parameters `names`, in order.
pub fn query_parameters(names: &[&str]) -> Vec<Parameter> {
    names
        .iter()
        .map(|name| {
            let (schema, description) =
                param(name).unwrap_or((json!({"type": "string"}), "undocumented"));
            let mut p = Parameter::new(*name);
            p.parameter_in = ParameterIn::Query;
            p.description = Some(description.to_owned());
            p.schema = Some(from_json(schema));
            p
        })
        .collect()
}

/// A schema written as JSON (where it is built from a closed vocabulary such as [`Task::ALL`]).
fn from_json(schema: Value) -> RefOr<Schema> {
    serde_json::from_value(schema).unwrap_or_else(|e| {
        // The schemas here are constants of this module; a unit test deserializes each.
        tracing::error!(error = %e, "an OpenAPI schema in openapi.rs does not parse");
        RefOr::T(Schema::default())
    })
}

/// Every API error's body: `{"error": {"code", "message"}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

/// A machine-readable `code` (e.g. `invalid_parameter`) and a message for people.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    pub code: &'static str,
    pub message: String,
}

/// One schema-v1 event, as `POST /v1/events` takes it.
#[derive(Debug)]
pub struct EventBody;

impl PartialSchema for EventBody {
    fn schema() -> RefOr<Schema> {
        from_json(event_schema())
    }
}

impl ToSchema for EventBody {}

/// A binary body (Parquet, OTLP protobuf).
#[derive(Debug)]
pub struct Binary;

impl PartialSchema for Binary {
    fn schema() -> RefOr<Schema> {
        from_json(json!({ "type": "string", "format": "binary" }))
    }
}

impl ToSchema for Binary {}

/// Either one item or an array of them.
fn one_or_many(item: Value) -> Value {
    json!({ "oneOf": [item.clone(), { "type": "array", "items": item }] })
}

/// `POST /v1/events`'s JSON body: one event or an array of events.
#[derive(Debug)]
pub struct EventsBody;

impl PartialSchema for EventsBody {
    fn schema() -> RefOr<Schema> {
        from_json(one_or_many(event_schema()))
    }
}

impl ToSchema for EventsBody {}

/// A foreign payload's JSON body (LiteLLM, OpenRouter): one object or an array of them.
#[derive(Debug)]
pub struct PayloadsBody;

impl PartialSchema for PayloadsBody {
    fn schema() -> RefOr<Schema> {
        from_json(one_or_many(json!({ "type": "object" })))
    }
}

impl ToSchema for PayloadsBody {}

fn event_schema() -> Value {
    let count = json!({ "type": "integer", "minimum": 0, "maximum": u32::MAX });
    json!({
        "type": "object",
        "required": ["event_id", "ts", "app_id", "task", "model", "provider",
                     "input_tokens", "output_tokens", "status"],
        "properties": {
            "event_id": { "type": "string", "minLength": 1, "maxLength": 256 },
            "ts": { "oneOf": [ { "type": "string", "format": "date-time" }, { "type": "integer" } ] },
            "app_id": { "type": "string", "minLength": 1, "maxLength": 256 },
            "task": { "type": "string", "enum": Task::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>() },
            "model_requested": { "type": "string" },
            "model": { "type": "string", "description": "author/model slug" },
            "provider": { "type": "string" },
            "input_tokens": count, "output_tokens": count,
            "reasoning_tokens": count, "cached_tokens": count,
            "cost_usd": { "type": "number", "minimum": 0 },
            "latency_ms": count, "ttft_ms": count,
            "status": { "type": "string", "enum": Status::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>() },
            "finish_reason": { "type": "string" },
            "attempt": { "type": "integer", "minimum": 0, "maximum": 255 },
            "trace_id": { "type": "string", "maxLength": modelshare_event::parse::MAX_TRACE_ID_LEN,
                "description": "the agent run (trace) the call belongs to" },
            "step": { "type": "integer", "minimum": 0, "maximum": u32::MAX,
                "description": "0-based position of the call within its trace (needs trace_id)" }
        }
    })
}

/// The schema and description of a query parameter, by name.
pub fn param(name: &str) -> Option<(Value, &'static str)> {
    Some(match name {
        "period" => (
            json!({ "type": "string", "enum": ["day", "week", "month"], "default": "week" }),
            "the period kind; `date` picks which one",
        ),
        "date" => (
            json!({ "type": "string", "format": "date" }),
            "a day inside the period (default: today, UTC)",
        ),
        "task" => (
            json!({ "type": "string", "enum": Task::ALL.iter().map(|t| t.as_str()).collect::<Vec<_>>() }),
            "only requests of this task",
        ),
        "context" => (
            json!({ "type": "string", "enum": Context::ALL.iter().map(|c| c.as_str()).collect::<Vec<_>>() }),
            "one context segment by input tokens (short < 8,192 ≤ medium < 32,768 ≤ long < 131,072 ≤ very_long): the publishable groups (day, task, model, provider, segment, attempt kind, agent position with enough apps) in that segment",
        ),
        "by" => (
            json!({ "type": "string", "enum": ["tokens", "requests", "spend", "apps"], "default": "tokens" }),
            "the measure share is computed in",
        ),
        "limit" => (
            json!({ "type": "integer", "minimum": 1, "maximum": 1000, "default": 20 }),
            "rows before the rest fold into `other`",
        ),
        "top" => (
            json!({ "type": "integer", "minimum": 1, "maximum": 100 }),
            "how many top models to list",
        ),
        "granularity" => (
            json!({ "type": "string", "enum": ["day", "week"], "default": "week" }),
            "bucket size",
        ),
        "from" => (
            json!({ "type": "string", "format": "date" }),
            "first day (default: 12 weeks before `to`)",
        ),
        "to" => (
            json!({ "type": "string", "format": "date" }),
            "last day (default: today, UTC)",
        ),
        "model" => (
            json!({ "type": "string", "description": "author/model slug" }),
            "the model (`/v1/providers` needs it or `provider`; a filter elsewhere)",
        ),
        "provider" => (
            json!({ "type": "string", "maxLength": modelshare_event::parse::MAX_ID_LEN }),
            "one provider: its figures per model it served",
        ),
        "weeks" => (
            json!({ "type": "integer", "minimum": 2, "maximum": 104, "default": 12 }),
            "ISO weeks in the window, ending with the week containing `date` (default: the last closed week)",
        ),
        "min_observations" => (
            json!({ "type": "integer", "minimum": 1, "default": 20 }),
            "models with fewer pairwise outcomes are listed as unranked",
        ),
        "resamples" => (
            json!({ "type": "integer", "minimum": 0, "maximum": 2000, "default": 200 }),
            "bootstrap resamples (over apps) for the 95% intervals",
        ),
        _ => return None,
    })
}

/// The document's frame: what the API is, and the error schema every route answers with.
#[derive(utoipa::OpenApi)]
#[openapi(
    info(
        title = "modelshare",
        description = "Open usage analytics and revealed-preference index for LLM routing traffic."
    ),
    components(schemas(ErrorBody, ErrorDetail))
)]
struct Frame;

static SPEC: LazyLock<Value> = LazyLock::new(|| {
    let frame = <Frame as utoipa::OpenApi>::openapi();
    let described = utoipa_axum::router::OpenApiRouter::with_openapi(frame)
        .merge(crate::public_api_routes())
        .merge(crate::private_api_routes())
        .split_for_parts()
        .1;
    let mut doc = serde_json::to_value(&described).unwrap_or_else(|e| {
        tracing::error!(error = %e, "the OpenAPI document does not serialize");
        json!({})
    });
    shared_answers(&mut doc);
    doc
});

/// The OpenAPI document.
pub fn spec() -> &'static Value {
    &SPEC
}

fn error_answer(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": {
        "schema": { "$ref": "#/components/schemas/ErrorBody" } } } })
}

/// Adds the answers that follow from an operation's shape to every operation: 400 when it
/// takes query parameters or a body, 413/415 for a body, 404 under a path template, 401/403
/// for keyed callers, 429 for public `/v1` reads (rate limited), 503 everywhere. An operation
/// without a `security` list is public.
fn shared_answers(doc: &mut Value) {
    let Some(paths) = doc.get_mut("paths").and_then(Value::as_object_mut) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(op) = op.as_object_mut() else {
                continue;
            };
            let has_query = op
                .get("parameters")
                .and_then(Value::as_array)
                .is_some_and(|ps| ps.iter().any(|p| p["in"] == "query"));
            let has_body = op.contains_key("requestBody");
            let public = !op.contains_key("security");
            let mut answers = Map::new();
            if has_query || has_body {
                answers.insert("400".into(), error_answer("invalid request"));
            }
            if has_body {
                answers.insert("413".into(), error_answer("body over the size limit"));
                answers.insert(
                    "415".into(),
                    error_answer("unsupported content type or encoding"),
                );
            }
            if path.contains('{') {
                answers.insert("404".into(), error_answer("no such resource"));
            }
            if public {
                op.insert("security".into(), json!([]));
                if path.starts_with("/v1/") {
                    answers.insert("429".into(), error_answer("rate limited; see Retry-After"));
                }
            } else {
                answers.insert(
                    "401".into(),
                    error_answer("missing, unknown or revoked key"),
                );
                answers.insert("403".into(), error_answer("key not allowed here"));
            }
            answers.insert(
                "503".into(),
                error_answer("busy or timed out; see Retry-After"),
            );
            let responses = op.entry("responses").or_insert_with(|| json!({}));
            if let Some(responses) = responses.as_object_mut() {
                for (status, answer) in answers {
                    responses.entry(status).or_insert(answer);
                }
            }
        }
    }
    doc["components"]["securitySchemes"] =
        json!({ "bearer": { "type": "http", "scheme": "bearer" } });
}

/// This document
#[utoipa::path(get, path = "/v1/openapi.json",
    responses((status = 200, description = "the OpenAPI 3.1 document", body = Object)))]
pub async fn get_openapi() -> axum::Json<&'static Value> {
    axum::Json(spec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn operations() -> Vec<(String, String, Value)> {
        let mut ops = vec![];
        for (path, item) in spec()["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                ops.push((method.clone(), path.clone(), op.clone()));
            }
        }
        ops
    }

    #[test]
    fn every_parameter_is_described() {
        for (method, path, op) in operations() {
            for p in op["parameters"].as_array().into_iter().flatten() {
                let name = p["name"].as_str().unwrap();
                let description = p["description"].as_str().unwrap_or("");
                assert!(
                    !description.is_empty() && description != "undocumented",
                    "{method} {path}: parameter {name} has no description"
                );
                assert!(p["schema"]["type"].is_string(), "{method} {path}: {name}");
            }
        }
    }

    #[test]
    fn every_operation_has_a_summary_and_its_shared_answers() {
        let ops = operations();
        assert!(ops.len() >= 19, "{}", ops.len());
        for (method, path, op) in ops {
            assert!(
                op["summary"].as_str().is_some_and(|s| !s.is_empty()),
                "{method} {path}"
            );
            let answers = op["responses"].as_object().unwrap();
            assert!(answers.contains_key("200"), "{method} {path}");
            assert!(answers.contains_key("503"), "{method} {path}");
            let keyed = op["security"] != json!([]);
            assert_eq!(answers.contains_key("401"), keyed, "{method} {path}");
            assert_eq!(
                answers.contains_key("413"),
                op.get("requestBody").is_some(),
                "{method} {path}"
            );
        }
        assert_eq!(
            spec()["paths"]["/v1/events"]["post"]["security"],
            json!([{ "bearer": [] }])
        );
        assert_eq!(
            spec()["paths"]["/v1/sql"]["post"]["security"],
            json!([{ "bearer": [] }])
        );
    }

    #[test]
    fn schemas_written_as_json_parse() {
        assert!(serde_json::from_value::<RefOr<Schema>>(event_schema()).is_ok());
        for name in [
            "period",
            "date",
            "task",
            "by",
            "limit",
            "top",
            "granularity",
            "from",
            "to",
            "model",
            "weeks",
            "min_observations",
            "resamples",
        ] {
            let (schema, _) = param(name).unwrap();
            assert!(
                serde_json::from_value::<RefOr<Schema>>(schema).is_ok(),
                "{name}"
            );
        }
        let body = &spec()["paths"]["/v1/events"]["post"]["requestBody"]["content"]["application/json"]
            ["schema"];
        assert_eq!(body["$ref"], "#/components/schemas/EventsBody");
        let events = &spec()["components"]["schemas"]["EventsBody"];
        assert!(events.to_string().contains("programming"), "{events}");
        for schema in [
            "ErrorBody",
            "ErrorDetail",
            "IngestAnswer",
            "EventErrorEntry",
            "SqlRequest",
        ] {
            assert!(
                spec()["components"]["schemas"][schema].is_object(),
                "{schema}"
            );
        }
    }

    #[test]
    fn enums_in_the_spec_parse() {
        use modelshare_query::{Granularity, Measure, PeriodKind};
        let values = |name: &str| -> Vec<String> {
            param(name).unwrap().0["enum"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_str().unwrap().to_owned())
                .collect()
        };
        for v in values("period") {
            assert!(v.parse::<PeriodKind>().is_ok(), "{v}");
        }
        for v in values("by") {
            assert!(v.parse::<Measure>().is_ok(), "{v}");
        }
        for v in values("granularity") {
            assert!(v.parse::<Granularity>().is_ok(), "{v}");
        }
    }
}
