//! `redact`: masks secrets in `message` and in annotation values with
//! regular expressions: bearer and API tokens, passwords in URLs, IPv4
//! addresses and e-mail addresses by default, plus patterns of your own.
//! Answers `replace` only when something was masked, else `keep` (free).
//! See README.md for the config.

use std::borrow::Cow;

use kwex_guest::serde_json::Value;
use kwex_guest::{Document, Error, Filter, Result, Verdict, export};
use regex::Regex;
use serde::Deserialize;

/// The built-in patterns, by name, in the order they run. A group named
/// `secret` marks the part to mask; without one the whole match is masked.
/// Word boundaries are ASCII (`(?-u:\b)`): a Unicode `\b` makes the lazy DFA
/// give up on non-ASCII text and fall back to the much slower PikeVM.
const BUILTINS: [(&str, &str); 4] = [
    // `scheme://user:password@host`: only the password.
    (
        "url-password",
        r"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://[^/\s:@]+:(?P<secret>[^/\s@]+)@",
    ),
    // `Bearer <token>`, `api_key=…`, `token: …`, `password=…`: the value.
    (
        "tokens",
        r#"(?i)(?-u:\b)(?:bearer\s+|(?:api[-_]?key|access[-_]?token|auth[-_]?token|token|secret|password|passwd|pwd)\s*[:=]\s*["']?)(?P<secret>[^\s"',;&]+)"#,
    ),
    (
        "email",
        r"(?-u:\b)[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}(?-u:\b)",
    ),
    (
        "ipv4",
        r"(?-u:\b)(?:(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\.){3}(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])(?-u:\b)",
    ),
];

/// The config.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What a secret is replaced with. Default `[REDACTED]`.
    pub replacement: String,
    /// Which built-in patterns run: any of `url-password`, `tokens`,
    /// `email`, `ipv4`. Default: all four; `[]` for none.
    pub builtin: Vec<String>,
    /// More patterns (Rust `regex` syntax), run after the built-ins.
    pub patterns: Vec<String>,
    /// Whether annotation values are masked too. Default `true`.
    pub annotations: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replacement: "[REDACTED]".to_owned(),
            builtin: BUILTINS
                .iter()
                .map(|(name, _)| (*name).to_owned())
                .collect(),
            patterns: Vec::new(),
            annotations: true,
        }
    }
}

/// One pattern, compiled.
struct Rule {
    regex: Regex,
    /// The index of the `secret` group, if the pattern has one.
    secret: Option<usize>,
}

impl Rule {
    fn new(pattern: &str) -> Result<Self, regex::Error> {
        let regex = Regex::new(pattern)?;
        let secret = regex
            .capture_names()
            .position(|name| name == Some("secret"));
        Ok(Self { regex, secret })
    }

    /// `text` with every match (or its `secret` group) replaced, or `None`
    /// when nothing changed.
    fn apply(&self, text: &str, replacement: &str) -> Option<String> {
        let mut out = String::new();
        let mut last = 0;
        let mut changed = false;
        let mut mask = |start: usize, end: usize, found: &str| {
            // Already masked (a second run, or two patterns on one secret).
            if found == replacement {
                return;
            }
            out.push_str(&text[last..start]);
            out.push_str(replacement);
            last = end;
            changed = true;
        };
        match self.secret {
            None => {
                for m in self.regex.find_iter(text) {
                    mask(m.start(), m.end(), m.as_str());
                }
            }
            Some(group) => {
                for caps in self.regex.captures_iter(text) {
                    if let Some(m) = caps.get(group) {
                        mask(m.start(), m.end(), m.as_str());
                    }
                }
            }
        }
        if !changed {
            return None;
        }
        out.push_str(&text[last..]);
        Some(out)
    }
}

/// The filter: compiled rules and the replacement.
pub struct Redact {
    rules: Vec<Rule>,
    replacement: String,
    annotations: bool,
}

