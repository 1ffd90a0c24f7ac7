//! Field-by-field tests of Event → Document, for both API versions.

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use super::*;
use crate::document::{IdMode, IndexPattern, WatchAction};

fn normalizer() -> Normalizer {
    Normalizer {
        cluster: None,
        index: IndexPattern::parse("kwex-events-%Y.%m.%d").unwrap(),
        id_mode: IdMode::Occurrence,
        max_message_bytes: 1024,
        dedot: false,
    }
}

fn observed() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-25T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

fn run(n: &Normalizer, event: &Value) -> Result<(Record, Value, Vec<Repair>), NormalizeError> {
    let raw = serde_json::to_vec(event).unwrap();
    let out = n.normalize(&raw, WatchAction::Added, observed())?;
    let doc: Value = serde_json::from_slice(&out.record.body).unwrap();
    Ok((out.record, doc, out.repairs))
}

fn doc(event: Value) -> Value {
    run(&normalizer(), &event).unwrap().1
}

fn err(event: Value) -> NormalizeError {
    run(&normalizer(), &event).unwrap_err()
}

fn core_event() -> Value {
    json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {
            "name": "web-1.17a2b3c4d5e6f708",
            "namespace": "shop",
            "uid": "2f0c9a6e-5d2b-4c1e-9c59-0d1f7c3b1a11",
            "resourceVersion": "4711",
            "creationTimestamp": "2026-11-20T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "web"},
            "annotations": {"kubernetes.io/change-cause": "deploy"},
            "managedFields": [{"manager": "kubelet", "operation": "Update"}]
        },
        "involvedObject": {
            "kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "pod-uid",
            "apiVersion": "v1", "resourceVersion": "99", "fieldPath": "spec.containers{app}"
        },
        "reason": "BackOff",
        "message": "Back-off restarting failed container app",
        "source": {"component": "kubelet", "host": "node-7"},
        "firstTimestamp": "2026-11-20T10:00:01Z",
        "lastTimestamp": "2026-11-20T10:09:00Z",
        "count": 5,
        "type": "Warning",
        "eventTime": null,
        "action": "Restarting",
        "reportingComponent": "kubelet",
        "reportingInstance": "node-7",
        "related": {"kind": "Node", "name": "node-7"}
    })
}

fn events_v1_event() -> Value {
    json!({
        "apiVersion": "events.k8s.io/v1",
        "kind": "Event",
        "metadata": {
            "name": "api.17a", "namespace": "shop", "uid": "ev-uid",
            "resourceVersion": "12", "creationTimestamp": "2026-11-21T08:00:00Z"
        },
        "eventTime": "2026-11-21T08:00:00.250000Z",
        "series": {"count": 3, "lastObservedTime": "2026-11-21T08:30:00.500000Z"},
        "reportingController": "default-scheduler",
        "reportingInstance": "scheduler-1",
        "action": "Scheduling",
        "reason": "FailedScheduling",
        "regarding": {"kind": "Pod", "namespace": "shop", "name": "api-0", "uid": "pod-2", "apiVersion": "v1"},
        "related": {"kind": "Node", "name": "node-1"},
        "note": "0/3 nodes are available: 3 Insufficient cpu.",
        "type": "Warning",
        "deprecatedSource": {"component": "default-scheduler"},
        "deprecatedFirstTimestamp": "2026-11-21T08:00:00Z",
        "deprecatedLastTimestamp": "2026-11-21T08:29:00Z",
        "deprecatedCount": 2
    })
}

// ---- core/v1, field by field ----

