//! `GET /v1/openapi.json`: the API described as OpenAPI 3.1, built from the same constants the
//! handlers use (parameter lists, closed vocabularies such as [`Task::ALL`], limits).
//!
//! Still by hand, not derived with `utoipa` (about 20 s of release build on 2 cores, measured
//! small; the move is not made yet): drift is caught by tests instead (every parameter
//! described, every enum value parses, every documented route answers).
//!
//! Adding an endpoint: add one [`Endpoint`] to [`endpoints`] next to its route in `router()`
//! (parameter names come from the handler's `*_PARAMS` constant; a name not in [`param`] fails
//! the `every_parameter_is_described` test). The end-to-end test `openapi_lists_every_route`
//! calls every documented path, so a documented route that does not exist fails too.

use modelshare_event::{Status, Task};
use serde_json::{Map, Value, json};

/// Who may call an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Open to everyone (rate limited per client when under `/v1/`).
    Public,
    /// An ingest key (or, with no key configured, a loopback client).
    Ingest,
    /// An admin key (or, with no key configured, a loopback client).
    Admin,
}

/// One documented operation.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub method: &'static str,
    pub path: &'static str,
    pub summary: &'static str,
    pub access: Access,
    /// Query parameter names, described by [`param`].
    pub params: &'static [&'static str],
    /// Request body content types and schemas (`None`: no body).
    pub body: Option<Value>,
    /// The 200 response content.
    pub ok: Value,
}

fn json_content(schema: Value) -> Value {
    json!({ "application/json": { "schema": schema } })
}

fn object() -> Value {
    json!({ "type": "object" })
}

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
            "attempt": { "type": "integer", "minimum": 0, "maximum": 255 }
        }
    })
}

