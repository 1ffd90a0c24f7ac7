//! `warnings-only`: keeps Warning events and drops the rest, with
//! configurable lists of types, reasons, kinds and namespaces to keep or to
//! drop. See README.md for the config.

use kwex_guest::{Document, Filter, Glob, Result, Verdict, export};
use serde::Deserialize;

/// The config: what to keep, then what to drop among it.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// A document is kept only if each non-empty list here matches it.
    pub keep: KeepLists,
    /// A document is dropped if any list here matches it, even if `keep` does.
    pub drop: DropLists,
}

/// The `keep` lists. `types` defaults to `["Warning"]`, the others to empty
/// (no condition); `[]` or `["*"]` lifts the type condition.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KeepLists {
    /// Patterns for `type`.
    pub types: Vec<Glob>,
    /// Patterns for `reason`.
    pub reasons: Vec<Glob>,
    /// Patterns for `involvedObject.kind`.
    pub kinds: Vec<Glob>,
    /// Patterns for `metadata.namespace`.
    pub namespaces: Vec<Glob>,
}

impl Default for KeepLists {
    /// Warnings of any reason, kind and namespace: the filter's name.
    fn default() -> Self {
        Self {
            types: vec![Glob::new("Warning")],
            reasons: Vec::new(),
            kinds: Vec::new(),
            namespaces: Vec::new(),
        }
    }
}

/// The `drop` lists, all empty by default.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DropLists {
    /// Patterns for `type`.
    pub types: Vec<Glob>,
    /// Patterns for `reason`.
    pub reasons: Vec<Glob>,
    /// Patterns for `involvedObject.kind`.
    pub kinds: Vec<Glob>,
    /// Patterns for `metadata.namespace`.
    pub namespaces: Vec<Glob>,
}

/// The filter: its config, as read.
pub struct WarningsOnly {
    config: Config,
}

/// The four values the lists look at, in list order.
fn fields<'d>(doc: &'d Document<'_>) -> [Option<&'d str>; 4] {
    [
        doc.type_str(),
        doc.reason_str(),
        doc.involved_object.kind.as_deref(),
        doc.namespace(),
    ]
}

/// Whether one of `patterns` matches `value`; an absent value matches none.
fn any_matches(patterns: &[Glob], value: Option<&str>) -> bool {
    value.is_some_and(|v| patterns.iter().any(|p| p.matches(v)))
}

impl Filter for WarningsOnly {
    type Config = Config;

    fn init(config: Config) -> Result<Self> {
        Ok(Self { config })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        let values = fields(doc);
        let keep = &self.config.keep;
        let drop = &self.config.drop;
        let keep_lists = [&keep.types, &keep.reasons, &keep.kinds, &keep.namespaces];
        let drop_lists = [&drop.types, &drop.reasons, &drop.kinds, &drop.namespaces];

        let kept = keep_lists
            .iter()
            .zip(values)
            .all(|(list, value)| list.is_empty() || any_matches(list, value));
        let dropped = drop_lists
            .iter()
            .zip(values)
            .any(|(list, value)| any_matches(list, value));
        Ok(if kept && !dropped {
            Verdict::Keep
        } else {
            Verdict::Drop
        })
    }
}

export!(WarningsOnly);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::{Value, json};
    use kwex_guest::testing::{Harness, document};

    use super::*;

    fn verdict(config: &str, overrides: Value) -> Verdict {
        let mut filter = Harness::<WarningsOnly>::new(config).unwrap();
        filter.filter(&document(overrides)).unwrap()
    }

    #[test]
    fn without_config_keeps_warnings_and_drops_the_rest() {
        assert_eq!(verdict("null", json!({"type": "Warning"})), Verdict::Keep);
        assert_eq!(verdict("null", json!({"type": "Normal"})), Verdict::Drop);
        assert_eq!(verdict("{}", json!({"type": "Normal"})), Verdict::Drop);
    }

    #[test]
    fn a_document_without_type_is_dropped_by_default() {
        assert_eq!(verdict("null", json!({"type": null})), Verdict::Drop);
    }

    #[test]
    fn drop_lists_win_over_keep_lists() {
        let config = r#"{"drop": {"namespaces": ["kube-*"], "reasons": ["DNSConfigForming"]}}"#;
        let system = json!({"metadata": {"namespace": "kube-system"}});
        assert_eq!(verdict(config, system), Verdict::Drop);
        assert_eq!(
            verdict(config, json!({"reason": "DNSConfigForming"})),
            Verdict::Drop
        );
        assert_eq!(verdict(config, json!({"reason": "BackOff"})), Verdict::Keep);
    }

    #[test]
    fn keep_lists_must_all_match() {
        let config = r#"{"keep": {"kinds": ["Pod", "Node"], "reasons": ["BackOff", "OOM*"]}}"#;
        assert_eq!(verdict(config, json!({})), Verdict::Keep);
        let oom_node = json!({"reason": "OOMKilling", "involvedObject": {"kind": "Node"}});
        assert_eq!(verdict(config, oom_node), Verdict::Keep);
        let job = json!({"involvedObject": {"kind": "Job"}});
        assert_eq!(verdict(config, job), Verdict::Drop);
        assert_eq!(verdict(config, json!({"reason": "Failed"})), Verdict::Drop);
        // `types` keeps its default inside a given `keep`.
        assert_eq!(verdict(config, json!({"type": "Normal"})), Verdict::Drop);
    }

    #[test]
    fn an_empty_type_list_keeps_every_type() {
        let config = r#"{"keep": {"types": [], "namespaces": ["payments"]}}"#;
        let normal = json!({"type": "Normal", "metadata": {"namespace": "payments"}});
        assert_eq!(verdict(config, normal), Verdict::Keep);
        let elsewhere = json!({"type": "Normal", "metadata": {"namespace": "default"}});
        assert_eq!(verdict(config, elsewhere), Verdict::Drop);
    }

    #[test]
    fn a_missing_value_fails_a_keep_list_but_no_drop_list() {
        let keep = r#"{"keep": {"namespaces": ["*"]}}"#;
        let no_namespace = json!({"metadata": {"namespace": null}});
        assert_eq!(verdict(keep, no_namespace.clone()), Verdict::Drop);
        let drop = r#"{"drop": {"namespaces": ["*"]}}"#;
        assert_eq!(verdict(drop, no_namespace), Verdict::Keep);
    }

    #[test]
    fn config_with_an_unknown_key_is_refused() {
        let err = Harness::<WarningsOnly>::new(r#"{"keep": {"type": ["Warning"]}}"#)
            .err()
            .unwrap();
        assert!(
            err.message().starts_with("config: unknown field `type`"),
            "{err:?}"
        );
        let err = Harness::<WarningsOnly>::new(r#"{"ignore": {}}"#)
            .err()
            .unwrap();
        assert!(
            err.message().starts_with("config: unknown field `ignore`"),
            "{err:?}"
        );
    }

    #[test]
    fn config_of_the_wrong_shape_is_refused() {
        // (serde reads a JSON array as a struct's fields in order, so `[]`
        // is not among these: it is the same as `{}`.)
        for config in [
            r#"{"keep": {"types": "Warning"}}"#,
            r#"{"drop": 5}"#,
            r#"{"keep": {"kinds": [1]}}"#,
            "\"Warning\"",
            "{",
        ] {
            let err = Harness::<WarningsOnly>::new(config).err().unwrap();
            assert!(err.message().starts_with("config: "), "{config}: {err:?}");
        }
    }
}
