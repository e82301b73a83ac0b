//! The store layer against a real S3 server on 127.0.0.1 (tests/support/s3.rs): conditional
//! writes, SlateDB through `Store`, fencing, checkpoints and clones, start-up checks, request
//! accounting and injected faults.

#[path = "support/s3.rs"]
mod s3;

use std::sync::Arc;

use bytes::Bytes;
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};

fn create() -> PutOptions {
    PutOptions { mode: PutMode::Create, ..Default::default() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn conditional_create_refuses_an_existing_key() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(dir.path()).await;
    let os = server.object_store();
    let key = Path::from("a/b/key");
    os.put_opts(&key, PutPayload::from_static(b"one"), create()).await.unwrap();
    let err = os.put_opts(&key, PutPayload::from_static(b"two"), create()).await.unwrap_err();
    assert!(
        matches!(err, object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. }),
        "second create: {err:?}"
    );
    let got = os.get(&key).await.unwrap().bytes().await.unwrap();
    assert_eq!(got.as_ref(), b"one");
    // The objects really are files in the server's directory.
    assert_eq!(std::fs::read(server.dir.join(&server.bucket).join("a/b/key")).unwrap(), b"one");

    // If-Match on the current e-tag wins, on a stale one loses.
    let meta = os.head(&key).await.unwrap();
    let upd = |etag: Option<String>| PutOptions {
        mode: PutMode::Update(object_store::UpdateVersion { e_tag: etag, version: None }),
        ..Default::default()
    };
    os.put_opts(&key, PutPayload::from_static(b"three"), upd(meta.e_tag.clone())).await.unwrap();
    let err = os.put_opts(&key, PutPayload::from_static(b"four"), upd(meta.e_tag)).await.unwrap_err();
    assert!(matches!(err, object_store::Error::Precondition { .. }), "stale update: {err:?}");
    assert_eq!(os.get(&key).await.unwrap().bytes().await.unwrap().as_ref(), b"three");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_creates_have_exactly_one_winner() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(dir.path()).await;
    // Separate clients, so the racers use separate connections.
    let clients: Vec<Arc<dyn ObjectStore>> = (0..8).map(|_| server.object_store()).collect();
    for round in 0..50 {
        let key = Path::from(format!("race/{round}"));
        let barrier = Arc::new(tokio::sync::Barrier::new(clients.len()));
        let mut tasks = Vec::new();
        for (i, c) in clients.iter().enumerate() {
            let (c, key, barrier) = (c.clone(), key.clone(), barrier.clone());
            tasks.push(tokio::spawn(async move {
                barrier.wait().await;
                let body = PutPayload::from(Bytes::from(format!("writer {i}")));
                match c.put_opts(&key, body, create()).await {
                    Ok(_) => Some(i),
                    Err(object_store::Error::AlreadyExists { .. })
                    | Err(object_store::Error::Precondition { .. }) => None,
                    Err(e) => panic!("round {round} writer {i}: {e:?}"),
                }
            }));
        }
        let mut winners = Vec::new();
        for t in tasks {
            if let Some(i) = t.await.unwrap() {
                winners.push(i);
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = clients[0].get(&key).await.unwrap().bytes().await.unwrap();
        assert_eq!(stored, Bytes::from(format!("writer {}", winners[0])), "round {round}");
    }
}

// ---------------------------------------------------------------------------------------------
// SlateDB through `Store` on S3.

use slatefs::store::{dataset_settings, Store};
use slatedb::{CloseReason, ErrorKind};
use std::time::{Duration, Instant};

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:06}").into_bytes()
}

fn value(i: u32) -> Vec<u8> {
    format!("value-{i}-{}", "x".repeat((i % 50) as usize)).into_bytes()
}

