//! How long prompts are: each task's mix over the four context classes of
//! [`modelshare_event::Context`], and the draw of a prompt's input tokens within its class.
//!
//! A request draws its class first, from its task's mix ([`CONTEXT_MIXES`]), then its input
//! tokens within the class, before anything decides which model it goes to: routing (see
//! `emit`) can then depend on the class. Within a class:
//! - `short` prompts follow the task's lognormal ([`crate::roster::SHAPES`]) cut at 8 k tokens
//!   (drawn again until they fall below it), so short prompts keep each task's own shape;
//! - `medium`, `long` and `very_long` prompts follow a Pareto law of index [`TAIL_INDEX`]
//!   truncated to the class (density falling with length, as document and history lengths do),
//!   `very_long` ending at [`LONGEST_PROMPT`].

use crate::rng::Rng;
use crate::roster::SHAPES;
use modelshare_event::{Context, Task};

/// The share of a task's requests in each context class, in [`Context::ALL`] order (`short`,
/// `medium`, `long`, `very_long`); the shares sum to 1.
pub(crate) type ContextMix = [f64; 4];

/// Context mixes in [`Task::ALL`] order.
pub(crate) const CONTEXT_MIXES: [ContextMix; 13] = [
    // programming: coding agents send files, diffs and repository maps; a third of requests
    // carry 8–32 k tokens and about one in seven a whole repository's context (> 32 k).
    [0.50, 0.35, 0.12, 0.03],
    // roleplay: chat histories; half the sessions have grown past 8 k, a few past 32 k.
    [0.45, 0.48, 0.065, 0.005],
    // marketing: briefs and product copy, almost all short.
    [0.93, 0.06, 0.01, 0.0],
    // seo: a page or two of content.
    [0.88, 0.10, 0.02, 0.0],
    // technology: questions with logs or configuration pasted in.
    [0.75, 0.18, 0.06, 0.01],
    // science: papers and data descriptions.
    [0.72, 0.18, 0.08, 0.02],
    // translation: sentences and paragraphs, almost all short.
    [0.95, 0.045, 0.005, 0.0],
    // legal: contracts and filings, more than a fifth of requests over 32 k.
    [0.48, 0.30, 0.18, 0.04],
    // finance: reports and statements.
    [0.68, 0.20, 0.10, 0.02],
    // health: questions and short records.
    [0.85, 0.12, 0.03, 0.0],
    // academia: papers, theses and reading lists, long like legal documents.
    [0.50, 0.30, 0.17, 0.03],
    // trivia: one question.
    [0.98, 0.02, 0.0, 0.0],
    // other.
    [0.85, 0.11, 0.035, 0.005],
];

/// The longest prompt drawn (768 k tokens): every model with a window of a million tokens holds
/// it with room for the answer, so a very long request always has a model to go to.
pub(crate) const LONGEST_PROMPT: u64 = 768 * 1024;

/// The Pareto index of prompt lengths within `medium`, `long` and `very_long`: at 1, a class
/// spanning ×4 has a quarter of its density per log-token at its top that it has at its bottom.
pub(crate) const TAIL_INDEX: f64 = 1.0;

/// Draws of a task's lognormal a short prompt gets before it takes the lognormal's median
/// (every task's median is short, so at least every other draw succeeds).
const SHORT_DRAWS: u32 = 64;

/// A request's prompt before it has a model: its context class and its input tokens (not
/// rounded; a model's window may still cap them, see `emit`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Prompt {
    pub(crate) context: Context,
    pub(crate) input: f64,
}

/// Draws a prompt of `task`: its class from the task's mix, then its length within the class.
pub(crate) fn draw(rng: &mut Rng, task: Task) -> Prompt {
    let context = class_at(&CONTEXT_MIXES[task as usize], rng.f64());
    let (from, to) = context.range();
    let input = match context {
        Context::Short => short_input(rng, task, to.unwrap_or(from)),
        _ => tail_input(rng.f64(), from, to.unwrap_or(LONGEST_PROMPT)),
    };
    Prompt { context, input }
}

