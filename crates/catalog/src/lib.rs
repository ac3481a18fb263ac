//! The model and price catalog: which `author/model` slugs exist, what they cost on which date,
//! which providers serve them.
//!
//! The catalog is `data/model-prices.csv` (from genai-prices 0.2.3, MIT, pydantic/genai-prices;
//! see `data/README.md`), embedded at compile time so the product works without any data
//! directory. Models are keyed by the `openrouter` provider's `author/model` slugs, the names
//! modelshare events carry; other providers' rows say who else serves a model.
//!
//! Layout:
//! - `csv` (private): the quoted-field CSV reader.
//! - `matching` (private): provider model id → OpenRouter slug normalisation.
//! - this module: [`Catalog`], [`ModelInfo`], [`Price`], [`PriceRow`], [`PriceChange`],
//!   [`CatalogError`].

mod csv;
mod matching;

use chrono::NaiveDate;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::LazyLock;

/// The CSV compiled into the binary.
pub const EMBEDDED_CSV: &str = include_str!("../../../data/model-prices.csv");

/// The provider whose model ids are the `author/model` slugs.
pub const SLUG_PROVIDER: &str = "openrouter";

/// Rows under these provider names do not describe an inference provider a router could route
/// to: the router itself, subscription products, and Hugging Face's router (whose `_x` rows
/// repeat provider `x`).
fn is_serving_provider(provider: &str) -> bool {
    !matches!(provider, SLUG_PROVIDER | "github-copilot" | "cursor")
        && !provider.starts_with("huggingface_")
}

/// Why the catalog text could not be read. Every variant names where the problem is.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum CatalogError {
    #[error("line {line}, column {column}: {message}")]
    Syntax {
        line: usize,
        column: usize,
        message: &'static str,
    },
    #[error("header: missing column `{0}`")]
    MissingColumn(&'static str),
    #[error("line {line}: expected {expected} fields, found {found}")]
    FieldCount {
        line: usize,
        expected: usize,
        found: usize,
    },
    #[error("line {line}, column {column} (`{name}`): {value:?} {message}")]
    Value {
        line: usize,
        column: usize,
        name: &'static str,
        value: String,
        message: &'static str,
    },
    #[error("the catalog has no rows")]
    Empty,
}

/// List prices in USD per million tokens.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Price {
    /// Per million prompt tokens; 0 when the catalog leaves it empty (free models).
    pub input_usd_per_mtok: f64,
    /// Per million completion tokens; 0 when the catalog leaves it empty.
    pub output_usd_per_mtok: f64,
    /// Per million prompt tokens read from a prompt cache, when the model has a cache price.
    pub cache_read_usd_per_mtok: Option<f64>,
}

impl Price {
    /// Cost of one request in integer micro-USD. `cached` tokens are part of `input` and are
    /// billed at the cache-read price instead of the input price (at the input price when the
    /// model has no cache price).
    ///
    /// Prices are taken to whole micro-USD per million tokens (the catalog has at most six
    /// decimals) and the total is rounded once, so the result is exact integer arithmetic.
    pub fn cost_micro_usd(&self, input: u32, output: u32, cached: u32) -> i64 {
        let micro = |usd: f64| (usd * 1e6).round() as i128;
        let cached = cached.min(input);
        let cache_price = self
            .cache_read_usd_per_mtok
            .unwrap_or(self.input_usd_per_mtok);
        let pico = i128::from(input - cached) * micro(self.input_usd_per_mtok)
            + i128::from(cached) * micro(cache_price)
            + i128::from(output) * micro(self.output_usd_per_mtok);
        // pico-USD per token·Mtok → micro-USD: divide by 1e6, rounding half up.
        i64::try_from((pico + 500_000) / 1_000_000).unwrap_or(i64::MAX)
    }

    /// One number to compare prices by: a 3:1 input:output token mix, per million tokens.
    pub fn blended_usd_per_mtok(&self) -> f64 {
        (3.0 * self.input_usd_per_mtok + self.output_usd_per_mtok) / 4.0
    }
}

/// One row of a model's price history.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PriceRow {
    /// The day this price took effect; `None` for the first known price.
    pub from: Option<NaiveDate>,
    pub price: Price,
}

