//! What every format shares: the ingest key's app binding, resolving a provider's model name to
//! an `author/model` slug, and turning a draft (a schema-v1 JSON object) into a validated event.

use modelshare_catalog::Catalog;
use modelshare_event::{Event, Validator};
use serde_json::{Map, Value};

/// How a request's items are mapped.
#[derive(Debug, Clone)]
pub struct Context {
    /// The app of the ingest key the request was authenticated with. When set, every event is
    /// written as this app; an item that names another app is rejected.
    pub bound_app: Option<String>,
    pub validator: Validator,
}

/// One item (span, payload, generation) that could not become an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    /// 0-based position of the item in the body (OTLP: among all spans of the request).
    pub index: usize,
    pub message: String,
}

/// The outcome of mapping one body.
#[derive(Debug, Default)]
pub struct Mapped {
    pub events: Vec<Event>,
    pub rejected: Vec<Rejection>,
    /// Items that are not LLM calls (e.g. spans without GenAI attributes): skipped, not errors.
    pub ignored: usize,
}

impl Mapped {
    /// Validates `draft` (a schema-v1 JSON object) and records the event or the rejection.
    pub(crate) fn push(&mut self, ctx: &Context, index: usize, draft: Draft) {
        match draft.finish(ctx) {
            Ok(e) => self.events.push(e),
            Err(message) => self.rejected.push(Rejection { index, message }),
        }
    }

    pub(crate) fn reject(&mut self, index: usize, message: impl Into<String>) {
        self.rejected.push(Rejection {
            index,
            message: message.into(),
        });
    }
}

/// A schema-v1 event object under construction; [`Draft::finish`] validates it exactly as
/// `POST /v1/events` would.
#[derive(Debug, Default)]
pub(crate) struct Draft(pub(crate) Map<String, Value>);

impl Draft {
    pub(crate) fn set(&mut self, field: &str, value: impl Into<Value>) {
        self.0.insert(field.to_owned(), value.into());
    }

    pub(crate) fn set_opt<T: Into<Value>>(&mut self, field: &str, value: Option<T>) {
        if let Some(v) = value {
            self.set(field, v);
        }
    }

    fn finish(mut self, ctx: &Context) -> Result<Event, String> {
        let named = self
            .0
            .get("app_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        match (&ctx.bound_app, named) {
            (Some(bound), Some(named)) if *bound != named => {
                return Err(format!(
                    "app_id {named:?} does not match the ingest key's app {bound:?}"
                ));
            }
            (Some(bound), _) => self.set("app_id", bound.clone()),
            (None, Some(_)) => {}
            (None, None) => {
                return Err(
                    "no app id: send with an ingest key (Authorization: Bearer ...) or name the app in the payload (see docs/FORMATS.md)"
                        .into(),
                );
            }
        }
        let bytes = serde_json::to_vec(&Value::Object(self.0)).map_err(|e| e.to_string())?;
        ctx.validator.parse(&bytes).map_err(|e| e.to_string())
    }
}

/// The `author/model` slug a provider's model name stands for: the catalog's slug when the name
/// is one or matches one; a name that already has the `author/model` shape as is; otherwise the
/// provider stands in as the author (`mistral` + `my-finetune` → `mistral/my-finetune`).
pub fn resolve_slug(model: &str, provider: Option<&str>) -> String {
    let catalog = Catalog::embedded();
    let lower = model.trim().to_ascii_lowercase();
    if catalog.model(&lower).is_some() {
        return lower;
    }
    if let Some(slug) = catalog.slug_for(&lower) {
        return slug.to_owned();
    }
    if lower.matches('/').count() == 1 {
        return lower;
    }
    match provider {
        Some(p) if !lower.contains('/') => format!("{}/{lower}", author_for_provider(p)),
        _ => lower,
    }
}

/// Provider spellings (OTel `gen_ai.provider.name`, LiteLLM `custom_llm_provider`, OpenRouter
/// `provider_name`) normalised to a provider id: lowercase, spaces and dots as dashes.
pub fn provider_id(p: &str) -> String {
    p.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '.' { '-' } else { c })
        .collect()
}

/// The model author a provider id most likely means when the catalog does not know the model.
fn author_for_provider(p: &str) -> String {
    let id = provider_id(p);
    match id.as_str() {
        "gcp-gemini" | "gcp-vertex-ai" | "gemini" | "vertex-ai" | "vertex_ai" | "google-vertex" => {
            "google".into()
        }
        "aws-bedrock" | "bedrock" => "amazon".into(),
        "azure-ai-openai" | "azure" | "azure-openai" => "openai".into(),
        "mistral-ai" => "mistralai".into(),
        "x-ai" | "xai" => "x-ai".into(),
        _ => id,
    }
}

/// Lowercase finish reasons the event schema accepts (`stop`, `length`, `tool_calls`, ...);
/// anything else is dropped rather than failing the event.
pub(crate) fn finish_reason(r: &str) -> Option<String> {
    let r = r.trim().to_ascii_lowercase();
    (!r.is_empty() && r.len() <= 32 && r.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'))
        .then_some(r)
}

/// Microseconds since the epoch as the RFC 3339 string the event parser reads.
pub(crate) fn rfc3339_micros(us: i64) -> Option<String> {
    chrono::DateTime::from_timestamp_micros(us)
        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Micros, true))
}

/// The items of a JSON body: a JSON array, one object, or newline-delimited objects (LiteLLM's
/// `json_array`, `single` and `ndjson` log formats all arrive here).
pub(crate) fn json_items(body: &[u8]) -> Result<Vec<Value>, crate::FormatError> {
    let mut items = Vec::new();
    for value in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        match value.map_err(|e| crate::FormatError::Json(e.to_string()))? {
            Value::Array(a) => items.extend(a),
            v @ Value::Object(_) => items.push(v),
            other => {
                return Err(crate::FormatError::Shape(format!(
                    "expected a JSON object or an array of objects, found {}",
                    kind(&other)
                )));
            }
        }
    }
    if items.is_empty() {
        return Err(crate::FormatError::Shape("the body holds no items".into()));
    }
    Ok(items)
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// A non-empty string field.
pub(crate) fn str_at<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str).filter(|s| !s.is_empty())
}

/// A number field as given (integers stay integers, so the validator can name bad ones).
pub(crate) fn num_at(v: &Value, key: &str) -> Option<Value> {
    v.get(key).filter(|n| n.is_number()).cloned()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn slugs_resolve_through_the_catalog_then_the_provider() {
        assert_eq!(resolve_slug("gpt-4o", Some("openai")), "openai/gpt-4o");
        assert_eq!(
            resolve_slug("anthropic/claude-sonnet-4.5", None),
            "anthropic/claude-sonnet-4.5"
        );
        assert_eq!(
            resolve_slug("my-finetune-7", Some("Mistral AI")),
            "mistralai/my-finetune-7"
        );
        assert_eq!(provider_id("Google Vertex"), "google-vertex");
    }

    #[test]
    fn finish_reasons_outside_the_schema_are_dropped() {
        assert_eq!(finish_reason("STOP").as_deref(), Some("stop"));
        assert_eq!(finish_reason("end turn!"), None);
    }
}
