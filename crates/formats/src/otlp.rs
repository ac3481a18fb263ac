//! OTLP/HTTP traces → events. A span is an LLM call when it carries `gen_ai.response.model` or
//! `gen_ai.request.model` (OpenTelemetry GenAI semantic conventions); every other span is
//! ignored and counted. Both encodings decode into the same messages ([`crate::otlp_proto`]), so
//! the mapping is one code path.
//!
//! The JSON encoding follows the OTLP/JSON rules: lowerCamelCase field names, trace and span ids
//! as hex strings, 64-bit integers as decimal strings or numbers, enums as integers, unknown
//! fields ignored.

use crate::FormatError;
use crate::common::{
    Context, Draft, Mapped, finish_reason, provider_id, resolve_slug, rfc3339_micros,
};
use crate::otlp_proto::{
    AnyValue, ArrayValue, ExportTraceServiceRequest, KeyValue, KeyValueList, Resource,
    ResourceSpans, ScopeSpans, Span, Status, any_value,
};
use prost::Message;
use serde::Deserialize;
use serde::de::{self, Deserializer};
use std::collections::HashMap;

/// OTLP status code for an error span.
const STATUS_ERROR: i32 = 2;

/// Decodes a binary protobuf `ExportTraceServiceRequest` and maps its spans.
pub fn from_protobuf(body: &[u8], ctx: &Context) -> Result<Mapped, FormatError> {
    let req = ExportTraceServiceRequest::decode(body)
        .map_err(|e| FormatError::Protobuf(e.to_string()))?;
    Ok(map_request(&req, ctx))
}

/// Decodes an OTLP/JSON `ExportTraceServiceRequest` and maps its spans.
pub fn from_json(body: &[u8], ctx: &Context) -> Result<Mapped, FormatError> {
    let req: JRequest =
        serde_json::from_slice(body).map_err(|e| FormatError::Json(e.to_string()))?;
    Ok(map_request(&req.into_proto()?, ctx))
}

/// Maps every span of a decoded request; `index` in rejections counts spans across the request.
pub fn map_request(req: &ExportTraceServiceRequest, ctx: &Context) -> Mapped {
    let mut out = Mapped::default();
    let steps = steps_in_request(req);
    let mut index = 0;
    for rs in &req.resource_spans {
        let resource = rs.resource.as_ref().map_or(&[][..], |r| &r.attributes[..]);
        for ss in &rs.scope_spans {
            for span in &ss.spans {
                let step = steps.get(&(&span.trace_id[..], &span.span_id[..])).copied();
                map_span(span, resource, ctx, index, step, &mut out);
                index += 1;
            }
        }
    }
    out
}

/// Whether a span is an LLM call (it names a model).
fn is_llm_call(span: &Span) -> bool {
    let attrs = Attrs(&span.attributes);
    attrs.str("gen_ai.response.model").is_some() || attrs.str("gen_ai.request.model").is_some()
}

/// Each LLM call's position among the LLM calls of its trace in this request, by start time
/// (then span id): keyed by (trace id, span id).
fn steps_in_request(req: &ExportTraceServiceRequest) -> HashMap<(&[u8], &[u8]), u64> {
    let mut by_trace: HashMap<&[u8], Vec<(u64, &[u8])>> = HashMap::new();
    let spans = req
        .resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .flat_map(|ss| &ss.spans);
    for span in spans.filter(|s| !s.trace_id.is_empty() && is_llm_call(s)) {
        by_trace
            .entry(&span.trace_id[..])
            .or_default()
            .push((span.start_time_unix_nano, &span.span_id[..]));
    }
    let mut steps = HashMap::new();
    for (trace, mut calls) in by_trace {
        calls.sort_unstable();
        for (step, (_, span_id)) in calls.into_iter().enumerate() {
            steps.insert((trace, span_id), step as u64);
        }
    }
    steps
}

