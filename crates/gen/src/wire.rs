//! Events in the JSON wire format of DESIGN.md (what `POST /v1/events` accepts): `ts` as an
//! RFC 3339 string with microseconds, `cost_usd` in dollars.

use modelshare_event::Event;
use serde::Serialize;

#[derive(Serialize)]
struct Wire<'a> {
    event_id: &'a str,
    ts: String,
    app_id: &'a str,
    task: &'a str,
    model_requested: &'a str,
    model: &'a str,
    provider: &'a str,
    input_tokens: u32,
    output_tokens: u32,
    reasoning_tokens: u32,
    cached_tokens: u32,
    /// Dollars; micro-USD / 1e6 prints as the shortest decimal that parses back to the same
    /// micro-USD after the server's `round(usd * 1e6)`.
    cost_usd: f64,
    latency_ms: u32,
    ttft_ms: u32,
    status: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    finish_reason: Option<&'a str>,
    attempt: u8,
    #[serde(skip_serializing_if = "Option::is_none")]
    trace_id: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    step: Option<u32>,
}

/// One event as a single-line JSON object (no trailing newline).
pub fn to_json(e: &Event) -> String {
    let ts =
        e.ts.to_datetime()
            .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
            .unwrap_or_default();
    let wire = Wire {
        event_id: &e.event_id,
        ts,
        app_id: &e.app_id,
        task: e.task.as_str(),
        model_requested: &e.model_requested,
        model: e.model.as_str(),
        provider: &e.provider,
        input_tokens: e.input_tokens,
        output_tokens: e.output_tokens,
        reasoning_tokens: e.reasoning_tokens,
        cached_tokens: e.cached_tokens,
        cost_usd: e.cost.as_usd(),
        latency_ms: e.latency_ms,
        ttft_ms: e.ttft_ms,
        status: e.status.as_str(),
        finish_reason: e.finish_reason.as_deref(),
        attempt: e.attempt,
        trace_id: e.trace_id.as_deref(),
        step: e.step,
    };
    // Serialising plain strings and numbers into a String cannot fail.
    serde_json::to_string(&wire).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use modelshare_event::{MicroUsd, ModelSlug, Status, Task, Timestamp, Validator};

    fn sample() -> Event {
        Event {
            event_id: "gen-1795168800-0000000001a".into(),
            ts: Timestamp(1_795_168_800_123_456),
            app_id: "app-000123".into(),
            task: Task::Programming,
            model_requested: "openrouter/auto".into(),
            model: ModelSlug::parse("anthropic/claude-sonnet-4.5").unwrap(),
            provider: "amazon-bedrock".into(),
            input_tokens: 12_345,
            output_tokens: 678,
            reasoning_tokens: 100,
            cached_tokens: 10_000,
            cost: MicroUsd(20_207),
            latency_ms: 4_321,
            ttft_ms: 800,
            status: Status::Ok,
            finish_reason: Some("tool_calls".into()),
            attempt: 1,
            trace_id: None,
            step: None,
        }
    }

    #[test]
    fn the_server_parser_reads_back_the_same_event() {
        let v = Validator::at(Timestamp(1_795_600_000_000_000));
        let e = sample();
        let json = to_json(&e);
        assert!(
            json.contains("\"ts\":\"2026-11-20T10:00:00.123456Z\""),
            "{json}"
        );
        assert!(json.contains("\"cost_usd\":0.020207"), "{json}");
        assert_eq!(v.parse(json.as_bytes()).unwrap(), e);
        let mut failed = sample();
        failed.status = Status::Error;
        failed.finish_reason = None;
        failed.cost = MicroUsd(0);
        let json = to_json(&failed);
        assert!(!json.contains("finish_reason"));
        assert_eq!(v.parse(json.as_bytes()).unwrap(), failed);
    }
}