fn ingest_answer() -> Value {
    json_content(json!({
        "type": "object",
        "required": ["accepted", "rejected", "duplicates", "errors"],
        "properties": {
            "accepted": { "type": "integer" }, "rejected": { "type": "integer" },
            "duplicates": { "type": "integer" }, "ignored": { "type": "integer" },
            "errors": { "type": "array", "items": { "type": "object",
                "properties": { "index": { "type": "integer" }, "message": { "type": "string" } } } }
        }
    }))
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
            "only this model",
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

/// Every documented endpoint.
pub fn endpoints() -> Vec<Endpoint> {
    [
        usage_endpoints(),
        analytics_endpoints(),
        write_endpoints(),
        ops_endpoints(),
    ]
    .concat()
}

/// The public usage figures: leaderboards, share over time, tasks.
fn usage_endpoints() -> Vec<Endpoint> {
    use crate::api::{LEADERBOARD_PARAMS, SHARE_PARAMS, TASKS_PARAMS};
    vec![
        Endpoint {
            method: "get",
            path: "/v1/leaderboard",
            summary: "Models ranked by share in a period",
            access: Access::Public,
            params: LEADERBOARD_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/authors",
            summary: "Model authors ranked by share in a period",
            access: Access::Public,
            params: LEADERBOARD_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/share",
            summary: "Share of the top models per day or week",
            access: Access::Public,
            params: SHARE_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/tasks",
            summary: "Per-task totals and top models",
            access: Access::Public,
            params: TASKS_PARAMS,
            body: None,
            ok: json_content(object()),
        },
    ]
}

/// The revealed-preference analyses and the weekly snapshots.
fn analytics_endpoints() -> Vec<Endpoint> {
    use crate::analytics::{
        INDEX_PARAMS, PRICE_SHARE_PARAMS, RETENTION_PARAMS, SHIFTS_PARAMS, SWITCHES_PARAMS,
    };
    vec![
        Endpoint {
            method: "get",
            path: "/v1/retention",
            summary: "Cohort retention of apps whose primary model became M (docs/METRICS.md)",
            access: Access::Public,
            params: RETENTION_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/switches",
            summary: "Flows of apps changing primary model A -> B, with tokens moved",
            access: Access::Public,
            params: SWITCHES_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/index",
            summary: "Preference index: Bradley-Terry ratings from switches and kept trials, bootstrap intervals",
            access: Access::Public,
            params: INDEX_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/price-share",
            summary: "Blended price against share, with the Pareto frontier marked",
            access: Access::Public,
            params: PRICE_SHARE_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/shifts",
            summary: "Significant share gainers and losers per task, with catalog price changes",
            access: Access::Public,
            params: SHIFTS_PARAMS,
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/snapshots",
            summary: "Weekly Parquet snapshots: week, revision, rows, bytes, sha256, url",
            access: Access::Public,
            params: &[],
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/v1/snapshots/{file}",
            summary: "Download one snapshot (`2026-W47.r1.parquet`): ETag, Range, If-None-Match",
            access: Access::Public,
            params: &[],
            body: None,
            ok: json!({ "application/vnd.apache.parquet": { "schema": { "type": "string", "format": "binary" } } }),
        },
    ]
}

/// Ingest in every format, and admin SQL.
fn write_endpoints() -> Vec<Endpoint> {
    let json_or_ndjson = |item: Value| {
        json!({
            "application/json": { "schema": { "oneOf": [ item.clone(), { "type": "array", "items": item } ] } },
            "application/x-ndjson": { "schema": { "type": "string" } }
        })
    };
    vec![
        Endpoint {
            method: "post",
            path: "/v1/events",
            summary: "Ingest schema-v1 events (NDJSON or JSON; gzip/zstd)",
            access: Access::Ingest,
            params: &[],
            body: Some(json_or_ndjson(event_schema())),
            ok: ingest_answer(),
        },
        Endpoint {
            method: "post",
            path: "/v1/traces",
            summary: "OTLP/HTTP traces; spans with GenAI attributes become events",
            access: Access::Ingest,
            params: &[],
            body: Some(json!({
                "application/x-protobuf": { "schema": { "type": "string", "format": "binary" } },
                "application/json": { "schema": { "type": "object", "properties": {
                    "resourceSpans": { "type": "array", "items": { "type": "object" } } } } }
            })),
            ok: json!({
                "application/x-protobuf": { "schema": { "type": "string", "format": "binary" } },
                "application/json": { "schema": { "type": "object", "properties": {
                    "partialSuccess": { "type": "object", "properties": {
                        "rejectedSpans": { "type": ["string", "integer"] },
                        "errorMessage": { "type": "string" } } } } } }
            }),
        },
        Endpoint {
            method: "post",
            path: "/v1/litellm",
            summary: "LiteLLM StandardLoggingPayloads (generic HTTP logging callback)",
            access: Access::Ingest,
            params: &[],
            body: Some(json_or_ndjson(object())),
            ok: ingest_answer(),
        },
        Endpoint {
            method: "post",
            path: "/v1/openrouter",
            summary: "OpenRouter generation stats (`/api/v1/generation` data objects)",
            access: Access::Ingest,
            params: &[],
            body: Some(json_or_ndjson(object())),
            ok: ingest_answer(),
        },
        Endpoint {
            method: "post",
            path: "/v1/sql",
            summary: "Read-only SQL over table `events` (admin; memory, time and row caps)",
            access: Access::Admin,
            params: &[],
            body: Some(json!({
                "application/json": { "schema": { "type": "object", "required": ["sql"],
                    "additionalProperties": false,
                    "properties": { "sql": { "type": "string" } } } },
                "text/plain": { "schema": { "type": "string" } }
            })),
            ok: json_content(json!({ "type": "object", "properties": {
                "columns": { "type": "array" }, "rows": { "type": "array" },
                "row_count": { "type": "integer" }, "truncated": { "type": "boolean" } } })),
        },
    ]
}

/// The API description, health and metrics.
fn ops_endpoints() -> Vec<Endpoint> {
    vec![
        Endpoint {
            method: "get",
            path: "/v1/openapi.json",
            summary: "This document",
            access: Access::Public,
            params: &[],
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/healthz",
            summary: "Liveness",
            access: Access::Public,
            params: &[],
            body: None,
            ok: json_content(object()),
        },
        Endpoint {
            method: "get",
            path: "/metrics",
            summary: "Prometheus metrics",
            access: Access::Public,
            params: &[],
            body: None,
            ok: json!({ "text/plain": { "schema": { "type": "string" } } }),
        },
    ]
}

fn error_response(description: &str) -> Value {
    json!({ "description": description,
            "content": json_content(json!({ "$ref": "#/components/schemas/Error" })) })
}

/// The OpenAPI document.
pub fn spec() -> Value {
    let mut paths: Map<String, Value> = Map::new();
    for e in endpoints() {
        let params: Vec<Value> = e
            .params
            .iter()
            .map(|name| {
                let (schema, description) =
                    param(name).unwrap_or((json!({"type": "string"}), "undocumented"));
                json!({ "name": name, "in": "query", "required": false,
                        "schema": schema, "description": description })
            })
            .collect();
        // Path templates (`/v1/snapshots/{file}`) declare their segments as path parameters.
        let mut params = params;
        let mut rest = e.path;
        while let Some(open) = rest.find('{') {
            let Some(close) = rest[open..].find('}') else {
                break;
            };
            let name = &rest[open + 1..open + close];
            params.push(json!({ "name": name, "in": "path", "required": true,
                                "schema": { "type": "string" } }));
            rest = &rest[open + close..];
        }
        let mut responses = Map::new();
        if e.path.contains('{') {
            responses.insert("404".into(), error_response("no such resource"));
        }
        responses.insert(
            "200".into(),
            json!({ "description": "success", "content": e.ok }),
        );
        if !e.params.is_empty() || e.body.is_some() {
            responses.insert("400".into(), error_response("invalid request"));
        }
        if e.body.is_some() {
            responses.insert("413".into(), error_response("body over the size limit"));
            responses.insert(
                "415".into(),
                error_response("unsupported content type or encoding"),
            );
        }
        let mut op = json!({
            "summary": e.summary,
            "operationId": format!("{}{}", e.method, e.path.replace(['/', '.', '{', '}'], "_")),
            "parameters": params,
        });
        match e.access {
            Access::Public => {
                if e.path.starts_with("/v1/") {
                    responses.insert(
                        "429".into(),
                        error_response("rate limited; see Retry-After"),
                    );
                }
                op["security"] = json!([]);
            }
            Access::Ingest | Access::Admin => {
                responses.insert(
                    "401".into(),
                    error_response("missing, unknown or revoked key"),
                );
                responses.insert("403".into(), error_response("key not allowed here"));
                op["security"] = json!([{ "bearer": [] }]);
            }
        }
        responses.insert(
            "503".into(),
            error_response("busy or timed out; see Retry-After"),
        );
        if let Some(body) = e.body {
            op["requestBody"] = json!({ "required": true, "content": body });
        }
        op["responses"] = Value::Object(responses);
        let entry = paths.entry(e.path).or_insert_with(|| json!({}));
        entry[e.method] = op;
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "modelshare",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Open usage analytics and revealed-preference index for LLM routing traffic."
        },
        "paths": paths,
        "components": {
            "securitySchemes": { "bearer": { "type": "http", "scheme": "bearer" } },
            "schemas": { "Error": {
                "type": "object", "required": ["error"],
                "properties": { "error": { "type": "object", "required": ["code", "message"],
                    "properties": { "code": { "type": "string" }, "message": { "type": "string" } } } }
            } }
        }
    })
}

/// `GET /v1/openapi.json`
pub async fn get_openapi() -> axum::Json<Value> {
    axum::Json(spec())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn every_parameter_is_described() {
        for e in endpoints() {
            for p in e.params {
                assert!(
                    param(p).is_some(),
                    "{} {}: parameter {p} has no description",
                    e.method,
                    e.path
                );
            }
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
