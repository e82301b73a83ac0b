//! What a snapshot holds: every change acknowledged before it was taken, even when that
//! change is still only in SlateDB's WAL (snapshots record the WAL position instead of waiting
//! for the memtable to reach an L0 table), and only those changes — after the dataset has moved
//! on far enough that its WAL was turned into L0 tables, and after a kill -9 and restart.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use nfs::{pattern, Client};
use server::{Server, ServerOptions};

const SMALL: usize = 3 << 20;
/// More than SlateDB's 64 MiB memtable: the dataset's WAL is flushed into L0 tables after
/// the snapshots, so reading them afterwards needs the WAL range the checkpoints pinned.
const MOVE_ON: usize = 96 << 20;

fn dataset(server: &Server, args: &[&str]) -> String {
    let mut full = vec!["dataset", "--admin", server.admin.as_str()];
    full.extend_from_slice(args);
    let out = server.cli(&full);
    assert!(
        out.status.success(),
        "slatefs dataset {args:?}: {}\nserver log:\n{}",
        String::from_utf8_lossy(&out.stderr),
        server.logs()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn put(c: &mut Client, name: &str, data: &[u8]) {
    let root = c.root.clone();
    let f = match c.lookup(&root, name.as_bytes()).await {
        Ok(f) => f,
        Err(_) => c.create(&root, name.as_bytes(), 0o644).await.unwrap(),
    };
    for (i, part) in data.chunks(1 << 20).enumerate() {
        c.write(&f, (i << 20) as u64, part).await.unwrap();
    }
}

/// COMMIT, retried while the server answers JUKEBOX (as the kernel does): 96 MiB of
/// unflushed async writes can take longer than `unavailable_after_ms` to reach a slow store.
async fn commit(c: &mut Client) {
    let root = c.root.clone();
    for _ in 0..60 {
        match c.commit(&root).await {
            Ok(()) => return,
            Err(nfs::nfsstat3::NFS3ERR_JUKEBOX) => tokio::time::sleep(std::time::Duration::from_secs(1)).await,
            Err(e) => panic!("COMMIT: {e:?}"),
        }
    }
    panic!("COMMIT still answers JUKEBOX after a minute");
}

async fn get(port: u16, export: &str, name: &str) -> Vec<u8> {
    let mut c = Client::mount(port, export).await.unwrap_or_else(|e| panic!("mount {export}: {e}"));
    let f = c.walk(name).await.unwrap_or_else(|e| panic!("{export}/{name}: {e:?}"));
    c.read_all(&f).await.unwrap()
}

async fn check(server: &Server, when: &str) {
    let port = server.nfs_port;
    let before = pattern(1, SMALL);
    for export in ["/d@s1", "/w1", "/k1"] {
        assert!(get(port, export, "a").await == before, "{when}: {export}/a is not what was written before the snapshot");
    }
    assert!(get(port, "/d", "a").await == pattern(2, SMALL), "{when}: /d/a lost the overwrite");
    assert!(get(port, "/d", "big").await == pattern(3, MOVE_ON), "{when}: /d/big");
    let mut s1 = Client::mount(port, "/d@s1").await.unwrap();
    let root = s1.root.clone();
    assert!(s1.lookup(&root, b"big").await.is_err(), "{when}: a file written after the snapshot is in it");
}

async fn snapshot_right_after_writes(durability: &str) {
    // A WAL flush interval longer than the test: in async mode nothing is durable until a
    // COMMIT or a snapshot makes it so.
    let config = "[durability]\nflush_interval_ms = 600000\n".to_string();
    let mut server = Server::start_with(ServerOptions {
        durability: Some(durability.into()),
        config: Some(config),
        ..Default::default()
    });
    dataset(&server, &["create", "d"]);
    let mut c = Client::mount(server.nfs_port, "/d").await.unwrap();
    put(&mut c, "a", &pattern(1, SMALL)).await;
    // No COMMIT, no pause: in async mode these writes are not durable yet, and a snapshot must
    // still hold them (it flushes first).
    dataset(&server, &["snapshot", "d", "s1", "--readonly"]);
    dataset(&server, &["snapshot", "d", "w1"]);
    put(&mut c, "a", &pattern(2, SMALL)).await;
    put(&mut c, "big", &pattern(3, MOVE_ON)).await;
    commit(&mut c).await;
    dataset(&server, &["clone", "s1", "k1"]);
    drop(c);
    check(&server, "before restart").await;

    server.kill9();
    server.restart();
    check(&server, "after kill -9 and restart").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_snapshot_right_after_writes_holds_them_after_the_wal_moved_on() {
    snapshot_right_after_writes("sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_snapshot_right_after_uncommitted_writes_holds_them() {
    snapshot_right_after_writes("async").await;
}
