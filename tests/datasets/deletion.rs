//! Deleting datasets that read-only snapshots outlive, through the CLI against a real server
//! (part of the `datasets` test binary: it uses its helpers).

use super::server::Server;
use super::{
    fails, has_db, last_start_log, local_dataset_dirs, names, nfs, nfs_get, nfs_put, objects_under, ok,
    server_store,
};

/// A read-only snapshot outlives its dataset. Deleting the dataset hides it; its snapshots
/// keep answering to `DATASET@SNAP` (listed under its name, exported, cloned, deleted), also
/// after a restart; deleting the last thing that needs the hidden dataset removes it, and
/// nothing of it or of its snapshots is left in the store (no object, and no directory in a
/// local store), which the next start finds clean.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_snapshots_of_a_deleted_dataset_list_export_clone_and_collect_it() {
    let mut server = Server::start();
    let store = server_store(&server);
    let root_id = ok(&server, &["info", "root", "-o", "json"]).json()["id"].as_u64().unwrap();
    let gone_id = ok(&server, &["create", "gone", "-o", "json"]).json()["id"].as_u64().unwrap();
    let data = nfs::pattern(3, 3 << 20);
    let mut c = nfs::Client::mount(server.nfs_port, "/gone").await.unwrap();
    nfs_put(&mut c, "f", &data).await.unwrap();
    drop(c);
    ok(&server, &["snapshot", "gone", "s1", "--readonly"]);
    ok(&server, &["snapshot", "gone", "s2", "--readonly"]);
    let o = ok(&server, &["delete", "gone"]);
    assert!(o.stdout.contains("hidden") && o.stdout.contains("gone@s1"), "{}", o.stdout);
    fails(&server, &["info", "gone"], 1, "dataset \"gone\" does not exist");
    assert!(has_db(&store, gone_id).await, "the snapshots need the deleted dataset's objects");

    for start in ["before a restart", "after a restart"] {
        let listed = ok(&server, &["list-snapshots", "gone", "-o", "json"]).json();
        assert_eq!(names(&listed), ["s1", "s2"], "{start}");
        for s in listed.as_array().unwrap() {
            assert_eq!((s["dataset"].as_str(), s["dataset_id"].as_u64()), (Some("gone"), Some(gone_id)), "{start}");
            assert_eq!(s["dataset_deleted"], true, "{start}: {s}");
        }
        let table = ok(&server, &["list-snapshots"]).stdout;
        assert!(table.contains("gone (deleted)"), "{start}: {table}");
        let mut snap = nfs::Client::mount(server.nfs_port, "/gone@s1").await.unwrap();
        assert_eq!(nfs_get(&mut snap, "f").await.unwrap(), data, "{start}");
        // With no dataset there is no `.snapshots` to go up to: the root is its own parent,
        // and listing the root answers (it used to be NFS3ERR_STALE).
        let root = snap.root.clone();
        assert_eq!(snap.readdir_all(&root).await, Ok(vec![b"f".to_vec()]), "{start}");
        let up = snap.lookup(&root, b"..").await.unwrap();
        assert_eq!(snap.getattr(&up).await.unwrap().fileid, snap.getattr(&root).await.unwrap().fileid, "{start}");
        let (entries, _, _) = snap.readdir_page(&root, 0, Default::default()).await.unwrap();
        let dotdot = entries.iter().find(|(n, _, _)| n == b"..").expect("\"..\" listed");
        assert_eq!(dotdot.1, snap.getattr(&root).await.unwrap().fileid, "{start}");
        if start.starts_with("before") {
            assert!(server.stop(), "clean stop:\n{}", server.logs());
            server.restart();
        }
    }
    // A new dataset may take the name; the snapshots stay those of the deleted one.
    ok(&server, &["create", "gone"]);
    let listed = ok(&server, &["list-snapshots", "gone", "-o", "json"]).json();
    assert!(listed.as_array().unwrap().iter().all(|s| s["dataset_id"].as_u64() == Some(gone_id)), "{listed}");
    ok(&server, &["delete", "gone"]);

    let k = ok(&server, &["clone", "s1", "k", "-o", "json"]).json();
    let k_id = k["id"].as_u64().unwrap();
    let mut m = nfs::Client::mount(server.nfs_port, "/k").await.unwrap();
    assert_eq!(nfs_get(&mut m, "f").await.unwrap(), data);
    drop(m);
    let o = ok(&server, &["delete-snapshot", "s1"]);
    assert!(o.stdout.contains("hidden") && o.stdout.contains('k'), "{}", o.stdout);
    let o = ok(&server, &["delete-snapshot", "s2"]);
    assert_eq!(o.stdout, "deleted snapshot s2\n");
    fails(&server, &["list-snapshots", "gone"], 1, "dataset \"gone\" does not exist");
    assert!(has_db(&store, gone_id).await, "the clone still needs the deleted dataset's objects");

    // The clone was the last dependant: it, the snapshot it was made from and the hidden
    // dataset are all collected.
    assert_eq!(ok(&server, &["delete", "k"]).stdout, "deleted dataset k\n");
    for id in [gone_id, k_id] {
        assert_eq!(objects_under(&store, &format!("datasets/{id:016x}")).await, 0, "dataset {id}");
    }
    let only_root = || async {
        assert_eq!(
            objects_under(&store, "datasets").await,
            objects_under(&store, &format!("datasets/{root_id:016x}")).await,
            "only root's database is left"
        );
        if let Some(dirs) = local_dataset_dirs(&store) {
            assert_eq!(dirs.into_iter().collect::<Vec<_>>(), [root_id], "directories left in the local store");
        }
    };
    only_root().await;
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    server.restart();
    let log = last_start_log(&server);
    assert!(!log.contains("has no catalog record"), "{log}");
    only_root().await;
    assert!(names(&ok(&server, &["list-snapshots", "-o", "json"]).json()).is_empty());
}
