//! The fixed ingredients of the traffic model: which real models get traffic and how good each is
//! at what, the kinds of apps that call them, the token shape of each task, and how fast each
//! provider is.
//!
//! The numbers are hand-set to resemble a public router's rankings (a few authors carry most
//! tokens, programming is the largest task, roleplay second); the model slugs are real catalog
//! slugs, and their prices always come from the catalog.

use modelshare_event::Task;

/// How a model's quality varies by task.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Profile {
    /// Strong at programming, weak at roleplay.
    Code,
    /// Good at everything, a little less at roleplay.
    General,
    /// Roleplay and creative writing fine-tunes.
    Creative,
    /// Small, cheap models for translation, SEO, short content.
    Light,
    /// Search-grounded models for questions and research.
    Search,
}

impl Profile {
    /// Utility offset by task, in [`Task::ALL`] order.
    pub(crate) fn affinity(self, task: Task) -> f64 {
        const CODE: [f64; 13] = [
            1.6, -2.5, -0.6, -0.6, 0.6, 0.3, -0.6, -0.2, -0.2, -0.3, 0.0, -0.6, -0.3,
        ];
        const GENERAL: [f64; 13] = [
            0.0, -0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3,
        ];
        const CREATIVE: [f64; 13] = [
            -3.0, 2.5, 0.0, -0.8, -1.5, -1.5, -0.5, -1.5, -1.5, -1.5, -1.2, -0.8, 0.3,
        ];
        const LIGHT: [f64; 13] = [
            -1.0, 0.2, 0.6, 0.8, 0.0, -0.2, 1.0, -0.3, -0.2, -0.2, -0.3, 0.4, 0.5,
        ];
        const SEARCH: [f64; 13] = [
            -2.0, -3.0, 0.0, 0.5, 0.3, 1.2, -1.0, 0.5, 0.8, 0.8, 1.2, 1.6, 0.0,
        ];
        let table = match self {
            Profile::Code => &CODE,
            Profile::General => &GENERAL,
            Profile::Creative => &CREATIVE,
            Profile::Light => &LIGHT,
            Profile::Search => &SEARCH,
        };
        table[task as usize]
    }
}

/// One model that gets traffic.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RosterModel {
    pub(crate) slug: &'static str,
    /// Log-scale quality before task affinity and price.
    pub(crate) quality: f64,
    pub(crate) profile: Profile,
    /// Emits reasoning tokens.
    pub(crate) reasoning: bool,
}

const fn m(slug: &'static str, quality: f64, profile: Profile, reasoning: bool) -> RosterModel {
    RosterModel {
        slug,
        quality,
        profile,
        reasoning,
    }
}

use Profile::{Code, Creative, General, Light, Search};

