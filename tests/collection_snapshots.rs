//! Collection is never paused by snapshots, and a store holds about what is live once
//! compaction and collection have run (issue 17; docs/data-path.md, "Collection and space").
//!
//! Through a real `slatefs serve` and a real NFSv3 client, with `[maintenance]` intervals short
//! enough that a test sees several compactions and collections: data written after 100
//! snapshots and then removed leaves the store (its object bytes fall back to what they were
//! before the write, within [`LINGER`]); data a snapshot holds is still there, byte for byte,
//! after collection has run; and after writes, overwrites and removes the store holds at most
//! [`SPACE_RATIO`] times the live data. Runs on the local store and, under
//! `SLATEFS_TEST_STORE=s3`, on the tests' S3 server (object bytes as its listing reports them).

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use nfs::{pattern, Client};
use server::{Server, ServerOptions};
use slatefs::store::Store;

const MIB: u64 = 1 << 20;

/// Short maintenance intervals (the least `[maintenance]` accepts for the age): compaction
/// looks for work every 200 ms, merges a tree left unchanged for 1 s, and collection runs every
/// 500 ms, keeping objects 2 s.
const MAINTENANCE: &str = "[maintenance]\ngc_interval_ms = 500\ngc_min_age_ms = 2000\ncompaction_poll_ms = 200\ncollect_quiet_ms = 1000\n";

/// What removed data may leave behind once collection has run: the manifests, the last WAL
/// objects and the small tables of tombstones and metadata the removal itself wrote
/// (docs/data-path.md, "Collection and space").
const LINGER: u64 = 8 * MIB;

/// The most a store may hold per byte of live data once maintenance has settled.
const SPACE_RATIO: f64 = 1.3;

/// A failure bound, not a figure: what settles in seconds here must not take minutes.
const DEADLINE: Duration = Duration::from_secs(240);

