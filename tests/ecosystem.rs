//! End-to-end tests of the ecosystem formats, keys and limits against the real binary over HTTP: OTLP traces (protobuf, JSON,
//! gzip), LiteLLM and OpenRouter payloads mapped exactly; keys (wrong, other app, revoked,
//! non-loopback without keys); admin SQL fences; body, time and rate limits; CORS; OpenAPI.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, keys};
use modelshare_formats::otlp_proto::{
    AnyValue, ArrayValue, ExportTraceServiceRequest, ExportTraceServiceResponse, KeyValue,
    Resource, ResourceSpans, ScopeSpans, Span, Status, any_value,
};
use prost::Message;
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::process::Command;
use std::time::Duration;

/// 2026-11-20T10:00:00Z in nanoseconds.
const T0_NS: u64 = 1_795_168_800_000_000_000;

fn kv(key: &str, v: any_value::Value) -> KeyValue {
    KeyValue {
        key: key.into(),
        value: Some(AnyValue { value: Some(v) }),
    }
}
fn s(key: &str, v: &str) -> KeyValue {
    kv(key, any_value::Value::StringValue(v.into()))
}
fn i(key: &str, v: i64) -> KeyValue {
    kv(key, any_value::Value::IntValue(v))
}

/// Two GenAI spans (one failed with a timeout) and one plain HTTP span.
fn trace_request() -> ExportTraceServiceRequest {
    let genai = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![1; 8],
        name: "chat gpt-4o".into(),
        start_time_unix_nano: T0_NS,
        end_time_unix_nano: T0_NS + 1_500_000_000,
        attributes: vec![
            s("gen_ai.operation.name", "chat"),
            s("gen_ai.provider.name", "openai"),
            s("gen_ai.request.model", "gpt-4o"),
            s("gen_ai.response.model", "gpt-4o-2024-08-06"),
            i("gen_ai.usage.input_tokens", 1200),
            i("gen_ai.usage.output_tokens", 345),
            i("gen_ai.usage.cache_read.input_tokens", 200),
            kv(
                "gen_ai.response.finish_reasons",
                any_value::Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(any_value::Value::StringValue("length".into())),
                    }],
                }),
            ),
            kv("gen_ai.usage.cost", any_value::Value::DoubleValue(0.0123)),
            s("modelshare.task", "programming"),
        ],
        status: None,
        ..Span::default()
    };
    let failed = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![2; 8],
        name: "chat claude".into(),
        start_time_unix_nano: T0_NS + 60_000_000_000,
        end_time_unix_nano: T0_NS + 90_000_000_000,
        attributes: vec![
            s("gen_ai.system", "anthropic"),
            s("gen_ai.request.model", "claude-sonnet-4.5"),
            i("gen_ai.usage.input_tokens", 4000),
            i("gen_ai.usage.output_tokens", 0),
            s("error.type", "TimeoutError"),
        ],
        status: Some(Status {
            message: "upstream timed out".into(),
            code: 2,
        }),
        ..Span::default()
    };
    let plain = Span {
        trace_id: vec![0xab; 16],
        span_id: vec![3; 8],
        name: "GET /health".into(),
        start_time_unix_nano: T0_NS,
        end_time_unix_nano: T0_NS + 1_000_000,
        attributes: vec![s("http.request.method", "GET")],
        status: None,
        ..Span::default()
    };
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![
                    s("service.name", "router"),
                    s("modelshare.app_id", "otel-app"),
                ],
                ..Resource::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans: vec![genai, failed, plain],
                ..ScopeSpans::default()
            }],
            ..ResourceSpans::default()
        }],
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

