//! Snapshot policies from Kubernetes (part of the `csi` test binary): the StorageClass
//! parameter `snapshotPolicy`, VolumeAttributesClass parameters at creation and through
//! ControllerModifyVolume, on a real CSI socket; and the policy's snapshots in ListSnapshots.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use slatefs::csi::proto::*;
use tonic::Code;

use super::csi::Plugin;
use super::server::{Server, ServerOptions};
use super::{code, cv, secrets};

fn policy(server: &Server, volume: &str) -> Option<serde_json::Value> {
    let out = server.cli(&["dataset", "--admin", &server.admin, "-o", "json", "policy", "show", volume]);
    if !out.status.success() {
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("no snapshot policy"), "policy show {volume}: {err}");
        return None;
    }
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(v["policies"][0].clone())
}

fn params(kv: &[(&str, &str)]) -> HashMap<String, String> {
    kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn modify(volume: &str, kv: &[(&str, &str)]) -> ControllerModifyVolumeRequest {
    ControllerModifyVolumeRequest { volume_id: volume.into(), secrets: secrets(), mutable_parameters: params(kv) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_class_and_volume_attributes_class_policies() {
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    let t0: u64 = 1_767_225_600_000; // 2026-01-01T00:00:00Z
    std::fs::write(&clock, t0.to_string()).unwrap();
    let server = Server::start_with(ServerOptions {
        env: vec![("SLATEFS_TEST_CLOCK_FILE".into(), clock.display().to_string())],
        ..Default::default()
    });
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();

    // The StorageClass's policy.
    let mut req = cv("pvc-sc", 1 << 20, 0);
    req.parameters = params(&[("snapshotPolicy", "every=1m; keep-hourly=24; keep-daily=7")]);
    c.create_volume(req.clone()).await.unwrap();
    let p = policy(&server, "pvc-sc").expect("a policy");
    assert_eq!(p["every_seconds"], 60);
    assert_eq!((p["retention"]["keep_hourly"].as_u64(), p["retention"]["keep_daily"].as_u64()), (Some(24), Some(7)));
    // Idempotent.
    c.create_volume(req).await.unwrap();

    // A bad policy fails provisioning, saying what is accepted, and creates nothing.
    let mut bad = cv("pvc-bad", 1 << 20, 0);
    bad.parameters = params(&[("snapshotPolicy", "every=1m; keep-hourly=none")]);
    let e = c.create_volume(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("whole number"), "{}", e.message());
    let out = server.cli(&["dataset", "--admin", &server.admin, "info", "pvc-bad"]);
    assert!(!out.status.success());

    // The VolumeAttributesClass's policy wins over the StorageClass's.
    let mut vac = cv("pvc-vac", 1 << 20, 0);
    vac.parameters = params(&[("snapshotPolicy", "every=1m; keep-last=3")]);
    vac.mutable_parameters = params(&[("snapshotPolicy", "none")]);
    c.create_volume(vac).await.unwrap();
    assert!(policy(&server, "pvc-vac").is_none());

    // ModifyVolume: a valid class changes the policy...
    c.controller_modify_volume(modify("pvc-vac", &[("snapshotPolicy", "cron=0 3 * * *; tz=Europe/Paris; keep-daily=14")]))
        .await
        .unwrap();
    let p = policy(&server, "pvc-vac").expect("a policy");
    assert_eq!(p["cron"], "0 3 * * *");
    assert_eq!(p["time_zone"], "Europe/Paris");
    assert_eq!(p["retention"]["keep_daily"], 14);
    // ...an invalid one is INVALID_ARGUMENT and changes nothing.
    for kv in [
        [("snapshotPolicy", "cron=0 3 * * *; keep-daily=0")],
        [("snapshotPolicy", "every=1s; keep-last=1")],
        [("storeUrl", "file:///elsewhere")],
    ] {
        let e = c.controller_modify_volume(modify("pvc-vac", &kv)).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{kv:?}: {e:?}");
        assert_eq!(policy(&server, "pvc-vac").unwrap(), p, "{kv:?}");
    }
    assert_eq!(code(c.controller_modify_volume(modify("pvc-nope", &[("snapshotPolicy", "none")])).await), Code::NotFound);
    assert_eq!(code(c.controller_modify_volume(modify("", &[])).await), Code::InvalidArgument);
    // `none` removes it, twice over.
    for _ in 0..2 {
        c.controller_modify_volume(modify("pvc-vac", &[("snapshotPolicy", "none")])).await.unwrap();
        assert!(policy(&server, "pvc-vac").is_none());
    }

    // The policy's snapshots are ordinary snapshots: ListSnapshots by source volume has them.
    std::fs::write(&clock, (t0 + 60_000).to_string()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let listed = loop {
        let r = c
            .list_snapshots(ListSnapshotsRequest { source_volume_id: "pvc-sc".into(), secrets: secrets(), ..Default::default() })
            .await
            .unwrap()
            .into_inner();
        if !r.entries.is_empty() {
            break r.entries;
        }
        assert!(Instant::now() < deadline, "the policy took no snapshot");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let s = listed[0].snapshot.as_ref().unwrap();
    assert_eq!(s.source_volume_id, "pvc-sc");
    assert!(s.snapshot_id.ends_with("pvc-sc-20260101-000100z"), "{}", s.snapshot_id);
    assert!(s.ready_to_use);
}
