//! The manifests of `deploy/`: rendered, checked, and sent with server-side
//! dry run (`dryRun=All`) to the real kube-apiserver started by `cargo xtask test`.
//!
//! The kustomizations are rendered here, in Rust, not by a kustomize binary
//! (the tests must not depend on one being installed). `deploy/kustomize`
//! therefore keeps to what this renderer does, and the renderer refuses
//! anything else loudly: `resources` (files, and directories holding a
//! kustomization), `components`, and JSON 6902 `patches` with a `target`
//! (add, replace, remove, test). Like kustomize, it refuses files from outside
//! a kustomization's directory and duplicate objects.
//!
//! The tests that need the server are `#[ignore]`d for a plain `cargo test`
//! and run by `cargo xtask test` with `--include-ignored`; without the server
//! they fail, they never pass vacuously.
#![allow(clippy::unwrap_used, clippy::expect_used)] // tests: a failed step should fail the test

mod util;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, Namespace};
use kube::api::{Api, ApiResource, DynamicObject, GroupVersionKind, PostParams};
use kube::discovery::Scope;
use serde::Deserialize;
use serde_json::{Value, json};
use util::Kwex;
use util::kube::cluster;

/// The kustomizations a user can apply, by path under `deploy/kustomize`.
const KUSTOMIZATIONS: &[&str] = &[
    "base",
    "overlays/leader-election",
    "overlays/persistent-spool",
];

/// Kinds whose CRDs (Prometheus Operator) the test API server does not have:
/// rendered and checked for shape, but not sent to the server.
const KINDS_WITHOUT_CRD: &[&str] = &["ServiceMonitor", "PrometheusRule"];

/// kwex's default `--shutdown-timeout`.
const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);

fn deploy_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../deploy")
        .canonicalize()
        .unwrap()
}

fn kustomize_dir() -> PathBuf {
    deploy_dir().join("kustomize")
}

/// Every kustomization to check: the three above, and the base with the
/// Prometheus component (as a user's own overlay would add it).
fn renderings() -> Vec<(String, Vec<Value>)> {
    let mut all: Vec<(String, Vec<Value>)> = KUSTOMIZATIONS
        .iter()
        .map(|k| (k.to_string(), render(&kustomize_dir().join(k))))
        .collect();
    let with_prometheus = json!({
        "resources": ["base"],
        "components": ["components/prometheus"],
    });
    let mut objects = Vec::new();
    build(
        &kustomize_dir(),
        &with_prometheus,
        "Kustomization",
        &mut objects,
    );
    check_no_duplicates("base + components/prometheus", &objects);
    all.push(("base + components/prometheus".into(), objects));
    all
}

// ------------------------------------------------------------------------------------------------
// A small kustomize: exactly the features deploy/kustomize uses.

