//! `kwex replay`: Events from a file or stdin.
//!
//! Accepted inputs, detected from the first line (or forced with
//! `--input-format`):
//!
//! - **NDJSON**: one Event per line. Read as a stream, so memory stays flat
//!   whatever the size. A line that is not a usable Event is an error for
//!   that line alone; its neighbours are unaffected.
//! - **JSON documents**: `kubectl get events -A -o json` output (a `List`
//!   with `items`), a single Event, a top-level array of Events, or several of
//!   these one after the other (as `kubectl get -w -o json` writes them). The
//!   whole input is read into memory, then each item is handed on with the
//!   line it starts at. A JSON syntax error here ends the input: past it,
//!   item boundaries cannot be known. Convert large dumps to NDJSON
//!   (`jq -c '.items[]'`) to stream them.
//!
//! Either API version may appear, even mixed.

use std::io::IsTerminal;
use std::path::{Path, PathBuf};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use prometheus::{IntCounter, Registry};
use serde::Deserialize;
use serde_json::value::RawValue;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, BufReader};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::{Chunk, Origin, RawEvent};
use crate::document::WatchAction;
use crate::telemetry::metrics::{self, RegisterError};

/// How many records go into one chunk.
const CHUNK_RECORDS: usize = 256;
/// Read buffer size: large reads keep the per-event I/O cost negligible.
const READ_BUFFER: usize = 1 << 20;

/// Where to read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// A file.
    File(PathBuf),
    /// Standard input (`-` on the command line).
    Stdin,
}

impl Input {
    /// `-` is stdin, anything else a path.
    pub fn from_arg(arg: &Path) -> Self {
        if arg == Path::new("-") {
            Input::Stdin
        } else {
            Input::File(arg.to_owned())
        }
    }
}

impl std::fmt::Display for Input {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Input::File(p) => write!(f, "{}", p.display()),
            Input::Stdin => f.write_str("stdin"),
        }
    }
}

/// The shape of the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum InputFormat {
    /// Decide from the first line.
    #[default]
    Auto,
    /// One Event per line.
    Ndjson,
    /// JSON documents: a List (`kubectl get events -o json`), an Event, or an array.
    Json,
}

/// Why the replay source stopped early.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The input could not be opened.
    #[error("cannot open {input}: {source}")]
    Open {
        /// What was being opened.
        input: Input,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Reading failed part-way.
    #[error("cannot read {input}: {source}")]
    Read {
        /// What was being read.
        input: Input,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// A JSON document input is broken; nothing after `line` could be read.
    #[error(
        "{input} is not valid JSON at line {line}, column {column}: {message}; the records before it were \
         processed, the rest could not be delimited (fix the file, or convert it to NDJSON so that one bad \
         record costs only its own line)"
    )]
    Syntax {
        /// What was being read.
        input: Input,
        /// 1-based line of the error.
        line: usize,
        /// 1-based column of the error.
        column: usize,
        /// serde_json's description.
        message: String,
    },
}

/// Counters of the replay source.
#[derive(Debug, Clone)]
pub struct Metrics {
    records: IntCounter,
    bytes: IntCounter,
}

impl Metrics {
    /// Registers `kwex_source_replay_*`.
    pub fn register(registry: &Registry) -> Result<Self, RegisterError> {
        Ok(Self {
            records: metrics::counter(
                registry,
                "kwex_source_replay_records_total",
                "Records read from the replay input (valid or not).",
            )?,
            bytes: metrics::counter(
                registry,
                "kwex_source_replay_bytes_total",
                "Bytes read from the replay input.",
            )?,
        })
    }
}

/// Reads Events from a file or stdin and sends them into the pipeline.
#[derive(Debug)]
pub struct ReplaySource {
    input: Input,
    format: InputFormat,
    metrics: Metrics,
    progress: bool,
}

impl ReplaySource {
    /// A source over `input`. `progress` asks for a progress bar, which is
    /// drawn only when stderr is a terminal.
    pub fn new(input: Input, format: InputFormat, metrics: Metrics, progress: bool) -> Self {
        Self {
            input,
            format,
            metrics,
            progress,
        }
    }

