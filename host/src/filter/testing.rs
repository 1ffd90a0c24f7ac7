//! What `kwex filter test` and `kwex filter bench` are made of, as a
//! library: reading Events into Documents reproducibly, one NDJSON line per
//! answer, golden-file comparison, and the standard documents every filter
//! must survive (`--conformance`).
//!
//! The format is specified in
//! `docs/decisions/2026-11-25-filter-test-format.md`.

use std::path::Path;

use chrono::{DateTime, TimeZone, Utc};
use serde_json::{Map, Value, json};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::document::{IndexPattern, Normalizer, Record};
use crate::filter::error::{ErrorKind, Failure, FilterError};
use crate::filter::instance::Verdict;
use crate::source::replay::{self, Input, InputFormat, ReplaySource};

/// `kwex.observedAt` in every Document `kwex filter test` makes, so that
/// outputs are the same on every run.
pub fn fixed_observed_at() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2000, 1, 1, 0, 0, 0)
        .single()
        .unwrap_or_else(Utc::now)
}

/// The normalizer of `kwex filter test`: the exporter's defaults.
pub fn default_normalizer() -> Result<Normalizer, ReadError> {
    Ok(Normalizer {
        cluster: None,
        index: IndexPattern::parse("kwex-events-%Y.%m.%d")
            .map_err(|e| ReadError::Setup(e.to_string()))?,
        id_mode: crate::document::IdMode::Occurrence,
        max_message_bytes: 32 * 1024,
        dedot: false,
    })
}

/// Why Events could not be read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ReadError {
    /// The file could not be read, or is not JSON.
    #[error(transparent)]
    Input(#[from] replay::Error),
    /// Reading could not be set up (a bug, reported rather than panicked on).
    #[error("cannot read the Events: {0}")]
    Setup(String),
}

/// What reading an Events file gave.
#[derive(Debug, Default)]
pub struct Documents {
    /// The Documents, in input order.
    pub records: Vec<Record>,
    /// Records the normalizer refused: where, and why.
    pub refused: Vec<String>,
}

/// Reads Events in any form `kwex replay` reads and normalizes them as the
/// exporter does, with `kwex.observedAt` fixed.
pub async fn read_documents(path: &Path) -> Result<Documents, ReadError> {
    let registry = prometheus::Registry::new();
    let metrics =
        replay::Metrics::register(&registry).map_err(|e| ReadError::Setup(e.to_string()))?;
    let source = ReplaySource::new(Input::from_arg(path), InputFormat::Auto, metrics, false);
    let (tx, mut rx) = mpsc::channel(16);
    let reading = tokio::spawn(source.run(tx, CancellationToken::new()));
    let normalizer = default_normalizer()?;
    let at = fixed_observed_at();
    let mut out = Documents::default();
    while let Some(chunk) = rx.recv().await {
        for raw in chunk {
            match normalizer.normalize_hinted(&raw.bytes, raw.api_hint, raw.action, at) {
                Ok(n) => out.records.push(n.record),
                Err(e) => out.refused.push(format!("{}: {e}", raw.origin)),
            }
        }
    }
    reading
        .await
        .map_err(|e| ReadError::Setup(e.to_string()))??;
    Ok(out)
}

/// The output line of one answer.
pub fn answer_line(input: usize, id: &str, answer: &Result<Verdict, FilterError>) -> Value {
    let mut line = Map::new();
    line.insert("input".into(), json!(input));
    line.insert("id".into(), json!(id));
    let document = |body: &[u8]| -> Value {
        serde_json::from_slice(body).unwrap_or_else(|_| json!(String::from_utf8_lossy(body)))
    };
    match answer {
        Ok(Verdict::Keep) => {
            line.insert("verdict".into(), json!("keep"));
        }
        Ok(Verdict::Drop) => {
            line.insert("verdict".into(), json!("drop"));
        }
        Ok(Verdict::Replace(body)) => {
            line.insert("verdict".into(), json!("replace"));
            line.insert("document".into(), document(body));
        }
        Ok(Verdict::Route { index, body }) => {
            line.insert("verdict".into(), json!("route"));
            line.insert("index".into(), json!(index));
            if let Some(body) = body {
                line.insert("document".into(), document(body));
            }
        }
        Err(e) if e.kind() == ErrorKind::GuestError => {
            line.insert("verdict".into(), json!("error"));
            let message = match &e.failure {
                Failure::Reported(message) => message.clone(),
                other => other.to_string(),
            };
            line.insert("error".into(), json!(message));
        }
        Err(e) => {
            line.insert("verdict".into(), json!("failed"));
            line.insert("kind".into(), json!(e.kind().as_str()));
            line.insert("error".into(), json!(e.to_string()));
        }
    }
    Value::Object(line)
}

