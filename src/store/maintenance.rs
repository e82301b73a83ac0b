//! SlateDB's background work on each database, from `[maintenance]`: how often the compactor
//! and the writer look at the store, and how often garbage collection runs and what it keeps.
//!
//! Every poll is a paid request on an object store, so an idle process must poll little: the
//! catalog (always open) polls every `catalog_poll_ms`, and datasets nobody uses are closed
//! (`idle_close_ms`, in the registry) rather than polled slowly, so that a dataset in use
//! keeps SlateDB's quick defaults. docs/object-storage.md ("Collection and polling") lists
//! every poller and its interval.

use std::time::Duration;

use slatedb::config::{
    CompactionWorkerOptions, CompactorOptions, GarbageCollectorDirectoryOptions,
    GarbageCollectorOptions, GarbageCollectorScheduleOptions, Settings,
};

use super::collect_scheduler;
use crate::config::MaintenanceConfig;

/// Collection runs on the catalog every this many catalog polls...
const CATALOG_GC_EVERY_POLLS: u32 = 10;
/// ...and keeps objects younger than this many polls: the writer may still read an SST the
/// compactor replaced until its next manifest poll, so the age must cover several of them.
const CATALOG_GC_MIN_AGE_POLLS: u32 = 5;

/// A dataset's database: SlateDB's polling defaults (it is in use while it is open), with
/// compaction and collection as configured.
pub fn apply_dataset(settings: &mut Settings, cfg: &MaintenanceConfig) {
    let poll = Duration::from_millis(cfg.compaction_poll_ms);
    let min_age = Duration::from_millis(cfg.gc_min_age_ms);
    let mut compactor = compactor(poll, min_age);
    // A tree whose sources stayed the same this long is merged whole, so that removed data
    // leaves the store (collect_scheduler.rs); the catalog has no such key.
    compactor
        .scheduler_options
        .insert(collect_scheduler::QUIET_KEY.to_string(), cfg.collect_quiet_ms.to_string());
    settings.compactor_options = Some(compactor);
    settings.garbage_collector_options =
        Some(collector(Duration::from_millis(cfg.gc_interval_ms), min_age));
}

/// The catalog's database: small, rarely written and open for the life of the process, so it
/// polls every `catalog_poll_ms` (a write is made durable by the writer itself, whatever the
/// poll; a fenced catalog owner learns it at its next write).
pub fn apply_catalog(settings: &mut Settings, cfg: &MaintenanceConfig) {
    let poll = Duration::from_millis(cfg.catalog_poll_ms);
    settings.manifest_poll_interval = poll;
    let min_age = poll * CATALOG_GC_MIN_AGE_POLLS;
    settings.compactor_options = Some(compactor(poll, min_age));
    settings.garbage_collector_options = Some(collector(poll * CATALOG_GC_EVERY_POLLS, min_age));
}

/// `protect`: how long the compactor's checkpoint keeps a compaction's inputs for reads that
/// began before it (SlateDB's default, 15 min, is what kept deleted data on disk for a quarter
/// of an hour; an NFS call's read lasts milliseconds).
fn compactor(poll: Duration, protect: Duration) -> CompactorOptions {
    CompactorOptions {
        poll_interval: poll,
        checkpoint_lifetime: protect,
        worker: Some(CompactionWorkerOptions {
            compactions_poll_interval: poll,
            ..CompactionWorkerOptions::default()
        }),
        ..CompactorOptions::default()
    }
}

/// Collection of every directory SlateDB manages, at `interval`, keeping what is younger than
/// `min_age`. WAL fences (empty objects) are never collected: deleting one can let a fenced
/// writer's late WAL write succeed, and SlateDB's default only reports them. Boundary files stay on: the local store
/// gives them the conditional updates they need (`local_conditional`).
pub fn collector(interval: Duration, min_age: Duration) -> GarbageCollectorOptions {
    let dir = GarbageCollectorDirectoryOptions { interval: Some(interval), min_age, dry_run: false };
    GarbageCollectorOptions {
        manifest_options: Some(dir),
        wal_options: Some(dir),
        compacted_options: Some(dir),
        compactions_options: Some(dir),
        wal_fence_options: None,
        detach_options: Some(GarbageCollectorScheduleOptions { interval: Some(interval) }),
        ..GarbageCollectorOptions::default()
    }
}