    /// Reads until the end of the input or until `shutdown` fires.
    pub async fn run(
        self,
        tx: mpsc::Sender<Chunk>,
        shutdown: CancellationToken,
    ) -> Result<(), Error> {
        let (reader, len): (Box<dyn AsyncRead + Send + Unpin>, Option<u64>) = match &self.input {
            Input::Stdin => (Box::new(tokio::io::stdin()), None),
            Input::File(path) => {
                let file = tokio::fs::File::open(path)
                    .await
                    .map_err(|source| Error::Open {
                        input: self.input.clone(),
                        source,
                    })?;
                let len = file.metadata().await.ok().map(|m| m.len());
                (Box::new(file), len)
            }
        };
        let bar = self.progress_bar(len);
        let mut reader = BufReader::with_capacity(READ_BUFFER, reader);
        let read_error = |source| Error::Read {
            input: self.input.clone(),
            source,
        };

        // The first line decides the format in `auto` mode.
        let mut first = Vec::new();
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => return Ok(()),
            r = reader.read_until(b'\n', &mut first) => { r.map_err(read_error)?; }
        }
        let format = match self.format {
            InputFormat::Auto => detect(&first),
            forced => forced,
        };
        let result = match format {
            InputFormat::Json => {
                let mut all = first;
                tokio::select! {
                    biased;
                    _ = shutdown.cancelled() => return Ok(()),
                    r = reader.read_to_end(&mut all) => { r.map_err(read_error)?; }
                }
                bar.set_position(all.len() as u64);
                self.metrics.bytes.inc_by(all.len() as u64);
                // Item boundaries are found by serde_json, which needs UTF-8
                // throughout; repair the whole input once (NDJSON records are
                // repaired one by one, and marked, by normalization).
                let all = match String::from_utf8(all) {
                    Ok(text) => text.into_bytes(),
                    Err(e) => {
                        tracing::warn!(input = %self.input, "Input has bytes that are not UTF-8; they were replaced with U+FFFD.");
                        String::from_utf8_lossy(e.as_bytes())
                            .into_owned()
                            .into_bytes()
                    }
                };
                self.send_documents(&all, &tx, &shutdown).await
            }
            InputFormat::Ndjson | InputFormat::Auto => {
                self.send_lines(first, reader, &tx, &shutdown, &bar).await
            }
        };
        bar.finish_and_clear();
        result
    }

    fn progress_bar(&self, len: Option<u64>) -> ProgressBar {
        if !self.progress || !std::io::stderr().is_terminal() {
            return ProgressBar::with_draw_target(len, ProgressDrawTarget::hidden());
        }
        let bar = ProgressBar::with_draw_target(len, ProgressDrawTarget::stderr());
        let style = match len {
            Some(_) => "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
            None => "{spinner} {bytes} read, {bytes_per_sec}",
        };
        if let Ok(style) = ProgressStyle::with_template(style) {
            bar.set_style(style);
        }
        bar
    }

    async fn send_lines(
        &self,
        first: Vec<u8>,
        mut reader: BufReader<Box<dyn AsyncRead + Send + Unpin>>,
        tx: &mpsc::Sender<Chunk>,
        shutdown: &CancellationToken,
        bar: &ProgressBar,
    ) -> Result<(), Error> {
        let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
        let mut line_no: u64 = 0;
        let mut line = first;
        loop {
            if line.is_empty() {
                break; // end of input
            }
            line_no += 1;
            let read = line.len() as u64;
            bar.inc(read);
            self.metrics.bytes.inc_by(read);
            let text = trim_line(&line, line_no);
            if !text.is_empty() {
                self.metrics.records.inc();
                chunk.push(RawEvent {
                    bytes: text.to_vec(),
                    origin: Origin::Line(line_no),
                    action: WatchAction::Added,
                    api_hint: None,
                });
                if chunk.len() == CHUNK_RECORDS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                    if tx.send(full).await.is_err() {
                        return Ok(()); // the pipeline stopped downstream
                    }
                }
            }
            line.clear();
            // Nothing more buffered: the next read may wait (a live stdin),
            // so hand on what has been read rather than hold it back.
            if reader.buffer().is_empty() && !chunk.is_empty() {
                let partial = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                if tx.send(partial).await.is_err() {
                    return Ok(());
                }
            }
            tokio::select! {
                biased;
                _ = shutdown.cancelled() => break,
                r = reader.read_until(b'\n', &mut line) => {
                    r.map_err(|source| Error::Read { input: self.input.clone(), source })?;
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk).await;
        }
        Ok(())
    }

    async fn send_documents(
        &self,
        all: &[u8],
        tx: &mpsc::Sender<Chunk>,
        shutdown: &CancellationToken,
    ) -> Result<(), Error> {
        let mut lines = LineCounter::new(all);
        let mut chunk = Vec::with_capacity(CHUNK_RECORDS);
        let mut values = serde_json::Deserializer::from_slice(all).into_iter::<&RawValue>();
        loop {
            if shutdown.is_cancelled() {
                break;
            }
            let parsed_up_to = values.byte_offset();
            let value = match values.next() {
                None => break,
                Some(Ok(v)) => v,
                Some(Err(e)) => {
                    // The value is broken somewhere: keep the elements before
                    // the damage, which are intact, and report the rest.
                    for (origin, bytes) in salvage(all, parsed_up_to, &mut lines) {
                        self.metrics.records.inc();
                        chunk.push(RawEvent {
                            bytes: bytes.to_vec(),
                            origin,
                            action: WatchAction::Added,
                            api_hint: None,
                        });
                    }
                    if !chunk.is_empty() {
                        let _ = tx.send(chunk).await;
                    }
                    return Err(Error::Syntax {
                        input: self.input.clone(),
                        line: e.line(),
                        column: e.column(),
                        message: strip_position(&e.to_string()),
                    });
                }
            };
            for (origin, bytes) in split_value(value, all, &mut lines) {
                self.metrics.records.inc();
                chunk.push(RawEvent {
                    bytes: bytes.to_vec(),
                    origin,
                    action: WatchAction::Added,
                    api_hint: None,
                });
                if chunk.len() == CHUNK_RECORDS {
                    let full = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK_RECORDS));
                    if tx.send(full).await.is_err() {
                        return Ok(());
                    }
                }
            }
        }
        if !chunk.is_empty() {
            let _ = tx.send(chunk).await;
        }
        Ok(())
    }
}

