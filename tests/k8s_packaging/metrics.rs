//! The chart's metrics: ports and `--metrics-listen` on every slatefs container, scrape
//! annotations, the ServiceMonitor only when the cluster serves monitoring.coreos.com/v1, and
//! the sidecars passing `--extra-create-metadata` (the names people know).

use std::process::{Command, Stdio};

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment};
use k8s_openapi::api::core::v1::{Container, PodSpec, Service};
use serde_json::json;
use serde_yaml::Value;

use super::{python, repo, strict};

/// Runs render requests through the Helm engine (one process for all of them).
pub(super) fn batch(requests: serde_json::Value) -> Vec<serde_json::Value> {
    let mut child = Command::new(python())
        .arg(repo().join("tests/support/helm_render.py"))
        .args(["batch", "--chart"])
        .arg(repo().join("charts/slatefs"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(requests.to_string().as_bytes()).unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "helm_render.py: {}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// Renders the chart with `values`, the cluster serving `api_versions`; the documents parsed.
pub(super) fn render(values: serde_json::Value, api_versions: &[&str]) -> Vec<Value> {
    let results = batch(json!([{"op": "render", "values": values, "name": "slatefs", "namespace": "kube-system", "api_versions": api_versions}]));
    let r = &results[0];
    assert!(r.get("error").is_none(), "the chart does not render: {}", r["error"]);
    r["documents"].as_array().unwrap().iter().map(|d| serde_yaml::from_str(d["yaml"].as_str().unwrap()).unwrap()).collect()
}

fn find<'a>(docs: &'a [Value], kind: &str, name: &str) -> Option<&'a Value> {
    docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name)
}

fn pod_of(docs: &[Value], kind: &str, name: &str) -> (PodSpec, std::collections::BTreeMap<String, String>) {
    let d = find(docs, kind, name).unwrap_or_else(|| panic!("no {kind} {name}"));
    let template = match kind {
        "Deployment" => strict::<Deployment>(name, d).spec.unwrap().template,
        _ => strict::<DaemonSet>(name, d).spec.unwrap().template,
    };
    (template.spec.unwrap(), template.metadata.unwrap().annotations.unwrap_or_default())
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no container {name}"))
}

fn args(c: &Container) -> Vec<String> {
    c.args.clone().unwrap_or_default()
}

/// The container's port called `name`: (containerPort, hostPort).
fn port(c: &Container, name: &str) -> Option<(i32, Option<i32>)> {
    c.ports.as_ref()?.iter().find(|p| p.name.as_deref() == Some(name)).map(|p| (p.container_port, p.host_port))
}

const MONITORING: &[&str] = &["monitoring.coreos.com/v1", "monitoring.coreos.com/v1/ServiceMonitor"];

#[test]
fn metrics_are_off_by_default_and_the_sidecars_pass_the_pvc_names() {
    let docs = render(json!({}), MONITORING);
    let (controller, annotations) = pod_of(&docs, "Deployment", "slatefs-controller");
    assert!(!annotations.contains_key("prometheus.io/scrape"));
    for c in &controller.containers {
        assert!(!args(c).iter().any(|a| a.starts_with("--metrics-listen")), "{}", c.name);
    }
    for sidecar in ["csi-provisioner", "csi-snapshotter"] {
        assert!(args(container(&controller, sidecar)).contains(&"--extra-create-metadata".to_string()), "{sidecar}");
    }
    assert!(!docs.iter().any(|d| d["kind"] == "ServiceMonitor"));
}

