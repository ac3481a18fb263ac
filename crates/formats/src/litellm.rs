//! LiteLLM's `StandardLoggingPayload` → events. Its generic HTTP logging callback
//! (`callbacks=["generic_api"]`, `GENERIC_LOGGER_ENDPOINT`) posts a JSON array of payloads by
//! default (`log_format` `json_array`; `ndjson` and `single` are read too).

use crate::FormatError;
use crate::common::{
    Context, Draft, Mapped, finish_reason, json_items, num_at, provider_id, resolve_slug,
    rfc3339_micros, str_at,
};
use serde_json::Value;

/// Maps a body of LiteLLM logging payloads.
pub fn from_json(body: &[u8], ctx: &Context) -> Result<Mapped, FormatError> {
    let mut out = Mapped::default();
    for (index, item) in json_items(body)?.iter().enumerate() {
        map_payload(item, ctx, index, &mut out);
    }
    Ok(out)
}

fn map_payload(p: &Value, ctx: &Context, index: usize, out: &mut Mapped) {
    let Some(model) = str_at(p, "model") else {
        out.reject(index, "missing `model`");
        return;
    };
    let provider = str_at(p, "custom_llm_provider");
    let slug = resolve_slug(model, provider);
    let mut d = Draft::default();
    d.set_opt("event_id", str_at(p, "id"));
    let start = p
        .get("startTime")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite());
    let end = p
        .get("endTime")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite());
    let first = p
        .get("completionStartTime")
        .and_then(Value::as_f64)
        .filter(|f| f.is_finite());
    match start.and_then(|s| rfc3339_micros((s * 1e6).round() as i64)) {
        Some(ts) => d.set("ts", ts),
        None => {
            out.reject(index, "missing or invalid `startTime` (epoch seconds)");
            return;
        }
    }
    if let (Some(s), Some(e)) = (start, end) {
        d.set("latency_ms", ((e - s) * 1000.0).round() as i64);
    }
    if let (Some(s), Some(f)) = (start, first) {
        d.set("ttft_ms", ((f - s) * 1000.0).round() as i64);
    }
    let author = slug.split('/').next().unwrap_or_default().to_owned();
    d.set("provider", provider.map_or(author, provider_id));
    d.set("model", slug);
    d.set(
        "model_requested",
        str_at(p, "model_group").unwrap_or(model).to_owned(),
    );
    d.set_opt("input_tokens", num_at(p, "prompt_tokens"));
    d.set_opt("output_tokens", num_at(p, "completion_tokens"));
    let usage = p.get("response").and_then(|r| r.get("usage"));
    d.set_opt(
        "cached_tokens",
        usage
            .and_then(|u| u.get("prompt_tokens_details"))
            .and_then(|u| num_at(u, "cached_tokens"))
            .filter(|v| !v.is_null()),
    );
    d.set_opt(
        "reasoning_tokens",
        usage
            .and_then(|u| u.get("completion_tokens_details"))
            .and_then(|u| num_at(u, "reasoning_tokens")),
    );
    d.set_opt("cost_usd", num_at(p, "response_cost"));
    d.set("status", status(p));
    d.set_opt(
        "finish_reason",
        p.get("response")
            .and_then(|r| r.get("choices"))
            .and_then(|c| c.get(0))
            .and_then(|c| str_at(c, "finish_reason"))
            .and_then(finish_reason),
    );
    // Through the proxy, request metadata lands in `requester_metadata`; the SDK drops it but
    // keeps `metadata={"tags": [...]}` as `request_tags`, so `task:<task>` / `app:<app>` tags work
    // from both.
    let meta = p.get("metadata");
    let requester = meta.and_then(|m| m.get("requester_metadata"));
    let tags: Vec<&str> = p
        .get("request_tags")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let pick = |key: &str| {
        requester
            .and_then(|r| str_at(r, key))
            .or_else(|| meta.and_then(|m| str_at(m, key)))
            .or_else(|| {
                let name = key.strip_suffix("_id").unwrap_or(key);
                tags.iter().find_map(|t| {
                    t.strip_prefix(name)
                        .and_then(|rest| rest.strip_prefix(':'))
                        .filter(|v| !v.is_empty())
                })
            })
    };
    d.set("task", pick("task").unwrap_or("other"));
    d.set_opt("app_id", pick("app_id"));
    let number = |key: &str| {
        requester
            .and_then(|r| num_at(r, key))
            .or_else(|| meta.and_then(|m| num_at(m, key)))
    };
    d.set_opt("attempt", number("attempt"));
    // The payload's own `trace_id` groups the calls of one agent run; the position comes from
    // the request metadata, as the attempt does.
    d.set_opt("trace_id", str_at(p, "trace_id").filter(|t| !t.is_empty()));
    d.set_opt("step", number("step"));
    out.push(ctx, index, d);
}

fn status(p: &Value) -> &'static str {
    if str_at(p, "status") != Some("failure") {
        return "ok";
    }
    let class = p
        .get("error_information")
        .and_then(|e| str_at(e, "error_class"))
        .unwrap_or("")
        .to_ascii_lowercase();
    if class.contains("ratelimit") {
        "rate_limited"
    } else if class.contains("timeout") {
        "timeout"
    } else if class.contains("contentpolicy") {
        "content_filtered"
    } else {
        "error"
    }
}
