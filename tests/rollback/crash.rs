//! kill -9 at every crash point of a rollback (part of the `rollback` test binary): after a
//! restart the dataset has either all of its old contents (every acknowledged write
//! included) or exactly the snapshot's, never a mix; the start undid or finished the
//! rollback, and the store holds no database the catalog does not name.

use std::collections::BTreeSet;

use super::server::{Server, ServerOptions};
use super::{build_tree, databases, ds, mount, ok, put, server_store, tree};

const POINTS: &[&str] =
    &["rollback.after-intent", "rollback.after-close", "rollback.after-clone", "rollback.after-floor", "rollback.after-commit"];

fn start(store_url: &str, crash_at: Option<&str>) -> Server {
    Server::start_with(ServerOptions {
        store_url: Some(store_url.to_string()),
        env: crash_at.map(|p| ("SLATEFS_CRASH_AT".to_string(), p.to_string())).into_iter().collect(),
        ..Default::default()
    })
}

/// The directories below a local store's `datasets/` (none for another store).
fn local_dirs(store: &slatefs::store::Store) -> Option<BTreeSet<u64>> {
    let dir = store.local_dir()?.join("datasets");
    Some(
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| u64::from_str_radix(e.unwrap().file_name().to_str().unwrap(), 16).unwrap())
            .collect(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_at_every_rollback_crash_point_leaves_old_or_new_contents() {
    let mut home = Server::start();
    let store_url = home.store_url.clone();
    let store = server_store(&home);
    ok(&home, &["create", "crash"]);
    let mut c = mount(&home, "/crash").await;
    build_tree(&mut c, 1).await;
    let at_snapshot = tree(&mut c).await;
    ok(&home, &["snapshot", "crash", "s", "--readonly"]);
    build_tree(&mut c, 2).await;
    drop(c);
    assert!(home.stop(), "clean stop:\n{}", home.logs());
    let before = databases(&store).await;
    assert_eq!(before.len(), 2, "root and crash");

    for (i, point) in POINTS.iter().enumerate() {
        let mut crashed = start(&store_url, Some(point));
        // The writer is open, with an acknowledged write the rollback must not lose if it is
        // undone.
        let mut c = mount(&crashed, "/crash").await;
        put(&mut c, "last-write", format!("before crash {i}").as_bytes()).await;
        let old = tree(&mut c).await;
        let o = ds(&crashed, &["rollback", "crash", "s"]);
        assert_ne!(o.code, 0, "{point}: the rollback should have crashed the server");
        let log = crashed.logs();
        assert!(log.contains(&format!("SLATEFS_CRASH_AT={point}")), "{point} was not reached:\n{log}");
        crashed.kill9();
        drop(c);

        let mut server = start(&store_url, None);
        let log = server.logs();
        assert!(!log.contains("has no catalog record"), "{point}: orphans found:\n{log}");
        let now = tree(&mut mount(&server, "/crash").await).await;
        let dbs = databases(&store).await;
        if *point == "rollback.after-commit" {
            assert_eq!(now, at_snapshot, "{point}: the committed rollback's contents");
            assert_eq!(dbs.len(), 3, "{point}: root, the replaced database (holding s) and the new one: {dbs:?}");
            assert!(dbs.is_superset(&before), "{point}: {dbs:?}");
        } else {
            assert_eq!(now, old, "{point}: an undone rollback keeps every acknowledged write");
            assert!(log.contains("undid the unfinished rollback"), "{point}: not undone at start:\n{log}");
            assert_eq!(dbs, before, "{point}: the new database is gone");
        }
        if let Some(dirs) = local_dirs(&store) {
            assert_eq!(dirs, dbs, "{point}: directories in the local store vs databases");
        }
        // The snapshot is intact whatever happened.
        assert_eq!(tree(&mut mount(&server, "/crash@s").await).await, at_snapshot, "{point}");
        assert!(server.stop(), "clean stop:\n{}", server.logs());
    }

    // The repeat works; a second start finds nothing to undo or sweep.
    let mut server = start(&store_url, None);
    put(&mut mount(&server, "/crash").await, "more", b"x").await;
    ok(&server, &["rollback", "crash", "s"]);
    assert_eq!(tree(&mut mount(&server, "/crash").await).await, at_snapshot);
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    server.restart();
    let log = server.logs();
    let last = log.rsplit("--- restart ---").next().unwrap();
    assert!(!last.contains("undid") && !last.contains("has no catalog record"), "{last}");
    assert_eq!(tree(&mut mount(&server, "/crash").await).await, at_snapshot);
    // Root, the database holding s, and the dataset's current one (the one replaced by the
    // repeat held nothing anybody needs and was collected).
    assert_eq!(databases(&store).await.len(), 3);
}
