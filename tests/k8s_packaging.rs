//! The Kubernetes packaging: the Helm chart (charts/slatefs), the plain manifests rendered from it
//! (manifests/), the examples (examples/) and the Dockerfile.
//!
//! The chart is rendered and linted by a real Helm engine: Helm's Go library, bundled by PyPI's
//! `helm-python-sdk` and driven by tests/support/helm_render.py (`pip install
//! helm-python-sdk==0.2.2`; set SLATEFS_PYTHON to pick the interpreter). Without it these tests
//! fail and say what to install.
//!
//! Every rendered object, every manifest and every example is parsed into its `k8s-openapi` type.
//! Those types silently drop fields they do not know, so each object is serialized back and
//! compared with the YAML it came from: a field that does not survive the round trip is a field
//! Kubernetes does not know (a typo, a wrong nesting level), and an error. Objects of the
//! snapshot.storage.k8s.io kinds, which have no `k8s-openapi` type, are checked against the
//! openAPIV3 schema of the chart's own snapshot CRDs, with unknown fields again an error.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{
    ConfigMap, Container, Namespace, PersistentVolumeClaim, Pod, PodSpec, Secret, ServiceAccount,
};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, PolicyRule, Role, RoleBinding};
use k8s_openapi::api::storage::v1::{CSIDriver, StorageClass};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::{
    CustomResourceDefinition, JSONSchemaProps, JSONSchemaPropsOrArray, JSONSchemaPropsOrBool,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::json;
use serde_yaml::Value;

// ---------------------------------------------------------------------------------------------
// What the packaging must say: pinned versions and names.

const PROVISIONER: &str = "registry.k8s.io/sig-storage/csi-provisioner:v6.3.0";
const SNAPSHOTTER: &str = "registry.k8s.io/sig-storage/csi-snapshotter:v8.6.0";
const RESIZER: &str = "registry.k8s.io/sig-storage/csi-resizer:v2.2.1";
const LIVENESS: &str = "registry.k8s.io/sig-storage/livenessprobe:v2.19.0";
const REGISTRAR: &str = "registry.k8s.io/sig-storage/csi-node-driver-registrar:v2.17.0";
const SNAPSHOT_CONTROLLER: &str = "registry.k8s.io/sig-storage/snapshot-controller:v8.6.0";
const SLATEFS_REPOSITORY: &str = "ghcr.io/slatefs/slatefs";
const DEFAULT_DRIVER: &str = "csi.slatefs.io";
/// The binary, in the image and in the chart's `command`.
const BINARY: &str = "/usr/local/bin/slatefs";
/// The build CI runs, which the Dockerfile must run too.
const BUILD_COMMAND: &str = "cargo build --release --locked";

/// The RBAC each sidecar needs, as (apiGroup, resource, verbs), for the versions above and the
/// flags the chart gives them. Sources: each sidecar's deploy/kubernetes/rbac*.yaml, minus the
/// rules its comments tie to features the chart leaves off (PUBLISH_UNPUBLISH_VOLUME, storage
/// capacity, cross-namespace sources, group snapshots, --handle-volume-inuse-error).
const PROVISIONER_RULES: &[(&str, &str, &[&str])] = &[
    ("", "persistentvolumes", &["get", "list", "watch", "create", "patch", "delete"]),
    ("", "persistentvolumeclaims", &["get", "list", "watch", "update"]),
    ("storage.k8s.io", "storageclasses", &["get", "list", "watch"]),
    ("", "events", &["list", "watch", "create", "update", "patch"]),
    // v6.0.1+: the provisioner sets and clears a source-protection finalizer on the snapshot.
    ("snapshot.storage.k8s.io", "volumesnapshots", &["get", "list", "watch", "update"]),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents", &["get", "list"]),
    ("storage.k8s.io", "csinodes", &["get", "list", "watch"]),
    ("", "nodes", &["get", "list", "watch"]),
    ("storage.k8s.io", "volumeattributesclasses", &["get", "list", "watch"]),
];
const SNAPSHOTTER_RULES: &[(&str, &str, &[&str])] = &[
    ("", "events", &["list", "watch", "create", "update", "patch"]),
    ("snapshot.storage.k8s.io", "volumesnapshotclasses", &["get", "list", "watch"]),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents", &["get", "list", "watch", "update", "patch"]),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", &["update", "patch"]),
];
const RESIZER_RULES: &[(&str, &str, &[&str])] = &[
    ("", "persistentvolumes", &["get", "list", "watch", "patch"]),
    ("", "persistentvolumeclaims", &["get", "list", "watch"]),
    ("", "persistentvolumeclaims/status", &["patch"]),
    ("", "events", &["list", "watch", "create", "update", "patch"]),
    ("storage.k8s.io", "volumeattributesclasses", &["get", "list", "watch"]),
];
/// Leader election (all three sidecars, and snapshot-controller), namespaced.
const LEASE_RULES: &[(&str, &str, &[&str])] =
    &[("coordination.k8s.io", "leases", &["get", "watch", "list", "delete", "update", "create"])];
const SNAPSHOT_CONTROLLER_RULES: &[(&str, &str, &[&str])] = &[
    ("", "persistentvolumes", &["get", "list", "watch"]),
    ("", "persistentvolumeclaims", &["get", "list", "watch", "update"]),
    ("storage.k8s.io", "storageclasses", &["get", "list", "watch"]),
    ("", "events", &["list", "watch", "create", "update", "patch"]),
    ("snapshot.storage.k8s.io", "volumesnapshotclasses", &["get", "list", "watch"]),
    (
        "snapshot.storage.k8s.io",
        "volumesnapshotcontents",
        &["create", "get", "list", "watch", "update", "patch", "delete"],
    ),
    ("snapshot.storage.k8s.io", "volumesnapshotcontents/status", &["patch"]),
    ("snapshot.storage.k8s.io", "volumesnapshots", &["get", "list", "watch", "update", "patch"]),
    ("snapshot.storage.k8s.io", "volumesnapshots/status", &["update", "patch"]),
];

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("cannot read {rel}: {e}"))
}

// ---------------------------------------------------------------------------------------------
// The Helm engine, through tests/support/helm_render.py.

/// One way of installing the chart.
struct Scenario {
    name: &'static str,
    release: &'static str,
    namespace: &'static str,
    values: serde_json::Value,
}

fn scenarios() -> Vec<Scenario> {
    vec![
        // What `helm install slatefs charts/slatefs -n kube-system` renders, and manifests/ holds.
        Scenario { name: "default", release: "slatefs", namespace: "kube-system", values: json!({}) },
        // Everything moved away from its default.
        Scenario {
            name: "custom",
            release: "storage",
            namespace: "slatefs-system",
            values: json!({
                "driverName": "fs.example.com",
                "kubeletDir": "/var/snap/microk8s/common/var/lib/kubelet/",
                "runDir": "/run/slatefs-b",
                "image": {"tag": "0.1.0-test"},
                "storage": {
                    "url": "s3://bucket/datasets",
                    "endpoint": "http://minio.minio.svc:9000",
                    "region": "eu-west-1",
                    "allowHttp": true,
                    "pathStyle": true,
                    "credentials": {"secretName": "s3-creds"}
                },
                "nfs": {"port": 30490, "hideSnapshotDir": true},
                "cluster": {"port": 7500, "handoffAfterMs": 2000, "existingSecret": "cluster-key"},
                "durability": {"mode": "async", "flushIntervalMs": 25},
                "cache": {"hostPath": "/mnt/ssd/slatefs-cache", "sizeGiB": 50, "memoryMiB": 1024},
                "controller": {"healthPort": 9909},
                "node": {"healthPort": 39808},
                "storageClass": {"create": false},
                "volumeSnapshotClass": {
                    "name": "fast",
                    "isDefault": false,
                    "deletionPolicy": "Retain",
                    "secret": {"name": "vsc-creds", "namespace": "creds"}
                },
                "snapshotCRDs": {"install": true},
                "snapshotController": {"enabled": true, "replicas": 2},
                "web": {"enabled": true, "port": 8443, "tokenSecret": "console-token", "readonlyTokenSecret": "console-ro"}
            }),
        },
        // Class secrets (S3 keys, so an s3:// store) and parameters.
        Scenario {
            name: "secrets",
            release: "slatefs",
            namespace: "storage",
            values: json!({
                "storage": {"url": "s3://bucket/slatefs", "credentials": {"secretName": "s3-creds"}},
                "cache": {"hostPath": ""},
                "storageClass": {
                    "isDefault": true,
                    "reclaimPolicy": "Retain",
                    "volumeBindingMode": "WaitForFirstConsumer",
                    "mountOptions": ["actimeo=1"],
                    "parameters": {"storeUrl": "s3://bucket/slatefs", "durability": "sync", "pathStyle": "false", "allowHttp": "false"},
                    "secret": {"name": "sc-creds"}
                },
                "volumeSnapshotClass": {"secret": {"name": "sc-creds"}}
            }),
        },
    ]
}

/// Values the chart must refuse, and a piece of the message it must give.
fn invalid_values() -> Vec<(serde_json::Value, &'static str)> {
    vec![
        (json!({"bogus": 1}), "bogus"),
        (json!({"storage": {"url": "file://./relative"}}), "absolute path"),
        // Class secrets carry S3 keys; a local directory takes none.
        (json!({"storageClass": {"secret": {"name": "creds"}}}), "takes no credentials"),
        (json!({"volumeSnapshotClass": {"secret": {"name": "creds"}}}), "takes no credentials"),
        (json!({"durability": {"mode": "sometimes"}}), "durability/mode"),
        (json!({"nfs": {"port": 0}}), "port"),
        (json!({"cluster": {"port": 0}}), "cluster/port"),
        (json!({"cluster": {"port": 65536}}), "cluster/port"),
        (json!({"cluster": {"port": "7400"}}), "cluster/port"),
        (json!({"cluster": {"handoffAfterMs": 0}}), "cluster/handoffAfterMs"),
        (json!({"cluster": {"existingSecret": "Not_A_Name"}}), "cluster/existingSecret"),
        (json!({"cluster": {"secret": "hunter2hunter2hunter2"}}), "secret"),
        // The channel shares the host's addresses with NFS and the node plugin's health port,
        // and the controller pod's with its health port.
        (json!({"cluster": {"port": 20490}}), "also nfs.port"),
        (json!({"cluster": {"port": 29808}}), "also node.healthPort"),
        (json!({"cluster": {"port": 9808}}), "also controller.healthPort"),
        (json!({"cache": {"hostPath": "relative/dir"}}), "hostPath"),
        (json!({"sidecars": {"provisioner": {"imag": "x"}}}), "imag"),
    ]
}

