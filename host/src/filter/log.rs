//! Rate limits for what filters put in the log.
//!
//! A filter runs once per document: a guest that prints on every call, or a
//! filter that fails on every document, would otherwise write a log line per
//! Event and drown everything else. Each filter gets its own budgets (one for
//! what the guest prints, one for failures), shared by all its instances, so
//! one noisy filter cannot silence another. Lines over budget are counted
//! and the count is attached to the next line that gets through.

use std::sync::{Arc, Mutex};
use std::time::Instant;

/// A token bucket: `burst` lines at once, then `per_second` on average.
#[derive(Debug)]
pub(crate) struct LogLimit {
    state: Mutex<Bucket>,
    burst: f64,
    per_second: f64,
}

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
    suppressed: u64,
}

impl LogLimit {
    /// A budget of `burst` lines at once, refilled at `per_second`.
    pub(crate) fn new(burst: u32, per_second: u32) -> Self {
        Self {
            state: Mutex::new(Bucket {
                tokens: f64::from(burst),
                last: Instant::now(),
                suppressed: 0,
            }),
            burst: f64::from(burst),
            per_second: f64::from(per_second),
        }
    }

    /// Whether a line may be logged now. `Some(n)`: yes, and `n` lines were
    /// suppressed since the last one that was logged; `None`: no (counted).
    pub(crate) fn allow(&self) -> Option<u64> {
        // A poisoned lock only means another thread panicked mid-update of
        // two numbers; the numbers are still usable.
        let mut b = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let elapsed = now.duration_since(b.last).as_secs_f64();
        b.last = now;
        b.tokens = (b.tokens + elapsed * self.per_second).min(self.burst);
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Some(std::mem::take(&mut b.suppressed))
        } else {
            b.suppressed += 1;
            None
        }
    }
}

/// Longest line of guest output logged; longer lines are split.
pub(crate) const MAX_LINE: usize = 4096;

/// Which of a guest's output streams.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// WASI preview 1 file descriptor 1 is stdout; anything else, stderr.
    pub(crate) fn from_fd(fd: i32) -> Stream {
        if fd == 1 {
            Stream::Stdout
        } else {
            Stream::Stderr
        }
    }
}

/// What a guest writes to stdout and stderr, cut into lines and logged with
/// the filter's name, within the filter's [`LogLimit`].
///
/// Shared by both ABIs: the preview 1 stubs feed it from `fd_write`, the
/// component's `wasi:cli` streams from their `write`.
#[derive(Debug)]
pub(crate) struct GuestOutput {
    filter: Arc<str>,
    log: Arc<LogLimit>,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl GuestOutput {
    pub(crate) fn new(filter: Arc<str>, log: Arc<LogLimit>) -> Self {
        Self {
            filter,
            log,
            stdout: Vec::new(),
            stderr: Vec::new(),
        }
    }

    /// Takes bytes written to `stream`; logs each full line, and lines cut
    /// at [`MAX_LINE`] bytes.
    pub(crate) fn write(&mut self, stream: Stream, bytes: &[u8]) {
        let buffer = match stream {
            Stream::Stdout => &mut self.stdout,
            Stream::Stderr => &mut self.stderr,
        };
        buffer.extend_from_slice(bytes);
        let mut lines = Vec::new();
        while let Some(at) = buffer.iter().position(|&b| b == b'\n') {
            lines.push(buffer.drain(..=at).collect::<Vec<u8>>());
        }
        while buffer.len() >= MAX_LINE {
            lines.push(buffer.drain(..MAX_LINE).collect::<Vec<u8>>());
        }
        for line in lines {
            self.emit(stream, &line);
        }
    }

    /// Logs what is left of a line without its newline (after each call, so
    /// that nothing waits for a newline that never comes).
    pub(crate) fn flush(&mut self) {
        for stream in [Stream::Stdout, Stream::Stderr] {
            let buffer = match stream {
                Stream::Stdout => &mut self.stdout,
                Stream::Stderr => &mut self.stderr,
            };
            if !buffer.is_empty() {
                let line = std::mem::take(buffer);
                self.emit(stream, &line);
            }
        }
    }

    fn emit(&self, stream: Stream, line: &[u8]) {
        let Some(suppressed) = self.log.allow() else {
            return;
        };
        let line = String::from_utf8_lossy(line);
        let line = line.trim_end_matches(['\n', '\r']);
        let filter = &*self.filter;
        match stream {
            Stream::Stdout => {
                tracing::info!(filter, stream = "stdout", suppressed, output = %line, "Filter wrote a line.");
            }
            Stream::Stderr => {
                tracing::warn!(filter, stream = "stderr", suppressed, output = %line, "Filter wrote a line.");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use super::*;

    #[test]
    fn a_burst_passes_then_lines_are_counted_and_reported() {
        let limit = LogLimit::new(3, 1);
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), Some(0));
        assert_eq!(limit.allow(), Some(0));
        for _ in 0..10 {
            assert_eq!(limit.allow(), None);
        }
        // Refill one token by hand rather than sleeping for a second.
        limit.state.lock().unwrap().tokens = 1.0;
        assert_eq!(limit.allow(), Some(10));
        assert_eq!(limit.allow(), None);
    }

    #[test]
    fn output_is_split_into_lines_and_long_lines_are_cut() {
        let mut out = GuestOutput::new(Arc::from("t"), Arc::new(LogLimit::new(100, 100)));
        out.write(Stream::Stdout, b"one\ntwo");
        assert_eq!(out.stdout, b"two");
        out.write(Stream::Stdout, &[b'x'; MAX_LINE + 10]);
        assert_eq!(out.stdout.len(), 3 + 10);
        out.flush();
        assert!(out.stdout.is_empty());
    }
}