/// A model as OpenRouter lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelInfo {
    /// `author/model`, possibly with a `:variant` (`:free`, `:batch`).
    pub slug: String,
    /// Display name; the slug when the catalog has none.
    pub name: String,
    /// The part of the slug before the slash.
    pub author: String,
    pub context_window: Option<u32>,
    /// Oldest first; the first row has `from: None`.
    pub prices: Vec<PriceRow>,
}

impl ModelInfo {
    /// The price in force on `date`: the latest row that took effect on or before it. `None` when
    /// every row starts after `date`.
    pub fn price_at(&self, date: NaiveDate) -> Option<Price> {
        self.prices
            .iter()
            .rev()
            .find(|r| r.from.is_none_or(|f| f <= date))
            .map(|r| r.price)
    }
}

/// A dated change of a model's list price.
#[derive(Debug, Clone, PartialEq)]
pub struct PriceChange {
    pub slug: String,
    pub date: NaiveDate,
    pub old: Price,
    pub new: Price,
}

impl PriceChange {
    /// True when the blended price went down.
    pub fn is_cut(&self) -> bool {
        self.new.blended_usd_per_mtok() < self.old.blended_usd_per_mtok()
    }

    /// Relative change of the blended price: -0.25 for a 25 % cut.
    pub fn relative_change(&self) -> f64 {
        let old = self.old.blended_usd_per_mtok();
        if old > 0.0 {
            self.new.blended_usd_per_mtok() / old - 1.0
        } else {
            0.0
        }
    }
}

/// The parsed catalog.
#[derive(Debug, Clone)]
pub struct Catalog {
    models: BTreeMap<String, ModelInfo>,
    /// slug (without variant) → providers serving it, sorted.
    providers: HashMap<String, Vec<String>>,
    /// canonical model key → slugs (without variant) with that model part.
    keys: HashMap<String, Vec<String>>,
    changes: Vec<PriceChange>,
}

static EMBEDDED: LazyLock<Catalog> = LazyLock::new(|| {
    // The embedded text is fixed at compile time and covered by a unit test.
    Catalog::parse(EMBEDDED_CSV).unwrap_or_else(|e| panic!("embedded model catalog: {e}"))
});

/// Column positions, looked up by header name so column order can change.
struct Columns {
    provider: usize,
    model: usize,
    name: usize,
    context_window: usize,
    price_from: usize,
    input: usize,
    output: usize,
    cache_read: usize,
}

impl Columns {
    fn from_header(header: &[String]) -> Result<Columns, CatalogError> {
        let find = |name: &'static str| {
            header
                .iter()
                .position(|h| h.trim() == name)
                .ok_or(CatalogError::MissingColumn(name))
        };
        Ok(Columns {
            provider: find("provider")?,
            model: find("model")?,
            name: find("name")?,
            context_window: find("context_window")?,
            price_from: find("price_from")?,
            input: find("input_usd_per_mtok")?,
            output: find("output_usd_per_mtok")?,
            cache_read: find("cache_read_usd_per_mtok")?,
        })
    }
}

/// One data row, typed.
struct Row {
    provider: String,
    model: String,
    name: String,
    context_window: Option<u32>,
    row: PriceRow,
}

fn parse_row(rec: &csv::Record, cols: &Columns) -> Result<Row, CatalogError> {
    let field = |i: usize| rec.fields[i].trim();
    let bad = |i: usize, name: &'static str, message: &'static str| CatalogError::Value {
        line: rec.line,
        column: i + 1,
        name,
        value: rec.fields[i].clone(),
        message,
    };
    let required = |i: usize, name: &'static str| {
        let v = field(i);
        if v.is_empty() {
            Err(bad(i, name, "must not be empty"))
        } else {
            Ok(v.to_owned())
        }
    };
    let price = |i: usize, name: &'static str| -> Result<Option<f64>, CatalogError> {
        let v = field(i);
        if v.is_empty() {
            return Ok(None);
        }
        match v.parse::<f64>() {
            Ok(p) if p.is_finite() && p >= 0.0 => Ok(Some(p)),
            _ => Err(bad(i, name, "is not a non-negative number")),
        }
    };
    let context_window = match field(cols.context_window) {
        "" => None,
        v => Some(v.parse::<u32>().map_err(|_| {
            bad(
                cols.context_window,
                "context_window",
                "is not a token count",
            )
        })?),
    };
    let from = match field(cols.price_from) {
        "" => None,
        v => Some(
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map_err(|_| bad(cols.price_from, "price_from", "is not a YYYY-MM-DD date"))?,
        ),
    };
    Ok(Row {
        provider: required(cols.provider, "provider")?,
        model: required(cols.model, "model")?,
        name: field(cols.name).to_owned(),
        context_window,
        row: PriceRow {
            from,
            price: Price {
                input_usd_per_mtok: price(cols.input, "input_usd_per_mtok")?.unwrap_or(0.0),
                output_usd_per_mtok: price(cols.output, "output_usd_per_mtok")?.unwrap_or(0.0),
                cache_read_usd_per_mtok: price(cols.cache_read, "cache_read_usd_per_mtok")?,
            },
        },
    })
}

