//! Context segments: how long a request's prompt was, in four classes derived from its input
//! tokens. A segment is a property of each event (not a field a router sends), so every lake,
//! including those written before segments existed, has it.

use crate::task::closed_vocabulary;
use std::fmt;
use std::str::FromStr;

closed_vocabulary!(
    /// The context-length class of a request, from its input tokens (see [`Context::of`]).
    Context, "context", {
        Short => "short",
        Medium => "medium",
        Long => "long",
        VeryLong => "very_long",
    }
);

/// The first input-token count of each class after `short`: 8 k, 32 k and 128 k tokens (k =
/// 1,024, as context windows are quoted).
pub const CONTEXT_BOUNDS: [u64; 3] = [8 * 1024, 32 * 1024, 128 * 1024];

impl Context {
    /// The class of a request with `input_tokens` prompt tokens (cached ones included).
    pub fn of(input_tokens: u64) -> Context {
        match CONTEXT_BOUNDS
            .iter()
            .filter(|b| input_tokens >= **b)
            .count()
        {
            0 => Context::Short,
            1 => Context::Medium,
            2 => Context::Long,
            _ => Context::VeryLong,
        }
    }

    /// The class's storage code in the app-day cube (0 = short … 3 = very long).
    pub const fn code(self) -> u8 {
        self as u8
    }

    /// The class of a storage code; `None` for a code no class has.
    pub fn from_code(code: u8) -> Option<Context> {
        Context::ALL.get(usize::from(code)).copied()
    }

    /// The input tokens of the class as pages show them: `< 8k`, `8k–32k`, `32k–128k`, `≥ 128k`.
    pub fn label(self) -> String {
        let k = |n: u64| format!("{}k", n / 1024);
        match self.range() {
            (0, Some(to)) => format!("< {}", k(to)),
            (from, Some(to)) => format!("{}–{}", k(from), k(to)),
            (from, None) => format!("≥ {}", k(from)),
        }
    }

    /// The input-token range of the class, `[from, to)` (`to` is `None` for the last).
    pub fn range(self) -> (u64, Option<u64>) {
        let i = usize::from(self.code());
        let from = if i == 0 { 0 } else { CONTEXT_BOUNDS[i - 1] };
        (from, CONTEXT_BOUNDS.get(i).copied())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_start_at_their_bounds() {
        assert_eq!(Context::of(0), Context::Short);
        assert_eq!(Context::of(8_191), Context::Short);
        assert_eq!(Context::of(8_192), Context::Medium);
        assert_eq!(Context::of(32_767), Context::Medium);
        assert_eq!(Context::of(32_768), Context::Long);
        assert_eq!(Context::of(131_071), Context::Long);
        assert_eq!(Context::of(131_072), Context::VeryLong);
        assert_eq!(Context::of(u64::MAX), Context::VeryLong);
    }

    #[test]
    fn codes_and_ranges_round_trip() {
        for c in Context::ALL {
            assert_eq!(Context::from_code(c.code()), Some(*c));
            let (from, to) = c.range();
            assert_eq!(Context::of(from), *c);
            if let Some(to) = to {
                assert_eq!(Context::of(to - 1), *c);
                assert_ne!(Context::of(to), *c);
            }
            assert_eq!(c.as_str().parse::<Context>(), Ok(*c));
        }
        assert_eq!(Context::from_code(4), None);
        assert!("huge".parse::<Context>().unwrap_err().contains("very_long"));
    }
}
