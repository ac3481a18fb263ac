//! JSON → [`Event`]: parsing and validation, one event at a time.
//!
//! Every rejection says which field was wrong, what it held and what is accepted, so a gateway
//! operator can fix their mapping from the error alone. Unknown fields are ignored.

use crate::event::{MicroUsd, ModelSlug, Timestamp};
use crate::{Event, Status, Task};
use serde::Deserialize;
use serde::de::{self, Deserializer, Visitor};
use std::fmt;

/// Why one event was rejected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EventError {
    #[error("not valid JSON: {0}")]
    Syntax(String),
    #[error("missing required field `{0}`")]
    Missing(&'static str),
    #[error("field `{field}`: {message}")]
    Field { field: String, message: String },
}

fn field_err(field: &str, message: impl Into<String>) -> EventError {
    EventError::Field {
        field: field.to_owned(),
        message: message.into(),
    }
}

/// The earliest accepted timestamp: 2020-01-01T00:00:00Z (older ones are clock bugs, not traffic).
pub const EARLIEST_TS: Timestamp = Timestamp(1_577_836_800_000_000);
/// How far into the future a timestamp may lie (clock skew allowance).
pub const MAX_FUTURE_MICROS: i64 = 24 * 3600 * 1_000_000;
/// The largest cost accepted for a single request, in USD.
pub const MAX_COST_USD: f64 = 100_000.0;
/// Longest accepted identifier (`event_id`, `app_id`, `provider`, `model_requested`).
pub const MAX_ID_LEN: usize = 256;
/// Longest accepted `trace_id`, in bytes.
pub const MAX_TRACE_ID_LEN: usize = 128;

/// Validates events against a clock: timestamps more than a day ahead of `now` are rejected.
#[derive(Debug, Clone, Copy)]
pub struct Validator {
    now: Timestamp,
}

impl Validator {
    /// A validator that treats `now` as the current time.
    pub fn at(now: Timestamp) -> Self {
        Validator { now }
    }

    /// A validator on the system clock.
    pub fn now() -> Self {
        Self::at(Timestamp::from_datetime(chrono::Utc::now()))
    }

    /// Parses and validates one JSON object.
    pub fn parse(&self, json: &[u8]) -> Result<Event, EventError> {
        // serde would also read a struct from an array, positionally; events are objects only.
        if json.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return Err(EventError::Syntax("an event must be a JSON object".into()));
        }
        let mut de = serde_json::Deserializer::from_slice(json);
        let raw: RawEvent = serde_path_to_error::deserialize(&mut de).map_err(|e| {
            let path = e.path().to_string();
            let inner = e.into_inner();
            if path.is_empty() || path == "." || inner.is_syntax() || inner.is_eof() {
                EventError::Syntax(inner.to_string())
            } else {
                field_err(&path, strip_position(&inner.to_string()))
            }
        })?;
        de.end().map_err(|e| EventError::Syntax(e.to_string()))?;
        self.validate(raw)
    }

    /// Validates an already-deserialised JSON value (one element of a JSON array body).
    pub fn parse_value(&self, value: &serde_json::value::RawValue) -> Result<Event, EventError> {
        self.parse(value.get().as_bytes())
    }

    fn validate(&self, raw: RawEvent) -> Result<Event, EventError> {
        let event_id = identifier("event_id", required("event_id", raw.event_id)?)?;
        let ts = required("ts", raw.ts)?.0;
        if ts < EARLIEST_TS {
            return Err(field_err(
                "ts",
                format!("{} is before 2020-01-01", show_ts(ts)),
            ));
        }
        if ts.0 > self.now.0.saturating_add(MAX_FUTURE_MICROS) {
            return Err(field_err(
                "ts",
                format!("{} is more than a day in the future", show_ts(ts)),
            ));
        }
        let app_id = identifier("app_id", required("app_id", raw.app_id)?)?;
        let task: Task = required("task", raw.task)?
            .parse()
            .map_err(|m| field_err("task", m))?;
        let model_raw = required("model", raw.model)?;
        let model = ModelSlug::parse(&model_raw).map_err(|m| field_err("model", m))?;
        let provider = identifier("provider", required("provider", raw.provider)?)?;
        let model_requested = match raw.model_requested {
            Some(m) => identifier("model_requested", m)?,
            None => model.as_str().to_owned(),
        };
        let status: Status = required("status", raw.status)?
            .parse()
            .map_err(|m| field_err("status", m))?;
        let finish_reason = match raw.finish_reason {
            None => None,
            Some(r) if r.is_empty() => None,
            Some(r) => {
                if r.len() > 32 || !r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
                    return Err(field_err(
                        "finish_reason",
                        format!(
                            "{r:?} is not a finish reason (lowercase letters and _, at most 32)"
                        ),
                    ));
                }
                Some(r)
            }
        };
        let cost = match raw.cost_usd {
            None => MicroUsd(0),
            Some(usd) if !(0.0..=MAX_COST_USD).contains(&usd) => {
                return Err(field_err(
                    "cost_usd",
                    format!("{usd} is outside 0..={MAX_COST_USD} USD"),
                ));
            }
            Some(usd) => MicroUsd((usd * 1e6).round() as i64),
        };
        let attempt = match raw.attempt {
            None => 0,
            Some(a) => u8::try_from(a)
                .map_err(|_| field_err("attempt", format!("{a} is outside 0..=255")))?,
        };
        let trace_id = match raw.trace_id {
            None => None,
            Some(t) if t.len() > MAX_TRACE_ID_LEN => {
                return Err(field_err(
                    "trace_id",
                    format!(
                        "is {} bytes long; at most {MAX_TRACE_ID_LEN} accepted",
                        t.len()
                    ),
                ));
            }
            Some(t) => Some(identifier("trace_id", t)?),
        };
        let step = match raw.step {
            None => None,
            Some(_) if trace_id.is_none() => {
                return Err(field_err(
                    "step",
                    "needs trace_id: a step is a position within a trace",
                ));
            }
            Some(s) => Some(
                u32::try_from(s)
                    .map_err(|_| field_err("step", format!("{s} is outside 0..={}", u32::MAX)))?,
            ),
        };
        Ok(Event {
            event_id,
            ts,
            app_id,
            task,
            model_requested,
            model,
            provider,
            input_tokens: count(
                "input_tokens",
                Some(required("input_tokens", raw.input_tokens)?),
            )?,
            output_tokens: count(
                "output_tokens",
                Some(required("output_tokens", raw.output_tokens)?),
            )?,
            reasoning_tokens: count("reasoning_tokens", raw.reasoning_tokens)?,
            cached_tokens: count("cached_tokens", raw.cached_tokens)?,
            cost,
            latency_ms: count("latency_ms", raw.latency_ms)?,
            ttft_ms: count("ttft_ms", raw.ttft_ms)?,
            status,
            finish_reason,
            attempt,
            trace_id,
            step,
        })
    }
}