/// Every model the generator routes to; all are real `openrouter` slugs in the catalog (a unit
/// test checks).
pub(crate) const ROSTER: &[RosterModel] = &[
    m("anthropic/claude-sonnet-5.5", 3.6, Code, true),
    m("anthropic/claude-opus-5.5", 2.6, Code, true),
    m("anthropic/claude-sonnet-4.5", 2.0, Code, false),
    m("anthropic/claude-sonnet-5", 1.8, Code, true),
    m("anthropic/claude-haiku-5.5", 1.8, General, false),
    m("anthropic/claude-fable-5.1", 1.2, Creative, false),
    m("openai/gpt-6-sol", 3.2, General, true),
    m("openai/gpt-6.1-sol", 2.2, General, true),
    m("openai/gpt-6-luna", 2.3, Light, false),
    m("openai/gpt-5.6-sol", 1.5, General, true),
    m("openai/gpt-5-mini", 1.5, General, true),
    m("openai/gpt-oss-120b", 1.8, Light, true),
    m("openai/gpt-4o-mini", 1.3, Light, false),
    m("openai/gpt-6-astra", 0.8, Code, true),
    m("google/gemini-3.8-flash", 3.2, General, true),
    m("google/gemini-4-argon", 2.6, Code, true),
    m("google/gemini-3.5-flash-lite", 1.8, Light, false),
    m("google/gemini-2.5-flash", 2.0, General, true),
    m("google/gemini-2.5-pro", 1.2, Code, true),
    m("google/gemma-4-31b-it", 1.2, Light, false),
    m("deepseek/deepseek-v4-flash", 2.4, General, false),
    m("deepseek/deepseek-v4-pro", 2.2, Code, true),
    m("deepseek/deepseek-v4.1-flash", 1.6, Light, false),
    m("deepseek/deepseek-v3.2", 1.8, General, false),
    m("deepseek/deepseek-chat-v3-0324", 2.4, Creative, false),
    m("deepseek/deepseek-r1-0528", 1.0, General, true),
    m("x-ai/grok-4.7", 1.8, General, true),
    m("x-ai/grok-code-fast-1", 2.4, Code, true),
    m("x-ai/grok-4-fast", 2.0, General, false),
    m("x-ai/grok-build-0.1", 1.2, Code, true),
    m("qwen/qwen3.7-plus", 1.5, General, false),
    m("qwen/qwen3-coder-next", 1.8, Code, false),
    m("qwen/qwen3.8-27b", 1.0, General, true),
    m("qwen/qwen3.6-35b-a3b", 1.0, Light, false),
    m("qwen/qwen3.7-max", 1.0, General, true),
    m("qwen/qwen3-235b-a22b-2507", 1.2, General, false),
    m("z-ai/glm-5.3", 1.8, Code, true),
    m("z-ai/glm-5.3-flash", 1.2, Light, false),
    m("z-ai/glm-4.7", 1.2, Code, true),
    m("moonshotai/kimi-k3", 1.8, Code, true),
    m("moonshotai/kimi-k2.7-code", 1.6, Code, false),
    m("moonshotai/kimi-k2.6", 1.2, Creative, false),
    m("minimax/minimax-m3", 1.6, Code, true),
    m("minimax/minimax-m2.7", 1.5, Code, true),
    m("meta-llama/llama-3.3-70b-instruct", 1.4, Light, false),
    m("meta-llama/llama-4-maverick", 1.0, General, false),
    m("meta-llama/llama-3.1-8b-instruct", 0.8, Light, false),
    m("mistralai/mistral-nemo", 1.2, Creative, false),
    m(
        "mistralai/mistral-small-3.2-24b-instruct",
        1.2,
        Light,
        false,
    ),
    m("mistralai/mistral-large-4-0", 0.8, General, false),
    m("mistralai/devstral-2512", 1.2, Code, false),
    m("gryphe/mythomax-l2-13b", 1.4, Creative, false),
    m("sao10k/l3.3-euryale-70b", 1.3, Creative, false),
    m("thedrummer/cydonia-24b-v4.1", 1.2, Creative, false),
    m("thedrummer/rocinante-12b", 1.0, Creative, false),
    m("nousresearch/hermes-4-70b", 1.0, Creative, false),
    m("neversleep/llama-3.1-lumimaid-8b", 0.6, Creative, false),
    m("anthracite-org/magnum-v4-72b", 0.6, Creative, false),
    m("mancer/weaver", 0.2, Creative, false),
    m("xiaomi/mimo-v2.5-pro", 1.2, Code, true),
    m("bytedance-seed/seed-2.0-lite", 1.0, General, false),
    m("inclusionai/ling-3.1-flash", 0.6, Light, false),
    m("perplexity/sonar", 1.6, Search, false),
    m("perplexity/sonar-pro", 1.0, Search, false),
    m("cohere/command-a", 0.5, General, false),
    m("amazon/nova-lite-v1", 0.6, Light, false),
    m("nvidia/nemotron-3-super-120b-a12b", 0.8, General, true),
    m("microsoft/phi-4", 0.3, Light, false),
    m("arcee-ai/trinity-large-thinking", 0.3, General, true),
];

/// Models that can play the released model, in preference order (the seed picks among those
/// not also chosen for a price cut).
pub(crate) const RELEASE_CANDIDATES: &[&str] = &[
    "openai/gpt-6.1-sol",
    "google/gemini-4-argon",
    "moonshotai/kimi-k3",
    "x-ai/grok-4.7",
    "deepseek/deepseek-v4-pro",
    "minimax/minimax-m3",
];

/// Providers that can have the planted outage (catalog names), in preference order: providers
/// with enough traffic that an outage of a couple of hours shows in a small lake (since prompts
/// go to models whose window holds them, the small hosts' models get too few requests there).
pub(crate) const OUTAGE_CANDIDATES: &[&str] = &["anthropic", "openai", "google", "deepseek"];

/// A kind of calling application.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Archetype {
    pub(crate) name: &'static str,
    /// Fraction of apps of this kind.
    pub(crate) frac: f64,
    /// Multiplies the app's Pareto size.
    pub(crate) size: f64,
    /// Range of price sensitivity (utility lost per unit of log price).
    pub(crate) beta: (f64, f64),
    /// Request share by task.
    pub(crate) tasks: &'static [(Task, f64)],
}

