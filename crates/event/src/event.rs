//! The typed event and the small value types it is made of.

use crate::{Status, Task};
use std::fmt;

/// Microseconds since the Unix epoch, UTC.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(pub i64);

impl Timestamp {
    /// Builds from a chrono UTC datetime.
    pub fn from_datetime(dt: chrono::DateTime<chrono::Utc>) -> Self {
        Timestamp(dt.timestamp_micros())
    }

    /// The UTC datetime; `None` only for values outside chrono's range.
    pub fn to_datetime(self) -> Option<chrono::DateTime<chrono::Utc>> {
        chrono::DateTime::from_timestamp_micros(self.0)
    }

    /// The UTC calendar day, which names the lake partition the event lives in.
    pub fn date(self) -> chrono::NaiveDate {
        self.to_datetime()
            .map(|d| d.date_naive())
            .unwrap_or(chrono::NaiveDate::MIN)
    }
}

/// Money in integer millionths of a US dollar, so sums over billions of rows stay exact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MicroUsd(pub i64);

impl MicroUsd {
    /// Dollars as a float, for display and JSON only (never accumulate these).
    pub fn as_usd(self) -> f64 {
        self.0 as f64 / 1e6
    }
}

impl fmt::Display for MicroUsd {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:06}", abs / 1_000_000, abs % 1_000_000)
    }
}

/// An `author/model` slug such as `anthropic/claude-sonnet-4.5`; the author is the part before
/// the slash.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ModelSlug(String);

impl ModelSlug {
    /// The longest slug accepted.
    pub const MAX_LEN: usize = 128;

    /// Validates `author/model`: one slash, both parts non-empty, `[a-z0-9._:+-]` (case-insensitive).
    pub fn parse(s: &str) -> Result<Self, String> {
        if s.len() > Self::MAX_LEN {
            return Err(format!(
                "is {} bytes long; at most {} accepted",
                s.len(),
                Self::MAX_LEN
            ));
        }
        let Some((author, model)) = s.split_once('/') else {
            return Err(format!(
                "{s:?} is not an author/model slug (e.g. \"openai/gpt-4o\")"
            ));
        };
        if author.is_empty() || model.is_empty() || model.contains('/') {
            return Err(format!(
                "{s:?} is not an author/model slug (e.g. \"openai/gpt-4o\")"
            ));
        }
        if let Some(c) = s.chars().find(|c| {
            !(c.is_ascii_alphanumeric() || matches!(c, '/' | '.' | '_' | ':' | '+' | '-'))
        }) {
            return Err(format!(
                "{s:?} contains {c:?}; accepted: letters, digits and . _ : + -"
            ));
        }
        Ok(ModelSlug(s.to_ascii_lowercase()))
    }

    /// The full slug.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The part before the slash.
    pub fn author(&self) -> &str {
        author_of(&self.0)
    }
}

/// The author part of a slug (everything before the first `/`).
pub fn author_of(slug: &str) -> &str {
    slug.split_once('/').map_or(slug, |(a, _)| a)
}

impl std::str::FromStr for ModelSlug {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        ModelSlug::parse(s)
    }
}

impl fmt::Display for ModelSlug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// One routed request, validated. Field meanings follow DESIGN.md (schema v1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// Unique per request; retries carry the same id and count once.
    pub event_id: String,
    /// When the request started.
    pub ts: Timestamp,
    /// The calling application; never published.
    pub app_id: String,
    pub task: Task,
    /// What the app asked for (may be a router alias such as `openrouter/auto`).
    pub model_requested: String,
    /// The model that actually served the request.
    pub model: ModelSlug,
    /// Who served it.
    pub provider: String,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub reasoning_tokens: u32,
    pub cached_tokens: u32,
    pub cost: MicroUsd,
    pub latency_ms: u32,
    pub ttft_ms: u32,
    pub status: Status,
    pub finish_reason: Option<String>,
    /// 0 when the first choice served the request; n after n fallbacks.
    pub attempt: u8,
    /// The agent run (trace) the call belongs to, when the sender knows it.
    pub trace_id: Option<String>,
    /// The call's 0-based position within its trace.
    pub step: Option<u32>,
}

impl Event {
    /// Input plus output tokens: the quantity share is measured in.
    pub fn tokens(&self) -> u64 {
        u64::from(self.input_tokens) + u64::from(self.output_tokens)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_author_and_normalisation() {
        let s = ModelSlug::parse("Anthropic/Claude-Sonnet-4.5").unwrap();
        assert_eq!(s.as_str(), "anthropic/claude-sonnet-4.5");
        assert_eq!(s.author(), "anthropic");
        assert!(ModelSlug::parse("gpt-4o").is_err());
        assert!(ModelSlug::parse("a/b/c").is_err());
        assert!(ModelSlug::parse("/b").is_err());
        assert!(ModelSlug::parse("a/b c").is_err());
        assert!(ModelSlug::parse("openai/gpt-4o:extended").is_ok());
    }

    #[test]
    fn micro_usd_display_is_exact() {
        assert_eq!(MicroUsd(1_234_567).to_string(), "1.234567");
        assert_eq!(MicroUsd(5).to_string(), "0.000005");
        assert_eq!(MicroUsd(-5).to_string(), "-0.000005");
    }
}
