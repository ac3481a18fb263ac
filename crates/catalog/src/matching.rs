//! Matching provider model ids (`claude-3-5-sonnet`, `regional.anthropic.claude-sonnet-4-5-20250929-v1:0`,
//! `meta-llama/Llama-3.3-70B-Instruct-Turbo`, `deepseek-v4p1-flash`) to OpenRouter
//! `author/model` slugs.
//!
//! Providers spell the same model differently: version dots become dashes or `p`, vendors and
//! regions become dotted prefixes, deployments add dates, `-v1:0`, `-turbo`, `-fp8`. Both sides
//! are reduced to one canonical key; a provider id is tried as is first and then with its
//! deployment decorations peeled off one at a time, so an exact name always wins over a looser
//! one.

/// The canonical key of a model name (the part after the slash of a slug, or a provider id
/// already reduced by [`candidates`]).
///
/// Lowercase; a `-`, `_` or `p` between two digits is a version dot (`3-5` → `3.5`,
/// `v4p1` → `v4.1`); a letter directly followed by a digit gets a dash (`qwen3` → `qwen-3`,
/// `llama3` → `llama-3`) so that `qwen3-32b` and `qwen-3-32b` meet; `_` is a dash.
pub(crate) fn canonical(name: &str) -> String {
    let lower: Vec<char> = name.to_ascii_lowercase().chars().collect();
    let mut dotted = Vec::with_capacity(lower.len());
    for (i, &c) in lower.iter().enumerate() {
        let between_digits = i > 0
            && i + 1 < lower.len()
            && lower[i - 1].is_ascii_digit()
            && lower[i + 1].is_ascii_digit();
        if between_digits && matches!(c, '-' | '_' | 'p') {
            dotted.push('.');
        } else if c == '_' {
            dotted.push('-');
        } else {
            dotted.push(c);
        }
    }
    let mut out = String::with_capacity(dotted.len() + 4);
    for (i, &c) in dotted.iter().enumerate() {
        if i > 0 && c.is_ascii_digit() && dotted[i - 1].is_ascii_alphabetic() {
            out.push('-');
        }
        out.push(c);
    }
    out
}

/// Keys to look a provider's model id up by, most specific first.
pub(crate) fn candidates(id: &str) -> Vec<String> {
    let lower = id.to_ascii_lowercase();
    // Namespaces (`meta-llama/…`, `@cf/meta/…`, `accounts/fireworks/models/…`) carry no model name.
    let mut s: &str = lower.rsplit('/').next().unwrap_or(&lower);
    // Bedrock-style `regional.anthropic.claude-…`: purely alphabetic dotted prefixes are regions
    // and vendors; a version dot is always next to a digit, so it is never stripped.
    while let Some((head, rest)) = s.split_once('.') {
        if !head.is_empty() && !rest.is_empty() && head.bytes().all(|b| b.is_ascii_lowercase()) {
            s = rest;
        } else {
            break;
        }
    }
    if let Some(rest) = s.strip_prefix("databricks-") {
        s = rest;
    }
    let mut out: Vec<String> = Vec::new();
    let push = |raw: &str, out: &mut Vec<String>| {
        let key = canonical(raw);
        if !key.is_empty() && !out.contains(&key) {
            out.push(key);
        }
    };
    let mut raw = s.to_owned();
    push(&raw, &mut out);
    if let Some((head, _)) = raw.split_once(':') {
        raw = head.to_owned();
        push(&raw, &mut out);
    }
    if let Some(stripped) = strip_version_suffix(&raw) {
        raw = stripped;
        push(&raw, &mut out);
    }
    if let Some(stripped) = strip_date_suffix(&raw) {
        raw = stripped;
        push(&raw, &mut out);
    }
    const DECORATIONS: [&str; 13] = [
        "-latest",
        "-fp8",
        "-hf",
        "-tput",
        "-maas",
        "-us",
        "-ultrafast",
        "-fast",
        "-turbo",
        "-lite",
        "-preview",
        "-versatile",
        "-instant",
    ];
    let mut changed = true;
    while changed {
        changed = false;
        for d in DECORATIONS {
            // `-lite` names a real smaller model at OpenRouter (`flash-lite`), so it is only peeled
            // as a deployment tier of an instruct model (`Meta-Llama-3-70B-Instruct-Lite`).
            if d == "-lite" && !raw.ends_with("-instruct-lite") {
                continue;
            }
            if let Some(stripped) = raw.strip_suffix(d) {
                raw = stripped.to_owned();
                push(&raw, &mut out);
                changed = true;
            }
        }
    }
    if let Some(stripped) = raw.strip_prefix("meta-") {
        raw = stripped.to_owned();
        push(&raw, &mut out);
    }
    let key = canonical(&raw);
    if let Some(stripped) = key.strip_suffix(".0") {
        out.push(stripped.to_owned());
    }
    if !key.contains("instruct") {
        out.push(format!("{key}-instruct"));
    }
    out
}

