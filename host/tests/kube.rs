//! `kwex run` against a real kube-apiserver + etcd (started by `cargo xtask test`).
//!
//! Each test works in namespaces of its own, so the tests can share one API
//! server and run in parallel. They are `#[ignore]`d for a plain `cargo test`
//! (no server there) and run by `cargo xtask test` with `--include-ignored`;
//! without the server they fail, they never pass vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::Value;
use util::Kwex;
use util::kube::{cluster, create_event, create_labelled_event, set_count};

const DEADLINE: Duration = Duration::from_secs(30);

fn kwex_run(kubeconfig: &std::path::Path, extra: &[&str]) -> util::Running {
    Kwex::new()
        .args([
            "run",
            "--sink",
            "stdout",
            "--spool",
            "memory",
            "--metrics-address",
            "127.0.0.1:0",
            "--kubeconfig",
        ])
        .arg(kubeconfig)
        .args(extra)
        .spawn()
}

fn ids(docs: &[Value]) -> BTreeSet<String> {
    docs.iter()
        .map(|d| {
            format!(
                "{}:{}",
                d["metadata"]["uid"].as_str().unwrap(),
                d["metadata"]["resourceVersion"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn events_in_several_namespaces_arrive_in_both_api_versions() {
    let cluster = cluster();
    let client = cluster.client().await;
    for api in ["v1", "events.k8s.io/v1"] {
        let (a, b) = (
            cluster.namespace(&client, "both-a").await,
            cluster.namespace(&client, "both-b").await,
        );
        create_event(&client, &a, "e1", "Scheduled", "Normal").await;
        create_event(&client, &b, "e2", "BackOff", "Warning").await;
        let namespaces = format!("{a},{b}");
        let mut kwex = kwex_run(
            &cluster.kubeconfig,
            &["--namespace", &namespaces, "--events-api", api],
        );
        assert_eq!(
            kwex.read_documents(2, DEADLINE).len(),
            2,
            "{api}: the initial list"
        );
        // An Event created after the initial list arrives through the watch.
        let late = format!("late-{}", api.replace(['.', '/'], "-"));
        create_event(&client, &a, &late, "Pulled", "Normal").await;
        assert_eq!(
            kwex.read_documents(3, DEADLINE).len(),
            3,
            "{api}: the watch"
        );
        kwex.signal("TERM");
        let out = kwex.wait(DEADLINE);
        assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
        let docs = out.documents();
        assert_eq!(docs.len(), 3, "{api}: {docs:?}");
        let reasons: BTreeSet<&str> = docs.iter().map(|d| d["reason"].as_str().unwrap()).collect();
        assert_eq!(
            reasons,
            BTreeSet::from(["Scheduled", "BackOff", "Pulled"]),
            "{api}"
        );
        assert!(
            docs.iter().all(|d| d["kwex"]["apiVersion"] == api),
            "{api}: {docs:?}"
        );
        let messages: BTreeSet<&str> = docs
            .iter()
            .map(|d| d["message"].as_str().unwrap())
            .collect();
        assert!(
            messages.contains("test event e1"),
            "{api}: message (or note) is mapped"
        );
        let late_doc = docs.iter().find(|d| d["reason"] == "Pulled").unwrap();
        assert_eq!(late_doc["kwex"]["watchAction"], "added");
        assert_eq!(late_doc["involvedObject"]["name"], format!("pod-of-{late}"));
    }
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn an_event_updated_three_times_yields_three_documents() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace(&client, "count").await;
    let mut kwex = kwex_run(&cluster.kubeconfig, &["--namespace", &ns]);
    // Wait until kwex watches (an Event in another namespace would not show).
    create_event(&client, &ns, "probe", "Probe", "Normal").await;
    assert_eq!(kwex.read_documents(1, DEADLINE).len(), 1);

    create_event(&client, &ns, "crashy", "BackOff", "Warning").await;
    set_count(&client, &ns, "crashy", 2).await;
    set_count(&client, &ns, "crashy", 3).await;
    let docs = kwex.read_documents(4, DEADLINE);
    kwex.signal("TERM");
    kwex.wait(DEADLINE);
    let crashy: Vec<&Value> = docs.iter().filter(|d| d["reason"] == "BackOff").collect();
    assert_eq!(crashy.len(), 3, "{docs:?}");
    let counts: Vec<i64> = crashy
        .iter()
        .map(|d| d["count"].as_i64().unwrap())
        .collect();
    assert_eq!(counts, [1, 2, 3]);
    let actions: Vec<&str> = crashy
        .iter()
        .map(|d| d["kwex"]["watchAction"].as_str().unwrap())
        .collect();
    assert_eq!(actions, ["added", "modified", "modified"]);
    let distinct: BTreeSet<_> = ids(&crashy.into_iter().cloned().collect::<Vec<_>>());
    assert_eq!(distinct.len(), 3, "each update has its own id");
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn selectors_and_namespaces_restrict_what_is_seen() {
    let cluster = cluster();
    let client = cluster.client().await;
    let (watched, other) = (
        cluster.namespace(&client, "sel-in").await,
        cluster.namespace(&client, "sel-out").await,
    );
    create_labelled_event(
        &client,
        &watched,
        "w1",
        "BackOff",
        "Warning",
        &[("team", "a")],
    )
    .await;
    create_labelled_event(
        &client,
        &watched,
        "n1",
        "Pulled",
        "Normal",
        &[("team", "a")],
    )
    .await;
    create_labelled_event(
        &client,
        &watched,
        "w2",
        "BackOff",
        "Warning",
        &[("team", "b")],
    )
    .await;
    create_labelled_event(
        &client,
        &other,
        "w3",
        "BackOff",
        "Warning",
        &[("team", "a")],
    )
    .await;

    let mut kwex = kwex_run(
        &cluster.kubeconfig,
        &[
            "--namespace",
            &watched,
            "--field-selector",
            "type=Warning",
            "--label-selector",
            "team=a",
        ],
    );
    kwex.read_documents(1, DEADLINE);
    // A matching Event created now arrives after everything the list returned:
    // once it is out, anything else that matched would be out too.
    create_labelled_event(
        &client,
        &watched,
        "w4",
        "Failed",
        "Warning",
        &[("team", "a")],
    )
    .await;
    let docs = kwex.read_documents(2, DEADLINE);
    assert_eq!(
        docs.last().map(|d| d["metadata"]["name"].clone()),
        Some("w4".into()),
        "{docs:?}"
    );
    kwex.signal("TERM");
    let out = kwex.wait(DEADLINE);
    let docs = out.documents();
    let names: BTreeSet<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, BTreeSet::from(["w1", "w4"]), "{docs:?}");
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn a_restart_relists_the_same_ids() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace(&client, "restart").await;
    for i in 0..5 {
        create_event(&client, &ns, &format!("e{i}"), "Pulled", "Normal").await;
    }
    set_count(&client, &ns, "e0", 2).await;
    let mut first = kwex_run(&cluster.kubeconfig, &["--namespace", &ns]);
    first.read_documents(5, DEADLINE);
    first.signal("TERM");
    let first = first.wait(DEADLINE).documents();
    let mut second = kwex_run(&cluster.kubeconfig, &["--namespace", &ns]);
    second.read_documents(5, DEADLINE);
    second.signal("TERM");
    let second = second.wait(DEADLINE).documents();
    assert_eq!(first.len(), 5);
    assert_eq!(
        ids(&first),
        ids(&second),
        "a re-list produces no new ids for old events"
    );
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn a_user_without_rbac_gets_an_error_naming_the_permission() {
    let cluster = cluster();
    let kwex = kwex_run(&cluster.limited_kubeconfig, &[]);
    let out = kwex.wait(DEADLINE);
    assert_eq!(out.status.code(), Some(1));
    let error = stopped_because(&out);
    assert!(error.contains("403 Forbidden"), "{error}");
    assert!(
        error.contains("User \"kwex-limited\" cannot list resource \"events\""),
        "{error}"
    );
    assert!(
        error.contains("kwex needs get, list and watch on \"events\""),
        "{error}"
    );
    assert_eq!(
        error.matches("403 Forbidden").count(),
        1,
        "the cause is said once: {error}"
    );
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn bad_kubeconfigs_fail_clearly() {
    let cluster = cluster();
    let original = std::fs::read_to_string(&cluster.kubeconfig).unwrap();
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-bad-kubeconfig-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();

    let nowhere = dir.join("nowhere");
    let after = original.split("https://127.0.0.1:").nth(1).unwrap();
    let port: String = after.chars().take_while(char::is_ascii_digit).collect();
    std::fs::write(
        &nowhere,
        original.replace(&format!("127.0.0.1:{port}"), "127.0.0.1:9"),
    )
    .unwrap();
    let bad_token = dir.join("bad-token");
    std::fs::write(
        &bad_token,
        original.replace("kwex-admin-token", "not-a-token"),
    )
    .unwrap();
    let bad_ca = dir.join("bad-ca");
    let ca_line = original
        .lines()
        .find(|l| l.contains("certificate-authority-data"))
        .unwrap();
    let other_ca = ca_line.split(": ").next().unwrap().to_owned() + ": " + &base64_of_other_ca();
    std::fs::write(&bad_ca, original.replace(ca_line, &other_ca)).unwrap();

    for (config, expected) in [
        (&nowhere, "cannot list Events from the API server"),
        (&bad_token, "401 Unauthorized"),
        (&bad_ca, "cannot list Events from the API server"),
    ] {
        let out = kwex_run(config, &[]).wait(DEADLINE);
        assert_eq!(
            out.status.code(),
            Some(1),
            "{config:?}: {}",
            out.stderr_text()
        );
        let error = stopped_because(&out);
        assert!(error.contains(expected), "{config:?}: {error}");
    }
    let out = kwex_run(&dir.join("missing"), &[]).wait(DEADLINE);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stopped_because(&out).contains("cannot read the kubeconfig"),
        "{}",
        out.stderr_text()
    );
}

/// The error of the "kwex stopped." log line (and no panic anywhere).
fn stopped_because(out: &util::Output) -> String {
    let stderr = out.stderr_text();
    assert!(!stderr.contains("panicked"), "{stderr}");
    out.log_lines()
        .into_iter()
        .find(|l| l["message"] == "kwex stopped.")
        .and_then(|l| l["error"].as_str().map(str::to_owned))
        .unwrap_or_else(|| panic!("no \"kwex stopped.\" line in:\n{stderr}"))
}

/// A CA certificate that did not sign the test server's certificate.
fn base64_of_other_ca() -> String {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-other-ca-{:08x}", fastrand::u32(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let status = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=other-ca",
        ])
        .arg("-keyout")
        .arg(dir.join("ca.key"))
        .arg("-out")
        .arg(dir.join("ca.crt"))
        .stderr(std::process::Stdio::null())
        .status()
        .expect("openssl");
    assert!(status.success());
    let pem = std::fs::read(dir.join("ca.crt")).unwrap();
    use std::io::Write;
    let mut child = std::process::Command::new("base64")
        .arg("-w0")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&pem).unwrap();
    String::from_utf8(child.wait_with_output().unwrap().stdout).unwrap()
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn the_rbac_in_deploy_is_enough_and_nothing_more() {
    use k8s_openapi::api::core::v1::Pod;
    use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding, Subject};
    use kube::Api;
    use kube::api::{ListParams, PostParams};

    let cluster = cluster();
    let admin = cluster.client().await;
    let ns = cluster.namespace(&admin, "rbac").await;
    create_event(&admin, &ns, "seen-by-limited", "Pulled", "Normal").await;
    let user = || Subject {
        kind: "User".into(),
        name: "kwex-limited".into(),
        api_group: Some("rbac.authorization.k8s.io".into()),
        ..Default::default()
    };
    let docs = read_yaml_documents("../deploy/kustomize/base/rbac.yaml");

    // The leader-election Role alone is missing: kwex says which permission.
    let lease_ns = cluster.namespace(&admin, "rbac-lease").await;
    let role: ClusterRole = serde_json::from_value(docs[0].clone()).unwrap();
    Api::<ClusterRole>::all(admin.clone())
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let mut binding: ClusterRoleBinding = serde_json::from_value(docs[1].clone()).unwrap();
    binding.subjects = Some(vec![user()]);
    Api::<ClusterRoleBinding>::all(admin.clone())
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();

    // With the ClusterRole of deploy/ bound, listing and watching works.
    let mut kwex = kwex_run(&cluster.limited_kubeconfig, &["--namespace", &ns]);
    let got = kwex.read_documents(1, DEADLINE);
    kwex.signal("TERM");
    let out = kwex.wait(DEADLINE);
    assert_eq!(got.len(), 1, "{}", out.stderr_text());
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());

    // … and nothing else.
    let limited = {
        let file = kube::config::Kubeconfig::read_from(&cluster.limited_kubeconfig).unwrap();
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .unwrap();
        kube::Client::try_from(config).unwrap()
    };
    let pods = Api::<Pod>::namespaced(limited.clone(), &ns)
        .list(&ListParams::default())
        .await;
    assert!(
        matches!(pods, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{pods:?}"
    );
    let write = util::kube::try_create_event(&limited, &ns, "not-allowed").await;
    assert!(
        matches!(write, Err(kube::Error::Api(ref s)) if s.code == 403),
        "{write:?}"
    );

    // Leader election needs the Lease Role too; without it, kwex names the permission.
    let elect = [
        "--leader-elect",
        "--leader-elect-namespace",
        &lease_ns,
        "--leader-elect-identity",
        "limited-1",
    ];
    let out = kwex_run(&cluster.limited_kubeconfig, &elect).wait(DEADLINE);
    assert_eq!(out.status.code(), Some(1));
    let error = stopped_because(&out);
    assert!(
        error.contains("needs get, create and update on \"leases\""),
        "{error}"
    );

    let lease_docs = read_yaml_documents("../deploy/kustomize/base/leader-election-rbac.yaml");
    let mut role: Role = serde_json::from_value(lease_docs[0].clone()).unwrap();
    role.metadata.namespace = Some(lease_ns.clone());
    Api::<Role>::namespaced(admin.clone(), &lease_ns)
        .create(&PostParams::default(), &role)
        .await
        .unwrap();
    let mut binding: RoleBinding = serde_json::from_value(lease_docs[1].clone()).unwrap();
    binding.metadata.namespace = Some(lease_ns.clone());
    binding.subjects = Some(vec![user()]);
    Api::<RoleBinding>::namespaced(admin.clone(), &lease_ns)
        .create(&PostParams::default(), &binding)
        .await
        .unwrap();
    let mut kwex = kwex_run(
        &cluster.limited_kubeconfig,
        &[&["--namespace", ns.as_str()][..], &elect].concat(),
    );
    assert!(
        kwex.wait_for_log("Became the leader; exporting.", DEADLINE)
            .is_some()
    );
    assert_eq!(kwex.read_documents(1, DEADLINE).len(), 1);
    kwex.signal("TERM");
    assert_eq!(kwex.wait(DEADLINE).status.code(), Some(0));
}

fn read_yaml_documents(relative: &str) -> Vec<Value> {
    use serde::Deserialize;
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(relative);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap())
        .collect()
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn with_leader_election_one_replica_exports_and_the_other_takes_over() {
    let cluster = cluster();
    let client = cluster.client().await;
    let ns = cluster.namespace(&client, "leader").await;
    let elect = |id: &'static str| {
        vec![
            "--namespace".to_owned(),
            ns.clone(),
            "--leader-elect".into(),
            "--leader-elect-namespace".into(),
            ns.clone(),
            "--leader-elect-identity".into(),
            id.into(),
            "--leader-elect-lease-duration".into(),
            "3s".into(),
            "--leader-elect-renew-deadline".into(),
            "2s".into(),
            "--leader-elect-retry-period".into(),
            "500ms".into(),
        ]
    };
    let args_a = elect("replica-a");
    let args_b = elect("replica-b");
    let mut a = kwex_run(
        &cluster.kubeconfig,
        &args_a.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        a.wait_for_log("Became the leader; exporting.", DEADLINE)
            .is_some()
    );
    let mut b = kwex_run(
        &cluster.kubeconfig,
        &args_b.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert!(
        b.wait_for_log("Another replica is the leader; standing by.", DEADLINE)
            .is_some()
    );

    create_event(&client, &ns, "first", "Pulled", "Normal").await;
    assert_eq!(a.read_documents(1, DEADLINE).len(), 1, "the leader exports");
    assert_eq!(b.documents_now(), 0, "the standby exports nothing");

    // The leader dies without releasing its Lease; the standby takes over once it expires.
    a.signal("KILL");
    a.wait(DEADLINE);
    assert!(
        b.wait_for_log("Became the leader; exporting.", DEADLINE)
            .is_some()
    );
    create_event(&client, &ns, "second", "Pulled", "Normal").await;
    let docs = b.read_documents(2, DEADLINE);
    let names: BTreeSet<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        BTreeSet::from(["first", "second"]),
        "the new leader re-lists, then watches"
    );
    b.signal("TERM");
    assert_eq!(b.wait(DEADLINE).status.code(), Some(0));
}
