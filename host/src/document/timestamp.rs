//! Kubernetes timestamps in and out.
//!
//! Kubernetes writes `Time` as RFC 3339 with second precision
//! (`2026-11-20T10:15:30Z`) and `MicroTime` with microseconds. Documents carry
//! every timestamp in UTC, in RFC 3339, with as many fractional digits as the
//! input had, so that the search cluster's `date` mapping parses all of them.

use chrono::{DateTime, SecondsFormat, Utc};

/// Parses an RFC 3339 timestamp, as Kubernetes writes `Time` and `MicroTime`.
pub fn parse(text: &str) -> Result<DateTime<Utc>, chrono::ParseError> {
    DateTime::parse_from_rfc3339(text).map(|t| t.with_timezone(&Utc))
}

/// Formats a timestamp for a Document: UTC, `Z`, fractional seconds only when non-zero.
pub fn format(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::AutoSi, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn second_precision_round_trips() {
        let t = parse("2026-11-20T10:15:30Z").unwrap();
        assert_eq!(format(t), "2026-11-20T10:15:30Z");
    }

    #[test]
    fn micro_time_keeps_microseconds() {
        let t = parse("2026-11-20T10:15:30.123456Z").unwrap();
        assert_eq!(format(t), "2026-11-20T10:15:30.123456Z");
    }

    #[test]
    fn offsets_are_converted_to_utc() {
        let t = parse("2026-11-20T12:15:30+02:00").unwrap();
        assert_eq!(format(t), "2026-11-20T10:15:30Z");
    }

    #[test]
    fn garbage_is_an_error() {
        assert!(parse("yesterday").is_err());
        assert!(parse("2026-11-20").is_err());
    }
}
