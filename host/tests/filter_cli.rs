//! `kwex filter test | bench | inspect`, and `--filters` given a pipeline
//! file, through the real binary with real guests of both ABIs.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use util::guests::guest;
use util::{Kwex, examples};

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("filter-cli-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn lines(text: &str) -> Vec<Value> {
    text.lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

// Every run here gives filters a 2 s deadline: the default 5 ms is wall-clock
// time, and these tests run in parallel on two shared cores, where an honest
// call descheduled for a few ms would time out now and then.

/// `kwex filter test` of the test guest `name` over the example Events, with
/// a 2 s deadline.
fn filter_test(name: &str) -> Kwex {
    Kwex::new()
        .args(["filter", "test", "--filter-deadline", "2s"])
        .arg(guest(name))
        .arg(events())
}

fn events() -> PathBuf {
    examples().join("core-v1.json")
}

#[test]
fn filter_test_prints_one_line_per_document_for_both_abis_alike() {
    let core = filter_test("keep_warnings").run();
    assert!(core.status.success(), "{}", core.stderr_text());
    let component = filter_test("component").run();
    assert!(component.status.success(), "{}", component.stderr_text());
    let (core, component) = (lines(&core.stdout_text()), lines(&component.stdout_text()));
    assert_eq!(core.len(), 160);
    // The core guest and the component keep the same documents.
    assert_eq!(core, component);
    let kept = core.iter().filter(|l| l["verdict"] == "keep").count();
    assert_eq!(kept, 65);
    assert_eq!(core[0]["input"], 1);
    assert!(core[0]["id"].as_str().unwrap().contains(':'));
}

#[test]
fn filter_test_compares_with_a_golden_file() {
    let route =
        || filter_test("route").args(["--config", r#"{"index": "kwex-routed", "tag": "BackOff"}"#]);
    let dir = scratch("golden");
    let first = route().run();
    assert!(first.status.success(), "{}", first.stderr_text());
    let golden = dir.join("expected.ndjson");
    std::fs::write(&golden, first.stdout_text()).unwrap();
    let routed = lines(&first.stdout_text())
        .into_iter()
        .filter(|l| l["verdict"] == "route")
        .count();
    assert!(routed > 0, "{}", first.stdout_text());

    let again = route().arg("--expect").arg(&golden).run();
    assert!(again.status.success(), "{}", again.stderr_text());
    assert!(
        again
            .stderr_text()
            .contains("all 160 lines match the golden file")
    );

    // A golden line that says otherwise: exit 1, the line shown both ways.
    let mut edited: Vec<Value> = lines(&first.stdout_text());
    edited[2] = json!({"input": 3, "verdict": "route", "index": "somewhere-else"});
    let text: String = edited.iter().map(|l| format!("{l}\n")).collect();
    std::fs::write(&golden, text).unwrap();
    let wrong = route().arg("--expect").arg(&golden).run();
    assert_eq!(wrong.status.code(), Some(1));
    let err = wrong.stderr_text();
    assert!(err.contains("line 3 differs"), "{err}");
    assert!(err.contains("somewhere-else"), "{err}");
    assert!(err.contains("1 lines differ from the golden file"), "{err}");
}

#[test]
fn a_config_that_init_rejects_is_a_clear_error() {
    let out = filter_test("component")
        .args(["--config", r#"{"reject": true}"#])
        .run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("component.wasm failed to start: rejected its config in init"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn conformance_passes_for_an_honest_filter_and_fails_for_one_that_cannot_finish() {
    let ok = filter_test("keep_warnings").arg("--conformance").run();
    assert!(ok.status.success(), "{}", ok.stderr_text());
    assert!(
        ok.stderr_text()
            .contains("all 10 standard documents survived")
    );

    // Ten units of fuel: no call can finish.
    let starved = Kwex::new()
        .args(["filter", "test", "--conformance", "--filter-fuel", "10"])
        .arg(guest("keep_warnings"))
        .arg(events())
        .run();
    assert_eq!(starved.status.code(), Some(1));
    let err = starved.stderr_text();
    assert!(
        err.contains("conformance: 10 standard documents failed"),
        "{err}"
    );
    assert!(err.contains("ran out of its 10 units of fuel"), "{err}");
    let first = &lines(&starved.stdout_text())[0];
    assert_eq!(first["verdict"], "failed");
    assert_eq!(first["kind"], "out_of_fuel");
}

#[test]
fn inspect_names_the_abi_and_what_the_sandbox_refuses() {
    let component = Kwex::new()
        .args(["filter", "inspect"])
        .arg(guest("component"))
        .run();
    assert!(component.status.success(), "{}", component.stderr_text());
    let text = component.stdout_text();
    assert!(text.contains("component, "), "{text}");
    assert!(text.contains("wasi:cli/stdout@"), "{text}");
    assert!(
        text.contains("loads: yes, component, world kwex:filter/filter@1.0.0"),
        "{text}"
    );

    let core = Kwex::new()
        .args(["filter", "inspect"])
        .arg(guest("keep_warnings"))
        .run();
    assert!(
        core.stdout_text()
            .contains("loads: yes, core module ABI v1")
    );

    let http = Kwex::new()
        .args(["filter", "inspect"])
        .arg(guest("component_http"))
        .run();
    assert_eq!(http.status.code(), Some(1));
    assert!(
        http.stdout_text()
            .contains("loads: no: filter component_http.wasm is refused: it imports `wasi:http/outgoing-handler@0.3.0`"),
        "{}",
        http.stdout_text()
    );
}

#[test]
fn bench_reports_calls_per_second_and_microseconds_per_call() {
    let out = Kwex::new()
        // A long deadline: a descheduled call on a busy test machine must
        // not count as a failure here.
        .args([
            "filter",
            "bench",
            "--duration",
            "200ms",
            "--filter-deadline",
            "2s",
        ])
        .arg(guest("keep_warnings"))
        .arg(events())
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    let text = out.stdout_text();
    assert!(text.starts_with("keep_warnings.wasm: "), "{text}");
    for needle in ["calls/s", "µs/call", "p50", "p99", "0 failed calls"] {
        assert!(text.contains(needle), "{text:?} lacks {needle}");
    }
}

#[test]
fn compiled_filters_are_cached_on_disk() {
    let cache = scratch("cache");
    let out = Kwex::new()
        .args(["filter", "inspect", "--filter-cache-dir"])
        .arg(&cache)
        .arg(guest("component"))
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    // wasmtime writes its cache entries from a background thread: wait.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let count = || {
        walk(&cache)
            .iter()
            .filter(|p| std::fs::metadata(p).map(|m| m.len() > 0).unwrap_or(false))
            .count()
    };
    while count() == 0 && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(count() > 0, "nothing cached in {}", cache.display());
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                out.extend(walk(&p));
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[test]
fn replay_runs_a_pipeline_file_with_per_filter_config() {
    let dir = scratch("pipeline");
    std::fs::copy(guest("keep_warnings"), dir.join("keep.wasm")).unwrap();
    std::fs::copy(guest("component"), dir.join("comp.wasm")).unwrap();
    std::fs::write(
        dir.join("pipeline.yaml"),
        "filters:\n  - path: keep.wasm\n  - name: router\n    path: comp.wasm\n    config:\n      index: kwex-from-yaml\n    policy: drop\n",
    )
    .unwrap();
    // A Warning with `route-me` in its message: kept by the first filter,
    // routed by the second with the index from the pipeline file.
    let event = json!({
        "apiVersion": "v1", "kind": "Event", "type": "Warning", "reason": "BackOff",
        "message": "route-me please",
        "metadata": {"name": "e1", "namespace": "default", "uid": "u1", "resourceVersion": "7"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "lastTimestamp": "2026-11-25T10:00:00Z"
    });
    let normal = json!({
        "apiVersion": "v1", "kind": "Event", "type": "Normal", "reason": "Pulled",
        "message": "route-me too",
        "metadata": {"name": "e2", "namespace": "default", "uid": "u2", "resourceVersion": "8"},
        "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"},
        "lastTimestamp": "2026-11-25T10:00:00Z"
    });
    let out = Kwex::new()
        .args([
            "replay",
            "-",
            "--format",
            "bulk",
            "--filter-deadline",
            "2s",
            "--filters",
        ])
        .arg(&dir)
        .stdin(format!("{event}\n{normal}\n").into_bytes())
        .run();
    assert!(out.status.success(), "{}", out.stderr_text());
    let text = out.stdout_text();
    let actions: Vec<Value> = text
        .lines()
        .step_by(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(actions.len(), 1, "{text}");
    assert_eq!(actions[0]["create"]["_index"], "kwex-from-yaml");
    assert_eq!(actions[0]["create"]["_id"], "u1:7");
}

#[test]
fn a_mistake_in_the_pipeline_file_stops_kwex_with_its_place() {
    let dir = scratch("pipeline-bad");
    std::fs::write(
        dir.join("pipeline.yaml"),
        "filters:\n  - path: a.wasm\n    polcy: drop\n",
    )
    .unwrap();
    let out = Kwex::new()
        .args(["replay", "-", "--filters"])
        .arg(&dir)
        .stdin(Vec::new())
        .run();
    assert_eq!(out.status.code(), Some(1));
    let err = out.stderr_text();
    assert!(err.contains("pipeline.yaml"), "{err}");
    assert!(err.contains("filters[0]: unknown field `polcy`"), "{err}");
}