/// `author/model:variant` → `author/model`.
fn base_slug(slug: &str) -> &str {
    slug.split_once(':').map_or(slug, |(b, _)| b)
}

impl Catalog {
    /// The catalog compiled into the binary, parsed on first use.
    pub fn embedded() -> &'static Catalog {
        &EMBEDDED
    }

    /// Parses catalog CSV text (header row first; columns found by name).
    pub fn parse(text: &str) -> Result<Catalog, CatalogError> {
        let records = csv::parse(text).map_err(|e| CatalogError::Syntax {
            line: e.line,
            column: e.column,
            message: e.message,
        })?;
        let mut records = records.into_iter();
        let header = records.next().ok_or(CatalogError::Empty)?;
        let cols = Columns::from_header(&header.fields)?;
        let mut rows = Vec::new();
        for rec in records {
            if rec.fields.len() != header.fields.len() {
                return Err(CatalogError::FieldCount {
                    line: rec.line,
                    expected: header.fields.len(),
                    found: rec.fields.len(),
                });
            }
            rows.push(parse_row(&rec, &cols)?);
        }
        if rows.is_empty() {
            return Err(CatalogError::Empty);
        }
        Ok(Self::build(rows))
    }

    fn build(rows: Vec<Row>) -> Catalog {
        let mut models: BTreeMap<String, ModelInfo> = BTreeMap::new();
        // Names and context windows other providers know, to fill OpenRouter's gaps.
        let mut fallback_meta: HashMap<String, (String, Option<u32>)> = HashMap::new();
        let mut offers: Vec<(String, String)> = Vec::new();
        for r in rows {
            if r.provider == SLUG_PROVIDER {
                let author = r.model.split_once('/').map_or("", |(a, _)| a).to_owned();
                let m = models.entry(r.model.clone()).or_insert_with(|| ModelInfo {
                    slug: r.model.clone(),
                    name: String::new(),
                    author,
                    context_window: None,
                    prices: Vec::new(),
                });
                if m.name.is_empty() {
                    m.name = r.name;
                }
                m.context_window = m.context_window.or(r.context_window);
                // A repeated date replaces the earlier row rather than adding a zero-day price.
                m.prices.retain(|p| p.from != r.row.from);
                m.prices.push(r.row);
            } else if is_serving_provider(&r.provider) {
                offers.push((r.provider, r.model.clone()));
                if !r.name.is_empty() || r.context_window.is_some() {
                    fallback_meta
                        .entry(r.model)
                        .or_insert((r.name, r.context_window));
                }
            }
        }

        let mut keys: HashMap<String, Vec<String>> = HashMap::new();
        for slug in models.keys() {
            if slug.contains(':') {
                continue;
            }
            if let Some((_, model)) = slug.split_once('/') {
                keys.entry(matching::canonical(model))
                    .or_default()
                    .push(slug.clone());
            }
        }

        let mut providers: HashMap<String, BTreeSet<String>> = HashMap::new();
        let mut meta_by_slug: HashMap<String, (String, Option<u32>)> = HashMap::new();
        for (provider, model_id) in &offers {
            for slug in resolve(&keys, model_id) {
                providers
                    .entry(slug.clone())
                    .or_default()
                    .insert(provider.clone());
                if let Some(meta) = fallback_meta.get(model_id) {
                    meta_by_slug
                        .entry(slug.clone())
                        .or_insert_with(|| meta.clone());
                }
            }
        }

        let mut changes = Vec::new();
        for m in models.values_mut() {
            m.prices.sort_by_key(|p| p.from);
            if let Some((name, ctx)) = meta_by_slug.get(base_slug(&m.slug)) {
                if m.name.is_empty() {
                    m.name.clone_from(name);
                }
                m.context_window = m.context_window.or(*ctx);
            }
            if m.name.is_empty() {
                m.name.clone_from(&m.slug);
            }
            for pair in m.prices.windows(2) {
                if let (Some(date), true) = (pair[1].from, pair[0].price != pair[1].price) {
                    changes.push(PriceChange {
                        slug: m.slug.clone(),
                        date,
                        old: pair[0].price,
                        new: pair[1].price,
                    });
                }
            }
        }
        changes.sort_by(|a, b| a.date.cmp(&b.date).then_with(|| a.slug.cmp(&b.slug)));

        Catalog {
            models,
            providers: providers
                .into_iter()
                .map(|(k, v)| (k, v.into_iter().collect()))
                .collect(),
            keys,
            changes,
        }
    }

    /// The model with this OpenRouter slug.
    pub fn model(&self, slug: &str) -> Option<&ModelInfo> {
        self.models.get(slug)
    }

    /// Every model, ordered by slug.
    pub fn models(&self) -> impl Iterator<Item = &ModelInfo> {
        self.models.values()
    }

    /// The price of `slug` in force on `date`.
    pub fn price_at(&self, slug: &str, date: NaiveDate) -> Option<Price> {
        self.model(slug)?.price_at(date)
    }

    /// Every dated price change (increases and cuts), ordered by date then slug.
    pub fn price_changes(&self) -> &[PriceChange] {
        &self.changes
    }

    /// The OpenRouter slug a provider's model id names, if any (`claude-3-5-sonnet` →
    /// `anthropic/claude-3.5-sonnet`).
    pub fn slug_for(&self, provider_model_id: &str) -> Option<&str> {
        resolve(&self.keys, provider_model_id)
            .first()
            .map(String::as_str)
    }

    /// Providers that serve `slug` (a `:variant` is served by whoever serves the base model),
    /// sorted by name. Never empty: when no provider row matches, the author stands in as its
    /// own provider.
    pub fn providers_for<'a>(&'a self, slug: &'a str) -> Vec<&'a str> {
        match self.providers.get(base_slug(slug)) {
            Some(p) if !p.is_empty() => p.iter().map(String::as_str).collect(),
            _ => vec![slug.split_once('/').map_or(slug, |(a, _)| a)],
        }
    }
}

