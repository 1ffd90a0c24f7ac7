//! Project tasks, run as `cargo xtask <task>` (the alias lives in `.cargo/config.toml`).
//!
//! Only the Rust toolchain is needed to run these: anything else a task needs
//! (system packages, servers for the tests) it installs or starts itself,
//! through the scripts in `scripts/`.

#[path = "gen.rs"]
mod generate;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some(task) = args.first() else {
        eprintln!("usage: cargo xtask <gen-events|demo|test> [args…]");
        return ExitCode::from(2);
    };
    let rest = &args[1..];
    let result = match task.as_str() {
        "gen-events" => generate::run(rest),
        other => Err(format!("unknown task {other:?}; tasks: gen-events, demo, test")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {task}: {e}");
            ExitCode::FAILURE
        }
    }
}