struct Helm {
    renders: BTreeMap<&'static str, Rendered>,
    lints: BTreeMap<&'static str, serde_json::Value>,
    invalid: Vec<(serde_json::Value, &'static str, serde_json::Value)>,
    invalid_lint: serde_json::Value,
    manifests: String,
}

struct Rendered {
    namespace: &'static str,
    docs: Vec<Doc>,
    notes: String,
}

#[derive(Clone)]
struct Doc {
    source: String,
    text: String,
    value: Value,
}

impl Doc {
    fn kind(&self) -> &str {
        self.value.get("kind").and_then(Value::as_str).unwrap_or("")
    }
    fn name(&self) -> &str {
        self.value.get("metadata").and_then(|m| m.get("name")).and_then(Value::as_str).unwrap_or("")
    }
}

fn python() -> String {
    std::env::var("SLATEFS_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

const INSTALL_HINT: &str = "install the Helm engine: `python3 -m pip install helm-python-sdk==0.2.2` \
     (PyPI; Helm's Go library, no helm binary needed), or point SLATEFS_PYTHON at a Python that has it";

/// Runs every render and lint in one Python process (loading Helm's library once).
fn helm() -> &'static Helm {
    static HELM: OnceLock<Helm> = OnceLock::new();
    HELM.get_or_init(|| {
        let scenarios = scenarios();
        let mut requests = Vec::new();
        for s in &scenarios {
            requests.push(json!({"op": "render", "values": s.values, "name": s.release, "namespace": s.namespace}));
            requests.push(json!({"op": "lint", "values": s.values, "namespace": s.namespace}));
        }
        for (values, _) in invalid_values() {
            requests.push(json!({"op": "render", "values": values}));
        }
        requests.push(json!({"op": "lint", "values": {"bogus": 1}}));
        requests.push(json!({"op": "manifests"}));

        let script = repo().join("tests/support/helm_render.py");
        let mut child = Command::new(python())
            .arg(&script)
            .arg("batch")
            .arg("--chart")
            .arg(repo().join("charts/slatefs"))
            .current_dir(repo())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}; {INSTALL_HINT}", python()));
        {
            use std::io::Write;
            let mut stdin = child.stdin.take().unwrap();
            stdin.write_all(serde_json::to_string(&requests).unwrap().as_bytes()).unwrap();
        }
        let out = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        if out.status.code() == Some(3) {
            panic!("no Helm engine: {stderr}\n{INSTALL_HINT}");
        }
        assert!(out.status.success(), "helm_render.py failed ({}): {stderr}", out.status);
        let results: Vec<serde_json::Value> =
            serde_json::from_slice(&out.stdout).expect("helm_render.py printed no JSON");
        assert_eq!(results.len(), requests.len());

        let mut results = results.into_iter();
        let mut renders = BTreeMap::new();
        let mut lints = BTreeMap::new();
        for s in &scenarios {
            let render = results.next().unwrap();
            if let Some(err) = render.get("error") {
                panic!("scenario {}: the chart does not render: {err}", s.name);
            }
            renders.insert(s.name, parse_render(s, &render));
            lints.insert(s.name, results.next().unwrap());
        }
        let invalid = invalid_values()
            .into_iter()
            .map(|(values, needle)| (values, needle, results.next().unwrap()))
            .collect();
        let invalid_lint = results.next().unwrap();
        let manifests = results.next().unwrap()["text"].as_str().expect("manifests text").to_string();
        Helm { renders, lints, invalid, invalid_lint, manifests }
    })
}

fn parse_render(s: &Scenario, render: &serde_json::Value) -> Rendered {
    let docs = render["documents"]
        .as_array()
        .expect("documents")
        .iter()
        .map(|d| {
            let text = d["yaml"].as_str().unwrap().to_string();
            let source = d["source"].as_str().unwrap().to_string();
            let value: Value = serde_yaml::from_str(&text)
                .unwrap_or_else(|e| panic!("scenario {}: {source} is not YAML: {e}\n{text}", s.name));
            Doc { source, text, value }
        })
        .collect();
    Rendered { namespace: s.namespace, docs, notes: render["notes"].as_str().unwrap_or("").to_string() }
}

fn rendered(scenario: &str) -> &'static Rendered {
    &helm().renders[scenario]
}

// ---------------------------------------------------------------------------------------------
// Strict parsing into k8s-openapi types.

/// Deserializes `value` into `T` and fails on any field `T` dropped (k8s-openapi ignores unknown
/// fields, so they are found by serializing back and comparing).
fn strict<T: DeserializeOwned + Serialize>(what: &str, value: &Value) -> T {
    let typed: T = serde_yaml::from_value(value.clone())
        .unwrap_or_else(|e| panic!("{what}: does not parse as {}: {e}", std::any::type_name::<T>()));
    let back = serde_yaml::to_value(&typed).unwrap();
    let mut errors = Vec::new();
    compare(value, &back, "", &mut errors);
    assert!(errors.is_empty(), "{what}: fields Kubernetes does not know:\n  {}", errors.join("\n  "));
    typed
}

/// Everything in `orig` must be in `back` with the same value; `back` may add empty defaults.
fn compare(orig: &Value, back: &Value, path: &str, errors: &mut Vec<String>) {
    match (orig, back) {
        (Value::Mapping(o), Value::Mapping(b)) => {
            for (k, v) in o {
                let key = k.as_str().map(str::to_string).unwrap_or_else(|| format!("{k:?}"));
                let sub = format!("{path}.{key}");
                match b.get(k) {
                    Some(bv) => compare(v, bv, &sub, errors),
                    None => errors.push(format!("{sub}: unknown field (value {})", short(v))),
                }
            }
        }
        (Value::Sequence(o), Value::Sequence(b)) => {
            if o.len() != b.len() {
                errors.push(format!("{path}: {} items became {}", o.len(), b.len()));
                return;
            }
            for (i, (ov, bv)) in o.iter().zip(b).enumerate() {
                compare(ov, bv, &format!("{path}[{i}]"), errors);
            }
        }
        (Value::Number(o), Value::Number(b)) if o.as_f64() == b.as_f64() => {}
        (Value::Tagged(o), b) => compare(&o.value, b, path, errors),
        (o, b) if o == b => {}
        (o, b) => errors.push(format!("{path}: {} became {}", short(o), short(b))),
    }
}

fn short(v: &Value) -> String {
    let s = serde_yaml::to_string(v).unwrap_or_default().replace('\n', " ");
    if s.len() > 80 {
        format!("{}…", &s[..80])
    } else {
        s.trim().to_string()
    }
}

/// Every object the chart may render, typed.
#[derive(Default)]
struct Objects {
    service_accounts: Vec<ServiceAccount>,
    config_maps: Vec<ConfigMap>,
    secrets: Vec<Secret>,
    storage_classes: Vec<StorageClass>,
    cluster_roles: Vec<ClusterRole>,
    cluster_role_bindings: Vec<ClusterRoleBinding>,
    roles: Vec<Role>,
    role_bindings: Vec<RoleBinding>,
    daemon_sets: Vec<DaemonSet>,
    deployments: Vec<Deployment>,
    csi_drivers: Vec<CSIDriver>,
    crds: Vec<CustomResourceDefinition>,
    pvcs: Vec<PersistentVolumeClaim>,
    pods: Vec<Pod>,
    /// snapshot.storage.k8s.io objects (kind, document), schema-checked separately.
    snapshot_objects: Vec<(String, Value)>,
}

fn typed(what: &str, docs: &[Doc]) -> Objects {
    let mut o = Objects::default();
    for d in docs {
        let what = format!("{what} {} {} ({})", d.kind(), d.name(), d.source);
        let api = d.value.get("apiVersion").and_then(Value::as_str).unwrap_or("");
        match (api, d.kind()) {
            ("v1", "ServiceAccount") => o.service_accounts.push(strict(&what, &d.value)),
            ("v1", "ConfigMap") => o.config_maps.push(strict(&what, &d.value)),
            ("v1", "PersistentVolumeClaim") => o.pvcs.push(strict(&what, &d.value)),
            ("v1", "Pod") => o.pods.push(strict(&what, &d.value)),
            ("v1", "Secret") => o.secrets.push(strict(&what, &d.value)),
            ("v1", "Namespace") => drop(strict::<Namespace>(&what, &d.value)),
            ("storage.k8s.io/v1", "StorageClass") => o.storage_classes.push(strict(&what, &d.value)),
            ("storage.k8s.io/v1", "CSIDriver") => o.csi_drivers.push(strict(&what, &d.value)),
            ("rbac.authorization.k8s.io/v1", "ClusterRole") => o.cluster_roles.push(strict(&what, &d.value)),
            ("rbac.authorization.k8s.io/v1", "ClusterRoleBinding") => {
                o.cluster_role_bindings.push(strict(&what, &d.value))
            }
            ("rbac.authorization.k8s.io/v1", "Role") => o.roles.push(strict(&what, &d.value)),
            ("rbac.authorization.k8s.io/v1", "RoleBinding") => o.role_bindings.push(strict(&what, &d.value)),
            ("apps/v1", "DaemonSet") => o.daemon_sets.push(strict(&what, &d.value)),
            ("apps/v1", "Deployment") => o.deployments.push(strict(&what, &d.value)),
            ("apiextensions.k8s.io/v1", "CustomResourceDefinition") => o.crds.push(strict(&what, &d.value)),
            ("snapshot.storage.k8s.io/v1", kind @ ("VolumeSnapshotClass" | "VolumeSnapshot")) => {
                o.snapshot_objects.push((kind.to_string(), d.value.clone()))
            }
            (api, kind) => panic!("{what}: no test knows {api} {kind}; add it to typed()"),
        }
    }
    o
}

// ---------------------------------------------------------------------------------------------
// The snapshot CRDs as a schema for VolumeSnapshot and VolumeSnapshotClass objects.

fn snapshot_crds() -> &'static BTreeMap<String, JSONSchemaProps> {
    static CRDS: OnceLock<BTreeMap<String, JSONSchemaProps>> = OnceLock::new();
    CRDS.get_or_init(|| {
        let objects = typed("custom", &rendered("custom").docs);
        objects
            .crds
            .iter()
            .map(|crd| {
                let version = crd.spec.versions.iter().find(|v| v.storage).expect("a storage version");
                let schema = version.schema.as_ref().and_then(|s| s.open_api_v3_schema.clone());
                (crd.spec.names.kind.clone(), schema.expect("an openAPIV3Schema"))
            })
            .collect()
    })
}

fn check_snapshot_object(what: &str, kind: &str, value: &Value) {
    let schema = snapshot_crds().get(kind).unwrap_or_else(|| panic!("{what}: no CRD for kind {kind}"));
    let json: serde_json::Value = serde_json::to_value(value).unwrap();
    let mut errors = Vec::new();
    validate(schema, &json, "", &mut errors);
    assert!(errors.is_empty(), "{what}: does not fit the {kind} CRD:\n  {}", errors.join("\n  "));
    let meta = value.get("metadata").cloned().unwrap_or(Value::Null);
    strict::<ObjectMeta>(&format!("{what} metadata"), &meta);
}

/// A structural-schema check: types, enums, required fields, oneOf of required sets, and no
/// field the schema does not declare.
fn validate(schema: &JSONSchemaProps, v: &serde_json::Value, path: &str, errors: &mut Vec<String>) {
    if schema.x_kubernetes_int_or_string == Some(true) {
        if !(v.is_i64() || v.is_u64() || v.is_string()) {
            errors.push(format!("{path}: expected an integer or a string, got {v}"));
        }
        return;
    }
    if let Some(values) = &schema.enum_ {
        if !values.iter().any(|e| &e.0 == v) {
            errors.push(format!("{path}: {v} is not one of {:?}", values.iter().map(|e| &e.0).collect::<Vec<_>>()));
        }
    }
    if let Some(min) = schema.minimum {
        if v.as_f64().is_some_and(|n| n < min) {
            errors.push(format!("{path}: {v} < {min}"));
        }
    }
    match schema.type_.as_deref() {
        Some("object") => {
            let Some(map) = v.as_object() else {
                errors.push(format!("{path}: expected an object, got {v}"));
                return;
            };
            for r in schema.required.iter().flatten() {
                if !map.contains_key(r) {
                    errors.push(format!("{path}: required field {r} is missing"));
                }
            }
            if let Some(one_of) = &schema.one_of {
                let matching = one_of
                    .iter()
                    .filter(|alt| alt.required.iter().flatten().all(|r| map.contains_key(r)))
                    .count();
                if matching != 1 {
                    errors.push(format!("{path}: must match exactly one of the oneOf alternatives, matches {matching}"));
                }
            }
            for (k, child) in map {
                let sub = format!("{path}.{k}");
                if let Some(p) = schema.properties.as_ref().and_then(|p| p.get(k)) {
                    validate(p, child, &sub, errors);
                } else if let Some(JSONSchemaPropsOrBool::Schema(ap)) = &schema.additional_properties {
                    validate(ap, child, &sub, errors);
                } else if matches!(schema.additional_properties, Some(JSONSchemaPropsOrBool::Bool(true)))
                    || schema.x_kubernetes_preserve_unknown_fields == Some(true)
                    || (schema.properties.is_none() && schema.additional_properties.is_none())
                {
                    // metadata and other free-form objects
                } else {
                    errors.push(format!("{sub}: unknown field"));
                }
            }
        }
        Some("array") => match (v.as_array(), &schema.items) {
            (Some(items), Some(JSONSchemaPropsOrArray::Schema(item))) => {
                for (i, x) in items.iter().enumerate() {
                    validate(item, x, &format!("{path}[{i}]"), errors);
                }
            }
            (Some(_), _) => {}
            (None, _) => errors.push(format!("{path}: expected an array, got {v}")),
        },
        Some("string") if !v.is_string() => errors.push(format!("{path}: expected a string, got {v}")),
        Some("integer") if !(v.is_i64() || v.is_u64()) => errors.push(format!("{path}: expected an integer, got {v}")),
        Some("boolean") if !v.is_boolean() => errors.push(format!("{path}: expected a boolean, got {v}")),
        _ => {}
    }
}