impl Redact {
    /// `text` with every rule applied, or `None` when nothing changed.
    fn redact(&self, text: &str) -> Option<String> {
        let mut current = Cow::Borrowed(text);
        for rule in &self.rules {
            if let Some(masked) = rule.apply(&current, &self.replacement) {
                current = Cow::Owned(masked);
            }
        }
        match current {
            Cow::Owned(masked) => Some(masked),
            Cow::Borrowed(_) => None,
        }
    }
}

impl Filter for Redact {
    type Config = Config;

    fn init(config: Config) -> Result<Self> {
        let mut rules = Vec::new();
        // Built-ins keep their own order, whatever the order in the config.
        for name in &config.builtin {
            if !BUILTINS.iter().any(|(known, _)| known == name) {
                return Err(Error::msg(format!(
                    "config: builtin: unknown pattern {name:?}; known: url-password, tokens, email, ipv4"
                )));
            }
        }
        for (name, pattern) in BUILTINS {
            if config.builtin.iter().any(|n| n == name) {
                rules.push(
                    Rule::new(pattern).map_err(|e| Error::msg(format!("builtin {name}: {e}")))?,
                );
            }
        }
        for (i, pattern) in config.patterns.iter().enumerate() {
            let rule = Rule::new(pattern)
                .map_err(|e| Error::msg(format!("config: patterns[{i}]: {e}")))?;
            rules.push(rule);
        }
        Ok(Self {
            rules,
            replacement: config.replacement,
            annotations: config.annotations,
        })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        let message = doc.message.as_deref().and_then(|m| self.redact(m));
        let annotations: Vec<(&str, String)> = if self.annotations {
            doc.metadata
                .annotations
                .iter()
                .filter_map(|(key, value)| Some((&**key, self.redact(value)?)))
                .collect()
        } else {
            Vec::new()
        };
        if message.is_none() && annotations.is_empty() {
            return Ok(Verdict::Keep);
        }

        let mut map = doc.to_map()?;
        if let Some(message) = message {
            map.insert("message".to_owned(), Value::String(message));
        }
        if !annotations.is_empty()
            && let Some(Value::Object(target)) = map
                .get_mut("metadata")
                .and_then(|m| m.get_mut("annotations"))
        {
            for (key, value) in annotations {
                target.insert(key.to_owned(), Value::String(value));
            }
        }
        Verdict::replace(&map)
    }
}