#[test]
fn core_v1_maps_every_field() {
    let d = doc(core_event());
    assert_eq!(d["@timestamp"], "2026-11-20T10:09:00Z");
    assert_eq!(d["type"], "Warning");
    assert_eq!(d["reason"], "BackOff");
    assert_eq!(d["message"], "Back-off restarting failed container app");
    assert_eq!(d["action"], "Restarting");
    assert_eq!(d["count"], 5);
    assert_eq!(d["firstTimestamp"], "2026-11-20T10:00:01Z");
    assert_eq!(d["lastTimestamp"], "2026-11-20T10:09:00Z");
    assert_eq!(
        d["involvedObject"],
        json!({"kind": "Pod", "namespace": "shop", "name": "web-1", "uid": "pod-uid",
               "apiVersion": "v1", "fieldPath": "spec.containers{app}"})
    );
    assert_eq!(
        d["source"],
        json!({"component": "kubelet", "host": "node-7"})
    );
    assert_eq!(d["reportingController"], "kubelet");
    assert_eq!(d["reportingInstance"], "node-7");
    assert_eq!(d["related"], json!({"kind": "Node", "name": "node-7"}));
    assert_eq!(
        d["metadata"],
        json!({
            "namespace": "shop", "name": "web-1.17a2b3c4d5e6f708",
            "uid": "2f0c9a6e-5d2b-4c1e-9c59-0d1f7c3b1a11", "resourceVersion": "4711",
            "creationTimestamp": "2026-11-20T10:00:00Z",
            "labels": {"app.kubernetes.io/name": "web"},
            "annotations": {"kubernetes.io/change-cause": "deploy"}
        })
    );
    assert_eq!(
        d["kwex"],
        json!({"watchAction": "added", "observedAt": "2026-11-25T12:00:00Z", "apiVersion": "v1"})
    );
    assert!(d.get("cluster").is_none());
}

#[test]
fn fields_the_document_does_not_define_are_not_copied() {
    let d = doc(core_event());
    assert!(d["metadata"].get("managedFields").is_none());
    assert!(d["involvedObject"].get("resourceVersion").is_none());
    assert!(d.get("eventTime").is_none());
}

#[test]
fn id_is_uid_and_resource_version() {
    let (record, _, _) = run(&normalizer(), &core_event()).unwrap();
    assert_eq!(record.id, "2f0c9a6e-5d2b-4c1e-9c59-0d1f7c3b1a11:4711");
}

#[test]
fn latest_id_mode_uses_the_uid_alone() {
    let n = Normalizer {
        id_mode: IdMode::Latest,
        ..normalizer()
    };
    let (record, _, _) = run(&n, &core_event()).unwrap();
    assert_eq!(record.id, "2f0c9a6e-5d2b-4c1e-9c59-0d1f7c3b1a11");
}

#[test]
fn each_update_of_an_event_gets_its_own_id() {
    let mut e = core_event();
    let first = run(&normalizer(), &e).unwrap().0.id;
    e["metadata"]["resourceVersion"] = json!("4712");
    e["count"] = json!(6);
    let second = run(&normalizer(), &e).unwrap().0.id;
    assert_ne!(first, second);
}

#[test]
fn index_comes_from_the_first_seen_time_not_the_last() {
    let mut e = core_event();
    e["firstTimestamp"] = json!("2026-11-19T23:59:59Z");
    e["lastTimestamp"] = json!("2026-11-20T00:10:00Z");
    let (record, _, _) = run(&normalizer(), &e).unwrap();
    assert_eq!(record.index, "kwex-events-2026.11.19");
}

#[test]
fn cluster_name_is_written_when_configured() {
    let n = Normalizer {
        cluster: Some("prod-eu".into()),
        ..normalizer()
    };
    let (_, d, _) = run(&n, &core_event()).unwrap();
    assert_eq!(d["cluster"], "prod-eu");
}

#[test]
fn watch_action_is_recorded() {
    let raw = serde_json::to_vec(&core_event()).unwrap();
    let out = normalizer()
        .normalize(&raw, WatchAction::Modified, observed())
        .unwrap();
    let d: Value = serde_json::from_slice(&out.record.body).unwrap();
    assert_eq!(d["kwex"]["watchAction"], "modified");
}

// ---- events.k8s.io/v1, field by field ----