fn dataset(server: &Server, args: &[&str]) -> String {
    let mut full = vec!["dataset", "--admin", server.admin.as_str()];
    full.extend_from_slice(args);
    let out = server.cli(&full);
    assert!(out.status.success(), "slatefs dataset {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn start() -> Server {
    Server::start_with(ServerOptions { config: Some(MAINTENANCE.into()), ..Default::default() })
}

/// Writes `data` at `offset` of `name` (created if missing) in 1 MiB FILE_SYNC writes.
async fn put_at(c: &mut Client, name: &str, offset: u64, data: &[u8]) {
    let root = c.root.clone();
    let f = match c.lookup(&root, name.as_bytes()).await {
        Ok(f) => f,
        Err(_) => c.create(&root, name.as_bytes(), 0o644).await.unwrap(),
    };
    for (i, part) in data.chunks(MIB as usize).enumerate() {
        c.write(&f, offset + i as u64 * MIB, part).await.unwrap();
    }
}

async fn remove(c: &mut Client, name: &str) {
    let root = c.root.clone();
    c.remove(&root, name.as_bytes()).await.unwrap();
}

/// Every object's bytes in the server's store (a `file://` directory or its S3 server), by
/// the top two levels of its name (`datasets/<id>/compacted`), as the store lists them.
async fn store_bytes(store: &Store) -> (u64, BTreeMap<String, u64>) {
    let root = store.path("");
    let listed: Vec<_> = store.object_store().list(Some(&root)).try_collect().await.expect("list the store");
    let mut by_dir = BTreeMap::new();
    let mut total = 0;
    for m in listed {
        let rel: Vec<String> = m.location.prefix_match(&root).map(|p| p.map(|s| s.as_ref().to_string()).collect()).unwrap_or_default();
        let dir = match rel.as_slice() {
            [a, b, c, _, ..] if a == "datasets" => format!("{a}/{b}/{c}"),
            [a, _, ..] => a.clone(),
            _ => String::new(),
        };
        *by_dir.entry(dir).or_insert(0) += m.size;
        total += m.size;
    }
    (total, by_dir)
}

fn mib(b: u64) -> String {
    format!("{:.1} MiB", b as f64 / MIB as f64)
}

/// Polls the store until `settled(total)`; returns the bytes and how long it took, or panics
/// with what the store holds at the deadline.
async fn wait_for(store: &Store, what: &str, settled: impl Fn(u64) -> bool) -> (u64, Duration) {
    let started = Instant::now();
    loop {
        let (total, by_dir) = store_bytes(store).await;
        if settled(total) {
            return (total, started.elapsed());
        }
        if started.elapsed() > DEADLINE {
            panic!("{what}: the store still holds {} after {DEADLINE:?}: {by_dir:?}", mib(total));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn snapshots() -> usize {
    std::env::var("SLATEFS_TEST_SNAPSHOTS").ok().and_then(|s| s.parse().ok()).unwrap_or(100)
}

fn size_mib(var: &str, default: u64) -> u64 {
    std::env::var(var).ok().and_then(|s| s.parse().ok()).unwrap_or(default)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_data_leaves_the_store_while_100_snapshots_exist_and_held_data_stays() {
    let server = start();
    let store = Store::open(&server.storage_config().expect("the test server's store")).unwrap();
    dataset(&server, &["create", "d"]);
    let mut c = Client::mount(server.nfs_port, "/d").await.unwrap();

    // A file a snapshot holds, removed right after it.
    let held = pattern(7, (4 * MIB) as usize);
    put_at(&mut c, "held", 0, &held).await;
    dataset(&server, &["snapshot", "d", "keep", "--readonly"]);
    remove(&mut c, "held").await;
    let n = snapshots();
    for i in 1..n {
        dataset(&server, &["snapshot", "d", &format!("s{i:03}"), "--readonly"]);
    }
    // What the store holds with the snapshots, once the removal above has been collected as
    // far as it can be (the snapshot keeps its bytes).
    let (before, by_dir) = store_bytes(&store).await;
    eprintln!("with {n} snapshots: {} {by_dir:?}", mib(before));

    let big = size_mib("SLATEFS_TEST_WRITE_MIB", 64) * MIB;
    put_at(&mut c, "big", 0, &pattern(9, big as usize)).await;
    let (written, by_dir) = store_bytes(&store).await;
    eprintln!("after writing {}: {} {by_dir:?}", mib(big), mib(written));
    assert!(written >= before + big, "the write is not in the store: {} then {}", mib(before), mib(written));
    remove(&mut c, "big").await;
    let (after, took) = wait_for(&store, "removed data with snapshots", |b| b <= before + LINGER).await;
    let (_, by_dir) = store_bytes(&store).await;
    eprintln!(
        "after removing it: {} ({} over the {} before) within {:.1} s; {by_dir:?}",
        mib(after),
        mib(after.saturating_sub(before)),
        mib(before),
        took.as_secs_f64()
    );

    // What the compactor did (the quiet tree's full merge, collect_scheduler.rs), for the record.
    for line in server.logs().lines().filter(|l| l.contains("compaction: ")) {
        eprintln!("serve: {line}");
    }

    // Collection has run (the removed bytes left): what the first snapshot holds is all
    // there, and a later one never held the file.
    let mut s = Client::mount(server.nfs_port, "/d@keep").await.unwrap();
    let f = s.walk("held").await.unwrap_or_else(|e| panic!("/d@keep/held: {e:?}"));
    assert!(s.read_all(&f).await.unwrap() == held, "/d@keep/held differs from what was written");
    if n > 1 {
        let last = format!("/d@s{:03}", n - 1);
        let mut s = Client::mount(server.nfs_port, &last).await.unwrap();
        let root = s.root.clone();
        assert!(s.lookup(&root, b"held").await.is_err(), "{last} was taken after the removal but holds the file");
    }
}

/// Write, overwrite half, remove a quarter: the store settles at most [`SPACE_RATIO`] times
/// the live data (what the files hold), with no snapshot.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_holds_little_more_than_the_live_data_after_maintenance() {
    let server = start();
    let store = Store::open(&server.storage_config().expect("the test server's store")).unwrap();
    dataset(&server, &["create", "d"]);
    let mut c = Client::mount(server.nfs_port, "/d").await.unwrap();

    // Four files of a quarter each: overwrite the first two, remove the third.
    let total = size_mib("SLATEFS_TEST_SPACE_MIB", 128) * MIB;
    let quarter = total / 4;
    for (i, name) in ["q0", "q1", "q2", "q3"].iter().enumerate() {
        put_at(&mut c, name, 0, &pattern(i as u64, quarter as usize)).await;
    }
    for (i, name) in ["q0", "q1"].iter().enumerate() {
        put_at(&mut c, name, 0, &pattern(10 + i as u64, quarter as usize)).await;
    }
    remove(&mut c, "q2").await;
    let live = 3 * quarter;
    let (held, by_dir) = store_bytes(&store).await;
    eprintln!("right after the writes: {} for {} live; {by_dir:?}", mib(held), mib(live));
    let bound = (live as f64 * SPACE_RATIO) as u64;
    let (settled, took) = wait_for(&store, "space after overwrites and a remove", |b| b <= bound).await;
    let (_, by_dir) = store_bytes(&store).await;
    eprintln!(
        "settled: {} for {} live ({:.2}x) within {:.1} s; {by_dir:?}",
        mib(settled),
        mib(live),
        settled as f64 / live as f64,
        took.as_secs_f64()
    );
    // Nothing live went.
    for (name, seed) in [("q0", 10), ("q1", 11), ("q3", 3)] {
        let root = c.root.clone();
        let f = c.lookup(&root, name.as_bytes()).await.unwrap();
        assert!(c.read_all(&f).await.unwrap() == pattern(seed, quarter as usize), "{name} differs");
    }
}
