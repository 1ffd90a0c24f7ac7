//! What can go wrong when a filter runs or loads, as types callers can match
//! on and messages an operator can act on.
//!
//! Every message names the filter (its file name) and the cause in words:
//! "20-redact.wasm exceeded its 5 ms deadline", "… returned invalid JSON: EOF
//! while parsing a string at line 1 column 19". A [`Failure`] is what one
//! call did wrong; its [`ErrorKind`] is the `kind` label of
//! `kwex_filter_errors_total`.

use std::sync::Arc;
use std::time::Duration;

/// The class of a failed call: the `kind` label of `kwex_filter_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The guest trapped (a panic, `unreachable`, a bad memory access, a
    /// stack overflow, `proc_exit`).
    Trap,
    /// The call passed its deadline and was interrupted.
    Timeout,
    /// The call used up its fuel.
    OutOfFuel,
    /// The guest hit its memory cap.
    Memory,
    /// The guest broke the ABI in its answer: a pointer outside its memory,
    /// an unknown verdict, too much output, invalid UTF-8 or JSON, a bad
    /// index name.
    InvalidOutput,
    /// The guest answered with its own `error` verdict.
    GuestError,
    /// A new instance could not be started (instantiation failed, the pool is
    /// full, or `init` failed when an instance was replaced).
    Start,
}

impl ErrorKind {
    /// Every kind, for pre-creating metric series.
    pub const ALL: [ErrorKind; 7] = [
        ErrorKind::Trap,
        ErrorKind::Timeout,
        ErrorKind::OutOfFuel,
        ErrorKind::Memory,
        ErrorKind::InvalidOutput,
        ErrorKind::GuestError,
        ErrorKind::Start,
    ];

    /// The metric label value.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::Trap => "trap",
            ErrorKind::Timeout => "timeout",
            ErrorKind::OutOfFuel => "out_of_fuel",
            ErrorKind::Memory => "memory",
            ErrorKind::InvalidOutput => "invalid_output",
            ErrorKind::GuestError => "guest_error",
            ErrorKind::Start => "start",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A byte count for messages: `16 MiB`, `64 KiB`, or `1234 bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Size(pub u64);

impl std::fmt::Display for Size {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0;
        if n >= 1 << 20 && n.is_multiple_of(1 << 20) {
            write!(f, "{} MiB", n >> 20)
        } else if n >= 1 << 10 && n.is_multiple_of(1 << 10) {
            write!(f, "{} KiB", n >> 10)
        } else {
            write!(f, "{n} bytes")
        }
    }
}

/// A duration for messages: `5 ms`, `1 s`, `250 µs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Time(pub Duration);

impl std::fmt::Display for Time {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let d = self.0;
        if d.subsec_nanos() == 0 {
            write!(f, "{} s", d.as_secs())
        } else if d.as_nanos().is_multiple_of(1_000_000) {
            write!(f, "{} ms", d.as_millis())
        } else if d.as_nanos().is_multiple_of(1_000) {
            write!(f, "{} µs", d.as_micros())
        } else {
            write!(f, "{d:?}")
        }
    }
}

/// What one call of a filter did wrong. The message reads after the filter's
/// name: "`<filter>` exceeded its 5 ms deadline".
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Failure {
    /// The guest trapped; the message is wasmtime's description of the trap.
    #[error("trapped: {0}")]
    Trap(String),
    /// The guest called WASI `proc_exit`.
    #[error("called proc_exit({0})")]
    Exit(i32),
    /// The call (or the instance start) passed its deadline.
    #[error("exceeded its {} deadline", Time(*.0))]
    Timeout(Duration),
    /// The call used up its fuel.
    #[error("ran out of its {0} units of fuel")]
    OutOfFuel(u64),
    /// A memory growth was refused at the cap, and the call then failed.
    #[error("exceeded its {} memory cap", Size(*.0))]
    Memory(u64),
    /// `alloc` returned 0: the guest could not hold the input.
    #[error("could not allocate {0} bytes for its input (alloc returned 0)")]
    AllocFailed(u64),
    /// A pointer from the guest (`what` says which) is outside its memory.
    #[error(
        "returned a pointer outside its memory ({what}: {len} bytes at {ptr:#x}, memory is {memory} bytes)"
    )]
    OutOfBounds {
        /// `alloc` or the result of `filter`/`init`.
        what: &'static str,
        /// The pointer.
        ptr: u32,
        /// The length that went with it.
        len: u32,
        /// The memory's size at the time.
        memory: u64,
    },
    /// The result had no verdict byte.
    #[error("returned an empty result (a result holds at least its verdict byte)")]
    EmptyResult,
    /// The result payload is over [`crate::filter::Limits::max_output_bytes`].
    #[error("returned {} of output, more than its {} limit", Size(*.len), Size(*.limit))]
    OutputTooLarge {
        /// Payload length.
        len: u64,
        /// The limit.
        limit: u64,
    },
    /// The verdict byte is not one the ABI defines (or not one allowed here).
    #[error("returned verdict code {code}, which {context} does not allow")]
    UnknownVerdict {
        /// The code.
        code: u8,
        /// `filter` or `init`.
        context: &'static str,
    },
    /// `keep` or `drop` came with payload bytes.
    #[error("returned {verdict} with {len} payload bytes; {verdict} takes none")]
    UnexpectedPayload {
        /// `keep` or `drop`.
        verdict: &'static str,
        /// Payload length.
        len: usize,
    },
    /// The new document (or the index name, or the message) is not UTF-8.
    #[error("returned invalid UTF-8: {0}")]
    InvalidUtf8(String),
    /// The new document is not a JSON object.
    #[error("returned invalid JSON: {0}")]
    InvalidJson(String),
    /// `route` named an index the search cluster would refuse.
    #[error("routed to an invalid index name {index:?}: {reason}")]
    InvalidIndex {
        /// The name (lossy, truncated).
        index: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The guest answered `error(message)`.
    #[error("reported an error: {0}")]
    Reported(String),
    /// `init` answered `error(message)`.
    #[error("rejected its config in init: {0}")]
    InitRejected(String),
    /// An instance could not be created (the pool is full, a link failed).
    #[error("could not be instantiated: {0}")]
    Instantiate(String),
}

