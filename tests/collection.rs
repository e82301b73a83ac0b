//! SlateDB's garbage collection on every store slatefs offers, through `Store` with the
//! product's `[maintenance]` settings: after writes, compaction and collection, the manifests
//! and SSTs nothing refers to any more are gone from the store, and everything live is there
//! (issue 14). Runs on the local store and on the tests' S3 server (tests/support/s3.rs).

#[path = "support/s3.rs"]
mod s3;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path;
use slatedb::admin::Admin;
use slatedb::config::{FlushOptions, FlushType};
use slatefs::config::MaintenanceConfig;
use slatefs::store::{dataset_settings_with, Store};

fn key(i: u32) -> Vec<u8> {
    format!("key-{i:05}").into_bytes()
}

fn value(round: u32, i: u32) -> Vec<u8> {
    format!("round-{round}-value-{i}-{}", "v".repeat(200)).into_bytes()
}

/// The object names directly under `<db>/<dir>/`.
async fn names(store: &Store, db: &Path, dir: &str) -> BTreeSet<String> {
    let prefix = db.clone().join(dir);
    let listed: Vec<_> = store.object_store().list(Some(&prefix)).try_collect().await.expect("list");
    listed.into_iter().filter_map(|m| m.location.filename().map(str::to_string)).collect()
}

/// What the latest manifest and the manifests its checkpoints pin refer to: their ids
/// (`<id:020>.manifest`) and SSTs (`<ulid>.sst`).
async fn live(admin: &Admin) -> (BTreeSet<String>, BTreeSet<String>) {
    let latest = admin.read_manifest(None).await.expect("read manifest").expect("a manifest");
    let mut manifests = vec![latest.clone()];
    for c in latest.checkpoints() {
        if c.manifest_id != latest.id() {
            manifests.push(admin.read_manifest(Some(c.manifest_id)).await.unwrap().expect("a pinned manifest"));
        }
    }
    let ids = manifests.iter().map(|m| format!("{:020}.manifest", m.id())).collect();
    let ssts = manifests
        .iter()
        .flat_map(|m| m.all_sst_views().map(|v| format!("{}.sst", v.sst.id.value())).collect::<Vec<_>>())
        .collect();
    (ids, ssts)
}