/// A line of output that does not match its golden line.
#[derive(Debug, Clone, PartialEq)]
pub struct Mismatch {
    /// 1-based line number.
    pub line: usize,
    /// The golden line (`None`: the output has more lines).
    pub expected: Option<Value>,
    /// The output line (`None`: the output has fewer lines).
    pub actual: Option<Value>,
}

/// Compares output lines with golden lines: each output line must carry
/// every field of its golden line with an equal value (objects compare
/// regardless of key order); fields the golden line leaves out are not
/// compared.
pub fn compare_golden(actual: &[Value], golden: &[Value]) -> Vec<Mismatch> {
    let mut mismatches = Vec::new();
    for i in 0..actual.len().max(golden.len()) {
        let (a, g) = (actual.get(i), golden.get(i));
        let matches = match (a, g) {
            (Some(Value::Object(a)), Some(Value::Object(g))) => {
                g.iter().all(|(k, v)| a.get(k) == Some(v))
            }
            (Some(a), Some(g)) => a == g,
            _ => false,
        };
        if !matches {
            mismatches.push(Mismatch {
                line: i + 1,
                expected: g.cloned(),
                actual: a.cloned(),
            });
        }
    }
    mismatches
}

/// Parses a golden file: NDJSON, blank lines ignored.
pub fn parse_golden(text: &str) -> Result<Vec<Value>, String> {
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| serde_json::from_str(l).map_err(|e| format!("line {}: {e}", i + 1)))
        .collect()
}

/// Parses `--config`: JSON text, or `@path` to a JSON or YAML file.
pub fn parse_config(arg: &str) -> Result<Value, String> {
    match arg.strip_prefix('@') {
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read config file {path}: {e}"))?;
            serde_json::from_str(&text).or_else(|json_error| {
                serde_yaml::from_str(&text).map_err(|yaml_error| {
                    format!(
                        "config file {path} is neither JSON ({json_error}) nor YAML ({yaml_error})"
                    )
                })
            })
        }
        None => serde_json::from_str(arg).map_err(|e| format!("--config is not JSON: {e}")),
    }
}

