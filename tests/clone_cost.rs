//! A clone's cost does not grow with what its source wrote lately: a writable snapshot or a
//! clone taken right after writes that are in the source's WAL but not yet in an SST copies
//! that WAL but does not read it (it would, replaying it, if the clone were opened at
//! creation); it is opened, and the WAL replayed, on first use, and then holds every byte.
//! Runs on the local store and, under `SLATEFS_TEST_STORE=s3`, on a real S3 server.

#[path = "support/server.rs"]
mod server;

use slatefs::catalog::{Registry, SnapshotResult};
use slatefs::config::Config;
use slatefs::fs::{Caller, Kind, NewNode, ROOT_INO};

use server::s3::test_store;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn clones_of_unflushed_writes_read_none_of_them_until_used() {
    let ts = test_store().await;
    let config = Config { storage: ts.config.clone(), ..Config::default() };
    let accounting = ts.open();
    let reg = Registry::open(accounting.clone(), &config).await.unwrap();
    reg.create_dataset("src", None).await.unwrap();
    let src = reg.filesystem(reg.dataset_info("src").await.unwrap().id).await.unwrap();

    // 24 MiB: less than a memtable, so it stays in the WAL (made durable, not written to an
    // SST).
    const TOTAL: u64 = 24 << 20;
    let c = Caller::root();
    let ino = src.create(&c, ROOT_INO, b"f", NewNode::new(Kind::File, 0o644)).await.unwrap().ino;
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut buf = vec![0u8; slatefs::fs::MAX_IO_SIZE];
    for off in (0..TOTAL).step_by(buf.len()) {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        src.write(&c, ino, off, &buf).await.unwrap();
    }
    src.flush().await.unwrap();

    let before = accounting.request_stats();
    let SnapshotResult::Dataset(ws) = reg.create_snapshot("src", "ws", false).await.unwrap() else { panic!() };
    let SnapshotResult::Snapshot(_) = reg.create_snapshot("src", "ro", true).await.unwrap() else { panic!() };
    let clone = reg.clone_snapshot("ro", "k").await.unwrap();
    let cost = accounting.request_stats() - before;
    eprintln!("writable snapshot + snapshot + clone: {cost}");
    assert!(cost.bytes_down < 1 << 20, "making them read the copied WAL: {cost}");
    for info in [&ws, &clone] {
        assert_eq!(info.usage.map(|u| u.bytes), Some(TOTAL), "{} reports the usage it was cloned with", info.name);
    }

    // First use opens them (replaying the WAL) and they hold what the source held.
    let (tail, _) = src.read(&c, ino, TOTAL - 4096, 4096).await.unwrap();
    for id in [ws.id, clone.id] {
        let fs = reg.filesystem(id).await.unwrap();
        assert_eq!(fs.usage().await.bytes, TOTAL);
        assert_eq!(fs.read(&c, ino, TOTAL - 4096, 4096).await.unwrap().0, tail);
    }
    reg.shutdown().await;
}
