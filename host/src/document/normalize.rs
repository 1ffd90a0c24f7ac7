//! Event → Document.
//!
//! One function turns the raw JSON of an Event (either API version) into a
//! [`Record`]: the serialized Document, its `_id` and its target index. It
//! never panics on input: anything it cannot make sense of is a
//! [`NormalizeError`] that names the field and what is wrong with it, and the
//! caller decides whether to skip the record or stop.
//!
//! Two defects are repaired rather than refused, because refusing would lose
//! an otherwise good Event: bytes that are not UTF-8 (replaced by U+FFFD) and
//! messages longer than the configured limit (cut at a character boundary).
//! Both are marked in the Document's `kwex` field and reported as a [`Repair`].

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};

use super::event::{Event, EventSource, ObjectReference, Str, Text};
use super::{
    Document, IdMode, IndexPattern, Kwex, Metadata, ObjectRef, Record, Source, WatchAction,
    timestamp,
};

/// Turns Events into Records; built once from the configuration.
#[derive(Debug, Clone)]
pub struct Normalizer {
    /// `cluster` field of every Document (`--cluster-name`).
    pub cluster: Option<String>,
    /// Target index pattern (`--index`).
    pub index: IndexPattern,
    /// How `_id` is formed (`--id-mode`).
    pub id_mode: IdMode,
    /// Messages longer than this many bytes are cut (`--max-message-bytes`).
    pub max_message_bytes: usize,
    /// Replace dots in label and annotation keys with `_` (`--dedot`), for
    /// clusters without `flattened`/`flat_object` fields.
    pub dedot: bool,
}

/// A Record and what had to be repaired to make it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Normalized {
    /// The Document, ready for the filters and the sink.
    pub record: Record,
    /// Repairs made to the input, in the order they were made.
    pub repairs: Vec<Repair>,
}

/// A defect in the input that was repaired instead of refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Repair {
    /// Bytes that were not UTF-8 were replaced with U+FFFD.
    InvalidUtf8,
    /// The message was cut to `--max-message-bytes`.
    MessageTruncated,
}

impl Repair {
    /// Stable name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Repair::InvalidUtf8 => "invalid_utf8",
            Repair::MessageTruncated => "message_truncated",
        }
    }
}

/// Why a record is not a usable Event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{detail}")]
pub struct NormalizeError {
    /// What class of problem, for metrics and for callers that match on it.
    pub kind: NormalizeErrorKind,
    /// What is wrong, naming the field where there is one.
    pub detail: String,
}

/// The classes of [`NormalizeError`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NormalizeErrorKind {
    /// Not JSON at all, or cut off.
    Syntax,
    /// JSON, but not an object.
    NotAnObject,
    /// An object whose `kind` is not `Event`.
    WrongKind,
    /// An `apiVersion` that is neither `v1` nor `events.k8s.io/v1(beta1)`.
    UnknownApiVersion,
    /// No `metadata.uid` or no `metadata.resourceVersion`: the Event has no identity.
    MissingIdentity,
    /// A known field holds the wrong JSON type.
    WrongType,
    /// A timestamp that is not RFC 3339.
    BadTimestamp,
}

impl NormalizeErrorKind {
    /// Stable name, used as a metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Syntax => "syntax",
            Self::NotAnObject => "not_an_object",
            Self::WrongKind => "wrong_kind",
            Self::UnknownApiVersion => "unknown_api_version",
            Self::MissingIdentity => "missing_identity",
            Self::WrongType => "wrong_type",
            Self::BadTimestamp => "bad_timestamp",
        }
    }
}

fn error(kind: NormalizeErrorKind, detail: impl Into<String>) -> NormalizeError {
    NormalizeError {
        kind,
        detail: detail.into(),
    }
}

/// Which API the Event was written in; decides which of two field names wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Api {
    CoreV1,
    EventsV1,
}

