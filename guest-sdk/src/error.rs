//! [`Error`]: what `init` and `filter` return when they fail.

use std::fmt;

/// A filter's failure: a message for kwex's log, metrics and dead-letter
/// index.
///
/// Any [`Display`](fmt::Display) value converts into it, so `?` works on
/// `serde_json`, `regex` or your own errors, and `Err("bad input".into())` or
/// `Err(format!("…").into())` on text. That blanket conversion is why `Error`
/// itself does not implement `Display` (the same trick `anyhow` plays with
/// `std::error::Error`): read the text with [`Error::message`].
///
/// From `init`, an error refuses the filter (kwex does not start, or a
/// reload keeps the old chain). From `filter`, it is handled by the filter's
/// failure policy (`pass`, `drop` or `dead-letter`, the default) and the
/// instance is kept. kwex cuts the message at 1 KiB.
pub struct Error {
    message: String,
}

impl Error {
    /// An error with this message; for when `.into()` cannot infer the type.
    pub fn msg(message: impl fmt::Display) -> Self {
        Self {
            message: message.to_string(),
        }
    }

    /// The message, as kwex will log it.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Prefixes the message with `context: `, the way the SDK marks config
    /// errors (`config: …`) and document errors.
    #[must_use]
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            message: format!("{context}: {}", self.message),
        }
    }
}

impl<E: fmt::Display> From<E> for Error {
    fn from(error: E) -> Self {
        Self::msg(error)
    }
}

/// Shows the message in quotes, so `assert!`/`unwrap_err` in tests print it.
impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Error({:?})", self.message)
    }
}

impl PartialEq for Error {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Error {}

/// `Result` with [`Error`], the return type of [`Filter`](crate::Filter)'s
/// methods.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_display_value_converts_with_question_mark() {
        fn parse(text: &str) -> Result<i64> {
            Ok(text.parse::<i64>()?)
        }
        let err = parse("three").unwrap_err();
        assert_eq!(err.message(), "invalid digit found in string");
    }

    #[test]
    fn text_converts_with_into() {
        let from_str: Error = "bad input".into();
        let from_string: Error = String::from("bad input").into();
        assert_eq!(from_str, from_string);
        assert_eq!(from_str.context("config").message(), "config: bad input");
    }
}