fn read_yaml(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_yaml::Deserializer::from_str(&text)
        .map(|doc| Value::deserialize(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .filter(|v| !v.is_null())
        .collect()
}

/// Renders the kustomization in `dir`.
fn render(dir: &Path) -> Vec<Value> {
    let mut objects = Vec::new();
    let k = kustomization(dir);
    build(dir, &k, "Kustomization", &mut objects);
    check_no_duplicates(&dir.display().to_string(), &objects);
    objects
}

fn kustomization(dir: &Path) -> Value {
    let docs = read_yaml(&dir.join("kustomization.yaml"));
    assert_eq!(docs.len(), 1, "{}: one document", dir.display());
    docs.into_iter().next().unwrap()
}

/// Applies kustomization `k` (of directory `dir`) onto `acc`: a Kustomization
/// starts from an empty `acc`; a Component adds to and patches its parent's.
fn build(dir: &Path, k: &Value, expected_kind: &str, acc: &mut Vec<Value>) {
    let map = k.as_object().unwrap();
    for key in map.keys() {
        assert!(
            ["apiVersion", "kind", "resources", "components", "patches"].contains(&key.as_str()),
            "{}: `{key}` is not supported by the renderer of host/tests/deploy.rs (extend it, or do without)",
            dir.display()
        );
    }
    let kind = k["kind"].as_str().unwrap_or("Kustomization");
    assert_eq!(kind, expected_kind, "{}", dir.display());
    let list = |key: &str| -> Vec<String> {
        k[key]
            .as_array()
            .map(|a| a.iter().map(|v| v.as_str().unwrap().to_owned()).collect())
            .unwrap_or_default()
    };
    for resource in list("resources") {
        let path = dir.join(&resource).canonicalize().unwrap_or_else(|e| {
            panic!("{}: resource {resource}: {e}", dir.display());
        });
        if path.is_dir() {
            let mut sub = Vec::new();
            build(&path, &kustomization(&path), "Kustomization", &mut sub);
            acc.extend(sub);
        } else {
            // kustomize's load restrictor: no file from outside the kustomization's directory.
            assert!(
                path.starts_with(dir),
                "{}: {resource} is outside the kustomization's directory: kustomize refuses it",
                dir.display()
            );
            acc.extend(read_yaml(&path));
        }
    }
    for component in list("components") {
        let path = dir.join(&component).canonicalize().unwrap();
        build(&path, &kustomization(&path), "Component", acc);
    }
    for patch in k["patches"].as_array().into_iter().flatten() {
        apply_patch(dir, patch, acc);
    }
}

fn apply_patch(dir: &Path, patch: &Value, acc: &mut [Value]) {
    for key in patch.as_object().unwrap().keys() {
        assert!(
            ["path", "patch", "target"].contains(&key.as_str()),
            "{}: patch field `{key}` is not supported by the renderer",
            dir.display()
        );
    }
    let text = match (patch["patch"].as_str(), patch["path"].as_str()) {
        (Some(inline), None) => inline.to_owned(),
        (None, Some(file)) => {
            let path = dir.join(file).canonicalize().unwrap();
            assert!(
                path.starts_with(dir),
                "{}: {file} is outside",
                dir.display()
            );
            std::fs::read_to_string(path).unwrap()
        }
        _ => panic!("{}: a patch needs `patch` or `path`", dir.display()),
    };
    let ops: Value = serde_yaml::from_str(&text).unwrap();
    let ops = ops.as_array().unwrap_or_else(|| {
        panic!(
            "{}: only JSON 6902 patches (a list of operations) are supported by the renderer",
            dir.display()
        )
    });
    let target = patch["target"].as_object().unwrap_or_else(|| {
        panic!("{}: a JSON 6902 patch needs a target", dir.display());
    });
    for key in target.keys() {
        assert!(
            ["group", "version", "kind", "name", "namespace"].contains(&key.as_str()),
            "{}: target field `{key}` is not supported by the renderer",
            dir.display()
        );
    }
    let mut matched = 0;
    for object in acc.iter_mut().filter(|o| matches_target(o, target)) {
        matched += 1;
        for op in ops {
            json_patch(object, op)
                .unwrap_or_else(|e| panic!("{}: patch {op} on {}: {e}", dir.display(), id(object)));
        }
    }
    assert!(
        matched > 0,
        "{}: the patch target {target:?} matches nothing",
        dir.display()
    );
}

fn matches_target(object: &Value, target: &serde_json::Map<String, Value>) -> bool {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let field = |key: &str| target.get(key).and_then(Value::as_str);
    field("group").is_none_or(|g| g == group)
        && field("version").is_none_or(|v| v == version)
        && field("kind").is_none_or(|k| object["kind"] == k)
        && field("name").is_none_or(|n| object["metadata"]["name"] == n)
        && field("namespace").is_none_or(|n| object["metadata"]["namespace"] == n)
}

/// One RFC 6902 operation (add, replace, remove, test).
fn json_patch(doc: &mut Value, op: &Value) -> Result<(), String> {
    let path = op["path"].as_str().ok_or("no path")?;
    let tokens: Vec<String> = path
        .strip_prefix('/')
        .ok_or("the path must start with /")?
        .split('/')
        .map(|t| t.replace("~1", "/").replace("~0", "~"))
        .collect();
    let (last, parents) = tokens.split_last().ok_or("empty path")?;
    let mut parent = &mut *doc;
    for token in parents {
        parent = match parent {
            Value::Object(m) => m.get_mut(token),
            Value::Array(a) => token.parse::<usize>().ok().and_then(|i| a.get_mut(i)),
            _ => None,
        }
        .ok_or_else(|| format!("{path}: no {token}"))?;
    }
    let value = || op.get("value").cloned().ok_or("no value");
    match (op["op"].as_str().ok_or("no op")?, parent) {
        ("add", Value::Object(m)) => {
            m.insert(last.clone(), value()?);
        }
        ("add", Value::Array(a)) if last == "-" => a.push(value()?),
        ("add", Value::Array(a)) => {
            let i: usize = last.parse().map_err(|_| format!("{path}: bad index"))?;
            if i > a.len() {
                return Err(format!("{path}: index out of range"));
            }
            a.insert(i, value()?);
        }
        ("replace", Value::Object(m)) if m.contains_key(last) => {
            m.insert(last.clone(), value()?);
        }
        ("replace", Value::Array(a)) => {
            let slot = last.parse::<usize>().ok().and_then(|i| a.get_mut(i));
            *slot.ok_or_else(|| format!("{path}: no such element"))? = value()?;
        }
        ("remove", Value::Object(m)) => {
            m.remove(last)
                .ok_or_else(|| format!("{path}: nothing to remove"))?;
        }
        ("remove", Value::Array(a)) => {
            let i = last.parse::<usize>().ok().filter(|i| *i < a.len());
            a.remove(i.ok_or_else(|| format!("{path}: nothing to remove"))?);
        }
        ("test", parent) => {
            let current = match parent {
                Value::Object(m) => m.get(last),
                Value::Array(a) => last.parse::<usize>().ok().and_then(|i| a.get(i)),
                _ => None,
            };
            if current != Some(&value()?) {
                return Err(format!("{path}: test failed, found {current:?}"));
            }
        }
        (op, _) => return Err(format!("{path}: `{op}` is not supported here")),
    }
    Ok(())
}

fn id(object: &Value) -> String {
    format!(
        "{}/{} {}/{}",
        object["apiVersion"].as_str().unwrap_or("?"),
        object["kind"].as_str().unwrap_or("?"),
        object["metadata"]["namespace"].as_str().unwrap_or("-"),
        object["metadata"]["name"].as_str().unwrap_or("?"),
    )
}

fn check_no_duplicates(what: &str, objects: &[Value]) {
    let mut seen = BTreeSet::new();
    for o in objects {
        assert!(seen.insert(id(o)), "{what}: {} twice", id(o));
    }
}

fn of_kind<'a>(objects: &'a [Value], kind: &str) -> Vec<&'a Value> {
    objects.iter().filter(|o| o["kind"] == kind).collect()
}

