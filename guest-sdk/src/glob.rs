//! [`Glob`]: shell-style patterns, the usual way to match namespaces and
//! names in a filter's config.

use serde::Deserialize;

/// A pattern where `*` matches any run of characters (also none) and `?`
/// exactly one; everything else matches itself, case-sensitively.
/// `team-*` matches `team-a` and `team-`, `kube-*-system` matches
/// `kube-node-system`, `*` matches everything.
///
/// Small on purpose (no character classes, no escapes): a filter that
/// needs more can use the `regex` crate at the cost of a bigger module.
/// Deserializes from a JSON string.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Deserialize)]
#[serde(from = "String")]
pub struct Glob {
    pattern: String,
}

impl Glob {
    /// A glob from its text.
    pub fn new(pattern: impl Into<String>) -> Self {
        Self {
            pattern: pattern.into(),
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.pattern
    }

    /// Whether the whole of `text` matches.
    ///
    /// Linear backtracking on the last `*`, so its cost is at most
    /// `pattern length × text length`, with no allocation.
    pub fn matches(&self, text: &str) -> bool {
        let (p, t) = (self.pattern.as_bytes(), text.as_bytes());
        let (mut pi, mut ti) = (0, 0);
        // Where to resume after the last `*`: the pattern after it, and the
        // text position it has swallowed up to.
        let mut star: Option<(usize, usize)> = None;
        while ti < t.len() {
            match p.get(pi) {
                Some(b'*') => {
                    pi += 1;
                    star = Some((pi, ti));
                    continue;
                }
                Some(b'?') => {
                    pi += 1;
                    ti += char_len_at(text, ti);
                    continue;
                }
                Some(&c) if c == t[ti] => {
                    pi += 1;
                    ti += 1;
                    continue;
                }
                _ => {}
            }
            match star {
                Some((after_star, swallowed)) => {
                    let swallowed = swallowed + char_len_at(text, swallowed);
                    star = Some((after_star, swallowed));
                    pi = after_star;
                    ti = swallowed;
                }
                None => return false,
            }
        }
        p[pi.min(p.len())..].iter().all(|&c| c == b'*')
    }
}

impl From<String> for Glob {
    fn from(pattern: String) -> Self {
        Self::new(pattern)
    }
}

impl From<&str> for Glob {
    fn from(pattern: &str) -> Self {
        Self::new(pattern)
    }
}

/// The byte length of the character at byte `i` (1 past the end, so loops end).
fn char_len_at(text: &str, i: usize) -> usize {
    text.get(i..)
        .and_then(|rest| rest.chars().next())
        .map_or(1, char::len_utf8)
}

#[cfg(test)]
mod tests {
    use super::Glob;

    fn m(pattern: &str, text: &str) -> bool {
        Glob::new(pattern).matches(text)
    }

    #[test]
    fn literal_patterns_match_only_themselves() {
        assert!(m("payments", "payments"));
        assert!(!m("payments", "payments-eu"));
        assert!(!m("payments", "Payments"));
        assert!(m("", ""));
        assert!(!m("", "a"));
    }

    #[test]
    fn star_matches_any_run_including_none() {
        assert!(m("team-*", "team-a"));
        assert!(m("team-*", "team-"));
        assert!(!m("team-*", "team"));
        assert!(m("*", ""));
        assert!(m("*-system", "kube-system"));
        assert!(m("kube-*-system", "kube-node-lease-system"));
        assert!(m("*a*b*", "xxaxxbxx"));
        assert!(!m("*a*b", "xxaxxbxx"));
        assert!(m("**", "anything"));
    }

    #[test]
    fn question_mark_matches_one_character_even_multibyte() {
        assert!(m("team-?", "team-a"));
        assert!(!m("team-?", "team-ab"));
        assert!(m("caf?", "café"));
        assert!(m("*é", "café"));
        assert!(!m("?", ""));
    }
}
