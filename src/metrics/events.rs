//! Process-wide counters of rare events that happen deep in the layers (the durability path,
//! the ownership layer), where no handle to a metrics object is at hand: statics of atomics.
//! The exporter (`page.rs`) reads them at scrape time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use super::histogram::LatencyHistogram;

/// How long mutating calls waited for their changes to become durable (sync mode, COMMIT,
/// snapshots): one observation per wait, whether it succeeded or gave up.
pub static DURABILITY_WAIT: LatencyHistogram = LatencyHistogram::new();

/// Durability waits that gave up (store not answering: JUKEBOX or IO) or met a fenced writer.
pub static DURABILITY_WAIT_FAILURES: AtomicU64 = AtomicU64::new(0);

/// Dataset writers of this process found fenced (another process opened the dataset).
pub static FENCED: AtomicU64 = AtomicU64::new(0);

/// Ownership changes this server made or saw (cluster mode), by kind.
pub static OWNERSHIP_TAKEN: AtomicU64 = AtomicU64::new(0);
pub static OWNERSHIP_TAKEN_OVER: AtomicU64 = AtomicU64::new(0);
pub static OWNERSHIP_HANDED_OFF: AtomicU64 = AtomicU64::new(0);
pub static OWNERSHIP_LOST: AtomicU64 = AtomicU64::new(0);

pub fn count(c: &AtomicU64) {
    c.fetch_add(1, Relaxed);
}

pub fn read(c: &AtomicU64) -> u64 {
    c.load(Relaxed)
}