fn required<T>(field: &'static str, v: Option<T>) -> Result<T, EventError> {
    v.ok_or(EventError::Missing(field))
}

/// Checks an identifier (`event_id`, `app_id`, `provider`, `model_requested`): not empty, at
/// most [`MAX_ID_LEN`] bytes, no control characters. Readers that take a provider or an app as a
/// parameter check it with the same rule.
pub fn check_identifier(s: &str) -> Result<(), String> {
    if s.is_empty() {
        return Err("must not be empty".into());
    }
    if s.len() > MAX_ID_LEN {
        return Err(format!(
            "is {} bytes long; at most {MAX_ID_LEN} accepted",
            s.len()
        ));
    }
    if s.chars().any(char::is_control) {
        return Err("must not contain control characters".into());
    }
    Ok(())
}

fn identifier(field: &str, s: String) -> Result<String, EventError> {
    check_identifier(&s).map_err(|m| field_err(field, m))?;
    Ok(s)
}

fn count(field: &str, v: Option<i64>) -> Result<u32, EventError> {
    match v {
        None => Ok(0),
        Some(n) => u32::try_from(n)
            .map_err(|_| field_err(field, format!("{n} is outside 0..={}", u32::MAX))),
    }
}

fn show_ts(ts: Timestamp) -> String {
    ts.to_datetime()
        .map_or_else(|| format!("{} µs", ts.0), |d| d.to_rfc3339())
}

/// serde_json appends " at line 1 column 42" to messages; the field name says more.
fn strip_position(msg: &str) -> String {
    match msg.rfind(" at line ") {
        Some(i) => msg[..i].to_owned(),
        None => msg.to_owned(),
    }
}

/// The wire shape: everything optional so a missing field is reported by name.
#[derive(Deserialize)]
struct RawEvent {
    event_id: Option<String>,
    ts: Option<WireTs>,
    app_id: Option<String>,
    task: Option<String>,
    model_requested: Option<String>,
    model: Option<String>,
    provider: Option<String>,
    input_tokens: Option<i64>,
    output_tokens: Option<i64>,
    reasoning_tokens: Option<i64>,
    cached_tokens: Option<i64>,
    cost_usd: Option<f64>,
    latency_ms: Option<i64>,
    ttft_ms: Option<i64>,
    status: Option<String>,
    finish_reason: Option<String>,
    attempt: Option<i64>,
    trace_id: Option<String>,
    step: Option<i64>,
}

/// `ts` on the wire: an RFC 3339 string or integer epoch milliseconds.
struct WireTs(Timestamp);