/// `…-v1`, `…-v2.0` (a deployment revision) → without it.
fn strip_version_suffix(s: &str) -> Option<String> {
    let i = s.rfind("-v")?;
    let tail = &s[i + 2..];
    let is_version = !tail.is_empty()
        && tail.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && tail.as_bytes()[0].is_ascii_digit();
    is_version.then(|| s[..i].to_owned())
}

/// `…-20250929` or `…-2024-08-06` → without it.
fn strip_date_suffix(s: &str) -> Option<String> {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    if let Some(i) = s.rfind('-') {
        let tail = &s[i + 1..];
        if tail.len() == 8 && digits(tail) && tail.starts_with("20") {
            return Some(s[..i].to_owned());
        }
    }
    if s.len() > 11 {
        let (head, tail) = s.split_at(s.len() - 11);
        let b = tail.as_bytes();
        if b[0] == b'-'
            && b[5] == b'-'
            && b[8] == b'-'
            && digits(&tail[1..5])
            && digits(&tail[6..8])
            && digits(&tail[9..11])
        {
            return Some(head.to_owned());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_forms_meet() {
        assert_eq!(
            canonical("claude-3-5-sonnet"),
            canonical("claude-3.5-sonnet")
        );
        assert_eq!(
            canonical("deepseek-v4p1-flash"),
            canonical("deepseek-v4.1-flash")
        );
        assert_eq!(canonical("qwen-3-32b"), canonical("qwen3-32b"));
        assert_eq!(canonical("GLM-4.6"), "glm-4.6");
        assert_eq!(canonical("claude-3.5-sonnet"), "claude-3.5-sonnet");
        assert_ne!(canonical("gpt-4o"), canonical("gpt-4"));
    }

    #[test]
    fn candidates_peel_deployment_decorations() {
        let c = candidates("regional.anthropic.claude-sonnet-4-5-20250929-v1:0");
        assert!(c.contains(&canonical("claude-sonnet-4.5")), "{c:?}");
        let c = candidates("meta-llama/Llama-3.3-70B-Instruct-Turbo");
        assert!(c.contains(&canonical("llama-3.3-70b-instruct")), "{c:?}");
        let c = candidates("claude-3-5-haiku-latest");
        assert!(c.contains(&canonical("claude-3.5-haiku")), "{c:?}");
        let c = candidates("claude-opus-4-0");
        assert!(c.contains(&canonical("claude-opus-4")), "{c:?}");
        // The undecorated id comes first, so an exact match always wins.
        assert_eq!(
            candidates("gpt-4o-2024-08-06")[0],
            canonical("gpt-4o-2024-08-06")
        );
        assert!(candidates("gpt-4o-2024-08-06").contains(&canonical("gpt-4o")));
        assert_eq!(strip_version_suffix("nova-pro-v1"), Some("nova-pro".into()));
        assert_eq!(strip_version_suffix("whisper-large-v3-turbo"), None);
    }
}
