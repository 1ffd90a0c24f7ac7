//! Helpers shared by the integration tests: run the real `kwex` binary.
#![allow(dead_code)] // each test binary uses a different subset
#![allow(clippy::expect_used, clippy::unwrap_used)] // a test helper that cannot go on should fail the test

pub mod guests;

use std::ffi::OsStr;
use std::io::{BufRead, BufReader, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::Value;

/// `examples/events` of the repository.
pub fn examples() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../examples/events")
}

/// A `kwex` command line being built.
pub struct Kwex {
    cmd: Command,
    stdin: Option<Vec<u8>>,
}

impl Kwex {
    /// `kwex` with JSON logs (so tests can read them) and no inherited KWEX_ variables.
    pub fn new() -> Self {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_kwex"));
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("KWEX_") {
                cmd.env_remove(key);
            }
        }
        cmd.env("KWEX_LOG_FORMAT", "json").env_remove("RUST_LOG");
        Self { cmd, stdin: None }
    }

    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.cmd.args(args);
        self
    }

    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.cmd.arg(arg);
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.cmd.env(key, value);
        self
    }

    pub fn stdin(mut self, input: Vec<u8>) -> Self {
        self.stdin = Some(input);
        self
    }

    /// Runs to completion.
    pub fn run(mut self) -> Output {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("start kwex");
        let input = self.stdin.take().unwrap_or_default();
        let mut stdin = child.stdin.take().expect("stdin");
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&input);
        });
        let out = child.wait_with_output().expect("wait for kwex");
        let _ = writer.join();
        Output {
            status: out.status,
            stdout: out.stdout,
            stderr: out.stderr,
        }
    }

    /// Starts it, with stdin, stdout and stderr piped.
    pub fn spawn(mut self) -> Running {
        self.cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = self.cmd.spawn().expect("start kwex");
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let (line_tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if line_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let (log_tx, logs) = mpsc::channel();
        let stderr_reader = std::thread::spawn(move || {
            let mut all = Vec::new();
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                all.extend_from_slice(line.as_bytes());
                all.push(b'\n');
                let _ = log_tx.send(line);
            }
            all
        });
        Running {
            stdin: child.stdin.take(),
            child,
            lines,
            seen: Vec::new(),
            logs,
            stderr_reader: Some(stderr_reader),
        }
    }
}

/// A finished run.
pub struct Output {
    pub status: ExitStatus,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
}

impl Output {
    pub fn stdout_text(&self) -> String {
        String::from_utf8_lossy(&self.stdout).into_owned()
    }

    pub fn stderr_text(&self) -> String {
        String::from_utf8_lossy(&self.stderr).into_owned()
    }

    /// stdout as NDJSON documents.
    pub fn documents(&self) -> Vec<Value> {
        self.stdout_text()
            .lines()
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
            .collect()
    }

    /// stderr as JSON log lines (lines that are not JSON are skipped).
    pub fn log_lines(&self) -> Vec<Value> {
        log_lines(&self.stderr_text())
    }
}

pub fn log_lines(stderr: &str) -> Vec<Value> {
    stderr
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// The fields of the "Replay finished." log line.
pub fn summary_of(stderr: &str) -> Value {
    log_lines(stderr)
        .into_iter()
        .find(|l| l["message"] == "Replay finished.")
        .unwrap_or_else(|| panic!("no summary line in:\n{stderr}"))
}

/// A running `kwex`.
pub struct Running {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
    logs: mpsc::Receiver<String>,
    stderr_reader: Option<std::thread::JoinHandle<Vec<u8>>>,
}

impl Running {
    pub fn stdin(&mut self) -> &mut ChildStdin {
        self.stdin.as_mut().expect("stdin is open")
    }

    /// Closes stdin (end of input).
    pub fn stdin_close(&mut self) -> Option<ChildStdin> {
        self.stdin.take()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until `n` documents have been printed in all, or the deadline passes.
    pub fn read_documents(&mut self, n: usize, deadline: Duration) -> Vec<Value> {
        let end = Instant::now() + deadline;
        while self.seen.len() < n {
            let left = end.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        self.seen
            .iter()
            .map(|l| serde_json::from_str(l).expect("document is JSON"))
            .collect()
    }

    /// Documents printed so far, without waiting.
    pub fn documents_now(&mut self) -> usize {
        while let Ok(line) = self.lines.try_recv() {
            self.seen.push(line);
        }
        self.seen.len()
    }

    /// Waits for a JSON log line with this `message` (consuming the lines before it).
    pub fn wait_for_log(&mut self, message: &str, deadline: Duration) -> Option<Value> {
        let end = Instant::now() + deadline;
        loop {
            let left = end.saturating_duration_since(Instant::now());
            let line = self.logs.recv_timeout(left).ok()?;
            if let Ok(value) = serde_json::from_str::<Value>(&line)
                && value["message"] == message
            {
                return Some(value);
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`, `KILL`).
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .arg(format!("-{name}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Waits for the exit (killing it past the deadline), with everything it printed.
    pub fn wait(mut self, deadline: Duration) -> Output {
        let end = Instant::now() + deadline;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                break status;
            }
            if Instant::now() >= end {
                let _ = self.child.kill();
                panic!("kwex did not exit within {deadline:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        drop(self.stdin.take());
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            self.seen.push(line);
        }
        let stderr = self
            .stderr_reader
            .take()
            .and_then(|h| h.join().ok())
            .unwrap_or_default();
        let mut stdout = self.seen.join("\n").into_bytes();
        if !stdout.is_empty() {
            stdout.push(b'\n');
        }
        Output {
            status,
            stdout,
            stderr,
        }
    }
}

pub mod kube;

pub mod fault_proxy;

/// A TCP port free at the time of the call.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Waits until `/metrics` on `port` shows `name` at `value` or more.
pub async fn wait_for_metric(port: u16, name: &str, value: f64, deadline: Duration) {
    let end = Instant::now() + deadline;
    loop {
        if let Ok(r) = reqwest::get(format!("http://127.0.0.1:{port}/metrics")).await
            && let Ok(text) = r.text().await
        {
            let current = text
                .lines()
                .filter(|l| l.starts_with(name) && !l.starts_with('#'))
                .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
                .sum::<f64>();
            if current >= value {
                return;
            }
        }
        assert!(
            Instant::now() < end,
            "{name} did not reach {value} within {deadline:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

pub mod search;

/// An example NDJSON file: its bytes and its records (non-empty lines).
pub fn ndjson_example(name: &str) -> (Vec<u8>, Vec<Vec<u8>>) {
    let input = std::fs::read(examples().join(name)).unwrap();
    let records = input
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    (input, records)
}

/// `n` generated Events as NDJSON (`cargo xtask gen-events`), and their
/// document ids in input order (as `kwex replay --format bulk` gives them).
pub fn generated_events(n: usize, seed: u64) -> (Vec<u8>, Vec<String>) {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let out = Command::new(env!("CARGO"))
        .current_dir(&root)
        .args(["run", "--quiet", "-p", "xtask", "--", "gen-events"])
        .args(["--count", &n.to_string(), "--seed", &seed.to_string()])
        .output()
        .expect("run the generator");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bulk = Kwex::new()
        .args(["replay", "--format", "bulk", "-"])
        .stdin(out.stdout.clone())
        .run();
    (out.stdout, bulk_ids(&bulk.stdout_text()))
}

/// The `_id`s of the `create` actions of a `_bulk` body, in order.
pub fn bulk_ids(body: &str) -> Vec<String> {
    body.lines()
        .step_by(2)
        .map(|l| {
            serde_json::from_str::<Value>(l).unwrap()["create"]["_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}