fn the_deployment(objects: &[Value]) -> Deployment {
    let found = of_kind(objects, "Deployment");
    assert_eq!(found.len(), 1, "one Deployment");
    serde_json::from_value(found[0].clone()).unwrap()
}

// ------------------------------------------------------------------------------------------------
// What the Deployment must guarantee, whatever the overlay.

fn container(d: &Deployment) -> &Container {
    let pod = d.spec.template.spec.as_ref().unwrap();
    assert_eq!(pod.containers.len(), 1, "one container");
    &pod.containers[0]
}

/// The value of `--{name}` in the container's args (`--name=value` or
/// `--name value`, the last one wins), else of its plain variable
/// `KWEX_{NAME}`; `None` when neither sets it (kwex's default applies).
fn flag(c: &Container, name: &str) -> Option<String> {
    let args = c.args.clone().unwrap_or_default();
    let long = format!("--{name}");
    let mut value = None;
    for (i, arg) in args.iter().enumerate() {
        if let Some(v) = arg.strip_prefix(&format!("{long}=")) {
            value = Some(v.to_owned());
        } else if *arg == long {
            value = args.get(i + 1).cloned();
        }
    }
    let var = format!("KWEX_{}", name.to_uppercase().replace('-', "_"));
    let from_env = c
        .env
        .iter()
        .flatten()
        .find(|e| e.name == var)
        .and_then(|e| e.value.clone());
    value.or(from_env)
}

/// `--shutdown-timeout` from the container's args, else kwex's default.
fn shutdown_timeout(c: &Container) -> Duration {
    flag(c, "shutdown-timeout")
        .map(|v| humantime::parse_duration(&v).unwrap())
        .unwrap_or(DEFAULT_SHUTDOWN_TIMEOUT)
}

/// A Kubernetes quantity of bytes (`1Gi`, `512Mi`, `5G`, `1048576`).
fn quantity_bytes(q: &str) -> u64 {
    let split = q.find(|c: char| !c.is_ascii_digit()).unwrap_or(q.len());
    let (number, suffix) = q.split_at(split);
    let number: u64 = number
        .parse()
        .unwrap_or_else(|_| panic!("quantity {q}: not a whole number"));
    let factor: u64 = match suffix {
        "" => 1,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        other => panic!("quantity {q}: suffix {other} not handled by this test"),
    };
    number * factor
}

