//! The `_bulk` body: an action line, then the document, per record.
//!
//! Documents are already JSON bytes; they are copied in, never re-serialized.
//! Only the action line is written per record, with `_index` and `_id`
//! escaped as JSON strings (a filter may route to any index name).

use std::io::Write;

use crate::document::Record;

/// Appends one record to a `_bulk` body.
///
/// `action` is `create` (occurrence ids: a repeat is answered with 409 and
/// counts as delivered) or `index` (latest ids: a repeat overwrites).
pub fn bulk_item(out: &mut Vec<u8>, action: &str, record: &Record) {
    out.extend_from_slice(b"{\"");
    out.extend_from_slice(action.as_bytes());
    out.extend_from_slice(b"\":{\"_index\":");
    json_string(out, &record.index);
    out.extend_from_slice(b",\"_id\":");
    json_string(out, &record.id);
    out.extend_from_slice(b"}}\n");
    out.extend_from_slice(&record.body);
    out.push(b'\n');
}

/// Appends `s` as a JSON string literal.
fn json_string(out: &mut Vec<u8>, s: &str) {
    let plain = s.bytes().all(|b| b >= 0x20 && b != b'"' && b != b'\\');
    if plain {
        out.push(b'"');
        out.extend_from_slice(s.as_bytes());
        out.push(b'"');
    } else {
        // Writing into a Vec cannot fail.
        let _ = serde_json::to_writer(&mut *out, s);
    }
}

/// Appends one record as a line of NDJSON (the document alone).
pub fn ndjson_line(out: &mut impl Write, record: &Record) -> std::io::Result<()> {
    out.write_all(&record.body)?;
    out.write_all(b"\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(index: &str, id: &str) -> Record {
        Record {
            id: id.into(),
            index: index.into(),
            body: bytes::Bytes::from_static(b"{\"a\":1}"),
        }
    }

    #[test]
    fn bulk_item_is_an_action_line_and_the_document() {
        let mut out = Vec::new();
        bulk_item(&mut out, "create", &record("kwex-events-2026.11.20", "u:1"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"create\":{\"_index\":\"kwex-events-2026.11.20\",\"_id\":\"u:1\"}}\n{\"a\":1}\n"
        );
    }

    #[test]
    fn names_with_quotes_are_escaped() {
        let mut out = Vec::new();
        bulk_item(&mut out, "index", &record("we\"ird", "a\\b"));
        let first_line = out.split(|&b| b == b'\n').next().unwrap();
        let parsed: serde_json::Value = serde_json::from_slice(first_line).unwrap();
        assert_eq!(parsed["index"]["_index"], "we\"ird");
        assert_eq!(parsed["index"]["_id"], "a\\b");
    }
}
