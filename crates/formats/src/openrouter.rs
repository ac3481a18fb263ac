//! OpenRouter generation stats → events: the `data` object of `GET /api/v1/generation?id=...`,
//! one or an array (a whole `{"data": {...}}` response is unwrapped too). Field names are read in
//! the API's snake_case and in the SDKs' camelCase.

use crate::FormatError;
use crate::common::{Context, Draft, Mapped, finish_reason, json_items, provider_id, resolve_slug};
use serde_json::Value;

/// Maps a body of OpenRouter generation objects.
pub fn from_json(body: &[u8], ctx: &Context) -> Result<Mapped, FormatError> {
    let mut out = Mapped::default();
    for (index, item) in json_items(body)?.iter().enumerate() {
        let g = item.get("data").filter(|d| d.is_object()).unwrap_or(item);
        map_generation(g, ctx, index, &mut out);
    }
    Ok(out)
}

/// `snake_case` first, then the SDKs' `camelCase` spelling.
fn field<'a>(g: &'a Value, snake: &str) -> Option<&'a Value> {
    g.get(snake).filter(|v| !v.is_null()).or_else(|| {
        let mut camel = String::with_capacity(snake.len());
        let mut up = false;
        for c in snake.chars() {
            if c == '_' {
                up = true;
            } else if up {
                camel.push(c.to_ascii_uppercase());
                up = false;
            } else {
                camel.push(c);
            }
        }
        g.get(&camel).filter(|v| !v.is_null())
    })
}

fn map_generation(g: &Value, ctx: &Context, index: usize, out: &mut Mapped) {
    let s = |k: &str| {
        field(g, k)
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
    };
    let n = |k: &str| field(g, k).filter(|v| v.is_number()).cloned();
    let Some(model) = s("model") else {
        out.reject(index, "missing `model`");
        return;
    };
    let provider = s("provider_name");
    let slug = resolve_slug(model, provider);
    let mut d = Draft::default();
    d.set_opt("event_id", s("id"));
    d.set_opt("ts", s("created_at"));
    let author = slug.split('/').next().unwrap_or_default().to_owned();
    d.set("provider", provider.map_or(author, provider_id));
    d.set("model", slug);
    d.set("model_requested", s("router").unwrap_or(model).to_owned());
    d.set_opt(
        "input_tokens",
        n("native_tokens_prompt").or_else(|| n("tokens_prompt")),
    );
    d.set_opt(
        "output_tokens",
        n("native_tokens_completion").or_else(|| n("tokens_completion")),
    );
    d.set_opt("reasoning_tokens", n("native_tokens_reasoning"));
    d.set_opt("cached_tokens", n("native_tokens_cached"));
    d.set_opt("cost_usd", n("total_cost"));
    d.set_opt(
        "latency_ms",
        field(g, "latency")
            .and_then(Value::as_f64)
            .filter(|f| f.is_finite())
            .map(|f| f.round() as i64),
    );
    let cancelled = field(g, "cancelled").and_then(Value::as_bool) == Some(true);
    d.set("status", if cancelled { "cancelled" } else { "ok" });
    d.set_opt("finish_reason", s("finish_reason").and_then(finish_reason));
    d.set("task", "other");
    // OpenRouter's numeric `app_id` names the app only when no ingest key does.
    if ctx.bound_app.is_none() {
        d.set_opt(
            "app_id",
            field(g, "app_id")
                .and_then(Value::as_i64)
                .map(|id| format!("openrouter-app-{id}")),
        );
    }
    out.push(ctx, index, d);
}