#[test]
fn events_v1_maps_every_field() {
    let d = doc(events_v1_event());
    assert_eq!(d["@timestamp"], "2026-11-21T08:30:00.500Z");
    assert_eq!(d["message"], "0/3 nodes are available: 3 Insufficient cpu.");
    assert_eq!(d["count"], 3, "series.count wins over deprecatedCount");
    assert_eq!(d["firstTimestamp"], "2026-11-21T08:00:00Z");
    assert_eq!(d["lastTimestamp"], "2026-11-21T08:30:00.500Z");
    assert_eq!(
        d["involvedObject"],
        json!({"kind": "Pod", "namespace": "shop", "name": "api-0", "uid": "pod-2", "apiVersion": "v1"})
    );
    assert_eq!(d["source"], json!({"component": "default-scheduler"}));
    assert_eq!(d["reportingController"], "default-scheduler");
    assert_eq!(d["reportingInstance"], "scheduler-1");
    assert_eq!(d["action"], "Scheduling");
    assert_eq!(d["reason"], "FailedScheduling");
    assert_eq!(d["type"], "Warning");
    assert_eq!(d["related"], json!({"kind": "Node", "name": "node-1"}));
    assert_eq!(d["kwex"]["apiVersion"], "events.k8s.io/v1");
    let (record, _, _) = run(&normalizer(), &events_v1_event()).unwrap();
    assert_eq!(record.id, "ev-uid:12");
    assert_eq!(record.index, "kwex-events-2026.11.21");
}

#[test]
fn events_v1_without_series_uses_deprecated_count_and_timestamps() {
    let mut e = events_v1_event();
    e.as_object_mut().unwrap().remove("series");
    let d = doc(e);
    assert_eq!(d["count"], 2);
    assert_eq!(d["@timestamp"], "2026-11-21T08:29:00Z");
}

#[test]
fn events_v1_without_deprecated_fields_uses_event_time() {
    let e = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"uid": "u", "resourceVersion": "1"},
        "eventTime": "2026-11-21T08:00:00.250000Z", "note": "n", "reason": "Pulled",
        "type": "Normal", "reportingController": "kubelet",
        "deprecatedSource": {}, "deprecatedFirstTimestamp": null,
        "deprecatedLastTimestamp": null, "deprecatedCount": 0
    });
    let d = doc(e);
    assert_eq!(d["@timestamp"], "2026-11-21T08:00:00.250Z");
    assert_eq!(d["firstTimestamp"], "2026-11-21T08:00:00.250Z");
    assert_eq!(d["count"], 1, "a single occurrence counts as 1");
    assert!(d.get("source").is_none(), "an empty source is left out");
}

#[test]
fn api_version_is_inferred_from_field_names_when_absent() {
    let mut e = events_v1_event();
    e.as_object_mut().unwrap().remove("apiVersion");
    assert_eq!(doc(e)["kwex"]["apiVersion"], "events.k8s.io/v1");
    let mut e = core_event();
    e.as_object_mut().unwrap().remove("apiVersion");
    assert_eq!(doc(e)["kwex"]["apiVersion"], "v1");
}

#[test]
fn v1beta1_is_read_like_v1() {
    let mut e = events_v1_event();
    e["apiVersion"] = json!("events.k8s.io/v1beta1");
    assert_eq!(
        doc(e)["message"],
        "0/3 nodes are available: 3 Insufficient cpu."
    );
}

#[test]
fn a_core_event_read_through_the_events_api_keeps_its_data() {
    // The API server serves core/v1 Events through events.k8s.io/v1 with eventTime null.
    let e = json!({
        "apiVersion": "events.k8s.io/v1", "kind": "Event",
        "metadata": {"uid": "u", "resourceVersion": "5", "creationTimestamp": "2026-11-20T10:00:00Z"},
        "eventTime": null, "note": "Started container app", "reason": "Started", "type": "Normal",
        "regarding": {"kind": "Pod", "name": "p"},
        "deprecatedSource": {"component": "kubelet", "host": "n1"},
        "deprecatedFirstTimestamp": "2026-11-20T10:00:00Z",
        "deprecatedLastTimestamp": "2026-11-20T10:00:00Z", "deprecatedCount": 1
    });
    let d = doc(e);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:00Z");
    assert_eq!(d["source"], json!({"component": "kubelet", "host": "n1"}));
}

