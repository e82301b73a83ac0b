//! The servers' internal channel (docs/ownership.md) as the chart wires it: its Secret, mounted
//! with a mode slatefs accepts into the two `slatefs serve` containers and nowhere else; its port
//! on each node's address (the dataset servers, host network) and on the controller pod's (the
//! catalog owner); each pod's name and address from the downward API; and the `[cluster]`
//! section of the config files. The config a container ends up with is computed the way
//! `slatefs serve` computes it: its file from the ConfigMap, its environment (expanded as the
//! kubelet does) given to serve's own flags, through serve's own argument parser.

use super::*;

/// What the kubelet would put in the downward-API fields of a test pod.
const NODE_NAME: &str = "node-a.example.internal";
const HOST_IP: &str = "192.0.2.10";
const POD_IP: &str = "10.244.3.7";

fn downward(field: &str) -> &'static str {
    match field {
        "spec.nodeName" => NODE_NAME,
        "status.hostIP" => HOST_IP,
        "status.podIP" => POD_IP,
        other => panic!("no test value for the downward API field {other}"),
    }
}

/// `$(NAME)` references to variables defined earlier in the list are expanded; anything else
/// stays as written, as the kubelet does.
fn expand(value: &str, env: &BTreeMap<String, String>) -> String {
    let mut out = String::new();
    let mut rest = value;
    while let Some(i) = rest.find("$(") {
        out.push_str(&rest[..i]);
        let after = &rest[i + 2..];
        match after.find(')').map(|j| (&after[..j], &after[j + 1..])) {
            Some((name, tail)) if env.contains_key(name) => {
                out.push_str(&env[name]);
                rest = tail;
            }
            _ => {
                out.push_str("$(");
                rest = after;
            }
        }
    }
    out.push_str(rest);
    out
}

/// A container's environment as the kubelet builds it (Secret references left out).
fn environment(c: &Container) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for e in c.env.iter().flatten() {
        let value = match (&e.value, &e.value_from) {
            (Some(v), None) => expand(v, &env),
            (None, Some(from)) => match &from.field_ref {
                Some(f) => downward(&f.field_path).to_string(),
                None => continue,
            },
            (None, None) => String::new(),
            (Some(_), Some(_)) => panic!("{}: env {} has both value and valueFrom", c.name, e.name),
        };
        env.insert(e.name.clone(), value);
    }
    env
}

/// The field path an env var of `c` comes from, if it comes from the downward API.
fn field_of(c: &Container, name: &str) -> Option<String> {
    let e = c.env.iter().flatten().find(|e| e.name == name)?;
    e.value_from.as_ref()?.field_ref.as_ref().map(|f| f.field_path.clone())
}

fn literal_of(c: &Container, name: &str) -> Option<String> {
    c.env.iter().flatten().find(|e| e.name == name).and_then(|e| e.value.clone())
}

/// The config `slatefs serve` runs with in this container: every `SLATEFS_*` variable of its
/// environment is passed as the flag that serve's parser reads that variable for (a variable
/// serve does not read is an error), then ServeArgs::config applies and validates them.
fn serve_config(p: &Proc) -> slatefs::config::Config {
    use clap::{Args, Command, FromArgMatches};
    let cmd = slatefs::cli::serve::ServeArgs::augment_args(Command::new("serve"));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("config.toml");
    std::fs::write(&file, &p.config_text).unwrap();
    let mut argv = vec!["serve".to_string(), "-c".to_string(), file.display().to_string()];
    for (name, value) in environment(p.c).into_iter().filter(|(n, _)| n.starts_with("SLATEFS_")) {
        let arg = cmd
            .get_arguments()
            .find(|a| a.get_env().and_then(|e| e.to_str()) == Some(name.as_str()))
            .unwrap_or_else(|| panic!("{}/{}: slatefs serve reads no variable {name}", p.what, p.c.name));
        argv.push(format!("--{}", arg.get_long().unwrap()));
        argv.push(value);
    }
    let matches = cmd.try_get_matches_from(&argv).unwrap_or_else(|e| panic!("{}: {e}", p.what));
    let args = slatefs::cli::serve::ServeArgs::from_arg_matches(&matches).unwrap();
    args.config().unwrap_or_else(|e| panic!("{}/{}: slatefs serve would refuse {argv:?}: {e:#}", p.what, p.c.name))
}

