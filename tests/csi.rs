//! CSI conformance, written from the spec (v1.12): a tonic client on the unix socket of a real
//! `slatefs csi --mode all`, backed by a real `slatefs serve` on a local store, data checked
//! through a real NFSv3 client. Node publish/unpublish need a kernel NFS client: where the kernel
//! has none, those tests say so and skip (the VM harness runs them, `tests/vm/workloads/04-csi.sh`);
//! every other node RPC and every node error path is tested here.
//!
//! `SLATEFS_TEST_STORE=s3` runs it all on a real S3 server, every call carrying the S3 keys as
//! CSI secrets. Store credentials from secrets and the volume condition of a fenced dataset are
//! in `csi/store.rs`.

#[path = "support/csi.rs"]
mod csi;
#[path = "support/nfs.rs"]
mod nfs;
use nfs::pattern;
#[path = "support/server.rs"]
mod server;
#[path = "csi/store.rs"]
mod store;
#[path = "csi/deleted_source.rs"]
mod deleted_source;
#[path = "csi/modify.rs"]
mod modify;

use std::collections::HashMap;

use csi::Plugin;
use server::s3;
use server::Server;
use slatefs::csi::proto::volume_capability::{access_mode::Mode, AccessMode, AccessType, BlockVolume, MountVolume};
use slatefs::csi::proto::*;
use tonic::Code;

const MIB: i64 = 1 << 20;

fn cap_mode(mode: Mode) -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Mount(MountVolume::default())),
        access_mode: Some(AccessMode { mode: mode as i32 }),
    }
}

fn cap() -> VolumeCapability {
    cap_mode(Mode::SingleNodeWriter)
}

fn block_cap() -> VolumeCapability {
    VolumeCapability {
        access_type: Some(AccessType::Block(BlockVolume {})),
        access_mode: Some(AccessMode { mode: Mode::SingleNodeWriter as i32 }),
    }
}

/// The CSI secret a StorageClass would name: on an S3 run (`SLATEFS_TEST_STORE=s3`) the test
/// S3 server's keys, so every controller call below is checked against the store with them; a
/// local store takes no credentials.
fn secrets() -> HashMap<String, String> {
    match s3::StoreKind::from_env() {
        s3::StoreKind::S3 => HashMap::from([
            ("accessKeyId".to_string(), s3::DEFAULT_ACCESS_KEY.to_string()),
            ("secretAccessKey".to_string(), s3::DEFAULT_SECRET_KEY.to_string()),
        ]),
        s3::StoreKind::Local => HashMap::new(),
    }
}

fn cv(name: &str, required: i64, limit: i64) -> CreateVolumeRequest {
    CreateVolumeRequest {
        name: name.into(),
        capacity_range: Some(CapacityRange { required_bytes: required, limit_bytes: limit }),
        volume_capabilities: vec![cap()],
        secrets: secrets(),
        ..Default::default()
    }
}

fn from_snapshot(name: &str, required: i64, snapshot_id: &str) -> CreateVolumeRequest {
    let mut r = cv(name, required, 0);
    r.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Snapshot(volume_content_source::SnapshotSource {
            snapshot_id: snapshot_id.into(),
        })),
    });
    r
}

fn from_volume(name: &str, required: i64, volume_id: &str) -> CreateVolumeRequest {
    let mut r = cv(name, required, 0);
    r.volume_content_source = Some(VolumeContentSource {
        r#type: Some(volume_content_source::Type::Volume(volume_content_source::VolumeSource {
            volume_id: volume_id.into(),
        })),
    });
    r
}

fn cs(name: &str, source: &str) -> CreateSnapshotRequest {
    CreateSnapshotRequest { name: name.into(), source_volume_id: source.into(), secrets: secrets(), ..Default::default() }
}

fn code<T: std::fmt::Debug>(r: Result<tonic::Response<T>, tonic::Status>) -> Code {
    match r {
        Ok(v) => panic!("expected an error, got {v:?}"),
        Err(s) => s.code(),
    }
}


/// Writes `data` to a new file `name` in the root of export `/volume`.
async fn write_file(port: u16, volume: &str, name: &str, data: &[u8]) {
    let mut c = nfs::Client::mount(port, &format!("/{volume}")).await.unwrap();
    let root = c.root.clone();
    let f = match c.lookup(&root, name.as_bytes()).await {
        Ok(f) => f,
        Err(_) => c.create(&root, name.as_bytes(), 0o644).await.unwrap(),
    };
    for (i, chunk) in data.chunks(256 * 1024).enumerate() {
        c.write(&f, (i * 256 * 1024) as u64, chunk).await.unwrap();
    }
}

async fn read_file(port: u16, export: &str, name: &str) -> Vec<u8> {
    let mut c = nfs::Client::mount(port, &format!("/{export}")).await.unwrap();
    let root = c.root.clone();
    let f = c.lookup(&root, name.as_bytes()).await.unwrap();
    c.read_all(&f).await.unwrap()
}

