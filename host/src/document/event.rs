//! The Kubernetes Event as it arrives, in either API version.
//!
//! `core/v1` and `events.k8s.io/v1` describe the same thing with different
//! field names (`message`/`note`, `involvedObject`/`regarding`, `count`/
//! `deprecatedCount`, …). Rather than two parsers, one struct carries the
//! fields of both: serde fills whichever the input has, and
//! [`normalize`](super::normalize) decides which one wins from `apiVersion`.
//!
//! Strings borrow from the input buffer where they contain no escapes, so a
//! typical event is parsed with few allocations. Fields the Document does not
//! use (`managedFields`, `ownerReferences`, …) are skipped by serde without
//! being stored.

use std::borrow::Cow;
use std::collections::BTreeMap;

use serde::Deserialize;

/// A string field that may be absent or `null`.
pub type Str<'a> = Option<Text<'a>>;

/// A JSON string that borrows from the input when it can.
///
/// serde only borrows a `Cow<str>` when it is the field's type itself; wrapped
/// in an `Option` (as every Event field is) it always allocates. This type
/// borrows whenever the string has no escape sequences, whatever wraps it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Text<'a>(pub Cow<'a, str>);

impl Text<'_> {
    /// The string itself.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Text<'_> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<'de: 'a, 'a> Deserialize<'de> for Text<'a> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = Text<'de>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E>(self, v: &'de str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Borrowed(v)))
            }
            fn visit_str<E>(self, v: &str) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E>(self, v: String) -> Result<Text<'de>, E> {
                Ok(Text(Cow::Owned(v)))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

impl serde::Serialize for Text<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

/// One Kubernetes Event, `core/v1` or `events.k8s.io/v1`.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Event<'a> {
    /// `v1`, `events.k8s.io/v1` or `events.k8s.io/v1beta1`; absent in some dumps.
    #[serde(borrow, default)]
    pub api_version: Str<'a>,
    /// Must be `Event` when present.
    #[serde(borrow, default)]
    pub kind: Str<'a>,
    /// Identity (uid, resourceVersion) and the event object's own labels.
    #[serde(borrow, default)]
    pub metadata: Option<ObjectMeta<'a>>,

    /// `Normal` or `Warning` (both versions).
    #[serde(borrow, default, rename = "type")]
    pub type_: Str<'a>,
    /// Machine-readable cause, e.g. `BackOff` (both versions).
    #[serde(borrow, default)]
    pub reason: Str<'a>,
    /// What was done or failed, e.g. `Binding` (both versions; rarely set on core/v1).
    #[serde(borrow, default)]
    pub action: Str<'a>,
    /// MicroTime of the first observation (events.k8s.io; optional on core/v1).
    #[serde(borrow, default)]
    pub event_time: Str<'a>,
    /// Recurrence data of an event series (both versions).
    #[serde(borrow, default)]
    pub series: Option<Series<'a>>,
    /// A secondary object, e.g. the node of a scheduling event (both versions).
    #[serde(borrow, default)]
    pub related: Option<ObjectReference<'a>>,
    /// Instance of the controller that emitted it, e.g. `kubelet-node-1`.
    #[serde(borrow, default)]
    pub reporting_instance: Str<'a>,

    // core/v1 names
    /// core/v1: the object the event is about.
    #[serde(borrow, default)]
    pub involved_object: Option<ObjectReference<'a>>,
    /// core/v1: human-readable description.
    #[serde(borrow, default)]
    pub message: Str<'a>,
    /// core/v1: component and host that reported it.
    #[serde(borrow, default)]
    pub source: Option<EventSource<'a>>,
    /// core/v1: first time the event was seen.
    #[serde(borrow, default)]
    pub first_timestamp: Str<'a>,
    /// core/v1: most recent time the event was seen.
    #[serde(borrow, default)]
    pub last_timestamp: Str<'a>,
    /// core/v1: how many times it occurred.
    #[serde(default)]
    pub count: Option<i64>,
    /// core/v1: the controller that emitted it (events.k8s.io calls it reportingController).
    #[serde(borrow, default)]
    pub reporting_component: Str<'a>,

    // events.k8s.io/v1 names
    /// events.k8s.io: the object the event is about.
    #[serde(borrow, default)]
    pub regarding: Option<ObjectReference<'a>>,
    /// events.k8s.io: human-readable description.
    #[serde(borrow, default)]
    pub note: Str<'a>,
    /// events.k8s.io: the controller that emitted it.
    #[serde(borrow, default)]
    pub reporting_controller: Str<'a>,
    /// events.k8s.io: core/v1 `source`, kept for compatibility.
    #[serde(borrow, default)]
    pub deprecated_source: Option<EventSource<'a>>,
    /// events.k8s.io: core/v1 `firstTimestamp`, kept for compatibility.
    #[serde(borrow, default)]
    pub deprecated_first_timestamp: Str<'a>,
    /// events.k8s.io: core/v1 `lastTimestamp`, kept for compatibility.
    #[serde(borrow, default)]
    pub deprecated_last_timestamp: Str<'a>,
    /// events.k8s.io: core/v1 `count`, kept for compatibility.
    #[serde(default)]
    pub deprecated_count: Option<i64>,
}

/// The part of `metadata` the Document keeps.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectMeta<'a> {
    /// Namespace of the Event object (usually that of the involved object).
    #[serde(borrow, default)]
    pub namespace: Str<'a>,
    /// Name of the Event object, e.g. `web-1.17a2b3c4d5e6f708`.
    #[serde(borrow, default)]
    pub name: Str<'a>,
    /// Identity of the Event object; half of the document id.
    #[serde(borrow, default)]
    pub uid: Str<'a>,
    /// Changes on every update of the Event; the other half of the document id.
    #[serde(borrow, default)]
    pub resource_version: Str<'a>,
    /// When the Event object was created.
    #[serde(borrow, default)]
    pub creation_timestamp: Str<'a>,
    /// Labels of the Event object (keys often contain dots and slashes).
    #[serde(borrow, default)]
    pub labels: Option<BTreeMap<Text<'a>, Text<'a>>>,
    /// Annotations of the Event object.
    #[serde(borrow, default)]
    pub annotations: Option<BTreeMap<Text<'a>, Text<'a>>>,
}

/// A reference to another Kubernetes object (`involvedObject`, `regarding`, `related`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectReference<'a> {
    /// e.g. `Pod`.
    #[serde(borrow, default)]
    pub kind: Str<'a>,
    /// Namespace of the referenced object.
    #[serde(borrow, default)]
    pub namespace: Str<'a>,
    /// Name of the referenced object.
    #[serde(borrow, default)]
    pub name: Str<'a>,
    /// uid of the referenced object.
    #[serde(borrow, default)]
    pub uid: Str<'a>,
    /// e.g. `apps/v1`.
    #[serde(borrow, default)]
    pub api_version: Str<'a>,
    /// Part of the object the event is about, e.g. `spec.containers{app}`.
    #[serde(borrow, default)]
    pub field_path: Str<'a>,
}

/// Who reported an event (core/v1 `source`, events.k8s.io `deprecatedSource`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EventSource<'a> {
    /// e.g. `kubelet`.
    #[serde(borrow, default)]
    pub component: Str<'a>,
    /// Node name, for kubelet events.
    #[serde(borrow, default)]
    pub host: Str<'a>,
}

/// Recurrence of an event (both versions).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Series<'a> {
    /// Occurrences so far.
    #[serde(default)]
    pub count: Option<i64>,
    /// MicroTime of the latest occurrence.
    #[serde(borrow, default)]
    pub last_observed_time: Str<'a>,
}
