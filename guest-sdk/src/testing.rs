//! Run a filter natively, in ordinary `cargo test` unit tests.
//!
//! [`Harness`] goes through the same code as the WebAssembly exports (config
//! parsing with its `null` rule, document parsing, your `init` and `filter`)
//! minus the ABI encoding, and checks each verdict the way kwex would, so a
//! test fails where kwex would report `invalid_output`. For the encoding and
//! the sandbox, test the built `.wasm` with `kwex filter test`.
//!
//! ```
//! use kwex_guest::testing::{self, Harness};
//! use kwex_guest::{Document, Filter, Result, Verdict};
//!
//! struct DropNormal;
//! impl Filter for DropNormal {
//!     type Config = ();
//!     fn init((): ()) -> Result<Self> {
//!         Ok(DropNormal)
//!     }
//!     fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
//!         Ok(if doc.type_str() == Some("Normal") { Verdict::Drop } else { Verdict::Keep })
//!     }
//! }
//!
//! let mut harness = Harness::<DropNormal>::new("null").unwrap();
//! let normal = testing::document(serde_json::json!({"type": "Normal"}));
//! assert_eq!(harness.filter(&normal).unwrap(), Verdict::Drop);
//! ```

use serde_json::{Map, Value};

use crate::__private as export;
use crate::{Error, Filter, Verdict, check_index_name};

/// The Document of `docs/document.md`'s example (a Warning `BackOff` of a
/// pod in `default`, cluster `prod-eu`), compact, as kwex passes it, with
/// `kwex.observedAt` fixed as `kwex filter test` fixes it.
pub const EXAMPLE_DOCUMENT: &str = concat!(
    r#"{"@timestamp":"2026-11-07T11:12:33Z","cluster":"prod-eu","type":"Warning","reason":"BackOff","#,
    r#""message":"Back-off pulling image \"nginx:1.27.2\"","count":1,"#,
    r#""firstTimestamp":"2026-11-07T11:12:33Z","lastTimestamp":"2026-11-07T11:12:33Z","#,
    r#""involvedObject":{"kind":"Pod","namespace":"default","name":"nginx-vl4d97r2m5-5qq6c","#,
    r#""uid":"81775ad8-6106-4a57-becb-4eb00ab7c6ff","apiVersion":"v1","fieldPath":"spec.containers{nginx}"},"#,
    r#""source":{"component":"kubelet","host":"ip-10-0-27-166.ec2.internal"},"#,
    r#""metadata":{"namespace":"default","name":"nginx-vl4d97r2m5-5qq6c.18e5beed8753bf43","#,
    r#""uid":"53ce2602-54dd-434d-a267-e400c02e94da","resourceVersion":"225467713","#,
    r#""creationTimestamp":"2026-11-07T11:12:33Z"},"#,
    r#""kwex":{"watchAction":"added","observedAt":"2000-01-01T00:00:00Z","apiVersion":"v1"}}"#
);

/// A filter instance under test, built from its config as kwex builds it.
pub struct Harness<F> {
    filter: F,
}

impl<F: Filter> Harness<F> {
    /// Runs `init` with `config`, JSON text exactly as kwex would pass it
    /// (`"null"` for no config). `Err` is what kwex would refuse the filter with.
    pub fn new(config: &str) -> Result<Self, Error> {
        Ok(Self {
            filter: export::init::<F>(config)?,
        })
    }

    /// Runs `filter` on `document` (JSON text), on this same instance, so
    /// state carries over from call to call as in one kwex instance.
    ///
    /// # Panics
    /// If the verdict is one kwex would refuse as `invalid_output`: a new
    /// document that is not one JSON object, or a bad route index name.
    pub fn filter(&mut self, document: &str) -> Result<Verdict, Error> {
        let verdict = export::filter(&mut self.filter, document)?;
        if let Verdict::Route { index, .. } = &verdict
            && let Err(e) = check_index_name(index)
        {
            panic!("kwex would refuse this route: {}", e.message());
        }
        if let Some(json) = verdict.new_document()
            && serde_json::from_str::<Map<String, Value>>(json).is_err()
        {
            panic!("kwex would refuse this new document (not one JSON object): {json}");
        }
        Ok(verdict)
    }

    /// The filter itself, to look at its state.
    pub fn get(&self) -> &F {
        &self.filter
    }
}

/// [`EXAMPLE_DOCUMENT`] with `overrides` merged in: objects merge key by
/// key, `null` removes a key, anything else replaces the value. Returns
/// compact JSON, ready for [`Harness::filter`].
///
/// `document(json!({"type": "Normal", "metadata": {"namespace": "payments"}}))`
/// is a Normal event in `payments`, everything else as in the example.
pub fn document(overrides: Value) -> String {
    let mut base: Value = match serde_json::from_str(EXAMPLE_DOCUMENT) {
        Ok(value) => value,
        Err(e) => panic!("EXAMPLE_DOCUMENT is not JSON: {e}"),
    };
    merge(&mut base, overrides);
    base.to_string()
}