// ------------------------------------------------------------------------------- Identity

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identity_info_capabilities_probe() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut id = plugin.identity();

    let info = id.get_plugin_info(GetPluginInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.name, "csi.slatefs.io");
    assert_eq!(info.vendor_version, env!("CARGO_PKG_VERSION"));

    let caps = id.get_plugin_capabilities(GetPluginCapabilitiesRequest {}).await.unwrap().into_inner();
    let services: Vec<i32> = caps
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(plugin_capability::Type::Service(s)) => Some(s.r#type),
            _ => None,
        })
        .collect();
    assert_eq!(services, vec![plugin_capability::service::Type::ControllerService as i32]);

    let probe = id.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(true));

    // The same answers through `slatefs csi call`.
    let out = plugin.call(&["plugin-info"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["name"], "csi.slatefs.io");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_is_not_ready_until_the_admin_api_is_reachable() {
    let server = Server::start();
    let missing = format!("unix://{}", server.path().join("nobody-here.sock").display());
    let plugin = Plugin::start_with(&server, "all", &missing, &["--driver-name", "other.example.com"]);
    let mut id = plugin.identity();
    let probe = id.probe(ProbeRequest {}).await.unwrap().into_inner();
    assert_eq!(probe.ready, Some(false));
    let info = id.get_plugin_info(GetPluginInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.name, "other.example.com");
    // Controller calls fail with UNAVAILABLE, not a panic or a hang.
    let e = plugin.controller().create_volume(cv("pvc-x", MIB, 0)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable, "{e:?}");
}

// ------------------------------------------------------------------------------- Controller

/// The Helm chart's single-container shape: a controller with no admin address runs the catalog
/// owner in-process; everything it made is in the store when it is restarted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_runs_the_catalog_owner_in_process() {
    let store = s3::test_store().await;
    let mut plugin = Plugin::start_in_process_controller(&store.config);
    let mut id = plugin.identity();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while id.probe(ProbeRequest {}).await.unwrap().into_inner().ready != Some(true) {
        assert!(std::time::Instant::now() < deadline, "never ready:\n{}", plugin.logs());
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let mut c = plugin.controller();
    let v = c.create_volume(cv("pvc-inproc", 3 * MIB, 0)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v.capacity_bytes, 3 * MIB);
    let s = c.create_snapshot(cs("snap-inproc", "pvc-inproc")).await.unwrap().into_inner().snapshot.unwrap();
    c.create_volume(from_snapshot("pvc-restored", 3 * MIB, &s.snapshot_id)).await.unwrap();
    assert!(plugin.stop(), "unclean stop:\n{}", plugin.logs());

    let plugin = Plugin::start_in_process_controller(&store.config);
    let mut c = plugin.controller();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let ids: Vec<String> = loop {
        match c.list_volumes(ListVolumesRequest::default()).await {
            Ok(r) => break r.into_inner().entries.into_iter().map(|e| e.volume.unwrap().volume_id).collect(),
            Err(e) if e.code() == Code::Unavailable && std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
            Err(e) => panic!("{e:?}\n{}", plugin.logs()),
        }
    };
    assert!(ids.contains(&"pvc-inproc".to_string()) && ids.contains(&"pvc-restored".to_string()), "{ids:?}");
    let g = c.get_snapshot(GetSnapshotRequest { snapshot_id: s.snapshot_id.clone(), ..Default::default() }).await;
    assert_eq!(g.unwrap().into_inner().snapshot.unwrap().snapshot_id, s.snapshot_id);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn controller_capabilities() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let caps = plugin
        .controller()
        .controller_get_capabilities(ControllerGetCapabilitiesRequest {})
        .await
        .unwrap()
        .into_inner();
    use controller_service_capability::rpc::Type as T;
    let mut got: Vec<T> = caps
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(controller_service_capability::Type::Rpc(r)) => T::try_from(r.r#type).ok(),
            None => None,
        })
        .collect();
    got.sort_by_key(|t| *t as i32);
    let mut want = vec![
        T::CreateDeleteVolume,
        T::CreateDeleteSnapshot,
        T::ListSnapshots,
        T::GetSnapshot,
        T::CloneVolume,
        T::ExpandVolume,
        T::ListVolumes,
        T::GetCapacity,
        T::GetVolume,
        T::VolumeCondition,
        T::SingleNodeMultiWriter,
        T::ModifyVolume,
    ];
    want.sort_by_key(|t| *t as i32);
    assert_eq!(got, want);
    let e = plugin.controller().controller_publish_volume(ControllerPublishVolumeRequest::default()).await;
    assert_eq!(code(e), Code::Unimplemented);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_and_delete_volume() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();

    // Capacity is rounded up to whole MiB; the volume id is the (valid) name.
    let v = c.create_volume(cv("pvc-a", 5 * MIB + 1, 0)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v.volume_id, "pvc-a");
    assert_eq!(v.capacity_bytes, 6 * MIB);
    assert!(v.content_source.is_none());
    // The dataset exists with that quota, and is mountable.
    let mut nfsc = nfs::Client::mount(server.nfs_port, "/pvc-a").await.unwrap();
    let root = nfsc.root.clone();
    let fs = nfsc.fsstat(&root).await.unwrap();
    assert_eq!(fs.tbytes, (6 * MIB) as u64);

    // Idempotent: same name, compatible request → the same volume.
    let again = c.create_volume(cv("pvc-a", 5 * MIB + 1, 0)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(again, v);
    let again = c.create_volume(cv("pvc-a", 6 * MIB, 8 * MIB)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(again.volume_id, "pvc-a");
    assert_eq!(again.capacity_bytes, 6 * MIB);
    // Same name, incompatible capacity → ALREADY_EXISTS.
    assert_eq!(code(c.create_volume(cv("pvc-a", 10 * MIB, 0)).await), Code::AlreadyExists);
    assert_eq!(code(c.create_volume(cv("pvc-a", 0, 2 * MIB)).await), Code::AlreadyExists);

    // A name that is not a dataset name maps deterministically to csi-<hash>.
    let odd = c.create_volume(cv("My Volume #1", MIB, 0)).await.unwrap().into_inner().volume.unwrap();
    assert!(odd.volume_id.starts_with("csi-"), "{}", odd.volume_id);
    let odd2 = c.create_volume(cv("My Volume #1", MIB, 0)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(odd.volume_id, odd2.volume_id);

    // No capacity range: the documented default (1 GiB); limit only: capped by it.
    let d = c.create_volume(CreateVolumeRequest { capacity_range: None, ..cv("pvc-default", 0, 0) }).await.unwrap();
    assert_eq!(d.into_inner().volume.unwrap().capacity_bytes, 1 << 30);
    let l = c.create_volume(cv("pvc-limit", 0, 3 * MIB)).await.unwrap();
    assert_eq!(l.into_inner().volume.unwrap().capacity_bytes, 3 * MIB);
    // Rounding would overshoot the limit: the limit itself.
    let x = c.create_volume(cv("pvc-exact", MIB + 1, MIB + 4096)).await.unwrap();
    assert_eq!(x.into_inner().volume.unwrap().capacity_bytes, MIB + 4096);

    // Argument errors.
    assert_eq!(code(c.create_volume(cv("", MIB, 0)).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(cv("bad\u{1}name", MIB, 0)).await), Code::InvalidArgument);
    let mut no_caps = cv("pvc-nocaps", MIB, 0);
    no_caps.volume_capabilities.clear();
    assert_eq!(code(c.create_volume(no_caps).await), Code::InvalidArgument);
    let mut block = cv("pvc-block", MIB, 0);
    block.volume_capabilities = vec![cap(), block_cap()];
    assert_eq!(code(c.create_volume(block).await), Code::InvalidArgument);
    let mut no_mode = cv("pvc-nomode", MIB, 0);
    no_mode.volume_capabilities[0].access_mode = None;
    assert_eq!(code(c.create_volume(no_mode).await), Code::InvalidArgument);
    let mut ext4 = cv("pvc-ext4", MIB, 0);
    ext4.volume_capabilities[0].access_type = Some(AccessType::Mount(MountVolume { fs_type: "ext4".into(), ..Default::default() }));
    assert_eq!(code(c.create_volume(ext4).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(cv("pvc-neg", -1, 0)).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(cv("pvc-range", 4 * MIB, 2 * MIB)).await), Code::OutOfRange);
    assert_eq!(code(c.create_volume(cv("pvc-tiny", 0, 4096)).await), Code::OutOfRange);
    assert_eq!(code(c.create_volume(cv("pvc-huge", i64::MAX, 0)).await), Code::OutOfRange);
    // None of the failed requests left a dataset behind.
    let names: Vec<String> = c
        .list_volumes(ListVolumesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .entries
        .into_iter()
        .map(|e| e.volume.unwrap().volume_id)
        .collect();
    for n in ["pvc-nocaps", "pvc-block", "pvc-nomode", "pvc-ext4", "pvc-neg", "pvc-range", "pvc-tiny", "pvc-huge"] {
        assert!(!names.contains(&n.to_string()), "{n} exists: {names:?}");
    }

    // StorageClass parameters: documented keys are checked, unknown keys refused.
    let with = |kv: &[(&str, &str)]| {
        let mut r = cv("pvc-params", MIB, 0);
        r.parameters = kv.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect::<HashMap<_, _>>();
        r
    };
    assert_eq!(code(c.create_volume(with(&[("colour", "blue")])).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(with(&[("storeUrl", "s3://elsewhere/x")])).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(with(&[("durability", "async")])).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(with(&[("durability", "maybe")])).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(with(&[("endpoint", "http://elsewhere.invalid:9000")])).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(with(&[("pathStyle", "yes")])).await), Code::InvalidArgument);
    let ok = with(&[
        ("storeUrl", server.store_url.as_str()),
        ("durability", "sync"),
        ("csi.storage.k8s.io/pvc/name", "data"),
        ("csi.storage.k8s.io/pvc/namespace", "default"),
    ]);
    c.create_volume(ok).await.unwrap();

    // DeleteVolume: deletes, repeats, unknown ids succeed.
    c.delete_volume(DeleteVolumeRequest { volume_id: "pvc-a".into(), secrets: secrets() }).await.unwrap();
    c.delete_volume(DeleteVolumeRequest { volume_id: "pvc-a".into(), secrets: secrets() }).await.unwrap();
    c.delete_volume(DeleteVolumeRequest { volume_id: "never-existed".into(), secrets: secrets() }).await.unwrap();
    c.delete_volume(DeleteVolumeRequest { volume_id: "Not A Dataset!".into(), secrets: secrets() }).await.unwrap();
    let e = c.delete_volume(DeleteVolumeRequest::default()).await;
    assert_eq!(code(e), Code::InvalidArgument);
    let e = c.controller_get_volume(ControllerGetVolumeRequest { volume_id: "pvc-a".into() }).await;
    assert_eq!(code(e), Code::NotFound);
    assert!(nfs::Client::mount(server.nfs_port, "/pvc-a").await.is_err(), "deleted volume still mounts");
    // The name is free again.
    let v = c.create_volume(cv("pvc-a", MIB, 0)).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(v.capacity_bytes, MIB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_volumes_pages() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    for i in 0..5 {
        c.create_volume(cv(&format!("pvc-{i}"), (i + 1) * MIB, 0)).await.unwrap();
    }
    let all = c.list_volumes(ListVolumesRequest::default()).await.unwrap().into_inner();
    assert_eq!(all.next_token, "");
    let all_ids: Vec<String> = all.entries.iter().map(|e| e.volume.clone().unwrap().volume_id).collect();
    for i in 0..5 {
        assert!(all_ids.contains(&format!("pvc-{i}")), "{all_ids:?}");
    }
    let e = all.entries.iter().find(|e| e.volume.as_ref().unwrap().volume_id == "pvc-2").unwrap();
    assert_eq!(e.volume.as_ref().unwrap().capacity_bytes, 3 * MIB);
    let cond = e.status.as_ref().unwrap().volume_condition.as_ref().unwrap();
    assert!(!cond.abnormal);

    // Pages of 2 cover everything exactly once, in order.
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let r = c
            .list_volumes(ListVolumesRequest { max_entries: 2, starting_token: token.clone() })
            .await
            .unwrap()
            .into_inner();
        assert!(r.entries.len() <= 2);
        seen.extend(r.entries.into_iter().map(|e| e.volume.unwrap().volume_id));
        pages += 1;
        if r.next_token.is_empty() {
            break;
        }
        token = r.next_token;
    }
    assert_eq!(seen, all_ids);
    assert_eq!(pages, all_ids.len().div_ceil(2));

    // A deletion between pages neither repeats nor skips the others.
    let first = c.list_volumes(ListVolumesRequest { max_entries: 2, starting_token: String::new() }).await.unwrap().into_inner();
    let deleted = all_ids[2].clone();
    c.delete_volume(DeleteVolumeRequest { volume_id: deleted.clone(), secrets: secrets() }).await.unwrap();
    let rest = c.list_volumes(ListVolumesRequest { max_entries: 0, starting_token: first.next_token }).await.unwrap().into_inner();
    let rest_ids: Vec<String> = rest.entries.into_iter().map(|e| e.volume.unwrap().volume_id).collect();
    let expect: Vec<String> = all_ids[2..].iter().filter(|n| **n != deleted).cloned().collect();
    assert_eq!(rest_ids, expect);

    // Bad tokens are ABORTED; negative max_entries INVALID_ARGUMENT.
    for bad in ["garbage", "n1.zz", "n1."] {
        let e = c.list_volumes(ListVolumesRequest { max_entries: 1, starting_token: bad.into() }).await;
        assert_eq!(code(e), Code::Aborted, "{bad}");
    }
    let e = c.list_volumes(ListVolumesRequest { max_entries: -1, starting_token: String::new() }).await;
    assert_eq!(code(e), Code::InvalidArgument);

    // Through the CLI: JSON and the gRPC code as exit status.
    let out = plugin.call(&["list-volumes", "--max-entries", "1"]);
    assert!(out.status.success(), "{out:?}");
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["entries"].as_array().unwrap().len(), 1);
    assert_ne!(v["next_token"], "");
    let out = plugin.call(&["list-volumes", "--starting-token", "garbage"]);
    assert_eq!(out.status.code(), Some(Code::Aborted as i32), "{out:?}");
    assert!(String::from_utf8_lossy(&out.stderr).contains("Aborted"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshots_create_get_list_delete() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    c.create_volume(cv("vol-a", 8 * MIB, 0)).await.unwrap();
    c.create_volume(cv("vol-b", 8 * MIB, 0)).await.unwrap();
    write_file(server.nfs_port, "vol-a", "data", &pattern(1, 300_000)).await;

    let before = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let s = c.create_snapshot(cs("snapshot-1", "vol-a")).await.unwrap().into_inner().snapshot.unwrap();
    assert_eq!(s.snapshot_id, "vol-a@snapshot-1");
    assert_eq!(s.source_volume_id, "vol-a");
    assert!(s.ready_to_use);
    assert!(s.size_bytes >= 300_000, "size_bytes {} < the data written", s.size_bytes);
    let t = s.creation_time.unwrap();
    assert!((t.seconds - before).abs() < 60, "creation_time {t:?}");

    // Idempotent by name; same name on another source → ALREADY_EXISTS.
    let again = c.create_snapshot(cs("snapshot-1", "vol-a")).await.unwrap().into_inner().snapshot.unwrap();
    assert_eq!(again, s);
    assert_eq!(code(c.create_snapshot(cs("snapshot-1", "vol-b")).await), Code::AlreadyExists);
    // Errors.
    assert_eq!(code(c.create_snapshot(cs("snapshot-x", "no-such-vol")).await), Code::NotFound);
    assert_eq!(code(c.create_snapshot(cs("snapshot-x", "Bad Id")).await), Code::NotFound);
    assert_eq!(code(c.create_snapshot(cs("", "vol-a")).await), Code::InvalidArgument);
    assert_eq!(code(c.create_snapshot(cs("snapshot-x", "")).await), Code::InvalidArgument);
    let mut p = cs("snapshot-x", "vol-a");
    p.parameters.insert("bogus".into(), "1".into());
    assert_eq!(code(c.create_snapshot(p).await), Code::InvalidArgument);
    let mut p = cs("snapshot-k", "vol-a");
    p.parameters.insert("csi.storage.k8s.io/volumesnapshot/name".into(), "k".into());
    c.create_snapshot(p).await.unwrap();

    for i in 2..=4 {
        c.create_snapshot(cs(&format!("snapshot-{i}"), "vol-a")).await.unwrap();
    }
    c.create_snapshot(cs("snapshot-b1", "vol-b")).await.unwrap();

    // GetSnapshot.
    let g = c.get_snapshot(GetSnapshotRequest { snapshot_id: s.snapshot_id.clone(), ..Default::default() }).await.unwrap();
    assert_eq!(g.into_inner().snapshot.unwrap(), s);
    let e = c.get_snapshot(GetSnapshotRequest { snapshot_id: "vol-a@nope".into(), ..Default::default() }).await;
    assert_eq!(code(e), Code::NotFound);
    let e = c.get_snapshot(GetSnapshotRequest { snapshot_id: "vol-b@snapshot-1".into(), ..Default::default() }).await;
    assert_eq!(code(e), Code::NotFound);
    let e = c.get_snapshot(GetSnapshotRequest { snapshot_id: "garbage".into(), ..Default::default() }).await;
    assert_eq!(code(e), Code::NotFound);
    let e = c.get_snapshot(GetSnapshotRequest::default()).await;
    assert_eq!(code(e), Code::InvalidArgument);

    // ListSnapshots: all, by source, by id, unknown id → empty, paging, bad token.
    let list = |snapshot_id: &str, source: &str, max: i32, token: &str| ListSnapshotsRequest {
        snapshot_id: snapshot_id.into(),
        source_volume_id: source.into(),
        max_entries: max,
        starting_token: token.into(),
        ..Default::default()
    };
    let ids = |r: ListSnapshotsResponse| -> Vec<String> {
        r.entries.into_iter().map(|e| e.snapshot.unwrap().snapshot_id).collect()
    };
    let all = ids(c.list_snapshots(list("", "", 0, "")).await.unwrap().into_inner());
    assert_eq!(all.len(), 6, "{all:?}");
    let of_b = ids(c.list_snapshots(list("", "vol-b", 0, "")).await.unwrap().into_inner());
    assert_eq!(of_b, vec!["vol-b@snapshot-b1".to_string()]);
    let by_id = ids(c.list_snapshots(list("vol-a@snapshot-2", "", 0, "")).await.unwrap().into_inner());
    assert_eq!(by_id, vec!["vol-a@snapshot-2".to_string()]);
    assert!(ids(c.list_snapshots(list("vol-a@nope", "", 0, "")).await.unwrap().into_inner()).is_empty());
    assert!(ids(c.list_snapshots(list("garbage", "", 0, "")).await.unwrap().into_inner()).is_empty());
    assert!(ids(c.list_snapshots(list("", "no-such-vol", 0, "")).await.unwrap().into_inner()).is_empty());
    assert!(ids(c.list_snapshots(list("vol-a@snapshot-2", "vol-b", 0, "")).await.unwrap().into_inner()).is_empty());
    let mut paged = Vec::new();
    let mut token = String::new();
    loop {
        let r = c.list_snapshots(list("", "vol-a", 2, &token)).await.unwrap().into_inner();
        assert!(r.entries.len() <= 2);
        token = r.next_token.clone();
        paged.extend(ids(r));
        if token.is_empty() {
            break;
        }
    }
    let mut of_a: Vec<String> = all.iter().filter(|i| i.starts_with("vol-a@")).cloned().collect();
    of_a.sort();
    assert_eq!(paged, of_a);
    assert_eq!(code(c.list_snapshots(list("", "", 1, "nonsense")).await), Code::Aborted);

    // DeleteSnapshot: deletes, repeats, unknown ids succeed.
    let del = |id: &str| DeleteSnapshotRequest { snapshot_id: id.into(), secrets: secrets() };
    c.delete_snapshot(del("vol-a@snapshot-2")).await.unwrap();
    c.delete_snapshot(del("vol-a@snapshot-2")).await.unwrap();
    c.delete_snapshot(del("vol-a@never")).await.unwrap();
    c.delete_snapshot(del("garbage")).await.unwrap();
    // An id naming the right snapshot on the wrong volume deletes nothing.
    c.delete_snapshot(del("vol-b@snapshot-3")).await.unwrap();
    assert_eq!(code(c.delete_snapshot(del("")).await), Code::InvalidArgument);
    let all = ids(c.list_snapshots(list("", "", 0, "")).await.unwrap().into_inner());
    assert!(!all.contains(&"vol-a@snapshot-2".to_string()));
    assert!(all.contains(&"vol-a@snapshot-3".to_string()));
    let e = c.get_snapshot(GetSnapshotRequest { snapshot_id: "vol-a@snapshot-2".into(), ..Default::default() }).await;
    assert_eq!(code(e), Code::NotFound);

    // The snapshot is exported read-only at /DATASET@SNAP.
    assert_eq!(read_file(server.nfs_port, "vol-a@snapshot-1", "data").await, pattern(1, 300_000));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn volume_from_snapshot_and_clone_hold_the_data() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    c.create_volume(cv("src", 12 * MIB, 0)).await.unwrap();
    let original = pattern(7, 2_000_000);
    write_file(server.nfs_port, "src", "file", &original).await;

    let snap = c.create_snapshot(cs("snap", "src")).await.unwrap().into_inner().snapshot.unwrap();
    // Change the source after the snapshot.
    let changed = pattern(8, 2_000_000);
    write_file(server.nfs_port, "src", "file", &changed).await;

    // Restore: PVC from the snapshot.
    let r = c.create_volume(from_snapshot("restored", 16 * MIB, &snap.snapshot_id)).await.unwrap().into_inner();
    let v = r.volume.unwrap();
    assert_eq!(v.volume_id, "restored");
    assert_eq!(v.capacity_bytes, 16 * MIB);
    match v.content_source.as_ref().and_then(|s| s.r#type.clone()) {
        Some(volume_content_source::Type::Snapshot(s)) => assert_eq!(s.snapshot_id, snap.snapshot_id),
        other => panic!("content source {other:?}"),
    }
    assert_eq!(read_file(server.nfs_port, "restored", "file").await, original);
    // Idempotent; a restore with a larger size gets that size as its quota.
    let again = c.create_volume(from_snapshot("restored", 16 * MIB, &snap.snapshot_id)).await.unwrap();
    assert_eq!(again.into_inner().volume.unwrap(), v);
    let mut nfsc = nfs::Client::mount(server.nfs_port, "/restored").await.unwrap();
    let root = nfsc.root.clone();
    assert_eq!(nfsc.fsstat(&root).await.unwrap().tbytes, (16 * MIB) as u64);
    // ControllerGetVolume names the source.
    let g = c.controller_get_volume(ControllerGetVolumeRequest { volume_id: "restored".into() }).await.unwrap().into_inner();
    assert_eq!(g.volume.unwrap().content_source, v.content_source);
    // Same name with another (or no) source → ALREADY_EXISTS.
    assert_eq!(code(c.create_volume(cv("restored", 16 * MIB, 0)).await), Code::AlreadyExists);
    assert_eq!(code(c.create_volume(from_volume("restored", 16 * MIB, "src")).await), Code::AlreadyExists);
    // Unknown or malformed sources → NOT_FOUND; smaller than the snapshot → OUT_OF_RANGE.
    assert_eq!(code(c.create_volume(from_snapshot("r2", 16 * MIB, "src@nope")).await), Code::NotFound);
    assert_eq!(code(c.create_volume(from_snapshot("r2", 16 * MIB, "nope@snap")).await), Code::NotFound);
    assert_eq!(code(c.create_volume(from_snapshot("r2", 16 * MIB, "garbage")).await), Code::NotFound);
    assert_eq!(code(c.create_volume(from_snapshot("r2", 16 * MIB, "")).await), Code::InvalidArgument);
    assert_eq!(code(c.create_volume(from_snapshot("r2", MIB, &snap.snapshot_id)).await), Code::OutOfRange);
    assert_eq!(code(c.create_volume(from_volume("r2", 16 * MIB, "no-such")).await), Code::NotFound);
    assert_eq!(code(c.create_volume(from_volume("r2", MIB, "src")).await), Code::OutOfRange);

    // Clone: PVC from a PVC holds the source's current data; the two then diverge.
    let cl = c.create_volume(from_volume("clone", 16 * MIB, "src")).await.unwrap().into_inner().volume.unwrap();
    match cl.content_source.as_ref().and_then(|s| s.r#type.clone()) {
        Some(volume_content_source::Type::Volume(s)) => assert_eq!(s.volume_id, "src"),
        other => panic!("content source {other:?}"),
    }
    let again = c.create_volume(from_volume("clone", 16 * MIB, "src")).await.unwrap().into_inner().volume.unwrap();
    assert_eq!(again, cl);
    assert_eq!(read_file(server.nfs_port, "clone", "file").await, changed);
    write_file(server.nfs_port, "clone", "only-in-clone", b"x").await;
    write_file(server.nfs_port, "restored", "file", &pattern(9, 1000)).await;
    assert_eq!(read_file(server.nfs_port, "src", "file").await, changed);
    let mut s = nfs::Client::mount(server.nfs_port, "/src").await.unwrap();
    let root = s.root.clone();
    assert!(s.lookup(&root, b"only-in-clone").await.is_err());
    // The snapshot still holds the original.
    assert_eq!(read_file(server.nfs_port, "src@snap", "file").await, original);

    // Deleting the source keeps what the restored volume, the clone and the snapshot need.
    c.delete_volume(DeleteVolumeRequest { volume_id: "src".into(), secrets: secrets() }).await.unwrap();
    assert_eq!(read_file(server.nfs_port, "clone", "file").await, changed);
    assert_eq!(&read_file(server.nfs_port, "restored", "file").await[..1000], &pattern(9, 1000)[..]);
    c.delete_volume(DeleteVolumeRequest { volume_id: "clone".into(), secrets: secrets() }).await.unwrap();
    c.delete_volume(DeleteVolumeRequest { volume_id: "restored".into(), secrets: secrets() }).await.unwrap();
    c.delete_snapshot(DeleteSnapshotRequest { snapshot_id: snap.snapshot_id.clone(), secrets: secrets() }).await.unwrap();
    c.delete_snapshot(DeleteSnapshotRequest { snapshot_id: snap.snapshot_id, secrets: secrets() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expand_then_write_past_the_old_size() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    c.create_volume(cv("grow", 2 * MIB, 0)).await.unwrap();

    let mut nfsc = nfs::Client::mount(server.nfs_port, "/grow").await.unwrap();
    let root = nfsc.root.clone();
    let f = nfsc.create(&root, b"big", 0o644).await.unwrap();
    let chunk = pattern(3, 256 * 1024);
    let mut off = 0u64;
    let full = loop {
        match nfsc.write(&f, off, &chunk).await {
            Ok(n) => off += n as u64,
            Err(stat) => break stat,
        }
        assert!(off <= 4 * MIB as u64, "2 MiB quota not enforced");
    };
    assert!(
        matches!(full, nfs::nfsstat3::NFS3ERR_NOSPC | nfs::nfsstat3::NFS3ERR_DQUOT),
        "write past the quota: {full:?}"
    );
    let old_size = off;

    let expand = |v: &str, req: i64, lim: i64| ControllerExpandVolumeRequest {
        volume_id: v.into(),
        capacity_range: Some(CapacityRange { required_bytes: req, limit_bytes: lim }),
        secrets: secrets(),
        ..Default::default()
    };
    let r = c.controller_expand_volume(expand("grow", 8 * MIB, 0)).await.unwrap().into_inner();
    assert_eq!(r.capacity_bytes, 8 * MIB);
    assert!(!r.node_expansion_required);
    // Repeats and smaller requests change nothing.
    assert_eq!(c.controller_expand_volume(expand("grow", 8 * MIB, 0)).await.unwrap().into_inner().capacity_bytes, 8 * MIB);
    assert_eq!(c.controller_expand_volume(expand("grow", 4 * MIB, 0)).await.unwrap().into_inner().capacity_bytes, 8 * MIB);

    // The same mount now writes well past the old size.
    for _ in 0..16 {
        let n = nfsc.write(&f, off, &chunk).await.expect("write after expansion");
        off += n as u64;
    }
    assert!(off >= old_size + 4 * MIB as u64);
    assert_eq!(nfsc.fsstat(&root).await.unwrap().tbytes, (8 * MIB) as u64);
    let g = c.controller_get_volume(ControllerGetVolumeRequest { volume_id: "grow".into() }).await.unwrap().into_inner();
    assert_eq!(g.volume.unwrap().capacity_bytes, 8 * MIB);

    // Errors.
    assert_eq!(code(c.controller_expand_volume(expand("nope", 8 * MIB, 0)).await), Code::NotFound);
    assert_eq!(code(c.controller_expand_volume(expand("", 8 * MIB, 0)).await), Code::InvalidArgument);
    assert_eq!(code(c.controller_expand_volume(expand("grow", 0, 4 * MIB)).await), Code::OutOfRange);
    let mut no_range = expand("grow", 0, 0);
    no_range.capacity_range = None;
    assert_eq!(code(c.controller_expand_volume(no_range).await), Code::InvalidArgument);
    let mut blk = expand("grow", 16 * MIB, 0);
    blk.volume_capability = Some(block_cap());
    assert_eq!(code(c.controller_expand_volume(blk).await), Code::InvalidArgument);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_volume_validate_capabilities_and_capacity() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    c.create_volume(cv("v1", 4 * MIB, 0)).await.unwrap();
    write_file(server.nfs_port, "v1", "f", &pattern(4, 100_000)).await;

    // ControllerGetVolume with the volume's condition.
    let g = c.controller_get_volume(ControllerGetVolumeRequest { volume_id: "v1".into() }).await.unwrap().into_inner();
    assert_eq!(g.volume.as_ref().unwrap().capacity_bytes, 4 * MIB);
    let cond = g.status.unwrap().volume_condition.unwrap();
    assert!(!cond.abnormal, "{cond:?}");
    assert!(cond.message.contains("used"), "{cond:?}");
    assert_eq!(code(c.controller_get_volume(ControllerGetVolumeRequest { volume_id: "nope".into() }).await), Code::NotFound);
    assert_eq!(code(c.controller_get_volume(ControllerGetVolumeRequest::default()).await), Code::InvalidArgument);

    // ValidateVolumeCapabilities.
    let vvc = |id: &str, caps: Vec<VolumeCapability>| ValidateVolumeCapabilitiesRequest {
        volume_id: id.into(),
        volume_capabilities: caps,
        ..Default::default()
    };
    for mode in [
        Mode::SingleNodeWriter,
        Mode::SingleNodeReaderOnly,
        Mode::MultiNodeReaderOnly,
        Mode::MultiNodeSingleWriter,
        Mode::MultiNodeMultiWriter,
        Mode::SingleNodeSingleWriter,
        Mode::SingleNodeMultiWriter,
    ] {
        let r = c.validate_volume_capabilities(vvc("v1", vec![cap_mode(mode)])).await.unwrap().into_inner();
        let confirmed = r.confirmed.unwrap_or_else(|| panic!("{mode:?} not confirmed: {}", r.message));
        assert_eq!(confirmed.volume_capabilities, vec![cap_mode(mode)]);
    }
    let r = c.validate_volume_capabilities(vvc("v1", vec![cap(), block_cap()])).await.unwrap().into_inner();
    assert!(r.confirmed.is_none());
    assert!(r.message.contains("block"), "{}", r.message);
    let mut with_param = vvc("v1", vec![cap()]);
    with_param.parameters.insert("nonsense".into(), "1".into());
    let r = c.validate_volume_capabilities(with_param).await.unwrap().into_inner();
    assert!(r.confirmed.is_none() && !r.message.is_empty());
    assert_eq!(code(c.validate_volume_capabilities(vvc("nope", vec![cap()])).await), Code::NotFound);
    assert_eq!(code(c.validate_volume_capabilities(vvc("", vec![cap()])).await), Code::InvalidArgument);
    assert_eq!(code(c.validate_volume_capabilities(vvc("v1", vec![])).await), Code::InvalidArgument);
    let mut no_mode = cap();
    no_mode.access_mode = None;
    assert_eq!(code(c.validate_volume_capabilities(vvc("v1", vec![no_mode])).await), Code::InvalidArgument);
    // A read-only snapshot as a (static) volume: readers confirmed, writers not.
    c.create_snapshot(cs("s1", "v1")).await.unwrap();
    let r = c.validate_volume_capabilities(vvc("v1@s1", vec![cap_mode(Mode::MultiNodeReaderOnly)])).await.unwrap();
    assert!(r.into_inner().confirmed.is_some());
    let r = c.validate_volume_capabilities(vvc("v1@s1", vec![cap()])).await.unwrap().into_inner();
    assert!(r.confirmed.is_none());
    assert_eq!(code(c.validate_volume_capabilities(vvc("v1@nope", vec![cap()])).await), Code::NotFound);

    // GetCapacity: the local store's free space, the documented minimum; nothing for block.
    let gc = c.get_capacity(GetCapacityRequest::default()).await.unwrap().into_inner();
    assert!(gc.available_capacity > 0);
    assert_eq!(gc.minimum_volume_size, Some(MIB));
    assert_eq!(gc.maximum_volume_size, Some(gc.available_capacity));
    let gc = c
        .get_capacity(GetCapacityRequest { volume_capabilities: vec![block_cap()], ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(gc.available_capacity, 0);
    let mut bad = GetCapacityRequest::default();
    bad.parameters.insert("nonsense".into(), "1".into());
    assert_eq!(code(c.get_capacity(bad).await), Code::InvalidArgument);
}

// ------------------------------------------------------------------------------- Node

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_info_capabilities_and_errors() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut n = plugin.node();
    let mut c = plugin.controller();
    c.create_volume(cv("nvol", 4 * MIB, 0)).await.unwrap();

    let info = n.node_get_info(NodeGetInfoRequest {}).await.unwrap().into_inner();
    assert_eq!(info.node_id, "test-node");
    assert!(info.accessible_topology.is_none());

    let caps = n.node_get_capabilities(NodeGetCapabilitiesRequest {}).await.unwrap().into_inner();
    use node_service_capability::rpc::Type as T;
    let got: Vec<T> = caps
        .capabilities
        .iter()
        .filter_map(|c| match &c.r#type {
            Some(node_service_capability::Type::Rpc(r)) => T::try_from(r.r#type).ok(),
            None => None,
        })
        .collect();
    assert_eq!(got, vec![T::GetVolumeStats, T::VolumeCondition, T::SingleNodeMultiWriter]);

    let target = plugin.path().join("pods/p1/volumes/nvol/mount");
    let t = target.to_str().unwrap().to_string();
    let publish = |v: &str, target: &str, cap: Option<VolumeCapability>| NodePublishVolumeRequest {
        volume_id: v.into(),
        target_path: target.into(),
        volume_capability: cap,
        secrets: secrets(),
        ..Default::default()
    };
    assert_eq!(code(n.node_publish_volume(publish("", &t, Some(cap()))).await), Code::InvalidArgument);
    assert_eq!(code(n.node_publish_volume(publish("nvol", "", Some(cap()))).await), Code::InvalidArgument);
    assert_eq!(code(n.node_publish_volume(publish("nvol", &t, None)).await), Code::InvalidArgument);
    assert_eq!(code(n.node_publish_volume(publish("nvol", &t, Some(block_cap()))).await), Code::InvalidArgument);
    assert_eq!(code(n.node_publish_volume(publish("nvol", "relative/path", Some(cap()))).await), Code::InvalidArgument);
    // Unknown volumes: NOT_FOUND from the dataset server, and nothing created at the target.
    assert_eq!(code(n.node_publish_volume(publish("no-such-vol", &t, Some(cap()))).await), Code::NotFound);
    assert_eq!(code(n.node_publish_volume(publish("nvol@no-such-snap", &t, Some(cap()))).await), Code::NotFound);
    assert_eq!(code(n.node_publish_volume(publish("Not Valid", &t, Some(cap()))).await), Code::NotFound);
    assert!(!target.exists());

    // Unpublish of something never published: OK, and the target directory goes.
    std::fs::create_dir_all(&target).unwrap();
    let unpublish = |v: &str, t: &str| NodeUnpublishVolumeRequest { volume_id: v.into(), target_path: t.into() };
    n.node_unpublish_volume(unpublish("nvol", &t)).await.unwrap();
    assert!(!target.exists());
    n.node_unpublish_volume(unpublish("nvol", &t)).await.unwrap();
    assert_eq!(code(n.node_unpublish_volume(unpublish("", &t)).await), Code::InvalidArgument);
    assert_eq!(code(n.node_unpublish_volume(unpublish("nvol", "")).await), Code::InvalidArgument);

    // Stats: arguments, and NOT_FOUND where the volume is not published.
    let stats = |v: &str, p: &str| NodeGetVolumeStatsRequest {
        volume_id: v.into(),
        volume_path: p.into(),
        staging_target_path: String::new(),
    };
    assert_eq!(code(n.node_get_volume_stats(stats("", &t)).await), Code::InvalidArgument);
    assert_eq!(code(n.node_get_volume_stats(stats("nvol", "")).await), Code::InvalidArgument);
    assert_eq!(code(n.node_get_volume_stats(stats("nvol", &t)).await), Code::NotFound);
    assert_eq!(code(n.node_get_volume_stats(stats("nvol", "/")).await), Code::NotFound);

    // No staging, no node expansion.
    assert_eq!(code(n.node_stage_volume(NodeStageVolumeRequest::default()).await), Code::Unimplemented);
    assert_eq!(code(n.node_unstage_volume(NodeUnstageVolumeRequest::default()).await), Code::Unimplemented);
    assert_eq!(code(n.node_expand_volume(NodeExpandVolumeRequest::default()).await), Code::Unimplemented);

    // The CLI reports the code as its exit status.
    let out = plugin.call(&["node-publish", "--volume-id", "no-such-vol", "--target-path", &t]);
    assert_eq!(out.status.code(), Some(Code::NotFound as i32), "{out:?}");
    let out = plugin.call(&["node-info"]);
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["node_id"], "test-node");
}

/// Publish/unpublish with the kernel NFS client. Without one (this machine's kernel), the
/// publish must fail cleanly and say why; the full flow runs in the VM harness.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_publish_unpublish_through_the_kernel() {
    let server = Server::start();
    let plugin = Plugin::start(&server);
    let mut n = plugin.node();
    let mut c = plugin.controller();
    c.create_volume(cv("kvol", 4 * MIB, 0)).await.unwrap();
    let target = plugin.path().join("pods/p1/volumes/kvol/mount");
    let t = target.to_str().unwrap().to_string();
    let publish = |target: &str, mode: Mode, readonly: bool| NodePublishVolumeRequest {
        volume_id: "kvol".into(),
        target_path: target.into(),
        volume_capability: Some(cap_mode(mode)),
        readonly,
        secrets: secrets(),
        ..Default::default()
    };

    let can_mount = slatefs::csi::mounter::kernel_has_nfs() && unsafe { libc::geteuid() } == 0;
    if !can_mount {
        let e = n.node_publish_volume(publish(&t, Mode::SingleNodeWriter, false)).await.unwrap_err();
        assert_eq!(e.code(), Code::Internal, "{e:?}");
        assert!(e.message().contains("no NFS client") || unsafe { libc::geteuid() } != 0, "{e:?}");
        // Nothing is left mounted, and unpublish cleans the target up.
        n.node_unpublish_volume(NodeUnpublishVolumeRequest { volume_id: "kvol".into(), target_path: t.clone() })
            .await
            .unwrap();
        assert!(!target.exists());
        eprintln!("SKIPPED: this kernel cannot mount NFS (no nfs in /proc/filesystems, or not root); the kernel publish flow runs in tests/vm (04-csi)");
        return;
    }

    n.node_publish_volume(publish(&t, Mode::SingleNodeSingleWriter, false)).await.unwrap();
    n.node_publish_volume(publish(&t, Mode::SingleNodeSingleWriter, false)).await.unwrap();
    std::fs::write(target.join("hello"), b"hi").unwrap();
    assert_eq!(read_file(server.nfs_port, "kvol", "hello").await, b"hi");
    assert_eq!(code(n.node_publish_volume(publish(&t, Mode::SingleNodeSingleWriter, true)).await), Code::AlreadyExists);
    let t2 = plugin.path().join("pods/p2/volumes/kvol/mount");
    let e = n.node_publish_volume(publish(t2.to_str().unwrap(), Mode::SingleNodeSingleWriter, false)).await;
    assert_eq!(code(e), Code::FailedPrecondition);
    let s = n
        .node_get_volume_stats(NodeGetVolumeStatsRequest {
            volume_id: "kvol".into(),
            volume_path: t.clone(),
            staging_target_path: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let bytes = s.usage.iter().find(|u| u.unit == volume_usage::Unit::Bytes as i32).unwrap();
    assert_eq!(bytes.total, 4 * MIB);
    assert!(!s.volume_condition.unwrap().abnormal);
    n.node_unpublish_volume(NodeUnpublishVolumeRequest { volume_id: "kvol".into(), target_path: t.clone() })
        .await
        .unwrap();
    assert!(!target.exists());
}
