//! Helpers for error messages shared by every module.

/// An error and its causes on one line, each cause once.
///
/// Library errors of reqwest, hyper and kube say little at the top level
/// ("error sending request"); the useful part ("connection refused",
/// "UnknownIssuer") is a few causes down. Log lines and messages for users
/// show the whole chain.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut cur = e.source();
    while let Some(cause) = cur {
        let text = cause.to_string();
        if !out.contains(&text) {
            out.push_str(": ");
            out.push_str(&text);
        }
        cur = cause.source();
    }
    out
}

#[cfg(test)]
mod tests {
    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] std::io::Error);

    #[test]
    fn causes_are_joined_once() {
        let e = Outer(std::io::Error::other("connection refused"));
        assert_eq!(super::chain(&e), "outer: connection refused");
    }
}