impl<'de> Deserialize<'de> for WireTs {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct TsVisitor;
        impl Visitor<'_> for TsVisitor {
            type Value = WireTs;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("an RFC 3339 string or integer epoch milliseconds")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<WireTs, E> {
                chrono::DateTime::parse_from_rfc3339(s)
                    .map(|d| WireTs(Timestamp(d.timestamp_micros())))
                    .map_err(|e| E::custom(format!("{s:?} is not an RFC 3339 timestamp ({e})")))
            }
            fn visit_i64<E: de::Error>(self, ms: i64) -> Result<WireTs, E> {
                ms.checked_mul(1000)
                    .map(|us| WireTs(Timestamp(us)))
                    .ok_or_else(|| E::custom(format!("{ms} ms is out of range")))
            }
            fn visit_u64<E: de::Error>(self, ms: u64) -> Result<WireTs, E> {
                i64::try_from(ms)
                    .map_err(|_| E::custom(format!("{ms} ms is out of range")))
                    .and_then(|ms| self.visit_i64(ms))
            }
        }
        d.deserialize_any(TsVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: Timestamp = Timestamp(1_795_600_000_000_000); // 2026-11-25

    fn good() -> serde_json::Value {
        serde_json::json!({
            "event_id": "e1", "ts": "2026-11-20T10:00:00Z", "app_id": "app-1",
            "task": "programming", "model": "anthropic/claude-sonnet-4.5",
            "provider": "anthropic", "input_tokens": 1000, "output_tokens": 200,
            "cost_usd": 0.006, "latency_ms": 1500, "ttft_ms": 300, "status": "ok",
            "finish_reason": "stop", "unknown_field": [1, 2, 3]
        })
    }

    fn parse(v: &serde_json::Value) -> Result<Event, EventError> {
        Validator::at(NOW).parse(v.to_string().as_bytes())
    }

    #[test]
    fn parses_a_full_event() {
        let e = parse(&good()).unwrap();
        assert_eq!(e.event_id, "e1");
        assert_eq!(e.ts, Timestamp(1_795_168_800_000_000));
        assert_eq!(e.model.author(), "anthropic");
        assert_eq!(e.model_requested, "anthropic/claude-sonnet-4.5");
        assert_eq!(e.cost, MicroUsd(6000));
        assert_eq!(e.tokens(), 1200);
        assert_eq!(e.attempt, 0);
        assert_eq!(e.finish_reason.as_deref(), Some("stop"));
    }

    #[test]
    fn accepts_epoch_milliseconds() {
        let mut v = good();
        v["ts"] = serde_json::json!(1_795_168_800_000_i64);
        assert_eq!(parse(&v).unwrap().ts, Timestamp(1_795_168_800_000_000));
    }

    fn reject(mutate: impl FnOnce(&mut serde_json::Value)) -> String {
        let mut v = good();
        mutate(&mut v);
        parse(&v).unwrap_err().to_string()
    }

    #[test]
    fn rejections_name_the_field() {
        assert_eq!(
            reject(|v| v["input_tokens"] = serde_json::json!(-5)),
            "field `input_tokens`: -5 is outside 0..=4294967295"
        );
        assert_eq!(
            reject(|v| v["input_tokens"] = serde_json::json!("many")),
            "field `input_tokens`: invalid type: string \"many\", expected i64"
        );
        assert_eq!(
            reject(|v| {
                v.as_object_mut().unwrap().remove("model");
            }),
            "missing required field `model`"
        );
        assert_eq!(
            reject(|v| v["ts"] = serde_json::json!("2027-06-01T00:00:00Z")),
            "field `ts`: 2027-06-01T00:00:00+00:00 is more than a day in the future"
        );
        assert_eq!(
            reject(|v| v["ts"] = serde_json::json!("2019-12-31T23:59:59Z")),
            "field `ts`: 2019-12-31T23:59:59+00:00 is before 2020-01-01"
        );
        assert!(
            reject(|v| v["ts"] = serde_json::json!("yesterday"))
                .starts_with("field `ts`: \"yesterday\" is not an RFC 3339 timestamp")
        );
        assert!(
            reject(|v| v["task"] = serde_json::json!("coding"))
                .starts_with("field `task`: unknown task \"coding\"; accepted: programming")
        );
        assert_eq!(
            reject(|v| v["cost_usd"] = serde_json::json!(-0.5)),
            "field `cost_usd`: -0.5 is outside 0..=100000 USD"
        );
        assert_eq!(
            reject(|v| v["attempt"] = serde_json::json!(300)),
            "field `attempt`: 300 is outside 0..=255"
        );
        assert_eq!(
            reject(|v| v["app_id"] = serde_json::json!("")),
            "field `app_id`: must not be empty"
        );
    }

    #[test]
    fn syntax_errors_and_non_objects() {
        let v = Validator::at(NOW);
        assert!(matches!(
            v.parse(b"{\"event_id\": "),
            Err(EventError::Syntax(_))
        ));
        assert!(matches!(v.parse(b"[1,2]"), Err(EventError::Syntax(_))));
        assert!(matches!(
            v.parse(b"{} trailing"),
            Err(EventError::Syntax(_))
        ));
        assert!(v.parse(b"{\"event_id\": \"\xff\xfe\"}").is_err());
    }

    #[test]
    fn cost_is_rounded_to_micro_usd() {
        let mut v = good();
        v["cost_usd"] = serde_json::json!(0.0000125);
        assert_eq!(parse(&v).unwrap().cost, MicroUsd(13));
        v["cost_usd"] = serde_json::json!(12.345678);
        assert_eq!(parse(&v).unwrap().cost, MicroUsd(12_345_678));
    }
}