// ---------------------------------------------------------------------------------------------
// Helpers over pods.

fn workloads(o: &Objects) -> Vec<(String, &PodSpec)> {
    let mut out = Vec::new();
    for ds in &o.daemon_sets {
        let spec = ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        out.push((format!("DaemonSet {}", ds.metadata.name.as_deref().unwrap()), spec));
    }
    for d in &o.deployments {
        let spec = d.spec.as_ref().unwrap().template.spec.as_ref().unwrap();
        out.push((format!("Deployment {}", d.metadata.name.as_deref().unwrap()), spec));
    }
    for p in &o.pods {
        out.push((format!("Pod {}", p.metadata.name.as_deref().unwrap()), p.spec.as_ref().unwrap()));
    }
    out
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

/// The value of `--flag=value` (or `--flag value`) in a container's args.
fn flag(c: &Container, name: &str) -> Option<String> {
    let a = args(c);
    for (i, arg) in a.iter().enumerate() {
        if let Some(v) = arg.strip_prefix(&format!("{name}=")) {
            return Some(v.to_string());
        }
        if arg == name {
            return a.get(i + 1).cloned();
        }
    }
    None
}

fn container<'a>(spec: &'a PodSpec, name: &str) -> &'a Container {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("no container {name} in {:?}", spec.containers.iter().map(|c| &c.name).collect::<Vec<_>>()))
}

/// One slatefs process: a container running the image's binary.
struct Proc<'a> {
    what: String,
    pod: &'a PodSpec,
    c: &'a Container,
    /// "csi-controller", "csi-node", "serve-owner" or "serve-reader" (by its catalog role).
    role: String,
    config: slatefs::config::Config,
    config_key: String,
    /// The config file's text, as the container reads it.
    config_text: String,
}

fn procs(o: &Objects) -> Vec<Proc<'_>> {
    let mut out = Vec::new();
    for (what, pod) in workloads(o) {
        for c in pod.containers.iter().filter(|c| c.command.as_deref() == Some(&[BINARY.to_string()][..])) {
            let a = args(c);
            let (config_key, config_text, config) = config_of(o, pod, c);
            let role = match a.first().map(String::as_str) {
                Some("serve") => match config.catalog.role {
                    slatefs::config::CatalogRole::Owner => "serve-owner".to_string(),
                    slatefs::config::CatalogRole::Reader => "serve-reader".to_string(),
                },
                Some("csi") => format!("csi-{}", flag(c, "--mode").expect("csi --mode")),
                other => panic!("{what}/{}: slatefs runs {other:?}", c.name),
            };
            out.push(Proc { what: what.clone(), pod, c, role, config, config_key, config_text });
        }
    }
    out
}

/// The one slatefs process with `role`.
fn proc<'a>(o: &'a Objects, role: &str) -> Proc<'a> {
    let mut found: Vec<_> = procs(o).into_iter().filter(|p| p.role == role).collect();
    assert_eq!(found.len(), 1, "exactly one slatefs {role} process: {:?}", found.iter().map(|f| &f.what).collect::<Vec<_>>());
    found.pop().unwrap()
}

/// Where a path inside a container is on the node: (volume name, host path if a hostPath).
fn resolve(spec: &PodSpec, c: &Container, path: &str) -> (String, Option<String>) {
    let mounts = c.volume_mounts.as_deref().unwrap_or_default();
    let m = mounts
        .iter()
        .filter(|m| path == m.mount_path || path.starts_with(&format!("{}/", m.mount_path.trim_end_matches('/'))))
        .max_by_key(|m| m.mount_path.len())
        .unwrap_or_else(|| panic!("container {}: nothing mounted at {path}", c.name));
    let rest = &path[m.mount_path.trim_end_matches('/').len()..];
    let vol = spec.volumes.as_deref().unwrap_or_default().iter().find(|v| v.name == m.name)
        .unwrap_or_else(|| panic!("container {}: mount of undeclared volume {}", c.name, m.name));
    let host = vol.host_path.as_ref().map(|h| format!("{}{rest}", h.path.trim_end_matches('/')));
    (m.name.clone(), host)
}

fn unix_path(endpoint: &str) -> &str {
    endpoint.strip_prefix("unix://").unwrap_or_else(|| panic!("{endpoint} is not a unix:// endpoint"))
}

fn config_maps_by_name(o: &Objects) -> BTreeMap<String, &ConfigMap> {
    o.config_maps.iter().map(|c| (c.metadata.name.clone().unwrap(), c)).collect()
}

/// The slatefs config file a container reads (`-c PATH`), parsed by slatefs itself.
fn config_of(o: &Objects, spec: &PodSpec, c: &Container) -> (String, String, slatefs::config::Config) {
    let path = flag(c, "-c").expect("slatefs runs with -c CONFIG");
    let m = c.volume_mounts.as_deref().unwrap_or_default().iter()
        .find(|m| path.starts_with(&format!("{}/", m.mount_path)))
        .unwrap_or_else(|| panic!("{path} is not on a mounted volume"));
    let file = &path[m.mount_path.len() + 1..];
    let vol = spec.volumes.as_deref().unwrap_or_default().iter().find(|v| v.name == m.name).unwrap();
    let cm_ref = vol.config_map.as_ref().expect("the config comes from a ConfigMap");
    let key = cm_ref.items.as_deref().unwrap_or_default().iter().find(|i| i.path == file)
        .map(|i| i.key.clone()).unwrap_or_else(|| file.to_string());
    let cm = config_maps_by_name(o)[&cm_ref.name];
    let text = cm.data.as_ref().unwrap().get(&key).unwrap_or_else(|| panic!("ConfigMap {} has no {key}", cm_ref.name));
    let config = slatefs::config::Config::parse(text, Path::new(file))
        .unwrap_or_else(|e| panic!("{key} of ConfigMap {} is not a slatefs config: {e:#}\n{text}", cm_ref.name));
    (key, text.clone(), config)
}

fn env_names(c: &Container) -> Vec<String> {
    c.env.iter().flatten().map(|e| e.name.clone()).collect()
}

fn image_of<'a>(spec: &'a PodSpec, name: &str) -> &'a str {
    container(spec, name).image.as_deref().unwrap()
}

// ---------------------------------------------------------------------------------------------
// The tests.

#[path = "k8s_packaging/cluster.rs"]
mod cluster;
#[path = "k8s_packaging/modify_volume.rs"]
mod modify_volume;

#[test]
fn chart_renders_and_lints_cleanly_with_a_real_helm_engine() {
    let h = helm();
    for (name, report) in &h.lints {
        let messages = report["messages"].as_array().expect("lint messages");
        // Severity: 1 info, 2 warning, 3 error. The only info is "icon is recommended".
        let bad: Vec<_> = messages.iter().filter(|m| m["severity"].as_i64().unwrap_or(3) >= 2).collect();
        assert!(bad.is_empty(), "scenario {name}: helm lint (strict) complains: {bad:#?}");
        assert!(report["errors"].as_array().is_none_or(|e| e.is_empty()), "scenario {name}: {report}");
        let rendered = rendered(name);
        assert!(rendered.docs.len() >= 15, "scenario {name}: only {} objects", rendered.docs.len());
    }
    // The linter and the renderer are live: bad values are refused, with a message that says why.
    let lint_errors = h.invalid_lint["errors"].as_array().cloned().unwrap_or_default();
    assert!(lint_errors.iter().any(|e| e.as_str().unwrap_or("").contains("bogus")), "lint accepted an unknown value: {}", h.invalid_lint);
    for (values, needle, result) in &h.invalid {
        let err = result.get("error").and_then(|e| e.as_str())
            .unwrap_or_else(|| panic!("values {values} were accepted"));
        assert!(err.contains(needle), "values {values}: error does not mention {needle:?}: {err}");
    }
}

#[test]
fn every_rendered_object_parses_strictly_into_its_kubernetes_type() {
    for s in scenarios() {
        let r = rendered(s.name);
        let o = typed(&format!("scenario {}:", s.name), &r.docs);
        for (kind, value) in &o.snapshot_objects {
            check_snapshot_object(&format!("scenario {}: {kind}", s.name), kind, value);
        }
        // Names are unique per kind and namespace, and namespaced objects are in the release's.
        let mut seen = BTreeSet::new();
        for d in &r.docs {
            let ns = d.value.get("metadata").and_then(|m| m.get("namespace")).and_then(Value::as_str);
            assert!(seen.insert((d.kind().to_string(), ns.map(str::to_string), d.name().to_string())),
                "scenario {}: two {} named {}", s.name, d.kind(), d.name());
            let cluster_scoped = matches!(d.kind(), "StorageClass" | "CSIDriver" | "ClusterRole"
                | "ClusterRoleBinding" | "CustomResourceDefinition" | "VolumeSnapshotClass");
            match ns {
                None => assert!(cluster_scoped, "scenario {}: {} {} has no namespace", s.name, d.kind(), d.name()),
                Some(ns) => {
                    assert!(!cluster_scoped, "scenario {}: cluster-scoped {} {} has a namespace", s.name, d.kind(), d.name());
                    // Only the class-secret Role may live in the Secret's namespace.
                    if !(d.name().ends_with("-class-secrets")) {
                        assert_eq!(ns, r.namespace, "scenario {}: {} {}", s.name, d.kind(), d.name());
                    }
                }
            }
        }
        // Every workload: selector matches the template's labels, volumes mounted exist, and the
        // service account exists.
        let sas: BTreeSet<_> = o.service_accounts.iter().map(|sa| sa.metadata.name.clone().unwrap()).collect();
        for (what, spec) in workloads(&o) {
            for c in &spec.containers {
                for m in c.volume_mounts.iter().flatten() {
                    assert!(spec.volumes.iter().flatten().any(|v| v.name == m.name), "{what}: {} mounts unknown volume {}", c.name, m.name);
                }
            }
            let sa = spec.service_account_name.as_deref().unwrap_or_else(|| panic!("{what}: no serviceAccountName"));
            assert!(sas.contains(sa), "scenario {}: {what} runs as missing ServiceAccount {sa}", s.name);
        }
        for ds in &o.daemon_sets {
            let spec = ds.spec.as_ref().unwrap();
            let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
                assert_eq!(labels.get(k), Some(v), "DaemonSet {:?}: selector {k} does not match", ds.metadata.name);
            }
        }
        for d in &o.deployments {
            let spec = d.spec.as_ref().unwrap();
            let labels = spec.template.metadata.as_ref().unwrap().labels.as_ref().unwrap();
            for (k, v) in spec.selector.match_labels.as_ref().unwrap() {
                assert_eq!(labels.get(k), Some(v), "Deployment {:?}: selector {k} does not match", d.metadata.name);
            }
        }
    }
}

