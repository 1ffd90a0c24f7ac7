//! [`Document`]: a typed, borrowed view of the JSON a filter receives.
//!
//! The schema is `docs/document.md` (the host's `host/src/document/mod.rs`
//! is its source of truth). The view borrows from the input: strings without
//! escapes are not copied, which is most of them (`Cow::Borrowed`); a string
//! with an escape (`\"`, `\u00e9`) is unescaped into `Cow::Owned`.
//!
//! # Every field is optional, and wrong types read as absent
//!
//! kwex always writes `@timestamp`, `count`, `metadata.uid` and so on, but a
//! filter earlier in the chain may have replaced the document with anything
//! that is a JSON object. So every field here is an `Option` (or an empty
//! default), and a field whose JSON type is not the schema's (`"count":
//! "three"`, `"labels": []`) reads as absent instead of failing the whole
//! parse: a filter that looks at `type` should not fail because some other
//! filter wrote an odd `count`. The raw text ([`Document::raw`]) still has
//! everything. Only input that is not one JSON object fails to parse.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::Error;

/// Labels or annotations: keys as they are (`app.kubernetes.io/name`).
pub type StringMap<'a> = BTreeMap<Cow<'a, str>, Cow<'a, str>>;

/// One Document, as `filter` receives it (see `docs/document.md`).
///
/// Fields the schema does not define (added by another filter, or by a newer
/// kwex) are in [`extra`](Self::extra); the exact input is [`raw`](Self::raw).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Document<'a> {
    /// `@timestamp`: when this observation happened, RFC 3339 in UTC.
    #[serde(
        rename = "@timestamp",
        borrow,
        default,
        deserialize_with = "lenient::str"
    )]
    pub timestamp: Option<Cow<'a, str>>,
    /// The cluster name given by `--cluster-name`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub cluster: Option<Cow<'a, str>>,
    /// `type`: `Normal` or `Warning`.
    #[serde(rename = "type", borrow, default, deserialize_with = "lenient::str")]
    pub type_: Option<Cow<'a, str>>,
    /// Machine-readable cause, e.g. `BackOff`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub reason: Option<Cow<'a, str>>,
    /// Human-readable description (core/v1 `message`, events.k8s.io `note`).
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub message: Option<Cow<'a, str>>,
    /// What was done or failed.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub action: Option<Cow<'a, str>>,
    /// Occurrences so far (kwex writes at least 1).
    #[serde(default, deserialize_with = "lenient::int")]
    pub count: Option<i64>,
    /// First time the Event was seen.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub first_timestamp: Option<Cow<'a, str>>,
    /// Latest time the Event was seen (equal to `@timestamp`).
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub last_timestamp: Option<Cow<'a, str>>,
    /// The object the Event is about (`involvedObject`, or `regarding`).
    #[serde(borrow, default, deserialize_with = "lenient::object")]
    pub involved_object: ObjectRef<'a>,
    /// Component and host that reported it.
    #[serde(borrow, default, deserialize_with = "lenient::object")]
    pub source: Source<'a>,
    /// The controller that emitted it.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub reporting_controller: Option<Cow<'a, str>>,
    /// The instance of that controller.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub reporting_instance: Option<Cow<'a, str>>,
    /// A secondary object.
    #[serde(borrow, default, deserialize_with = "lenient::optional_object")]
    pub related: Option<ObjectRef<'a>>,
    /// The Event object's own metadata.
    #[serde(borrow, default, deserialize_with = "lenient::object")]
    pub metadata: Metadata<'a>,
    /// What kwex knows about this observation (`kwex.*`).
    #[serde(borrow, default, deserialize_with = "lenient::object")]
    pub kwex: Kwex<'a>,
    /// Every other top-level field, e.g. what an earlier filter added.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
    /// The input text, set by [`Document::parse`].
    #[serde(skip)]
    raw: &'a str,
}

/// A reference to a Kubernetes object (`involvedObject`, `related`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct ObjectRef<'a> {
    /// e.g. `Pod`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub kind: Option<Cow<'a, str>>,
    /// Its namespace (absent for cluster-scoped objects such as nodes).
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub namespace: Option<Cow<'a, str>>,
    /// Its name.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub name: Option<Cow<'a, str>>,
    /// Its uid (the kubelet puts a node's name here).
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub uid: Option<Cow<'a, str>>,
    /// e.g. `apps/v1`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub api_version: Option<Cow<'a, str>>,
    /// e.g. `spec.containers{app}`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub field_path: Option<Cow<'a, str>>,
}

/// Who reported the Event (`source`).
#[derive(Debug, Clone, Default, Deserialize)]
#[non_exhaustive]
pub struct Source<'a> {
    /// e.g. `kubelet`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub component: Option<Cow<'a, str>>,
    /// The node's name.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub host: Option<Cow<'a, str>>,
}

