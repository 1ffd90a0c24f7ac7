//! The polyglot reference filter, in Rust with the `kwex-guest` SDK. The
//! same behaviour is written in C, Zig, AssemblyScript, Go, Python and
//! JavaScript next to this directory, all checked against one golden file
//! (`filters/polyglot/golden/`):
//!
//! - config `{"routes": {"<namespace>": "<index>", …}}`; no config (`null`)
//!   or no `routes` means no routes; a config that is not an object, or
//!   `routes` that is not an object of strings, is refused with a message
//!   starting with `config:`;
//! - a document whose `type` is not exactly `"Warning"` (or has none) is
//!   dropped;
//! - a Warning whose `metadata.namespace` has a route goes to that index,
//!   unchanged; any other Warning is kept.
//!
//! Index names are not checked at `init` (the other languages do not
//! either): a bad one fails each routed document as `invalid_output`.

use std::collections::BTreeMap;

use kwex_guest::serde_json::{Map, Value};
use kwex_guest::{Document, Error, Filter, Result, Verdict, export};

/// Namespace → index.
pub struct Polyglot {
    routes: BTreeMap<String, String>,
}

impl Filter for Polyglot {
    /// Read loosely (any object, or `null`) and checked in `init`, so that
    /// the messages are the same as in the other languages.
    type Config = Option<Map<String, Value>>;

    fn init(config: Self::Config) -> Result<Self> {
        let routes = match config.as_ref().and_then(|c| c.get("routes")) {
            None => BTreeMap::new(),
            Some(Value::Object(routes)) => routes
                .iter()
                .map(|(namespace, index)| match index {
                    Value::String(index) => Ok((namespace.clone(), index.clone())),
                    _ => Err(Error::msg(format!(
                        "config: the index for namespace {namespace:?} must be a string"
                    ))),
                })
                .collect::<Result<_>>()?,
            Some(_) => {
                return Err(Error::msg(
                    r#"config: "routes" must be an object mapping namespaces to index names"#,
                ));
            }
        };
        Ok(Self { routes })
    }

    fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
        if doc.type_str() != Some("Warning") {
            return Ok(Verdict::Drop);
        }
        Ok(match doc.namespace().and_then(|ns| self.routes.get(ns)) {
            Some(index) => Verdict::route(index),
            None => Verdict::Keep,
        })
    }
}

export!(Polyglot);

#[cfg(test)]
mod tests {
    use kwex_guest::serde_json::json;
    use kwex_guest::testing::{Harness, document};

    use super::*;

    const CONFIG: &str = include_str!("../../golden/config.json");

    fn event(type_: Value, namespace: Value) -> String {
        document(json!({"type": type_, "metadata": {"namespace": namespace}}))
    }

    #[test]
    fn warnings_in_a_routed_namespace_go_to_its_index_unchanged() {
        let mut f = Harness::<Polyglot>::new(CONFIG).unwrap();
        let payments = event(json!("Warning"), json!("payments"));
        assert_eq!(
            f.filter(&payments).unwrap(),
            Verdict::route("kwex-payments")
        );
        // The config spells it `kube-\u0073ystem`: JSON escapes are decoded.
        let system = event(json!("Warning"), json!("kube-system"));
        assert_eq!(f.filter(&system).unwrap(), Verdict::route("kwex-system"));
        let launch = event(json!("Warning"), json!("🚀-launch"));
        assert_eq!(f.filter(&launch).unwrap(), Verdict::route("kwex-launch"));
    }

    #[test]
    fn other_warnings_are_kept() {
        let mut f = Harness::<Polyglot>::new(CONFIG).unwrap();
        assert_eq!(
            f.filter(&event(json!("Warning"), json!("monitoring")))
                .unwrap(),
            Verdict::Keep
        );
        assert_eq!(
            f.filter(&event(json!("Warning"), Value::Null)).unwrap(),
            Verdict::Keep
        );
    }

    #[test]
    fn anything_but_exactly_warning_is_dropped() {
        let mut f = Harness::<Polyglot>::new(CONFIG).unwrap();
        for type_ in [
            json!("Normal"),
            json!("warning"),
            json!("Warning "),
            json!("Warning\u{0}"),
            json!(""),
            Value::Null,
        ] {
            assert_eq!(
                f.filter(&event(type_.clone(), json!("payments"))).unwrap(),
                Verdict::Drop,
                "{type_}"
            );
        }
        assert_eq!(f.filter(r#"{"type":["Warning"]}"#).unwrap(), Verdict::Drop);
    }

    #[test]
    fn without_config_warnings_are_kept() {
        for config in ["null", "{}", r#"{"other": 1}"#, r#"{"routes": {}}"#] {
            let mut f = Harness::<Polyglot>::new(config).unwrap();
            let payments = event(json!("Warning"), json!("payments"));
            assert_eq!(f.filter(&payments).unwrap(), Verdict::Keep, "{config}");
        }
    }

    #[test]
    fn a_document_that_is_not_an_object_is_an_error() {
        let mut f = Harness::<Polyglot>::new(CONFIG).unwrap();
        for doc in ["[]", "\"Warning\"", "42", "{\"type\":"] {
            assert!(f.filter(doc).is_err(), "{doc}");
        }
    }

    #[test]
    fn config_errors_start_with_config() {
        let bad = include_str!("../../golden/bad-config.json");
        for config in [
            bad,
            "[]",
            "42",
            "\"routes\"",
            r#"{"routes": []}"#,
            r#"{"routes": null}"#,
            "{",
        ] {
            let Err(err) = Harness::<Polyglot>::new(config) else {
                panic!("{config} was accepted");
            };
            assert!(err.message().starts_with("config:"), "{config}: {err:?}");
        }
    }
}