#[test]
fn images_are_pinned_to_the_named_versions() {
    let version = env!("CARGO_PKG_VERSION");
    let chart: Value = serde_yaml::from_str(&read("charts/slatefs/Chart.yaml")).unwrap();
    assert_eq!(chart["appVersion"].as_str(), Some(version), "Chart appVersion must be the crate's version");
    assert_eq!(chart["version"].as_str(), Some(version), "Chart version must be the crate's version");
    assert_eq!(chart["apiVersion"].as_str(), Some("v2"), "a Helm 3 chart");

    let slatefs = format!("{SLATEFS_REPOSITORY}:{version}");
    let o = typed("default", &rendered("default").docs);
    let controller = proc(&o, "csi-controller").pod;
    let node = proc(&o, "csi-node").pod;
    let server = proc(&o, "serve-reader").pod;
    assert!(std::ptr::eq(controller, proc(&o, "serve-owner").pod), "the catalog owner runs in the controller pod");
    let names = |spec: &PodSpec| spec.containers.iter().map(|c| (c.name.clone(), c.image.clone().unwrap())).collect::<BTreeMap<_, _>>();
    let expect = |pairs: &[(&str, &str)]| pairs.iter().map(|(a, b)| (a.to_string(), b.to_string())).collect::<BTreeMap<_, _>>();
    assert_eq!(names(controller), expect(&[("catalog", slatefs.as_str()), ("csi-plugin", slatefs.as_str()), ("csi-provisioner", PROVISIONER),
        ("csi-snapshotter", SNAPSHOTTER), ("csi-resizer", RESIZER), ("liveness-probe", LIVENESS)]));
    assert_eq!(names(node), expect(&[("csi-plugin", slatefs.as_str()), ("node-driver-registrar", REGISTRAR), ("liveness-probe", LIVENESS)]));
    assert_eq!(names(server), expect(&[("server", slatefs.as_str())]));

    let custom = typed("custom", &rendered("custom").docs);
    let (_, sc) = workloads(&custom).into_iter().find(|(w, _)| w.contains("snapshot-controller")).expect("snapshot-controller");
    assert_eq!(image_of(sc, "snapshot-controller"), SNAPSHOT_CONTROLLER);
    for p in procs(&custom) {
        assert_eq!(p.c.image.as_deref(), Some(format!("{SLATEFS_REPOSITORY}:0.1.0-test").as_str()), "{}", p.what);
    }

    // No floating tag anywhere, and every slatefs container runs the image's binary.
    for s in scenarios() {
        let o = typed(s.name, &rendered(s.name).docs);
        for (what, spec) in workloads(&o) {
            for c in spec.containers.iter().chain(spec.init_containers.iter().flatten()) {
                let image = c.image.as_deref().unwrap();
                let tag = image.rsplit_once(':').map(|t| t.1).unwrap_or("");
                assert!(!tag.is_empty() && !tag.contains('/') && tag != "latest" && tag != "canary",
                    "scenario {}: {what}/{}: unpinned image {image}", s.name, c.name);
                if image.starts_with(SLATEFS_REPOSITORY) {
                    assert_eq!(c.command.as_deref(), Some(&[BINARY.to_string()][..]), "{what}/{}: command", c.name);
                }
            }
        }
    }
}

#[test]
fn dataset_server_is_its_own_daemonset_updated_only_on_delete() {
    for s in scenarios() {
        let o = typed(s.name, &rendered(s.name).docs);
        let server = proc(&o, "serve-reader");
        let server_ds: Vec<_> = o.daemon_sets.iter()
            .filter(|ds| std::ptr::eq(ds.spec.as_ref().unwrap().template.spec.as_ref().unwrap(), server.pod))
            .collect();
        assert_eq!(server_ds.len(), 1, "scenario {}: the dataset server runs in a DaemonSet", s.name);
        let ds = server_ds[0].spec.as_ref().unwrap();
        assert_eq!(ds.update_strategy.as_ref().and_then(|u| u.type_.as_deref()), Some("OnDelete"),
            "scenario {}: the dataset server must only restart when its pod is deleted", s.name);
        let pod = server.pod;
        assert_eq!(pod.containers.len(), 1, "the server pod holds the server alone: {:?}",
            pod.containers.iter().map(|c| &c.name).collect::<Vec<_>>());
        assert_eq!(pod.host_network, Some(true), "NFS on the host's 127.0.0.1 needs the host network");
        assert_eq!(pod.dns_policy.as_deref(), Some("ClusterFirstWithHostNet"));

        // The node plugin is another DaemonSet, rolled normally, that runs no server.
        let node = proc(&o, "csi-node");
        let node_ds = o.daemon_sets.iter()
            .find(|d| std::ptr::eq(d.spec.as_ref().unwrap().template.spec.as_ref().unwrap(), node.pod))
            .expect("the node plugin is a DaemonSet");
        assert_ne!(node_ds.metadata.name, server_ds[0].metadata.name);
        assert_eq!(node_ds.spec.as_ref().unwrap().update_strategy.as_ref().and_then(|u| u.type_.as_deref()), Some("RollingUpdate"));
        assert_eq!(node.pod.host_network, Some(true));
        assert!(procs(&o).iter().filter(|p| std::ptr::eq(p.pod, node.pod)).all(|p| p.role == "csi-node"));
        // Both run on the same nodes.
        assert_eq!(node.pod.node_selector, pod.node_selector, "scenario {}: node plugin and server must cover the same nodes", s.name);
        assert_eq!(node.pod.tolerations, pod.tolerations, "scenario {}: node plugin and server must cover the same nodes", s.name);

        // NFS on 127.0.0.1 only, readiness on that port, admin socket shared with the node plugin.
        assert_eq!(server.config_key, "node.toml");
        let (host, port) = server.config.nfs.listen.rsplit_once(':').unwrap();
        assert_eq!(host, "127.0.0.1", "scenario {}: the NFS server must listen on loopback only", s.name);
        let tcp = server.c.readiness_probe.as_ref().and_then(|p| p.tcp_socket.as_ref()).expect("a TCP readiness probe");
        assert_eq!(tcp.host.as_deref(), Some("127.0.0.1"));
        assert_eq!(serde_json::to_value(&tcp.port).unwrap().to_string(), port, "readiness probes the NFS port");
        let admin = server.config.admin.listen.clone().expect("an admin listener");
        let admin_dir = Path::new(unix_path(&admin)).parent().unwrap().to_str().unwrap().to_string();
        let (_, server_host) = resolve(pod, server.c, &admin_dir);
        let (_, node_host) = resolve(node.pod, node.c, &admin_dir);
        assert!(server_host.is_some() && server_host == node_host,
            "scenario {}: the admin socket dir must be one hostPath in both pods ({server_host:?} vs {node_host:?})", s.name);
        assert_eq!(node.config.admin.listen, server.config.admin.listen, "node plugin and server agree on the admin socket");
        assert_eq!(node.config.nfs.listen, server.config.nfs.listen, "node plugin and server agree on the NFS port");

        // The catalog owner: in the controller pod, alone (one replica, never two at once), with
        // the CSI controller talking to it through a socket private to the pod.
        let owner = proc(&o, "serve-owner");
        let controller = proc(&o, "csi-controller");
        assert!(std::ptr::eq(owner.pod, controller.pod), "the catalog owner and the CSI controller share a pod");
        let deployment = o.deployments.iter()
            .find(|d| std::ptr::eq(d.spec.as_ref().unwrap().template.spec.as_ref().unwrap(), owner.pod))
            .expect("the controller is a Deployment");
        let dspec = deployment.spec.as_ref().unwrap();
        assert_eq!(dspec.replicas, Some(1), "one catalog owner");
        assert_eq!(dspec.strategy.as_ref().and_then(|st| st.type_.as_deref()), Some("Recreate"), "owners must not overlap");
        assert_eq!(controller.config.admin.listen, owner.config.admin.listen, "the CSI controller calls the catalog owner");
        let owner_admin = owner.config.admin.listen.clone().unwrap();
        let owner_dir = Path::new(unix_path(&owner_admin)).parent().unwrap().to_str().unwrap().to_string();
        let (vol_a, host_a) = resolve(owner.pod, owner.c, &owner_dir);
        let (vol_b, host_b) = resolve(controller.pod, controller.c, &owner_dir);
        assert_eq!((vol_a, host_a.clone()), (vol_b, host_b), "one admin socket volume in the controller pod");
        assert_eq!(host_a, None, "the owner's socket must not land in a node's runDir, where a dataset server's is");
    }
    let notes = &rendered("default").notes;
    for needle in ["OnDelete", "delete pod", "one node at a time", "hard", "same file handles"] {
        assert!(notes.contains(needle), "NOTES.txt must explain the node-by-node roll ({needle:?}):\n{notes}");
    }
}

#[test]
fn socket_paths_match_between_registrar_kubelet_and_driver() {
    for (scenario, kubelet_dir, driver) in [
        ("default", "/var/lib/kubelet", DEFAULT_DRIVER),
        ("custom", "/var/snap/microk8s/common/var/lib/kubelet", "fs.example.com"),
    ] {
        let o = typed(scenario, &rendered(scenario).docs);
        let node_proc = proc(&o, "csi-node");
        let (node, driver_c) = (node_proc.pod, node_proc.c);
        let endpoint = flag(driver_c, "--endpoint").unwrap();
        let (driver_vol, driver_host) = resolve(node, driver_c, unix_path(&endpoint));
        let socket = format!("{kubelet_dir}/plugins/{driver}/csi.sock");
        assert_eq!(driver_host.as_deref(), Some(socket.as_str()), "{scenario}: the driver's socket on the node");

        let registrar = container(node, "node-driver-registrar");
        let addr = flag(registrar, "--csi-address").unwrap();
        let (reg_vol, reg_host) = resolve(node, registrar, &addr);
        assert_eq!((reg_vol.as_str(), reg_host.as_deref()), (driver_vol.as_str(), Some(socket.as_str())),
            "{scenario}: the registrar must reach the driver's socket");
        assert_eq!(flag(registrar, "--kubelet-registration-path").as_deref(), Some(socket.as_str()),
            "{scenario}: the kubelet must be told where the socket is on the node");
        let (_, reg_dir) = resolve(node, registrar, "/registration");
        assert_eq!(reg_dir.as_deref(), Some(format!("{kubelet_dir}/plugins_registry").as_str()), "{scenario}: plugins_registry");

        let liveness = container(node, "liveness-probe");
        let (_, probe_host) = resolve(node, liveness, &flag(liveness, "--csi-address").unwrap());
        assert_eq!(probe_host.as_deref(), Some(socket.as_str()));

        // Mounts made in the driver reach the host and the pods: Bidirectional on the kubelet
        // dir, which needs a privileged container.
        let kubelet_mount = driver_c.volume_mounts.iter().flatten().find(|m| m.mount_path == kubelet_dir)
            .unwrap_or_else(|| panic!("{scenario}: the kubelet dir must be mounted at the same path"));
        assert_eq!(kubelet_mount.mount_propagation.as_deref(), Some("Bidirectional"));
        let (_, host) = resolve(node, driver_c, kubelet_dir);
        assert_eq!(host.as_deref(), Some(kubelet_dir));
        assert_eq!(driver_c.security_context.as_ref().and_then(|s| s.privileged), Some(true));
        for (what, spec) in workloads(&o) {
            for c in &spec.containers {
                for m in c.volume_mounts.iter().flatten() {
                    if m.mount_propagation.as_deref() == Some("Bidirectional") {
                        assert_eq!(c.security_context.as_ref().and_then(|s| s.privileged), Some(true),
                            "{what}/{}: Bidirectional propagation requires privileged", c.name);
                    }
                }
            }
        }

        // Controller: the sidecars talk to the driver's socket, in one emptyDir.
        let ctrl_proc = proc(&o, "csi-controller");
        let (controller, ctrl) = (ctrl_proc.pod, ctrl_proc.c);
        let ctrl_endpoint = unix_path(&flag(ctrl, "--endpoint").unwrap()).to_string();
        let (ctrl_vol, ctrl_host) = resolve(controller, ctrl, &ctrl_endpoint);
        assert_eq!(ctrl_host, None, "the controller socket lives in the pod");
        for sidecar in ["csi-provisioner", "csi-snapshotter", "csi-resizer", "liveness-probe"] {
            let c = container(controller, sidecar);
            let addr = flag(c, "--csi-address").unwrap();
            assert_eq!(addr, ctrl_endpoint, "{sidecar} --csi-address");
            assert_eq!(resolve(controller, c, &addr).0, ctrl_vol, "{sidecar} shares the socket volume");
        }

        // Health ports: livenessprobe listens where the driver container's probe looks.
        for (spec, port_value) in [(controller, if scenario == "custom" { 9909 } else { 9808 }),
                                   (node, if scenario == "custom" { 39808 } else { 29808 })] {
            let lp = container(spec, "liveness-probe");
            assert_eq!(flag(lp, "--http-endpoint"), Some(format!(":{port_value}")));
            let driver = container(spec, "csi-plugin");
            let port = driver.ports.iter().flatten().find(|p| p.name.as_deref() == Some("healthz")).expect("healthz port");
            assert_eq!(port.container_port, port_value);
            let probe = driver.liveness_probe.as_ref().and_then(|p| p.http_get.as_ref()).expect("an HTTP liveness probe");
            assert_eq!(probe.path.as_deref(), Some("/healthz"));
            assert_eq!(serde_json::to_value(&probe.port).unwrap(), json!("healthz"));
        }
    }
}

