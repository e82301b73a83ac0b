//! `slatefs serve` on S3 while the store goes away, through a real NFSv3 client (the same
//! set-up as s3_e2e.rs: a real S3 server in this process, faults injected in the server
//! process with `--inject-faults outage-file=PATH`):
//!
//! - a 30 s store outage in the middle of an NFS write loop: calls answer NFS3ERR_JUKEBOX, then
//!   NFS3ERR_IO after `io_error_after_ms`, never a silent loss; the loop finishes once the
//!   store is back (no restart) and every acknowledged byte is there, also after kill -9;
//! - reads that need the store while it is down (LOOKUP, GETATTR, READ of data not in memory)
//!   answer NFS3ERR_JUKEBOX within `unavailable_after_ms`, NFS3ERR_IO after
//!   `io_error_after_ms`, and work again once it is back; so does the first call after a
//!   restart, which has to open the dataset;
//! - the on-disk read cache serves reads of data in SSTs while the store is down, and its
//!   hits and misses are in the server's request log line.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/s3_serve.rs"]
mod s3_serve;
#[path = "support/server.rs"]
mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use nfs::*;
use s3_serve::*;
use server::{s3, Server};

// ------------------------------------------------------------------------------------------
// 1. A store outage in the middle of an NFS write loop.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_in_an_nfs_write_loop_loses_nothing_and_service_resumes() {
    const BLOCK: usize = 32 * 1024; // one chunk: every write makes a fresh chunk
    const BLOCKS: u64 = 400;
    const OUTAGE: Duration = Duration::from_secs(30);
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let down = tmp.path().join("store-down");
    let spec = format!("outage-file={}", down.display());
    let mut server = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), "unavailable_after_ms = 1000\nio_error_after_ms = 8000", ""),
        &["--inject-faults", &spec],
    ));
    let port = server.nfs_port;
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"loop", 0o644).await.unwrap();

    let started = Instant::now();
    let writer = {
        let f = f.clone();
        tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            let (mut jukebox, mut io, mut retried_ok) = (0u32, 0u32, 0u32);
            let mut acked_at = Vec::new();
            for i in 0..BLOCKS {
                let mut failed_before = false;
                loop {
                    assert!(started.elapsed() < Duration::from_secs(180), "the write loop did not finish");
                    let r = tokio::time::timeout(Duration::from_secs(30), c.try_write(&f, i * BLOCK as u64, &pattern(i, BLOCK)))
                        .await
                        .unwrap_or_else(|_| panic!("WRITE {i} hung for 30s: neither an answer nor JUKEBOX"));
                    match r {
                        Ok(Ok(n)) => {
                            assert_eq!(n as usize, BLOCK);
                            retried_ok += failed_before as u32;
                            acked_at.push(started.elapsed());
                            break;
                        }
                        // What a client does with these: retry (JUKEBOX after a pause, as the
                        // kernel does; EIO as an application that retries would).
                        Ok(Err(nfsstat3::NFS3ERR_JUKEBOX)) => jukebox += 1,
                        Ok(Err(nfsstat3::NFS3ERR_IO)) => io += 1,
                        Ok(Err(other)) => panic!("WRITE {i}: unexpected {other:?}"),
                        Err(e) => panic!("WRITE {i}: transport error {e}"),
                    }
                    failed_before = true;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (jukebox, io, retried_ok, acked_at)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(&down, b"").unwrap();
    let outage_start = started.elapsed();
    tokio::time::sleep(OUTAGE).await;
    std::fs::remove_file(&down).unwrap();
    let outage_end = started.elapsed();

    let (jukebox, io, retried_ok, acked_at) = within(240, "the write loop", writer).await.unwrap();
    assert_eq!(acked_at.len() as u64, BLOCKS, "the loop finished");
    assert!(jukebox > 0, "JUKEBOX while the store was down");
    assert!(io > 0, "EIO once the store had been away for io_error_after_ms (8s of a 30s outage)");
    assert!(retried_ok > 0, "a retried write succeeded after the outage");
    // Nothing was acknowledged while the store was down (a little slack for the outage file
    // being checked every 100 ms and for a reply in flight).
    let slack = Duration::from_millis(400);
    let during: Vec<_> = acked_at
        .iter()
        .filter(|t| **t > outage_start + slack && **t + slack < outage_end)
        .collect();
    assert!(during.is_empty(), "writes acknowledged while the store was down: {during:?}");
    assert!(acked_at.iter().any(|t| *t > outage_end), "the loop went on after the outage");

    // Every acknowledged byte is there, without a restart...
    let want: Vec<u8> = (0..BLOCKS).flat_map(|i| pattern(i, BLOCK)).collect();
    assert_eq!(within(60, "read back", c.read_all(&f)).await.unwrap(), want);
    let logs = server.logs();
    assert!(logs.contains("object store not answering"), "the outage is in the log:\n{logs}");
    assert!(logs.contains("object store back"), "the recovery is in the log:\n{logs}");
    // ...and it is durable: kill -9, restart, the same bytes through the same handle.
    server.kill9();
    server.restart();
    let mut c = within(30, "mount after restart", Client::mount(port, "/")).await.unwrap();
    assert_eq!(within(60, "read after restart", c.read_all(&f)).await.unwrap(), want);
}

// ------------------------------------------------------------------------------------------
// 2. Reads during an outage.

/// One call against a store that is down: its answer and how long it took.
async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, nfsstat3>>) -> (Result<T, nfsstat3>, Duration) {
    let t = Instant::now();
    let r = within(30, what, f).await;
    (r, t.elapsed())
}

/// Calls that only read, but need data the server does not hold in memory, while the store is
/// down: NFS3ERR_JUKEBOX after `unavailable_after_ms` (not a hang), NFS3ERR_IO once the store
/// has been away `io_error_after_ms`; the same calls succeed once it is back, without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_an_outage_answer_jukebox_then_io_error_and_work_again() {
    const UNAVAILABLE_AFTER: Duration = Duration::from_millis(1500);
    const IO_ERROR_AFTER: Duration = Duration::from_secs(8);
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let down = tmp.path().join("store-down");
    let spec = format!("outage-file={}", down.display());
    let storage = format!(
        "unavailable_after_ms = {}\nio_error_after_ms = {}",
        UNAVAILABLE_AFTER.as_millis(),
        IO_ERROR_AFTER.as_millis()
    );
    let mut server = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), &storage, ""),
        &["--inject-faults", &spec],
    ));
    let port = server.nfs_port;
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let dir = c.mkdir(&root, b"d", 0o755).await.unwrap();
    let f = c.create(&dir, b"f", 0o644).await.unwrap();
    let data = pattern(7, 2 << 20);
    for (i, chunk) in data.chunks(256 << 10).enumerate() {
        c.write(&f, (i * (256 << 10)) as u64, chunk).await.unwrap();
    }
    // A clean stop writes the memtable out as an SST; a new process holds none of it.
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    server.restart();
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    assert_eq!(c.root, root);
    // The first call after the restart opens the dataset. With the store down, the open does
    // not finish: the call answers NFS3ERR_JUKEBOX within the limit, and the open goes on by
    // itself, so a retry after the store returns is served.
    std::fs::write(&down, b"").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let slack = Duration::from_millis(2500);
    for _ in 0..2 {
        let (r, took) = timed("GETATTR of the root, dataset not open", c.getattr(&root)).await;
        assert_eq!(r.unwrap_err(), nfsstat3::NFS3ERR_JUKEBOX, "GETATTR while the dataset cannot be opened");
        assert!(took >= UNAVAILABLE_AFTER - Duration::from_millis(100) && took < UNAVAILABLE_AFTER + slack, "took {took:?}");
    }
    std::fs::remove_file(&down).unwrap();
    let back = Instant::now();
    loop {
        match within(30, "GETATTR of the root", c.getattr(&root)).await {
            Ok(_) => break,
            Err(nfsstat3::NFS3ERR_JUKEBOX) if back.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("GETATTR {:?} after the store came back: {e:?}", back.elapsed()),
        }
    }

    std::fs::write(&down, b"").unwrap();
    let outage_start = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // File data not read since the restart is only in the store (each 32 KiB chunk is a block
    // of its own). Metadata may be: it sits together at the end of the SST, in blocks the
    // open may already have read; either way the answer comes within the limit.
    let (r, took) = timed("READ", c.read(&f, 1 << 20, 64 << 10)).await;
    assert_eq!(r.unwrap_err(), nfsstat3::NFS3ERR_JUKEBOX, "READ while the store is down");
    assert!(took >= UNAVAILABLE_AFTER - Duration::from_millis(100) && took < UNAVAILABLE_AFTER + slack, "READ took {took:?}");
    let (r, took) = timed("LOOKUP", c.lookup(&dir, b"f")).await;
    assert!(matches!(&r, Ok(h) if *h == f) || r == Err(nfsstat3::NFS3ERR_JUKEBOX), "LOOKUP: {r:?}");
    assert!(took < UNAVAILABLE_AFTER + slack, "LOOKUP took {took:?}");
    let (r, took) = timed("GETATTR", c.getattr(&f)).await;
    assert!(matches!(&r, Ok(a) if a.size == data.len() as u64) || matches!(r, Err(nfsstat3::NFS3ERR_JUKEBOX)), "GETATTR: {:?}", r.as_ref().map(|a| a.size));
    assert!(took < UNAVAILABLE_AFTER + slack, "GETATTR took {took:?}");

    // Still down after io_error_after: an I/O error, and in the same bounded time.
    let mut answers = Vec::new();
    loop {
        let (r, took) = timed("READ", c.read(&f, 0, 64 << 10)).await;
        assert!(took < UNAVAILABLE_AFTER + slack, "READ took {took:?}");
        let stat = r.unwrap_err();
        answers.push(stat);
        if stat == nfsstat3::NFS3ERR_IO {
            break;
        }
        assert_eq!(stat, nfsstat3::NFS3ERR_JUKEBOX);
        assert!(outage_start.elapsed() < IO_ERROR_AFTER + Duration::from_secs(10), "no NFS3ERR_IO after {:?}: {answers:?}", outage_start.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(outage_start.elapsed() >= IO_ERROR_AFTER, "NFS3ERR_IO before io_error_after: {answers:?}");

    // The store returns: the same calls work (the client retrying as it does on JUKEBOX).
    std::fs::remove_file(&down).unwrap();
    let back = Instant::now();
    let got = loop {
        match within(30, "READ after the outage", c.read_all(&f)).await {
            Ok(got) => break got,
            Err(nfsstat3::NFS3ERR_JUKEBOX | nfsstat3::NFS3ERR_IO) if back.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("READ {:?} after the store came back: {e:?}", back.elapsed()),
        }
    };
    assert!(got == data, "the file reads back after the outage");
    assert_eq!(within(30, "LOOKUP", c.lookup(&dir, b"f")).await.unwrap(), f);
    assert_eq!(within(30, "GETATTR", c.getattr(&f)).await.unwrap().size, data.len() as u64);
    assert!(server.stop(), "clean stop:\n{}", server.logs());
}

// ------------------------------------------------------------------------------------------
// 3. The read cache.

/// The read cache's (hits, misses) in the "object store requests this run" line a server logs
/// when it stops: start `n` of `server`.
fn cache_counts(server: &Server, n: u32) -> (u64, u64) {
    let log = std::fs::read_to_string(server.path().join(format!("serve-{n}.log"))).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("object store requests this run"))
        .unwrap_or_else(|| panic!("no request line in the log of start {n}:\n{log}"));
    let count = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("no {key} in {line:?}")) + key.len();
        line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    (count("read cache hits="), count(" misses="))
}

