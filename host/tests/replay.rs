//! `kwex replay` as a user runs it: the real binary on the example files.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::io::Write;
use std::time::Duration;

use serde_json::Value;
use util::{Kwex, examples, summary_of};

#[test]
fn kubectl_list_dump_yields_one_document_per_event() {
    let input = examples().join("core-v1.json");
    let events: Value = serde_json::from_slice(&std::fs::read(&input).unwrap()).unwrap();
    let expected = events["items"].as_array().unwrap().len();

    let out = Kwex::new().args(["replay"]).arg(&input).run();
    assert!(out.status.success(), "{}", out.stderr_text());
    let docs = out.documents();
    assert_eq!(docs.len(), expected);
    for (doc, event) in docs.iter().zip(events["items"].as_array().unwrap()) {
        assert_eq!(doc["metadata"]["uid"], event["metadata"]["uid"]);
        assert_eq!(
            doc["metadata"]["resourceVersion"],
            event["metadata"]["resourceVersion"]
        );
        assert_eq!(doc["kwex"]["apiVersion"], "v1");
    }
    let summary = summary_of(&out.stderr_text());
    assert_eq!(summary["records"], expected);
    assert_eq!(summary["documents"], expected);
    assert_eq!(summary["invalid"], 0);
}

#[test]
fn events_api_ndjson_yields_one_document_per_line() {
    let input = examples().join("events-k8s-io-v1.ndjson");
    let lines = std::fs::read_to_string(&input)
        .unwrap()
        .lines()
        .filter(|l| !l.trim().is_empty())
        .count();
    let out = Kwex::new().args(["replay"]).arg(&input).run();
    assert!(out.status.success(), "{}", out.stderr_text());
    let docs = out.documents();
    assert_eq!(docs.len(), lines);
    assert!(
        docs.iter()
            .all(|d| d["kwex"]["apiVersion"] == "events.k8s.io/v1")
    );
    assert!(
        docs.iter().all(|d| d["message"].is_string()),
        "note becomes message"
    );
}

#[test]
fn count_updates_of_one_event_become_distinct_documents() {
    let input = examples().join("core-v1.json");
    let out = Kwex::new()
        .args(["replay", "--format", "bulk"])
        .arg(&input)
        .run();
    assert!(out.status.success());
    let text = out.stdout_text();
    let actions: Vec<Value> = text
        .lines()
        .step_by(2)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let ids: Vec<&str> = actions
        .iter()
        .map(|a| a["create"]["_id"].as_str().unwrap())
        .collect();
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "every observation has its own id");
    let uids: std::collections::HashSet<_> =
        ids.iter().map(|id| id.split(':').next().unwrap()).collect();
    assert!(
        uids.len() < ids.len(),
        "the example data has count updates (one uid, several resourceVersions)"
    );
}

#[test]
fn malformed_records_are_reported_by_line_and_skipped() {
    let input = examples().join("malformed.ndjson");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(examples().join("malformed.expected.json")).unwrap())
            .unwrap();
    let valid = expected["valid_lines"].as_array().unwrap().len();
    let invalid: Vec<u64> = expected["invalid_lines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["line"].as_u64().unwrap())
        .collect();

    let out = Kwex::new().args(["replay"]).arg(&input).run();
    assert!(
        out.status.success(),
        "skip is the default: {}",
        out.stderr_text()
    );
    assert_eq!(out.documents().len(), valid);

    let logs = out.log_lines();
    let skipped: Vec<u64> = logs
        .iter()
        .filter(|l| {
            l["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("Skipped an invalid record"))
        })
        .map(|l| {
            l["origin"]
                .as_str()
                .unwrap()
                .trim_start_matches("line ")
                .parse()
                .unwrap()
        })
        .collect();
    assert_eq!(
        skipped, invalid,
        "each invalid line is reported once, by its number"
    );
    let summary = summary_of(&out.stderr_text());
    assert_eq!(summary["invalid"], invalid.len());
    assert_eq!(summary["documents"], valid);
}

#[test]
fn on_invalid_fail_stops_at_the_first_bad_record_and_exits_non_zero() {
    let input = examples().join("malformed.ndjson");
    let expected: Value =
        serde_json::from_slice(&std::fs::read(examples().join("malformed.expected.json")).unwrap())
            .unwrap();
    let first_bad = expected["invalid_lines"][0]["line"].as_u64().unwrap();
    let valid_before = expected["valid_lines"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l.as_u64().unwrap() < first_bad)
        .count();

    let out = Kwex::new()
        .args(["replay", "--on-invalid", "fail"])
        .arg(&input)
        .run();
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        out.documents().len(),
        valid_before,
        "what came before the bad record is delivered"
    );
    let stderr = out.stderr_text();
    assert!(
        stderr.contains(&format!("kwex: invalid record at line {first_bad}:")),
        "{stderr}"
    );
}