async fn post_raw(
    server: &Server,
    path: &str,
    content_type: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut req = server
        .client
        .post(format!("{}{path}", server.url))
        .header("content-type", content_type)
        .body(body);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

async fn post_json(
    server: &Server,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, Value) {
    let resp = post_raw(server, path, "application/json", headers, body.to_string()).await;
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

async fn sql(server: &Server, headers: &[(&str, &str)], query: &str) -> (u16, Value) {
    post_json(server, "/v1/sql", headers, &json!({ "sql": query })).await
}

const EVENT_COLUMNS: &str = "event_id, CAST(ts AS VARCHAR) AS ts, app_id, task, model_requested, \
    model, provider, input_tokens, output_tokens, reasoning_tokens, cached_tokens, \
    CAST(cost_usd * 1000000 AS BIGINT) AS cost_usd_micros, \
    latency_ms, ttft_ms, status, finish_reason, attempt, trace_id, step";

#[tokio::test]
async fn otlp_protobuf_json_and_gzip_are_mapped_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    // Protobuf, gzip.
    let body = gzip(&trace_request().encode_to_vec());
    let resp = post_raw(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        &[("content-encoding", "gzip")],
        body,
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["content-type"].to_str().unwrap(),
        "application/x-protobuf"
    );
    assert_eq!(resp.headers()["x-modelshare-accepted"], "2");
    assert_eq!(resp.headers()["x-modelshare-ignored"], "1");
    let answer = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap()).unwrap();
    let partial = answer.partial_success.unwrap();
    assert_eq!(partial.rejected_spans, 0);
    assert_eq!(
        partial.error_message,
        "1 spans without gen_ai model attributes ignored"
    );

    let got = server
        .sql_rows(
            &[],
            &format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY ts"),
        )
        .await;
    let trace = "ab".repeat(16);
    assert_eq!(
        got,
        vec![
            json!({"event_id": format!("{trace}-0101010101010101"), "ts": "2026-11-20T10:00:00Z",
                   "app_id": "otel-app", "task": "programming", "model_requested": "gpt-4o",
                   "model": "openai/gpt-4o", "provider": "openai", "input_tokens": 1200,
                   "output_tokens": 345, "reasoning_tokens": 0, "cached_tokens": 200,
                   "cost_usd_micros": 12300, "latency_ms": 1500, "ttft_ms": 0, "status": "ok",
                   "finish_reason": "length", "attempt": 0, "trace_id": trace, "step": 0}),
            json!({"event_id": format!("{trace}-0202020202020202"), "ts": "2026-11-20T10:01:00Z",
                   "app_id": "otel-app", "task": "other", "model_requested": "claude-sonnet-4.5",
                   "model": "anthropic/claude-sonnet-4.5", "provider": "anthropic",
                   "input_tokens": 4000, "output_tokens": 0, "reasoning_tokens": 0,
                   "cached_tokens": 0, "cost_usd_micros": 0, "latency_ms": 30000, "ttft_ms": 0,
                   "status": "timeout", "attempt": 0, "trace_id": trace, "step": 1}),
        ]
    );

    // The same spans as OTLP/JSON (hex ids, 64-bit integers as strings) are duplicates; a new
    // span with integer-valued numbers is stored.
    let span_json = |span_id: &str, start: &str| {
        json!({
            "traceId": trace, "spanId": span_id, "name": "chat",
            "startTimeUnixNano": start, "endTimeUnixNano": (T0_NS + 2_000_000_000).to_string(),
            "attributes": [
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.provider.name", "value": {"stringValue": "openai"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"intValue": "10"}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": 20}}
            ],
            "status": {"code": 1}
        })
    };
    let json_body = json!({"resourceSpans": [{
        "resource": {"attributes": [{"key": "modelshare.app_id", "value": {"stringValue": "otel-app"}}]},
        "scopeSpans": [{"scope": {"name": "x"}, "spans": [
            span_json("0101010101010101", &T0_NS.to_string()),
            span_json("0404040404040404", &T0_NS.to_string()),
            {"traceId": trace, "spanId": "0505050505050505", "name": "db", "startTimeUnixNano": T0_NS}
        ]}]
    }]});
    let resp = post_raw(
        &server,
        "/v1/traces",
        "application/json",
        &[("content-encoding", "gzip")],
        gzip(json_body.to_string().as_bytes()),
    )
    .await;
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["x-modelshare-duplicates"], "1");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(
        body,
        json!({"partialSuccess": {"rejectedSpans": "0",
            "errorMessage": "1 spans without gen_ai model attributes ignored"}})
    );
    let got = server.sql_rows(
        &[],
        "SELECT input_tokens, output_tokens, latency_ms, step FROM events WHERE event_id LIKE '%-0404040404040404'",
    )
    .await;
    // Its step: second of the request's two LLM spans of the trace (same start, span id order).
    assert_eq!(
        got,
        vec![json!({"input_tokens": 10, "output_tokens": 20, "latency_ms": 2000, "step": 1})]
    );

    // Ignored spans are counted on /metrics.
    let (_, metrics) = server.get("/metrics").await;
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("modelshare_telemetry_ignored_total 2\n"),
        "{metrics}"
    );
    server.stop();
}

