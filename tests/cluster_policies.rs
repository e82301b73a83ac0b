//! Snapshot policies in a cluster (docs/policies.md, "Who runs them"): three real `slatefs
//! serve` processes on one store (`SLATEFS_TEST_STORE=s3`: on a real S3 server), the catalog
//! owner running the policy of a dataset that another server owns and writes. The policy
//! snapshot is taken by the dataset's owner and holds every write acknowledged before the run;
//! skip-when-unchanged asks the remote owner's change counter; the owner killed -9, the run
//! goes on through the takeover. The policy clock is a file the test moves
//! (SLATEFS_TEST_CLOCK_FILE).

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use cluster::{Trio, TrioOptions};
use nfs::{pattern, Client};
use serde_json::Value;

const MIN: u64 = 60_000;
const FILE_BYTES: usize = 20 << 10;
/// The catalog owner, which runs the policies; node-a owns and writes the dataset.
const CATALOG: usize = 0;
const NODE_A: usize = 1;
const NODE_B: usize = 2;

fn name_at(prefix: &str, slot: u64) -> String {
    let t = Utc.timestamp_millis_opt(slot as i64).unwrap();
    format!("{prefix}-{}z", t.format("%Y%m%d-%H%M%S"))
}

fn json(trio: &Trio, args: &[&str]) -> Value {
    let mut all = vec!["-o", "json"];
    all.extend_from_slice(args);
    let out = trio.dataset(CATALOG, &all);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{args:?}: not JSON ({e}): {out}"))
}

fn policy(trio: &Trio, dataset: &str) -> Value {
    json(trio, &["policy", "show", dataset])["policies"][0].clone()
}

/// Moves the policy clock and waits until the catalog owner's runner made a pass at that time.
fn set_clock(trio: &Trio, clock: &Path, t: u64) {
    std::fs::write(clock, t.to_string()).unwrap();
    trio.wait_for(&format!("a policy pass at {t}"), || {
        json(trio, &["policy", "show"])["evaluated_unix_ms"].as_u64() == Some(t)
    });
}

fn policy_snapshots(trio: &Trio, dataset: &str) -> Vec<String> {
    let mut names: Vec<String> = json(trio, &["list-snapshots", dataset])
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["name"].as_str().unwrap().to_string())
        .collect();
    names.sort();
    names
}

async fn mount(trio: &Trio, i: usize, export: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A catalog reader sees a new dataset or snapshot on its next look at the catalog.
        match Client::mount(trio.servers[i].nfs_port, export).await {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("mount {export} on {}: {e}\n{}", cluster::NAMES[i], trio.all_logs()),
        }
    }
}

/// File `f-N` (CREATE, WRITE FILE_SYNC): acknowledged when this returns.
async fn write_file(c: &mut Client, n: u64) {
    let root = c.root.clone();
    let name = format!("f-{n}");
    let f = c.create(&root, name.as_bytes(), 0o644).await.unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    c.write(&f, 0, &pattern(n, FILE_BYTES)).await.unwrap_or_else(|e| panic!("write {name}: {e:?}"));
}

/// The snapshot `snap` of `dataset`, read through node-b: the files `f-0..count`, with their
/// contents, and not `f-count`. (By name: READDIR of a snapshot's root on a server that does
/// not own its dataset answers JUKEBOX, a limit of the NFS layer noted in the report.)
async fn check_snapshot(trio: &Trio, dataset: &str, snap: &str, count: u64) {
    let mut c = mount(trio, NODE_B, &format!("/{dataset}@{snap}")).await;
    let root = c.root.clone();
    for n in 0..count {
        let f = c.lookup(&root, format!("f-{n}").as_bytes()).await.unwrap_or_else(|e| panic!("f-{n} not in {snap}: {e:?}"));
        assert!(c.read_all(&f).await.unwrap() == pattern(n, FILE_BYTES), "f-{n} in {snap} has other contents");
    }
    let later = c.lookup(&root, format!("f-{count}").as_bytes()).await;
    assert_eq!(later.unwrap_err(), nfs::nfsstat3::NFS3ERR_NOENT, "f-{count} is in {snap}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_catalog_owner_runs_the_policy_of_a_dataset_another_server_owns() {
    let t0 = Utc.with_ymd_and_hms(2026, 6, 1, 12, 0, 10).unwrap().timestamp_millis() as u64;
    let clock_dir = tempfile::tempdir().unwrap();
    let clock = clock_dir.path().join("clock");
    std::fs::write(&clock, t0.to_string()).unwrap();
    let mut trio = Trio::start(TrioOptions {
        env: vec![("SLATEFS_TEST_CLOCK_FILE".into(), clock.display().to_string())],
        ..Default::default()
    });
    trio.dataset(CATALOG, &["create", "pol"]);
    let mut a = mount(&trio, NODE_A, "/pol").await;
    for n in 0..5 {
        write_file(&mut a, n).await;
    }
    assert_eq!(trio.owner_of("pol").as_deref(), Some("node-a"));
    trio.dataset(CATALOG, &["policy", "set", "pol", "--every", "1m", "--keep-last", "10", "--skip-unchanged"]);

    // The first run: a snapshot checkpointed by node-a, holding every acknowledged write.
    let slot1 = (t0 / MIN + 1) * MIN;
    set_clock(&trio, &clock, slot1);
    let first = name_at("pol", slot1);
    assert_eq!(policy_snapshots(&trio, "pol"), vec![first.clone()]);
    check_snapshot(&trio, "pol", &first, 5).await;
    assert_eq!(trio.owner_of("pol").as_deref(), Some("node-a"), "the snapshot did not move the writer");

    // Idle: node-a's change counter has not moved, so no snapshot, but each slot is done.
    for m in 2..5 {
        set_clock(&trio, &clock, slot1 + (m - 1) * MIN);
    }
    assert_eq!(policy_snapshots(&trio, "pol"), vec![first.clone()], "an idle dataset got snapshots");
    assert_eq!(policy(&trio, "pol")["last_run_unix_ms"].as_u64(), Some(slot1 + 3 * MIN));

    // A write through node-a: the next run takes one.
    write_file(&mut a, 5).await;
    let slot5 = slot1 + 4 * MIN;
    set_clock(&trio, &clock, slot5);
    let fifth = name_at("pol", slot5);
    assert_eq!(policy_snapshots(&trio, "pol"), vec![first.clone(), fifth.clone()]);
    check_snapshot(&trio, "pol", &fifth, 6).await;
    for n in 6..9 {
        write_file(&mut a, n).await;
    }

    // node-a is killed -9 with writes the policy has not snapshotted yet.
    trio.servers[NODE_A].kill9();
    drop(a);
    let slot6 = slot1 + 5 * MIN;
    set_clock(&trio, &clock, slot6);
    let p = policy(&trio, "pol");
    assert!(p["last_error"].is_null(), "{p}\n{}", trio.all_logs());
    assert_eq!(p["last_run_unix_ms"].as_u64(), Some(slot6), "{p}");
    let sixth = name_at("pol", slot6);
    assert_eq!(policy_snapshots(&trio, "pol"), vec![first.clone(), fifth.clone(), sixth.clone()]);
    check_snapshot(&trio, "pol", &sixth, 9).await;
    assert_eq!(trio.owner_of("pol").as_deref(), Some("owner"), "the run took the dead owner's dataset over");
}
