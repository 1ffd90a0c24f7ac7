//! Target index names from a pattern such as `kwex-events-%Y.%m.%d`.
//!
//! The date fields are taken from the Event's first-seen time, not from the
//! time of each update, so all observations of one Event land in one index
//! (and a `latest`-mode overwrite finds the document it replaces).
//!
//! Only the fields that make sense in an index name are accepted; the pattern
//! is checked once at start, so a bad pattern is a config error, never a
//! per-document failure.

use std::fmt::Write as _;

use chrono::{DateTime, Datelike, Timelike, Utc};

/// A parsed index pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPattern {
    parts: Vec<Part>,
    /// True when the pattern has no date field: the name is computed once.
    constant: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(String),
    Year,
    YearShort,
    Month,
    Day,
    Hour,
    DayOfYear,
    IsoYear,
    IsoWeek,
}

/// Why an index pattern was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IndexPatternError {
    /// A `%` followed by a letter this pattern language does not know.
    #[error("unknown field `%{0}` (known: %Y %y %m %d %H %j %G %V, and %% for a literal %)")]
    UnknownField(char),
    /// A `%` at the very end.
    #[error("the pattern ends with a lone `%` (write %% for a literal %)")]
    TrailingPercent,
    /// Characters the search cluster refuses in index names.
    #[error(
        "index names may not contain {0:?} (nor upper-case letters, spaces, or any of \\ / * ? \" < > | , # :)"
    )]
    ForbiddenCharacter(char),
    /// Names must not start with `-`, `_` or `+`.
    #[error("index names may not start with `-`, `_` or `+`")]
    BadStart,
    /// The empty pattern.
    #[error("the pattern is empty")]
    Empty,
}

impl IndexPattern {
    /// Parses and checks a pattern.
    pub fn parse(pattern: &str) -> Result<Self, IndexPatternError> {
        if pattern.is_empty() {
            return Err(IndexPatternError::Empty);
        }
        let mut parts = Vec::new();
        let mut literal = String::new();
        let mut chars = pattern.chars();
        while let Some(c) = chars.next() {
            if c != '%' {
                if c.is_uppercase()
                    || c.is_whitespace()
                    || matches!(
                        c,
                        '\\' | '/' | '*' | '?' | '"' | '<' | '>' | '|' | ',' | '#' | ':'
                    )
                {
                    return Err(IndexPatternError::ForbiddenCharacter(c));
                }
                literal.push(c);
                continue;
            }
            let field = match chars.next() {
                None => return Err(IndexPatternError::TrailingPercent),
                Some('%') => {
                    literal.push('%');
                    continue;
                }
                Some('Y') => Part::Year,
                Some('y') => Part::YearShort,
                Some('m') => Part::Month,
                Some('d') => Part::Day,
                Some('H') => Part::Hour,
                Some('j') => Part::DayOfYear,
                Some('G') => Part::IsoYear,
                Some('V') => Part::IsoWeek,
                Some(other) => return Err(IndexPatternError::UnknownField(other)),
            };
            if !literal.is_empty() {
                parts.push(Part::Literal(std::mem::take(&mut literal)));
            }
            parts.push(field);
        }
        if !literal.is_empty() {
            parts.push(Part::Literal(literal));
        }
        if let Some(Part::Literal(first)) = parts.first()
            && first.starts_with(['-', '_', '+'])
        {
            return Err(IndexPatternError::BadStart);
        }
        let constant = match parts.as_slice() {
            [Part::Literal(only)] => Some(only.clone()),
            _ => None,
        };
        Ok(Self { parts, constant })
    }

    /// The literal text before the first date field (`kwex-events-` for the
    /// default): what every index of the pattern starts with.
    pub fn literal_prefix(&self) -> &str {
        match self.parts.first() {
            Some(Part::Literal(s)) => s,
            _ => "",
        }
    }

    /// The index name for a document first seen at `time`.
    pub fn render(&self, time: DateTime<Utc>) -> String {
        if let Some(name) = &self.constant {
            return name.clone();
        }
        let mut out = String::with_capacity(32);
        for part in &self.parts {
            // Writing to a String cannot fail.
            let _ = match part {
                Part::Literal(s) => {
                    out.push_str(s);
                    Ok(())
                }
                Part::Year => write!(out, "{:04}", time.year()),
                Part::YearShort => write!(out, "{:02}", time.year().rem_euclid(100)),
                Part::Month => write!(out, "{:02}", time.month()),
                Part::Day => write!(out, "{:02}", time.day()),
                Part::Hour => write!(out, "{:02}", time.hour()),
                Part::DayOfYear => write!(out, "{:03}", time.ordinal()),
                Part::IsoYear => write!(out, "{:04}", time.iso_week().year()),
                Part::IsoWeek => write!(out, "{:02}", time.iso_week().week()),
            };
        }
        out
    }
}

impl std::str::FromStr for IndexPattern {
    type Err = IndexPatternError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    #[test]
    fn default_pattern_renders_the_day() {
        let p = IndexPattern::parse("kwex-events-%Y.%m.%d").unwrap();
        assert_eq!(
            p.render(at("2026-03-05T23:59:59Z")),
            "kwex-events-2026.03.05"
        );
    }

    #[test]
    fn every_field_renders() {
        let p = IndexPattern::parse("e-%Y-%y-%m-%d-%H-%j-%G-%V").unwrap();
        // 2027-01-01 is in ISO week 53 of 2026.
        assert_eq!(
            p.render(at("2027-01-01T07:00:00Z")),
            "e-2027-27-01-01-07-001-2026-53"
        );
    }

    #[test]
    fn constant_pattern_needs_no_time() {
        let p = IndexPattern::parse("events").unwrap();
        assert_eq!(p.render(at("2026-01-01T00:00:00Z")), "events");
    }

    #[test]
    fn unknown_fields_are_refused_by_name() {
        assert_eq!(
            IndexPattern::parse("e-%M"),
            Err(IndexPatternError::UnknownField('M'))
        );
        assert_eq!(
            IndexPattern::parse("e-%"),
            Err(IndexPatternError::TrailingPercent)
        );
    }

    #[test]
    fn names_the_cluster_would_refuse_are_refused() {
        assert_eq!(
            IndexPattern::parse("Events"),
            Err(IndexPatternError::ForbiddenCharacter('E'))
        );
        assert_eq!(
            IndexPattern::parse("a b"),
            Err(IndexPatternError::ForbiddenCharacter(' '))
        );
        assert_eq!(
            IndexPattern::parse("a/b"),
            Err(IndexPatternError::ForbiddenCharacter('/'))
        );
        assert_eq!(IndexPattern::parse("_x"), Err(IndexPatternError::BadStart));
        assert_eq!(IndexPattern::parse(""), Err(IndexPatternError::Empty));
    }
}