fn map_span(
    span: &Span,
    resource: &[KeyValue],
    ctx: &Context,
    index: usize,
    step: Option<u64>,
    out: &mut Mapped,
) {
    let attrs = Attrs(&span.attributes);
    let res = Attrs(resource);
    let Some(model) = attrs
        .str("gen_ai.response.model")
        .or_else(|| attrs.str("gen_ai.request.model"))
    else {
        out.ignored += 1;
        return;
    };
    if span.span_id.is_empty() {
        out.reject(index, "span has no span id");
        return;
    }
    let provider = attrs
        .str("gen_ai.provider.name")
        .or_else(|| attrs.str("gen_ai.system"));
    let slug = resolve_slug(model, provider);
    let mut d = Draft::default();
    d.set(
        "event_id",
        format!("{}-{}", hex(&span.trace_id), hex(&span.span_id)),
    );
    match rfc3339_micros((span.start_time_unix_nano / 1000) as i64) {
        Some(ts) if span.start_time_unix_nano > 0 => d.set("ts", ts),
        _ => {
            out.reject(index, "span has no start time");
            return;
        }
    }
    let author = slug.split('/').next().unwrap_or_default().to_owned();
    d.set("provider", provider.map_or(author, provider_id));
    d.set("model", slug);
    d.set_opt("model_requested", attrs.str("gen_ai.request.model"));
    d.set_opt(
        "input_tokens",
        attrs
            .int("gen_ai.usage.input_tokens")
            .or_else(|| attrs.int("gen_ai.usage.prompt_tokens")),
    );
    d.set_opt(
        "output_tokens",
        attrs
            .int("gen_ai.usage.output_tokens")
            .or_else(|| attrs.int("gen_ai.usage.completion_tokens")),
    );
    d.set_opt(
        "cached_tokens",
        attrs
            .int("gen_ai.usage.cache_read.input_tokens")
            .or_else(|| attrs.int("gen_ai.usage.cache_read_input_tokens")),
    );
    d.set_opt(
        "reasoning_tokens",
        attrs
            .int("gen_ai.usage.reasoning.output_tokens")
            .or_else(|| attrs.int("gen_ai.usage.reasoning_tokens")),
    );
    d.set_opt(
        "cost_usd",
        attrs
            .float("gen_ai.usage.cost")
            .or_else(|| attrs.float("modelshare.cost_usd")),
    );
    if span.end_time_unix_nano >= span.start_time_unix_nano && span.end_time_unix_nano > 0 {
        let ms = (span.end_time_unix_nano - span.start_time_unix_nano) / 1_000_000;
        d.set("latency_ms", ms);
    }
    d.set_opt("ttft_ms", attrs.int("modelshare.ttft_ms"));
    d.set("status", status(span.status.as_ref(), &attrs));
    d.set_opt(
        "finish_reason",
        attrs
            .first_str("gen_ai.response.finish_reasons")
            .and_then(finish_reason),
    );
    d.set(
        "task",
        attrs
            .str("modelshare.task")
            .or_else(|| res.str("modelshare.task"))
            .unwrap_or("other"),
    );
    d.set_opt("attempt", attrs.int("modelshare.attempt"));
    if !span.trace_id.is_empty() {
        d.set("trace_id", hex(&span.trace_id));
        d.set_opt(
            "step",
            attrs
                .int("modelshare.step")
                .or(step.and_then(|s| i64::try_from(s).ok())),
        );
    }
    let claim = attrs
        .str("modelshare.app_id")
        .or_else(|| res.str("modelshare.app_id"));
    // `service.name` names the sender, not a tenant: it stands in for the app only without a key.
    let app = match (&ctx.bound_app, claim) {
        (_, Some(c)) => Some(c),
        (None, None) => res.str("service.name"),
        (Some(_), None) => None,
    };
    d.set_opt("app_id", app);
    out.push(ctx, index, d);
}

fn status(s: Option<&Status>, attrs: &Attrs<'_>) -> &'static str {
    if s.is_none_or(|s| s.code != STATUS_ERROR) {
        return "ok";
    }
    let kind = attrs.str("error.type").unwrap_or("").to_ascii_lowercase();
    if kind.contains("timeout") {
        "timeout"
    } else if kind.contains("ratelimit") || kind.contains("rate_limit") || kind == "429" {
        "rate_limited"
    } else {
        "error"
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

/// Attribute lookup over a span's or resource's key-values (last one wins, as in the SDKs).
struct Attrs<'a>(&'a [KeyValue]);

impl<'a> Attrs<'a> {
    fn get(&self, key: &str) -> Option<&'a any_value::Value> {
        self.0
            .iter()
            .rev()
            .find(|kv| kv.key == key)
            .and_then(|kv| kv.value.as_ref())
            .and_then(|v| v.value.as_ref())
    }

    fn str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            any_value::Value::StringValue(s) if !s.is_empty() => Some(s),
            _ => None,
        }
    }

    /// A string, or the first string of an array (`gen_ai.response.finish_reasons`).
    fn first_str(&self, key: &str) -> Option<&'a str> {
        match self.get(key)? {
            any_value::Value::StringValue(s) => Some(s),
            any_value::Value::ArrayValue(a) => a.values.iter().find_map(|v| match &v.value {
                Some(any_value::Value::StringValue(s)) => Some(s.as_str()),
                _ => None,
            }),
            _ => None,
        }
    }

    /// An integer attribute; integral doubles and decimal strings are read too (some
    /// instrumentations record token counts that way). Out-of-range values are passed on so the
    /// validator names them.
    fn int(&self, key: &str) -> Option<i64> {
        match self.get(key)? {
            any_value::Value::IntValue(n) => Some(*n),
            any_value::Value::DoubleValue(f) if f.fract() == 0.0 && f.abs() < 9e15 => {
                Some(*f as i64)
            }
            any_value::Value::StringValue(s) => s.trim().parse().ok(),
            _ => None,
        }
    }

    fn float(&self, key: &str) -> Option<f64> {
        match self.get(key)? {
            any_value::Value::DoubleValue(f) if f.is_finite() => Some(*f),
            any_value::Value::IntValue(n) => Some(*n as f64),
            any_value::Value::StringValue(s) => {
                s.trim().parse().ok().filter(|f: &f64| f.is_finite())
            }
            _ => None,
        }
    }
}

