//! `dedot`: rewrites the dots in label and annotation keys
//! (`app.kubernetes.io/name` → `app_kubernetes_io/name`), for search
//! clusters or index templates that map `labels` and `annotations` as plain
//! objects instead of `flattened`/`flat_object`: there a dot in a key means
//! an object path, and `app` cannot be both a value and an object. See
//! README.md for the config.

use kwex_guest::serde_json::{Map, Value};
use kwex_guest::{Document, Error, Filter, Result, StringMap, Verdict, export};
use serde::Deserialize;

/// The config.
#[derive(Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// What each `.` becomes. Default `_`. It cannot contain a dot.
    pub replacement: String,
    /// Rewrite `metadata.labels`. Default `true`.
    pub labels: bool,
    /// Rewrite `metadata.annotations`. Default `true`.
    pub annotations: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            replacement: "_".to_owned(),
            labels: true,
            annotations: true,
        }
    }
}

/// The filter: its checked config.
pub struct Dedot {
    config: Config,
}

impl Dedot {
    /// The map with its keys rewritten, or `None` when no key has a dot.
    ///
    /// When a rewritten key is already taken (`a.b` next to `a_b`), the key
    /// that had no dot keeps its value; between two rewritten keys, the
    /// first in key order does. The other value is dropped.
    fn rewrite(&self, map: &StringMap<'_>) -> Option<Map<String, Value>> {
        if !map.keys().any(|key| key.contains('.')) {
            return None;
        }
        let mut out: Map<String, Value> = map
            .iter()
            .filter(|(key, _)| !key.contains('.'))
            .map(|(key, value)| (key.to_string(), Value::from(&**value)))
            .collect();
        for (key, value) in map.iter().filter(|(key, _)| key.contains('.')) {
            out.entry(key.replace('.', &self.config.replacement))
                .or_insert_with(|| Value::from(&**value));
        }
        Some(out)
    }
}

impl Filter for Dedot {
    type Config = Config;

    fn init(config: Config) -> Result<Self> {
        if config.replacement.contains('.') {
            return Err(Error::msg(format!(
                "config: replacement {:?} must not contain a dot",
                config.replacement
            )));
        }
        Ok(Self { config })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        let metadata = &doc.metadata;
        let labels = self
            .config
            .labels
            .then(|| self.rewrite(&metadata.labels))
            .flatten();
        let annotations = self
            .config
            .annotations
            .then(|| self.rewrite(&metadata.annotations))
            .flatten();
        if labels.is_none() && annotations.is_none() {
            return Ok(Verdict::Keep);
        }
        let mut map = doc.to_map()?;
        if let Some(Value::Object(target)) = map.get_mut("metadata") {
            if let Some(labels) = labels {
                target.insert("labels".to_owned(), Value::Object(labels));
            }
            if let Some(annotations) = annotations {
                target.insert("annotations".to_owned(), Value::Object(annotations));
            }
        }
        Verdict::replace(&map)
    }
}

export!(Dedot);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::json;
    use kwex_guest::testing::{Harness, document, new_document};

    use super::*;

    fn run(config: &str, metadata: Value) -> Verdict {
        let mut filter = Harness::<Dedot>::new(config).unwrap();
        filter
            .filter(&document(json!({"metadata": metadata})))
            .unwrap()
    }

    #[test]
    fn rewrites_dots_in_label_and_annotation_keys() {
        let verdict = run(
            "null",
            json!({
                "labels": {"app.kubernetes.io/name": "nginx", "tier": "web"},
                "annotations": {"kubernetes.io/change-cause": "kubectl apply"},
            }),
        );
        let doc = new_document(&verdict).unwrap();
        assert_eq!(
            doc["metadata"]["labels"],
            json!({"app_kubernetes_io/name": "nginx", "tier": "web"})
        );
        assert_eq!(
            doc["metadata"]["annotations"],
            json!({"kubernetes_io/change-cause": "kubectl apply"})
        );
        assert_eq!(
            doc["metadata"]["uid"],
            "53ce2602-54dd-434d-a267-e400c02e94da"
        );
        assert_eq!(doc["reason"], "BackOff");
    }

    #[test]
    fn keeps_documents_without_dotted_keys() {
        assert_eq!(
            run("null", json!({"labels": {"app": "nginx"}})),
            Verdict::Keep
        );
        assert_eq!(run("null", json!({})), Verdict::Keep);
    }

    #[test]
    fn the_replacement_and_the_maps_are_configurable() {
        let config = r#"{"replacement": "__", "annotations": false}"#;
        let verdict = run(
            config,
            json!({
                "labels": {"a.b.c": "1"},
                "annotations": {"x.y": "2"},
            }),
        );
        let doc = new_document(&verdict).unwrap();
        assert_eq!(doc["metadata"]["labels"], json!({"a__b__c": "1"}));
        assert_eq!(doc["metadata"]["annotations"], json!({"x.y": "2"}));
        assert_eq!(
            run(config, json!({"annotations": {"x.y": "2"}})),
            Verdict::Keep
        );
    }

    #[test]
    fn a_key_without_dots_wins_a_collision() {
        let verdict = run(
            "null",
            json!({"labels": {"a.b": "dotted", "a_b": "plain", "a_b.c": "1", "a.b_c": "2"}}),
        );
        let doc = new_document(&verdict).unwrap();
        assert_eq!(
            doc["metadata"]["labels"],
            json!({"a_b": "plain", "a_b_c": "2"})
        );
    }

    #[test]
    fn config_errors_are_refused() {
        let cases = [
            (
                r#"{"replacement": "."}"#,
                "config: replacement \".\" must not contain a dot",
            ),
            (
                r#"{"labels": "yes"}"#,
                "config: invalid type: string \"yes\", expected a boolean",
            ),
            (r#"{"separator": "_"}"#, "config: unknown field `separator`"),
        ];
        for (config, expected) in cases {
            let err = Harness::<Dedot>::new(config).err().unwrap();
            assert!(err.message().starts_with(expected), "{config}: {err:?}");
        }
    }
}