#[tokio::test]
async fn otlp_bad_bodies_and_rejected_spans() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &["--max-body-bytes", "4096"]);
    // Field 1 claims 100 bytes that are not there.
    let resp = post_raw(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        &[],
        vec![0x0a, 100, 1, 2, 3],
    )
    .await;
    assert_eq!(resp.status(), 400);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "bad_request");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("body is not a valid OTLP protobuf ExportTraceServiceRequest"),
        "{body}"
    );
    let (status, body) = post_json(&server, "/v1/traces", &[], &json!({"resourceSpans": 7})).await;
    assert_eq!(status, 400, "{body}");
    let resp = post_raw(&server, "/v1/traces", "text/plain", &[], "hi").await;
    assert_eq!(resp.status(), 415);
    // Over the body limit.
    let resp = post_raw(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        &[],
        vec![0u8; 5000],
    )
    .await;
    assert_eq!(resp.status(), 413);
    // A GenAI span without a token count or an app is rejected, and says why.
    let mut req = trace_request();
    req.resource_spans[0].resource = None;
    req.resource_spans[0].scope_spans[0].spans[0]
        .attributes
        .retain(|a| a.key != "gen_ai.usage.output_tokens");
    let resp = post_raw(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        &[],
        req.encode_to_vec(),
    )
    .await;
    assert_eq!(resp.status(), 200);
    let partial = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap())
        .unwrap()
        .partial_success
        .unwrap();
    assert_eq!(partial.rejected_spans, 2);
    assert!(
        partial
            .error_message
            .starts_with("2 GenAI spans rejected (span 0: no app id: send with an ingest key"),
        "{}",
        partial.error_message
    );
    server.stop();
}

#[tokio::test]
async fn litellm_and_openrouter_payloads_are_mapped_exactly() {
    let dir = tempfile::tempdir().unwrap();
    let key = keys(dir.path(), &["create", "--app", "gw-app"]);
    let admin = keys(dir.path(), &["create", "--app", "ops", "--admin"]);
    let server = Server::start(dir.path(), &[]);
    let auth = format!("Bearer {key}");
    let admin_auth = format!("Bearer {admin}");
    let fixture: Value =
        serde_json::from_str(include_str!("fixtures/litellm-generic-api.json")).unwrap();
    let (status, body) = post_json(
        &server,
        "/v1/litellm",
        &[("authorization", &auth)],
        &fixture,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 2, "rejected": 0, "duplicates": 0, "ignored": 0, "errors": []})
    );
    let openrouter = json!([
        {"data": {"id": "gen-1", "created_at": "2026-11-20T12:00:00.500000+00:00",
          "model": "anthropic/claude-sonnet-4.5", "provider_name": "Google Vertex",
          "router": "openrouter/auto", "total_cost": 0.0252, "latency": 4100.4,
          "generation_time": 3900, "finish_reason": "stop", "tokens_prompt": 5000,
          "tokens_completion": 600, "native_tokens_prompt": 5200, "native_tokens_completion": 640,
          "native_tokens_reasoning": 100, "native_tokens_cached": 1000, "app_id": 12345,
          "cancelled": false, "streamed": true}},
        {"id": "gen-2", "createdAt": "2026-11-20T12:00:01Z", "model": "openai/gpt-4o",
         "providerName": "Azure", "totalCost": 0.001, "latency": 800, "tokensPrompt": 10,
         "tokensCompletion": 5, "cancelled": true},
        {"id": "gen-3", "created_at": "2026-11-20T12:00:02Z", "model": "openai/gpt-4o",
         "provider_name": "OpenAI", "tokens_prompt": -1, "tokens_completion": 5}
    ]);
    let (status, body) = post_json(
        &server,
        "/v1/openrouter",
        &[("authorization", &auth)],
        &openrouter,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body,
        json!({"accepted": 2, "rejected": 1, "duplicates": 0, "ignored": 0, "errors": [
            {"index": 2, "message": "field `input_tokens`: -1 is outside 0..=4294967295"}]})
    );
    let got = server
        .sql_rows(
            &[("authorization", &admin_auth)],
            &format!("SELECT {EVENT_COLUMNS} FROM events ORDER BY event_id"),
        )
        .await;
    assert_eq!(
        got,
        vec![
            json!({"event_id": "chatcmpl-LITELLM-1", "ts": "2026-11-25T15:48:33.265070Z",
                   "app_id": "gw-app", "task": "programming", "model_requested": "gpt-4o",
                   "model": "openai/gpt-4o", "provider": "openai", "input_tokens": 10,
                   "output_tokens": 20, "reasoning_tokens": 0, "cached_tokens": 0,
                   "cost_usd_micros": 225, "latency_ms": 371, "ttft_ms": 371, "status": "ok",
                   "finish_reason": "stop", "attempt": 0,
                   "trace_id": "63fc75a8-3157-4a62-ad8f-fbb0633ce94c"}),
            json!({"event_id": "chatcmpl-LITELLM-2", "ts": "2026-11-25T15:48:34Z",
                   "app_id": "gw-app", "task": "other", "model_requested": "my-alias",
                   "model": "anthropic/claude-sonnet-4.5", "provider": "anthropic",
                   "input_tokens": 300, "output_tokens": 0, "reasoning_tokens": 0,
                   "cached_tokens": 0, "cost_usd_micros": 0, "latency_ms": 500, "ttft_ms": 0,
                   "status": "rate_limited", "attempt": 0,
                   "trace_id": "e5cedd78-89a1-4322-a666-5c524d8ea58f"}),
            json!({"event_id": "gen-1", "ts": "2026-11-20T12:00:00.500Z", "app_id": "gw-app",
                   "task": "other", "model_requested": "openrouter/auto",
                   "model": "anthropic/claude-sonnet-4.5", "provider": "google-vertex",
                   "input_tokens": 5200, "output_tokens": 640, "reasoning_tokens": 100,
                   "cached_tokens": 1000, "cost_usd_micros": 25200, "latency_ms": 4100,
                   "ttft_ms": 0, "status": "ok", "finish_reason": "stop", "attempt": 0}),
            json!({"event_id": "gen-2", "ts": "2026-11-20T12:00:01Z", "app_id": "gw-app",
                   "task": "other", "model_requested": "openai/gpt-4o", "model": "openai/gpt-4o",
                   "provider": "azure", "input_tokens": 10, "output_tokens": 5,
                   "reasoning_tokens": 0, "cached_tokens": 0, "cost_usd_micros": 1000,
                   "latency_ms": 800, "ttft_ms": 0, "status": "cancelled", "attempt": 0}),
        ]
    );
    server.stop();
}

