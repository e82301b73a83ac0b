//! Small writes into a dataset of format 2 merge patches into their chunks instead of storing
//! the rebuilt chunk (docs/data-path.md "Small random writes"). Through a real NFSv3 client
//! against `slatefs serve` in `sync` mode: what 4 KiB FILE_SYNC writes put into the WAL (the
//! store's own objects, listed), and that the file reads back byte for byte from the memtable,
//! from a snapshot, after kill -9 (the WAL replays the patches) and after a full merge.
//! Under `SLATEFS_TEST_STORE=s3` the server runs on the tests' S3 server.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use nfs::*;
use server::{Server, ServerOptions};
use slatefs::store::Store;

const BASE: usize = 1 << 20;
const SMALL: usize = 4096;

/// The WAL objects of every dataset in the store: name and size.
async fn wal_objects(store: &Store) -> Vec<(String, u64)> {
    let listed: Vec<_> = store
        .object_store()
        .list(Some(&store.path("datasets")))
        .try_collect()
        .await
        .expect("list");
    listed
        .into_iter()
        .filter(|m| m.location.as_ref().contains("/wal/"))
        .map(|m| (m.location.to_string(), m.size))
        .collect()
}

/// Writes `data` at `offset` into the model of the file, growing it with zeros.
fn apply(model: &mut Vec<u8>, offset: usize, data: &[u8]) {
    if model.len() < offset + data.len() {
        model.resize(offset + data.len(), 0);
    }
    model[offset..offset + data.len()].copy_from_slice(data);
}

/// `n` 4 KiB FILE_SYNC writes at offsets spread over the file and a little past its end, at
/// 512-byte steps (so some cross a chunk boundary), each with different bytes.
async fn small_writes(c: &mut Client, f: &nfs_fh3, model: &mut Vec<u8>, seed: u64, n: usize) {
    let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
    for i in 0..n {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        let span = (model.len() + 64 * 1024) / 512;
        let offset = ((x >> 33) as usize % span) * 512;
        let data = pattern(seed * 1000 + i as u64, SMALL);
        assert_eq!(c.write(f, offset as u64, &data).await.unwrap(), SMALL as u32);
        apply(model, offset, &data);
    }
}

async fn same_bytes(c: &mut Client, f: &nfs_fh3, model: &[u8], when: &str) {
    let got = c.read_all(f).await.unwrap();
    assert_eq!(got.len(), model.len(), "{when}: file size");
    if let Some(at) = got.iter().zip(model).position(|(a, b)| a != b) {
        panic!("{when}: the file differs from what was written at byte {at}");
    }
    assert_eq!(c.getattr(f).await.unwrap().size, model.len() as u64, "{when}: size attribute");
}