impl Failure {
    /// The metric class of this failure.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Failure::Trap(_) | Failure::Exit(_) => ErrorKind::Trap,
            Failure::Timeout(_) => ErrorKind::Timeout,
            Failure::OutOfFuel(_) => ErrorKind::OutOfFuel,
            Failure::Memory(_) | Failure::AllocFailed(_) => ErrorKind::Memory,
            Failure::OutOfBounds { .. }
            | Failure::EmptyResult
            | Failure::OutputTooLarge { .. }
            | Failure::UnknownVerdict { .. }
            | Failure::UnexpectedPayload { .. }
            | Failure::InvalidUtf8(_)
            | Failure::InvalidJson(_)
            | Failure::InvalidIndex { .. } => ErrorKind::InvalidOutput,
            Failure::Reported(_) => ErrorKind::GuestError,
            Failure::InitRejected(_) | Failure::Instantiate(_) => ErrorKind::Start,
        }
    }

    /// Whether the instance can be trusted after this failure.
    ///
    /// Only the guest's own `error` verdict is an orderly answer; after
    /// anything else (a trap, a timeout, a broken answer) the instance's
    /// state is suspect and it is replaced.
    pub(crate) fn keeps_instance(&self) -> bool {
        matches!(self, Failure::Reported(_))
    }
}

/// A filter failed on a document: which filter, and how.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{filter} {failure}")]
pub struct FilterError {
    /// The filter's name (its file name).
    pub filter: Arc<str>,
    /// What it did wrong.
    pub failure: Failure,
}

impl FilterError {
    /// The metric class of this error.
    pub fn kind(&self) -> ErrorKind {
        self.failure.kind()
    }
}

/// A chain could not be loaded. Loading checks everything it can before the
/// first document, so that a broken filter is refused at start (or a hot
/// reload is refused, leaving the old chain running) instead of failing on
/// every document.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LoadError {
    /// The filter directory could not be listed.
    #[error("cannot read the filter directory {}", path.display())]
    ReadDir {
        /// The directory.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A filter file could not be read.
    #[error("cannot read filter {}", path.display())]
    Read {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The file is not WebAssembly.
    #[error("filter {name} is not a WebAssembly module (it does not start with \\0asm)")]
    NotWasm {
        /// The filter.
        name: String,
    },
    /// The pipeline file is not valid.
    #[error("pipeline file {}: {problem}", path.display())]
    PipelineFile {
        /// The file.
        path: std::path::PathBuf,
        /// What is wrong, and where.
        problem: String,
    },
    /// wasmtime could not validate or compile it.
    #[error("filter {name} does not compile: {message}")]
    Compile {
        /// The filter.
        name: String,
        /// wasmtime's message.
        message: String,
    },
    /// Its exports or imports break the ABI or the sandbox; every problem is
    /// listed.
    #[error("filter {name} is refused: {}", problems.join("; "))]
    Refused {
        /// The filter.
        name: String,
        /// One line per problem, each naming the export or import.
        problems: Vec<String>,
    },
    /// Its first instance failed to start (instantiation, `_initialize` or
    /// `init`).
    #[error("filter {name} failed to start: {failure}")]
    Start {
        /// The filter.
        name: String,
        /// What went wrong.
        failure: Failure,
    },
    /// Its limits are invalid.
    #[error("filter {name} has invalid limits: {reason}")]
    Limits {
        /// The filter.
        name: String,
        /// Why.
        reason: String,
    },
    /// Two filters of one chain have the same name (metrics and logs would
    /// mix them up).
    #[error("two filters are named {name}")]
    DuplicateName {
        /// The name.
        name: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_times_read_like_their_settings() {
        assert_eq!(Size(16 << 20).to_string(), "16 MiB");
        assert_eq!(Size(64 << 10).to_string(), "64 KiB");
        assert_eq!(Size(1000).to_string(), "1000 bytes");
        assert_eq!(Time(Duration::from_millis(5)).to_string(), "5 ms");
        assert_eq!(Time(Duration::from_secs(1)).to_string(), "1 s");
        assert_eq!(Time(Duration::from_micros(250)).to_string(), "250 µs");
    }

    #[test]
    fn an_error_names_the_filter_then_the_cause() {
        let e = FilterError {
            filter: "20-loop.wasm".into(),
            failure: Failure::Timeout(Duration::from_millis(5)),
        };
        assert_eq!(e.to_string(), "20-loop.wasm exceeded its 5 ms deadline");
        assert_eq!(e.kind(), ErrorKind::Timeout);
    }

    #[test]
    fn error_kinds_index_their_position() {
        for (i, k) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(k.index(), i);
        }
    }
}
