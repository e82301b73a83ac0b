//! The chart's web console (docs/web.md, docs/kubernetes.md "The web console"): off by
//! default; `web.enabled` renders `[web]` into the catalog owner's config only, mounts the
//! token Secrets with a mode slatefs accepts where that config names them, and declares the
//! port; bad values are refused at render time with a message.

use std::path::Path;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Container, PodSpec};
use serde_json::json;
use serde_yaml::Value;

use super::metrics::{batch, render};
use super::strict;

fn controller(docs: &[Value]) -> (PodSpec, ConfigMap) {
    let find = |kind: &str, name: &str| {
        docs.iter().find(|d| d["kind"] == kind && d["metadata"]["name"] == name).unwrap_or_else(|| panic!("no {kind} {name}"))
    };
    let d: Deployment = strict("controller", find("Deployment", "slatefs-controller"));
    let cm: ConfigMap = strict("config", find("ConfigMap", "slatefs-config"));
    (d.spec.unwrap().template.spec.unwrap(), cm)
}

fn config(cm: &ConfigMap, key: &str) -> slatefs::config::Config {
    let text = &cm.data.as_ref().unwrap()[key];
    slatefs::config::Config::parse(text, Path::new(key)).unwrap_or_else(|e| panic!("{key}: {e:#}\n{text}"))
}

fn container<'a>(pod: &'a PodSpec, name: &str) -> &'a Container {
    pod.containers.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no container {name}"))
}

/// The Secret (name, defaultMode, key) a container sees at `file`, if any.
fn secret_at(pod: &PodSpec, c: &Container, file: &Path) -> Option<(String, Option<i32>, String)> {
    let dir = file.parent()?.to_str()?;
    let name = file.file_name()?.to_str()?;
    let m = c.volume_mounts.iter().flatten().find(|m| m.mount_path == dir)?;
    let vol = pod.volumes.iter().flatten().find(|v| v.name == m.name)?;
    let s = vol.secret.as_ref()?;
    let item = s.items.iter().flatten().find(|i| i.path == name)?;
    Some((s.secret_name.clone()?, s.default_mode, item.key.clone()))
}

#[test]
fn the_console_is_off_by_default() {
    let (pod, cm) = controller(&render(json!({}), &[]));
    for key in ["controller.toml", "node.toml"] {
        assert!(config(&cm, key).web.listen.is_none(), "{key}");
    }
    for c in &pod.containers {
        assert!(!c.ports.iter().flatten().any(|p| p.name.as_deref() == Some("web")), "{}", c.name);
    }
    assert!(!pod.volumes.iter().flatten().any(|v| v.name.starts_with("web-")));
}

#[test]
fn web_values_turn_the_console_on_in_the_catalog_owner() {
    let values = json!({ "web": { "enabled": true, "port": 8443, "tokenSecret": "console-token", "readonlyTokenSecret": "console-ro" } });
    let (pod, cm) = controller(&render(values, &[]));
    let owner = config(&cm, "controller.toml");
    assert_eq!(owner.web.listen.as_deref(), Some("127.0.0.1:8443"), "loopback only: reached by port-forward");
    assert!(config(&cm, "node.toml").web.listen.is_none(), "the dataset servers serve no console");
    let catalog = container(&pod, "catalog");
    let port = catalog.ports.iter().flatten().find(|p| p.name.as_deref() == Some("web")).expect("a port named web");
    assert_eq!((port.container_port, port.host_port), (8443, None));
    // The files the config names are the Secrets' `token` keys, mode 0400 (slatefs refuses
    // a token file group or others may read).
    for (file, secret) in [(&owner.web.token_file, "console-token"), (&owner.web.readonly_token_file, "console-ro")] {
        let file = file.as_deref().expect("token file set");
        let got = secret_at(&pod, catalog, file).unwrap_or_else(|| panic!("{} is not a mounted Secret key", file.display()));
        assert_eq!(got, (secret.to_string(), Some(0o400), "token".to_string()), "{}", file.display());
        assert!(!file.starts_with("/etc/slatefs/"), "outside the ConfigMap's mount");
    }
    // The other containers of the pod (the CSI controller reads the same config file but serves
    // no console) get no token.
    for c in pod.containers.iter().filter(|c| c.name != "catalog") {
        assert!(!c.volume_mounts.iter().flatten().any(|m| m.name.starts_with("web-")), "{} mounts a console token", c.name);
    }

    // Without a read-only Secret, no read-only token.
    let (pod, cm) = controller(&render(json!({ "web": { "enabled": true, "tokenSecret": "t" } }), &[]));
    let owner = config(&cm, "controller.toml");
    assert_eq!(owner.web.listen.as_deref(), Some("127.0.0.1:8080"), "the default port");
    assert!(owner.web.readonly_token_file.is_none());
    assert_eq!(pod.volumes.iter().flatten().filter(|v| v.name.starts_with("web-")).count(), 1);
}

#[test]
fn bad_web_values_are_refused_with_a_message() {
    let cases = [
        (json!({ "web": { "enabled": true } }), "needs web.tokenSecret"),
        (json!({ "web": { "enabled": true, "tokenSecret": "a", "readonlyTokenSecret": "a" } }), "another Secret"),
        (json!({ "web": { "enabled": true, "tokenSecret": "a", "port": 7400 } }), "also cluster.port"),
        (json!({ "web": { "enabled": true, "tokenSecret": "a", "port": 9808 } }), "also controller.healthPort"),
        (json!({ "web": { "enabled": true, "tokenSecret": "a", "port": 9100 }, "metrics": { "enabled": true } }), "also metrics.controllerPort"),
        (json!({ "web": { "enabled": true, "tokenSecret": "a", "port": 0 } }), "web/port"),
        (json!({ "web": { "enabled": true, "tokenSecret": "Not_A_Name" } }), "web/tokenSecret"),
        (json!({ "web": { "listen": "0.0.0.0:80" } }), "listen"),
    ];
    let requests: Vec<_> = cases
        .iter()
        .map(|(v, _)| json!({ "op": "render", "values": v, "name": "slatefs", "namespace": "kube-system" }))
        .collect();
    for ((values, want), got) in cases.iter().zip(batch(json!(requests))) {
        let err = got["error"].as_str().unwrap_or_else(|| panic!("{values} rendered"));
        assert!(err.contains(want), "{values}: {err}");
    }
    // A port the metrics do not use while they are off is fine.
    let (_, cm) = controller(&render(json!({ "web": { "enabled": true, "tokenSecret": "a", "port": 9100 } }), &[]));
    assert_eq!(config(&cm, "controller.toml").web.listen.as_deref(), Some("127.0.0.1:9100"));
}
