//! The CSI plugin's own page (RPC counts, errors and latency by method) and the names people
//! know: CreateVolume / CreateSnapshot with csi-provisioner's and csi-snapshotter's metadata
//! record the PVC and the VolumeSnapshot, which `dataset list/info` and the metrics show.

use std::collections::HashMap;

use serde_json::Value;
use slatefs::csi::proto::volume_capability::{access_mode::Mode, AccessMode, AccessType, MountVolume};
use slatefs::csi::proto::*;
use tonic::Code;

use crate::csi::Plugin;
use crate::prometheus::scrape;
use crate::server::{free_port, s3};
use crate::{dataset_cli, server_with_metrics};

fn secrets() -> HashMap<String, String> {
    match s3::StoreKind::from_env() {
        s3::StoreKind::S3 => HashMap::from([
            ("accessKeyId".to_string(), s3::DEFAULT_ACCESS_KEY.to_string()),
            ("secretAccessKey".to_string(), s3::DEFAULT_SECRET_KEY.to_string()),
        ]),
        s3::StoreKind::Local => HashMap::new(),
    }
}

fn params(pairs: &[(&str, &str)]) -> HashMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn create_volume(name: &str, parameters: HashMap<String, String>) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange { required_bytes: 1 << 20, limit_bytes: 0 }),
        volume_capabilities: vec![VolumeCapability {
            access_type: Some(AccessType::Mount(MountVolume::default())),
            access_mode: Some(AccessMode { mode: Mode::SingleNodeWriter as i32 }),
        }],
        parameters,
        secrets: secrets(),
        ..Default::default()
    }
}

fn json_of(out: std::process::Output) -> Value {
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn provisioner_metadata_names_datasets_and_snapshots_everywhere() {
    let (server, server_url) = server_with_metrics();
    let port = free_port();
    let plugin = Plugin::start_with(&server, "all", &server.admin, &["--metrics-listen", &format!("127.0.0.1:{port}")]);
    let csi_url = format!("http://127.0.0.1:{port}/metrics");
    let mut c = plugin.controller();

    let pvc = params(&[
        ("csi.storage.k8s.io/pvc/name", "orders-db"),
        ("csi.storage.k8s.io/pvc/namespace", "shop"),
        ("csi.storage.k8s.io/pv/name", "pvc-7f3c"),
    ]);
    let v = c.create_volume(create_volume("pvc-7f3c", pvc.clone())).await.unwrap().into_inner().volume.unwrap();
    // The idempotent repeat answers the same volume and keeps the names.
    let again = c.create_volume(create_volume("pvc-7f3c", pvc)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(again.volume_id, v.volume_id);
    // A name Kubernetes would never send is refused before anything is created.
    let bad = params(&[("csi.storage.k8s.io/pvc/name", "Not A Name"), ("csi.storage.k8s.io/pvc/namespace", "shop")]);
    let err = c.create_volume(create_volume("pvc-bad", bad)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{err:?}");
    assert!(err.message().contains("Not A Name"), "{}", err.message());

    let info = json_of(dataset_cli(&server, &["info", "pvc-7f3c", "-o", "json"]));
    assert_eq!(info["kubernetes"]["namespace"], "shop");
    assert_eq!(info["kubernetes"]["persistentvolumeclaim"], "orders-db");
    assert_eq!(info["kubernetes"]["persistentvolume"], "pvc-7f3c");
    let list = dataset_cli(&server, &["list"]);
    let table = String::from_utf8_lossy(&list.stdout);
    assert!(table.lines().any(|l| l.starts_with("pvc-7f3c ") && l.contains("shop/orders-db")), "{table}");
    let listed = json_of(dataset_cli(&server, &["list", "-o", "json"]));
    assert!(listed.as_array().unwrap().iter().all(|d| d["name"] != "pvc-bad"), "{listed}");
    let root = listed.as_array().unwrap().iter().find(|d| d["name"] == "root").unwrap();
    assert_eq!(root["kubernetes"], Value::Null);

    let snap = CreateSnapshotRequest {
        name: "snapshot-91ab".into(),
        source_volume_id: v.volume_id.clone(),
        secrets: secrets(),
        parameters: params(&[
            ("csi.storage.k8s.io/volumesnapshot/name", "orders-nightly"),
            ("csi.storage.k8s.io/volumesnapshot/namespace", "shop"),
            ("csi.storage.k8s.io/volumesnapshotcontent/name", "snapcontent-91ab"),
        ]),
    };
    c.create_snapshot(snap).await.unwrap();
    let snaps = json_of(dataset_cli(&server, &["list-snapshots", "pvc-7f3c", "-o", "json"]));
    let s = &snaps.as_array().unwrap()[0];
    assert_eq!(s["kubernetes"]["volumesnapshot"], "orders-nightly");
    assert_eq!(s["kubernetes"]["namespace"], "shop");
    assert_eq!(s["kubernetes"]["volumesnapshotcontent"], "snapcontent-91ab");

    // The server's page labels the dataset and snapshot with those names.
    let page = scrape(&server_url);
    let info = [("dataset", "pvc-7f3c"), ("namespace", "shop"), ("persistentvolumeclaim", "orders-db"), ("persistentvolume", "pvc-7f3c")];
    assert_eq!(page.one("slatefs_dataset_info", &info), 1.0);
    assert_eq!(page.one("slatefs_dataset_quota_bytes", &[("dataset", "pvc-7f3c"), ("namespace", "shop"), ("persistentvolumeclaim", "orders-db")]), (1 << 20) as f64);
    assert_eq!(page.one("slatefs_snapshot_info", &[("snapshot", "snapshot-91ab"), ("namespace", "shop"), ("volumesnapshot", "orders-nightly")]), 1.0);

    // The plugin's page counted every call on its socket, by method and code.
    let csi = scrape(&csi_url);
    assert_eq!(csi.status, 200);
    let create = [("service", "Controller"), ("method", "CreateVolume")];
    assert_eq!(csi.one("slatefs_csi_calls_total", &[create[0], create[1], ("code", "Ok")]), 2.0);
    assert_eq!(csi.one("slatefs_csi_calls_total", &[create[0], create[1], ("code", "InvalidArgument")]), 1.0);
    assert_eq!(csi.one("slatefs_csi_call_errors_total", &create), 1.0);
    assert_eq!(csi.one("slatefs_csi_call_duration_seconds_count", &create), 3.0);
    assert_eq!(csi.one("slatefs_csi_calls_total", &[("method", "CreateSnapshot"), ("code", "Ok")]), 1.0);

    // More calls move the counters by exactly that much.
    let mut id = plugin.identity();
    id.probe(ProbeRequest {}).await.unwrap();
    id.probe(ProbeRequest {}).await.unwrap();
    let later = scrape(&csi_url);
    let probe = [("service", "Identity"), ("method", "Probe")];
    assert_eq!(later.sum("slatefs_csi_calls_total", &probe) - csi.sum("slatefs_csi_calls_total", &probe), 2.0);
}
