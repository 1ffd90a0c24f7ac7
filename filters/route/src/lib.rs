//! `route`: picks the target index of a document by its namespace, team or
//! severity: ordered rules, the first match wins; a document no rule matches
//! keeps the index kwex computed (or goes to `default`, if set). See
//! README.md for the config.

use kwex_guest::serde_json::Value;
use kwex_guest::{Document, Error, Filter, Glob, Result, Verdict, check_index_name, export};
use serde::Deserialize;

/// The config.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Tried in order; the first rule whose conditions all match routes.
    pub rules: Vec<Rule>,
    /// The index for documents no rule matches; without it they keep
    /// kwex's index.
    pub default: Option<String>,
}

/// One rule: conditions (each a list of patterns, any of which may match)
/// and the index. A rule with no condition matches every document.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Rule {
    /// Patterns for `metadata.namespace`.
    #[serde(default)]
    pub namespaces: Vec<Glob>,
    /// Patterns for `team` (added by the `enrich` filter, earlier in the chain).
    #[serde(default)]
    pub teams: Vec<Glob>,
    /// Patterns for `severity` (added by `enrich` too).
    #[serde(default)]
    pub severities: Vec<Glob>,
    /// Where matching documents go, used as is (no date patterns).
    pub index: String,
}

impl Rule {
    fn matches(&self, doc: &Document<'_>) -> bool {
        let extra = |name: &str| doc.extra.get(name).and_then(Value::as_str);
        condition(&self.namespaces, doc.namespace())
            && condition(&self.teams, extra("team"))
            && condition(&self.severities, extra("severity"))
    }
}

/// An empty list is no condition; otherwise one pattern must match, and an
/// absent field matches nothing.
fn condition(patterns: &[Glob], value: Option<&str>) -> bool {
    patterns.is_empty() || value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
}

/// The filter: its checked config.
pub struct Route {
    config: Config,
}

impl Filter for Route {
    type Config = Config;

    fn init(config: Config) -> Result<Self> {
        for (i, rule) in config.rules.iter().enumerate() {
            check_index_name(&rule.index)
                .map_err(|e| Error::msg(format!("config: rules[{i}].index: {}", e.message())))?;
        }
        if let Some(index) = &config.default {
            check_index_name(index)
                .map_err(|e| Error::msg(format!("config: default: {}", e.message())))?;
        }
        Ok(Self { config })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        let rule = self.config.rules.iter().find(|rule| rule.matches(doc));
        Ok(
            match rule.map(|r| &r.index).or(self.config.default.as_ref()) {
                Some(index) => Verdict::route(index),
                None => Verdict::Keep,
            },
        )
    }
}

export!(Route);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::json;
    use kwex_guest::testing::{Harness, document};

    use super::*;

    const CONFIG: &str = r#"{"rules": [
        {"severities": ["critical"], "index": "kwex-critical"},
        {"namespaces": ["kube-*", "cert-manager"], "index": "kwex-system"},
        {"teams": ["payments"], "namespaces": ["payments", "checkout"], "index": "kwex-payments"}
    ]}"#;

    fn verdict(config: &str, overrides: Value) -> Verdict {
        let mut filter = Harness::<Route>::new(config).unwrap();
        filter.filter(&document(overrides)).unwrap()
    }

    #[test]
    fn the_first_matching_rule_wins() {
        let critical_system =
            json!({"severity": "critical", "metadata": {"namespace": "kube-system"}});
        assert_eq!(
            verdict(CONFIG, critical_system),
            Verdict::route("kwex-critical")
        );
        let system = json!({"metadata": {"namespace": "kube-system"}});
        assert_eq!(verdict(CONFIG, system), Verdict::route("kwex-system"));
        assert_eq!(
            verdict(CONFIG, json!({"metadata": {"namespace": "cert-manager"}})),
            Verdict::route("kwex-system")
        );
    }

    #[test]
    fn all_conditions_of_a_rule_must_match() {
        let payments = json!({"team": "payments", "metadata": {"namespace": "checkout"}});
        assert_eq!(verdict(CONFIG, payments), Verdict::route("kwex-payments"));
        let no_team = json!({"metadata": {"namespace": "checkout"}});
        assert_eq!(verdict(CONFIG, no_team), Verdict::Keep);
        let other_namespace = json!({"team": "payments", "metadata": {"namespace": "default"}});
        assert_eq!(verdict(CONFIG, other_namespace), Verdict::Keep);
    }

    #[test]
    fn unmatched_documents_keep_their_index_or_go_to_the_default() {
        assert_eq!(verdict(CONFIG, json!({})), Verdict::Keep);
        assert_eq!(verdict("null", json!({})), Verdict::Keep);
        let config = r#"{"rules": [{"namespaces": ["payments"], "index": "kwex-payments"}], "default": "kwex-other"}"#;
        assert_eq!(verdict(config, json!({})), Verdict::route("kwex-other"));
    }

    #[test]
    fn a_rule_without_conditions_matches_everything() {
        let config = r#"{"rules": [{"index": "kwex-all"}]}"#;
        assert_eq!(
            verdict(config, json!({"metadata": {"namespace": null}})),
            Verdict::route("kwex-all")
        );
    }

    #[test]
    fn routes_the_document_unchanged() {
        let verdict = verdict(r#"{"rules": [{"index": "kwex-all"}]}"#, json!({}));
        assert_eq!(verdict.new_document(), None);
    }

    #[test]
    fn config_with_a_bad_index_name_is_refused() {
        let cases = [
            (
                r#"{"rules": [{"index": "ok"}, {"index": "Kwex-Upper"}]}"#,
                "config: rules[1].index: index name \"Kwex-Upper\"",
            ),
            (
                r#"{"rules": [{"index": ".hidden"}]}"#,
                "config: rules[0].index: ",
            ),
            (r#"{"default": "a b"}"#, "config: default: "),
            (r#"{"default": ""}"#, "config: default: "),
        ];
        for (config, expected) in cases {
            let err = Harness::<Route>::new(config).err().unwrap();
            assert!(err.message().starts_with(expected), "{config}: {err:?}");
        }
    }

    #[test]
    fn config_of_the_wrong_shape_is_refused() {
        let cases = [
            (
                r#"{"rules": [{"namespaces": ["x"]}]}"#,
                "config: missing field `index`",
            ),
            (
                r#"{"rules": [{"namespace": ["x"], "index": "x"}]}"#,
                "config: unknown field `namespace`",
            ),
            (r#"{"rules": {"x": "y"}}"#, "config: invalid type: map"),
        ];
        for (config, expected) in cases {
            let err = Harness::<Route>::new(config).err().unwrap();
            assert!(err.message().starts_with(expected), "{config}: {err:?}");
        }
    }
}