impl Normalizer {
    /// Normalizes one Event given as JSON bytes.
    pub fn normalize(
        &self,
        raw: &[u8],
        action: WatchAction,
        observed_at: DateTime<Utc>,
    ) -> Result<Normalized, NormalizeError> {
        self.normalize_hinted(raw, None, action, observed_at)
    }

    /// Like [`normalize`](Self::normalize), with the API version to assume
    /// when the JSON has none (items of a list from the API server carry no
    /// `apiVersion`); without a hint it is inferred from the field names.
    pub fn normalize_hinted(
        &self,
        raw: &[u8],
        api_hint: Option<&str>,
        action: WatchAction,
        observed_at: DateTime<Utc>,
    ) -> Result<Normalized, NormalizeError> {
        match self.normalize_utf8(raw, api_hint, action, observed_at, false) {
            Err(e) if e.kind == NormalizeErrorKind::Syntax && std::str::from_utf8(raw).is_err() => {
                // serde_json refuses strings that are not UTF-8. Kubernetes never
                // writes them, but dumps pass through other tools: keep the Event
                // and mark the damage rather than lose it.
                let repaired = String::from_utf8_lossy(raw);
                self.normalize_utf8(repaired.as_bytes(), api_hint, action, observed_at, true)
            }
            other => other,
        }
    }