/// Data in SSTs is read through the on-disk cache: with the cache warm, a fresh process reads
/// a whole file while the store is down. Each process logs its cache hits and misses: the
/// one that warms the cache misses, the one that reads while the store is down only hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_cache_serves_sst_reads_while_the_store_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let cache = tmp.path().join("cache");
    let down = tmp.path().join("store-down");
    let spec = format!("outage-file={}", down.display());
    let storage = format!(
        "cache_dir = \"{}\"\ncache_size = \"1GiB\"\nunavailable_after_ms = 1000\nio_error_after_ms = 0",
        cache.display()
    );
    let mut server = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), &storage, ""),
        &["--inject-faults", &spec],
    ));
    let port = server.nfs_port;
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"big", 0o644).await.unwrap();
    // More than a memtable (SlateDB's l0_sst_size_bytes, 64 MiB) so that most of it is in SSTs.
    let mib = 96u64;
    for i in 0..mib {
        within(60, "write", c.write(&f, i << 20, &pattern(i, 1 << 20))).await.unwrap();
    }
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let ssts = files_under(&s3.dir.join(&s3.bucket))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/compacted/") && p.to_string_lossy().ends_with(".sst"))
        .count();
    assert!(ssts > 0, "the data reached SSTs");

    // Warm the cache: a new process reads the file once.
    server.restart();
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    for i in 0..mib {
        let (got, _) = within(60, "read", c.read(&f, i << 20, 1 << 20)).await.unwrap();
        assert!(got == pattern(i, 1 << 20), "MiB {i} reads back");
    }
    let cached: Vec<PathBuf> = files_under(&cache);
    assert!(cached.iter().any(|p| p.to_string_lossy().contains("/datasets/") && p.to_string_lossy().contains("_part")), "SST parts cached under the dataset's path: {cached:?}");
    let store_dirs: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(store_dirs.len(), 1, "one directory per store: {store_dirs:?}");
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let (_, warm_misses) = cache_counts(&server, 2);
    assert!(warm_misses > 0, "the first reader fills the cache");

    // A fresh process (nothing in memory) opens the dataset, then the store goes down: the
    // whole file still reads, from the disk cache.
    server.restart();
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    within(30, "getattr", c.getattr(&f)).await.unwrap();
    std::fs::write(&down, b"").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..mib {
        let (got, _) = within(20, "read from the cache while the store is down", c.read(&f, i << 20, 1 << 20)).await.unwrap();
        assert!(got == pattern(i, 1 << 20), "MiB {i} reads back from the cache");
    }
    std::fs::remove_file(&down).unwrap();
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let (hits, misses) = cache_counts(&server, 3);
    assert_eq!(misses, 0, "everything came from the cache");
    assert!(hits >= warm_misses, "the parts the first reader fetched are hits now: {hits} < {warm_misses}");
    let logs = server.logs();
    assert!(logs.contains("read cache:"), "the cache is in the log:\n{logs}");
}