// ---- timestamp fallbacks (docs/document.md) ----

fn with_times(times: &[(&str, Value)]) -> Value {
    let mut e = json!({"apiVersion": "v1", "kind": "Event", "metadata": {"uid": "u", "resourceVersion": "1"}});
    for (path, value) in times {
        match path.split_once('.') {
            Some((outer, inner)) => {
                if e.get(outer).is_none() {
                    e[outer] = json!({});
                }
                e[outer][inner] = value.clone();
            }
            None => e[*path] = value.clone(),
        }
    }
    doc(e)
}

#[test]
fn timestamp_prefers_series_last_observed_time() {
    let d = with_times(&[
        ("series.lastObservedTime", json!("2026-11-20T10:00:05Z")),
        ("lastTimestamp", json!("2026-11-20T10:00:04Z")),
        ("eventTime", json!("2026-11-20T10:00:03Z")),
        ("firstTimestamp", json!("2026-11-20T10:00:02Z")),
        ("metadata.creationTimestamp", json!("2026-11-20T10:00:01Z")),
    ]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:05Z");
    assert_eq!(d["firstTimestamp"], "2026-11-20T10:00:02Z");
}

#[test]
fn timestamp_falls_back_to_last_timestamp() {
    let d = with_times(&[
        ("lastTimestamp", json!("2026-11-20T10:00:04Z")),
        ("eventTime", json!("2026-11-20T10:00:03Z")),
    ]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:04Z");
}

#[test]
fn timestamp_falls_back_to_event_time() {
    let d = with_times(&[
        ("eventTime", json!("2026-11-20T10:00:03.123456Z")),
        ("firstTimestamp", json!("2026-11-20T10:00:02Z")),
    ]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:03.123456Z");
    assert_eq!(
        d["firstTimestamp"], "2026-11-20T10:00:02Z",
        "first seen prefers firstTimestamp"
    );
}

#[test]
fn timestamp_falls_back_to_first_timestamp() {
    let d = with_times(&[("firstTimestamp", json!("2026-11-20T10:00:02Z"))]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:02Z");
    assert_eq!(d["lastTimestamp"], "2026-11-20T10:00:02Z");
}

#[test]
fn timestamp_falls_back_to_creation_timestamp() {
    let d = with_times(&[("metadata.creationTimestamp", json!("2026-11-20T10:00:01Z"))]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:01Z");
    assert_eq!(d["firstTimestamp"], "2026-11-20T10:00:01Z");
    assert_eq!(d["metadata"]["creationTimestamp"], "2026-11-20T10:00:01Z");
}

#[test]
fn timestamp_falls_back_to_observation_time_when_the_event_has_none() {
    let d = with_times(&[]);
    assert_eq!(d["@timestamp"], "2026-11-25T12:00:00Z");
    assert_eq!(d["firstTimestamp"], "2026-11-25T12:00:00Z");
}

#[test]
fn null_and_empty_timestamps_count_as_absent() {
    let d = with_times(&[
        ("lastTimestamp", Value::Null),
        ("eventTime", json!("")),
        ("firstTimestamp", json!("2026-11-20T10:00:02Z")),
    ]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:02Z");
}

#[test]
fn timestamps_are_written_in_utc() {
    let d = with_times(&[("lastTimestamp", json!("2026-11-20T12:00:00+02:00"))]);
    assert_eq!(d["@timestamp"], "2026-11-20T10:00:00Z");
}

// ---- missing and null fields ----

#[test]
fn a_minimal_event_is_enough() {
    let d = doc(json!({"metadata": {"uid": "u", "resourceVersion": "1"}}));
    assert_eq!(d["count"], 1);
    assert_eq!(d["involvedObject"], json!({}));
    assert_eq!(d["metadata"], json!({"uid": "u", "resourceVersion": "1"}));
    for absent in [
        "type",
        "reason",
        "message",
        "action",
        "source",
        "related",
        "reportingController",
        "cluster",
    ] {
        assert!(d.get(absent).is_none(), "{absent} should be left out");
    }
}

#[test]
fn nulls_everywhere_are_absent_fields() {
    let d = doc(json!({
        "apiVersion": "v1", "kind": "Event",
        "metadata": {"uid": "u", "resourceVersion": "1", "labels": null, "annotations": null, "namespace": null},
        "involvedObject": null, "reason": null, "message": null, "source": null,
        "firstTimestamp": null, "lastTimestamp": null, "count": null, "type": null,
        "eventTime": null, "series": null, "related": null, "reportingComponent": null,
        "reportingInstance": null, "action": null
    }));
    assert_eq!(d["count"], 1);
    assert!(d.get("reason").is_none());
    assert!(d["metadata"].get("labels").is_none());
}

#[test]
fn empty_strings_and_maps_are_left_out() {
    let d = doc(json!({
        "metadata": {"uid": "u", "resourceVersion": "1", "labels": {}, "namespace": ""},
        "reason": "", "reportingComponent": "", "reportingInstance": "",
        "involvedObject": {"kind": "", "name": ""}
    }));
    assert!(d.get("reason").is_none());
    assert!(d.get("reportingController").is_none());
    assert!(d["metadata"].get("labels").is_none());
    assert!(d["metadata"].get("namespace").is_none());
    assert_eq!(d["involvedObject"], json!({}));
}

#[test]
fn zero_or_negative_count_is_one() {
    let mut e = core_event();
    e["count"] = json!(0);
    assert_eq!(doc(e.clone())["count"], 1);
    e["count"] = json!(-3);
    assert_eq!(doc(e)["count"], 1);
}

#[test]
fn dedot_rewrites_dots_in_label_and_annotation_keys() {
    let n = Normalizer {
        dedot: true,
        ..normalizer()
    };
    let (_, d, _) = run(&n, &core_event()).unwrap();
    assert_eq!(d["metadata"]["labels"]["app_kubernetes_io/name"], "web");
    assert_eq!(
        d["metadata"]["annotations"]["kubernetes_io/change-cause"],
        "deploy"
    );
}

#[test]
fn label_keys_with_dots_and_slashes_are_kept_verbatim() {
    let mut e = core_event();
    e["metadata"]["labels"] = json!({"app.kubernetes.io/name": "web", "team": "a", "x.y/z.w": "v"});
    let d = doc(e);
    assert_eq!(d["metadata"]["labels"]["app.kubernetes.io/name"], "web");
    assert_eq!(d["metadata"]["labels"]["x.y/z.w"], "v");
}

// ---- damaged input that is repaired ----

#[test]
fn invalid_utf8_is_replaced_and_marked() {
    let mut raw = br#"{"metadata":{"uid":"u","resourceVersion":"1"},"message":"bad "#.to_vec();
    raw.extend_from_slice(&[0xff, 0xfe]);
    raw.extend_from_slice(br#" bytes"}"#);
    let out = normalizer()
        .normalize(&raw, WatchAction::Added, observed())
        .unwrap();
    let d: Value = serde_json::from_slice(&out.record.body).unwrap();
    assert_eq!(d["message"], "bad \u{fffd}\u{fffd} bytes");
    assert_eq!(d["kwex"]["invalidUtf8Replaced"], true);
    assert_eq!(out.repairs, vec![Repair::InvalidUtf8]);
}

#[test]
fn oversized_message_is_cut_at_a_char_boundary_and_marked() {
    let long = "é".repeat(1000); // 2000 bytes, limit 1024
    let mut e = core_event();
    e["message"] = json!(long);
    let (_, d, repairs) = run(&normalizer(), &e).unwrap();
    let message = d["message"].as_str().unwrap();
    assert_eq!(message.len(), 1024);
    assert!(message.chars().all(|c| c == 'é'));
    assert_eq!(d["kwex"]["messageTruncatedFrom"], 2000);
    assert_eq!(repairs, vec![Repair::MessageTruncated]);
}

#[test]
fn a_message_at_the_limit_is_untouched() {
    let mut e = core_event();
    e["message"] = json!("a".repeat(1024));
    let (_, d, repairs) = run(&normalizer(), &e).unwrap();
    assert_eq!(d["message"].as_str().unwrap().len(), 1024);
    assert!(d["kwex"].get("messageTruncatedFrom").is_none());
    assert!(repairs.is_empty());
}

#[test]
fn escaped_and_unicode_strings_survive() {
    let mut e = core_event();
    e["message"] = json!("line1\nline2 \"quoted\" ☸ 日本語 \u{1F680}");
    assert_eq!(
        doc(e)["message"],
        "line1\nline2 \"quoted\" ☸ 日本語 \u{1F680}"
    );
}

// ---- refused input ----

#[test]
fn syntax_errors_are_refused_with_their_column() {
    let e = normalizer()
        .normalize(b"{\"metadata\": ", WatchAction::Added, observed())
        .unwrap_err();
    assert_eq!(e.kind, NormalizeErrorKind::Syntax);
    let e = normalizer()
        .normalize(b"{\"a\" 1}", WatchAction::Added, observed())
        .unwrap_err();
    assert_eq!(e.kind, NormalizeErrorKind::Syntax);
    assert!(e.detail.contains("column 6"), "{}", e.detail);
}

#[test]
fn non_objects_are_refused() {
    for raw in [&b"[1,2]"[..], b"\"text\"", b"42", b"null"] {
        let e = normalizer()
            .normalize(raw, WatchAction::Added, observed())
            .unwrap_err();
        assert_eq!(
            e.kind,
            NormalizeErrorKind::NotAnObject,
            "{}",
            String::from_utf8_lossy(raw)
        );
    }
}

#[test]
fn other_kinds_are_refused() {
    let mut e = core_event();
    e["kind"] = json!("Pod");
    let e = err(e);
    assert_eq!(e.kind, NormalizeErrorKind::WrongKind);
    assert!(e.detail.contains("\"Pod\""));
}

#[test]
fn unknown_api_versions_are_refused() {
    let mut e = core_event();
    e["apiVersion"] = json!("apps/v1");
    assert_eq!(err(e).kind, NormalizeErrorKind::UnknownApiVersion);
}

#[test]
fn events_without_identity_are_refused() {
    let mut e = core_event();
    e["metadata"].as_object_mut().unwrap().remove("uid");
    let e1 = err(e);
    assert_eq!(e1.kind, NormalizeErrorKind::MissingIdentity);
    assert!(e1.detail.contains("metadata.uid"));
    let mut e = core_event();
    e["metadata"]["resourceVersion"] = json!("");
    let e2 = err(e);
    assert_eq!(e2.kind, NormalizeErrorKind::MissingIdentity);
    assert!(e2.detail.contains("metadata.resourceVersion"));
    assert_eq!(
        err(json!({"kind": "Event"})).kind,
        NormalizeErrorKind::MissingIdentity
    );
}

#[test]
fn wrong_types_are_refused_naming_the_field() {
    let mut e = core_event();
    e["count"] = json!("three");
    let e1 = err(e);
    assert_eq!(e1.kind, NormalizeErrorKind::WrongType);
    assert!(e1.detail.starts_with("field count:"), "{}", e1.detail);
    let mut e = core_event();
    e["involvedObject"] = json!("web-1");
    let e2 = err(e);
    assert!(
        e2.detail.starts_with("field involvedObject:"),
        "{}",
        e2.detail
    );
    let mut e = core_event();
    e["metadata"]["labels"] = json!({"a": 1});
    assert!(err(e).detail.starts_with("field metadata.labels"));
}

#[test]
fn bad_timestamps_are_refused_naming_the_field() {
    let mut e = core_event();
    e["lastTimestamp"] = json!("yesterday");
    let e1 = err(e);
    assert_eq!(e1.kind, NormalizeErrorKind::BadTimestamp);
    assert!(
        e1.detail.starts_with("field lastTimestamp:"),
        "{}",
        e1.detail
    );
    let mut e = events_v1_event();
    e["series"]["lastObservedTime"] = json!("2026-13-01T00:00:00Z");
    assert!(err(e).detail.starts_with("field series.lastObservedTime:"));
}