fn cli_ok(server: &Server, args: &[&str]) -> String {
    let out = server.cli(args);
    assert!(out.status.success(), "{args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The number of tables the dataset's latest manifest lists.
fn table_count(server: &Server) -> u64 {
    let out = cli_ok(server, &["dataset", "--admin", &server.admin, "info", "root", "-o", "json"]);
    let v: serde_json::Value = serde_json::from_str(&out).expect("dataset info is JSON");
    v["tables"]["count"].as_u64().unwrap_or_else(|| panic!("no tables.count in {out}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_writes_log_what_they_write_and_read_back_through_snapshots_crashes_and_merges() {
    let mut server = Server::start_with(ServerOptions {
        config: Some("[maintenance]\ncollect_quiet_ms = 1000\n".into()),
        storage_keys: Some("dataset_format = 2".into()),
        ..ServerOptions::default()
    });
    let store = Store::open(&server.storage_config().expect("a store this test can list")).unwrap();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"f", 0o644).await.unwrap();
    let mut model = Vec::new();
    for (i, piece) in pattern(1, BASE).chunks(64 * 1024).enumerate() {
        c.write(&f, (i * 64 * 1024) as u64, piece).await.unwrap();
        apply(&mut model, i * 64 * 1024, piece);
    }

    // A clean stop writes the memtable as an L0 table: the chunks whole, under the patches.
    assert!(server.stop(), "the server stops cleanly");
    server.restart();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();

    // 200 acknowledged 4 KiB writes: each was durable in the WAL before its reply.
    const WRITES: usize = 200;
    let before: HashSet<String> = wal_objects(&store).await.into_iter().map(|(name, _)| name).collect();
    small_writes(&mut c, &f, &mut model, 2, WRITES).await;
    let logged: u64 =
        wal_objects(&store).await.into_iter().filter(|(name, _)| !before.contains(name)).map(|(_, size)| size).sum();
    let per_write = logged / WRITES as u64;
    // Every FILE_SYNC write in `sync` mode is in a WAL object before its reply.
    assert!(logged > 0, "no new WAL objects found in the store: the listing looked in the wrong place");
    eprintln!("{WRITES} writes of {SMALL} B: {logged} B of new WAL objects, {per_write} B per write");
    // A rebuilt 32 KiB chunk per write would log at least 32 KiB each (the data does not
    // compress); a patch logs the written bytes, the inode and the superblock.
    assert!(per_write < 2 * SMALL as u64, "each 4 KiB write logged {per_write} B: chunks, not patches");
    same_bytes(&mut c, &f, &model, "after the small writes").await;

    // A snapshot holds the file as it is now; later patches change only the live file.
    cli_ok(&server, &["dataset", "--admin", &server.admin, "snapshot", "root", "before-more", "--readonly"]);
    let at_snapshot = model.clone();
    small_writes(&mut c, &f, &mut model, 3, 100).await;
    let snapdir = c.lookup(&root, b".snapshots").await.unwrap();
    let snap = c.lookup(&snapdir, b"before-more").await.unwrap();
    let snap_file = c.lookup(&snap, b"f").await.unwrap();
    same_bytes(&mut c, &snap_file, &at_snapshot, "the snapshot").await;
    same_bytes(&mut c, &f, &model, "after more small writes").await;

    // kill -9: every acknowledged patch comes back from the WAL, over the chunks in the L0.
    server.kill9();
    server.restart();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    same_bytes(&mut c, &f, &model, "after kill -9").await;
    small_writes(&mut c, &f, &mut model, 4, 100).await;

    // A clean stop writes a second L0 table of patches with nothing under them in it; reads
    // lay them over the first, and the quiet tree's full merge applies them to the chunks.
    assert!(server.stop(), "the server stops cleanly");
    server.restart();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    assert!(table_count(&server) >= 2, "the patches and the chunks are in separate tables");
    same_bytes(&mut c, &f, &model, "from two tables").await;
    // The log line comes when the merge is submitted; the tables drop to the run (and a
    // marker of a few hundred bytes) once it is done.
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let merging = server.logs().contains("compaction: merging the");
        let tables = table_count(&server);
        if merging && tables <= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the quiet dataset was never merged (merge submitted: {merging}, {tables} tables)");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    same_bytes(&mut c, &f, &model, "after the merge").await;
    let snapdir = c.lookup(&root, b".snapshots").await.unwrap();
    let snap = c.lookup(&snapdir, b"before-more").await.unwrap();
    let snap_file = c.lookup(&snap, b"f").await.unwrap();
    same_bytes(&mut c, &snap_file, &at_snapshot, "the snapshot after the merge").await;
    assert!(server.stop(), "the server stops cleanly");
}

/// A dataset made before patches (format 1) keeps its layout under this server: reopened with
/// the defaults it stays format 1, a small write stores the rebuilt chunk as plain bytes (what
/// a format-1 server reads), and everything reads back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dataset_of_format_1_keeps_plain_chunks() {
    use slatefs::config::StorageConfig;
    use slatefs::fs::codec::{self, Kind, DATA_PATCHABLE, DATA_WHOLE_CHUNKS};
    use slatefs::fs::perm::Caller;
    use slatefs::fs::{Filesystem, FsOptions, NewNode, ROOT_INO};
    use slatefs::store::dataset_settings;

    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&StorageConfig {
        url: format!("file://{}", dir.path().display()),
        ..StorageConfig::default()
    })
    .unwrap();
    let open = |format: Option<u8>| {
        let store = &store;
        async move {
            let db = store
                .open_db(&store.dataset_path(5), dataset_settings(Duration::from_millis(20), true))
                .await
                .unwrap();
            let mut opts = FsOptions::default();
            if let Some(format) = format {
                opts.data_format = format;
            }
            let fs = Filesystem::open(db.clone(), opts).await.unwrap();
            (db, fs)
        }
    };
    let caller = Caller::root();
    let (db, fs) = open(Some(DATA_WHOLE_CHUNKS)).await;
    let file = fs.create(&caller, ROOT_INO, b"f", NewNode::new(Kind::File, 0o644)).await.unwrap();
    let mut model = pattern(7, 100_000);
    fs.write(&caller, file.ino, 0, &model).await.unwrap();
    fs.flush().await.unwrap();
    db.close().await.unwrap();

    let (db, fs) = open(None).await;
    assert_eq!(fs.data_format(), DATA_WHOLE_CHUNKS, "an existing dataset keeps its format");
    assert_eq!(FsOptions::default().data_format, DATA_WHOLE_CHUNKS, "new datasets are made in format 1 unless asked");
    let _ = DATA_PATCHABLE;
    let small = pattern(8, SMALL);
    fs.write(&caller, file.ino, 1000, &small).await.unwrap();
    apply(&mut model, 1000, &small);
    fs.flush().await.unwrap();
    let chunk = fs.chunk_size() as usize;
    let stored = db.get(codec::chunk_key(file.ino, 0)).await.unwrap().expect("chunk 0");
    assert!(stored.as_ref() == &model[..chunk], "a format-1 chunk is stored as its bytes");
    let (got, eof) = fs.read(&caller, file.ino, 0, model.len() as u32).await.unwrap();
    assert!(eof && got == model, "format-1 data read back differs");
    db.close().await.unwrap();
}