// ---- OTLP/JSON wire shapes --------------------------------------------------------------------

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JRequest {
    #[serde(default)]
    resource_spans: Vec<JResourceSpans>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JResourceSpans {
    resource: Option<JResource>,
    #[serde(default)]
    scope_spans: Vec<JScopeSpans>,
}

#[derive(Deserialize)]
struct JResource {
    #[serde(default)]
    attributes: Vec<JKeyValue>,
}

#[derive(Deserialize)]
struct JScopeSpans {
    #[serde(default)]
    spans: Vec<JSpan>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JSpan {
    #[serde(default)]
    trace_id: String,
    #[serde(default)]
    span_id: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    start_time_unix_nano: WireU64,
    #[serde(default)]
    end_time_unix_nano: WireU64,
    #[serde(default)]
    attributes: Vec<JKeyValue>,
    status: Option<JStatus>,
}

#[derive(Deserialize)]
struct JStatus {
    #[serde(default)]
    message: String,
    #[serde(default)]
    code: i32,
}

#[derive(Deserialize)]
struct JKeyValue {
    key: String,
    value: Option<JAnyValue>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct JAnyValue {
    string_value: Option<String>,
    bool_value: Option<bool>,
    int_value: Option<WireI64>,
    double_value: Option<f64>,
    array_value: Option<JArray>,
    kvlist_value: Option<JKvList>,
    bytes_value: Option<String>,
}

#[derive(Deserialize)]
struct JArray {
    #[serde(default)]
    values: Vec<JAnyValue>,
}

#[derive(Deserialize)]
struct JKvList {
    #[serde(default)]
    values: Vec<JKeyValue>,
}

/// A 64-bit integer written as a JSON number or a decimal string (OTLP/JSON allows both).
#[derive(Default)]
struct WireU64(u64);
struct WireI64(i64);

fn int_from<'de, D: Deserializer<'de>, T>(d: D) -> Result<T, D::Error>
where
    T: std::str::FromStr + TryFrom<u64> + TryFrom<i64>,
{
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        U(u64),
        I(i64),
        Str(String),
    }
    match Raw::deserialize(d)? {
        Raw::U(n) => T::try_from(n).map_err(|_| de::Error::custom(format!("{n} is out of range"))),
        Raw::I(n) => T::try_from(n).map_err(|_| de::Error::custom(format!("{n} is out of range"))),
        Raw::Str(s) => s
            .trim()
            .parse()
            .map_err(|_| de::Error::custom(format!("{s:?} is not an integer"))),
    }
}

impl<'de> Deserialize<'de> for WireU64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_from(d).map(WireU64)
    }
}

impl<'de> Deserialize<'de> for WireI64 {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        int_from(d).map(WireI64)
    }
}

fn unhex(field: &str, s: &str) -> Result<Vec<u8>, FormatError> {
    let bad = || FormatError::Shape(format!("{field} {s:?} is not a hex string"));
    if !s.len().is_multiple_of(2) {
        return Err(bad());
    }
    (0..s.len())
        .step_by(2)
        .map(|i| {
            s.get(i..i + 2)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(bad)
        })
        .collect()
}

impl JRequest {
    fn into_proto(self) -> Result<ExportTraceServiceRequest, FormatError> {
        let mut resource_spans = Vec::with_capacity(self.resource_spans.len());
        for rs in self.resource_spans {
            let mut scope_spans = Vec::with_capacity(rs.scope_spans.len());
            for ss in rs.scope_spans {
                let mut spans = Vec::with_capacity(ss.spans.len());
                for s in ss.spans {
                    spans.push(Span {
                        trace_id: unhex("traceId", &s.trace_id)?,
                        span_id: unhex("spanId", &s.span_id)?,
                        name: s.name,
                        start_time_unix_nano: s.start_time_unix_nano.0,
                        end_time_unix_nano: s.end_time_unix_nano.0,
                        attributes: s
                            .attributes
                            .into_iter()
                            .map(JKeyValue::into_proto)
                            .collect(),
                        status: s.status.map(|st| Status {
                            message: st.message,
                            code: st.code,
                        }),
                        ..Span::default()
                    });
                }
                scope_spans.push(ScopeSpans {
                    spans,
                    ..ScopeSpans::default()
                });
            }
            resource_spans.push(ResourceSpans {
                resource: rs.resource.map(|r| Resource {
                    attributes: r
                        .attributes
                        .into_iter()
                        .map(JKeyValue::into_proto)
                        .collect(),
                    ..Resource::default()
                }),
                scope_spans,
                ..ResourceSpans::default()
            });
        }
        Ok(ExportTraceServiceRequest { resource_spans })
    }
}

