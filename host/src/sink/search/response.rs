//! Reading a `_bulk` response item by item.
//!
//! A `_bulk` request that returns 200 may still have failed for some of its
//! items: the top-level `errors` flag says so, and each item carries its own
//! status. Peers that look only at the HTTP status lose those documents
//! silently. kwex reads every item and sorts it into one [`Outcome`].

use serde::Deserialize;

/// What happened to one document of a `_bulk` request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Stored (2xx).
    Delivered,
    /// The cluster already had this id (409 on `create`): delivered earlier,
    /// by a previous attempt, a re-list or another replica.
    Duplicate,
    /// Try again later: the cluster was overloaded (429) or failed (5xx).
    Retry(ItemError),
    /// The document itself was refused (other 4xx, e.g. a mapping conflict):
    /// retrying cannot help; it goes to the dead-letter index.
    Rejected(ItemError),
}

/// The error the cluster gave for one item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ItemError {
    /// HTTP status of the item.
    pub status: u16,
    /// e.g. `mapper_parsing_exception`.
    pub kind: String,
    /// The cluster's explanation.
    pub reason: String,
}

/// The response could not be matched with the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResponseError {
    /// Not the JSON of a `_bulk` response.
    #[error("the _bulk response is not valid JSON: {0}")]
    NotJson(String),
    /// A different number of items than documents sent.
    #[error("the _bulk response has {got} items for {sent} documents sent")]
    ItemCount {
        /// Documents sent.
        sent: usize,
        /// Items answered.
        got: usize,
    },
}

#[derive(Deserialize)]
struct Body {
    #[serde(default)]
    items: Vec<std::collections::HashMap<String, Item>>,
}

#[derive(Deserialize)]
struct Item {
    status: u16,
    #[serde(default)]
    error: Option<serde_json::Value>,
}

/// Sorts each item of a `_bulk` response; `sent` is how many documents the request had.
///
/// `action` is the bulk action used (`create` or `index`): a 409 is only a
/// duplicate for `create` (for `index` it cannot happen without versioning).
pub fn outcomes(body: &[u8], sent: usize, action: &str) -> Result<Vec<Outcome>, ResponseError> {
    let parsed: Body =
        serde_json::from_slice(body).map_err(|e| ResponseError::NotJson(e.to_string()))?;
    if parsed.items.len() != sent {
        return Err(ResponseError::ItemCount {
            sent,
            got: parsed.items.len(),
        });
    }
    Ok(parsed
        .items
        .into_iter()
        .map(|entry| {
            // Each item is `{"<action>": {...}}`, with exactly one key.
            let Some(item) = entry.into_values().next() else {
                return Outcome::Retry(ItemError {
                    status: 0,
                    kind: "empty_item".into(),
                    reason: String::new(),
                });
            };
            classify(item, action)
        })
        .collect())
}

fn classify(item: Item, action: &str) -> Outcome {
    let status = item.status;
    if (200..300).contains(&status) {
        return Outcome::Delivered;
    }
    let error = item_error(status, item.error);
    match status {
        409 if action == "create" => Outcome::Duplicate,
        429 => Outcome::Retry(error),
        // 501 (not implemented) will not change by retrying.
        s if s >= 500 && s != 501 => Outcome::Retry(error),
        _ => Outcome::Rejected(error),
    }
}

fn item_error(status: u16, error: Option<serde_json::Value>) -> ItemError {
    match error {
        Some(serde_json::Value::Object(map)) => ItemError {
            status,
            kind: map
                .get("type")
                .and_then(|v| v.as_str())
                .unwrap_or("unknown")
                .to_owned(),
            reason: describe_reason(&serde_json::Value::Object(map)),
        },
        Some(serde_json::Value::String(s)) => ItemError {
            status,
            kind: "error".into(),
            reason: s,
        },
        _ => ItemError {
            status,
            kind: "unknown".into(),
            reason: String::new(),
        },
    }
}