/// The Event object's metadata (`metadata`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Metadata<'a> {
    /// The Event's namespace: the involved object's, or `default` for
    /// cluster-scoped objects such as nodes.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub namespace: Option<Cow<'a, str>>,
    /// The Event object's name.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub name: Option<Cow<'a, str>>,
    /// Its uid; with `resource_version`, the document's `_id`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub uid: Option<Cow<'a, str>>,
    /// The resourceVersion of this observation.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub resource_version: Option<Cow<'a, str>>,
    /// When the Event object was created.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub creation_timestamp: Option<Cow<'a, str>>,
    /// Labels (empty when there are none); non-string values are skipped.
    #[serde(borrow, default, deserialize_with = "lenient::string_map")]
    pub labels: StringMap<'a>,
    /// Annotations (empty when there are none); non-string values are skipped.
    #[serde(borrow, default, deserialize_with = "lenient::string_map")]
    pub annotations: StringMap<'a>,
}

/// kwex's own fields (`kwex.*`).
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Kwex<'a> {
    /// `added` (first seen by this process) or `modified` (a watch update).
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub watch_action: Option<Cow<'a, str>>,
    /// When kwex received it (fixed at `2000-01-01T00:00:00Z` by `kwex filter test`).
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub observed_at: Option<Cow<'a, str>>,
    /// The API version the Event was read in: `v1` or `events.k8s.io/v1`.
    #[serde(borrow, default, deserialize_with = "lenient::str")]
    pub api_version: Option<Cow<'a, str>>,
    /// Set when the message was cut: its original size in bytes.
    #[serde(default, deserialize_with = "lenient::int")]
    pub message_truncated_from: Option<i64>,
    /// `true` when the record had bytes that were not UTF-8.
    #[serde(default, deserialize_with = "lenient::boolean")]
    pub invalid_utf8_replaced: Option<bool>,
    /// Every other `kwex.*` field, e.g. `kwex.suppressed` from `burst-limit`.
    #[serde(flatten)]
    pub extra: BTreeMap<String, Value>,
}

impl<'a> Document<'a> {
    /// Parses a document, borrowing from `json`.
    ///
    /// The SDK calls this for you before [`Filter::filter`](crate::Filter::filter);
    /// it is public for tests and for filters that hold raw JSON. Fails only
    /// when `json` is not one JSON object.
    pub fn parse(json: &'a str) -> Result<Self, Error> {
        if !json.trim_start().starts_with('{') {
            return Err(Error::msg("the document is not a JSON object"));
        }
        let mut document: Document<'a> = serde_json::from_str(json)
            .map_err(|e| Error::from(e).context("the document is not valid JSON"))?;
        document.raw = json;
        Ok(document)
    }

    /// The document exactly as kwex passed it: compact JSON, fields in the
    /// order of `docs/document.md`. Scanning it (`raw().contains(…)`) is a
    /// valid and fast filter.
    pub fn raw(&self) -> &'a str {
        self.raw
    }

    /// The whole document as a mutable JSON object, for filters that change
    /// it: edit the map, then answer [`Verdict::replace`](crate::Verdict::replace).
    pub fn to_map(&self) -> Result<Map<String, Value>, Error> {
        serde_json::from_str(self.raw)
            .map_err(|e| Error::from(e).context("the document is not a JSON object"))
    }

    /// `type` as a `&str`, for `match` and comparisons.
    pub fn type_str(&self) -> Option<&str> {
        self.type_.as_deref()
    }

    /// `reason` as a `&str`.
    pub fn reason_str(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// `metadata.namespace` as a `&str`: the Event's namespace, the one to
    /// route or select on (it is `default` for node events).
    pub fn namespace(&self) -> Option<&str> {
        self.metadata.namespace.as_deref()
    }
}

/// Deserializers that read a value of an unexpected JSON type as absent
/// (see the module docs for why), borrowing strings where JSON allows.
mod lenient {
    use std::borrow::Cow;
    use std::fmt;
    use std::marker::PhantomData;

    use serde::Deserialize;
    use serde::de::value::MapAccessDeserializer;
    use serde::de::{DeserializeSeed, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};

    use super::StringMap;

