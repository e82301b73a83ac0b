//! kill -9 in the middle of every catalog operation (part of the `datasets` test binary: it
//! uses its helpers).

use futures::TryStreamExt;
use slatefs::store::Store;

use super::server::{Server, ServerOptions};
use super::{ds, fails, last_start_log, local_dataset_dirs, nfs, nfs_get, nfs_put, ok, server_store};

/// The store as the crash test sees it: which databases hold objects and which checkpoints
/// each holds, read straight from the store.
struct StoreView {
    dbs: std::collections::BTreeSet<u64>,
    /// dataset id -> checkpoint names ("" for unnamed: the pins clones hold).
    checkpoints: std::collections::BTreeMap<u64, Vec<String>>,
}

async fn store_view(store: &Store) -> StoreView {
    // datasets/<id:016x>/...: the id is the first part below `datasets`.
    let datasets = store.path("datasets");
    let mut dbs = std::collections::BTreeSet::new();
    let objects: Vec<_> = store.object_store().list(Some(&datasets)).try_collect().await.unwrap();
    for o in objects {
        let id = o.location.prefix_match(&datasets).and_then(|mut parts| parts.next()).unwrap();
        dbs.insert(u64::from_str_radix(id.as_ref(), 16).unwrap());
    }
    let mut checkpoints = std::collections::BTreeMap::new();
    for &id in &dbs {
        let mut names: Vec<String> = store
            .list_checkpoints(&store.dataset_path(id))
            .await
            .unwrap()
            .into_iter()
            .map(|c| c.name.unwrap_or_default())
            .collect();
        names.sort();
        checkpoints.insert(id, names);
    }
    StoreView { dbs, checkpoints }
}

/// After a restart the catalog and the store agree: every listed dataset has its database and
/// nothing else has one (nor, on a local store, a directory: neither a deleted database nor a
/// rolled-back half-made one leaves one); every dataset's named checkpoints are exactly its listed read-only
/// snapshots, and it holds at most one unnamed pin per dataset cloned from it (SlateDB pins a
/// parent only when the clone shares its SST files; a clone of a checkpoint whose data was
/// still in the WAL copied that WAL and needs no pin).
async fn assert_consistent(server: &Server, store: &Store) {
    let datasets = ok(server, &["list", "-o", "json"]).json();
    let snapshots = ok(server, &["list-snapshots", "-o", "json"]).json();
    let view = store_view(store).await;
    let listed: std::collections::BTreeSet<u64> =
        datasets.as_array().unwrap().iter().map(|d| d["id"].as_u64().unwrap()).collect();
    assert_eq!(view.dbs, listed, "databases in the store vs datasets in the catalog");
    if let Some(dirs) = local_dataset_dirs(store) {
        assert_eq!(dirs, listed, "directories in the local store vs datasets in the catalog");
    }
    for id in &listed {
        let mut expected: Vec<String> = snapshots
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["dataset_id"].as_u64() == Some(*id))
            .map(|s| format!("slatefs-snap-{}", s["id"]))
            .collect();
        expected.sort();
        let clones = datasets
            .as_array()
            .unwrap()
            .iter()
            .filter(|d| d["origin"]["parent_dataset_id"].as_u64() == Some(*id))
            .count();
        let (pins, named): (Vec<&String>, Vec<&String>) =
            view.checkpoints[id].iter().partition(|n| n.is_empty());
        assert_eq!(named, expected.iter().collect::<Vec<_>>(), "named checkpoints of dataset {id}");
        assert!(pins.len() <= clones, "dataset {id}: {} pins for {clones} clones", pins.len());
    }
}

fn crashing(store_url: &str, point: &str) -> Server {
    Server::start_with(ServerOptions {
        store_url: Some(store_url.to_string()),
        env: vec![("SLATEFS_CRASH_AT".into(), point.into())],
        ..Default::default()
    })
}

fn normal(store_url: &str) -> Server {
    Server::start_with(ServerOptions { store_url: Some(store_url.to_string()), ..Default::default() })
}

