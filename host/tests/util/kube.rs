//! The real kube-apiserver started by `scripts/testenv/kube-apiserver.sh`
//! (through `cargo xtask test`), and helpers to create Events in it.

use std::path::PathBuf;

use k8s_openapi::api::core::v1::{Event, Namespace, ObjectReference};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::Api;
use kube::api::{Patch, PatchParams, PostParams};

/// Where the test API server is.
pub struct TestCluster {
    /// Admin kubeconfig.
    pub kubeconfig: PathBuf,
    /// kubeconfig of a user with no permissions at all (user `kwex-limited`).
    pub limited_kubeconfig: PathBuf,
    /// The state dir of the script (for restart-apiserver).
    pub dir: PathBuf,
}

/// The test cluster, from the environment `cargo xtask test` sets.
///
/// Panics (fails the test) when it is absent: a test of the Kubernetes
/// source that passes without a server would prove nothing.
pub fn cluster() -> TestCluster {
    let var = |name: &str| {
        std::env::var(name).unwrap_or_else(|_| {
            panic!("{name} is not set: these tests need the real kube-apiserver; run them with `cargo xtask test`")
        })
    };
    TestCluster {
        kubeconfig: var("KWEX_TEST_KUBECONFIG").into(),
        limited_kubeconfig: var("KWEX_TEST_KUBECONFIG_LIMITED").into(),
        dir: var("KWEX_TEST_KAPI_DIR").into(),
    }
}

impl TestCluster {
    /// An admin client.
    pub async fn client(&self) -> kube::Client {
        let file = kube::config::Kubeconfig::read_from(&self.kubeconfig).expect("kubeconfig");
        let config = kube::Config::from_custom_kubeconfig(file, &Default::default())
            .await
            .expect("config");
        kube::Client::try_from(config).expect("client")
    }

    /// A fresh namespace with a unique name.
    pub async fn namespace(&self, client: &kube::Client, prefix: &str) -> String {
        let name = format!("{prefix}-{:08x}", fastrand::u32(..));
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create namespace");
        name
    }
}

/// Creates a core/v1 Event; returns it as the server stored it.
pub async fn create_event(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
    type_: &str,
) -> Event {
    create_labelled_event(client, ns, name, reason, type_, &[]).await
}

/// Creates a core/v1 Event with labels.
pub async fn create_labelled_event(
    client: &kube::Client,
    ns: &str,
    name: &str,
    reason: &str,
    type_: &str,
    labels: &[(&str, &str)],
) -> Event {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            labels: (!labels.is_empty()).then(|| {
                labels
                    .iter()
                    .map(|(k, v)| ((*k).into(), (*v).into()))
                    .collect()
            }),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            namespace: Some(ns.into()),
            name: Some(format!("pod-of-{name}")),
            api_version: Some("v1".into()),
            ..Default::default()
        },
        reason: Some(reason.into()),
        message: Some(format!("test event {name}")),
        type_: Some(type_.into()),
        count: Some(1),
        first_timestamp: Some(now.clone()),
        last_timestamp: Some(now),
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &event)
        .await
        .expect("create event")
}

/// Sets an Event's count (a recurrence, as the kubelet records it).
pub async fn set_count(client: &kube::Client, ns: &str, name: &str, count: i32) -> Event {
    let patch = serde_json::json!({ "count": count });
    Api::<Event>::namespaced(client.clone(), ns)
        .patch(name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .expect("patch event")
}

/// Tries to create an Event (for permission checks).
pub async fn try_create_event(
    client: &kube::Client,
    ns: &str,
    name: &str,
) -> Result<Event, kube::Error> {
    let event = Event {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(ns.into()),
            ..Default::default()
        },
        involved_object: ObjectReference {
            kind: Some("Pod".into()),
            name: Some("p".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Event>::namespaced(client.clone(), ns)
        .create(&PostParams::default(), &event)
        .await
}