#[test]
fn invalid_utf8_record_is_kept_and_marked() {
    let out = Kwex::new()
        .args(["replay"])
        .arg(examples().join("malformed.ndjson"))
        .run();
    assert!(
        out.documents()
            .iter()
            .any(|d| d["kwex"]["invalidUtf8Replaced"] == true)
    );
}

#[test]
fn stdin_is_read_with_a_dash() {
    let (input, records) = util::ndjson_example("events-k8s-io-v1.ndjson");
    let lines = records.len();
    let out = Kwex::new().args(["replay", "-"]).stdin(input).run();
    assert!(out.status.success(), "{}", out.stderr_text());
    assert_eq!(out.documents().len(), lines);
}

#[test]
fn bulk_format_pairs_an_action_with_each_document() {
    let out = Kwex::new()
        .args([
            "replay",
            "--format",
            "bulk",
            "--index",
            "events-%Y",
            "--id-mode",
            "latest",
        ])
        .arg(examples().join("events-k8s-io-v1.ndjson"))
        .run();
    assert!(out.status.success());
    let lines: Vec<Value> = out
        .stdout_text()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len() % 2, 0);
    for pair in lines.chunks(2) {
        let action = &pair[0]["index"];
        assert!(action["_index"].as_str().unwrap().starts_with("events-20"));
        assert_eq!(
            action["_id"], pair[1]["metadata"]["uid"],
            "latest mode keys by uid"
        );
    }
}

#[test]
fn a_broken_json_document_names_the_line_and_fails() {
    let doc = b"{\n  \"kind\": \"List\",\n  \"items\": [\n    {\"metadata\": {\"uid\": \"a\", \"resourceVersion\": \"1\"}},\n    {\"metadata\": \n  ]\n}\n";
    let out = Kwex::new().args(["replay", "-"]).stdin(doc.to_vec()).run();
    assert_eq!(out.status.code(), Some(1));
    let stderr = out.stderr_text();
    assert!(
        stderr.contains("stdin is not valid JSON at line 6"),
        "{stderr}"
    );
    assert_eq!(
        out.documents().len(),
        1,
        "the item before the damage is delivered"
    );
}

#[test]
fn missing_file_is_a_clear_error() {
    let out = Kwex::new()
        .args(["replay", "/nonexistent/events.json"])
        .run();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        out.stderr_text()
            .contains("cannot open /nonexistent/events.json"),
        "{}",
        out.stderr_text()
    );
}

#[test]
fn bad_flags_are_refused_before_anything_starts() {
    let out = Kwex::new()
        .args(["replay", "--max-message-bytes", "5", "/nonexistent"])
        .run();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        out.stderr_text()
            .contains("--max-message-bytes: 5 is too small"),
        "{}",
        out.stderr_text()
    );
    let out = Kwex::new().args(["check", "--max-concurrency", "0"]).run();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stderr_text().contains("--max-concurrency"));
}

#[test]
fn flags_are_read_from_the_environment() {
    let out = Kwex::new()
        .env("KWEX_CLUSTER_NAME", "from-env")
        .args(["replay"])
        .arg(examples().join("events-k8s-io-v1.ndjson"))
        .run();
    assert!(out.documents().iter().all(|d| d["cluster"] == "from-env"));
    let out = Kwex::new()
        .env("KWEX_FLUSH_DELAY", "0s")
        .args(["check"])
        .run();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn sigterm_drains_what_was_read_and_exits() {
    let mut child = Kwex::new().args(["replay", "-"]).spawn();
    let (_, records) = util::ndjson_example("events-k8s-io-v1.ndjson");
    let first_ten = &records[..10];
    {
        let stdin = child.stdin();
        for line in first_ten {
            stdin.write_all(line).unwrap();
            stdin.write_all(b"\n").unwrap();
        }
        stdin.flush().unwrap();
    }
    // Wait until all ten came out, then stop kwex while its input is still open.
    let docs = child.read_documents(10, Duration::from_secs(20));
    assert_eq!(docs.len(), 10);
    child.signal("TERM");
    let out = child.wait(Duration::from_secs(20));
    assert_eq!(out.status.code(), Some(130), "{}", out.stderr_text());
    let summary = summary_of(&out.stderr_text());
    assert_eq!(summary["records"], 10);
    assert_eq!(summary["documents"], 10, "nothing read is lost");
}