/// Non-root, read-only root filesystem, no privilege escalation, no
/// capabilities, seccomp, probes on the right paths, a grace period longer
/// than the drain, resources, and secrets only from Secrets.
fn assert_locked_down(what: &str, d: &Deployment) {
    let pod = d.spec.template.spec.as_ref().unwrap();
    let c = container(d);
    let pod_sc = pod.security_context.clone().unwrap_or_default();
    let sc = c
        .security_context
        .clone()
        .unwrap_or_else(|| panic!("{what}: no container securityContext"));

    let run_as_non_root = sc.run_as_non_root.or(pod_sc.run_as_non_root);
    assert_eq!(run_as_non_root, Some(true), "{what}: runAsNonRoot");
    let uid = sc.run_as_user.or(pod_sc.run_as_user);
    assert!(
        uid.is_some_and(|u| u != 0),
        "{what}: runAsUser must be set and not 0"
    );
    assert_eq!(
        sc.read_only_root_filesystem,
        Some(true),
        "{what}: readOnlyRootFilesystem"
    );
    assert_eq!(
        sc.allow_privilege_escalation,
        Some(false),
        "{what}: allowPrivilegeEscalation"
    );
    assert_ne!(sc.privileged, Some(true), "{what}: privileged");
    let caps = sc.capabilities.clone().unwrap_or_default();
    assert!(
        caps.drop.iter().flatten().any(|c| c == "ALL"),
        "{what}: capabilities.drop must hold ALL"
    );
    assert!(
        caps.add.unwrap_or_default().is_empty(),
        "{what}: no capability added"
    );
    let seccomp = sc
        .seccomp_profile
        .or(pod_sc.seccomp_profile)
        .map(|p| p.type_);
    assert_eq!(
        seccomp.as_deref(),
        Some("RuntimeDefault"),
        "{what}: seccompProfile"
    );

    // Probes: /healthz for liveness, /readyz for readiness, on the metrics port (9102 by default).
    let metrics_port = c
        .ports
        .iter()
        .flatten()
        .find(|p| p.name.as_deref() == Some("metrics"))
        .unwrap_or_else(|| panic!("{what}: no port named metrics"));
    assert_eq!(metrics_port.container_port, 9102, "{what}: metrics port");
    let probe_path = |probe: Option<&k8s_openapi::api::core::v1::Probe>, name: &str| {
        let get = probe
            .and_then(|p| p.http_get.clone())
            .unwrap_or_else(|| panic!("{what}: no {name} httpGet"));
        use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
        assert!(
            matches!(&get.port, IntOrString::String(s) if s == "metrics")
                || matches!(get.port, IntOrString::Int(9102)),
            "{what}: {name} port {:?}",
            get.port
        );
        get.path.unwrap_or_default()
    };
    assert_eq!(
        probe_path(c.liveness_probe.as_ref(), "livenessProbe"),
        "/healthz"
    );
    assert_eq!(
        probe_path(c.readiness_probe.as_ref(), "readinessProbe"),
        "/readyz"
    );
    if c.startup_probe.is_some() {
        assert_eq!(
            probe_path(c.startup_probe.as_ref(), "startupProbe"),
            "/healthz"
        );
    }

    // The drain after SIGTERM must end before the kubelet's SIGKILL.
    let grace = pod.termination_grace_period_seconds.unwrap_or(30);
    let drain = shutdown_timeout(c);
    assert!(
        u64::try_from(grace).unwrap() > drain.as_secs(),
        "{what}: terminationGracePeriodSeconds {grace} must exceed the drain timeout {drain:?}"
    );

    // Requests and limits for CPU and memory.
    let resources = c.resources.clone().unwrap_or_default();
    for (name, map) in [
        ("requests", resources.requests),
        ("limits", resources.limits),
    ] {
        let map = map.unwrap_or_else(|| panic!("{what}: no resources.{name}"));
        assert!(
            map.contains_key("cpu") && map.contains_key("memory"),
            "{what}: resources.{name} needs cpu and memory"
        );
    }

    // Service links would inject KWEX_SERVICE_HOST, KWEX_PORT… which kwex reads as flags.
    assert_eq!(
        pod.enable_service_links,
        Some(false),
        "{what}: enableServiceLinks"
    );

    // Secrets come from Secrets, never from literals or args.
    for env in c.env.iter().flatten() {
        if ["KWEX_PASSWORD", "KWEX_API_KEY", "KWEX_BEARER_TOKEN"].contains(&env.name.as_str()) {
            assert!(env.value.is_none(), "{what}: {} is a literal", env.name);
            assert!(
                env.value_from
                    .as_ref()
                    .is_some_and(|v| v.secret_key_ref.is_some()),
                "{what}: {} must come from a Secret",
                env.name
            );
        }
    }
    for arg in c.args.iter().flatten() {
        assert!(
            !arg.starts_with("--password") || arg.starts_with("--password-file"),
            "{what}: a secret in args: {arg}"
        );
    }

    // Filters: a ConfigMap mounted as a directory (a subPath mount never sees
    // updates, so kwex's hot reload would never see a new chain), read-only,
    // and the directory kwex reads the chain from (`--filters`).
    let volumes = pod.volumes.clone().unwrap_or_default();
    let mount = |path: &str| {
        c.volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == path)
            .unwrap_or_else(|| panic!("{what}: nothing mounted at {path}"))
            .clone()
    };
    let filters = mount("/etc/kwex/filters");
    assert!(filters.sub_path.is_none(), "{what}: filters with subPath");
    assert!(
        filters.sub_path_expr.is_none(),
        "{what}: filters with subPathExpr"
    );
    assert_eq!(
        filters.read_only,
        Some(true),
        "{what}: the filters mount is read-only"
    );
    let volume = volumes.iter().find(|v| v.name == filters.name).unwrap();
    let config_map = volume
        .config_map
        .as_ref()
        .unwrap_or_else(|| panic!("{what}: filters from a ConfigMap"));
    assert!(
        config_map.items.is_none(),
        "{what}: the filters ConfigMap with `items`: every key must reach the directory"
    );
    assert_eq!(
        flag(c, "filters").as_deref(),
        Some(filters.mount_path.as_str()),
        "{what}: --filters must name the ConfigMap's mount"
    );

    // The compiled-filter cache: an explicit --filter-cache-dir on a writable
    // volume (the root filesystem is read-only, so kwex's default may not be).
    let cache = flag(c, "filter-cache-dir").unwrap_or_else(|| {
        panic!("{what}: no --filter-cache-dir (the root filesystem is read-only)")
    });
    assert_ne!(cache, "none", "{what}: the filter cache is off");
    let holding = c
        .volume_mounts
        .iter()
        .flatten()
        .filter(|m| Path::new(&cache).starts_with(&m.mount_path))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| panic!("{what}: --filter-cache-dir={cache} is on no volume"));
    assert_ne!(
        holding.read_only,
        Some(true),
        "{what}: --filter-cache-dir={cache} is on a read-only mount"
    );
    let volume = volumes.iter().find(|v| v.name == holding.name).unwrap();
    assert!(
        volume.empty_dir.is_some() || volume.persistent_volume_claim.is_some(),
        "{what}: the filter cache is on an emptyDir or a PVC"
    );

    // The spool: on disk, in the spool volume.
    assert_eq!(
        flag(c, "spool").as_deref().unwrap_or("disk"),
        "disk",
        "{what}: --spool"
    );
    let spool = mount("/var/lib/kwex/spool");
    assert_eq!(
        flag(c, "spool-dir")
            .as_deref()
            .unwrap_or("/var/lib/kwex/spool"),
        spool.mount_path,
        "{what}: --spool-dir must be the spool's mount"
    );
    assert_ne!(
        spool.read_only,
        Some(true),
        "{what}: the spool is read-only"
    );
    let volume = volumes.iter().find(|v| v.name == spool.name).unwrap();
    assert!(
        volume.empty_dir.is_some() || volume.persistent_volume_claim.is_some(),
        "{what}: the spool is an emptyDir or a PVC"
    );

    // An emptyDir without a sizeLimit can fill the node's disk.
    for v in &volumes {
        if let Some(e) = &v.empty_dir {
            assert!(
                e.size_limit.is_some(),
                "{what}: emptyDir {} has no sizeLimit",
                v.name
            );
        }
    }
}