export!(Redact);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::json;
    use kwex_guest::testing::{Harness, document, new_document};

    use super::*;

    /// The message after the filter (the original when it kept the document).
    fn message(config: &str, message: &str) -> String {
        let mut filter = Harness::<Redact>::new(config).unwrap();
        match filter
            .filter(&document(json!({"message": message})))
            .unwrap()
        {
            Verdict::Keep => message.to_owned(),
            verdict => new_document(&verdict).unwrap()["message"]
                .as_str()
                .unwrap()
                .to_owned(),
        }
    }

    #[test]
    fn masks_bearer_and_api_tokens() {
        assert_eq!(
            message(
                "null",
                "GET /api failed: Authorization: Bearer eyJhbGciOi.J9x-_y"
            ),
            "GET /api failed: Authorization: Bearer [REDACTED]"
        );
        assert_eq!(
            message(
                "null",
                "probe failed: api_key=sk_live_51Hx, token: 'ghp_abc123'"
            ),
            "probe failed: api_key=[REDACTED], token: '[REDACTED]'"
        );
        assert_eq!(message("null", "password=hunter2"), "password=[REDACTED]");
    }

    #[test]
    fn masks_only_the_password_of_a_url() {
        assert_eq!(
            message(
                "null",
                "dial postgres://app:s3cr3t@db.payments.svc:5432/orders: timeout"
            ),
            "dial postgres://app:[REDACTED]@db.payments.svc:5432/orders: timeout"
        );
    }

    #[test]
    fn masks_ipv4_addresses_and_emails() {
        assert_eq!(
            message(
                "null",
                "Readiness probe failed: Get \"http://10.0.27.166:8080/ready\""
            ),
            "Readiness probe failed: Get \"http://[REDACTED]:8080/ready\""
        );
        assert_eq!(
            message("null", "owner: jane.doe@example.com"),
            "owner: [REDACTED]"
        );
        // Not addresses: a version, a node name with dashes.
        let plain = "Pulled image nginx:1.27.2 on ip-10-0-27-166.ec2.internal";
        assert_eq!(message("null", plain), plain);
    }

    #[test]
    fn keeps_a_document_with_nothing_to_mask() {
        let mut filter = Harness::<Redact>::new("null").unwrap();
        let doc = document(json!({"message": "Back-off restarting failed container"}));
        assert_eq!(filter.filter(&doc).unwrap(), Verdict::Keep);
        assert_eq!(
            filter.filter(&document(json!({"message": null}))).unwrap(),
            Verdict::Keep
        );
    }

    #[test]
    fn masks_annotation_values_and_leaves_the_rest_of_the_document() {
        let mut filter = Harness::<Redact>::new("null").unwrap();
        let doc = document(json!({"metadata": {"annotations": {
            "acme.io/contact": "ops@acme.io",
            "acme.io/build": "1234",
        }}}));
        let new = new_document(&filter.filter(&doc).unwrap()).unwrap();
        assert_eq!(
            new["metadata"]["annotations"]["acme.io/contact"],
            "[REDACTED]"
        );
        assert_eq!(new["metadata"]["annotations"]["acme.io/build"], "1234");
        assert_eq!(new["message"], "Back-off pulling image \"nginx:1.27.2\"");
        assert_eq!(
            new["metadata"]["uid"],
            "53ce2602-54dd-434d-a267-e400c02e94da"
        );

        let mut no_annotations = Harness::<Redact>::new(r#"{"annotations": false}"#).unwrap();
        assert_eq!(no_annotations.filter(&doc).unwrap(), Verdict::Keep);
    }

    #[test]
    fn custom_patterns_and_replacement() {
        let config = r#"{
            "builtin": ["email"],
            "replacement": "***",
            "patterns": ["(?i)x-vault-token:\\s*(?P<secret>[^\\s;]+)", "\\bcard \\d{4}-\\d{4}-\\d{4}-\\d{4}\\b"]
        }"#;
        assert_eq!(
            message(
                config,
                "X-Vault-Token: hvs.CAES; card 4111-1111-1111-1111 from a@b.io at 10.0.0.1"
            ),
            "X-Vault-Token: ***; *** from *** at 10.0.0.1"
        );
    }

    #[test]
    fn masking_twice_changes_nothing() {
        let once = message(
            "null",
            "postgres://app:pw@db/x and Bearer abcdefgh and 10.1.2.3",
        );
        assert_eq!(message("null", &once), once);
        let mut filter = Harness::<Redact>::new("null").unwrap();
        assert_eq!(
            filter.filter(&document(json!({"message": once}))).unwrap(),
            Verdict::Keep
        );
    }

    #[test]
    fn config_with_a_bad_pattern_is_refused() {
        let err = Harness::<Redact>::new(r#"{"patterns": ["ok", "(unclosed"]}"#)
            .err()
            .unwrap();
        assert!(
            err.message()
                .starts_with("config: patterns[1]: regex parse error"),
            "{err:?}"
        );
    }

    #[test]
    fn config_with_an_unknown_builtin_or_key_is_refused() {
        let err = Harness::<Redact>::new(r#"{"builtin": ["ssn"]}"#)
            .err()
            .unwrap();
        assert!(
            err.message()
                .starts_with("config: builtin: unknown pattern \"ssn\""),
            "{err:?}"
        );
        let err = Harness::<Redact>::new(r#"{"replace": "x"}"#).err().unwrap();
        assert!(
            err.message().starts_with("config: unknown field `replace`"),
            "{err:?}"
        );
        let err = Harness::<Redact>::new(r#"{"replacement": 0}"#)
            .err()
            .unwrap();
        assert!(err.message().starts_with("config: invalid type"), "{err:?}");
    }
}