impl JKeyValue {
    fn into_proto(self) -> KeyValue {
        KeyValue {
            key: self.key,
            value: self.value.map(JAnyValue::into_proto),
        }
    }
}

impl JAnyValue {
    fn into_proto(self) -> AnyValue {
        use any_value::Value as V;
        let value = if let Some(s) = self.string_value {
            Some(V::StringValue(s))
        } else if let Some(b) = self.bool_value {
            Some(V::BoolValue(b))
        } else if let Some(n) = self.int_value {
            Some(V::IntValue(n.0))
        } else if let Some(f) = self.double_value {
            Some(V::DoubleValue(f))
        } else if let Some(a) = self.array_value {
            Some(V::ArrayValue(ArrayValue {
                values: a.values.into_iter().map(JAnyValue::into_proto).collect(),
            }))
        } else if let Some(kv) = self.kvlist_value {
            Some(V::KvlistValue(KeyValueList {
                values: kv.values.into_iter().map(JKeyValue::into_proto).collect(),
            }))
        } else {
            // Bytes values carry nothing the mapping reads; keep their presence only.
            self.bytes_value.map(|_| V::BytesValue(Vec::new()))
        };
        AnyValue { value }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use modelshare_event::{Timestamp, Validator};

    fn ctx() -> Context {
        Context {
            bound_app: Some("app".into()),
            validator: Validator::at(Timestamp(1_795_600_000_000_000)),
        }
    }

    fn body(span: serde_json::Value) -> Vec<u8> {
        serde_json::json!({"resourceSpans": [{"scopeSpans": [{"spans": [span]}]}]})
            .to_string()
            .into_bytes()
    }

    #[test]
    fn json_integers_may_be_strings_or_numbers_and_doubles_count_as_integers() {
        let span = serde_json::json!({
            "traceId": "00ff", "spanId": "0a0b", "startTimeUnixNano": "1795168800000000000",
            "endTimeUnixNano": 1_795_168_800_250_000_000_u64,
            "attributes": [
                {"key": "gen_ai.request.model", "value": {"stringValue": "gpt-4o"}},
                {"key": "gen_ai.usage.input_tokens", "value": {"doubleValue": 12.0}},
                {"key": "gen_ai.usage.output_tokens", "value": {"intValue": "34"}},
                {"key": "gen_ai.response.finish_reasons", "value": {"arrayValue": {"values": [{"stringValue": "STOP"}]}}}
            ]
        });
        let m = from_json(&body(span), &ctx()).unwrap();
        assert_eq!(m.rejected, vec![]);
        let e = &m.events[0];
        assert_eq!(e.event_id, "00ff-0a0b");
        assert_eq!(
            (e.input_tokens, e.output_tokens, e.latency_ms),
            (12, 34, 250)
        );
        assert_eq!(e.finish_reason.as_deref(), Some("stop"));
        assert_eq!(e.provider, "openai");
        assert_eq!(e.app_id, "app");
    }

    #[test]
    fn bad_ids_and_bad_numbers_are_body_errors() {
        let bad_hex = serde_json::json!({"traceId": "zz", "spanId": "01"});
        assert_eq!(
            from_json(&body(bad_hex), &ctx()).unwrap_err().to_string(),
            "traceId \"zz\" is not a hex string"
        );
        let bad_int = serde_json::json!({"spanId": "01", "startTimeUnixNano": "soon"});
        assert!(matches!(
            from_json(&body(bad_int), &ctx()),
            Err(FormatError::Json(_))
        ));
        assert!(matches!(
            from_protobuf(&[0x0a, 0xff], &ctx()),
            Err(FormatError::Protobuf(_))
        ));
    }

    #[test]
    fn spans_without_a_model_are_ignored_not_rejected() {
        let span = serde_json::json!({"spanId": "01", "attributes": [
            {"key": "gen_ai.operation.name", "value": {"stringValue": "invoke_agent"}}]});
        let m = from_json(&body(span), &ctx()).unwrap();
        assert_eq!((m.events.len(), m.rejected.len(), m.ignored), (0, 0, 1));
    }
}
