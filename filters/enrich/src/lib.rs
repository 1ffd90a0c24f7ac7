//! `enrich`: adds fields from its config to every document: the cluster
//! name, the team and owner of the namespace (first matching rule), and a
//! severity derived from the reason. See README.md for the config.

use std::collections::BTreeMap;

use kwex_guest::serde_json::Value;
use kwex_guest::{Document, Error, Filter, Glob, Result, Verdict, export};
use serde::Deserialize;

/// The config; every part is optional.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Written to `cluster`.
    pub cluster: Option<String>,
    /// Rules giving `team` and `owner` by namespace; the first match wins.
    pub owners: Vec<OwnerRule>,
    /// How `severity` is derived from `reason`.
    pub severity: Option<SeverityConfig>,
    /// Replace fields the document already has. Default `false`: a value
    /// set by kwex (`--cluster-name`) or an earlier filter is left alone.
    pub overwrite: bool,
}

/// One `owners` rule.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnerRule {
    /// Namespace patterns (`*`, `?`), matched against `metadata.namespace`.
    pub namespaces: Vec<Glob>,
    /// Written to `team`.
    #[serde(default)]
    pub team: Option<String>,
    /// Written to `owner`.
    #[serde(default)]
    pub owner: Option<String>,
}

/// The `severity` table.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeverityConfig {
    /// Reason (exactly, e.g. `OOMKilling`) → severity.
    pub reasons: BTreeMap<String, String>,
    /// The severity of any other reason; without it, no `severity` is added.
    pub default: Option<String>,
}

/// The filter: its checked config.
pub struct Enrich {
    config: Config,
}

impl Filter for Enrich {
    type Config = Config;

    fn init(config: Config) -> Result<Self> {
        for (i, rule) in config.owners.iter().enumerate() {
            if rule.namespaces.is_empty() {
                return Err(Error::msg(format!(
                    "config: owners[{i}]: \"namespaces\" must list at least one pattern"
                )));
            }
            if rule.team.is_none() && rule.owner.is_none() {
                return Err(Error::msg(format!(
                    "config: owners[{i}]: give \"team\", \"owner\" or both"
                )));
            }
        }
        Ok(Self { config })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        let config = &self.config;
        let mut fields: Vec<(&str, &str)> = Vec::with_capacity(4);
        if let Some(cluster) = &config.cluster {
            fields.push(("cluster", cluster));
        }
        let namespace = doc.namespace().unwrap_or_default();
        let rule = config
            .owners
            .iter()
            .find(|rule| rule.namespaces.iter().any(|glob| glob.matches(namespace)));
        if let Some(rule) = rule {
            fields.extend(rule.team.as_deref().map(|team| ("team", team)));
            fields.extend(rule.owner.as_deref().map(|owner| ("owner", owner)));
        }
        if let Some(severity) = &config.severity {
            let by_reason = doc.reason_str().and_then(|r| severity.reasons.get(r));
            if let Some(level) = by_reason.or(severity.default.as_ref()) {
                fields.push(("severity", level));
            }
        }

        // Only what is missing (or everything, with `overwrite`): when
        // nothing changes, `keep` costs nothing.
        fields.retain(|(name, value)| {
            let current = match *name {
                "cluster" => doc.cluster.as_deref(),
                _ => doc.extra.get(*name).and_then(Value::as_str),
            };
            match current {
                None => true,
                Some(current) => config.overwrite && current != *value,
            }
        });
        if fields.is_empty() {
            return Ok(Verdict::Keep);
        }
        let mut map = doc.to_map()?;
        for (name, value) in fields {
            map.insert(name.to_owned(), Value::from(value));
        }
        Verdict::replace(&map)
    }
}