type Grant = (String, String, String, String, Option<String>); // (namespace or "*", apiGroup, resource, verb, resourceName)

/// Everything a ServiceAccount may do, through every binding rendered.
fn grants(o: &Objects, namespace: &str, sa: &str) -> BTreeSet<Grant> {
    let is_subject = |subjects: &Option<Vec<k8s_openapi::api::rbac::v1::Subject>>| {
        subjects.iter().flatten().any(|s| s.kind == "ServiceAccount" && s.name == sa && s.namespace.as_deref() == Some(namespace))
    };
    let mut out = BTreeSet::new();
    let mut add = |scope: &str, rules: &[PolicyRule]| {
        for r in rules {
            assert!(r.non_resource_urls.is_none(), "no non-resource URLs");
            for g in r.api_groups.iter().flatten() {
                for res in r.resources.iter().flatten() {
                    for v in &r.verbs {
                        assert!(g != "*" && res != "*" && v != "*", "wildcard in {r:?}");
                        match &r.resource_names {
                            None => { out.insert((scope.to_string(), g.clone(), res.clone(), v.clone(), None)); }
                            Some(names) => for n in names {
                                out.insert((scope.to_string(), g.clone(), res.clone(), v.clone(), Some(n.clone())));
                            },
                        }
                    }
                }
            }
        }
    };
    for b in &o.cluster_role_bindings {
        if is_subject(&b.subjects) {
            assert_eq!(b.role_ref.kind, "ClusterRole");
            let role = o.cluster_roles.iter().find(|r| r.metadata.name.as_deref() == Some(&b.role_ref.name))
                .unwrap_or_else(|| panic!("binding to missing ClusterRole {}", b.role_ref.name));
            add("*", role.rules.as_deref().unwrap_or_default());
        }
    }
    for b in &o.role_bindings {
        if is_subject(&b.subjects) {
            let ns = b.metadata.namespace.clone().unwrap();
            assert_eq!(b.role_ref.kind, "Role", "RoleBinding {:?} to a ClusterRole", b.metadata.name);
            let role = o.roles.iter().find(|r| r.metadata.name.as_deref() == Some(&b.role_ref.name) && r.metadata.namespace.as_deref() == Some(&ns))
                .unwrap_or_else(|| panic!("binding to missing Role {}/{}", ns, b.role_ref.name));
            add(&ns, role.rules.as_deref().unwrap_or_default());
        }
    }
    out
}

fn expected(scope: &str, tables: &[&[(&str, &str, &[&str])]]) -> BTreeSet<Grant> {
    let mut out = BTreeSet::new();
    for table in tables {
        for (g, r, verbs) in table.iter() {
            for v in verbs.iter() {
                out.insert((scope.to_string(), g.to_string(), r.to_string(), v.to_string(), None));
            }
        }
    }
    out
}

fn assert_same_grants(what: &str, got: &BTreeSet<Grant>, want: &BTreeSet<Grant>) {
    let extra: Vec<_> = got.difference(want).collect();
    let missing: Vec<_> = want.difference(got).collect();
    assert!(extra.is_empty() && missing.is_empty(), "{what}: RBAC differs from what the sidecars use\n  granted but unused: {extra:?}\n  used but not granted: {missing:?}");
}

#[test]
fn rbac_grants_exactly_the_verbs_the_sidecars_use() {
    for s in scenarios() {
        let r = rendered(s.name);
        let o = typed(s.name, &r.docs);
        let controller = proc(&o, "csi-controller").pod;
        let sa = controller.service_account_name.clone().unwrap();
        let mut want = expected("*", &[PROVISIONER_RULES, SNAPSHOTTER_RULES, RESIZER_RULES]);
        want.extend(expected(r.namespace, &[LEASE_RULES]));
        // Class secrets: `get` on exactly the named Secret, in its namespace.
        let secret = |ns: &str, name: &str| (ns.to_string(), String::new(), "secrets".to_string(), "get".to_string(), Some(name.to_string()));
        match s.name {
            "default" => {}
            "custom" => { want.insert(secret("creds", "vsc-creds")); }
            "secrets" => { want.insert(secret(r.namespace, "sc-creds")); }
            other => panic!("no RBAC expectation for scenario {other}"),
        }
        assert_same_grants(&format!("scenario {}: controller", s.name), &grants(&o, r.namespace, &sa), &want);

        // Every sidecar is leader-elected in the release namespace.
        for sidecar in ["csi-provisioner", "csi-snapshotter", "csi-resizer"] {
            let c = container(controller, sidecar);
            assert_eq!(flag(c, "--leader-election").as_deref(), Some("true"), "{sidecar}");
            assert_eq!(flag(c, "--leader-election-namespace").as_deref(), Some(r.namespace), "{sidecar}");
        }
        // The flags the RBAC above relies on.
        assert_eq!(flag(container(controller, "csi-snapshotter"), "--feature-gates").as_deref(), Some("CSIVolumeGroupSnapshot=false"));
        assert_eq!(flag(container(controller, "csi-resizer"), "--handle-volume-inuse-error").as_deref(), Some("false"));
        assert!(flag(container(controller, "csi-provisioner"), "--enable-capacity").is_none());

        // The node plugin and the dataset server get no API access at all.
        for role in ["csi-node", "serve-reader"] {
            let p = proc(&o, role);
            let (what, spec) = (p.what, p.pod);
            let sa = spec.service_account_name.clone().unwrap();
            assert!(grants(&o, r.namespace, &sa).is_empty(), "{what} must not be granted anything");
            assert_eq!(spec.automount_service_account_token, Some(false), "{what} needs no API token");
        }

        // snapshot-controller, when enabled.
        if let Some((_, spec)) = workloads(&o).into_iter().find(|(w, _)| w.contains("snapshot-controller")) {
            let sa = spec.service_account_name.clone().unwrap();
            let mut want = expected("*", &[SNAPSHOT_CONTROLLER_RULES]);
            want.extend(expected(r.namespace, &[LEASE_RULES]));
            assert_same_grants("snapshot-controller", &grants(&o, r.namespace, &sa), &want);
            let c = container(spec, "snapshot-controller");
            assert_eq!(flag(c, "--feature-gates").as_deref(), Some("CSIVolumeGroupSnapshot=false"));
            assert_eq!(flag(c, "--leader-election").as_deref(), Some("true"));
        } else {
            assert_ne!(s.name, "custom", "custom enables the snapshot-controller");
        }

        // Nothing is bound that no workload runs as.
        let users: BTreeSet<_> = workloads(&o).iter().map(|(_, spec)| spec.service_account_name.clone().unwrap()).collect();
        for subjects in o.cluster_role_bindings.iter().map(|b| &b.subjects).chain(o.role_bindings.iter().map(|b| &b.subjects)) {
            for sub in subjects.iter().flatten() {
                assert!(users.contains(&sub.name), "scenario {}: binding for unused subject {}", s.name, sub.name);
            }
        }
    }
}

#[test]
fn driver_name_is_the_same_everywhere() {
    for (scenario, driver) in [("default", DEFAULT_DRIVER), ("secrets", DEFAULT_DRIVER), ("custom", "fs.example.com")] {
        let r = rendered(scenario);
        let o = typed(scenario, &r.docs);
        assert_eq!(o.csi_drivers.len(), 1);
        let d = &o.csi_drivers[0];
        assert_eq!(d.metadata.name.as_deref(), Some(driver));
        let spec = &d.spec;
        assert_eq!(spec.attach_required, Some(false));
        assert_eq!(spec.pod_info_on_mount, Some(true));
        assert_eq!(spec.fs_group_policy.as_deref(), Some("File"));
        assert_eq!(spec.volume_lifecycle_modes.as_deref(), Some(&["Persistent".to_string()][..]));
        for sc in &o.storage_classes {
            assert_eq!(sc.provisioner, driver);
        }
        for (kind, v) in &o.snapshot_objects {
            if kind == "VolumeSnapshotClass" {
                assert_eq!(v["driver"].as_str(), Some(driver));
            }
        }
        for role in ["csi-controller", "csi-node"] {
            assert_eq!(flag(proc(&o, role).c, "--driver-name").as_deref(), Some(driver), "{scenario} {role}");
        }
        if driver != DEFAULT_DRIVER {
            for doc in &r.docs {
                assert!(!doc.text.contains(DEFAULT_DRIVER), "{scenario}: {} still names {DEFAULT_DRIVER}", doc.source);
            }
        }
    }
    let default = typed("default", &rendered("default").docs);
    assert_eq!(default.storage_classes.len(), 1, "the default install has a StorageClass");
    assert_eq!(default.snapshot_objects.iter().filter(|(k, _)| k == "VolumeSnapshotClass").count(), 1);
    let custom = typed("custom", &rendered("custom").docs);
    assert!(custom.storage_classes.is_empty(), "storageClass.create=false");
}