/// kill -9 (an abort at a named point: no unwinding, nothing flushed) in the middle of
/// create, snapshot (both kinds), clone, delete and delete-snapshot; after a restart the
/// catalog and the store agree and the command can be repeated. What a restart rolled back or
/// forward is gone for good: the next start finds nothing without a catalog record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_kill9_in_the_middle_of_every_operation() {
    let mut home = Server::start();
    let store_url = home.store_url.clone();
    let store = server_store(&home);
    ok(&home, &["create", "src"]);
    let mut c = nfs::Client::mount(home.nfs_port, "/src").await.unwrap();
    nfs_put(&mut c, "f", b"source data").await.unwrap();
    drop(c);
    ok(&home, &["snapshot", "src", "base", "--readonly"]);
    assert!(home.stop(), "clean stop:\n{}", home.logs());

    // (crash point, command, what a repeat after the restart gives)
    let cases: &[(&str, &[&str], &str)] = &[
        ("create.after-intent", &["create", "c1"], "ok"),
        ("create.after-db", &["create", "c2"], "ok"),
        ("snapshot.after-intent", &["snapshot", "src", "s1", "--readonly"], "ok"),
        ("snapshot.after-checkpoint", &["snapshot", "src", "s2", "--readonly"], "ok"),
        ("clone.after-intent", &["snapshot", "src", "w1"], "ok"),
        ("clone.after-checkpoint", &["snapshot", "src", "w2"], "ok"),
        ("clone.after-clone", &["snapshot", "src", "w3"], "ok"),
        ("clone.after-intent", &["clone", "base", "k1"], "ok"),
        ("clone.after-clone", &["clone", "base", "k2"], "ok"),
        ("delete.after-intent", &["delete", "c1"], "does not exist"),
        ("delete.after-store", &["delete", "c2"], "does not exist"),
        ("delete-snapshot.after-intent", &["delete-snapshot", "s1"], "does not exist"),
        ("delete-snapshot.after-store", &["delete-snapshot", "s2"], "does not exist"),
    ];
    let mut kept = Vec::new();
    for (point, cmd, repeat) in cases {
        let mut crashed = crashing(&store_url, point);
        let o = ds(&crashed, cmd);
        assert_ne!(o.code, 0, "{point}: {cmd:?} should have crashed the server");
        let log = crashed.logs();
        assert!(log.contains(&format!("SLATEFS_CRASH_AT={point}")), "{point} was not reached:\n{log}");
        assert!(!log.contains("has no catalog record"), "{point}: the start before it swept orphans:\n{log}");
        crashed.kill9();
        kept.push(crashed);

        let mut server = normal(&store_url);
        assert_consistent(&server, &store).await;
        let listed = ok(&server, &["list", "-o", "json"]).stdout;
        let snaps = ok(&server, &["list-snapshots", "-o", "json"]).stdout;
        let target = cmd[cmd.len() - 1 - usize::from(cmd.last() == Some(&"--readonly"))];
        if *repeat == "ok" {
            // Rolled back: the object does not exist, and the command works the second time.
            assert!(!listed.contains(&format!("\"{target}\"")), "{point}: {target} exists:\n{listed}");
            assert!(!snaps.contains(&format!("\"{target}\"")), "{point}: {target} exists:\n{snaps}");
            ok(&server, cmd);
        } else {
            // Rolled forward: the delete completed; repeating it reports the object is gone.
            assert!(!listed.contains(&format!("\"{target}\"")), "{point}: {target} still listed");
            assert!(!snaps.contains(&format!("\"{target}\"")), "{point}: {target} still listed");
            fails(&server, cmd, 1, repeat);
        }
        assert_consistent(&server, &store).await;
        assert!(server.stop(), "clean stop:\n{}", server.logs());
        assert!(!server.logs().contains("has no catalog record"), "{point}: orphans:\n{}", server.logs());
    }

    // Everything made after the crashes works: the clones read the source's data.
    let server = normal(&store_url);
    for export in ["/w3", "/k2", "/src@base"] {
        let o = ds(&server, &["list", "-o", "json"]);
        let mut m = nfs::Client::mount(server.nfs_port, export)
            .await
            .unwrap_or_else(|e| panic!("mount {export}: {e}\n{}", o.stdout));
        assert_eq!(nfs_get(&mut m, "f").await.unwrap(), b"source data", "{export}");
    }
    // Deleting the rest collects everything but root.
    ok(&server, &["delete-snapshot", "base"]);
    for d in ["w1", "w2", "w3", "k1", "k2", "src"] {
        ok(&server, &["delete", d]);
    }
    assert_consistent(&server, &store).await;
    assert_eq!(store_view(&store).await.dbs.len(), 1);
    let mut server = server;
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    server.restart();
    let log = last_start_log(&server);
    assert!(!log.contains("has no catalog record"), "a start after everything was collected:\n{log}");
    assert_consistent(&server, &store).await;
}