/// Vertical apps (legal, finance, health, academia) pick one of these as their main task.
pub(crate) const VERTICALS: [Task; 4] = [Task::Legal, Task::Finance, Task::Health, Task::Academia];

pub(crate) const ARCHETYPES: &[Archetype] = &[
    Archetype {
        name: "coding",
        frac: 0.30,
        size: 1.6,
        beta: (0.0, 0.35),
        tasks: &[
            (Task::Programming, 0.88),
            (Task::Technology, 0.08),
            (Task::Other, 0.04),
        ],
    },
    Archetype {
        name: "companion",
        frac: 0.14,
        size: 3.0,
        beta: (0.2, 0.8),
        tasks: &[
            (Task::Roleplay, 0.93),
            (Task::Other, 0.05),
            (Task::Translation, 0.02),
        ],
    },
    Archetype {
        name: "assistant",
        frac: 0.24,
        size: 1.0,
        beta: (0.1, 0.7),
        tasks: &[
            (Task::Technology, 0.2),
            (Task::Programming, 0.12),
            (Task::Science, 0.1),
            (Task::Trivia, 0.1),
            (Task::Health, 0.08),
            (Task::Finance, 0.07),
            (Task::Academia, 0.08),
            (Task::Legal, 0.05),
            (Task::Marketing, 0.05),
            (Task::Translation, 0.05),
            (Task::Other, 0.1),
        ],
    },
    Archetype {
        name: "content",
        frac: 0.12,
        size: 1.0,
        beta: (0.2, 0.8),
        tasks: &[
            (Task::Marketing, 0.55),
            (Task::Seo, 0.35),
            (Task::Translation, 0.05),
            (Task::Other, 0.05),
        ],
    },
    Archetype {
        name: "localization",
        frac: 0.05,
        size: 0.8,
        beta: (0.4, 1.0),
        tasks: &[
            (Task::Translation, 0.9),
            (Task::Marketing, 0.05),
            (Task::Other, 0.05),
        ],
    },
    Archetype {
        name: "vertical",
        frac: 0.10,
        size: 0.8,
        beta: (0.1, 0.6),
        // The first entry is replaced by one of VERTICALS.
        tasks: &[
            (Task::Legal, 0.8),
            (Task::Technology, 0.1),
            (Task::Other, 0.1),
        ],
    },
    Archetype {
        name: "research",
        frac: 0.05,
        size: 0.8,
        beta: (0.1, 0.5),
        tasks: &[
            (Task::Science, 0.5),
            (Task::Academia, 0.3),
            (Task::Technology, 0.2),
        ],
    },
];

/// Token shape of a task's requests.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TaskShape {
    /// The lognormal of the task's short prompts (below 8 k tokens); how many prompts are
    /// longer, and how long, is the task's context mix (`prompt::CONTEXT_MIXES`).
    pub(crate) input_median: f64,
    pub(crate) input_sigma: f64,
    pub(crate) output_median: f64,
    pub(crate) output_sigma: f64,
    /// Chance a request reads from the prompt cache (on models with a cache price).
    pub(crate) cache_p: f64,
    /// Median reasoning tokens on reasoning models.
    pub(crate) reasoning_median: f64,
    /// Share of successful requests that end in tool calls.
    pub(crate) tool_calls: f64,
}

const fn shape(
    input_median: f64,
    input_sigma: f64,
    output_median: f64,
    output_sigma: f64,
    cache_p: f64,
    reasoning_median: f64,
    tool_calls: f64,
) -> TaskShape {
    TaskShape {
        input_median,
        input_sigma,
        output_median,
        output_sigma,
        cache_p,
        reasoning_median,
        tool_calls,
    }
}

