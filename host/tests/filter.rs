//! The filter runtime against real guests: Rust crates in
//! `filters/test-guests/`, built to `.wasm` by its `build.sh` once per run.
//!
//! Most guests are hostile on purpose when a document contains the word
//! `hostile` and well-behaved otherwise, so each test checks, in one process
//! and over many calls, that the failure is caught, that the filter's policy
//! applies, that the error names the filter and the cause, and that the
//! replaced instance handles the next document.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bytes::Bytes;
use kwex::document::Record;
use kwex::filter::{
    Chain, Engine, ErrorKind, FilterSpec, LoadError, Metrics, Outcome, Policy, Settings,
};
use kwex::telemetry::metrics::read;
use prometheus::Registry;
use serde_json::{Value, json};

fn guest(name: &str) -> PathBuf {
    capture_logs();
    util::guests::guest(name)
}

/// Default settings, with a small pool: tests run in parallel, each engine
/// reserves address space per slot.
fn settings() -> Settings {
    Settings {
        max_instances: 64,
        ..Settings::default()
    }
}

/// The engine most tests share: default limits (16 MiB, 1 MiB of output)
/// but a 100 ms deadline. The deadline is wall-clock time, and these tests
/// run in parallel on two shared cores: with the default 5 ms, an honest call
/// descheduled for a few ms (or one touching 15 MiB of fresh pages, ~10 ms
/// here) would time out now and then. `the_default_deadline_is_5_ms` checks
/// the default.
fn engine() -> &'static Engine {
    static ENGINE: OnceLock<Engine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let mut s = settings();
        s.limits.deadline = Duration::from_millis(100);
        Engine::new(s).unwrap()
    })
}

/// A Document as kwex writes it (about 800 bytes).
fn document(kind: &str, reason: &str) -> String {
    json!({
        "@timestamp": "2026-11-25T14:03:27Z",
        "cluster": "prod-eu-1",
        "type": kind,
        "reason": reason,
        "message": "Back-off restarting failed container app in pod web-7d9f8b6c5d-x2x9q_default(5c1e0f7a-3b9e-4e0c-9a3c-1f2d3e4f5a6b)",
        "count": 12,
        "firstTimestamp": "2026-11-25T13:41:02Z",
        "lastTimestamp": "2026-11-25T14:03:27Z",
        "involvedObject": {"kind": "Pod", "namespace": "default", "name": "web-7d9f8b6c5d-x2x9q",
            "uid": "5c1e0f7a-3b9e-4e0c-9a3c-1f2d3e4f5a6b", "apiVersion": "v1", "fieldPath": "spec.containers{app}"},
        "source": {"component": "kubelet", "host": "node-3"},
        "reportingController": "kubelet",
        "reportingInstance": "node-3",
        "metadata": {"namespace": "default", "name": "web-7d9f8b6c5d-x2x9q.17f2a3b4c5d6e7f8",
            "uid": "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d", "resourceVersion": "884213",
            "creationTimestamp": "2026-11-25T13:41:02Z", "labels": {"app.kubernetes.io/name": "web"}},
        "kwex": {"watchAction": "modified", "observedAt": "2026-11-25T14:03:27.412Z", "apiVersion": "v1"}
    })
    .to_string()
}

fn record(body: String) -> Record {
    Record {
        id: "0a1b2c3d-4e5f-6a7b-8c9d-0e1f2a3b4c5d:884213".into(),
        index: "kwex-events-2026.11.25".into(),
        body: Bytes::from(body),
    }
}

fn normal() -> Record {
    record(document("Normal", "Pulled"))
}

fn warning() -> Record {
    record(document("Warning", "BackOff"))
}

/// A chain of one guest with `policy`, and the registry of its metrics.
fn single(engine: &Engine, name: &str, policy: Policy) -> (Chain, Registry) {
    let registry = Registry::new();
    let metrics = Metrics::register(&registry).unwrap();
    let spec = FilterSpec::new(engine, guest(name)).with_policy(policy);
    let chain = Chain::from_specs(engine, vec![spec], &metrics).unwrap();
    (chain, registry)
}

fn metric(registry: &Registry, name: &str, labels: &[(&str, &str)]) -> f64 {
    read(registry, name, labels).unwrap_or(0.0)
}

/// Load errors, as text.
fn load_error(engine: &Engine, specs: Vec<FilterSpec>) -> LoadError {
    let metrics = Metrics::register(&Registry::new()).unwrap();
    Chain::from_specs(engine, specs, &metrics).unwrap_err()
}