    fn normalize_utf8(
        &self,
        raw: &[u8],
        api_hint: Option<&str>,
        action: WatchAction,
        observed_at: DateTime<Utc>,
        utf8_repaired: bool,
    ) -> Result<Normalized, NormalizeError> {
        let event: Event<'_> =
            serde_json::from_slice(raw).map_err(|e| describe_parse_error(raw, e))?;
        let mut repairs = Vec::new();
        if utf8_repaired {
            repairs.push(Repair::InvalidUtf8);
        }

        if let Some(kind) = &event.kind
            && kind.as_str() != "Event"
        {
            return Err(error(
                NormalizeErrorKind::WrongKind,
                format!("kind is {:?}, expected \"Event\"", kind.as_str()),
            ));
        }
        let api = match event.api_version.as_deref() {
            Some("v1") => Api::CoreV1,
            Some("events.k8s.io/v1" | "events.k8s.io/v1beta1") => Api::EventsV1,
            Some(other) => {
                return Err(error(
                    NormalizeErrorKind::UnknownApiVersion,
                    format!("apiVersion is {other:?}, expected \"v1\" or \"events.k8s.io/v1\""),
                ));
            }
            None => match api_hint {
                Some(hint) if hint.starts_with("events.k8s.io/") => Api::EventsV1,
                Some(_) => Api::CoreV1,
                None if event.note.is_some() || event.regarding.is_some() => Api::EventsV1,
                None => Api::CoreV1,
            },
        };

        let meta = event.metadata.unwrap_or_default();
        let uid = non_empty(meta.uid).ok_or_else(|| {
            error(
                NormalizeErrorKind::MissingIdentity,
                "metadata.uid is missing or empty; every Event has one",
            )
        })?;
        let resource_version = non_empty(meta.resource_version).ok_or_else(|| {
            error(
                NormalizeErrorKind::MissingIdentity,
                "metadata.resourceVersion is missing or empty; every Event has one",
            )
        })?;

        // Each name pair: the one of the Event's own API version first.
        let (message, involved, source, first, last, count, controller) = match api {
            Api::CoreV1 => (
                either(event.message, event.note),
                event.involved_object.or(event.regarding),
                event.source.or(event.deprecated_source),
                (
                    "firstTimestamp",
                    either(event.first_timestamp, event.deprecated_first_timestamp),
                ),
                (
                    "lastTimestamp",
                    either(event.last_timestamp, event.deprecated_last_timestamp),
                ),
                event.count.or(event.deprecated_count),
                either(event.reporting_component, event.reporting_controller),
            ),
            Api::EventsV1 => (
                either(event.note, event.message),
                event.regarding.or(event.involved_object),
                event.deprecated_source.or(event.source),
                (
                    "deprecatedFirstTimestamp",
                    either(event.deprecated_first_timestamp, event.first_timestamp),
                ),
                (
                    "deprecatedLastTimestamp",
                    either(event.deprecated_last_timestamp, event.last_timestamp),
                ),
                event.deprecated_count.or(event.count),
                either(event.reporting_controller, event.reporting_component),
            ),
        };
        let (series_count, series_last) = match event.series {
            Some(s) => (s.count, non_empty(s.last_observed_time)),
            None => (None, None),
        };

        let first = parse_time(first.0, first.1)?;
        let last = parse_time(last.0, last.1)?;
        let series_last = parse_time("series.lastObservedTime", series_last)?;
        let event_time = parse_time("eventTime", non_empty(event.event_time))?;
        let created = parse_time(
            "metadata.creationTimestamp",
            non_empty(meta.creation_timestamp),
        )?;

        // When this observation happened, most specific first (docs/document.md).
        let observed = series_last
            .or(last)
            .or(event_time)
            .or(first)
            .or(created)
            .unwrap_or(observed_at);
        // When the Event was first seen: decides the index, so that every
        // update of one Event lands next to its first occurrence.
        let first_seen = first.or(event_time).or(created).unwrap_or(observed);

        let (message, truncated_from) = match non_empty(message) {
            Some(m) if m.len() > self.max_message_bytes => {
                repairs.push(Repair::MessageTruncated);
                let original = m.len();
                let cut = floor_char_boundary(&m, self.max_message_bytes);
                (Some(Text(m.0[..cut].to_owned().into())), Some(original))
            }
            other => (other, None),
        };

        let id = match self.id_mode {
            IdMode::Occurrence => format!("{}:{}", uid.as_str(), resource_version.as_str()),
            IdMode::Latest => uid.as_str().to_owned(),
        };
        let index = self.index.render(first_seen);

        let document = Document {
            timestamp: timestamp::format(observed),
            cluster: self.cluster.as_deref(),
            type_: non_empty(event.type_),
            reason: non_empty(event.reason),
            message,
            action: non_empty(event.action),
            count: series_count.or(count).unwrap_or(1).max(1),
            first_timestamp: Some(timestamp::format(first_seen)),
            last_timestamp: Some(timestamp::format(observed)),
            involved_object: object_ref(involved).unwrap_or_default(),
            source: source.and_then(source_of),
            reporting_controller: non_empty(controller),
            reporting_instance: non_empty(event.reporting_instance),
            related: event.related.and_then(|r| object_ref(Some(r))),
            metadata: Metadata {
                namespace: non_empty(meta.namespace),
                name: non_empty(meta.name),
                uid,
                resource_version,
                creation_timestamp: created.map(timestamp::format),
                labels: meta.labels.filter(|m| !m.is_empty()).map(|m| self.keys(m)),
                annotations: meta
                    .annotations
                    .filter(|m| !m.is_empty())
                    .map(|m| self.keys(m)),
            },
            kwex: Kwex {
                watch_action: action,
                observed_at: timestamp::format(observed_at),
                api_version: match api {
                    Api::CoreV1 => "v1",
                    Api::EventsV1 => "events.k8s.io/v1",
                },
                message_truncated_from: truncated_from,
                invalid_utf8_replaced: utf8_repaired,
            },
        };
        let mut body = Vec::with_capacity(raw.len().min(64 * 1024));
        // Serializing owned strings and maps into a Vec cannot fail.
        serde_json::to_writer(&mut body, &document).map_err(|e| {
            error(
                NormalizeErrorKind::WrongType,
                format!("cannot serialize the document: {e}"),
            )
        })?;
        Ok(Normalized {
            record: Record {
                id,
                index,
                body: body.into(),
            },
            repairs,
        })
    }
}

