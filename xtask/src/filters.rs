//! `cargo xtask filters`: build every example filter from source (installing
//! the toolchains it needs) and check each against its golden files and the
//! conformance documents with `kwex filter test`.
//!
//! - Rust examples (`filters/<name>/`, built by `filters/build.sh` into
//!   `filters/out/`): each against its own `testdata/` (events, config,
//!   expected), as a core module and, where built, as a component.
//! - The polyglot filter (`filters/polyglot/`, built by its `build.sh` into
//!   `filters/polyglot/out/`, plus the Rust one in `filters/out/`): every
//!   language against the one shared golden of `filters/polyglot/golden/`,
//!   with its config and with none, and refusing the bad config.
//!
//! Every check runs with `--conformance`. A toolchain that fails to install
//! or a filter that fails to build fails the task: nothing is skipped.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{phase, root, run};

/// Extra `kwex filter test` flags for filters whose runtime is large: an
/// interpreter compiled to wasm needs more than the 16 MiB default memory.
fn extra_flags(name: &str) -> &'static [&'static str] {
    match name {
        "python" | "javascript" => &["--filter-memory", "256MiB"],
        "go" => &["--filter-memory", "64MiB"],
        _ => &[],
    }
}

/// One `kwex filter test` run to make.
struct Check {
    filter: PathBuf,
    events: PathBuf,
    config: Option<PathBuf>,
    expect: Option<PathBuf>,
    /// The run must fail with this text on stderr (a refused config).
    must_fail_with: Option<&'static str>,
    extra: &'static [&'static str],
}

pub fn run_task(extra: &[String]) -> Result<(), String> {
    let install = !extra.iter().any(|a| a == "--no-build");
    if install {
        phase("build the Rust example filters (filters/build.sh)", || {
            run(Command::new("bash").arg("filters/build.sh"))
        })?;
        phase("unit tests of the Rust example filters (native)", || {
            run(Command::new("cargo").args([
                "test",
                "--quiet",
                "--manifest-path",
                "filters/Cargo.toml",
                "--workspace",
            ]))
        })?;
        phase(
            "build the polyglot filters: C, Zig, AssemblyScript, Go, Python, JavaScript",
            || run(Command::new("bash").arg("filters/polyglot/build.sh")),
        )?;
    }
    phase("build kwex", || {
        run(Command::new("cargo").args(["build", "-p", "kwex"]))
    })?;
    let checks = checks()?;
    phase(
        &format!(
            "kwex filter test: {} golden + conformance checks",
            checks.len()
        ),
        || {
            let kwex = root().join("target/debug/kwex");
            let mut failed = Vec::new();
            for check in &checks {
                let shown = describe(check);
                match run_check(&kwex, check) {
                    Ok(()) => eprintln!("    ok    {shown}"),
                    Err(e) => {
                        eprintln!("    FAIL  {shown}\n{e}");
                        failed.push(shown);
                    }
                }
            }
            match failed.len() {
                0 => Ok(()),
                n => Err(format!(
                    "{n} filter checks failed:\n  {}",
                    failed.join("\n  ")
                )),
            }
        },
    )
}

fn describe(c: &Check) -> String {
    let rel = |p: &Path| p.strip_prefix(root()).unwrap_or(p).display().to_string();
    let mut s = rel(&c.filter);
    if let Some(cfg) = &c.config {
        s += &format!(" --config @{}", rel(cfg));
    }
    if let Some(e) = &c.expect {
        s += &format!(" --expect {}", rel(e));
    }
    if let Some(text) = c.must_fail_with {
        s += &format!(" (must refuse: {text:?})");
    }
    s
}

fn run_check(kwex: &Path, c: &Check) -> Result<(), String> {
    let mut cmd = Command::new(kwex);
    cmd.current_dir(root())
        // Golden checks test behaviour, not speed: a long deadline, so that a
        // call descheduled on a busy machine is not a failure (a loop still
        // is, after a second).
        .args([
            "filter",
            "test",
            "--filter-deadline",
            "1s",
            "--filter-cache-dir",
        ])
        .arg(root().join("target/filter-cache"))
        .arg(&c.filter)
        .arg(&c.events)
        .args(c.extra);
    if let Some(cfg) = &c.config {
        cmd.arg("--config").arg(format!("@{}", cfg.display()));
    }
    if c.must_fail_with.is_none() {
        cmd.arg("--conformance");
    }
    if let Some(e) = &c.expect {
        cmd.arg("--expect").arg(e);
    }
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {}: {e}", kwex.display()))?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    let indented = || {
        stderr
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| format!("          {l}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    match c.must_fail_with {
        None if out.status.success() => Ok(()),
        None => Err(indented()),
        Some(text) if !out.status.success() && stderr.contains(text) => Ok(()),
        Some(text) => Err(format!(
            "          expected a failure mentioning {text:?}, got {}:\n{}",
            out.status,
            indented()
        )),
    }
}

/// Every check, from what is on disk: a Rust example with a `testdata/`
/// directory, and every built polyglot filter.
fn checks() -> Result<Vec<Check>, String> {
    let filters = root().join("filters");
    let out = filters.join("out");
    let mut checks = Vec::new();
    let mut names: Vec<String> = std::fs::read_dir(&filters)
        .map_err(|e| format!("cannot list {}: {e}", filters.display()))?
        .flatten()
        .filter(|e| e.path().join("testdata/expected.ndjson").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    if names.is_empty() {
        return Err("no example filter with testdata/expected.ndjson in filters/".into());
    }
    for name in names {
        let data = filters.join(&name).join("testdata");
        let config = data.join("config.json");
        for file in [format!("{name}.wasm"), format!("{name}.component.wasm")] {
            let filter = out.join(&file);
            if file.ends_with(".component.wasm") && !filter.exists() {
                continue;
            }
            checks.push(Check {
                filter,
                events: data.join("events.json"),
                config: config.is_file().then(|| config.clone()),
                expect: Some(data.join("expected.ndjson")),
                must_fail_with: None,
                extra: &[],
            });
        }
    }

    let golden = filters.join("polyglot/golden");
    let mut polyglot: Vec<(String, PathBuf)> = std::fs::read_dir(filters.join("polyglot/out"))
        .map_err(|e| format!("the polyglot filters were not built: {e}"))?
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "wasm"))
        .map(|p| {
            let stem = p
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            (stem, p)
        })
        .collect();
    for rust in ["polyglot-rust.wasm", "polyglot-rust.component.wasm"] {
        polyglot.push(("rust".into(), out.join(rust)));
    }
    polyglot.sort();
    for (name, filter) in polyglot {
        let lang = name.split('-').next().unwrap_or(&name).to_owned();
        let extra = extra_flags(&lang);
        let events = golden.join("events.json");
        checks.push(Check {
            filter: filter.clone(),
            events: events.clone(),
            config: Some(golden.join("config.json")),
            expect: Some(golden.join("expected.ndjson")),
            must_fail_with: None,
            extra,
        });
        checks.push(Check {
            filter: filter.clone(),
            events: events.clone(),
            config: None,
            expect: Some(golden.join("expected-no-config.ndjson")),
            must_fail_with: None,
            extra,
        });
        checks.push(Check {
            filter,
            events,
            config: Some(golden.join("bad-config.json")),
            expect: None,
            must_fail_with: Some("config:"),
            extra,
        });
    }
    Ok(checks)
}