/// The heart of the hostile-guest tests: under each policy, many rounds of a
/// hostile document (which must fail with `kind` and a message naming the
/// guest and containing `cause`) each followed by a normal document (which
/// the replaced instance must keep).
fn survives(engine: &Engine, name: &str, trigger: &str, kind: ErrorKind, cause: &str) {
    const ROUNDS: usize = 3;
    let file = format!("{name}.wasm");
    for policy in [Policy::Pass, Policy::Drop, Policy::DeadLetter] {
        let (chain, registry) = single(engine, name, policy);
        let mut worker = chain.worker();
        // What the guest does with a normal document (most keep it, the
        // component drops it).
        let baseline = worker.apply(normal());
        assert!(
            matches!(baseline, Outcome::Keep(_) | Outcome::Drop),
            "{name} before: {baseline:?}"
        );
        for round in 0..ROUNDS {
            let input = record(document("Warning", trigger));
            let outcome = worker.apply(input.clone());
            match (policy, outcome) {
                (Policy::Pass, Outcome::Keep(out)) => assert_eq!(out, input),
                (Policy::Drop, Outcome::Drop) => {}
                (Policy::DeadLetter, Outcome::DeadLetter(out, error)) => {
                    assert_eq!(out, input);
                    assert_eq!(error.kind(), kind, "{error}");
                    let text = error.to_string();
                    assert!(text.starts_with(&format!("{file} ")), "{text}");
                    assert!(text.contains(cause), "{text:?} lacks {cause:?}");
                }
                (policy, outcome) => panic!("{name} under {policy}: {outcome:?}"),
            }
            assert_eq!(
                worker.apply(normal()),
                baseline,
                "{name} after round {round} under {policy}"
            );
        }
        let labels = [("filter", file.as_str()), ("kind", kind.as_str())];
        assert_eq!(
            metric(&registry, "kwex_filter_errors_total", &labels),
            ROUNDS as f64
        );
        let filter = [("filter", file.as_str())];
        assert_eq!(
            metric(
                &registry,
                "kwex_filter_instance_replacements_total",
                &filter
            ),
            ROUNDS as f64
        );
        assert_eq!(
            metric(&registry, "kwex_filter_calls_total", &filter),
            (2 * ROUNDS + 1) as f64
        );
        assert_eq!(
            metric(
                &registry,
                "kwex_filter_verdicts_total",
                &[("filter", file.as_str()), ("verdict", "error")]
            ),
            ROUNDS as f64
        );
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_the_epoch_deadline() {
    survives(
        engine(),
        "infinite_loop",
        "hostile",
        ErrorKind::Timeout,
        "exceeded its 100 ms deadline",
    );
}

/// The default deadline, checking the kind and the message, never a
/// duration: only the epoch can end this call, however loaded the machine.
#[test]
fn the_default_deadline_is_5_ms() {
    let engine = Engine::new(Settings {
        max_instances: 8,
        ..Settings::default()
    })
    .unwrap();
    let (chain, _) = single(&engine, "infinite_loop", Policy::DeadLetter);
    let mut worker = chain.worker();
    for _ in 0..10 {
        let outcome = worker.apply(record(document("Warning", "hostile")));
        let Outcome::DeadLetter(_, e) = outcome else {
            panic!("the loop was not stopped: {outcome:?}")
        };
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(
            e.to_string(),
            "infinite_loop.wasm exceeded its 5 ms deadline"
        );
    }
}

#[test]
fn an_infinite_loop_is_stopped_by_fuel_when_fuel_is_set() {
    let mut s = settings();
    s.max_instances = 8;
    s.limits.fuel = Some(10_000_000);
    // A long deadline, so that only fuel can stop the loop.
    s.limits.deadline = Duration::from_secs(10);
    s.limits.start_deadline = Duration::from_secs(10);
    let engine = Engine::new(s).unwrap();
    survives(
        &engine,
        "infinite_loop",
        "hostile",
        ErrorKind::OutOfFuel,
        "ran out of its 10000000 units of fuel",
    );
}

#[test]
fn allocating_until_the_cap_is_a_memory_error() {
    survives(
        engine(),
        "alloc_bomb",
        "hostile",
        ErrorKind::Memory,
        "exceeded its 16 MiB memory cap",
    );
}

#[test]
fn a_panic_is_a_trap() {
    survives(
        engine(),
        "panic",
        "hostile",
        ErrorKind::Trap,
        "panic.wasm trapped: wasm `unreachable` instruction executed",
    );
}

#[test]
fn invalid_utf8_output_is_never_forwarded() {
    survives(
        engine(),
        "invalid_utf8",
        "hostile",
        ErrorKind::InvalidOutput,
        "returned invalid UTF-8: invalid utf-8 sequence",
    );
}

#[test]
fn invalid_json_output_is_never_forwarded() {
    survives(
        engine(),
        "invalid_json",
        "hostile",
        ErrorKind::InvalidOutput,
        "returned invalid JSON: EOF while parsing a string",
    );
    survives(
        engine(),
        "invalid_json",
        "hostile-array",
        ErrorKind::InvalidOutput,
        "returned invalid JSON: invalid type: sequence, expected a JSON object",
    );
}

#[test]
fn a_result_pointer_outside_memory_is_refused() {
    survives(
        engine(),
        "out_of_bounds",
        "hostile",
        ErrorKind::InvalidOutput,
        "returned a pointer outside its memory (result: 4096 bytes at 0xffff0000",
    );
}

#[test]
fn a_50_mib_output_hits_the_memory_cap() {
    survives(
        engine(),
        "huge_output",
        "hostile",
        ErrorKind::Memory,
        "exceeded its 16 MiB memory cap",
    );
}

#[test]
fn a_50_mib_output_within_a_raised_cap_hits_the_output_limit() {
    let mut s = settings();
    s.max_instances = 8;
    s.limits.memory_bytes = 128 << 20;
    s.limits.memory_watermark = 96 << 20;
    // Filling 50 MiB of fresh pages takes longer than the default 5 ms.
    s.limits.deadline = Duration::from_secs(1);
    let engine = Engine::new(s).unwrap();
    survives(
        &engine,
        "huge_output",
        "hostile",
        ErrorKind::InvalidOutput,
        "returned 52428799 bytes of output, more than its 1 MiB limit",
    );
}

#[test]
fn proc_exit_ends_the_call_not_the_exporter() {
    survives(
        engine(),
        "wasi_probe",
        "hostile-exit",
        ErrorKind::Trap,
        "called proc_exit(3)",
    );
}

#[test]
fn a_rust_std_wasip1_filter_links_and_runs() {
    survives(
        engine(),
        "wasip1_std",
        "hostile",
        ErrorKind::Trap,
        "called proc_exit(3)",
    );
}

#[test]
fn the_wasi_sandbox_grants_nothing() {
    let (chain, _) = single(engine(), "wasi_probe", Policy::DeadLetter);
    let Outcome::Keep(out) = chain.worker().apply(normal()) else {
        panic!("the probe failed")
    };
    let report: Value = serde_json::from_slice(&out.body).unwrap();
    let expected = json!({
        "initialized": true,     // _initialize ran first
        "stdout_errno": 0, "stderr_errno": 0,
        "bad_fd_errno": 8,       // EBADF: no other descriptor exists
        "environ_errno": 0, "environ": 0, "environ_size": 0,
        "args_errno": 0, "args": 0, "args_size": 0,
        "clock_errno": 0, "clock_time": 1_000_000_000u64, // standing still unless granted
        "random_errno": 0, "random_nonzero": true,
        "prestat_errno": 8,      // no preopened directory
        "path_open_errno": 8,
        "stdin_errno": 0, "stdin_read": 0,
    });
    assert_eq!(report, expected);
}

#[test]
fn the_clock_is_there_when_granted() {
    let mut s = settings();
    s.max_instances = 8;
    s.grants.clock = true;
    let engine = Engine::new(s).unwrap();
    let (chain, _) = single(&engine, "wasi_probe", Policy::DeadLetter);
    let Outcome::Keep(out) = chain.worker().apply(normal()) else {
        panic!("the probe failed")
    };
    let report: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(report["clock_errno"], 0);
    // Nanoseconds since 1970: after 2020 on any machine running this.
    assert!(report["clock_time"].as_u64().unwrap() > 1_577_836_800_000_000_000);
}

thread_local! {
    /// What the log subscriber wrote on this thread.
    static LOG: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Installs, once, a global log subscriber that writes each thread's lines
/// to that thread's [`LOG`]. Global rather than per test
/// (`with_default`): tracing caches per call site whether anyone listens,
/// and a call site first hit on a thread with no subscriber can stay muted
/// for a scoped one, which made log assertions flaky.
fn capture_logs() {
    struct ThreadLog;
    impl std::io::Write for ThreadLog {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            LOG.with_borrow_mut(|log| log.extend_from_slice(b));
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }
    static INSTALLED: std::sync::Once = std::sync::Once::new();
    INSTALLED.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(|| ThreadLog)
            .finish();
        tracing::subscriber::set_global_default(subscriber).unwrap();
    });
}

/// Log lines written while `f` runs on this thread.
fn logged(f: impl FnOnce()) -> String {
    capture_logs();
    LOG.with_borrow_mut(Vec::clear);
    f();
    LOG.with_borrow_mut(|log| String::from_utf8(std::mem::take(log)).unwrap())
}

#[test]
fn guest_output_goes_to_the_log_with_the_filter_name() {
    let (chain, _) = single(engine(), "wasi_probe", Policy::DeadLetter);
    let mut worker = chain.worker();
    let log = logged(|| {
        let _ = worker.apply(normal());
    });
    let stdout = log
        .lines()
        .find(|l| l.contains("probe: hello from stdout"))
        .unwrap_or_else(|| panic!("no stdout line in {log}"));
    assert!(stdout.contains("INFO"), "{stdout}");
    assert!(stdout.contains("wasi_probe.wasm"), "{stdout}");
    let stderr = log
        .lines()
        .find(|l| l.contains("probe: hello from stderr"))
        .unwrap_or_else(|| panic!("no stderr line in {log}"));
    assert!(stderr.contains("WARN"), "{stderr}");
    assert!(!log.contains("nobody reads this"), "{log}");
}

#[test]
fn a_flood_of_guest_output_is_rate_limited_not_fatal() {
    let (chain, _) = single(engine(), "wasi_probe", Policy::DeadLetter);
    let mut worker = chain.worker();
    let log = logged(|| {
        for _ in 0..5 {
            let outcome = worker.apply(record(document("Warning", "hostile-flood")));
            assert!(matches!(outcome, Outcome::Keep(_)), "{outcome:?}");
        }
    });
    // 5 × 502 lines written; a burst of 20 (and 5 a second after) logged.
    let lines = log
        .lines()
        .filter(|l| l.contains("Filter wrote a line"))
        .count();
    assert!((20..40).contains(&lines), "{lines} lines logged:\n{log}");
}

#[test]
fn failures_are_logged_with_filter_kind_and_policy() {
    let (chain, _) = single(engine(), "panic", Policy::Drop);
    let mut worker = chain.worker();
    let log = logged(|| {
        let _ = worker.apply(record(document("Warning", "hostile")));
    });
    let line = log
        .lines()
        .find(|l| l.contains("Filter failed"))
        .unwrap_or_else(|| panic!("no failure logged: {log}"));
    for needle in [
        "WARN",
        "panic.wasm",
        "kind=trap",
        "policy=drop",
        "unreachable",
    ] {
        assert!(line.contains(needle), "{line} lacks {needle}");
    }
}

#[test]
fn a_flood_of_guest_output_is_rate_limited_not_fatal_without_a_subscriber() {
    let (chain, _) = single(engine(), "wasi_probe", Policy::DeadLetter);
    let mut worker = chain.worker();
    for _ in 0..5 {
        let outcome = worker.apply(record(document("Warning", "hostile-flood")));
        assert!(matches!(outcome, Outcome::Keep(_)), "{outcome:?}");
    }
}

#[test]
fn a_filter_without_a_filter_export_is_refused_at_load() {
    let e = load_error(
        engine(),
        vec![FilterSpec::new(engine(), guest("missing_filter"))],
    );
    assert!(matches!(e, LoadError::Refused { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.starts_with("filter missing_filter.wasm is refused: "),
        "{text}"
    );
    assert!(text.contains("it does not export `filter`"), "{text}");
}

#[test]
fn a_filter_for_another_abi_version_is_refused_at_load() {
    let e = load_error(
        engine(),
        vec![FilterSpec::new(engine(), guest("wrong_abi"))],
    );
    let text = e.to_string();
    assert!(text.contains("wrong_abi.wasm"), "{text}");
    assert!(
        text.contains("it is built for ABI `kwex_abi_v2`, which this kwex does not support"),
        "{text}"
    );
}

#[test]
fn forbidden_imports_are_refused_at_load_each_by_name() {
    let e = load_error(
        engine(),
        vec![FilterSpec::new(engine(), guest("forbidden_import"))],
    );
    let LoadError::Refused { name, problems } = &e else {
        panic!("{e}")
    };
    assert_eq!(name, "forbidden_import.wasm");
    assert_eq!(problems.len(), 3, "{problems:#?}");
    let text = e.to_string();
    for needle in [
        "`env.forbidden`",
        "`wasi:http/outgoing-handler@0.2.0` (`handle`)",
        "`wasi_snapshot_preview1.sock_open`, which is not a WASI preview 1 function",
    ] {
        assert!(text.contains(needle), "{text:?} lacks {needle:?}");
    }
}

#[test]
fn a_filter_whose_init_rejects_its_config_fails_the_load() {
    let spec = FilterSpec::new(engine(), guest("init_rejects")).with_config(json!({"limit": 3}));
    let e = load_error(engine(), vec![spec]);
    assert!(matches!(e, LoadError::Start { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        r#"filter init_rejects.wasm failed to start: rejected its config in init: config {"limit":3} has no "threshold""#
    );
}

// Components: the same paths through the component ABI, with a Rust
// wasm32-wasip2 guest (filters/test-guests/component) built with wit-bindgen
// from guest-sdk/wit.

#[test]
fn a_component_keeps_warnings_and_drops_the_rest() {
    let (chain, registry) = single(engine(), "component", Policy::DeadLetter);
    let mut worker = chain.worker();
    for _ in 0..3 {
        assert_eq!(worker.apply(warning()), Outcome::Keep(warning()));
        assert_eq!(worker.apply(normal()), Outcome::Drop);
    }
    let verdict = |v| {
        metric(
            &registry,
            "kwex_filter_verdicts_total",
            &[("filter", "component.wasm"), ("verdict", v)],
        )
    };
    assert_eq!((verdict("keep"), verdict("drop")), (3.0, 3.0));
}

#[test]
fn a_component_routes_and_replaces_and_keeps_state_per_instance() {
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let spec = FilterSpec::new(engine(), guest("component"))
        .with_config(json!({"index": "kwex-payments"}));
    let chain = Chain::from_specs(engine(), vec![spec], &metrics).unwrap();
    let mut worker = chain.worker();
    let Outcome::Keep(routed) = worker.apply(record(document("Warning", "route-me"))) else {
        panic!("not routed")
    };
    assert_eq!(routed.index, "kwex-payments");
    assert_eq!(routed.body, record(document("Warning", "route-me")).body);
    let Outcome::Keep(replaced) = worker.apply(record(document("Warning", "replace-me"))) else {
        panic!("not replaced")
    };
    // The second call of this instance: state persisted between calls.
    assert_eq!(&replaced.body[..], br#"{"replaced":2}"#);
}

#[test]
fn a_component_in_an_infinite_loop_is_stopped_by_the_deadline() {
    survives(
        engine(),
        "component",
        "hostile-loop",
        ErrorKind::Timeout,
        "exceeded its 100 ms deadline",
    );
}

#[test]
fn a_component_that_panics_is_a_trap() {
    survives(
        engine(),
        "component",
        "hostile-panic",
        ErrorKind::Trap,
        "component.wasm trapped: wasm `unreachable` instruction executed",
    );
}

#[test]
fn a_component_allocating_until_the_cap_is_a_memory_error() {
    survives(
        engine(),
        "component",
        "hostile-alloc",
        ErrorKind::Memory,
        "exceeded its 16 MiB memory cap",
    );
    survives(
        engine(),
        "component",
        "hostile-huge",
        ErrorKind::Memory,
        "exceeded its 16 MiB memory cap",
    );
}

#[test]
fn invalid_json_from_a_component_is_never_forwarded() {
    survives(
        engine(),
        "component",
        "hostile-json",
        ErrorKind::InvalidOutput,
        "returned invalid JSON: EOF while parsing",
    );
}

#[test]
fn a_component_error_goes_to_its_policy_and_keeps_the_instance() {
    let (chain, registry) = single(engine(), "component", Policy::DeadLetter);
    let mut worker = chain.worker();
    for _ in 0..3 {
        let Outcome::DeadLetter(_, e) = worker.apply(record(document("Warning", "hostile-error")))
        else {
            panic!("no dead letter")
        };
        assert_eq!(e.kind(), ErrorKind::GuestError);
        assert!(
            e.to_string()
                .contains("component.wasm reported an error: the document asked for an error"),
            "{e}"
        );
    }
    let replaced = metric(
        &registry,
        "kwex_filter_instance_replacements_total",
        &[("filter", "component.wasm")],
    );
    assert_eq!(replaced, 0.0);
}

#[test]
fn a_component_whose_init_rejects_its_config_fails_the_load() {
    let spec = FilterSpec::new(engine(), guest("component")).with_config(json!({"reject": true}));
    let e = load_error(engine(), vec![spec]);
    assert!(matches!(e, LoadError::Start { .. }), "{e}");
    assert_eq!(
        e.to_string(),
        r#"filter component.wasm failed to start: rejected its config in init: config {"reject":true} asks to be rejected"#
    );
}

#[test]
fn a_component_importing_wasi_http_is_refused_by_name() {
    let e = load_error(
        engine(),
        vec![FilterSpec::new(engine(), guest("component_http"))],
    );
    let LoadError::Refused { name, problems } = &e else {
        panic!("{e}")
    };
    assert_eq!(name, "component_http.wasm");
    assert_eq!(problems.len(), 1, "{problems:#?}");
    assert!(
        problems[0].contains("`wasi:http/outgoing-handler@0.3.0`: filters get no network"),
        "{e}"
    );
}

#[test]
fn component_output_goes_to_the_log_with_the_filter_name() {
    let (chain, _) = single(engine(), "component", Policy::DeadLetter);
    let mut worker = chain.worker();
    let log = logged(|| {
        let outcome = worker.apply(record(document("Warning", "hostile-print")));
        assert!(matches!(outcome, Outcome::Keep(_)), "{outcome:?}");
    });
    let line = |text: &str| {
        log.lines()
            .find(|l| l.contains(text))
            .unwrap_or_else(|| panic!("no {text:?} in {log}"))
            .to_owned()
    };
    let stdout = line("a line on stdout");
    assert!(
        stdout.contains("INFO") && stdout.contains("component.wasm"),
        "{stdout}"
    );
    assert!(line("a line on stderr").contains("WARN"));
}

/// A scratch directory under the target directory, empty.
fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("filter-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

#[test]
fn a_file_that_is_not_wasm_is_refused() {
    let dir = scratch("not-wasm");
    std::fs::write(dir.join("10-notes.wasm"), "not a module").unwrap();
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let e = Chain::load(engine(), &dir, &metrics).unwrap_err();
    assert!(matches!(e, LoadError::NotWasm { .. }), "{e}");
    assert!(e.to_string().contains("10-notes.wasm"), "{e}");
}

#[test]
fn a_directory_loads_in_lexical_order_skipping_other_files() {
    let dir = scratch("order");
    for (file, name) in [
        ("20-replace.wasm", "replace"),
        ("10-keep-warnings.wasm", "keep_warnings"),
        ("30-counter.wasm", "counter"),
        (".hidden.wasm", "panic"),
    ] {
        std::fs::copy(guest(name), dir.join(file)).unwrap();
    }
    std::fs::write(dir.join("README.md"), "not a filter").unwrap();
    std::fs::create_dir(dir.join("..data")).unwrap();

    let metrics = Metrics::register(&Registry::new()).unwrap();
    let chain = Chain::load(engine(), &dir, &metrics).unwrap();
    assert_eq!(
        chain.names().collect::<Vec<_>>(),
        [
            "10-keep-warnings.wasm",
            "20-replace.wasm",
            "30-counter.wasm"
        ]
    );
    let mut worker = chain.worker();
    assert_eq!(worker.apply(normal()), Outcome::Drop);
    let Outcome::Keep(out) = worker.apply(warning()) else {
        panic!("a Warning was not kept")
    };
    let doc: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(doc["filtered"], true);
    assert_eq!(doc["seen"], 1);
    assert_eq!(doc["reason"], "BackOff");
}

#[test]
fn an_empty_directory_is_a_chain_that_keeps_everything() {
    let dir = scratch("empty");
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let chain = Chain::load(engine(), &dir, &metrics).unwrap();
    assert!(chain.is_empty());
    assert_eq!(chain.worker().apply(warning()), Outcome::Keep(warning()));
}

#[test]
fn keep_warnings_keeps_warnings_and_drops_the_rest() {
    let (chain, registry) = single(engine(), "keep_warnings", Policy::DeadLetter);
    let mut worker = chain.worker();
    assert_eq!(worker.apply(warning()), Outcome::Keep(warning()));
    assert_eq!(worker.apply(normal()), Outcome::Drop);
    let verdict = |v| {
        metric(
            &registry,
            "kwex_filter_verdicts_total",
            &[("filter", "keep_warnings.wasm"), ("verdict", v)],
        )
    };
    assert_eq!(
        (verdict("keep"), verdict("drop"), verdict("error")),
        (1.0, 1.0, 0.0)
    );
}

#[test]
fn route_sets_the_index_and_optionally_the_body() {
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let spec =
        FilterSpec::new(engine(), guest("route")).with_config(json!({"index": "kwex-audit"}));
    let chain = Chain::from_specs(engine(), vec![spec], &metrics).unwrap();
    let Outcome::Keep(out) = chain.worker().apply(warning()) else {
        panic!()
    };
    assert_eq!(out.index, "kwex-audit");
    assert_eq!(out.body, warning().body);
    assert_eq!(out.id, warning().id);

    let metrics = Metrics::register(&Registry::new()).unwrap();
    let spec = FilterSpec::new(engine(), guest("route"))
        .with_config(json!({"index": "kwex-audit", "tag": "audit"}));
    let chain = Chain::from_specs(engine(), vec![spec], &metrics).unwrap();
    let Outcome::Keep(out) = chain.worker().apply(warning()) else {
        panic!()
    };
    assert_eq!(out.index, "kwex-audit");
    let doc: Value = serde_json::from_slice(&out.body).unwrap();
    assert_eq!(doc["routedBy"], "audit");
}

#[test]
fn routing_to_an_invalid_index_is_an_error_under_the_policy() {
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let spec =
        FilterSpec::new(engine(), guest("route")).with_config(json!({"index": "Kwex Audit"}));
    let chain = Chain::from_specs(engine(), vec![spec], &metrics).unwrap();
    let Outcome::DeadLetter(out, e) = chain.worker().apply(warning()) else {
        panic!()
    };
    assert_eq!(out, warning());
    assert_eq!(e.kind(), ErrorKind::InvalidOutput);
    assert_eq!(
        e.to_string(),
        r#"route.wasm routed to an invalid index name "Kwex Audit": has uppercase letters"#
    );
}

#[test]
fn instances_are_reused_per_worker_and_start_over_when_replaced() {
    let (chain, registry) = single(engine(), "counter", Policy::Pass);
    let seen = |outcome: Outcome| {
        let Outcome::Keep(out) = outcome else {
            panic!("{outcome:?}")
        };
        serde_json::from_slice::<Value>(&out.body).unwrap()["seen"].as_u64()
    };
    let mut a = chain.worker();
    let mut b = chain.worker();
    for n in 1..=5 {
        assert_eq!(seen(a.apply(normal())), Some(n));
    }
    // Another worker has its own instance, hence its own state.
    assert_eq!(seen(b.apply(normal())), Some(1));
    // A trap replaces the instance; its state is gone.
    assert_eq!(seen(a.apply(record(document("Normal", "hostile")))), None);
    assert_eq!(seen(a.apply(normal())), Some(1));
    // So does a call that leaves memory above the watermark, after it succeeds.
    assert_eq!(
        seen(a.apply(record(document("Normal", "grow-14mib")))),
        Some(2)
    );
    assert_eq!(seen(a.apply(normal())), Some(1));
    assert_eq!(
        metric(
            &registry,
            "kwex_filter_instance_replacements_total",
            &[("filter", "counter.wasm")]
        ),
        2.0
    );
}

#[test]
fn a_failing_filter_under_pass_hands_its_input_to_the_next_filter() {
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let specs = vec![
        FilterSpec::new(engine(), guest("panic")).with_policy(Policy::Pass),
        FilterSpec::new(engine(), guest("replace")),
    ];
    let chain = Chain::from_specs(engine(), specs, &metrics).unwrap();
    let input = record(document("Warning", "hostile"));
    let Outcome::Keep(out) = chain.worker().apply(input.clone()) else {
        panic!()
    };
    let mut expected: Value = serde_json::from_slice(&input.body).unwrap();
    expected["filtered"] = json!(true);
    assert_eq!(
        serde_json::from_slice::<Value>(&out.body).unwrap(),
        expected
    );
}

#[test]
fn a_chain_of_three_equals_the_filters_applied_one_by_one() {
    let specs = || {
        vec![
            FilterSpec::new(engine(), guest("replace"))
                .with_config(json!({"field": "team", "value": "payments"})),
            FilterSpec::new(engine(), guest("route"))
                .with_config(json!({"index": "kwex-payments", "tag": "payments"})),
            FilterSpec::new(engine(), guest("counter")),
        ]
    };
    let metrics = Metrics::register(&Registry::new()).unwrap();
    let chain = Chain::from_specs(engine(), specs(), &metrics).unwrap();
    let mut whole = chain.worker();
    let mut parts: Vec<_> = specs()
        .into_iter()
        .map(|spec| {
            let metrics = Metrics::register(&Registry::new()).unwrap();
            Chain::from_specs(engine(), vec![spec], &metrics)
                .unwrap()
                .worker()
        })
        .collect();

    let inputs = [
        warning(),
        normal(),
        record(document("Warning", "FailedMount")),
    ];
    for input in inputs.iter().cycle().take(9) {
        let mut by_hand = input.clone();
        for part in &mut parts {
            by_hand = match part.apply(by_hand) {
                Outcome::Keep(r) => r,
                other => panic!("{other:?}"),
            };
        }
        assert_eq!(whole.apply(input.clone()), Outcome::Keep(by_hand.clone()));
        let doc: Value = serde_json::from_slice(&by_hand.body).unwrap();
        assert_eq!(
            (
                doc["team"].as_str(),
                doc["routedBy"].as_str(),
                by_hand.index.as_str()
            ),
            (Some("payments"), Some("payments"), "kwex-payments")
        );
    }
}

#[test]
fn duplicate_names_are_refused() {
    let spec = FilterSpec::new(engine(), guest("keep_warnings"));
    let e = load_error(engine(), vec![spec.clone(), spec]);
    assert!(matches!(e, LoadError::DuplicateName { .. }), "{e}");
}

/// Not a benchmark (debug build, shared machine): a figure to watch.
#[test]
fn reused_call_cost_of_keep_warnings() {
    let (chain, registry) = single(engine(), "keep_warnings", Policy::DeadLetter);
    let mut worker = chain.worker();
    let (w, n) = (warning(), normal());
    for _ in 0..1000 {
        let _ = worker.apply(w.clone());
    }
    const CALLS: u32 = 50_000;
    let started = Instant::now();
    for i in 0..CALLS {
        let r = if i % 2 == 0 { w.clone() } else { n.clone() };
        let _ = worker.apply(r);
    }
    let per_call = started.elapsed() / CALLS;
    eprintln!(
        "keep_warnings, reused instance, {}-byte documents: {:.2} µs per call (metrics included)",
        w.body.len(),
        per_call.as_secs_f64() * 1e6
    );
    let verdicts = |v| {
        metric(
            &registry,
            "kwex_filter_verdicts_total",
            &[("filter", "keep_warnings.wasm"), ("verdict", v)],
        )
    };
    let half = f64::from(CALLS / 2);
    assert_eq!(
        (verdicts("keep"), verdicts("drop"), verdicts("error")),
        (1000.0 + half, half, 0.0)
    );
    assert_eq!(
        metric(
            &registry,
            "kwex_filter_instance_replacements_total",
            &[("filter", "keep_warnings.wasm")]
        ),
        0.0
    );
}

// ---- the chain inside `kwex replay` (the real binary) ----

/// A directory holding copies of the named guests, in this order.
fn filter_dir(names: &[&str]) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-filter-dir-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();
    for (i, name) in names.iter().enumerate() {
        std::fs::copy(guest(name), dir.join(format!("{i:02}-{name}.wasm"))).unwrap();
    }
    dir
}

fn replay_with_filters(dir: &Path, extra: &[&str]) -> std::process::Output {
    let examples = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/core-v1.json");
    Command::new(env!("CARGO_BIN_EXE_kwex"))
        .args([
            "replay",
            "--log-format",
            "json",
            "--format",
            "bulk",
            // Wall-clock deadline on a shared test machine: generous.
            "--filter-deadline",
            "2s",
            "--filters",
        ])
        .arg(dir)
        .args(extra)
        .arg(examples)
        .env_remove("KWEX_FILTERS")
        .output()
        .unwrap()
}

#[test]
fn replay_runs_documents_through_the_filter_directory() {
    let out = replay_with_filters(&filter_dir(&["keep_warnings"]), &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<serde_json::Value> = stdout
        .lines()
        .skip(1)
        .step_by(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!docs.is_empty());
    assert!(
        docs.iter().all(|d| d["type"] == "Warning"),
        "only Warnings pass the filter"
    );
    let examples = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/events/core-v1.json"),
    )
    .unwrap();
    let list: serde_json::Value = serde_json::from_str(&examples).unwrap();
    let warnings = list["items"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "Warning")
        .count();
    assert_eq!(docs.len(), warnings);
}

#[test]
fn a_filter_that_never_returns_sends_documents_to_the_dead_letter_index_and_kwex_goes_on() {
    // The guest loops forever on documents that mention "hostile".
    let input = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-hostile-{:08x}.ndjson", fastrand::u32(..)));
    let events: Vec<String> = (0..6)
        .map(|i| {
            let message = if i % 2 == 0 { "a hostile message" } else { "a friendly message" };
            serde_json::json!({"kind": "Event", "metadata": {"uid": format!("u{i}"), "resourceVersion": "1"},
                               "message": message, "type": "Warning"})
            .to_string()
        })
        .collect();
    std::fs::write(&input, events.join("\n")).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_kwex"))
        .args([
            "replay",
            "--log-format",
            "json",
            "--format",
            "bulk",
            "--filter-deadline",
            "20ms",
            "--filters",
        ])
        .arg(filter_dir(&["infinite_loop"]))
        .arg(&input)
        .env_remove("KWEX_FILTERS")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12, "every document is accounted for: {stdout}");
    let (mut dead, mut kept) = (0, 0);
    for pair in lines.chunks(2) {
        let index = pair[0]["create"]["_index"].as_str().unwrap();
        if index.starts_with("kwex-dead-letter-") {
            dead += 1;
            assert_eq!(pair[1]["error_type"], "filter_timeout", "{}", pair[1]);
            assert!(
                pair[1]["error_reason"]
                    .as_str()
                    .unwrap()
                    .contains("infinite_loop"),
                "{}",
                pair[1]
            );
            assert!(pair[1]["document"].as_str().unwrap().contains("hostile"));
        } else {
            kept += 1;
            assert_eq!(pair[1]["message"], "a friendly message");
        }
    }
    assert_eq!((dead, kept), (3, 3));
}

#[test]
fn a_filter_that_starts_above_its_watermark_is_refused_with_the_fix() {
    // Rust guests start with ~1.1 MiB of linear memory: above a 1 MiB
    // watermark, so every call would replace the instance.
    let mut spec = FilterSpec::new(engine(), guest("keep_warnings"));
    spec.limits.memory_bytes = 2 << 20;
    spec.limits.memory_watermark = 1 << 20;
    let e = load_error(engine(), vec![spec]);
    assert!(matches!(e, LoadError::Limits { .. }), "{e}");
    let text = e.to_string();
    assert!(text.contains("keep_warnings.wasm"), "{text}");
    assert!(text.contains("above its 1.0 MiB watermark"), "{text}");
    assert!(text.contains("give it more memory"), "{text}");
}
