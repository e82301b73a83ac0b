//! The command line as a person meets it, against real `slatefs serve` and `slatefs csi`
//! processes: sizes written the same way everywhere, `csi call` output that is JSON through
//! and through, a description for every subcommand, and a node plugin that logs why a mount
//! failed.

#[path = "support/csi.rs"]
mod csi;
#[path = "support/server.rs"]
mod server;

use std::collections::HashMap;
use std::process::Command;

use csi::Plugin;
use server::{binary, Server};
use slatefs::csi::proto::volume_capability::{access_mode::Mode, AccessMode, AccessType, MountVolume};
use slatefs::csi::proto::*;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

fn run(args: &[&str]) -> Out {
    let out = Command::new(binary()).args(args).output().expect("cannot run slatefs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

fn dataset_json(server: &Server, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["dataset", "--admin", &server.admin, "-o", "json"];
    all.extend_from_slice(args);
    let o = run(&all);
    assert_eq!(o.code, 0, "{args:?}: {}", o.stderr);
    serde_json::from_str(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {}", o.stdout))
}

#[test]
fn sizes_are_read_the_same_everywhere() {
    // The config file and the flags take the same units: a server whose caches are sized in
    // both spellings starts.
    let server = Server::start_with(server::ServerOptions {
        config: Some("[storage]\nmemory_cache_size = \"64Mi\"\n".into()),
        ..Default::default()
    });
    for (quota, bytes) in [
        ("1GiB", 1u64 << 30),
        ("1Gi", 1 << 30),
        ("1G", 1_000_000_000),
        ("1GB", 1_000_000_000),
        ("1.5GiB", 3 << 29),
        ("512MiB", 512 << 20),
        ("2TiB", 2 << 40),
    ] {
        let name = format!("q-{}", quota.to_lowercase().replace('.', "-"));
        let d = dataset_json(&server, &["create", &name, "--quota", quota]);
        assert_eq!(d["quota_bytes"], bytes, "--quota {quota}");
        // What `info` prints reads back as the same quota.
        let info = run(&["dataset", "--admin", &server.admin, "info", &name]);
        let line = info.stdout.lines().find(|l| l.starts_with("quota:")).unwrap().to_string();
        let printed = line.trim_start_matches("quota:").trim().split(" (").next().unwrap().to_string();
        let again = dataset_json(&server, &["set-quota", &name, &printed]);
        let back = again["quota_bytes"].as_u64().unwrap();
        // `info` rounds to 0.1 of its unit.
        assert!(back.abs_diff(bytes) <= bytes / 100, "{printed:?} read back as {back}, was {bytes}");
    }
    let d = dataset_json(&server, &["set-quota", "q-1gib", "10 GB"]);
    assert_eq!(d["quota_bytes"], 10_000_000_000u64);

    // A unit it does not know: a usage error (exit 2) that lists the units, and no dataset.
    let o = run(&["dataset", "--admin", &server.admin, "create", "bad", "--quota", "1XB"]);
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(o.stderr.contains("powers of 1024") && o.stderr.contains("powers of 1000"), "{}", o.stderr);
    let list = dataset_json(&server, &["list"]);
    assert!(list.as_array().unwrap().iter().all(|d| d["name"] != "bad"));

    // The help says which units are binary.
    let help = run(&["dataset", "create", "--help"]).stdout;
    assert!(help.contains("GiB") && help.contains("powers of 1024") && help.contains("powers of 1000"), "{help}");
}

#[test]
fn csi_call_help_describes_every_subcommand() {
    let o = run(&["csi", "call", "--help"]);
    assert_eq!(o.code, 0, "{}", o.stderr);
    let section = o.stdout.split("Commands:").nth(1).expect("a Commands: section");
    let mut descriptions: HashMap<String, String> = HashMap::new();
    // The rest of the "Commands:" line, then one line per subcommand up to a blank line.
    for line in section.lines().skip(1).map(str::trim).take_while(|l| !l.is_empty()) {
        let (name, desc) = line.split_once(char::is_whitespace).unwrap_or((line, ""));
        if name == "help" {
            continue;
        }
        descriptions.insert(name.to_string(), desc.trim().to_string());
    }
    for name in [
        "plugin-info",
        "plugin-capabilities",
        "probe",
        "create-volume",
        "delete-volume",
        "expand-volume",
        "create-snapshot",
        "delete-snapshot",
        "node-publish",
        "node-unpublish",
        "node-capabilities",
    ] {
        let d = descriptions.get(name).unwrap_or_else(|| panic!("{name} not listed:\n{}", o.stdout));
        assert!(!d.is_empty(), "{name} has no description:\n{}", o.stdout);
    }
    let mut seen: HashMap<&str, &str> = HashMap::new();
    for (name, d) in &descriptions {
        assert!(!d.is_empty(), "{name} has no description:\n{}", o.stdout);
        assert!(!d.contains("secrets"), "{name}: {d:?}");
        if let Some(other) = seen.insert(d, name) {
            panic!("{name} and {other} share the description {d:?}");
        }
    }
    assert!(descriptions["create-volume"].contains("CreateVolume"), "{:?}", descriptions["create-volume"]);
    // The secrets option keeps its own help where it belongs.
    let o = run(&["csi", "call", "delete-volume", "--help"]);
    assert!(o.stdout.starts_with("DeleteVolume"), "{}", o.stdout);
    assert!(o.stdout.contains("--secrets-file"), "{}", o.stdout);
}

#[test]
fn csi_call_prints_capabilities_as_json() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    for (call, want) in [
        ("plugin-capabilities", vec!["CONTROLLER_SERVICE", "VOLUME_EXPANSION_ONLINE"]),
        ("node-capabilities", vec!["GET_VOLUME_STATS", "VOLUME_CONDITION", "SINGLE_NODE_MULTI_WRITER"]),
    ] {
        let out = plugin.call(&[call]);
        assert!(out.status.success(), "{call}: {out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let caps: Vec<&str> = v["capabilities"]
            .as_array()
            .unwrap_or_else(|| panic!("{call}: {v}"))
            .iter()
            .map(|c| c.as_str().unwrap_or_else(|| panic!("{call}: {c} is not a string")))
            .collect();
        assert_eq!(caps, want, "{call}");
    }
    // Every name is what the server sent, by its proto enum name.
    let out = plugin.call(&["controller-capabilities"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let caps = v["capabilities"].as_array().unwrap();
    assert!(caps.iter().any(|c| c == "CREATE_DELETE_SNAPSHOT"), "{v}");
    assert!(caps.iter().all(|c| c.as_str().unwrap().chars().all(|ch| ch.is_ascii_uppercase() || ch == '_')), "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_mount_is_logged_by_the_node_plugin() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    let cap = VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume {
            // No mount, kernel or helper, accepts this: the mount fails wherever the test runs.
            mount_flags: vec!["slatefs-test-no-such-option".into()],
            ..Default::default()
        })),
        access_mode: Some(AccessMode { mode: Mode::SingleNodeWriter as i32 }),
    };
    let secrets = match server::s3::StoreKind::from_env() {
        server::s3::StoreKind::S3 => HashMap::from([
            ("accessKeyId".to_string(), server::s3::DEFAULT_ACCESS_KEY.to_string()),
            ("secretAccessKey".to_string(), server::s3::DEFAULT_SECRET_KEY.to_string()),
        ]),
        server::s3::StoreKind::Local => HashMap::new(),
    };
    c.create_volume(CreateVolumeRequest {
        name: "mvol".into(),
        volume_capabilities: vec![cap.clone()],
        secrets: secrets.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let target = plugin.path().join("pods/p1/volumes/mvol/mount");
    let e = plugin
        .node()
        .node_publish_volume(NodePublishVolumeRequest {
            volume_id: "mvol".into(),
            target_path: target.to_str().unwrap().into(),
            volume_capability: Some(cap),
            secrets,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(e.code(), tonic::Code::Internal, "{e:?}");
    // The plugin's log says so: WARN, with the target, the source and what mount printed.
    let logs = plugin.logs();
    let line = logs
        .lines()
        .find(|l| l.contains("mount failed"))
        .unwrap_or_else(|| panic!("no log line for the failed mount:\n{logs}"));
    assert!(line.contains("WARN"), "{line}");
    assert!(line.contains(&format!("target={}", target.display())), "{line}");
    assert!(line.contains(&format!("source=127.0.0.1:/mvol")), "{line}");
    assert!(line.contains("slatefs-test-no-such-option"), "{line}");
    // What the caller got is in the line too (mount's own stderr, or why it could not run).
    let said = e.message().split(": ").skip(1).collect::<Vec<_>>().join(": ");
    let said = said.split(" (this kernel").next().unwrap();
    assert!(said.len() > 20 && line.contains(said), "{said:?} not in {line}");
}