/// `auto`: a first line that is a whole JSON value (and not a List) means
/// NDJSON; anything else (a pretty-printed document) means JSON documents.
fn detect(first: &[u8]) -> InputFormat {
    #[derive(Deserialize)]
    struct Probe {
        items: Option<serde::de::IgnoredAny>,
    }
    let text = trim_line(first, 1);
    if text.first() == Some(&b'[') {
        return InputFormat::Json;
    }
    match serde_json::from_slice::<Probe>(text) {
        Ok(Probe { items: Some(_) }) => InputFormat::Json,
        Ok(_) => InputFormat::Ndjson,
        // A first line that is not JSON by itself: either a pretty-printed
        // document, or a broken first record of an NDJSON file. Only a line
        // that opens a value and does not close it is the former.
        Err(e) if e.is_eof() => InputFormat::Json,
        Err(_) => InputFormat::Ndjson,
    }
}

/// The line without its end (`\n`, `\r\n`) or, on line 1, a UTF-8 byte order mark.
fn trim_line(line: &[u8], line_no: u64) -> &[u8] {
    let mut text = line;
    if line_no == 1 {
        text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    }
    let end = text
        .iter()
        .rposition(|b| !b.is_ascii_whitespace())
        .map_or(0, |i| i + 1);
    let start = text[..end]
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .unwrap_or(end);
    &text[start..end]
}

/// serde_json appends " at line L column C" to its messages; the caller reports those itself.
fn strip_position(message: &str) -> String {
    match message.rfind(" at line ") {
        Some(i) => message[..i].to_owned(),
        None => message.to_owned(),
    }
}

/// Splits one top-level JSON value into the Events it holds: a List's items,
/// an array's elements, or the value itself.
fn split_value<'a>(
    value: &'a RawValue,
    all: &[u8],
    lines: &mut LineCounter,
) -> Vec<(Origin, &'a [u8])> {
    #[derive(Deserialize)]
    struct List<'a> {
        #[serde(borrow)]
        items: Option<Vec<&'a RawValue>>,
    }
    let text = value.get();
    let elements: Option<Vec<&RawValue>> = if text.starts_with('[') {
        serde_json::from_str::<Vec<&RawValue>>(text).ok()
    } else {
        serde_json::from_str::<List<'_>>(text)
            .ok()
            .and_then(|l| l.items)
    };
    match elements {
        Some(items) => items
            .into_iter()
            .enumerate()
            .map(|(index, item)| {
                let line = lines.line_at(offset_in(all, item.get()));
                (Origin::Item { line, index }, item.get().as_bytes())
            })
            .collect(),
        None => {
            let line = lines.line_at(offset_in(all, text));
            vec![(Origin::Value { line }, text.as_bytes())]
        }
    }
}