/// The slugs a provider model id matches: the first candidate key with any match wins; among
/// several slugs with the same model part, those whose author matches the id's namespace
/// (`Qwen/…` → `qwen/…`) are preferred.
fn resolve<'a>(keys: &'a HashMap<String, Vec<String>>, model_id: &str) -> &'a [String] {
    for key in matching::candidates(model_id) {
        if let Some(slugs) = keys.get(&key) {
            if slugs.len() > 1 {
                let ns = model_id
                    .split_once('/')
                    .map(|(n, _)| n.to_ascii_lowercase());
                if let Some(i) = slugs.iter().position(|s| {
                    ns.as_deref()
                        .is_some_and(|n| s.split_once('/').is_some_and(|(a, _)| a == n))
                }) {
                    return &slugs[i..=i];
                }
            }
            return slugs;
        }
    }
    &[]
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn date(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn embedded_catalog_parses_with_real_rows() {
        let c = Catalog::embedded();
        // 1,134 openrouter rows: 923 slugs, 211 dated price rows.
        assert_eq!(c.models().count(), 923);
        let m = c.model("google/gemini-2.5-flash").unwrap();
        assert_eq!(m.name, "Gemini 2.5 Flash");
        assert_eq!(m.author, "google");
        assert_eq!(m.context_window, Some(1_048_576));
        assert_eq!(m.prices.len(), 2);
        assert_eq!(
            m.prices[0],
            PriceRow {
                from: None,
                price: Price {
                    input_usd_per_mtok: 0.3,
                    output_usd_per_mtok: 2.5,
                    cache_read_usd_per_mtok: Some(0.075)
                }
            }
        );
        assert_eq!(m.prices[1].from, Some(date("2026-10-19")));
        assert_eq!(m.prices[1].price.cache_read_usd_per_mtok, Some(0.03));
    }

    #[test]
    fn price_at_picks_the_row_in_force() {
        let c = Catalog::embedded();
        // openrouter,deepseek/deepseek-chat: 0.38/0.89, then 0.32/0.89 from 2026-10-19, then
        // 0.2574/1.0287 from 2026-10-20.
        let p = |d: &str| c.price_at("deepseek/deepseek-chat", date(d)).unwrap();
        assert_eq!(p("2026-01-01").input_usd_per_mtok, 0.38);
        assert_eq!(p("2026-10-18").input_usd_per_mtok, 0.38);
        assert_eq!(p("2026-10-19").input_usd_per_mtok, 0.32);
        assert_eq!(p("2026-10-20").input_usd_per_mtok, 0.2574);
        assert_eq!(p("2030-01-01").output_usd_per_mtok, 1.0287);
        assert_eq!(p("2030-01-01").cache_read_usd_per_mtok, None);
        assert!(c.price_at("nobody/nothing", date("2026-01-01")).is_none());
        // A model with no name at OpenRouter borrows the provider's display name.
        assert_eq!(
            c.model("anthropic/claude-3.5-sonnet").unwrap().name,
            "Claude Sonnet 3.5"
        );
    }

    #[test]
    fn price_changes_are_real_dated_rows() {
        let c = Catalog::embedded();
        let v4: Vec<_> = c
            .price_changes()
            .iter()
            .filter(|ch| ch.slug == "deepseek/deepseek-v4-flash")
            .collect();
        // 0.0983/0.1966 → 0.091/0.182 (10-19) → 0.14/0.28 (11-03) → 0.105/0.21 (11-09).
        assert_eq!(v4.len(), 3);
        assert_eq!(v4[2].date, date("2026-11-09"));
        assert_eq!(v4[2].old.input_usd_per_mtok, 0.14);
        assert_eq!(v4[2].new.input_usd_per_mtok, 0.105);
        assert_eq!(v4[2].new.output_usd_per_mtok, 0.21);
        assert!(v4[2].is_cut());
        assert!((v4[2].relative_change() + 0.25).abs() < 1e-9);
        assert!(!v4[1].is_cut());
        // qwen/qwen3.6-plus repeats its price on 2026-10-19: not a change.
        assert!(
            c.price_changes()
                .iter()
                .all(|ch| ch.slug != "qwen/qwen3.6-plus")
        );
        // openai/gpt-4o only gains a cache price that day: still a change, though not a cut.
        let gpt4o: Vec<_> = c
            .price_changes()
            .iter()
            .filter(|ch| ch.slug == "openai/gpt-4o")
            .collect();
        assert_eq!(gpt4o.len(), 1);
        assert_eq!(gpt4o[0].new.cache_read_usd_per_mtok, Some(1.25));
        assert!(!gpt4o[0].is_cut());
        assert!(c.price_changes().windows(2).all(|w| w[0].date <= w[1].date));
    }

    #[test]
    fn provider_ids_map_to_slugs() {
        let c = Catalog::embedded();
        for (id, slug) in [
            ("claude-3-5-sonnet", "anthropic/claude-3.5-sonnet"),
            ("claude-opus-4-5", "anthropic/claude-opus-4.5"),
            ("claude-3-5-haiku-latest", "anthropic/claude-3.5-haiku"),
            (
                "regional.anthropic.claude-sonnet-4-5-20250929-v1:0",
                "anthropic/claude-sonnet-4.5",
            ),
            ("global.openai.gpt-6-sol", "openai/gpt-6-sol"),
            ("deepseek-v4p1-flash", "deepseek/deepseek-v4.1-flash"),
            (
                "deepseek-ai/DeepSeek-V4-Flash",
                "deepseek/deepseek-v4-flash",
            ),
            (
                "meta-llama/Llama-3.3-70B-Instruct-Turbo",
                "meta-llama/llama-3.3-70b-instruct",
            ),
            (
                "llama-3.3-70b-versatile",
                "meta-llama/llama-3.3-70b-instruct",
            ),
            ("GLM-4.6", "z-ai/glm-4.6"),
            ("qwen-3-32b", "qwen/qwen3-32b"),
            ("Qwen/Qwen3-14B-FP8", "qwen/qwen3-14b"),
            ("amazon.nova-pro-v1:0", "amazon/nova-pro-v1"),
            ("kimi-k2p6", "moonshotai/kimi-k2.6"),
        ] {
            assert_eq!(c.slug_for(id), Some(slug), "{id}");
        }
        assert_eq!(c.slug_for("whisper-large-v3"), None);
    }

    #[test]
    fn providers_for_real_models() {
        let c = Catalog::embedded();
        let claude = c.providers_for("anthropic/claude-sonnet-4.5");
        for p in ["anthropic", "aws", "google"] {
            assert!(claude.contains(&p), "{claude:?}");
        }
        assert!(!claude.contains(&"openrouter"));
        let flash = c.providers_for("deepseek/deepseek-v4-flash");
        for p in ["deepseek", "fireworks", "avian"] {
            assert!(flash.contains(&p), "{flash:?}");
        }
        assert!(flash.windows(2).all(|w| w[0] < w[1]));
        // Variants are served by the base model's providers.
        assert_eq!(c.providers_for("anthropic/claude-sonnet-4.5:batch"), claude);
        // No provider row: the author stands in.
        assert_eq!(c.providers_for("mancer/weaver"), vec!["mancer"]);
    }

    #[test]
    fn cost_is_exact_integer_micro_usd() {
        let p = Price {
            input_usd_per_mtok: 3.0,
            output_usd_per_mtok: 15.0,
            cache_read_usd_per_mtok: Some(0.3),
        };
        // 10k input of which 4k cached, 500 output: 6000·3 + 4000·0.3 + 500·15 = 26 700 µUSD.
        assert_eq!(p.cost_micro_usd(10_000, 500, 4_000), 26_700);
        let cheap = Price {
            input_usd_per_mtok: 0.0344,
            output_usd_per_mtok: 0.08,
            cache_read_usd_per_mtok: None,
        };
        // 1000·0.0344 + 10·0.08 = 34.4 + 0.8 = 35.2 → 35.
        assert_eq!(cheap.cost_micro_usd(1000, 10, 0), 35);
        // Without a cache price, cached tokens cost the input price.
        assert_eq!(cheap.cost_micro_usd(1000, 10, 1000), 35);
    }

    #[test]
    fn parse_handles_quotes_and_reports_positions() {
        let text = "provider,model,name,context_window,price_from,input_usd_per_mtok,output_usd_per_mtok,cache_read_usd_per_mtok\n\
                    openrouter,a/b,\"Model, \"\"quoted\"\"\",1000,,1,2,\n";
        let c = Catalog::parse(text).unwrap();
        assert_eq!(c.model("a/b").unwrap().name, "Model, \"quoted\"");
        let bad = text.replace(",1,2,", ",1,x,");
        assert_eq!(
            Catalog::parse(&bad).unwrap_err().to_string(),
            "line 2, column 7 (`output_usd_per_mtok`): \"x\" is not a non-negative number"
        );
        let bad = text
            .replace("2026", "")
            .replace(",,1,2,", ",2026-13-01,1,2,");
        assert!(
            Catalog::parse(&bad)
                .unwrap_err()
                .to_string()
                .starts_with("line 2, column 5")
        );
        let short = text.replace(",1,2,\n", ",1,2\n");
        assert_eq!(
            Catalog::parse(&short).unwrap_err(),
            CatalogError::FieldCount {
                line: 2,
                expected: 8,
                found: 7
            }
        );
        assert_eq!(
            Catalog::parse("provider,model\n").unwrap_err(),
            CatalogError::MissingColumn("name")
        );
        assert!(matches!(
            Catalog::parse(&format!("{text}openrouter,\"c/d,x\n")).unwrap_err(),
            CatalogError::Syntax {
                line: 3,
                column: 2,
                ..
            }
        ));
    }
}