/// `--spool-max-bytes` (else kwex's default, 1 GiB).
fn spool_max_bytes(c: &Container) -> u64 {
    flag(c, "spool-max-bytes").map_or(1 << 30, |v| v.parse().unwrap())
}

/// The spool's bound is below its volume's size: an emptyDir that overflows
/// its sizeLimit gets the pod evicted, a full PVC fails writes.
#[test]
fn the_spool_fits_its_volume() {
    for (what, objects) in renderings() {
        let d = the_deployment(&objects);
        let c = container(&d);
        let pod = d.spec.template.spec.as_ref().unwrap();
        let mount = c
            .volume_mounts
            .iter()
            .flatten()
            .find(|m| m.mount_path == "/var/lib/kwex/spool")
            .unwrap();
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == mount.name)
            .unwrap();
        let size = if let Some(e) = &volume.empty_dir {
            quantity_bytes(&e.size_limit.as_ref().unwrap().0)
        } else {
            let claim = &volume.persistent_volume_claim.as_ref().unwrap().claim_name;
            let pvc = of_kind(&objects, "PersistentVolumeClaim")
                .into_iter()
                .find(|p| p["metadata"]["name"] == claim.as_str())
                .unwrap_or_else(|| panic!("{what}: no PersistentVolumeClaim {claim}"));
            quantity_bytes(
                pvc["spec"]["resources"]["requests"]["storage"]
                    .as_str()
                    .unwrap(),
            )
        };
        let bound = spool_max_bytes(c);
        assert!(
            bound < size,
            "{what}: --spool-max-bytes={bound} does not fit the spool volume ({size} bytes)"
        );
    }
}

/// Writes `config_map` as the kubelet mounts it: the keys in a timestamped
/// directory, `..data` linking to it, and each key a link `name -> ..data/name`.
fn materialize_config_map(config_map: &Value, dir: &Path) {
    use k8s_openapi::api::core::v1::ConfigMap;
    let cm: ConfigMap = serde_json::from_value(config_map.clone()).unwrap();
    let _ = std::fs::remove_dir_all(dir);
    let data_dir = dir.join("..2026_01_01_00_00_00.000000001");
    std::fs::create_dir_all(&data_dir).unwrap();
    let mut names = Vec::new();
    for (name, text) in cm.data.iter().flatten() {
        std::fs::write(data_dir.join(name), text).unwrap();
        names.push(name.clone());
    }
    for (name, bytes) in cm.binary_data.iter().flatten() {
        std::fs::write(data_dir.join(name), &bytes.0).unwrap();
        names.push(name.clone());
    }
    std::os::unix::fs::symlink("..2026_01_01_00_00_00.000000001", dir.join("..data")).unwrap();
    for name in names {
        std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(&name)).unwrap();
    }
}

/// A scratch directory standing in for each of the Deployment's volumes
/// (the ConfigMaps of the rendering written as the kubelet mounts them,
/// empty directories for the rest), and the container's args with every
/// mounted path moved there.
fn args_with_stand_in_volumes(what: &str, objects: &[Value], scratch: &Path) -> Vec<String> {
    let d = the_deployment(objects);
    let c = container(&d);
    let pod = d.spec.template.spec.as_ref().unwrap();
    let mut mounts: Vec<(String, PathBuf)> = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let volume = pod
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == m.name)
            .unwrap_or_else(|| panic!("{what}: no volume {}", m.name));
        let dir = scratch.join(&m.name);
        if let Some(cm) = &volume.config_map {
            let object = of_kind(objects, "ConfigMap")
                .into_iter()
                .find(|o| o["metadata"]["name"] == cm.name.as_str())
                .unwrap_or_else(|| panic!("{what}: the ConfigMap {} is not rendered", cm.name));
            materialize_config_map(object, &dir);
        } else {
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
        }
        mounts.push((m.mount_path.clone(), dir));
    }
    // The longest mount path first, so that nested mounts win.
    mounts.sort_by_key(|(path, _)| std::cmp::Reverse(path.len()));
    c.args
        .clone()
        .unwrap()
        .into_iter()
        .map(|arg| {
            let Some((name, value)) = arg.split_once('=') else {
                return arg;
            };
            for (path, dir) in &mounts {
                if let Ok(rest) = Path::new(value).strip_prefix(path) {
                    let moved = if rest.as_os_str().is_empty() {
                        dir.clone()
                    } else {
                        dir.join(rest)
                    };
                    return format!("{name}={}", moved.display());
                }
            }
            arg
        })
        .collect()
}