/// The complete elements of a broken List or array that starts at `from`,
/// found by a streaming parse that keeps each element as it completes.
fn salvage<'a>(all: &'a [u8], from: usize, lines: &mut LineCounter) -> Vec<(Origin, &'a [u8])> {
    use serde::de::{DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};

    struct Elements<'a, 'o>(&'o mut Vec<&'a RawValue>);
    impl<'de, 'o> Visitor<'de> for Elements<'de, 'o> {
        type Value = ();
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a List or an array of Events")
        }
        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
            while let Some(element) = seq.next_element::<&'de RawValue>()? {
                self.0.push(element);
            }
            Ok(())
        }
        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
            while let Some(key) = map.next_key::<std::borrow::Cow<'de, str>>()? {
                if key == "items" {
                    map.next_value_seed(Elements(&mut *self.0))?;
                } else {
                    map.next_value::<IgnoredAny>()?;
                }
            }
            Ok(())
        }
    }
    impl<'de, 'o> DeserializeSeed<'de> for Elements<'de, 'o> {
        type Value = ();
        fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
            d.deserialize_any(self)
        }
    }

    let mut found = Vec::new();
    let Some(rest) = all.get(from..) else {
        return Vec::new();
    };
    let mut de = serde_json::Deserializer::from_slice(rest);
    // The parse fails by definition (the value is broken); what it kept is the point.
    let _ = Elements(&mut found).deserialize(&mut de);
    found
        .into_iter()
        .enumerate()
        .map(|(index, item)| {
            (
                Origin::Item {
                    line: lines.line_at(offset_in(all, item.get())),
                    index,
                },
                item.get().as_bytes(),
            )
        })
        .collect()
}

/// Byte offset of `part` inside `all` (it is a sub-slice, as serde_json borrows).
fn offset_in(all: &[u8], part: &str) -> usize {
    (part.as_ptr() as usize)
        .saturating_sub(all.as_ptr() as usize)
        .min(all.len())
}

/// Turns increasing byte offsets into 1-based line numbers in one pass.
struct LineCounter<'a> {
    all: &'a [u8],
    offset: usize,
    line: u64,
}

impl<'a> LineCounter<'a> {
    fn new(all: &'a [u8]) -> Self {
        Self {
            all,
            offset: 0,
            line: 1,
        }
    }

    fn line_at(&mut self, offset: usize) -> u64 {
        if offset >= self.offset {
            self.line += self.all[self.offset..offset]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64;
        } else {
            self.line = 1 + self.all[..offset].iter().filter(|&&b| b == b'\n').count() as u64;
        }
        self.offset = offset;
        self.line
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn detects_ndjson_from_a_complete_first_line() {
        assert_eq!(detect(b"{\"kind\":\"Event\"}\n"), InputFormat::Ndjson);
    }

    #[test]
    fn detects_a_pretty_document_from_an_open_first_line() {
        assert_eq!(detect(b"{\n"), InputFormat::Json);
        assert_eq!(detect(b"[\n"), InputFormat::Json);
    }

    #[test]
    fn detects_a_list_on_one_line() {
        assert_eq!(
            detect(b"{\"kind\":\"List\",\"items\":[]}\n"),
            InputFormat::Json
        );
    }

    #[test]
    fn a_broken_first_ndjson_line_stays_ndjson() {
        assert_eq!(detect(b"{\"kind\":\"Event\",,}\n"), InputFormat::Ndjson);
        assert_eq!(detect(b"not json\n"), InputFormat::Ndjson);
    }

    #[test]
    fn trims_line_ends_and_byte_order_mark() {
        assert_eq!(trim_line(b"\xEF\xBB\xBF{}\r\n", 1), b"{}");
        assert_eq!(trim_line(b"  {}  \n", 2), b"{}");
        assert_eq!(trim_line(b"\n", 3), b"");
    }

    #[test]
    fn list_items_report_the_line_they_start_on() {
        let doc = b"{\n \"kind\": \"List\",\n \"items\": [\n  {\"a\": 1},\n  {\"b\": 2}\n ]\n}\n";
        let value: &RawValue = serde_json::from_slice(doc).unwrap();
        let mut lines = LineCounter::new(doc);
        let split = split_value(value, doc, &mut lines);
        assert_eq!(split.len(), 2);
        assert_eq!(
            split[0],
            (Origin::Item { line: 4, index: 0 }, &b"{\"a\": 1}"[..])
        );
        assert_eq!(
            split[1],
            (Origin::Item { line: 5, index: 1 }, &b"{\"b\": 2}"[..])
        );
    }
}
