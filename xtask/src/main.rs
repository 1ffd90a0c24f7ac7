//! Project tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! Only the Rust toolchain is needed to run these: anything else a task needs
//! (system packages, servers for the tests) it installs or starts itself,
//! through the scripts in `scripts/`.
//!
//! - `demo`: build kwex and replay the example Events to stdout.
//! - `test`: set up what the tests need and run the whole test suite, the
//!   example filters' golden and conformance checks included.
//! - `filters`: build every example filter (Rust and six other languages)
//!   and check each with `kwex filter test` (`--no-build`: check only).
//! - `gen-events`: write realistic generated Events (for benchmarks and examples).

mod filters;
#[path = "gen.rs"]
mod generate;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::time::Instant;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("usage: cargo xtask <demo|test|filters|gen-events> [args…]");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "gen-events" => generate::run(rest),
        "demo" => demo(rest),
        "test" => test(rest),
        "filters" => filters::run_task(rest),
        other => Err(format!(
            "unknown task {other:?}; tasks: demo, test, filters, gen-events"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The workspace root (xtask lives one level below it).
pub(crate) fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map_or_else(|| PathBuf::from("."), Path::to_path_buf)
}

/// Runs a command in the workspace root; an error says which command failed.
pub(crate) fn run(cmd: &mut Command) -> Result<(), String> {
    cmd.current_dir(root());
    let shown = format!("{cmd:?}");
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {shown}: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("{shown} failed with {status}"))
    }
}

/// Runs `f` as a named phase and prints how long it took.
pub(crate) fn phase<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<T, String> {
    let start = Instant::now();
    eprintln!("==> {name}");
    let result = f();
    let secs = start.elapsed().as_secs_f64();
    match &result {
        Ok(_) => eprintln!("==> {name}: done in {secs:.1} s"),
        Err(_) => eprintln!("==> {name}: FAILED after {secs:.1} s"),
    }
    result
}

/// `cargo xtask demo [kwex replay flags…]`: the example Events through a Wasm
/// filter (keep Warnings) and kwex, to stdout.
fn demo(extra: &[String]) -> Result<(), String> {
    phase("build kwex", || {
        run(Command::new("cargo").args(["build", "-p", "kwex"]))
    })?;
    phase("build the example filter (wasm32)", || {
        run(Command::new("bash").arg("filters/test-guests/build.sh"))
    })?;
    let filters = root().join("target/demo-filters");
    let _ = std::fs::remove_dir_all(&filters);
    std::fs::create_dir_all(&filters)
        .map_err(|e| format!("cannot create {}: {e}", filters.display()))?;
    let wasm = root().join("filters/test-guests/out/keep_warnings.wasm");
    std::fs::copy(&wasm, filters.join("10-keep-warnings.wasm"))
        .map_err(|e| format!("cannot copy {}: {e}", wasm.display()))?;
    let kwex = root().join("target/debug/kwex");
    phase(
        "replay examples/events/core-v1.json through keep-warnings.wasm",
        || {
            run(Command::new(&kwex)
                .args(["replay", "examples/events/core-v1.json", "--filters"])
                .arg(&filters)
                .args(extra))
        },
    )
}

/// `cargo xtask test [cargo test args…]`: the whole test suite, with the
/// real servers it needs, which it installs (or takes from the cache),
/// starts, and stops again whatever the outcome.
fn test(extra: &[String]) -> Result<(), String> {
    filters::run_task(&[])?;
    let kapi = root().join("scripts/testenv/kube-apiserver.sh");
    phase("kube-apiserver: build or take from cache", || {
        run(Command::new("bash").arg(&kapi).arg("build"))
    })?;
    phase("build tests", || {
        run(Command::new("cargo").args(["test", "--workspace", "--no-run"]))
    })?;

    let search = root().join("scripts/testenv/search-servers.sh");
    phase("search servers: install or take from cache", || {
        run(Command::new("bash").arg(&search).arg("install"))
    })?;

    let dir = root().join(format!("target/testenv/kapi-{}", std::process::id()));
    let search_dir = root().join(format!("target/testenv/search-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&search_dir);
    let started = phase("kube-apiserver: start", || {
        run(Command::new("bash").arg(&kapi).arg("start").arg(&dir))
    })
    .and_then(|()| {
        phase("search servers: start", || {
            run(Command::new("bash")
                .arg(&search)
                .arg("start")
                .arg(&search_dir))
        })
    });
    let result = started.and_then(|()| {
        let mut env = read_env_file(&dir.join("env"))?;
        env.extend(read_env_file(&search_dir.join("env"))?);
        // Tests that need a server are #[ignore]d for a plain `cargo test`;
        // here the servers run, so every test runs.
        phase(
            "cargo test --workspace (all tests, with the servers)",
            || {
                run(Command::new("cargo")
                    .args(["test", "--workspace"])
                    .args(extra)
                    .args(["--", "--include-ignored"])
                    .envs(env))
            },
        )
    });
    let stopped = phase("kube-apiserver: stop", || {
        run(Command::new("bash").arg(&kapi).arg("stop").arg(&dir))
    });
    let search_stopped = if search_dir.exists() {
        phase("search servers: stop", || {
            run(Command::new("bash")
                .arg(&search)
                .arg("stop")
                .arg(&search_dir))
        })
    } else {
        Ok(())
    };
    result.and(stopped).and(search_stopped)
}

/// `KEY=value` lines, as the test-environment scripts write them.
fn read_env_file(path: &Path) -> Result<Vec<(String, String)>, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|line| line.split_once('='))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect())
}