#[test]
fn classes_carry_their_parameters_and_secret_references() {
    let r = rendered("secrets");
    let o = typed("secrets", &r.docs);
    let sc = &o.storage_classes[0];
    assert_eq!(sc.reclaim_policy.as_deref(), Some("Retain"));
    assert_eq!(sc.volume_binding_mode.as_deref(), Some("WaitForFirstConsumer"));
    assert_eq!(sc.allow_volume_expansion, Some(true));
    assert_eq!(sc.mount_options.as_deref(), Some(&["actimeo=1".to_string()][..]));
    assert_eq!(sc.metadata.annotations.as_ref().unwrap()["storageclass.kubernetes.io/is-default-class"], "true");
    let p = sc.parameters.clone().unwrap();
    assert_eq!(p["storeUrl"], "s3://bucket/slatefs");
    assert_eq!(p["durability"], "sync");
    for op in ["provisioner", "controller-expand", "node-publish"] {
        assert_eq!(p[&format!("csi.storage.k8s.io/{op}-secret-name")], "sc-creds");
        assert_eq!(p[&format!("csi.storage.k8s.io/{op}-secret-namespace")], r.namespace);
    }
    let (_, vsc) = o.snapshot_objects.iter().find(|(k, _)| k == "VolumeSnapshotClass").unwrap();
    assert_eq!(vsc["parameters"]["csi.storage.k8s.io/snapshotter-secret-name"].as_str(), Some("sc-creds"));
    assert_eq!(vsc["parameters"]["csi.storage.k8s.io/snapshotter-secret-namespace"].as_str(), Some(r.namespace));

    // The driver itself accepts the classes' parameters (it refuses unknown keys).
    for scenario in ["default", "secrets", "custom"] {
        let o = typed(scenario, &rendered(scenario).docs);
        let ctrl = proc(&o, "csi-controller");
        let served = slatefs::csi::params::Served::from_config(&ctrl.config);
        for sc in &o.storage_classes {
            let params: std::collections::HashMap<_, _> = sc.parameters.clone().unwrap_or_default().into_iter().collect();
            slatefs::csi::params::validate_volume_params(&params, &served)
                .unwrap_or_else(|e| panic!("{scenario}: the driver refuses StorageClass parameters {params:?}: {}", e.message()));
        }
        for (_, vsc) in o.snapshot_objects.iter().filter(|(k, _)| k == "VolumeSnapshotClass") {
            let params: std::collections::HashMap<String, String> =
                serde_yaml::from_value(vsc.get("parameters").cloned().unwrap_or(Value::Mapping(Default::default()))).unwrap();
            slatefs::csi::params::validate_snapshot_params(&params)
                .unwrap_or_else(|e| panic!("{scenario}: the driver refuses VolumeSnapshotClass parameters {params:?}: {}", e.message()));
        }
    }

    let default = typed("default", &rendered("default").docs);
    assert!(default.storage_classes[0].parameters.is_none(), "no parameters by default");
    let (_, vsc) = default.snapshot_objects.iter().find(|(k, _)| k == "VolumeSnapshotClass").unwrap();
    assert_eq!(vsc["deletionPolicy"].as_str(), Some("Delete"));
    assert_eq!(vsc["metadata"]["annotations"]["snapshot.storage.kubernetes.io/is-default-class"].as_str(), Some("true"));
}

#[test]
fn config_files_are_valid_slatefs_configs_with_the_right_roles() {
    use slatefs::config::{CatalogRole, DurabilityMode};
    for s in scenarios() {
        let o = typed(s.name, &rendered(s.name).docs);
        let all = procs(&o);
        let roles: BTreeSet<_> = all.iter().map(|p| p.role.as_str()).collect();
        assert_eq!(roles, BTreeSet::from(["csi-controller", "csi-node", "serve-owner", "serve-reader"]), "scenario {}", s.name);
        let by_role = |role: &str| all.iter().find(|p| p.role == role).unwrap();
        // One owner of the catalog, in the controller pod, and the CSI controller beside it reads
        // the same file; the nodes' processes read the reader's.
        assert_eq!(by_role("serve-owner").config_key, "controller.toml");
        assert_eq!(by_role("csi-controller").config_key, "controller.toml");
        assert_eq!(by_role("serve-reader").config_key, "node.toml");
        assert_eq!(by_role("csi-node").config_key, "node.toml");
        assert_eq!(by_role("serve-owner").config.catalog.role, CatalogRole::Owner);
        assert_eq!(by_role("serve-reader").config.catalog.role, CatalogRole::Reader);
        let server = &by_role("serve-reader").config;
        for p in &all {
            assert_eq!(p.config.storage.url, server.storage.url, "one store for all");
            assert_eq!(p.config.durability.mode, server.durability.mode, "one durability for all");
        }
        match s.name {
            "custom" => {
                assert_eq!(server.storage.url, "s3://bucket/datasets");
                assert_eq!(server.storage.endpoint.as_deref(), Some("http://minio.minio.svc:9000"));
                assert_eq!(server.storage.region.as_deref(), Some("eu-west-1"));
                assert_eq!((server.storage.allow_http, server.storage.path_style), (Some(true), Some(true)));
                assert_eq!(server.nfs.listen, "127.0.0.1:30490");
                assert!(server.nfs.hide_snapshot_dir);
                assert_eq!(server.admin.listen.as_deref(), Some("unix:///run/slatefs-b/admin.sock"));
                assert_eq!((server.durability.mode, server.durability.flush_interval_ms), (DurabilityMode::Async, 25));
            }
            name => {
                let url = if name == "secrets" { "s3://bucket/slatefs" } else { "file:///var/lib/slatefs" };
                assert_eq!(server.storage.url, url);
                assert_eq!(server.nfs.listen, "127.0.0.1:20490");
                assert_eq!(server.admin.listen.as_deref(), Some("unix:///run/slatefs/admin.sock"));
                assert_eq!((server.durability.mode, server.durability.flush_interval_ms), (DurabilityMode::Sync, 100));
            }
        }
        // Read caches: memory in every process that opens datasets, the disk cache in the
        // node's dataset server only, on a hostPath at the same path.
        let (cache_dir, cache_gib, memory_mib) = match s.name {
            "custom" => (Some("/mnt/ssd/slatefs-cache"), 50, 1024),
            "secrets" => (None, 16, 256),
            _ => (Some("/var/cache/slatefs"), 16, 256),
        };
        for p in &all {
            assert_eq!(p.config.storage.memory_cache_size_bytes().unwrap(), memory_mib << 20, "{}/{}", p.what, p.c.name);
            // The chart's default write buffer, which with the memory cache fits a 1 GiB node.
            assert_eq!(p.config.storage.write_buffer_size_bytes().unwrap(), 192 << 20, "{}/{}", p.what, p.c.name);
            let mounted = p.c.volume_mounts.iter().flatten().find(|m| m.name == "read-cache");
            if p.role == "serve-reader" {
                assert_eq!(p.config.storage.cache_dir.as_deref().and_then(|d| d.to_str()), cache_dir, "{}", s.name);
                match cache_dir {
                    Some(dir) => {
                        assert_eq!(p.config.storage.cache_size_bytes().unwrap(), cache_gib << 30);
                        assert_eq!(mounted.map(|m| m.mount_path.as_str()), Some(dir));
                        assert_eq!(resolve(p.pod, p.c, dir).1.as_deref(), Some(dir), "the cache is a hostPath");
                    }
                    None => assert!(mounted.is_none(), "no disk cache, no volume"),
                }
            } else if p.role == "csi-node" {
                // It reads the server's file (node.toml) but opens no store: no cache volume.
                assert!(mounted.is_none(), "{}/{}: the disk cache is the servers'", p.what, p.c.name);
            } else {
                assert!(p.config.storage.cache_dir.is_none() && mounted.is_none(), "{}/{}: the disk cache is the servers'", p.what, p.c.name);
            }
        }
        // The servers open the store: a local directory is the same hostPath for both (and the
        // CSI controller reads its free space); object storage needs none, but the credentials
        // of the named Secret, which only the servers get.
        for p in &all {
            let store_mount = p.c.volume_mounts.iter().flatten().find(|m| m.mount_path == "/var/lib/slatefs");
            let creds = env_names(p.c).iter().filter(|n| n.starts_with("AWS_")).cloned().collect::<Vec<_>>();
            let opens_store = p.role.starts_with("serve");
            let on_s3 = s.name != "default";
            if on_s3 {
                assert!(store_mount.is_none(), "{}/{}: no local store for s3://", p.what, p.c.name);
            } else if opens_store || p.role == "csi-controller" {
                assert!(store_mount.is_some(), "{}/{}: the file store must be mounted", p.what, p.c.name);
                assert_eq!(resolve(p.pod, p.c, "/var/lib/slatefs").1.as_deref(), Some("/var/lib/slatefs"));
                assert_eq!(store_mount.unwrap().read_only == Some(true), !opens_store, "only servers write the store");
            } else {
                assert!(store_mount.is_none(), "{}/{}", p.what, p.c.name);
            }
            if on_s3 && opens_store {
                assert_eq!(creds, ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"], "{}/{}", p.what, p.c.name);
                for e in p.c.env.iter().flatten().filter(|e| e.name.starts_with("AWS_")) {
                    let r = e.value_from.as_ref().and_then(|v| v.secret_key_ref.as_ref()).expect("from a Secret");
                    assert_eq!(r.name, "s3-creds");
                }
            } else {
                assert!(creds.is_empty(), "{}/{} gets no store credentials", p.what, p.c.name);
            }
        }
    }
}

#[test]
fn snapshot_crds_and_controller_are_optional_and_correct() {
    let default = typed("default", &rendered("default").docs);
    assert!(default.crds.is_empty(), "no CRDs by default");
    assert!(!workloads(&default).iter().any(|(w, _)| w.contains("snapshot-controller")), "no snapshot-controller by default");

    let r = rendered("custom");
    let custom = typed("custom", &r.docs);
    let by_kind: BTreeMap<_, _> = custom.crds.iter().map(|c| (c.spec.names.kind.as_str(), c)).collect();
    assert_eq!(by_kind.keys().copied().collect::<Vec<_>>(), ["VolumeSnapshot", "VolumeSnapshotClass", "VolumeSnapshotContent"]);
    for (kind, plural, scope, status) in [
        ("VolumeSnapshot", "volumesnapshots", "Namespaced", true),
        ("VolumeSnapshotContent", "volumesnapshotcontents", "Cluster", true),
        ("VolumeSnapshotClass", "volumesnapshotclasses", "Cluster", false),
    ] {
        let crd = by_kind[kind];
        assert_eq!(crd.metadata.name.as_deref(), Some(format!("{plural}.snapshot.storage.k8s.io").as_str()));
        assert_eq!(crd.spec.group, "snapshot.storage.k8s.io");
        assert_eq!(crd.spec.names.plural, plural);
        assert_eq!(crd.spec.scope, scope);
        let versions: Vec<_> = crd.spec.versions.iter().map(|v| (v.name.as_str(), v.served, v.storage)).collect();
        assert_eq!(versions, [("v1", true, true)], "{kind}");
        let v1 = &crd.spec.versions[0];
        assert_eq!(v1.subresources.as_ref().and_then(|s| s.status.as_ref()).is_some(), status, "{kind} status subresource");
        let ann = crd.metadata.annotations.as_ref().unwrap();
        assert!(ann.get("api-approved.kubernetes.io").is_some_and(|a| a.starts_with("https://")), "{kind}: *.k8s.io CRDs need api-approved");
        assert_eq!(ann.get("helm.sh/resource-policy").map(String::as_str), Some("keep"), "{kind}: uninstalling must not delete snapshots");
    }
    // The schemas know the fields the controllers write.
    let fields = |kind: &str, path: &[&str]| {
        let mut s = snapshot_crds()[kind].clone();
        for p in path {
            s = s.properties.as_ref().and_then(|m| m.get(*p)).unwrap_or_else(|| panic!("{kind} schema lacks {path:?}")).clone();
        }
        s.properties.unwrap_or_default().keys().cloned().collect::<Vec<_>>()
    };
    assert_eq!(fields("VolumeSnapshot", &["spec"]), ["source", "volumeSnapshotClassName"]);
    assert_eq!(fields("VolumeSnapshot", &["status"]), ["boundVolumeSnapshotContentName", "creationTime", "error", "readyToUse", "restoreSize", "volumeGroupSnapshotName"]);
    assert_eq!(fields("VolumeSnapshotContent", &["spec"]), ["deletionPolicy", "driver", "source", "sourceVolumeMode", "volumeSnapshotClassName", "volumeSnapshotRef"]);
    assert_eq!(fields("VolumeSnapshotContent", &["status"]), ["creationTime", "error", "readyToUse", "restoreSize", "snapshotHandle", "volumeGroupSnapshotHandle"]);
    assert_eq!(fields("VolumeSnapshotClass", &[]), ["apiVersion", "deletionPolicy", "driver", "kind", "metadata", "parameters"]);
    // The CRD schemas do reject what they should.
    let mut errors = Vec::new();
    validate(&snapshot_crds()["VolumeSnapshot"], &json!({"apiVersion": "snapshot.storage.k8s.io/v1", "kind": "VolumeSnapshot",
        "metadata": {"name": "x"}, "spec": {"source": {"persistentVolumeClaimName": "a", "volumeSnapshotContentName": "b"}, "snapshotClass": "y"}}), "", &mut errors);
    assert_eq!(errors.len(), 2, "{errors:?}");
    errors.clear();
    validate(&snapshot_crds()["VolumeSnapshotClass"], &json!({"driver": "d", "deletionPolicy": "Keep"}), "", &mut errors);
    assert_eq!(errors.len(), 1, "{errors:?}");

    // The class is left out while the CRDs are being installed by this very release; NOTES asks
    // for the upgrade that adds it.
    assert!(!custom.snapshot_objects.iter().any(|(k, _)| k == "VolumeSnapshotClass"));
    assert!(r.notes.contains("helm upgrade") && r.notes.contains("VolumeSnapshotClass \"fast\""), "{}", r.notes);

    let (_, sc) = workloads(&custom).into_iter().find(|(w, _)| w.contains("snapshot-controller")).unwrap();
    assert_eq!(sc.containers.len(), 1);
    let deployment = custom.deployments.iter().find(|d| d.metadata.name.as_deref().unwrap().contains("snapshot-controller")).unwrap();
    assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(2));
}