    /// What one field accepts; every other JSON type reads as `None`.
    trait Accept<'de>: Sized {
        type Out;
        fn string(_: Cow<'de, str>) -> Option<Self::Out> {
            None
        }
        fn int(_: i64) -> Option<Self::Out> {
            None
        }
        fn boolean(_: bool) -> Option<Self::Out> {
            None
        }
        fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self::Out>, A::Error> {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            Ok(None)
        }
    }

    struct Lenient<P>(PhantomData<P>);

    impl<'de, P: Accept<'de>> Visitor<'de> for Lenient<P> {
        type Value = Option<P::Out>;

        fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str("any JSON value")
        }
        fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Self::Value, E> {
            Ok(P::string(Cow::Borrowed(v)))
        }
        fn visit_str<E>(self, v: &str) -> Result<Self::Value, E> {
            Ok(P::string(Cow::Owned(v.to_owned())))
        }
        fn visit_string<E>(self, v: String) -> Result<Self::Value, E> {
            Ok(P::string(Cow::Owned(v)))
        }
        fn visit_i64<E>(self, v: i64) -> Result<Self::Value, E> {
            Ok(P::int(v))
        }
        fn visit_u64<E>(self, v: u64) -> Result<Self::Value, E> {
            Ok(i64::try_from(v).ok().and_then(P::int))
        }
        fn visit_f64<E>(self, _: f64) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_bool<E>(self, v: bool) -> Result<Self::Value, E> {
            Ok(P::boolean(v))
        }
        fn visit_unit<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_none<E>(self) -> Result<Self::Value, E> {
            Ok(None)
        }
        fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            d.deserialize_any(self)
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
            while seq.next_element::<IgnoredAny>()?.is_some() {}
            Ok(None)
        }
        fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
            P::map(map)
        }
    }

    fn lenient<'de, P: Accept<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<P::Out>, D::Error> {
        d.deserialize_any(Lenient::<P>(PhantomData))
    }

    struct Str;
    impl<'de> Accept<'de> for Str {
        type Out = Cow<'de, str>;
        fn string(v: Cow<'de, str>) -> Option<Self::Out> {
            Some(v)
        }
    }

    struct Int;
    impl Accept<'_> for Int {
        type Out = i64;
        fn int(v: i64) -> Option<i64> {
            Some(v)
        }
    }

    struct Bool;
    impl Accept<'_> for Bool {
        type Out = bool;
        fn boolean(v: bool) -> Option<bool> {
            Some(v)
        }
    }

    struct Object<T>(PhantomData<T>);
    impl<'de, T: Deserialize<'de>> Accept<'de> for Object<T> {
        type Out = T;
        fn map<A: MapAccess<'de>>(map: A) -> Result<Option<T>, A::Error> {
            T::deserialize(MapAccessDeserializer::new(map)).map(Some)
        }
    }

    struct Strings;
    impl<'de> Accept<'de> for Strings {
        type Out = StringMap<'de>;
        fn map<A: MapAccess<'de>>(mut map: A) -> Result<Option<Self::Out>, A::Error> {
            let mut out = StringMap::new();
            while let Some(key) = map.next_key_seed(KeySeed)? {
                if let Some(value) = map.next_value_seed(ValueSeed)? {
                    out.insert(key, value);
                }
            }
            Ok(Some(out))
        }
    }

    /// A map key, borrowed when it has no escapes.
    struct KeySeed;
    impl<'de> DeserializeSeed<'de> for KeySeed {
        type Value = Cow<'de, str>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            // JSON keys are always strings; anything else yields "".
            Ok(lenient::<Str, D>(d)?.unwrap_or_default())
        }
    }

    /// A map value: a string, or `None` for any other type.
    struct ValueSeed;
    impl<'de> DeserializeSeed<'de> for ValueSeed {
        type Value = Option<Cow<'de, str>>;
        fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
            lenient::<Str, D>(d)
        }
    }

    pub(super) fn str<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Cow<'de, str>>, D::Error> {
        lenient::<Str, D>(d)
    }

    pub(super) fn int<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        lenient::<Int, D>(d)
    }

    pub(super) fn boolean<'de, D: Deserializer<'de>>(d: D) -> Result<Option<bool>, D::Error> {
        lenient::<Bool, D>(d)
    }

    pub(super) fn object<'de, T, D>(d: D) -> Result<T, D::Error>
    where
        T: Deserialize<'de> + Default,
        D: Deserializer<'de>,
    {
        Ok(lenient::<Object<T>, D>(d)?.unwrap_or_default())
    }

    pub(super) fn optional_object<'de, T, D>(d: D) -> Result<Option<T>, D::Error>
    where
        T: Deserialize<'de>,
        D: Deserializer<'de>,
    {
        lenient::<Object<T>, D>(d)
    }

    pub(super) fn string_map<'de, D: Deserializer<'de>>(d: D) -> Result<StringMap<'de>, D::Error> {
        Ok(lenient::<Strings, D>(d)?.unwrap_or_default())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXAMPLE: &str = r#"{"@timestamp":"2026-11-07T11:12:33Z","cluster":"prod-eu","type":"Warning","reason":"BackOff","message":"Back-off pulling image \"nginx:1.27.2\"","count":1,"firstTimestamp":"2026-11-07T11:12:33Z","lastTimestamp":"2026-11-07T11:12:33Z","involvedObject":{"kind":"Pod","namespace":"default","name":"nginx-vl4d97r2m5-5qq6c","uid":"81775ad8-6106-4a57-becb-4eb00ab7c6ff","apiVersion":"v1","fieldPath":"spec.containers{nginx}"},"source":{"component":"kubelet","host":"ip-10-0-27-166.ec2.internal"},"metadata":{"namespace":"default","name":"nginx-vl4d97r2m5-5qq6c.18e5beed8753bf43","uid":"53ce2602-54dd-434d-a267-e400c02e94da","resourceVersion":"225467713","creationTimestamp":"2026-11-07T11:12:33Z","labels":{"app.kubernetes.io/name":"nginx"}},"kwex":{"watchAction":"added","observedAt":"2026-11-25T14:51:35.192333164Z","apiVersion":"v1","suppressed":3},"team":"web"}"#;

    #[test]
    fn reads_every_documented_field() {
        let doc = Document::parse(EXAMPLE).unwrap();
        assert_eq!(doc.timestamp.as_deref(), Some("2026-11-07T11:12:33Z"));
        assert_eq!(doc.type_str(), Some("Warning"));
        assert_eq!(doc.reason_str(), Some("BackOff"));
        assert_eq!(doc.count, Some(1));
        assert_eq!(doc.involved_object.kind.as_deref(), Some("Pod"));
        assert_eq!(
            doc.involved_object.field_path.as_deref(),
            Some("spec.containers{nginx}")
        );
        assert_eq!(doc.source.component.as_deref(), Some("kubelet"));
        assert_eq!(doc.namespace(), Some("default"));
        assert_eq!(doc.metadata.resource_version.as_deref(), Some("225467713"));
        assert_eq!(
            doc.metadata
                .labels
                .get("app.kubernetes.io/name")
                .map(|v| &**v),
            Some("nginx")
        );
        assert_eq!(doc.kwex.api_version.as_deref(), Some("v1"));
        assert_eq!(doc.kwex.extra.get("suppressed"), Some(&Value::from(3)));
        assert_eq!(doc.extra.get("team"), Some(&Value::from("web")));
        assert!(
            !doc.extra.contains_key("type"),
            "known fields are not repeated in extra"
        );
        assert_eq!(doc.raw(), EXAMPLE);
    }

    #[test]
    fn borrows_strings_without_escapes_and_unescapes_the_others() {
        let doc = Document::parse(EXAMPLE).unwrap();
        assert!(matches!(doc.reason, Some(Cow::Borrowed(_))));
        assert!(matches!(
            doc.metadata.labels.keys().next(),
            Some(Cow::Borrowed(_))
        ));
        assert!(matches!(doc.message, Some(Cow::Owned(_))));
        assert_eq!(
            doc.message.as_deref(),
            Some("Back-off pulling image \"nginx:1.27.2\"")
        );
    }

    #[test]
    fn fields_of_an_unexpected_type_read_as_absent() {
        let json = r#"{"type":5,"count":"three","involvedObject":"Pod/x","metadata":{"labels":{"a":"1","b":2},"annotations":[]},"kwex":null,"related":{"kind":"Node"}}"#;
        let doc = Document::parse(json).unwrap();
        assert_eq!(doc.type_, None);
        assert_eq!(doc.count, None);
        assert_eq!(doc.involved_object.kind, None);
        assert_eq!(doc.metadata.labels.len(), 1);
        assert!(doc.metadata.annotations.is_empty());
        assert_eq!(doc.related.and_then(|r| r.kind).as_deref(), Some("Node"));
    }

    #[test]
    fn an_empty_object_is_a_document_with_nothing_set() {
        let doc = Document::parse("{}").unwrap();
        assert_eq!(doc.timestamp, None);
        assert!(doc.extra.is_empty());
    }

    #[test]
    fn anything_but_an_object_is_refused() {
        for json in [
            "[]",
            "[1,2]",
            "\"Warning\"",
            "5",
            "null",
            "",
            "{\"type\":",
            "{} {}",
        ] {
            assert!(Document::parse(json).is_err(), "{json:?} was accepted");
        }
    }

    #[test]
    fn to_map_gives_the_whole_document() {
        let doc = Document::parse(EXAMPLE).unwrap();
        let map = doc.to_map().unwrap();
        assert_eq!(
            map["metadata"]["uid"],
            "53ce2602-54dd-434d-a267-e400c02e94da"
        );
        assert_eq!(map.len(), 13);
    }
}