/// Token shapes in [`Task::ALL`] order. Short programming prompts crowd towards 8 k (agent
/// contexts; the longer ones are its context mix's); translation output tracks its input.
pub(crate) const SHAPES: [TaskShape; 13] = [
    shape(7000.0, 1.1, 450.0, 0.9, 0.7, 700.0, 0.35), // programming
    shape(3500.0, 0.8, 280.0, 0.5, 0.4, 250.0, 0.0),  // roleplay
    shape(1200.0, 0.8, 600.0, 0.6, 0.1, 300.0, 0.02), // marketing
    shape(1500.0, 0.8, 800.0, 0.6, 0.1, 300.0, 0.02), // seo
    shape(2500.0, 1.0, 500.0, 0.7, 0.3, 500.0, 0.08), // technology
    shape(2000.0, 1.0, 600.0, 0.7, 0.2, 700.0, 0.03), // science
    shape(900.0, 0.9, 900.0, 0.9, 0.1, 150.0, 0.0),   // translation
    shape(4000.0, 1.0, 500.0, 0.7, 0.3, 500.0, 0.02), // legal
    shape(2500.0, 1.0, 450.0, 0.7, 0.2, 500.0, 0.05), // finance
    shape(1200.0, 0.9, 450.0, 0.6, 0.1, 400.0, 0.01), // health
    shape(3000.0, 1.0, 700.0, 0.7, 0.2, 600.0, 0.02), // academia
    shape(300.0, 0.7, 150.0, 0.6, 0.05, 150.0, 0.0),  // trivia
    shape(1000.0, 1.0, 300.0, 0.8, 0.1, 250.0, 0.05), // other
];

/// Request-start weight of each UTC hour (Americas and Europe overlap in the afternoon).
pub(crate) const HOURLY: [f64; 24] = [
    0.75, 0.65, 0.55, 0.50, 0.48, 0.50, 0.58, 0.70, 0.85, 0.95, 1.00, 1.05, 1.10, 1.20, 1.30, 1.35,
    1.35, 1.30, 1.20, 1.10, 1.00, 0.95, 0.90, 0.82,
];

/// Traffic by weekday, Monday first.
pub(crate) const WEEKDAY: [f64; 7] = [1.0, 1.03, 1.04, 1.02, 0.96, 0.76, 0.74];

/// The name events carry for a catalog provider.
pub(crate) fn provider_display(catalog_name: &str) -> &str {
    match catalog_name {
        "aws" => "amazon-bedrock",
        "google" => "google-vertex",
        other => other,
    }
}

/// The provider an author runs itself, when its catalog name differs from the author.
pub(crate) fn first_party(author: &str) -> &str {
    match author {
        "meta-llama" => "meta",
        "mistralai" => "mistral",
        "z-ai" => "zai",
        "amazon" => "aws",
        "microsoft" => "azure",
        other => other,
    }
}

/// Latency character of a provider: median time to first token and median decode speed.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Speed {
    pub(crate) ttft_ms: f64,
    pub(crate) tokens_per_s: f64,
    /// Multiplies the background failure rate.
    pub(crate) flakiness: f64,
}

/// Speeds derive from the provider's name so they are stable across runs and seeds; the
/// custom-silicon providers are an order of magnitude faster.
pub(crate) fn provider_speed(name: &str) -> Speed {
    let h = crate::rng::hash(&name.bytes().map(u64::from).collect::<Vec<_>>());
    let u = |k: u64| crate::rng::unit(crate::rng::mix64(h ^ k));
    match name {
        "groq" | "cerebras" | "sambanova" => Speed {
            ttft_ms: 120.0 + 100.0 * u(1),
            tokens_per_s: 600.0 + 900.0 * u(2),
            flakiness: 1.5,
        },
        _ => Speed {
            ttft_ms: 280.0 + 600.0 * u(1),
            tokens_per_s: 35.0 + 110.0 * u(2),
            flakiness: 0.5 + 1.5 * u(3),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use modelshare_catalog::Catalog;

    #[test]
    fn roster_slugs_are_real_and_unique() {
        let c = Catalog::embedded();
        let mut seen = std::collections::HashSet::new();
        for r in ROSTER {
            assert!(c.model(r.slug).is_some(), "{} not in the catalog", r.slug);
            assert!(
                modelshare_event::ModelSlug::parse(r.slug).is_ok(),
                "{}",
                r.slug
            );
            assert!(seen.insert(r.slug), "{} twice", r.slug);
        }
        for s in RELEASE_CANDIDATES {
            assert!(ROSTER.iter().any(|r| r.slug == *s), "{s}");
        }
        assert!((30..=80).contains(&ROSTER.len()));
    }

    #[test]
    fn archetype_fractions_and_task_shares_sum_to_one() {
        let total: f64 = ARCHETYPES.iter().map(|a| a.frac).sum();
        assert!((total - 1.0).abs() < 1e-9);
        for a in ARCHETYPES {
            let s: f64 = a.tasks.iter().map(|t| t.1).sum();
            assert!((s - 1.0).abs() < 1e-9, "{}", a.name);
        }
    }
}