#[tokio::test]
async fn keys_bind_apps_and_revocation_takes_effect_without_restart() {
    let dir = tempfile::tempdir().unwrap();
    let key_a = keys(dir.path(), &["create", "--app", "app-a"]);
    let server = Server::start(dir.path(), &[]);
    let ev = |id: &str, app: &str| {
        common::event(id, "2026-11-20T10:00:00Z", app, "openai/gpt-4o", 10, 5, 0.0)
    };
    let body = common::ndjson(&[ev("k1", "app-a"), ev("k2", "app-b")]);

    // No key, although keys exist: 401 with a challenge.
    let resp = post_raw(
        &server,
        "/v1/events",
        "application/x-ndjson",
        &[],
        body.clone(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"modelshare\""
    );
    // Wrong key.
    let resp = post_raw(
        &server,
        "/v1/events",
        "application/x-ndjson",
        &[("authorization", "Bearer msk_0000")],
        body.clone(),
    )
    .await;
    assert_eq!(resp.status(), 401);
    assert_eq!(
        resp.headers()["www-authenticate"],
        "Bearer realm=\"modelshare\""
    );
    let err: Value = resp.json().await.unwrap();
    assert_eq!(
        err,
        json!({"error": {"code": "unauthorized", "message": "unknown key"}})
    );
    // The key of app-a cannot write as app-b: that event alone is rejected.
    let auth_a = format!("Bearer {key_a}");
    let (status, answer) = server
        .post_with(
            "application/x-ndjson",
            &[("authorization", &auth_a)],
            body.clone(),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        answer,
        json!({"accepted": 1, "rejected": 1, "duplicates": 0, "errors": [
            {"index": 1, "message": "app_id \"app-b\" does not match the ingest key's app \"app-a\""}]})
    );
    // Formats without an app id take the key's; one that names another app is rejected.
    let gen_claim = json!([{"id": "or-1", "created_at": "2026-11-20T12:00:00Z",
        "model": "openai/gpt-4o", "tokens_prompt": 1, "tokens_completion": 1}]);
    let (status, answer) = post_json(
        &server,
        "/v1/openrouter",
        &[("authorization", &auth_a)],
        &gen_claim,
    )
    .await;
    assert_eq!((status, answer["accepted"].clone()), (200, json!(1)));
    let mut spans = trace_request();
    spans.resource_spans[0].resource = Some(Resource {
        attributes: vec![s("modelshare.app_id", "app-b")],
        ..Resource::default()
    });
    let resp = post_raw(
        &server,
        "/v1/traces",
        "application/x-protobuf",
        &[("authorization", &auth_a)],
        spans.encode_to_vec(),
    )
    .await;
    assert_eq!(resp.headers()["x-modelshare-rejected"], "2");
    let partial = ExportTraceServiceResponse::decode(resp.bytes().await.unwrap())
        .unwrap()
        .partial_success
        .unwrap();
    assert!(
        partial
            .error_message
            .contains("app_id \"app-b\" does not match the ingest key's app \"app-a\""),
        "{}",
        partial.error_message
    );
    // An ingest key is not an admin key.
    let (status, err) = sql(&server, &[("authorization", &auth_a)], "SELECT 1").await;
    assert_eq!(
        (status, err["error"]["code"].clone()),
        (403, json!("forbidden"))
    );
    // Revoked (the running server re-reads the key file).
    let list = keys(dir.path(), &["list"]);
    let id = list
        .lines()
        .nth(1)
        .unwrap()
        .split_whitespace()
        .next()
        .unwrap()
        .to_owned();
    assert!(keys(dir.path(), &["revoke", &id]).starts_with(&format!("revoked key {id}")));
    let resp = post_raw(
        &server,
        "/v1/events",
        "application/x-ndjson",
        &[("authorization", &auth_a)],
        body,
    )
    .await;
    assert_eq!(resp.status(), 401);
    let err: Value = resp.json().await.unwrap();
    assert_eq!(err["error"]["message"], "this key has been revoked");
    // Public reads stay open.
    let (status, _) = server.get("/v1/leaderboard?date=2026-11-20").await;
    assert_eq!(status, 200);
    server.stop();
}

/// A non-loopback IPv4 address of this machine.
fn non_loopback_ipv4() -> String {
    let out = Command::new("ip").args(["-4", "-o", "addr"]).output();
    let text = out
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    for line in text.lines() {
        let mut words = line.split_whitespace();
        let (Some(_), Some(dev)) = (words.next(), words.next()) else {
            continue;
        };
        if dev == "lo" {
            continue;
        }
        if let Some(addr) = words.skip_while(|w| *w != "inet").nth(1) {
            return addr.split('/').next().unwrap().to_owned();
        }
    }
    panic!("this machine has no non-loopback IPv4 address (`ip -4 -o addr`): {text}");
}

#[tokio::test]
async fn without_keys_only_loopback_may_ingest() {
    let dir = tempfile::tempdir().unwrap();
    // On a non-loopback listener loopback trust is off unless asked for.
    let server = Server::start_on("0.0.0.0:0", dir.path(), &["--trust-loopback"]);
    let port = server.port();
    let ip = non_loopback_ipv4();
    let client = reqwest::Client::new();
    let ev = common::event(
        "n1",
        "2026-11-20T10:00:00Z",
        "app-1",
        "openai/gpt-4o",
        1,
        1,
        0.0,
    );
    let send = |host: String| {
        client
            .post(format!("http://{host}:{port}/v1/events"))
            .header("content-type", "application/json")
            .body(ev.to_string())
            .send()
    };
    let resp = send(ip.clone()).await.unwrap();
    assert_eq!(resp.status(), 403);
    let err: Value = resp.json().await.unwrap();
    assert!(
        err["error"]["message"]
            .as_str()
            .unwrap()
            .contains("modelshare keys create --app APP"),
        "{err}"
    );
    let resp = client
        .post(format!("http://{ip}:{port}/v1/sql"))
        .header("content-type", "application/json")
        .body(r#"{"sql":"SELECT 1"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 403);
    // Reads from the same address are open; loopback may ingest.
    let resp = client
        .get(format!("http://{ip}:{port}/v1/tasks?date=2026-11-20"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let resp = send("127.0.0.1".into()).await.unwrap();
    assert_eq!(resp.status(), 200);
    // A reverse proxy on the same host connects from loopback on behalf of someone else.
    for header in ["x-forwarded-for", "forwarded", "x-real-ip"] {
        let resp = client
            .post(format!("http://127.0.0.1:{port}/v1/sql"))
            .header("content-type", "application/json")
            .header(header, "203.0.113.9")
            .body(r#"{"sql":"SELECT 1"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 403, "{header}");
    }
    server.stop();
}

#[tokio::test]
async fn admin_sql_is_read_only_and_capped() {
    let dir = tempfile::tempdir().unwrap();
    let admin = keys(dir.path(), &["create", "--app", "ops", "--admin"]);
    let server = Server::start(
        dir.path(),
        &[
            "--sql-max-rows",
            "5",
            "--sql-memory-mb",
            "1",
            "--sql-timeout-secs",
            "1",
        ],
    );
    let auth = format!("Bearer {admin}");
    let h = [("authorization", auth.as_str())];
    let (status, _) = server
        .post_with(
            "application/x-ndjson",
            &[("authorization", &auth)],
            common::ndjson(&[common::event(
                "s1",
                "2026-11-20T10:00:00Z",
                "ops",
                "openai/gpt-4o",
                7,
                3,
                0.5,
            )]),
        )
        .await;
    assert_eq!(status, 200);
    let (status, body) = sql(&server, &h, "SELECT app_id, input_tokens FROM events").await;
    assert_eq!(status, 200);
    assert_eq!(
        body,
        json!({"columns": [{"name": "app_id", "type": "Utf8"}, {"name": "input_tokens", "type": "UInt32"}],
               "rows": [{"app_id": "ops", "input_tokens": 7}], "row_count": 1, "truncated": false})
    );
    // Writes, DDL, statements and file access are refused.
    let escape = dir.path().join("escape.csv");
    let escape = escape.display();
    for bad in [
        "INSERT INTO events SELECT * FROM events".to_owned(),
        "CREATE TABLE t AS SELECT 1".to_owned(),
        "DROP VIEW events".to_owned(),
        format!("COPY (SELECT * FROM events) TO '{escape}'"),
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'".to_owned(),
        "SELECT * FROM '/etc/passwd'".to_owned(),
        "SELECT * FROM read_csv('/etc/passwd')".to_owned(),
        "SELECT * FROM read_parquet('/etc/passwd')".to_owned(),
        "SET datafusion.execution.batch_size = 1".to_owned(),
        "SELECT 1; DROP VIEW events".to_owned(),
    ] {
        let (status, body) = sql(&server, &h, &bad).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"]["code"], "bad_request", "{bad}: {body}");
    }
    assert!(!dir.path().join("escape.csv").exists());
    // Row cap.
    let (status, body) = sql(&server, &h, "SELECT value FROM generate_series(1, 100000)").await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        (body["row_count"].clone(), body["truncated"].clone()),
        (json!(5), json!(true))
    );
    assert_eq!(body["rows"][4], json!({"value": 5}));
    // Memory cap (1 MiB): a large sort cannot fit.
    let (status, body) = sql(
        &server,
        &h,
        "SELECT value FROM generate_series(1, 3000000) ORDER BY value DESC LIMIT 1 OFFSET 2000000",
    )
    .await;
    assert_eq!(status, 400, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("Resources exhausted"),
        "{body}"
    );
    // Time cap (1 s).
    let (status, body) = sql(
        &server,
        &h,
        "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b WHERE a.value + b.value = 7",
    )
    .await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["error"]["code"], "query_timeout");
    server.stop();
}

#[tokio::test]
async fn slow_and_oversized_requests_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--request-timeout-secs", "1", "--max-body-bytes", "1000"],
    );
    let (status, body) = server.post("application/x-ndjson", "x".repeat(2000)).await;
    assert_eq!(
        (status, body["error"]["code"].clone()),
        (413, json!("payload_too_large"))
    );
    // Announce 100 bytes, send 10, stall: the server answers 408 after its time limit.
    let addr = server.url.trim_start_matches("http://").to_owned();
    let answer = tokio::task::spawn_blocking(move || {
        let mut conn = std::net::TcpStream::connect(addr).unwrap();
        conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        write!(
            conn,
            "POST /v1/events HTTP/1.1\r\nhost: x\r\ncontent-type: application/x-ndjson\r\ncontent-length: 100\r\n\r\n{{\"event_id\""
        )
        .unwrap();
        let mut out = String::new();
        let _ = conn.read_to_string(&mut out);
        out
    })
    .await
    .unwrap();
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer}");
    assert!(
        answer.contains(
            r#"{"error":{"code":"request_timeout","message":"the request took longer than 1 s"}}"#
        ),
        "{answer}"
    );
    server.stop();
}