/// The Secret of the servers' internal channel that manifests/slatefs.yaml expects the user to
/// create (tests/support/helm_render.py renders it with cluster.existingSecret set to it).
const MANIFEST_CLUSTER_SECRET: &str = "slatefs-cluster-secret";

/// `value` with every `secretName: from` turned into `secretName: to`.
fn rename_secret_refs(value: &mut Value, from: &str, to: &str) {
    match value {
        Value::Mapping(m) => {
            for (k, v) in m.iter_mut() {
                if k.as_str() == Some("secretName") && v.as_str() == Some(from) {
                    *v = Value::String(to.to_string());
                } else {
                    rename_secret_refs(v, from, to);
                }
            }
        }
        Value::Sequence(items) => items.iter_mut().for_each(|v| rename_secret_refs(v, from, to)),
        _ => {}
    }
}

#[test]
fn manifests_are_the_chart_rendered_with_default_values_but_the_cluster_secret() {
    let file = read("manifests/slatefs.yaml");
    let generated = &helm().manifests;
    if &file != generated {
        let line = file.lines().zip(generated.lines()).position(|(a, b)| a != b)
            .unwrap_or_else(|| file.lines().count().min(generated.lines().count()));
        panic!("manifests/slatefs.yaml differs from the chart's default render from line {}:\n  file:  {:?}\n  chart: {:?}\n\
                Regenerate it: python3 tests/support/helm_render.py manifests --chart charts/slatefs > manifests/slatefs.yaml",
            line + 1, file.lines().nth(line), generated.lines().nth(line));
    }
    // The generated text is the default render, object for object, except that the cluster
    // secret is the user's own (a random one drawn at render time would be published in the
    // file, and differ at every render): no Secret object, and the volumes name that Secret.
    let docs: Vec<Value> = split_yaml(&file).into_iter().map(|(_, v)| v).collect();
    let generated_secret = "slatefs-cluster";
    let mut default: Vec<Value> = rendered("default").docs.iter()
        .filter(|d| !(d.kind() == "Secret" && d.name() == generated_secret))
        .map(|d| d.value.clone()).collect();
    assert_eq!(default.len() + 1, rendered("default").docs.len(), "the default render creates the Secret {generated_secret}");
    default.iter_mut().for_each(|v| rename_secret_refs(v, generated_secret, MANIFEST_CLUSTER_SECRET));
    assert_eq!(docs, default);
    assert!(file.contains(&format!("create secret generic {MANIFEST_CLUSTER_SECRET}")), "the header says how to create the Secret");
    let guide = read("docs/kubernetes.md");
    assert!(guide.contains(&format!("create secret generic {MANIFEST_CLUSTER_SECRET}")), "docs/kubernetes.md says how to create the Secret");
    // Every file in manifests/ parses strictly.
    for entry in std::fs::read_dir(repo().join("manifests")).unwrap() {
        let path = entry.unwrap().path();
        assert!(matches!(path.extension().and_then(|e| e.to_str()), Some("yaml" | "yml")), "{}: only YAML in manifests/", path.display());
        let text = std::fs::read_to_string(&path).unwrap();
        let docs: Vec<Doc> = split_yaml(&text).into_iter()
            .map(|(t, v)| Doc { source: path.display().to_string(), text: t, value: v }).collect();
        assert!(!docs.is_empty());
        let o = typed(&path.display().to_string(), &docs);
        for (kind, v) in &o.snapshot_objects {
            check_snapshot_object(&path.display().to_string(), kind, v);
        }
    }
}

/// The documents of a multi-document YAML file (empty ones dropped).
fn split_yaml(text: &str) -> Vec<(String, Value)> {
    let mut out = Vec::new();
    for de in serde_yaml::Deserializer::from_str(text) {
        let v = Value::deserialize(de).expect("valid YAML");
        if !v.is_null() {
            out.push((serde_yaml::to_string(&v).unwrap(), v));
        }
    }
    out
}

fn quantity_bytes(q: &str) -> u64 {
    let (num, mult) = [("Ki", 1u64 << 10), ("Mi", 1 << 20), ("Gi", 1 << 30), ("Ti", 1 << 40)]
        .iter()
        .find_map(|(s, m)| q.strip_suffix(s).map(|n| (n, *m)))
        .unwrap_or((q, 1));
    num.parse::<u64>().unwrap_or_else(|_| panic!("quantity {q}")) * mult
}

#[test]
fn examples_parse_and_fit_together_and_with_the_chart() {
    let mut docs = Vec::new();
    let mut files = BTreeSet::new();
    for entry in std::fs::read_dir(repo().join("examples")).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        assert!(name.ends_with(".yaml"), "examples/{name}: only YAML here (cargo would build a .rs as an example)");
        let text = std::fs::read_to_string(&path).unwrap();
        for (t, v) in split_yaml(&text) {
            docs.push(Doc { source: format!("examples/{name}"), text: t, value: v });
        }
        files.insert(name);
    }
    let o = typed("examples", &docs);
    for (kind, v) in &o.snapshot_objects {
        check_snapshot_object("examples", kind, v);
    }

    // What the chart creates by default.
    let chart = typed("default", &rendered("default").docs);
    let sc_name = chart.storage_classes[0].metadata.name.clone().unwrap();
    let (_, vsc) = chart.snapshot_objects.iter().find(|(k, _)| k == "VolumeSnapshotClass").unwrap();
    let vsc_name = vsc["metadata"]["name"].as_str().unwrap();

    let pvcs: BTreeMap<_, _> = o.pvcs.iter().map(|p| (p.metadata.name.clone().unwrap(), p)).collect();
    let size = |p: &PersistentVolumeClaim| quantity_bytes(&p.spec.as_ref().unwrap().resources.as_ref().unwrap().requests.as_ref().unwrap()["storage"].0);
    let snapshots: Vec<_> = o.snapshot_objects.iter().filter(|(k, _)| k == "VolumeSnapshot").map(|(_, v)| v).collect();
    assert_eq!(snapshots.len(), 1, "one VolumeSnapshot example");
    let snap = snapshots[0];
    assert_eq!(snap["spec"]["volumeSnapshotClassName"].as_str(), Some(vsc_name), "the snapshot uses the chart's class");
    let source = pvcs.get(snap["spec"]["source"]["persistentVolumeClaimName"].as_str().unwrap()).expect("the snapshot's PVC is an example");

    let (mut plain, mut restored, mut cloned) = (0, 0, 0);
    for p in &o.pvcs {
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(spec.storage_class_name.as_deref(), Some(sc_name.as_str()), "{:?} uses the chart's StorageClass", p.metadata.name);
        assert!(spec.volume_mode.is_none() || spec.volume_mode.as_deref() == Some("Filesystem"), "slatefs volumes are filesystems");
        match &spec.data_source {
            None => plain += 1,
            Some(ds) if ds.kind == "VolumeSnapshot" => {
                restored += 1;
                assert_eq!(ds.api_group.as_deref(), Some("snapshot.storage.k8s.io"));
                assert_eq!(Some(ds.name.as_str()), snap["metadata"]["name"].as_str());
                assert!(size(p) >= size(source), "a restore is at least as large as its snapshot");
            }
            Some(ds) if ds.kind == "PersistentVolumeClaim" => {
                cloned += 1;
                assert!(ds.api_group.is_none());
                let src = pvcs.get(&ds.name).expect("the clone's source is an example PVC");
                assert!(src.spec.as_ref().unwrap().data_source.is_none());
                assert!(size(p) >= size(src), "a clone is at least as large as its source");
            }
            Some(ds) => panic!("unexpected data source {ds:?}"),
        }
    }
    assert_eq!((plain, restored, cloned), (1, 1, 1), "a PVC, a PVC restored from the snapshot, a clone");
    // The pods mount example PVCs; one writes to the snapshotted PVC.
    let mut writes_source = false;
    for pod in &o.pods {
        let spec = pod.spec.as_ref().unwrap();
        for v in spec.volumes.iter().flatten() {
            let claim = &v.persistent_volume_claim.as_ref().expect("example pods use PVCs").claim_name;
            assert!(pvcs.contains_key(claim), "pod {:?} mounts unknown PVC {claim}", pod.metadata.name);
            if Some(claim.as_str()) == source.metadata.name.as_deref() {
                writes_source = spec.containers.iter().flat_map(|c| c.volume_mounts.iter().flatten())
                    .any(|m| m.name == v.name && m.read_only != Some(true));
            }
        }
        for c in &spec.containers {
            let image = c.image.as_deref().unwrap();
            assert!(image.contains(':') && !image.ends_with(":latest"), "pinned example image {image}");
        }
    }
    assert!(writes_source, "a pod writes to the snapshotted volume");

    // NOTES.txt and the README section walk through exactly these files.
    let notes = &rendered("default").notes;
    let guide = read("docs/kubernetes.md");
    for f in &files {
        assert!(notes.contains(&format!("examples/{f}")), "NOTES.txt does not mention examples/{f}");
        assert!(guide.contains(&format!("examples/{f}")), "docs/kubernetes.md does not mention examples/{f}");
    }
    for text in [notes.as_str(), guide.as_str()] {
        for word in text.split(|c: char| c.is_whitespace() || c == '`' || c == '(' || c == ')') {
            if let Some(f) = word.strip_prefix("examples/") {
                let f = f.trim_end_matches([',', '.', ':', ';']);
                if !f.is_empty() {
                    assert!(files.contains(f), "a guide mentions examples/{f}, which does not exist");
                }
            }
        }
    }
}

#[test]
fn values_are_documented_key_by_key() {
    let text = read("charts/slatefs/values.yaml");
    let mut prev_comment = false;
    let mut undocumented = Vec::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        if trimmed.starts_with('#') {
            prev_comment = true;
            continue;
        }
        if trimmed.is_empty() {
            prev_comment = false;
            continue;
        }
        if !trimmed.starts_with('-') {
            if let Some((key, rest)) = trimmed.split_once(':') {
                // A leaf (a value on the line) needs its own comment; a section header may rely
                // on the comments of its keys.
                if !rest.trim().is_empty() && !prev_comment {
                    undocumented.push(key.to_string());
                }
            }
        }
        prev_comment = false;
    }
    assert!(undocumented.is_empty(), "values.yaml keys without a comment: {undocumented:?}");
    // The sidecar images in values.yaml are the pinned ones.
    let values: Value = serde_yaml::from_str(&text).unwrap();
    for (key, image) in [("provisioner", PROVISIONER), ("snapshotter", SNAPSHOTTER), ("resizer", RESIZER),
                         ("livenessProbe", LIVENESS), ("nodeDriverRegistrar", REGISTRAR)] {
        assert_eq!(values["sidecars"][key]["image"].as_str(), Some(image), "sidecars.{key}.image");
    }
    assert_eq!(values["snapshotController"]["image"].as_str(), Some(SNAPSHOT_CONTROLLER));
    assert_eq!(values["image"]["repository"].as_str(), Some(SLATEFS_REPOSITORY));
    assert_eq!(values["kubeletDir"].as_str(), Some("/var/lib/kubelet"));
    assert_eq!(values["driverName"].as_str(), Some(DEFAULT_DRIVER));
    assert_eq!(values["snapshotController"]["enabled"].as_bool(), Some(false), "off by default");
    assert_eq!(values["snapshotCRDs"]["install"].as_bool(), Some(false), "off by default");
    // values.schema.json refuses unknown keys at every level.
    let schema: serde_json::Value = serde_json::from_str(&read("charts/slatefs/values.schema.json")).unwrap();
    fn closed(s: &serde_json::Value, path: &str) {
        if s["type"] == "object" {
            if let Some(props) = s["properties"].as_object() {
                assert_eq!(s["additionalProperties"], json!(false), "values.schema.json: {path} accepts unknown keys");
                for (k, v) in props {
                    closed(v, &format!("{path}.{k}"));
                }
            }
        }
    }
    closed(&schema, "");
}