async fn old_manifests_and_compacted_ssts_are_collected(kind: s3::StoreKind) {
    let ts = s3::test_store_of(kind).await;
    let store = ts.open();
    let path = store.dataset_path(7);
    let maintenance = MaintenanceConfig {
        gc_interval_ms: 200,
        gc_min_age_ms: 2_000,
        compaction_poll_ms: 100,
        ..MaintenanceConfig::default()
    };
    let mut settings = dataset_settings_with(Duration::from_millis(5), store.is_local(), &maintenance);
    // Memtables of 16 KiB: each round below becomes a few L0 tables for the compactor.
    settings.l0_sst_size_bytes = 16 << 10;
    let db = store.open_db(&path, settings).await.unwrap();
    let rounds = 8;
    for round in 0..rounds {
        for i in 0..200 {
            db.put(key(i), value(round, i)).await.unwrap();
        }
        db.flush_with_options(FlushOptions { flush_type: FlushType::MemTable }).await.unwrap();
    }
    let written_ssts = names(&store, &path, "compacted").await;
    let written_manifests = names(&store, &path, "manifest").await;
    assert!(written_ssts.len() >= rounds as usize, "{written_ssts:?}");

    // Compaction replaces the L0 tables; collection then removes what nothing refers to.
    let admin = Admin::builder(path.clone(), store.object_store().clone()).build();
    let deadline = Instant::now() + Duration::from_secs(120);
    let (ssts, manifests, live_manifests, live_ssts) = loop {
        let ssts = names(&store, &path, "compacted").await;
        let manifests = names(&store, &path, "manifest").await;
        let (live_manifests, live_ssts) = live(&admin).await;
        let (_, stale) = unreferenced_tables(&store, &path, &admin).await;
        let settled = live_ssts.is_subset(&ssts)
            && manifests.is_subset(&live_manifests)
            && written_ssts.difference(&ssts).count() * 2 >= written_ssts.len()
            && stale.len() <= 1;
        if settled || Instant::now() > deadline {
            break (ssts, manifests, live_manifests, live_ssts);
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    };
    // Every SST the manifests refer to is there, and of the rest at most one: the last L0
    // a merge took in (SlateDB's collector keeps the newest L0 it has seen; collect_scheduler.rs).
    assert!(live_ssts.is_subset(&ssts), "live SSTs missing ({kind:?}): {live_ssts:?} vs {ssts:?}");
    let (_, stale) = unreferenced_tables(&store, &path, &admin).await;
    assert!(stale.len() <= 1, "tables nothing refers to stay ({kind:?}): {stale:?}");
    assert!(manifests.is_subset(&live_manifests), "{manifests:?} vs live {live_manifests:?} ({kind:?})");
    let gone_ssts: Vec<_> = written_ssts.difference(&ssts).collect();
    assert!(gone_ssts.len() * 2 >= written_ssts.len(), "most written SSTs should be collected ({kind:?}): {ssts:?}");
    let gone_manifests: Vec<_> = written_manifests.difference(&manifests).collect();
    assert!(!gone_manifests.is_empty(), "no manifest was collected ({kind:?}): {manifests:?}");

    // Nothing live went: every key reads its last value, here and after a reopen.
    for i in 0..200 {
        assert_eq!(db.get(key(i)).await.unwrap().as_deref(), Some(value(rounds - 1, i).as_slice()), "key {i}");
    }
    db.close().await.unwrap();
    let db = store.open_db(&path, dataset_settings_with(Duration::from_millis(5), store.is_local(), &maintenance)).await.unwrap();
    for i in 0..200 {
        assert_eq!(db.get(key(i)).await.unwrap().as_deref(), Some(value(rounds - 1, i).as_slice()), "key {i}");
    }
    db.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collection_removes_old_manifests_and_ssts_on_the_local_store() {
    old_manifests_and_compacted_ssts_are_collected(s3::StoreKind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn collection_removes_old_manifests_and_ssts_on_s3() {
    old_manifests_and_compacted_ssts_are_collected(s3::StoreKind::S3).await;
}

/// 64 KiB that do not compress (blocks are stored compressed), so that tables have the size
/// of what was written.
fn blob(tag: u8, i: u32) -> Vec<u8> {
    let mut x = (u64::from(tag) << 32 | u64::from(i)).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..64 << 10)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

/// Bytes of the tables in `compacted/` that neither the latest manifest nor a checkpoint's
/// refers to, with their names (the compactor's checkpoints pin what a merge replaced until
/// they expire).
async fn unreferenced_tables(store: &Store, db: &Path, admin: &Admin) -> (u64, Vec<String>) {
    let (_, live_ssts) = live(admin).await;
    let listed: Vec<_> = store.object_store().list(Some(&db.clone().join("compacted"))).try_collect().await.expect("list");
    let stale: Vec<_> = listed.iter().filter(|m| !m.location.filename().is_some_and(|n| live_ssts.contains(n))).collect();
    (stale.iter().map(|m| m.size).sum(), stale.iter().map(|m| format!("{} ({} B)", m.location, m.size)).collect())
}

/// One attempt at the order that kept a merged-away run in the store: two L0 tables, their
/// quiet merge submitted, and a third L0 (tombstones) flushed before the merge writes its run.
/// Returns false when the third table landed after the run after all (the race was lost).
async fn run_newer_than_the_last_l0(store: &Store, path: &Path, maintenance: &MaintenanceConfig) -> bool {
    let db = store.open_db(path, dataset_settings_with(Duration::from_millis(5), store.is_local(), maintenance)).await.unwrap();
    let admin = Admin::builder(path.clone(), store.object_store().clone()).build();
    for (tag, keys) in [(b'a', 0..32), (b'b', 32..64)] {
        for i in keys {
            db.put(key(i), blob(tag, i)).await.unwrap();
        }
        db.flush_with_options(FlushOptions { flush_type: FlushType::MemTable }).await.unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    while admin.read_compactions(None).await.unwrap().is_none_or(|c| c.recent_compactions().next().is_none()) {
        assert!(Instant::now() < deadline, "the two L0 tables were never merged");
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for i in 0..32 {
        db.delete(key(i)).await.unwrap();
    }
    db.flush_with_options(FlushOptions { flush_type: FlushType::MemTable }).await.unwrap();
    let manifest = loop {
        let m = admin.read_manifest(None).await.unwrap().expect("a manifest");
        if !m.compacted().is_empty() {
            break m;
        }
        assert!(Instant::now() < deadline, "the merge of the two L0 tables never finished");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let newest_l0 = manifest.l0().iter().map(|v| v.sst.id.value().timestamp_ms()).max().expect("the third L0 table");
    let oldest_run_table = manifest.compacted().iter().flat_map(|r| r.sst_views()).map(|v| v.sst.id.value().timestamp_ms()).min().unwrap();
    let raced = newest_l0 < oldest_run_table;
    eprintln!("after the first merge: newest L0 at {newest_l0} ms, the run's oldest table at {oldest_run_table} ms; tables {:?}", manifest.all_sst_views().map(|v| v.sst.id.value().to_string()).collect::<Vec<_>>());
    if raced {
        // The quiet tree ([third L0, run]) is merged whole and what it replaced is collected:
        // all that may stay is the writer's marker, as an L0 of its own (a few hundred bytes)
        // or unreferenced, merged.
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            let m = admin.read_manifest(None).await.unwrap().expect("a manifest");
            let (stale, names) = unreferenced_tables(store, path, &admin).await;
            let markers_only = m.l0().iter().all(|v| v.estimate_size() <= 4096);
            let settled = markers_only && m.l0().len() <= 1 && m.compacted().len() == 1 && m.checkpoints().is_empty();
            if settled && stale <= slatefs::store::collect_scheduler::MARKER_MAX_BYTES {
                eprintln!("settled: {stale} B unreferenced: {names:?}");
                // And it stays so: a settled quiet tree gets no more markers or merges (several
                // quiet periods and compactor polls).
                let tables = |m: &slatedb::manifest::VersionedManifest| m.all_sst_views().map(|v| v.sst.id.value()).collect::<Vec<_>>();
                tokio::time::sleep(Duration::from_millis(maintenance.collect_quiet_ms * 4)).await;
                let later = admin.read_manifest(None).await.unwrap().expect("a manifest");
                assert_eq!(tables(&later), tables(&m), "a settled tree was flushed or merged again");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "merged-away tables stay in the store: {stale} B unreferenced: {names:?}; the manifest has {} L0, {} runs, {} checkpoints",
                m.l0().len(),
                m.compacted().len(),
                m.checkpoints().len()
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        for i in 0..64 {
            let want = (i >= 32).then(|| blob(b'b', i));
            assert_eq!(db.get(key(i)).await.unwrap().map(|b| b.to_vec()), want, "key {i}");
        }
    }
    db.close().await.unwrap();
    raced
}

/// SlateDB's collector keeps every table newer than the tree's newest L0; a run written after
/// the writer's last flush therefore stayed in the store after the quiet merge replaced it
/// (what failed CI on 2026-12-06). The scheduler now has the writer flush a marker first.
async fn a_merged_away_run_newer_than_the_last_flush_leaves_the_store(kind: s3::StoreKind) {
    let ts = s3::test_store_of(kind).await;
    let store = ts.open();
    let maintenance = MaintenanceConfig {
        gc_interval_ms: 200,
        gc_min_age_ms: 2_000,
        // The worker claims a submitted merge at its next poll: the window for the third flush.
        compaction_poll_ms: 500,
        collect_quiet_ms: 1_000,
        ..MaintenanceConfig::default()
    };
    for attempt in 0..5 {
        if run_newer_than_the_last_l0(&store, &store.dataset_path(20 + attempt), &maintenance).await {
            return;
        }
        eprintln!("attempt {attempt}: the third L0 table landed after the merge's run; again");
    }
    panic!("in 5 attempts the third L0 table never landed before the merge's run: the case was not tested");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merged_away_run_newer_than_the_last_flush_leaves_the_local_store() {
    a_merged_away_run_newer_than_the_last_flush_leaves_the_store(s3::StoreKind::Local).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_merged_away_run_newer_than_the_last_flush_leaves_s3() {
    a_merged_away_run_newer_than_the_last_flush_leaves_the_store(s3::StoreKind::S3).await;
}
