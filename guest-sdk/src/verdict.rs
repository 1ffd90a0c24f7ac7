//! [`Verdict`]: what a filter answers for one document.

use serde::Serialize;

use crate::Error;

/// What to do with the document.
///
/// An error is not a verdict here: [`Filter::filter`](crate::Filter::filter)
/// returns `Err` for that, and the failure policy applies.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it on unchanged. The cheapest answer: nothing is copied back.
    Keep,
    /// Do not export it (counted in kwex's metrics).
    Drop,
    /// Pass this JSON object on instead. kwex refuses anything but exactly
    /// one JSON object (`invalid_output`, the instance is replaced); build it
    /// with [`Verdict::replace`] to be sure. The `_id` cannot be changed.
    Replace(String),
    /// Write the document to another index.
    Route {
        /// The index, data stream or alias; must be a valid index name
        /// (see [`check_index_name`]).
        index: String,
        /// A new body (one JSON object), or `None` for the document unchanged.
        document: Option<String>,
    },
}

impl Verdict {
    /// Replace the document with `document` serialized: typically the
    /// [`Document::to_map`](crate::Document::to_map) you edited, or a struct
    /// of your own. Fails if it does not serialize to a JSON object.
    pub fn replace<T: Serialize + ?Sized>(document: &T) -> Result<Self, Error> {
        Ok(Self::Replace(object_json(document)?))
    }

    /// Route the document, unchanged, to `index`.
    pub fn route(index: impl Into<String>) -> Self {
        Self::Route {
            index: index.into(),
            document: None,
        }
    }

    /// Route `document` (serialized, as for [`Verdict::replace`]) to `index`.
    pub fn route_with<T: Serialize + ?Sized>(
        index: impl Into<String>,
        document: &T,
    ) -> Result<Self, Error> {
        Ok(Self::Route {
            index: index.into(),
            document: Some(object_json(document)?),
        })
    }

    /// The new document this verdict carries, if any (`Replace`, or `Route`
    /// with a body).
    pub fn new_document(&self) -> Option<&str> {
        match self {
            Self::Replace(json) => Some(json),
            Self::Route { document, .. } => document.as_deref(),
            Self::Keep | Self::Drop => None,
        }
    }
}

/// Serializes `value`, which must come out as a JSON object.
fn object_json<T: Serialize + ?Sized>(value: &T) -> Result<String, Error> {
    let json = serde_json::to_string(value)?;
    if json.starts_with('{') {
        Ok(json)
    } else {
        Err(Error::msg(
            "a new document must serialize to a JSON object, not an array, string or number",
        ))
    }
}

/// Checks an index name the way kwex checks a route (guest-sdk/ABI.md
/// section 5, the rules of OpenSearch and Elasticsearch), so a filter can
/// refuse a bad name in its config at `init` instead of failing every
/// document later.
///
/// A name is 1–255 bytes, has no upper-case letter, does not start with
/// `.`, `-`, `_` or `+` (names starting with `.` are hidden or system
/// indices), and has no space, control character or any of
/// `\ / * ? " < > | , # :`.
pub fn check_index_name(name: &str) -> Result<(), Error> {
    if name.is_empty() || name.len() > 255 {
        return Err(Error::msg(format!(
            "index name {name:?} must be 1 to 255 bytes long"
        )));
    }
    if name.starts_with(['.', '-', '_', '+']) {
        return Err(Error::msg(format!(
            "index name {name:?} must not start with '.', '-', '_' or '+'"
        )));
    }
    if let Some(c) = name.chars().find(|c| {
        c.is_uppercase()
            || c.is_whitespace()
            || c.is_control()
            || matches!(
                c,
                '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
            )
    }) {
        return Err(Error::msg(format!(
            "index name {name:?} must not contain {c:?} (no upper case, spaces or \\ / * ? \" < > | , # :)"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn replace_serializes_an_object() {
        let verdict = Verdict::replace(&json!({"a": 1})).unwrap();
        assert_eq!(verdict, Verdict::Replace(r#"{"a":1}"#.into()));
        assert_eq!(verdict.new_document(), Some(r#"{"a":1}"#));
    }

    #[test]
    fn replace_refuses_what_is_not_an_object() {
        assert!(Verdict::replace(&json!([1])).is_err());
        assert!(Verdict::route_with("x", "text").is_err());
    }

    #[test]
    fn index_names_follow_the_search_cluster_rules() {
        for good in ["kwex-events", "audit", "kwex-2026.11.07", "ünïcode"] {
            assert!(check_index_name(good).is_ok(), "{good}");
        }
        let long = "a".repeat(256);
        for bad in [
            "", ".hidden", "-x", "_x", "+x", "Upper", "a b", "a:b", "a/b", "a*", "a\n", &long,
        ] {
            assert!(check_index_name(bad).is_err(), "{bad:?}");
        }
    }
}
