//! The Document: the one JSON shape every Event becomes, whatever API it came
//! from, and what filters see and the search cluster indexes.
//!
//! The schema is written down for users in `docs/document.md`; the structs
//! here are its single source of truth. A [`Record`] is a Document on its way
//! through the pipeline: its serialized bytes plus the `_id` and target index
//! that the sink needs, so that nothing downstream parses it again unless a
//! filter changes it.

mod event;
mod index;
mod normalize;
mod timestamp;

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::Serialize;

pub use event::{Event, Text};
pub use index::{IndexPattern, IndexPatternError};
pub use normalize::{NormalizeError, NormalizeErrorKind, Normalized, Normalizer, Repair};
pub use timestamp::format as format_timestamp;

/// How a document's `_id` is derived, and so whether updates of one Event
/// accumulate or overwrite.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum IdMode {
    /// `<uid>:<resourceVersion>`, written with `create`: every update of an
    /// Event (a `count` bump) is its own document, and a re-list or a retried
    /// request can never create a duplicate (the cluster answers 409).
    #[default]
    Occurrence,
    /// `<uid>`, written with `index`: one document per Event, overwritten by
    /// each update, so the index holds the latest state only.
    Latest,
}

impl IdMode {
    /// The `_bulk` action that goes with this mode.
    pub fn bulk_action(self) -> &'static str {
        match self {
            IdMode::Occurrence => "create",
            IdMode::Latest => "index",
        }
    }
}

/// What the watch said happened to the Event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum WatchAction {
    /// Seen for the first time by this process (watch `ADDED`, a (re-)list, or a replayed record).
    Added,
    /// An update of an Event already seen (watch `MODIFIED`).
    Modified,
}

/// A Document on its way through the pipeline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The `_id` the search cluster stores it under (see [`IdMode`]).
    pub id: String,
    /// The target index (or data stream), after pattern expansion and routing.
    pub index: String,
    /// The Document as JSON, exactly as it is sent.
    pub body: Bytes,
}

/// The Document schema. Field order here is the order in the JSON output.
///
/// Absent or empty values are left out rather than written as `null` or `""`,
/// so a search on `exists` means what it says.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Document<'a> {
    /// When this observation happened (see `docs/document.md` for the fallbacks).
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    /// The cluster name given by `--cluster-name`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<&'a str>,
    /// `Normal` or `Warning`.
    #[serde(rename = "type", skip_serializing_if = "Option::is_none")]
    pub type_: Option<Text<'a>>,
    /// Machine-readable cause, e.g. `BackOff`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<Text<'a>>,
    /// Human-readable description (`message` or `note`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<Text<'a>>,
    /// What was done or failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub action: Option<Text<'a>>,
    /// Occurrences so far (at least 1).
    pub count: i64,
    /// First time the Event was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub first_timestamp: Option<String>,
    /// Latest time the Event was seen.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_timestamp: Option<String>,
    /// The object the Event is about (`involvedObject` or `regarding`).
    pub involved_object: ObjectRef<'a>,
    /// Component and host that reported it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Source<'a>>,
    /// The controller that emitted it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_controller: Option<Text<'a>>,
    /// The instance of that controller.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reporting_instance: Option<Text<'a>>,
    /// A secondary object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub related: Option<ObjectRef<'a>>,
    /// The Event object's own metadata.
    pub metadata: Metadata<'a>,
    /// What kwex knows about this observation.
    pub kwex: Kwex,
}

/// A reference to a Kubernetes object, with empty fields left out.
#[derive(Debug, Default, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ObjectRef<'a> {
    /// e.g. `Pod`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<Text<'a>>,
    /// Its namespace.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Text<'a>>,
    /// Its name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<'a>>,
    /// Its uid.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub uid: Option<Text<'a>>,
    /// e.g. `apps/v1`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_version: Option<Text<'a>>,
    /// e.g. `spec.containers{app}`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field_path: Option<Text<'a>>,
}

/// Who reported the Event.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Source<'a> {
    /// e.g. `kubelet`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub component: Option<Text<'a>>,
    /// Node name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<Text<'a>>,
}

/// The Event object's metadata.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Metadata<'a> {
    /// Namespace of the Event object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<Text<'a>>,
    /// Name of the Event object.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Text<'a>>,
    /// uid of the Event object (always present: it is part of the id).
    pub uid: Text<'a>,
    /// resourceVersion of this observation (always present: part of the id).
    pub resource_version: Text<'a>,
    /// When the Event object was created.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub creation_timestamp: Option<String>,
    /// Labels, keys as they are (dots and slashes included).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub labels: Option<BTreeMap<Text<'a>, Text<'a>>>,
    /// Annotations, keys as they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<Text<'a>, Text<'a>>>,
}

/// kwex's own fields.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Kwex {
    /// What the watch reported.
    pub watch_action: WatchAction,
    /// When kwex received this observation.
    pub observed_at: String,
    /// The API version the Event was read in (`v1` or `events.k8s.io/v1`).
    pub api_version: &'static str,
    /// Set when the message was longer than `--max-message-bytes`: its original size.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message_truncated_from: Option<usize>,
    /// Set when the input had bytes that were not UTF-8 (replaced by U+FFFD).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub invalid_utf8_replaced: bool,
}
