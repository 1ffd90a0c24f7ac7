//! Where Events come from.
//!
//! A source produces [`RawEvent`]s — the JSON bytes of one Event with where it
//! came from — in chunks, into a bounded channel. It is the only stage that
//! watches the shutdown token: when it fires, the source stops producing and
//! drops its sender, and every later stage drains what is already queued and
//! then ends on its own. That is how the pipeline drains on SIGTERM without
//! losing what is in flight.

pub mod kube;
pub mod replay;

use std::fmt;

use crate::document::WatchAction;

/// The JSON of one Event, not yet parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawEvent {
    /// The Event's JSON bytes (possibly not valid; normalization decides).
    pub bytes: Vec<u8>,
    /// Where it came from, for error messages.
    pub origin: Origin,
    /// What the watch reported (replayed records count as `added`).
    pub action: WatchAction,
    /// The API version to assume when the JSON has no `apiVersion` (list
    /// items from the API server do not); `None` infers it from field names.
    pub api_hint: Option<&'static str>,
}

/// Where a record came from, so that an error message can point at it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A line of an NDJSON input (1-based).
    Line(u64),
    /// An element of an `items` array (or of a top-level array) in a JSON
    /// document; `line` is where it starts (1-based), `index` its position (0-based).
    Item {
        /// Line where the element starts.
        line: u64,
        /// Position in the array.
        index: usize,
    },
    /// A top-level JSON value that was itself an Event, starting at `line`.
    Value {
        /// Line where the value starts.
        line: u64,
    },
    /// Received from the Kubernetes API.
    Watch,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Line(line) => write!(f, "line {line}"),
            Origin::Item { line, index } => write!(f, "line {line} (items[{index}])"),
            Origin::Value { line } => write!(f, "line {line}"),
            Origin::Watch => f.write_str("watch"),
        }
    }
}

/// A chunk of raw events: sources send several at once so that the per-event
/// cost of a channel hand-off stays small.
pub type Chunk = Vec<RawEvent>;
