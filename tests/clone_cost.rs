//! A clone's cost does not grow with what its source wrote lately: a writable snapshot or a
//! clone taken right after writes that are in the source's WAL but not yet in an SST copies
//! that WAL but does not read it (it would, replaying it, if the clone were opened at
//! creation); it is opened, and the WAL replayed, on first use, and then holds every byte.
//! Runs on the local store and, under `SLATEFS_TEST_STORE=s3`, on a real S3 server.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use slatefs::catalog::{Registry, SnapshotResult};
use slatefs::config::Config;
use slatefs::fs::{Caller, Kind, NewNode, ROOT_INO};

use nfs::pattern;
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
    let data = pattern(11, TOTAL as usize);
    for (i, part) in data.chunks(slatefs::fs::MAX_IO_SIZE).enumerate() {
        src.write(&c, ino, (i * slatefs::fs::MAX_IO_SIZE) as u64, part).await.unwrap();
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
    for (id, name) in [(ws.id, "ws"), (clone.id, "k")] {
        let fs = reg.filesystem(id).await.unwrap();
        assert_eq!(fs.usage().await.bytes, TOTAL);
        for (i, part) in data.chunks(slatefs::fs::MAX_IO_SIZE).enumerate() {
            let off = (i * slatefs::fs::MAX_IO_SIZE) as u64;
            let (got, _) = fs.read(&c, ino, off, part.len() as u32).await.unwrap();
            assert!(got == part, "{name}: bytes at {off} differ from the source's");
        }
    }
    reg.shutdown().await;
}