fn scratch(name: &str) -> PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("kwex-deploy-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The filters ConfigMap of each rendering, mounted as the kubelet mounts it,
/// is a chain kwex loads with the Deployment's filter flags (the base's is
/// empty: every document goes through), and the compiled-filter cache
/// directory is usable.
#[test]
fn the_rendered_filter_chain_loads() {
    for (i, (what, objects)) in renderings().into_iter().enumerate() {
        let dir = scratch(&format!("chain-{i}"));
        let args = args_with_stand_in_volumes(&what, &objects, &dir);
        let filter_args: Vec<&String> = args.iter().filter(|a| a.starts_with("--filter")).collect();
        let out = Kwex::new()
            .arg("replay")
            .args(filter_args)
            .arg(util::examples().join("core-v1.json"))
            .run();
        assert_eq!(out.status.code(), Some(0), "{what}: {}", out.stderr_text());
        let loaded = out
            .log_lines()
            .into_iter()
            .find(|l| l["message"] == "Filter chain loaded.")
            .unwrap_or_else(|| {
                panic!("{what}: no \"Filter chain loaded.\": {}", out.stderr_text())
            });
        assert_eq!(loaded["filters"], "[]", "{what}: the base's chain is empty");
        assert_eq!(
            out.documents().len(),
            160,
            "{what}: an empty chain keeps every document"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn every_deployment_is_locked_down() {
    for (what, objects) in renderings() {
        assert_locked_down(&what, &the_deployment(&objects));
    }
}

/// The container's args and plain env pass `kwex check` (the flags exist and
/// their values parse), with stand-ins for what comes from Secrets and the
/// downward API.
#[test]
fn every_deployment_passes_kwex_check() {
    for (i, (what, objects)) in renderings().into_iter().enumerate() {
        let d = the_deployment(&objects);
        let c = container(&d);
        // `kwex check` looks for --filters: the mounted paths point at stand-ins.
        let dir = scratch(&format!("check-{i}"));
        let args = args_with_stand_in_volumes(&what, &objects, &dir);
        assert_eq!(args.first().map(String::as_str), Some("run"), "{what}");
        let mut kwex = Kwex::new().arg("check").args(&args[1..]);
        for env in c.env.iter().flatten() {
            let value = match (&env.value, &env.value_from) {
                (Some(v), _) => v.clone(),
                (None, Some(_)) if env.name == "KWEX_URL" => "https://search.invalid:9200".into(),
                (None, Some(_)) if env.name.starts_with("KWEX_") => {
                    // An optional secret key that is absent in a minimal setup.
                    continue;
                }
                (None, Some(_)) => "stand-in".into(),
                (None, None) => String::new(),
            };
            kwex = kwex.env(&env.name, &value);
        }
        let out = kwex.run();
        assert_eq!(
            out.status.code(),
            Some(0),
            "{what}: kwex check {:?}: {}",
            &args[1..],
            out.stderr_text()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

#[test]
fn the_overlays_add_what_they_say() {
    let base = render(&kustomize_dir().join("base"));
    assert!(of_kind(&base, "Role").is_empty(), "no Lease Role in base");
    let base_deployment = the_deployment(&base);
    assert_eq!(base_deployment.spec.replicas, Some(1));

    let le = render(&kustomize_dir().join("overlays/leader-election"));
    let d = the_deployment(&le);
    assert_eq!(d.spec.replicas, Some(2));
    assert!(
        container(&d)
            .args
            .iter()
            .flatten()
            .any(|a| a == "--leader-elect")
    );
    // The overlay's copy of the Lease RBAC is the file the kube tests check
    // (host/tests/kube.rs loads deploy/kustomize/base/leader-election-rbac.yaml).
    let canonical = read_yaml(&kustomize_dir().join("base/leader-election-rbac.yaml"));
    let copy =
        read_yaml(&kustomize_dir().join("overlays/leader-election/leader-election-rbac.yaml"));
    assert_eq!(canonical, copy, "the two leader-election-rbac.yaml differ");
    assert_eq!(
        of_kind(&le, "Role").len() + of_kind(&le, "RoleBinding").len(),
        2
    );

    let ps = render(&kustomize_dir().join("overlays/persistent-spool"));
    let d = the_deployment(&ps);
    let spec = &d.spec;
    assert_eq!(
        spec.strategy.as_ref().unwrap().type_.as_deref(),
        Some("Recreate")
    );
    let claim = spec
        .template
        .spec
        .as_ref()
        .unwrap()
        .volumes
        .as_ref()
        .unwrap()[1]
        .persistent_volume_claim
        .clone()
        .expect("the spool on a PVC");
    let pvcs = of_kind(&ps, "PersistentVolumeClaim");
    assert_eq!(pvcs.len(), 1);
    assert_eq!(pvcs[0]["metadata"]["name"], claim.claim_name.as_str());
}

#[test]
fn the_cluster_role_reads_events_and_nothing_else() {
    for (what, objects) in renderings() {
        for role in of_kind(&objects, "ClusterRole") {
            for rule in role["rules"].as_array().unwrap() {
                assert_eq!(rule["resources"], json!(["events"]), "{what}: {rule}");
                assert_eq!(
                    rule["verbs"],
                    json!(["get", "list", "watch"]),
                    "{what}: {rule}"
                );
            }
        }
    }
}

/// The chart's alerts (deploy/helm/kwex/files/prometheus-rules.yaml, where
/// `__KWEX_JOB__` becomes the release's Service name) are the kustomize ones.
#[test]
fn the_helm_chart_has_the_same_alerts_as_the_kustomize_component() {
    let rule = &read_yaml(&kustomize_dir().join("components/prometheus/prometheusrule.yaml"))[0];
    let helm = std::fs::read_to_string(deploy_dir().join("helm/kwex/files/prometheus-rules.yaml"))
        .unwrap()
        .replace("__KWEX_JOB__", "kwex");
    let helm: Value = serde_yaml::from_str(&helm).unwrap();
    assert_eq!(helm["groups"], rule["spec"]["groups"]);
    for r in rule["spec"]["groups"][0]["rules"].as_array().unwrap() {
        let a = &r["annotations"];
        assert!(
            a["summary"].is_string() && a["description"].is_string(),
            "{r}"
        );
    }
}

fn metric_names(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(at) = rest.find("kwex_") {
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(tail.len());
        // `kwex_sink_*` in a description is a family, not a metric.
        if !tail[..end].ends_with('_') {
            names.insert(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

fn rust_sources(dir: &Path, out: &mut String) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push_str(&std::fs::read_to_string(&path).unwrap());
        }
    }
}

/// Every metric of the Grafana dashboard, the alerts, the chart's notes and
/// docs/operating.md is one kwex exports (a renamed metric would leave a
/// panel or an alert silently empty).
#[test]
fn the_dashboards_and_alerts_use_metrics_kwex_exports() {
    let mut sources = String::new();
    rust_sources(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut sources,
    );
    let exported = |name: &str| sources.contains(&format!("\"{name}\""));
    let mut used = metric_names(
        &std::fs::read_to_string(deploy_dir().join("dashboards/grafana-kwex.json")).unwrap(),
    );
    for file in [
        kustomize_dir().join("components/prometheus/prometheusrule.yaml"),
        deploy_dir().join("helm/kwex/files/prometheus-rules.yaml"),
        deploy_dir().join("helm/kwex/templates/NOTES.txt"),
        deploy_dir().join("../docs/operating.md"),
    ] {
        used.extend(metric_names(&std::fs::read_to_string(file).unwrap()));
    }
    let mut unknown = Vec::new();
    for name in &used {
        let base = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s).filter(|b| exported(b)))
            .unwrap_or(name);
        if !exported(base) {
            unknown.push(name.clone());
        }
    }
    assert!(used.len() > 20, "{used:?}");
    assert!(unknown.is_empty(), "not exported by kwex: {unknown:?}");
}

/// The saved searches of deploy/dashboards show fields that documents have,
/// on the index pattern of the default `--index`.
#[test]
fn the_saved_searches_show_document_fields() {
    fn paths(value: &Value, prefix: &str, out: &mut BTreeSet<String>) {
        if let Value::Object(map) = value {
            for (k, v) in map {
                let path = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                out.insert(path.clone());
                paths(v, &path, out);
            }
        }
    }
    let out = Kwex::new()
        .args(["replay", "--cluster-name", "test"])
        .arg(util::examples().join("core-v1.json"))
        .run();
    assert_eq!(out.status.code(), Some(0), "{}", out.stderr_text());
    let mut fields = BTreeSet::new();
    for doc in out.documents() {
        paths(&doc, "", &mut fields);
    }
    for file in ["opensearch-dashboards-kwex.ndjson", "kibana-kwex.ndjson"] {
        let text = std::fs::read_to_string(deploy_dir().join("dashboards").join(file)).unwrap();
        let objects: Vec<Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        let events = objects
            .iter()
            .find(|o| o["id"] == "kwex-events")
            .unwrap_or_else(|| panic!("{file}: no index pattern kwex-events"));
        assert_eq!(events["attributes"]["title"], "kwex-events-*", "{file}");
        assert_eq!(
            events["attributes"]["timeFieldName"], "@timestamp",
            "{file}"
        );
        let warnings = objects
            .iter()
            .find(|o| o["id"] == "kwex-warnings")
            .unwrap_or_else(|| panic!("{file}: no saved search kwex-warnings"));
        assert_eq!(warnings["references"][0]["id"], "kwex-events", "{file}");
        for column in warnings["attributes"]["columns"].as_array().unwrap() {
            let column = column.as_str().unwrap();
            assert!(fields.contains(column), "{file}: no document has {column}");
        }
        let source: Value = serde_json::from_str(
            warnings["attributes"]["kibanaSavedObjectMeta"]["searchSourceJSON"]
                .as_str()
                .unwrap(),
        )
        .unwrap();
        assert_eq!(source["query"]["query"], "type : \"Warning\"", "{file}");
    }
}

// ------------------------------------------------------------------------------------------------
// Server-side dry run against the real kube-apiserver.

/// Every field sent is in what the server answered (with the same value): a
/// field the server does not know is dropped silently by kube-apiserver 1.20
/// (it has no strict field validation), so this is how a typo shows.
fn missing_fields(sent: &Value, got: &Value, path: &str, out: &mut Vec<String>) {
    match (sent, got) {
        (Value::Object(s), Value::Object(g)) => {
            for (k, v) in s {
                let here = format!("{path}/{k}");
                match g.get(k) {
                    Some(gv) => missing_fields(v, gv, &here, out),
                    // The server omits empty maps and lists.
                    None if v.as_object().is_some_and(|m| m.is_empty())
                        || v.as_array().is_some_and(|a| a.is_empty()) => {}
                    None => out.push(format!("{here}: dropped by the server")),
                }
            }
        }
        (Value::Array(s), Value::Array(g)) if s.len() == g.len() => {
            for (i, (sv, gv)) in s.iter().zip(g).enumerate() {
                missing_fields(sv, gv, &format!("{path}/{i}"), out);
            }
        }
        (s, g) if s == g => {}
        (s, g) => out.push(format!("{path}: sent {s}, server has {g}")),
    }
}

/// Sends `object` with `dryRun=All`: create, or replace when it exists already
/// (the kube tests create the ClusterRole `kwex` for real, for example).
async fn dry_run(client: &kube::Client, object: &Value) -> Value {
    let api_version = object["apiVersion"].as_str().unwrap();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let gvk = GroupVersionKind::gvk(group, version, object["kind"].as_str().unwrap());
    let (resource, caps): (ApiResource, _) = kube::discovery::pinned_kind(client, &gvk)
        .await
        .unwrap_or_else(|e| panic!("{}: not served by the API server: {e}", id(object)));
    let api: Api<DynamicObject> = match caps.scope {
        Scope::Namespaced => {
            let ns = object["metadata"]["namespace"]
                .as_str()
                .unwrap_or_else(|| panic!("{}: namespaced, but no namespace", id(object)));
            Api::namespaced_with(client.clone(), ns, &resource)
        }
        Scope::Cluster => {
            assert!(
                object["metadata"]["namespace"].is_null(),
                "{}: cluster-scoped, with a namespace",
                id(object)
            );
            Api::all_with(client.clone(), &resource)
        }
    };
    let params = PostParams {
        dry_run: true,
        field_manager: Some("kwex-deploy-test".into()),
    };
    let mut dynamic: DynamicObject = serde_json::from_value(object.clone()).unwrap();
    let answer = match api.create(&params, &dynamic).await {
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let name = object["metadata"]["name"].as_str().unwrap();
            let existing = api.get(name).await.unwrap();
            dynamic.metadata.resource_version = existing.metadata.resource_version;
            api.replace(name, &params, &dynamic).await
        }
        other => other,
    };
    let answer =
        answer.unwrap_or_else(|e| panic!("{}: refused by the API server: {e}", id(object)));
    serde_json::to_value(answer).unwrap()
}

#[tokio::test]
#[ignore = "needs the test kube-apiserver: run with cargo xtask test"]
async fn every_kustomization_applies_with_server_side_dry_run() {
    let cluster = cluster();
    let client = cluster.client().await;
    // Namespaced dry runs need their namespace to exist: create it for real.
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "kwex"}})).unwrap();
    match Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 409 => {}
        Err(e) => panic!("create namespace kwex: {e}"),
    }

    let mut skipped = BTreeSet::new();
    for (what, objects) in renderings() {
        for object in &objects {
            let kind = object["kind"].as_str().unwrap();
            // The Prometheus Operator's CRDs are not on the test server: those
            // objects are checked only for shape (here and by the alert test above).
            if KINDS_WITHOUT_CRD.contains(&kind) {
                assert!(object["spec"].is_object(), "{what}: {}", id(object));
                skipped.insert(kind.to_owned());
                continue;
            }
            let answer = dry_run(&client, object).await;
            let mut missing = Vec::new();
            missing_fields(object, &answer, "", &mut missing);
            assert!(
                missing.is_empty(),
                "{what}: {}: the server did not keep what was sent:\n{}",
                id(object),
                missing.join("\n")
            );
            if kind == "Deployment" {
                // What the server would store (defaults filled in) is locked down too.
                let stored: Deployment = serde_json::from_value(answer).unwrap();
                assert_locked_down(&format!("{what} (as stored)"), &stored);
            }
        }
    }
    assert_eq!(
        skipped,
        KINDS_WITHOUT_CRD.iter().map(|k| k.to_string()).collect(),
        "the Prometheus component was rendered"
    );
}
