//! The dead-letter index: where refused documents go instead of being lost
//! or retried forever.
//!
//! A document the cluster refuses for good (a mapping conflict, an invalid
//! index name chosen by a filter, a document too large for any request) is
//! written to `--dead-letter-index` with the original document *as a string*
//! (so the conflicting field cannot conflict again), the error, and where it
//! was going. Its id is the original id, so a retried dead-letter write does
//! not duplicate it. A dead-letter write that fails is logged and counted,
//! never retried in a loop.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::response::ItemError;
use crate::document::{IndexPattern, Record};

/// One dead-letter document.
#[derive(Debug, Serialize)]
struct DeadLetter<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    /// The index the document was meant for.
    index: &'a str,
    /// Its id.
    id: &'a str,
    /// HTTP status the cluster gave.
    status: u16,
    /// Error type, e.g. `mapper_parsing_exception`.
    error_type: &'a str,
    /// The cluster's explanation.
    error_reason: &'a str,
    /// The original document, as a string.
    document: &'a str,
}

/// Builds the dead-letter record for a refused document.
pub fn record(
    pattern: &IndexPattern,
    refused: &Record,
    error: &ItemError,
    now: DateTime<Utc>,
) -> Record {
    let document = String::from_utf8_lossy(&refused.body);
    let letter = DeadLetter {
        timestamp: crate::document::format_timestamp(now),
        index: &refused.index,
        id: &refused.id,
        status: error.status,
        error_type: &error.kind,
        error_reason: &error.reason,
        document: &document,
    };
    // Serializing strings cannot fail.
    let body = serde_json::to_vec(&letter).unwrap_or_default();
    Record {
        id: refused.id.clone(),
        index: pattern.render(now),
        body: body.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_original_document_is_kept_as_a_string_with_the_error() {
        let refused = Record {
            id: "u:1".into(),
            index: "kwex-events-2026.11.20".into(),
            body: bytes::Bytes::from_static(br#"{"count":"abc"}"#),
        };
        let error = ItemError {
            status: 400,
            kind: "mapper_parsing_exception".into(),
            reason: "failed".into(),
        };
        let now = DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let pattern = IndexPattern::parse("kwex-dead-letter-%Y.%m").unwrap();
        let letter = record(&pattern, &refused, &error, now);
        assert_eq!(letter.index, "kwex-dead-letter-2026.11");
        assert_eq!(letter.id, "u:1");
        let v: serde_json::Value = serde_json::from_slice(&letter.body).unwrap();
        assert_eq!(v["document"], r#"{"count":"abc"}"#);
        assert_eq!(v["error_type"], "mapper_parsing_exception");
        assert_eq!(v["index"], "kwex-events-2026.11.20");
        assert_eq!(v["status"], 400);
    }
}