/// A Kubernetes node name is a DNS subdomain.
fn could_be_a_node_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 253
        && name.split('.').all(|l| {
            !l.is_empty()
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                && !l.starts_with('-')
                && !l.ends_with('-')
        })
}

fn port_of(addr: &str) -> u16 {
    addr.rsplit_once(':').and_then(|(_, p)| p.parse().ok()).unwrap_or_else(|| panic!("{addr} has no port"))
}

#[test]
fn servers_share_the_cluster_secret_and_listen_where_the_other_servers_reach_them() {
    let mut generated = Vec::new();
    for s in scenarios() {
        let r = rendered(s.name);
        let o = typed(s.name, &r.docs);
        // (port, handoff_after_ms, Secret, created by the chart)
        let (port, handoff, secret, created) = match s.name {
            "custom" => (7500u16, 2000u64, "cluster-key", false),
            "default" | "secrets" => (7400, 5000, "slatefs-cluster", true),
            other => panic!("no cluster expectation for scenario {other}"),
        };

        // The Secret: the chart's own, random, or none when the user names theirs.
        if created {
            assert_eq!(o.secrets.len(), 1, "scenario {}: one Secret, the cluster's", s.name);
            let sec = &o.secrets[0];
            assert_eq!(sec.metadata.name.as_deref(), Some(secret));
            assert_eq!(sec.metadata.namespace.as_deref(), Some(r.namespace));
            assert_eq!(sec.immutable, Some(true), "an upgrade must fail rather than change the value");
            let data = sec.data.as_ref().expect("data");
            assert_eq!(data.keys().collect::<Vec<_>>(), ["secret"]);
            let value = &data["secret"].0;
            assert_eq!(value.len(), 48, "scenario {}: 48 random characters", s.name);
            assert!(value.iter().all(u8::is_ascii_alphanumeric));
            generated.push(value.clone());
        } else {
            assert!(o.secrets.is_empty(), "scenario {}: cluster.existingSecret is set: no Secret is created", s.name);
        }

        assert!(r.notes.contains(&format!("TCP port {port}")), "scenario {}: NOTES.txt names the port to open", s.name);

        let server = proc(&o, "serve-reader");
        let owner = proc(&o, "serve-owner");
        for p in [&server, &owner] {
            let what = format!("scenario {}: {}/{}", s.name, p.what, p.c.name);
            // The file: [cluster] with secret_file, on the Secret's volume, mode 0400.
            let path = p.config.cluster.secret_file.as_ref().unwrap_or_else(|| panic!("{what}: no [cluster] secret_file"));
            let path = path.to_str().unwrap();
            assert_eq!(p.config.cluster.handoff_after_ms, handoff, "{what}");
            assert!(p.config.cluster.listen.is_none(), "{what}: the file is shared, the address is the pod's");
            let (vol_name, host) = resolve(p.pod, p.c, path);
            assert_eq!(host, None, "{what}: the secret is not on the node's disk");
            let mount = p.c.volume_mounts.iter().flatten().find(|m| m.name == vol_name).unwrap();
            assert_eq!(mount.read_only, Some(true), "{what}");
            let vol = p.pod.volumes.iter().flatten().find(|v| v.name == vol_name).unwrap();
            let src = vol.secret.as_ref().unwrap_or_else(|| panic!("{what}: {path} is not on a Secret volume"));
            assert_eq!(src.secret_name.as_deref(), Some(secret), "{what}");
            assert_eq!(src.default_mode, Some(0o400), "{what}: slatefs refuses a secret file others can read");
            let file = path.strip_prefix(&format!("{}/", mount.mount_path.trim_end_matches('/'))).unwrap();
            let items = src.items.as_deref().unwrap_or_default();
            assert!(items.iter().any(|i| i.key == "secret" && i.path == file && i.mode.is_none()),
                "{what}: {path} must be the Secret's key `secret`: {items:?}");

            // The final config: cluster on, with this pod's name and address.
            let config = serve_config(p);
            assert_eq!(config.cluster.secret_file.as_deref().and_then(|f| f.to_str()), Some(path));
            assert!(config.cluster.enabled(), "{what}: not a member of the cluster");
            let listen = config.cluster.listen.clone().unwrap();
            assert_eq!(port_of(&listen), port, "{what}");
            let cports: Vec<_> = p.c.ports.iter().flatten().filter(|cp| cp.name.as_deref() == Some("cluster")).collect();
            assert_eq!(cports.len(), 1, "{what}: a containerPort `cluster`");
            assert_eq!((cports[0].container_port, cports[0].protocol.as_deref()), (i32::from(port), Some("TCP")), "{what}");
            assert_eq!(config.nfs.listen.split_once(':').unwrap().0, "127.0.0.1", "{what}: NFS stays on loopback");

            if p.role == "serve-reader" {
                // On the node's address (host network), named after the node.
                assert_eq!(p.pod.host_network, Some(true));
                assert_eq!(field_of(p.c, "HOST_IP").as_deref(), Some("status.hostIP"), "{what}");
                assert_eq!(field_of(p.c, "SLATEFS_CLUSTER_NAME").as_deref(), Some("spec.nodeName"), "{what}");
                assert_eq!(literal_of(p.c, "SLATEFS_CLUSTER_LISTEN"), Some(format!("$(HOST_IP):{port}")), "{what}");
                assert_eq!(listen, format!("{HOST_IP}:{port}"), "{what}: HOST_IP must be defined before the address that uses it");
                assert_eq!(config.cluster.advertise, None, "{what}: the node's address is reachable as it is");
                assert_eq!(config.cluster.server_name(), NODE_NAME, "{what}");
                assert_eq!(cports[0].host_port, Some(i32::from(port)), "{what}: host network: hostPort = containerPort");
            } else {
                // On every address of the pod, advertised at the pod's.
                assert_ne!(owner.pod.host_network, Some(true));
                assert_eq!(field_of(p.c, "POD_IP").as_deref(), Some("status.podIP"), "{what}");
                assert_eq!(literal_of(p.c, "SLATEFS_CLUSTER_LISTEN"), Some(format!("0.0.0.0:{port}")), "{what}");
                assert_eq!(literal_of(p.c, "SLATEFS_CLUSTER_ADVERTISE"), Some(format!("$(POD_IP):{port}")), "{what}");
                assert_eq!(listen, format!("0.0.0.0:{port}"));
                assert_eq!(config.cluster.advertise, Some(format!("{POD_IP}:{port}")), "{what}: POD_IP must come first");
                // A fixed name (a replaced controller takes back what the old one owned) that no
                // node can have: two servers of one name would take datasets from each other.
                let name = literal_of(p.c, "SLATEFS_CLUSTER_NAME").unwrap_or_else(|| panic!("{what}: a fixed name"));
                assert_eq!(config.cluster.server_name(), name);
                assert!(!could_be_a_node_name(&name), "{what}: {name:?} could also be a node's name");
                assert_eq!(cports[0].host_port, None, "{what}: the pod network needs no host port");
            }
        }

        // Only the two servers get the secret: no CSI process and no sidecar mounts it.
        for (what, spec) in workloads(&o) {
            let secret_vols: BTreeSet<_> = spec.volumes.iter().flatten()
                .filter(|v| v.secret.as_ref().is_some_and(|sv| sv.secret_name.as_deref() == Some(secret)))
                .map(|v| v.name.clone()).collect();
            for c in &spec.containers {
                let mounts = c.volume_mounts.iter().flatten().any(|m| secret_vols.contains(&m.name));
                let is_server = (std::ptr::eq(spec, server.pod) && c.name == server.c.name)
                    || (std::ptr::eq(spec, owner.pod) && c.name == owner.c.name);
                assert_eq!(mounts, is_server, "scenario {}: {what}/{} and the cluster secret", s.name, c.name);
            }
        }
    }
    assert_eq!(generated.len(), 2);
    assert_ne!(generated[0], generated[1], "each install draws its own secret");

    // The chart reads the Secret back on upgrades instead of drawing a new one.
    let template = read("charts/slatefs/templates/cluster-secret.yaml");
    assert!(template.contains("lookup \"v1\" \"Secret\" .Release.Namespace $name"), "{template}");
}