/// The documents every filter must survive without a trap, a timeout, a
/// memory error or an invalid answer (`--conformance`). Each is a valid
/// Document as kwex could produce it, at an edge.
pub fn standard_documents() -> Vec<(&'static str, Record)> {
    let base = |extra: Value| -> Value {
        let mut doc = json!({
            "@timestamp": "2026-11-25T14:03:27Z",
            "type": "Warning",
            "reason": "BackOff",
            "message": "Back-off restarting failed container",
            "count": 1,
            "firstTimestamp": "2026-11-25T14:03:27Z",
            "lastTimestamp": "2026-11-25T14:03:27Z",
            "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-0"},
            "metadata": {"namespace": "default", "name": "web-0.1", "uid": "u", "resourceVersion": "1"},
            "kwex": {"watchAction": "added", "observedAt": "2000-01-01T00:00:00Z", "apiVersion": "v1"}
        });
        if let (Value::Object(d), Value::Object(e)) = (&mut doc, extra) {
            for (k, v) in e {
                d.insert(k, v);
            }
        }
        doc
    };
    let huge: String = "0123456789abcdef".repeat(2048); // 32 KiB, the message cap
    let deep_labels: Map<String, Value> = (0..200)
        .map(|i| {
            (
                format!("example.com/label-{i}"),
                json!(format!("value-{i}")),
            )
        })
        .collect();
    let cases: Vec<(&'static str, Value)> = vec![
        ("typical Warning", base(json!({}))),
        (
            "typical Normal",
            base(json!({"type": "Normal", "reason": "Pulled"})),
        ),
        (
            "huge message (32 KiB)",
            base(
                json!({"message": huge, "kwex": {"watchAction": "added", "observedAt": "2000-01-01T00:00:00Z", "apiVersion": "v1", "messageTruncatedFrom": 1_048_576}}),
            ),
        ),
        (
            "unicode everywhere",
            base(json!({
                "reason": "Ünïcödé", "message": "日本語のメッセージ 🚀 \u{0000} \"quoted\" \\ back\\slash \n newline",
                "involvedObject": {"kind": "Pod", "namespace": "名前空間", "name": "pod-ñ"},
                "metadata": {"namespace": "名前空間", "name": "e", "uid": "u", "resourceVersion": "1",
                    "labels": {"app.kubernetes.io/name": "ümlaut"}, "annotations": {"note": "emoji 🎉"}}
            })),
        ),
        (
            "minimal: only what is always there",
            json!({
                "@timestamp": "2026-11-25T14:03:27Z", "count": 1,
                "firstTimestamp": "2026-11-25T14:03:27Z", "lastTimestamp": "2026-11-25T14:03:27Z",
                "involvedObject": {}, "metadata": {"uid": "u", "resourceVersion": "1"},
                "kwex": {"watchAction": "added", "observedAt": "2000-01-01T00:00:00Z", "apiVersion": "v1"}
            }),
        ),
        (
            "no type, reason or message",
            base(json!({"type": null, "reason": null, "message": null})),
        ),
        (
            "empty strings and objects",
            base(
                json!({"type": "", "reason": "", "message": "", "involvedObject": {}, "source": {}}),
            ),
        ),
        (
            "200 labels with dotted keys",
            base(json!({
                "metadata": {"namespace": "default", "name": "e", "uid": "u", "resourceVersion": "1", "labels": deep_labels}
            })),
        ),
        (
            "huge count and old timestamps",
            base(json!({"count": i64::MAX, "firstTimestamp": "1970-01-01T00:00:00Z"})),
        ),
        (
            "unknown extra fields",
            base(json!({"extra": {"nested": [1, 2, {"deep": true}]}, "x-custom": 1.5})),
        ),
    ];
    cases
        .into_iter()
        .map(|(name, mut doc)| {
            if let Value::Object(d) = &mut doc {
                d.retain(|_, v| !v.is_null());
            }
            let record = Record {
                id: format!("conformance:{name}"),
                index: "kwex-events-2026.11.25".into(),
                body: serde_json::to_vec(&doc).unwrap_or_default().into(),
            };
            (name, record)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_index_pattern_is_valid() {
        assert!(IndexPattern::parse("kwex-events-%Y.%m.%d").is_ok());
    }

    #[test]
    fn golden_lines_compare_only_the_fields_they_give() {
        let actual = vec![
            json!({"input": 1, "id": "a", "verdict": "error", "error": "boom"}),
            json!({"input": 2, "id": "b", "verdict": "replace", "document": {"x": 1, "y": 2}}),
        ];
        let golden = vec![
            json!({"input": 1, "verdict": "error"}),
            json!({"input": 2, "verdict": "replace", "document": {"y": 2, "x": 1}}),
        ];
        assert!(compare_golden(&actual, &golden).is_empty());
        let wrong = vec![json!({"input": 1, "verdict": "keep"})];
        let m = compare_golden(&actual, &wrong);
        assert_eq!(m.len(), 2);
        assert_eq!(m[0].line, 1);
        assert_eq!(m[1].expected, None);
    }

    #[test]
    fn config_is_json_text_or_a_json_or_yaml_file() {
        assert_eq!(parse_config(r#"{"a":1}"#), Ok(json!({"a": 1})));
        assert!(
            parse_config("{nope")
                .unwrap_err()
                .contains("--config is not JSON")
        );
        let dir = std::env::temp_dir().join(format!("kwex-testing-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let yaml = dir.join("c.yaml");
        std::fs::write(&yaml, "routes:\n  kube-system: kwex-system\n").unwrap();
        assert_eq!(
            parse_config(&format!("@{}", yaml.display())),
            Ok(json!({"routes": {"kube-system": "kwex-system"}}))
        );
    }

    #[test]
    fn standard_documents_are_json_objects() {
        let docs = standard_documents();
        assert!(docs.len() >= 10);
        for (name, r) in docs {
            let v: Value = serde_json::from_slice(&r.body).unwrap();
            assert!(v.is_object(), "{name}");
        }
    }
}