#[test]
fn metrics_on_give_every_slatefs_container_a_page_and_the_operator_a_servicemonitor() {
    let values = json!({"metrics": {"enabled": true, "serverPort": 29200, "nodePort": 29201, "controllerPort": 9200, "controllerCsiPort": 9201,
                                    "serviceMonitor": {"interval": "15s", "labels": {"release": "prom"}}}});
    let docs = render(values.clone(), MONITORING);

    let (controller, annotations) = pod_of(&docs, "Deployment", "slatefs-controller");
    assert_eq!(annotations.get("prometheus.io/scrape").map(String::as_str), Some("true"));
    assert_eq!(annotations.get("prometheus.io/port").map(String::as_str), Some("9200"));
    assert_eq!(annotations.get("prometheus.io/path").map(String::as_str), Some("/metrics"));
    let catalog = container(&controller, "catalog");
    assert!(args(catalog).contains(&"--metrics-listen=0.0.0.0:9200".to_string()), "{:?}", args(catalog));
    assert_eq!(port(catalog, "serve-metrics"), Some((9200, None)));
    let csi = container(&controller, "csi-plugin");
    assert!(args(csi).contains(&"--metrics-listen=0.0.0.0:9201".to_string()), "{:?}", args(csi));
    assert_eq!(port(csi, "csi-metrics"), Some((9201, None)));

    // Host-network pods listen on their node's address only, on a host port.
    let (server, annotations) = pod_of(&docs, "DaemonSet", "slatefs-server");
    assert_eq!(annotations.get("prometheus.io/port").map(String::as_str), Some("29200"));
    let serve = container(&server, "server");
    assert!(args(serve).contains(&"--metrics-listen=$(HOST_IP):29200".to_string()), "{:?}", args(serve));
    assert_eq!(port(serve, "serve-metrics"), Some((29200, Some(29200))));
    let (node, annotations) = pod_of(&docs, "DaemonSet", "slatefs-node");
    assert_eq!(annotations.get("prometheus.io/port").map(String::as_str), Some("29201"));
    let plugin = container(&node, "csi-plugin");
    assert!(args(plugin).contains(&"--metrics-listen=$(HOST_IP):29201".to_string()), "{:?}", args(plugin));
    assert!(plugin.env.as_ref().unwrap().iter().any(|e| e.name == "HOST_IP"));
    assert_eq!(port(plugin, "csi-metrics"), Some((29201, Some(29201))));

    // The Service reaches each pod's named ports; the ServiceMonitor scrapes both.
    let service: Service = strict("metrics Service", find(&docs, "Service", "slatefs-metrics").expect("metrics Service"));
    let spec = service.spec.unwrap();
    assert_eq!(spec.cluster_ip.as_deref(), Some("None"));
    let targets: Vec<String> = spec.ports.unwrap().iter().map(|p| format!("{:?}", p.target_port)).collect();
    assert!(targets.iter().any(|t| t.contains("serve-metrics")) && targets.iter().any(|t| t.contains("csi-metrics")), "{targets:?}");
    let selector = spec.selector.unwrap();
    let server_labels = find(&docs, "DaemonSet", "slatefs-server").unwrap()["spec"]["template"]["metadata"]["labels"].clone();
    for (k, v) in &selector {
        assert_eq!(server_labels[k.as_str()].as_str(), Some(v.as_str()), "the Service selects the server pods by {k}");
    }
    let sm = find(&docs, "ServiceMonitor", "slatefs").expect("ServiceMonitor");
    assert_eq!(sm["apiVersion"], "monitoring.coreos.com/v1");
    assert_eq!(sm["metadata"]["labels"]["release"], "prom");
    let service_labels = find(&docs, "Service", "slatefs-metrics").unwrap()["metadata"]["labels"].clone();
    for (k, v) in sm["spec"]["selector"]["matchLabels"].as_mapping().unwrap() {
        assert_eq!(&service_labels[k.as_str().unwrap()], v, "the ServiceMonitor selects the Service");
    }
    let endpoints: Vec<&str> = sm["spec"]["endpoints"].as_sequence().unwrap().iter().map(|e| e["port"].as_str().unwrap()).collect();
    assert_eq!(endpoints, ["serve-metrics", "csi-metrics"]);
    assert!(sm["spec"]["endpoints"].as_sequence().unwrap().iter().all(|e| e["interval"] == "15s" && e["path"] == "/metrics"));

    // A cluster without the Prometheus Operator gets neither, and keeps the annotations.
    let plain = render(values, &[]);
    assert!(!plain.iter().any(|d| d["kind"] == "ServiceMonitor" || d["metadata"]["name"] == "slatefs-metrics"));
    let (_, annotations) = pod_of(&plain, "DaemonSet", "slatefs-server");
    assert_eq!(annotations.get("prometheus.io/scrape").map(String::as_str), Some("true"));
}

#[test]
fn metrics_values_are_checked() {
    let bad = [json!({"metrics": {"serverPort": 0}}), json!({"metrics": {"serviceMonitor": {"interval": "often"}}}), json!({"metrics": {"enabeld": true}})];
    let requests: Vec<serde_json::Value> = bad.iter().map(|v| json!({"op": "render", "values": v})).collect();
    for (values, result) in bad.iter().zip(batch(json!(requests))) {
        let err = result["error"].as_str().unwrap_or_else(|| panic!("{values} was accepted"));
        assert!(err.contains("metrics"), "{values}: {err}");
    }
}