#[tokio::test]
async fn public_reads_are_rate_limited_per_client() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--rate-limit-rps", "0.01", "--rate-limit-burst", "2"],
    );
    for _ in 0..2 {
        let (status, _) = server.get("/v1/tasks?date=2026-11-20").await;
        assert_eq!(status, 200);
    }
    let resp = server
        .client
        .get(format!("{}/v1/leaderboard", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 429);
    assert_eq!(resp.headers()["retry-after"], "100");
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limited");
    // Health, metrics and ingest are not public reads.
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    let (status, metrics) = server.get("/metrics").await;
    assert_eq!(status, 200);
    assert!(
        metrics
            .as_str()
            .unwrap()
            .contains("modelshare_rate_limited_total 1\n")
    );
    let (status, _) = server
        .ndjson(&[common::event(
            "r1",
            "2026-11-20T10:00:00Z",
            "a",
            "openai/gpt-4o",
            1,
            1,
            0.0,
        )])
        .await;
    assert_eq!(status, 200);
    server.stop();
}

#[tokio::test]
async fn cors_and_openapi() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let preflight = |path: &str, method: &str| {
        server
            .client
            .request(reqwest::Method::OPTIONS, format!("{}{path}", server.url))
            .header("origin", "https://example.org")
            .header("access-control-request-method", method)
            .send()
    };
    let resp = preflight("/v1/leaderboard", "GET").await.unwrap();
    assert_eq!(resp.status(), 204);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");
    assert_eq!(
        resp.headers()["access-control-allow-methods"],
        "GET, HEAD, OPTIONS"
    );
    let resp = preflight("/v1/events", "POST").await.unwrap();
    assert_eq!(resp.status(), 403);
    let resp = server
        .client
        .get(format!("{}/v1/tasks?date=2026-11-20", server.url))
        .header("origin", "https://example.org")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.headers()["access-control-allow-origin"], "*");

    let (status, spec) = server.get("/v1/openapi.json").await;
    assert_eq!(status, 200);
    assert_eq!(spec["openapi"], "3.1.0");
    let mut paths: Vec<(String, String)> = spec["paths"]
        .as_object()
        .unwrap()
        .iter()
        .flat_map(|(p, ops)| {
            ops.as_object()
                .unwrap()
                .keys()
                .map(move |m| (m.clone(), p.clone()))
        })
        .collect();
    paths.sort();
    let want: Vec<(String, String)> = [
        ("delete", "/v1/admin/apps/{app_id}"),
        ("get", "/feeds/shifts.atom"),
        ("get", "/healthz"),
        ("get", "/metrics"),
        ("get", "/v1/agents"),
        ("get", "/v1/apps"),
        ("get", "/v1/authors"),
        ("get", "/v1/incidents"),
        ("get", "/v1/index"),
        ("get", "/v1/leaderboard"),
        ("get", "/v1/openapi.json"),
        ("get", "/v1/price-share"),
        ("get", "/v1/providers"),
        ("get", "/v1/retention"),
        ("get", "/v1/share"),
        ("get", "/v1/shifts"),
        ("get", "/v1/snapshots"),
        ("get", "/v1/snapshots/{file}"),
        ("get", "/v1/switches"),
        ("get", "/v1/tasks"),
        ("post", "/v1/events"),
        ("post", "/v1/litellm"),
        ("post", "/v1/openrouter"),
        ("post", "/v1/sql"),
        ("post", "/v1/traces"),
        ("put", "/v1/admin/apps/{app_id}"),
    ]
    .iter()
    .map(|(m, p)| (m.to_string(), p.to_string()))
    .collect();
    assert_eq!(paths, want);
    // Every documented route exists (a missing one would answer 404 not_found).
    for (method, path) in &paths {
        if path.contains('{') {
            continue; // templated: exercised by the snapshot and public app tests
        }
        let resp = server
            .client
            .request(method.parse().unwrap(), format!("{}{path}", server.url))
            .send()
            .await
            .unwrap();
        assert_ne!(resp.status(), 404, "{method} {path}");
    }
    assert_eq!(
        spec["paths"]["/v1/leaderboard"]["get"]["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["period", "date", "task", "context", "by", "limit"]
    );
    server.stop();
}