/// The new document a verdict carries, parsed, or `None` for keep, drop and
/// a route without a body.
pub fn new_document(verdict: &Verdict) -> Option<Map<String, Value>> {
    let json = verdict.new_document()?;
    match serde_json::from_str(json) {
        Ok(map) => Some(map),
        Err(e) => panic!("the new document is not a JSON object ({e}): {json}"),
    }
}

fn merge(base: &mut Value, overrides: Value) {
    match (base, overrides) {
        (Value::Object(base), Value::Object(overrides)) => {
            for (key, value) in overrides {
                if value.is_null() {
                    base.remove(&key);
                } else {
                    merge(base.entry(key).or_insert(Value::Null), value);
                }
            }
        }
        (base, overrides) => *base = overrides,
    }
}

#[cfg(test)]
mod tests {
    use serde::Deserialize;
    use serde_json::json;

    use super::*;
    use crate::{Document, Result};

    /// Routes by namespace; keeps a count to show that state carries over.
    struct Router {
        config: RouterConfig,
        seen: usize,
    }

    #[derive(Deserialize, Default)]
    #[serde(deny_unknown_fields)]
    struct RouterConfig {
        #[serde(default)]
        index: Option<String>,
        #[serde(default)]
        broken: bool,
    }

    impl Filter for Router {
        type Config = RouterConfig;
        fn init(config: RouterConfig) -> Result<Self> {
            Ok(Router { config, seen: 0 })
        }
        fn filter(&mut self, doc: &Document<'_>) -> Result<Verdict> {
            self.seen += 1;
            if self.config.broken {
                return Ok(Verdict::route("Not An Index"));
            }
            match (&self.config.index, doc.namespace()) {
                (Some(index), Some("payments")) => Ok(Verdict::route(index)),
                (_, None) => Err("no namespace".into()),
                _ => Ok(Verdict::Keep),
            }
        }
    }

    #[test]
    fn null_config_reads_as_an_empty_object() {
        let harness = Harness::<Router>::new("null").unwrap();
        assert_eq!(harness.get().config.index, None);
    }

    #[test]
    fn null_config_reaches_types_that_take_null() {
        let config: Option<RouterConfig> = export::parse_config("null").unwrap();
        assert!(config.is_none());
        let config: Value = export::parse_config(" null ").unwrap();
        assert!(config.is_null());
    }

    #[test]
    fn config_errors_start_with_config() {
        let Err(err) = Harness::<Router>::new(r#"{"indx": "x"}"#) else {
            panic!("a typo was accepted");
        };
        assert!(
            err.message().starts_with("config: unknown field `indx`"),
            "{err:?}"
        );
        assert!(Harness::<Router>::new("[").is_err());
    }

    #[test]
    fn state_carries_over_between_documents() {
        let mut harness = Harness::<Router>::new(r#"{"index": "kwex-payments"}"#).unwrap();
        let payments = document(json!({"metadata": {"namespace": "payments"}}));
        assert_eq!(
            harness.filter(&payments).unwrap(),
            Verdict::route("kwex-payments")
        );
        assert_eq!(harness.filter(EXAMPLE_DOCUMENT).unwrap(), Verdict::Keep);
        let nowhere = document(json!({"metadata": {"namespace": null}}));
        assert_eq!(
            harness.filter(&nowhere).unwrap_err().message(),
            "no namespace"
        );
        assert_eq!(harness.get().seen, 3);
    }

    #[test]
    fn documents_that_are_not_objects_are_errors() {
        let mut harness = Harness::<Router>::new("{}").unwrap();
        assert!(harness.filter("[1]").is_err());
    }

    #[test]
    #[should_panic(expected = "kwex would refuse this route")]
    fn a_bad_index_name_fails_the_test() {
        let mut harness = Harness::<Router>::new(r#"{"broken": true}"#).unwrap();
        let _ = harness.filter(EXAMPLE_DOCUMENT);
    }

    #[test]
    fn document_merges_overrides_into_the_example() {
        let doc: Value = serde_json::from_str(&document(json!({
            "type": "Normal",
            "metadata": {"labels": {"a.b": "c"}},
            "cluster": null,
        })))
        .unwrap();
        assert_eq!(doc["type"], "Normal");
        assert_eq!(doc["metadata"]["labels"]["a.b"], "c");
        assert_eq!(
            doc["metadata"]["uid"],
            "53ce2602-54dd-434d-a267-e400c02e94da"
        );
        assert!(doc.get("cluster").is_none());
    }
}