export!(Enrich);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::{Map, json};
    use kwex_guest::testing::{Harness, document, new_document};

    use super::*;

    const CONFIG: &str = r#"{
        "cluster": "prod-eu",
        "owners": [
            {"namespaces": ["payments", "checkout"], "team": "payments", "owner": "payments-oncall"},
            {"namespaces": ["team-*"], "team": "platform"},
            {"namespaces": ["*"], "owner": "sre"}
        ],
        "severity": {"reasons": {"OOMKilling": "critical", "BackOff": "warning"}, "default": "info"}
    }"#;

    /// The document the filter produced (the input when it kept it).
    fn enriched(config: &str, overrides: Value) -> Map<String, Value> {
        let mut filter = Harness::<Enrich>::new(config).unwrap();
        let doc = document(overrides);
        match filter.filter(&doc).unwrap() {
            Verdict::Keep => kwex_guest::serde_json::from_str(&doc).unwrap(),
            verdict => new_document(&verdict).unwrap(),
        }
    }

    #[test]
    fn adds_team_owner_and_severity_by_first_matching_rule() {
        let doc = enriched(
            CONFIG,
            json!({"cluster": null, "metadata": {"namespace": "checkout"}}),
        );
        assert_eq!(doc["cluster"], "prod-eu");
        assert_eq!(doc["team"], "payments");
        assert_eq!(doc["owner"], "payments-oncall");
        assert_eq!(doc["severity"], "warning");

        let doc = enriched(
            CONFIG,
            json!({"metadata": {"namespace": "team-b"}, "reason": "Pulled"}),
        );
        assert_eq!(doc["team"], "platform");
        assert!(
            doc.get("owner").is_none(),
            "the first match wins, even without an owner"
        );
        assert_eq!(doc["severity"], "info");

        let doc = enriched(
            CONFIG,
            json!({"metadata": {"namespace": "monitoring"}, "reason": "OOMKilling"}),
        );
        assert!(doc.get("team").is_none());
        assert_eq!(doc["owner"], "sre");
        assert_eq!(doc["severity"], "critical");
    }

    #[test]
    fn leaves_existing_fields_alone_unless_told_to_overwrite() {
        // The example document already has `cluster: prod-eu`.
        let doc = enriched(r#"{"cluster": "other"}"#, json!({}));
        assert_eq!(doc["cluster"], "prod-eu");
        let doc = enriched(r#"{"cluster": "other", "overwrite": true}"#, json!({}));
        assert_eq!(doc["cluster"], "other");
        let doc = enriched(CONFIG, json!({"team": "set-before"}));
        assert_eq!(doc["team"], "set-before");
    }

    #[test]
    fn keeps_the_document_when_there_is_nothing_to_add() {
        let mut filter = Harness::<Enrich>::new("null").unwrap();
        assert_eq!(filter.filter(&document(json!({}))).unwrap(), Verdict::Keep);
        let mut filter = Harness::<Enrich>::new(r#"{"cluster": "prod-eu"}"#).unwrap();
        assert_eq!(filter.filter(&document(json!({}))).unwrap(), Verdict::Keep);
    }

    #[test]
    fn without_a_default_unmapped_reasons_get_no_severity() {
        let config = r#"{"severity": {"reasons": {"BackOff": "warning"}}}"#;
        let doc = enriched(config, json!({"reason": "Pulled"}));
        assert!(doc.get("severity").is_none());
    }

    #[test]
    fn the_rest_of_the_document_is_unchanged() {
        let doc = enriched(CONFIG, json!({"metadata": {"namespace": "payments"}}));
        let before: Map<String, Value> = kwex_guest::serde_json::from_str(&document(
            json!({"metadata": {"namespace": "payments"}}),
        ))
        .unwrap();
        for (key, value) in before {
            assert_eq!(doc[&key], value, "{key}");
        }
    }

    #[test]
    fn config_errors_are_refused_with_their_place() {
        let cases = [
            (
                r#"{"owners": [{"namespaces": [], "team": "x"}]}"#,
                "config: owners[0]: \"namespaces\" must list",
            ),
            (
                r#"{"owners": [{"namespaces": ["a"]}]}"#,
                "config: owners[0]: give \"team\"",
            ),
            (
                r#"{"owners": [{"team": "x"}]}"#,
                "config: missing field `namespaces`",
            ),
            (
                r#"{"severity": {"default": 3}}"#,
                "config: invalid type: integer `3`",
            ),
            (r#"{"clutser": "x"}"#, "config: unknown field `clutser`"),
        ];
        for (config, expected) in cases {
            let err = Harness::<Enrich>::new(config).err().unwrap();
            assert!(err.message().starts_with(expected), "{config}: {err:?}");
        }
    }
}