/// Settings with a short WAL flush interval, so `await_durable` is quick.
fn settings() -> slatedb::config::Settings {
    dataset_settings(Duration::from_millis(5), false)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn slatedb_write_reopen_read_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let cfg = server.storage_config("pool/a", dir.path());
    let store = Store::open_checked(&cfg).await.expect("start-up checks");
    let before = store.request_stats();
    let path = store.dataset_path(1);
    {
        let db = store.open_db(&path, settings()).await.unwrap();
        for i in 0..300 {
            db.put(key(i), value(i)).await.unwrap();
        }
        db.flush().await.unwrap();
        db.close().await.unwrap();
    }
    let written = store.request_stats() - before;
    assert!(written.put >= 2 && written.bytes_up > 300 * 8, "{written}");
    // The database is on the server, under the prefix.
    let on_disk = dir.path().join("s3").join(&server.bucket).join("pool/a/datasets");
    assert!(on_disk.join(format!("{:016x}", 1)).join("manifest").is_dir(), "{on_disk:?}");

    // A fresh Store (new client, new process state) reads everything back.
    let store2 = Store::open(&cfg).unwrap();
    let db = store2.open_db(&path, settings()).await.unwrap();
    for i in 0..300 {
        assert_eq!(db.get(key(i)).await.unwrap().as_deref(), Some(value(i).as_slice()), "key {i}");
    }
    db.close().await.unwrap();
    let read = store2.request_stats();
    assert!(read.get >= 1 && read.bytes_down > 0, "{read}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_second_writer_fences_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let cfg = server.storage_config("fence", dir.path());
    let store_a = Store::open_checked(&cfg).await.unwrap();
    let store_b = Store::open(&cfg).unwrap();
    let path = store_a.dataset_path(7);

    let a = store_a.open_db(&path, settings()).await.unwrap();
    a.put(b"from-a", b"1").await.unwrap().await_durable().await.unwrap();

    let b = store_b.open_db(&path, settings()).await.unwrap();
    assert_eq!(b.get(b"from-a").await.unwrap().as_deref(), Some(&b"1"[..]));
    b.put(b"from-b", b"2").await.unwrap().await_durable().await.unwrap();

    // The first writer can no longer make anything durable: it learns it was fenced.
    let deadline = Instant::now() + Duration::from_secs(20);
    let err = loop {
        let r = match a.put(b"from-a-late", b"3").await {
            Ok(h) => h.await_durable().await,
            Err(e) => Err(e),
        };
        match r {
            Err(e) => break e,
            Ok(()) => {
                assert!(Instant::now() < deadline, "the fenced writer kept acknowledging");
                let _ = a.flush().await;
            }
        }
    };
    assert_eq!(err.kind(), ErrorKind::Closed(CloseReason::Fenced), "{err}");
    // Nothing it tried after being fenced is visible to the new writer, nor after reopening.
    assert_eq!(b.get(b"from-a-late").await.unwrap(), None);
    b.close().await.unwrap();
    let c = store_b.open_db(&path, settings()).await.unwrap();
    assert_eq!(c.get(b"from-a").await.unwrap().as_deref(), Some(&b"1"[..]));
    assert_eq!(c.get(b"from-b").await.unwrap().as_deref(), Some(&b"2"[..]));
    assert_eq!(c.get(b"from-a-late").await.unwrap(), None);
    c.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn checkpoints_and_clones_on_s3() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let store = Store::open_checked(&server.storage_config("cc", dir.path())).await.unwrap();
    let parent = store.dataset_path(1);
    let child = store.dataset_path(2);

    let db = store.open_db(&parent, settings()).await.unwrap();
    let big = |i: u32| [value(i), vec![b'.'; 8192]].concat();
    for i in 0..100 {
        db.put(key(i), big(i)).await.unwrap();
    }
    // Store::checkpoint holds what is durable (callers flush the WAL first, as the catalog
    // does before a snapshot).
    db.flush().await.unwrap();
    let cp = Store::checkpoint(&db, "snap-1").await.unwrap();
    for i in 0..100 {
        db.put(key(i), b"changed-after-checkpoint").await.unwrap();
    }
    db.put(b"only-after", b"1").await.unwrap();
    db.flush().await.unwrap();

    let listed = store.list_checkpoints(&parent).await.unwrap();
    assert!(listed.iter().any(|c| c.id == cp && c.name.as_deref() == Some("snap-1")), "{listed:?}");

    // Read-only snapshot: the state at the checkpoint.
    let reader = store.open_checkpoint(&parent, cp).await.unwrap();
    for i in (0..100).step_by(7) {
        assert_eq!(reader.get(key(i)).await.unwrap().as_deref(), Some(big(i).as_slice()));
    }
    assert_eq!(reader.get(b"only-after").await.unwrap(), None);
    reader.close().await.unwrap();

    // Clone: a writable copy that shares the parent's SSTs. A checkpoint of data still in the
    // WAL (CheckpointScope::Durable) is cloned by copying those WAL files on the server.
    let wal_files = futures::TryStreamExt::try_collect::<Vec<_>>(store.object_store().list(Some(&parent.clone().join("wal"))))
        .await
        .unwrap()
        .len() as u64;
    let before = store.request_stats();
    store.clone_db(&parent, cp, &child).await.unwrap();
    let cloning = store.request_stats() - before;
    let c = store.open_db(&child, settings()).await.unwrap();
    for i in (0..100).step_by(7) {
        assert_eq!(c.get(key(i)).await.unwrap().as_deref(), Some(big(i).as_slice()));
    }
    assert_eq!(c.get(b"only-after").await.unwrap(), None);
    c.put(b"only-in-child", b"1").await.unwrap().await_durable().await.unwrap();
    assert_eq!(db.get(b"only-in-child").await.unwrap(), None);
    c.close().await.unwrap();
    db.close().await.unwrap();
    // Cloning sent no data: a few KiB of manifests against the parent's 800+ KiB, and at most
    // server-side copies of the parent's WAL files.
    assert!(cloning.bytes_up < 64 * 1024 && cloning.copy <= wal_files, "{cloning}; {wal_files} WAL files");

    // The parent cannot drop the checkpoint's data while the clone pins it; deleting the clone
    // releases it, and deleting twice is fine.
    store.delete_db(&child).await.unwrap();
    store.delete_db(&child).await.unwrap();
    store.delete_checkpoint(&parent, cp).await.unwrap();
    assert!(store.list_checkpoints(&parent).await.unwrap().iter().all(|c| c.id != cp));
}

// ---------------------------------------------------------------------------------------------
// Start-up checks.

fn probe_err(r: anyhow::Result<Store>) -> String {
    match r {
        Ok(_) => panic!("the start-up checks passed"),
        Err(e) => format!("{e:#}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_accepts_a_good_store_and_leaves_nothing_behind() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let store = Store::open_checked(&server.storage_config("p", dir.path())).await.unwrap();
    slatefs::store::probe::probe(&store).await.unwrap();
    let left: Vec<_> = futures::TryStreamExt::try_collect::<Vec<_>>(
        server.object_store().list(Some(&Path::from("p"))),
    )
    .await
    .unwrap();
    // Opening records the store's format marker; the probe itself must add nothing beside it.
    let names: Vec<String> = left.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(names, vec!["p/slatefs-format.json".to_string()], "probe objects left behind: {left:?}");
    // Local stores pass too (object_store's LocalFileSystem has conditional creates).
    let local = slatefs::config::StorageConfig {
        url: format!("file://{}", dir.path().join("local").display()),
        ..Default::default()
    };
    Store::open_checked(&local).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_wrong_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    // A wrong secret for the right key, and an unknown key.
    for (ak, sk) in [(server.access_key.as_str(), "not-the-secret"), ("nobody", "nothing")] {
        let creds = dir.path().join(format!("creds-{ak}"));
        std::fs::write(&creds, format!("access_key_id = {ak}\nsecret_access_key = {sk}\n")).unwrap();
        let cfg = server.storage_config_with(&server.bucket, "p", creds);
        let t = Instant::now();
        let msg = probe_err(Store::open_checked(&cfg).await);
        assert!(msg.contains("rejected the credentials"), "{msg}");
        assert!(t.elapsed() < Duration::from_secs(10), "took {:?}", t.elapsed());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_a_missing_bucket() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let creds = server.write_credentials_file(dir.path(), &server.access_key, &server.secret_key);
    let cfg = server.storage_config_with("no-such-bucket", "p", creds);
    let msg = probe_err(Store::open_checked(&cfg).await);
    assert!(msg.contains("does not exist"), "{msg}");
    assert!(msg.contains("no-such-bucket"), "{msg}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_reports_an_unreachable_endpoint_quickly() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let cfg = server.storage_config("p", dir.path());
    drop(server); // nothing listens on the port any more
    let t = Instant::now();
    let msg = probe_err(Store::open_checked(&cfg).await);
    assert!(msg.contains("cannot reach"), "{msg}");
    assert!(t.elapsed() < Duration::from_secs(15), "took {:?}", t.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probe_refuses_a_server_without_conditional_writes() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3_with(
        &dir.path().join("s3"),
        s3::ServerOptions { honour_conditions: false, ..Default::default() },
    )
    .await;
    // The server really overwrites on If-None-Match: *.
    let os = server.object_store();
    os.put_opts(&Path::from("k"), PutPayload::from_static(b"1"), create()).await.unwrap();
    os.put_opts(&Path::from("k"), PutPayload::from_static(b"2"), create()).await.unwrap();

    let msg = probe_err(Store::open_checked(&server.storage_config("p", dir.path())).await);
    assert!(msg.contains("does not support conditional writes"), "{msg}");
    assert!(msg.contains("If-None-Match: *"), "{msg}");
    assert!(msg.contains("fencing"), "{msg}");
}

// ---------------------------------------------------------------------------------------------
// Faults.

use slatefs::store::faults::{FaultPlan, OutageMode};

struct LoopReport {
    acked: Vec<u32>,
    errors: Vec<(u32, String)>,
    max_latency: Duration,
    elapsed: Duration,
}

/// Writes `n` keys one at a time (put + await_durable), with an outage of `outage` starting
/// after `start`. Returns what was acknowledged.
async fn write_loop_with_outage(
    store: &Store,
    db: &slatedb::Db,
    n: u32,
    start: Duration,
    outage: Duration,
) -> LoopReport {
    let control = store.faults().expect("faults").clone();
    let switch = tokio::spawn(async move {
        tokio::time::sleep(start).await;
        control.set_outage(true);
        tokio::time::sleep(outage).await;
        control.set_outage(false);
    });
    let t0 = Instant::now();
    let mut rep =
        LoopReport { acked: vec![], errors: vec![], max_latency: Duration::ZERO, elapsed: t0.elapsed() };
    for i in 0..n {
        let t = Instant::now();
        let r = match db.put(key(i), value(i)).await {
            Ok(h) => h.await_durable().await,
            Err(e) => Err(e),
        };
        rep.max_latency = rep.max_latency.max(t.elapsed());
        match r {
            Ok(()) => rep.acked.push(i),
            Err(e) => rep.errors.push((i, format!("{:?}: {e}", e.kind()))),
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    rep.elapsed = t0.elapsed();
    switch.await.unwrap();
    rep
}

async fn assert_present_after_reopen(cfg: &slatefs::config::StorageConfig, id: u64, acked: &[u32]) {
    let store = Store::open(cfg).unwrap();
    let db = store.open_db(&store.dataset_path(id), settings()).await.unwrap();
    for &i in acked {
        assert_eq!(
            db.get(key(i)).await.unwrap().as_deref(),
            Some(value(i).as_slice()),
            "acknowledged write {i} lost"
        );
    }
    db.close().await.unwrap();
}

/// A store outage in the middle of a write loop, SlateDB's retries left unbounded (its
/// default, and what slatefs uses): writes made during the outage wait, nothing fails, the loop
/// finishes once the store is back, the database never closes, and every acknowledged write is
/// there after reopening. Both outage shapes: requests refused at once (503s / connection
/// refused) and requests that hang (until the store is back, or 2 s, then time out).
async fn outage_in_write_loop(mode: OutageMode) {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let cfg = server.storage_config("o", dir.path());
    let store = Store::open_checked(&cfg).await.unwrap().with_faults(FaultPlan {
        outage_mode: mode,
        hang: Duration::from_secs(2),
        ..Default::default()
    });
    let db = store.open_db(&store.dataset_path(1), settings()).await.unwrap();
    let outage = Duration::from_secs(5);
    let rep = write_loop_with_outage(&store, &db, 300, Duration::from_secs(1), outage).await;
    let injected = store.faults().unwrap().injected();
    assert!(rep.errors.is_empty(), "writes failed: {:?}", &rep.errors[..rep.errors.len().min(3)]);
    assert_eq!(rep.acked.len(), 300);
    assert!(injected.outage_failures > 0, "the outage hit no request: {injected:?}");
    // A write made during the outage waited for it to end.
    assert!(rep.max_latency >= outage - Duration::from_secs(2), "max latency {:?}", rep.max_latency);
    assert_eq!(db.subscribe().borrow().close_reason, None);
    db.put(b"after", b"1").await.unwrap().await_durable().await.unwrap();
    db.close().await.unwrap();
    assert_present_after_reopen(&cfg, 1, &rep.acked).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_of_refused_requests_loses_nothing_acknowledged() {
    outage_in_write_loop(OutageMode::Error).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn outage_of_hanging_requests_loses_nothing_acknowledged() {
    outage_in_write_loop(OutageMode::Hang).await;
}

/// What SlateDB does when its retries are bounded (`object_store_max_retries`) and the store
/// stays down longer than they last: the write fails with `Unavailable`, and the database
/// closes itself for good (close reason `Panic`): writes keep failing after the store is
/// back, until it is reopened. Nothing acknowledged is lost. This is why slatefs leaves the
/// retries unbounded and decides in the NFS layer how long a client waits.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bounded_retries_close_the_database_on_a_long_outage() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let cfg = server.storage_config("o", dir.path());
    let store = Store::open_checked(&cfg).await.unwrap().with_faults(FaultPlan::default());
    let mut s = settings();
    s.object_store_max_retries = Some(3);
    let db = store.open_db(&store.dataset_path(1), s).await.unwrap();
    let rep = write_loop_with_outage(&store, &db, 200, Duration::from_millis(500), Duration::from_secs(4)).await;
    assert!(!rep.acked.is_empty() && !rep.errors.is_empty());
    assert!(rep.errors[0].1.starts_with("Unavailable"), "{:?}", rep.errors[0]);
    // Every write after the first failure failed, even once the store was back.
    let first_err = rep.errors[0].0;
    assert!(rep.acked.iter().all(|&i| i < first_err));
    assert_eq!(rep.errors.len() as u32, 200 - first_err);
    assert!(!store.faults().unwrap().is_down());
    assert!(db.put(b"after", b"1").await.is_err());
    assert_eq!(db.subscribe().borrow().close_reason, Some(CloseReason::Panic));
    let _ = db.close().await;
    assert_present_after_reopen(&cfg, 1, &rep.acked).await;
}

/// Transient faults on every kind of request — 503s, resets before and after the request is
/// applied (lost replies), latency — under a write/flush/read workload: retried, nothing
/// acknowledged lost, nothing fails.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn transient_faults_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let server = s3::start_s3(&dir.path().join("s3")).await;
    let cfg = server.storage_config("t", dir.path());
    let plan = slatefs::store::faults::parse_spec(
        "error=10%,reset=5%,lost-reply=5%,timeout=2%,hang=300ms,latency=1ms,jitter=3ms,seed=11",
    )
    .unwrap();
    let store = Store::open_checked(&cfg).await.unwrap().with_faults(plan);
    let path = store.dataset_path(3);
    let mut acked = Vec::new();
    {
        let mut s = settings();
        s.l0_sst_size_bytes = 4 * 1024; // small SSTs: memtable flushes and compactions happen
        let db = store.open_db(&path, s).await.unwrap();
        for i in 0..150 {
            db.put(key(i), value(i)).await.unwrap().await_durable().await.unwrap();
            acked.push(i);
            if i % 50 == 49 {
                db.flush().await.unwrap();
                for j in (0..i).step_by(13) {
                    assert_eq!(db.get(key(j)).await.unwrap().as_deref(), Some(value(j).as_slice()));
                }
            }
        }
        db.close().await.unwrap();
    }
    let injected = store.faults().unwrap().injected();
    assert!(
        injected.errors > 0 && injected.resets > 0 && injected.lost_replies > 0 && injected.timeouts > 0,
        "{injected:?}"
    );
    assert_present_after_reopen(&cfg, 3, &acked).await;
}

/// The store-choosing helper other suites use (`SLATEFS_TEST_STORE=s3`): both kinds give a
/// working store that passes the start-up checks and keeps data across reopening.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn test_store_gives_either_kind() {
    for kind in [s3::StoreKind::Local, s3::StoreKind::S3] {
        let ts = s3::test_store_of(kind).await;
        assert_eq!(ts.s3.is_some(), kind == s3::StoreKind::S3);
        let store = Store::open_checked(&ts.config).await.unwrap();
        let db = store.open_db(&store.dataset_path(9), settings()).await.unwrap();
        db.put(b"k", b"v").await.unwrap().await_durable().await.unwrap();
        db.close().await.unwrap();
        let db = ts.open().open_db(&store.dataset_path(9), settings()).await.unwrap();
        assert_eq!(db.get(b"k").await.unwrap().as_deref(), Some(&b"v"[..]), "{kind:?}");
        db.close().await.unwrap();
        assert!(store.request_stats().put > 0);
    }
}

/// The on-disk read cache's hits and misses reach the store's request stats: the first reader
/// of data in SSTs misses (and fills the cache); a second one, with nothing in memory (a new
/// `Store` is a new process as far as caches go), is served by the disk and misses nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_cache_counts_misses_then_hits() {
    let ts = s3::test_store_of(s3::StoreKind::S3).await;
    let mut cfg = ts.config.clone();
    cfg.cache_dir = Some(ts.dir.path().join("cache"));
    const N: u32 = 20_000;
    let writer = Store::open(&cfg).unwrap();
    let path = writer.dataset_path(1);
    let db = writer.open_db(&path, settings()).await.unwrap();
    for i in 0..N {
        db.put(key(i), value(i)).await.unwrap();
    }
    // Into an SST: what the cache holds (the WAL and manifests are not cached).
    db.flush_with_options(slatedb::config::FlushOptions { flush_type: slatedb::config::FlushType::MemTable })
        .await
        .unwrap();
    db.close().await.unwrap();
    let w = writer.request_stats();
    assert_eq!((w.cache_hits, w.cache_misses), (0, 0), "writing reads nothing through the cache: {w}");

    let read_all = || async {
        let store = Store::open(&cfg).unwrap();
        let db = store.open_db(&path, settings()).await.unwrap();
        for i in 0..N {
            assert_eq!(db.get(key(i)).await.unwrap().as_deref(), Some(value(i).as_slice()), "key {i}");
        }
        db.close().await.unwrap();
        store.request_stats()
    };
    let first = read_all().await;
    let second = read_all().await;
    eprintln!("first read: {first}\nsecond read: {second}");
    assert!(first.cache_misses > 0, "a cold cache misses: {first}");
    assert_eq!(second.cache_misses, 0, "a warm cache misses nothing: {second}");
    assert!(second.cache_hits >= first.cache_misses, "what the first missed, the second hits: {second}");
    assert!(second.bytes_down < first.bytes_down, "the second fetched less: {first} / {second}");
    assert!(second.to_string().contains(&format!("read cache hits={} misses=0", second.cache_hits)), "{second}");
}