/// The reason, with the cause's reason when there is one (mapping errors put
/// the useful part there: "failed to parse field [count] of type [long]" is
/// followed by "For input string: \"abc\"").
fn describe_reason(error: &serde_json::Value) -> String {
    let reason = error
        .get("reason")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    match error
        .get("caused_by")
        .and_then(|c| c.get("reason"))
        .and_then(|v| v.as_str())
    {
        Some(cause) if !cause.is_empty() => format!("{reason}: {cause}"),
        _ => reason.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real OpenSearch `_bulk` response with a created item, a duplicate,
    /// a mapping error, a 429 and a 503.
    const MIXED: &str = r#"{"took":12,"errors":true,"items":[
        {"create":{"_index":"kwex-events-2026.11.20","_id":"a:1","_version":1,"result":"created","_shards":{"total":2,"successful":1,"failed":0},"_seq_no":0,"_primary_term":1,"status":201}},
        {"create":{"_index":"kwex-events-2026.11.20","_id":"a:2","status":409,"error":{"type":"version_conflict_engine_exception","reason":"[a:2]: version conflict, document already exists (current version [1])","index":"kwex-events-2026.11.20","shard":"0","index_uuid":"x"}}},
        {"create":{"_index":"kwex-events-2026.11.20","_id":"a:3","status":400,"error":{"type":"mapper_parsing_exception","reason":"failed to parse field [count] of type [long] in document with id 'a:3'","caused_by":{"type":"illegal_argument_exception","reason":"For input string: \"abc\""}}}},
        {"create":{"_index":"kwex-events-2026.11.20","_id":"a:4","status":429,"error":{"type":"es_rejected_execution_exception","reason":"rejected execution of coordinating operation"}}},
        {"create":{"_index":"kwex-events-2026.11.20","_id":"a:5","status":503,"error":{"type":"unavailable_shards_exception","reason":"primary shard is not active"}}}
    ]}"#;

    #[test]
    fn every_item_is_sorted_by_its_own_status() {
        let out = outcomes(MIXED.as_bytes(), 5, "create").unwrap();
        assert_eq!(out[0], Outcome::Delivered);
        assert_eq!(out[1], Outcome::Duplicate);
        assert!(
            matches!(&out[2], Outcome::Rejected(e) if e.status == 400 && e.kind == "mapper_parsing_exception")
        );
        assert!(matches!(&out[3], Outcome::Retry(e) if e.status == 429));
        assert!(matches!(&out[4], Outcome::Retry(e) if e.status == 503));
    }

    #[test]
    fn mapping_errors_keep_the_cause() {
        let out = outcomes(MIXED.as_bytes(), 5, "create").unwrap();
        let Outcome::Rejected(e) = &out[2] else {
            panic!("not rejected")
        };
        assert_eq!(
            e.reason,
            "failed to parse field [count] of type [long] in document with id 'a:3': For input string: \"abc\""
        );
    }

    #[test]
    fn a_conflict_on_index_is_not_a_duplicate() {
        let body = r#"{"errors":true,"items":[{"index":{"_id":"a","status":409,"error":{"type":"version_conflict_engine_exception","reason":"x"}}}]}"#;
        assert!(matches!(
            &outcomes(body.as_bytes(), 1, "index").unwrap()[0],
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn not_implemented_is_not_retried() {
        let body =
            r#"{"errors":true,"items":[{"create":{"_id":"a","status":501,"error":"nope"}}]}"#;
        assert!(matches!(
            &outcomes(body.as_bytes(), 1, "create").unwrap()[0],
            Outcome::Rejected(_)
        ));
    }

    #[test]
    fn a_response_that_does_not_match_the_request_is_an_error() {
        assert_eq!(
            outcomes(MIXED.as_bytes(), 4, "create"),
            Err(ResponseError::ItemCount { sent: 4, got: 5 })
        );
        assert!(matches!(
            outcomes(b"<html>", 1, "create"),
            Err(ResponseError::NotJson(_))
        ));
    }
}
