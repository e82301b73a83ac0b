//! Snapshots whose source volume was deleted (part of the `csi` test binary: it uses its
//! helpers). What the store holds is read from the store itself.

use futures::TryStreamExt;
use slatefs::csi::proto::*;
use slatefs::store::Store;
use tonic::Code;

use super::csi::Plugin;
use super::server::Server;
use super::{code, cs, cv, from_snapshot, nfs::pattern, read_file, secrets, write_file, MIB};

/// The catalog id of dataset `name`, from `slatefs dataset info`.
fn dataset_id(server: &Server, name: &str) -> u64 {
    let out = server.cli(&["dataset", "--admin", &server.admin, "info", name, "-o", "json"]);
    assert!(out.status.success(), "info {name}: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    v["id"].as_u64().unwrap()
}

/// Objects of dataset `id` in the store, and whether a local store still has its directory.
async fn left_of(store: &Store, id: u64) -> (usize, bool) {
    let prefix = store.dataset_path(id);
    let objects = match store.object_store().list(Some(&prefix)).try_collect::<Vec<_>>().await {
        Ok(o) => o.len(),
        Err(object_store::Error::NotFound { .. }) => 0,
        Err(e) => panic!("cannot list {prefix}: {e}"),
    };
    let dir = store.local_dir().is_some_and(|d| d.join(prefix.as_ref()).exists());
    (objects, dir)
}

fn list(snapshot_id: &str, source: &str) -> ListSnapshotsRequest {
    ListSnapshotsRequest {
        snapshot_id: snapshot_id.into(),
        source_volume_id: source.into(),
        secrets: secrets(),
        ..Default::default()
    }
}

async fn listed(c: &mut controller_client::ControllerClient<tonic::transport::Channel>, snapshot_id: &str, source: &str) -> Vec<Snapshot> {
    let r = c.list_snapshots(list(snapshot_id, source)).await.unwrap().into_inner();
    r.entries.into_iter().map(|e| e.snapshot.unwrap()).collect()
}

/// The order backup tools use: DeleteVolume while snapshots of the volume exist. Every
/// snapshot call keeps finding them, before and after a restart of the catalog owner; a volume
/// restored from one holds the data; deleting the last snapshot collects it and then the hidden
/// source, and nothing of either is left in the store, after another restart too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_outlives_its_source_volume() {
    let mut server = Server::start();
    let store = Store::open(&server.storage_config().expect("the test server's store")).unwrap();
    let mut plugin = Plugin::start(&server);
    let mut c = plugin.controller();
    c.create_volume(cv("pvc-src", 12 * MIB, 0)).await.unwrap();
    let src_id = dataset_id(&server, "pvc-src");
    let data = pattern(5, 3_000_000);
    write_file(server.nfs_port, "pvc-src", "file", &data).await;
    let s1 = c.create_snapshot(cs("snap-1", "pvc-src")).await.unwrap().into_inner().snapshot.unwrap();
    let s2 = c.create_snapshot(cs("snap-2", "pvc-src")).await.unwrap().into_inner().snapshot.unwrap();
    assert_eq!((s1.snapshot_id.as_str(), s2.snapshot_id.as_str()), ("pvc-src@snap-1", "pvc-src@snap-2"));
    c.delete_volume(DeleteVolumeRequest { volume_id: "pvc-src".into(), secrets: secrets() }).await.unwrap();
    assert!(left_of(&store, src_id).await.0 > 0, "the snapshots need the source's objects");

    for start in ["before a restart", "after a restart"] {
        for (name, s) in [("snap-1", &s1), ("snap-2", &s2)] {
            let id = s.snapshot_id.clone();
            let got = c.get_snapshot(GetSnapshotRequest { snapshot_id: id.clone(), secrets: secrets() }).await;
            assert_eq!(got.unwrap().into_inner().snapshot.as_ref(), Some(s), "{start}: GetSnapshot {id}");
            assert_eq!(listed(&mut c, &id, "").await, std::slice::from_ref(s), "{start}: ListSnapshots by id {id}");
            assert!(listed(&mut c, "", "").await.contains(s), "{start}: ListSnapshots {id}");
            // A retried CreateSnapshot finds the snapshot it made.
            let again = c.create_snapshot(cs(name, "pvc-src")).await.unwrap().into_inner();
            assert_eq!(again.snapshot.as_ref(), Some(s), "{start}: CreateSnapshot again");
        }
        assert_eq!(listed(&mut c, "", "pvc-src").await, [s1.clone(), s2.clone()], "{start}: by source");
        assert!(listed(&mut c, &s1.snapshot_id, "pvc-other").await.is_empty(), "{start}");
        // A new snapshot of the deleted volume is refused.
        assert_eq!(code(c.create_snapshot(cs("snap-3", "pvc-src")).await), Code::NotFound, "{start}");
        if start.starts_with("before") {
            assert!(plugin.stop(), "unclean stop:\n{}", plugin.logs());
            assert!(server.stop(), "unclean stop:\n{}", server.logs());
            server.restart();
            plugin = Plugin::start(&server);
            c = plugin.controller();
        }
    }

    // Restore a volume from one; it holds the data, as does the snapshot's export.
    let r = c.create_volume(from_snapshot("pvc-restored", 16 * MIB, &s1.snapshot_id)).await;
    let v = r.unwrap().into_inner().volume.unwrap();
    match v.content_source.and_then(|s| s.r#type) {
        Some(volume_content_source::Type::Snapshot(s)) => assert_eq!(s.snapshot_id, s1.snapshot_id),
        other => panic!("content source {other:?}"),
    }
    assert_eq!(read_file(server.nfs_port, "pvc-restored", "file").await, data);
    assert_eq!(read_file(server.nfs_port, "pvc-src@snap-1", "file").await, data);
    let restored_id = dataset_id(&server, "pvc-restored");
    c.delete_volume(DeleteVolumeRequest { volume_id: "pvc-restored".into(), secrets: secrets() }).await.unwrap();
    assert_eq!(left_of(&store, restored_id).await, (0, false), "the restored volume is collected");

    let del = |id: &str| DeleteSnapshotRequest { snapshot_id: id.into(), secrets: secrets() };
    c.delete_snapshot(del(&s2.snapshot_id)).await.unwrap();
    assert!(left_of(&store, src_id).await.0 > 0, "snap-1 still needs the source's objects");
    assert_eq!(listed(&mut c, "", "pvc-src").await, std::slice::from_ref(&s1));
    // The last snapshot goes, and the hidden source with it.
    c.delete_snapshot(del(&s1.snapshot_id)).await.unwrap();
    assert_eq!(left_of(&store, src_id).await, (0, false), "the hidden source is collected");
    for s in [&s1, &s2] {
        let got = c.get_snapshot(GetSnapshotRequest { snapshot_id: s.snapshot_id.clone(), secrets: secrets() }).await;
        assert_eq!(code(got), Code::NotFound);
        c.delete_snapshot(del(&s.snapshot_id)).await.unwrap();
    }
    assert!(listed(&mut c, "", "").await.is_empty());
    assert!(listed(&mut c, "", "pvc-src").await.is_empty());

    assert!(plugin.stop(), "unclean stop:\n{}", plugin.logs());
    assert!(server.stop(), "unclean stop:\n{}", server.logs());
    server.restart();
    let log = std::fs::read_to_string(server.log_path()).unwrap();
    assert!(!log.contains("has no catalog record"), "{log}");
    for id in [src_id, restored_id] {
        assert_eq!(left_of(&store, id).await, (0, false), "dataset {id} after a restart");
    }
}