/// The class at cumulative position `u` in `[0, 1)` of `mix` (classes with no share are never
/// chosen; rounding past the last share lands in the last class that has one).
fn class_at(mix: &ContextMix, u: f64) -> Context {
    let mut acc = 0.0;
    let mut last = Context::Short;
    for (&class, &share) in Context::ALL.iter().zip(mix) {
        if share <= 0.0 {
            continue;
        }
        acc += share;
        last = class;
        if u < acc {
            return class;
        }
    }
    last
}

/// A short prompt: the task's lognormal, drawn again until it falls below `below` tokens.
fn short_input(rng: &mut Rng, task: Task, below: u64) -> f64 {
    let shape = &SHAPES[task as usize];
    let below = below as f64;
    for _ in 0..SHORT_DRAWS {
        let x = rng.lognormal(shape.input_median, shape.input_sigma);
        if x < below {
            return x;
        }
    }
    shape.input_median.min(below - 1.0)
}

/// The Pareto quantile `u` of a prompt in `[from, to)` tokens (inverse of the truncated law's
/// distribution function).
fn tail_input(u: f64, from: u64, to: u64) -> f64 {
    let (from, to) = (from as f64, to as f64);
    let kept = 1.0 - (from / to).powf(TAIL_INDEX);
    let x = from * (1.0 - u * kept).powf(-1.0 / TAIL_INDEX);
    x.clamp(from, to - 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_are_shares_and_programming_has_a_long_tail() {
        for (task, mix) in Task::ALL.iter().zip(&CONTEXT_MIXES) {
            assert!(mix.iter().all(|s| (0.0..=1.0).contains(s)), "{task}");
            assert!((mix.iter().sum::<f64>() - 1.0).abs() < 1e-9, "{task}");
        }
        let programming = CONTEXT_MIXES[Task::Programming as usize];
        assert!(programming[2] + programming[3] >= 0.08);
        assert!(programming[0] + programming[1] > 0.5);
        assert!(programming[3] > 0.0);
        // Translation, trivia and marketing are almost all short.
        for task in [Task::Translation, Task::Trivia, Task::Marketing] {
            assert!(CONTEXT_MIXES[task as usize][0] >= 0.9, "{task}");
        }
    }

    #[test]
    fn drawn_prompts_follow_the_planned_mix_and_stay_in_their_class() {
        let n = 60_000;
        let mut rng = Rng::new(3);
        for &task in Task::ALL {
            let mut counts = [0u32; 4];
            for _ in 0..n {
                let p = draw(&mut rng, task);
                let tokens = p.input.max(16.0) as u64;
                assert_eq!(Context::of(tokens), p.context, "{task}: {p:?}");
                assert!(tokens < LONGEST_PROMPT, "{task}: {p:?}");
                counts[usize::from(p.context.code())] += 1;
            }
            for (class, (&count, &planned)) in Context::ALL
                .iter()
                .zip(counts.iter().zip(&CONTEXT_MIXES[task as usize]))
            {
                let share = f64::from(count) / f64::from(n);
                // Four binomial standard deviations, and nothing at all where none is planned.
                let tolerance = 4.0 * (planned * (1.0 - planned) / f64::from(n)).sqrt() + 1e-9;
                assert!(
                    (share - planned).abs() <= tolerance,
                    "{task} {class}: {share} drawn, {planned} planned"
                );
            }
        }
    }

    #[test]
    fn long_tails_fall_within_their_class() {
        let (from, to) = (32 * 1024, 128 * 1024);
        assert_eq!(tail_input(0.0, from, to), from as f64);
        assert!(tail_input(1.0 - 1e-12, from, to) < to as f64);
        // Index 1 over a ×4 span: the median is at 1.6 × the class's start.
        assert!((tail_input(0.5, from, to) / from as f64 - 1.6).abs() < 1e-9);
        assert_eq!(class_at(&[0.5, 0.5, 0.0, 0.0], 0.999_999), Context::Medium);
        assert_eq!(class_at(&[0.5, 0.4, 0.1, 0.0], 1.0), Context::Long);
    }
}