impl Normalizer {
    /// Label/annotation keys as the Document carries them (see `dedot`).
    fn keys<'a>(&self, map: BTreeMap<Text<'a>, Text<'a>>) -> BTreeMap<Text<'a>, Text<'a>> {
        if !self.dedot {
            return map;
        }
        map.into_iter()
            .map(|(k, v)| {
                if k.contains('.') {
                    (Text(k.replace('.', "_").into()), v)
                } else {
                    (k, v)
                }
            })
            .collect()
    }
}

/// Says what is wrong with a record serde refused, naming the field.
fn describe_parse_error(raw: &[u8], e: serde_json::Error) -> NormalizeError {
    use serde_json::error::Category;
    match e.classify() {
        Category::Syntax | Category::Eof | Category::Io => {
            // A record is usually one line: its column says all.
            let at = if e.line() == 1 {
                format!("column {}", e.column())
            } else {
                format!("line {} column {}", e.line(), e.column())
            };
            let what = e.to_string();
            let what = what
                .rfind(" at line ")
                .map_or(what.as_str(), |i| &what[..i]);
            error(
                NormalizeErrorKind::Syntax,
                format!("not valid JSON at {at} of the record: {what}"),
            )
        }
        Category::Data => {
            let first = raw.iter().find(|b| !b.is_ascii_whitespace()).copied();
            if first != Some(b'{') {
                return error(
                    NormalizeErrorKind::NotAnObject,
                    "not a JSON object; an Event is an object",
                );
            }
            // Parse again, slowly, only to learn which field was wrong.
            let mut de = serde_json::Deserializer::from_slice(raw);
            match serde_path_to_error::deserialize::<_, Event<'_>>(&mut de) {
                Err(pe) => {
                    let what = pe.inner().to_string();
                    let what = what
                        .rfind(" at line ")
                        .map_or(what.as_str(), |i| &what[..i]);
                    error(
                        NormalizeErrorKind::WrongType,
                        format!("field {}: {what}", pe.path()),
                    )
                }
                Ok(_) => error(NormalizeErrorKind::WrongType, e.to_string()),
            }
        }
    }
}

fn parse_time(field: &str, value: Str<'_>) -> Result<Option<DateTime<Utc>>, NormalizeError> {
    let Some(text) = non_empty(value) else {
        return Ok(None);
    };
    timestamp::parse(&text).map(Some).map_err(|e| {
        error(
            NormalizeErrorKind::BadTimestamp,
            format!(
                "field {field}: {:?} is not an RFC 3339 timestamp ({e})",
                text.as_str()
            ),
        )
    })
}

/// Kubernetes writes `""` for unset strings; the Document leaves them out.
fn non_empty(value: Str<'_>) -> Str<'_> {
    value.filter(|s| !s.is_empty())
}

fn either<'a>(first: Str<'a>, second: Str<'a>) -> Str<'a> {
    non_empty(first).or_else(|| non_empty(second))
}

fn object_ref(r: Option<ObjectReference<'_>>) -> Option<ObjectRef<'_>> {
    let r = r?;
    let out = ObjectRef {
        kind: non_empty(r.kind),
        namespace: non_empty(r.namespace),
        name: non_empty(r.name),
        uid: non_empty(r.uid),
        api_version: non_empty(r.api_version),
        field_path: non_empty(r.field_path),
    };
    let empty =
        out.kind.is_none() && out.namespace.is_none() && out.name.is_none() && out.uid.is_none();
    (!empty || out.api_version.is_some() || out.field_path.is_some()).then_some(out)
}

fn source_of(s: EventSource<'_>) -> Option<Source<'_>> {
    let component = non_empty(s.component);
    let host = non_empty(s.host);
    (component.is_some() || host.is_some()).then_some(Source { component, host })
}

/// The largest index ≤ `max` that is a char boundary of `s`.
fn floor_char_boundary(s: &str, max: usize) -> usize {
    let mut cut = max.min(s.len());
    while !s.is_char_boundary(cut) {
        cut -= 1;
    }
    cut
}

#[cfg(test)]
#[path = "normalize_tests.rs"]
mod tests;