// ---------------------------------------------------------------------------------------------
// The Dockerfile (no Docker engine here: its text is checked against the repository).

struct Stage {
    base: String,
    name: String,
    lines: Vec<String>,
}

/// The Dockerfile's instructions (continuation lines joined, comments dropped), by stage.
fn dockerfile() -> (BTreeMap<String, String>, Vec<Stage>) {
    let text = read("Dockerfile");
    let mut instructions = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if cur.is_empty() && (t.starts_with('#') || t.is_empty()) {
            continue;
        }
        if let Some(body) = t.strip_suffix('\\') {
            cur.push_str(body);
            cur.push(' ');
        } else {
            cur.push_str(t);
            instructions.push(std::mem::take(&mut cur));
        }
    }
    let mut args = BTreeMap::new();
    let mut stages: Vec<Stage> = Vec::new();
    for ins in instructions {
        let (op, rest) = ins.split_once(' ').unwrap_or((&ins, ""));
        match op.to_ascii_uppercase().as_str() {
            "FROM" => {
                let parts: Vec<_> = rest.split_whitespace().collect();
                assert!(parts.len() == 3 && parts[1].eq_ignore_ascii_case("AS"), "FROM without a stage name: {ins}");
                stages.push(Stage { base: parts[0].to_string(), name: parts[2].to_string(), lines: Vec::new() });
            }
            "ARG" if stages.is_empty() => {
                let (k, v) = rest.split_once('=').expect("global ARGs have defaults");
                args.insert(k.to_string(), v.to_string());
            }
            _ => stages.last_mut().expect("an instruction before FROM").lines.push(ins.clone()),
        }
    }
    (args, stages)
}

fn cargo_toml() -> toml::Value {
    toml::from_str(&read("Cargo.toml")).expect("Cargo.toml")
}

/// Whether .dockerignore lets `path` into the build context (last matching rule wins).
fn docker_context_admits(path: &str) -> bool {
    let mut admitted = true;
    for line in read(".dockerignore").lines() {
        let rule = line.trim();
        if rule.is_empty() || rule.starts_with('#') {
            continue;
        }
        let (negate, pattern) = match rule.strip_prefix('!') {
            Some(p) => (true, p),
            None => (false, rule),
        };
        let matches = pattern == "*" || path == pattern || path.starts_with(&format!("{pattern}/"))
            || (pattern.starts_with("**/*") && path.ends_with(&pattern[4..]));
        if matches {
            admitted = negate;
        }
    }
    admitted
}

#[test]
fn dockerfile_builds_what_ci_builds_into_a_small_image_that_can_mount_nfs() {
    let (args, stages) = dockerfile();
    let cargo = cargo_toml();
    let package = &cargo["package"];
    assert_eq!(args.get("SLATEFS_VERSION").map(String::as_str), package["version"].as_str(), "the image version is the crate's");
    assert_eq!(args.get("RUST_VERSION").map(String::as_str), package["rust-version"].as_str(), "the toolchain is the crate's rust-version");

    assert_eq!(stages.len(), 2, "a build stage and a runtime stage");
    let (build, runtime) = (&stages[0], &stages[1]);
    assert_eq!((build.name.as_str(), runtime.name.as_str()), ("build", "runtime"), "stage names");
    assert_eq!(build.base, "docker.io/library/rust:${RUST_VERSION}-bookworm");
    assert_eq!(runtime.base, "docker.io/library/debian:bookworm-slim", "the runtime is Debian bookworm-slim, like the build's glibc");

    // The build: exactly CI's command, once.
    let builds: Vec<_> = build.lines.iter().filter(|l| l.contains("cargo build")).collect();
    assert_eq!(builds.len(), 1);
    assert!(builds[0].contains(&format!("{BUILD_COMMAND} ")) || builds[0].ends_with(BUILD_COMMAND), "{}", builds[0]);
    let after = builds[0].split(BUILD_COMMAND).nth(1).unwrap();
    assert!(!after.trim_start().starts_with("--"), "no extra cargo flags: {}", builds[0]);
    if let Ok(ci) = std::fs::read_to_string(repo().join(".ci/run")) {
        for line in ci.lines().filter(|l| l.contains("cargo build")) {
            assert!(line.contains(BUILD_COMMAND), ".ci/run builds differently from the Dockerfile: {line}");
        }
    }
    // The binary: Cargo's binary name, from the release profile, to where the chart runs it.
    let bins: Vec<String> = cargo.get("bin").and_then(|b| b.as_array()).map(|bins| bins.iter()
        .map(|b| b["name"].as_str().unwrap().to_string()).collect())
        .unwrap_or_else(|| vec![package["name"].as_str().unwrap().to_string()]);
    assert!(bins.contains(&"slatefs".to_string()), "Cargo builds no `slatefs` binary: {bins:?}");
    assert!(repo().join("src/main.rs").exists() || cargo.get("bin").is_some(), "no binary target");
    let installed = builds[0].split("&&").map(str::trim).find(|c| c.starts_with("install ")).expect("the binary is copied out of the cache mount");
    let parts: Vec<_> = installed.split_whitespace().collect();
    let (from, to) = (parts[parts.len() - 2], parts[parts.len() - 1]);
    assert_eq!(from, "target/release/slatefs");
    let copy = runtime.lines.iter().find(|l| l.starts_with("COPY --from=")).expect("the runtime copies the binary");
    let copy_parts: Vec<_> = copy.split_whitespace().collect();
    assert_eq!(copy_parts, ["COPY", &format!("--from={}", build.name), to, BINARY], "{copy}");
    assert!(runtime.lines.iter().any(|l| l.starts_with("ENTRYPOINT") && l.contains(&format!("\"{BINARY}\""))));

    // The runtime has mount(8) and mount.nfs (nfs-common), which the node plugin runs, and the
    // CA roots for object storage over TLS.
    let apt = runtime.lines.iter().find(|l| l.contains("apt-get install")).expect("apt-get install");
    for pkg in ["nfs-common", "mount", "ca-certificates"] {
        assert!(apt.split_whitespace().any(|w| w == pkg), "runtime lacks {pkg}: {apt}");
    }
    assert!(apt.contains("--no-install-recommends") && apt.contains("rm -rf /var/lib/apt/lists"), "keep the image small: {apt}");
    // The version is a label, and checked against Cargo.toml during the build.
    assert!(runtime.lines.iter().any(|l| l.starts_with("LABEL") && l.contains("org.opencontainers.image.version=\"${SLATEFS_VERSION}\"")));
    assert!(build.lines.iter().any(|l| l.starts_with("RUN") && l.contains("Cargo.toml") && l.contains("$SLATEFS_VERSION")));

    // COPY sources exist, and the context holds every input of the build but not target/.
    for stage in &stages {
        for l in stage.lines.iter().filter(|l| l.starts_with("COPY ") && !l.contains("--from=")) {
            let parts: Vec<_> = l.split_whitespace().skip(1).filter(|p| !p.starts_with("--")).collect();
            for src in &parts[..parts.len() - 1] {
                assert!(repo().join(src).exists(), "Dockerfile copies missing {src}");
            }
        }
    }
    let mut inputs = vec!["Cargo.toml".to_string(), "Cargo.lock".to_string(), "src/main.rs".to_string(), "src/lib.rs".to_string()];
    match package.get("build") {
        Some(toml::Value::String(b)) => inputs.push(b.clone()),
        Some(toml::Value::Boolean(false)) => {}
        _ => if repo().join("build.rs").exists() { inputs.push("build.rs".to_string()) },
    }
    if repo().join("proto").exists() {
        for e in std::fs::read_dir(repo().join("proto")).unwrap() {
            inputs.push(format!("proto/{}", e.unwrap().file_name().to_str().unwrap()));
        }
    }
    // Explicit targets make Cargo look for their files even for `cargo build`.
    for kind in ["bin", "bench", "test", "example"] {
        for t in cargo.get(kind).and_then(|t| t.as_array()).into_iter().flatten() {
            let dir = match kind { "bin" => "src/bin", "bench" => "benches", "test" => "tests", _ => "examples" };
            let name = t["name"].as_str().unwrap();
            let path = t.get("path").and_then(|p| p.as_str()).map(str::to_string).unwrap_or_else(|| format!("{dir}/{name}.rs"));
            inputs.push(path);
        }
    }
    for input in &inputs {
        assert!(repo().join(input).exists(), "Cargo needs {input}, which does not exist");
        assert!(docker_context_admits(input), ".dockerignore keeps {input} out of the build context");
    }
    for heavy in ["target", "target/release/slatefs", ".git", "charts/slatefs/values.yaml", "tests/vm/cache"] {
        assert!(!docker_context_admits(heavy), ".dockerignore lets {heavy} into the build context");
    }
}

#[test]
fn readme_section_covers_install_roll_and_parameters() {
    let guide = read("docs/kubernetes.md");
    for needle in [
        "helm install",
        "manifests/slatefs.yaml",
        "kubeletDir",
        "OnDelete",
        "delete pod",
        "StorageClass parameters",
        "csi.storage.k8s.io/provisioner-secret-name",
        "docker build",
        "snapshotController.enabled",
        "python3 tests/support/helm_render.py manifests",
        "cluster.port",
        "cluster.existingSecret",
        "NetworkPolicy",
        "needs no RBAC",
        "web.enabled",
        "web.tokenSecret",
        "port-forward",
    ] {
        assert!(guide.contains(needle), "docs/kubernetes.md does not cover {needle:?}");
    }
}

#[path = "k8s_packaging/metrics.rs"]
mod metrics;

#[path = "k8s_packaging/web.rs"]
mod web;

/// With the console on, NOTES.txt says how to reach it: a port-forward to the controller
/// Deployment the chart renders, on the console's port, and where its token is; with the
/// console off it says nothing about one.
#[test]
fn notes_show_the_port_forward_to_the_console_when_it_is_on() {
    let r = rendered("custom");
    let o = typed("custom", &r.docs);
    let controller = o
        .deployments
        .iter()
        .filter_map(|d| d.metadata.name.clone())
        .find(|n| n.ends_with("-controller") && !n.contains("snapshot"))
        .expect("a controller Deployment");
    let forward = format!("kubectl -n {} port-forward deploy/{controller} 8443:8443", r.namespace);
    assert!(r.notes.contains(&forward), "NOTES.txt must show {forward:?}:\n{}", r.notes);
    assert!(r.notes.contains("http://127.0.0.1:8443/"), "{}", r.notes);
    assert!(r.notes.contains(&format!("-n {} get secret console-token", r.namespace)), "{}", r.notes);
    let default = &rendered("default").notes;
    assert!(!default.contains("port-forward"), "the console is off by default:\n{default}");
}
