//! What a peer may make the server hold before it has proved anything: a connection, the
//! bytes of a record still arriving, and the time that record may take. NFS over AUTH_UNIX
//! authenticates nobody, so these bounds hold for every peer alike.
//!
//! - Connections beyond `max_connections` are accepted and closed at once: the client sees the
//!   connection end and retries (the Linux client reconnects with a back-off), and the kernel's
//!   listen backlog does not fill with connections nobody will serve.
//! - Each connection has at most one record arriving at a time. Its buffer grows as bytes
//!   arrive, never to the size a header announces; the first `FREE_PER_RECORD` bytes are the
//!   connection's own, anything beyond comes out of one budget shared by all connections
//!   (`record_memory`), acquired before the buffer grows. When the budget is spent, readers wait
//!   (TCP pushes back on their clients); small calls, which fit the free part, go on.
//! - A record must be complete `record_timeout` after its first byte arrived, waits for the
//!   budget included; otherwise the connection is closed and the budget it held returns. Waiting
//!   for a record to start is not timed: NFS clients keep idle connections open.
//! - Connections closed for misbehaving are logged at most once per `WARN_INTERVAL` per kind,
//!   with a count of the ones not logged, so that a flood of them is not a flood of log lines.

use std::fmt::Display;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Bytes of a record's buffer that need nothing from the shared budget: every call but a
/// large WRITE fits, so a spent budget never stalls them.
pub const FREE_PER_RECORD: usize = 64 * 1024;
/// Record buffers kept for reuse, across all connections.
const POOLED_TOTAL: usize = 64 << 20;
const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// The configured bounds (`[nfs]` in the config file).
#[derive(Debug, Clone)]
pub struct Limits {
    pub max_connections: usize,
    pub record_memory: u64,
    pub record_timeout: Duration,
}

impl Limits {
    pub fn from_config(c: &crate::config::NfsConfig) -> anyhow::Result<Limits> {
        Ok(Limits {
            max_connections: c.max_connections,
            record_memory: c.record_memory_bytes()?,
            record_timeout: Duration::from_millis(c.record_timeout_ms),
        })
    }
}

impl Default for Limits {
    fn default() -> Self {
        Limits::from_config(&crate::config::NfsConfig::default()).expect("the defaults are valid")
    }
}

/// The bounds in force, shared by the accept loop and every connection.
pub struct Shared {
    connections: Arc<Semaphore>,
    budget: Arc<Semaphore>,
    pooled: AtomicUsize,
    pub record_timeout: Duration,
    /// Connections refused over the limit, closed for sending what is not ONC RPC, and
    /// closed for a record that did not finish in time.
    pub refused: Throttle,
    pub garbage: Throttle,
    pub stalled: Throttle,
}

impl Shared {
    pub fn new(limits: &Limits) -> Shared {
        let budget = (limits.record_memory as usize).min(Semaphore::MAX_PERMITS);
        Shared {
            connections: Arc::new(Semaphore::new(limits.max_connections.min(Semaphore::MAX_PERMITS))),
            budget: Arc::new(Semaphore::new(budget)),
            pooled: AtomicUsize::new(0),
            record_timeout: limits.record_timeout,
            refused: Throttle::default(),
            garbage: Throttle::default(),
            stalled: Throttle::default(),
        }
    }

    /// A connection's place, held for as long as it is served; `None` when all are taken.
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.connections.clone().try_acquire_owned().ok()
    }

    pub fn reservation(&self) -> Reservation {
        Reservation { budget: Some(self.budget.clone()), held: None }
    }

    /// Whether a buffer of `capacity` bytes may go into a pool: the pools of all connections
    /// together keep at most `POOLED_TOTAL`, so idle connections do not sit on memory.
    pub fn pool_put(&self, capacity: usize) -> bool {
        let before = self.pooled.fetch_add(capacity, Ordering::AcqRel);
        if before + capacity > POOLED_TOTAL {
            self.pooled.fetch_sub(capacity, Ordering::AcqRel);
            return false;
        }
        true
    }

    pub fn pool_took(&self, capacity: usize) {
        self.pooled.fetch_sub(capacity, Ordering::AcqRel);
    }
}

/// The shared budget a record's buffer holds while the record arrives.
pub struct Reservation {
    budget: Option<Arc<Semaphore>>,
    held: Option<OwnedSemaphorePermit>,
}

impl Reservation {
    /// No budget at all (unit tests of record reading).
    #[cfg(test)]
    pub fn unlimited() -> Reservation {
        Reservation { budget: None, held: None }
    }

    fn missing(&self, capacity: usize) -> usize {
        let have = self.held.as_ref().map_or(0, |p| p.num_permits());
        capacity.saturating_sub(FREE_PER_RECORD).saturating_sub(have)
    }

    fn add(&mut self, more: OwnedSemaphorePermit) {
        match &mut self.held {
            Some(p) => p.merge(more),
            None => self.held = Some(more),
        }
    }

    /// Waits until the budget covers a buffer of `capacity` bytes.
    pub async fn cover(&mut self, capacity: usize) {
        let Some(budget) = self.budget.clone() else { return };
        let need = self.missing(capacity);
        if need > 0 {
            let more = budget.acquire_many_owned(need as u32).await.expect("the budget is never closed");
            self.add(more);
        }
    }

    /// Covers `capacity` bytes if the budget has them now.
    pub fn try_cover(&mut self, capacity: usize) -> bool {
        let Some(budget) = self.budget.clone() else { return true };
        let need = self.missing(capacity);
        if need == 0 {
            return true;
        }
        match budget.try_acquire_many_owned(need as u32) {
            Ok(more) => {
                self.add(more);
                true
            }
            Err(_) => false,
        }
    }

    /// The record is complete: what it held goes back to the budget.
    pub fn release(&mut self) {
        self.held = None;
    }
}

/// A warning that is logged at most once per `WARN_INTERVAL`.
#[derive(Default)]
pub struct Throttle {
    state: Mutex<(Option<Instant>, u64)>,
}

impl Throttle {
    pub fn warn(&self, message: impl Display) {
        let mut s = self.state.lock().expect("throttle lock");
        let now = Instant::now();
        if s.0.is_some_and(|last| now.duration_since(last) < WARN_INTERVAL) {
            s.1 += 1;
            return;
        }
        let suppressed = std::mem::take(&mut s.1);
        s.0 = Some(now);
        drop(s);
        if suppressed > 0 {
            tracing::warn!("{message} (and {suppressed} more like it since the last such line)");
        } else {
            tracing::warn!("{message}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_free_part_needs_no_budget_and_the_rest_comes_back_on_release() {
        let shared = Shared::new(&Limits { record_memory: 100_000, ..Limits::default() });
        let mut a = shared.reservation();
        a.cover(FREE_PER_RECORD).await;
        assert_eq!(shared.budget.available_permits(), 100_000);
        a.cover(FREE_PER_RECORD + 60_000).await;
        assert_eq!(shared.budget.available_permits(), 40_000);
        let mut b = shared.reservation();
        assert!(!b.try_cover(FREE_PER_RECORD + 50_000), "more than is left");
        assert!(b.try_cover(FREE_PER_RECORD + 40_000));
        a.release();
        assert_eq!(shared.budget.available_permits(), 60_000);
        drop(b);
        assert_eq!(shared.budget.available_permits(), 100_000);
    }

    #[test]
    fn connections_beyond_the_limit_are_refused() {
        let shared = Shared::new(&Limits { max_connections: 2, ..Limits::default() });
        let a = shared.admit().unwrap();
        let _b = shared.admit().unwrap();
        assert!(shared.admit().is_none());
        drop(a);
        assert!(shared.admit().is_some());
    }

    #[test]
    fn pools_share_one_cap() {
        let shared = Shared::new(&Limits::default());
        assert!(shared.pool_put(POOLED_TOTAL - 10));
        assert!(!shared.pool_put(11));
        shared.pool_took(POOLED_TOTAL - 10);
        assert!(shared.pool_put(11));
    }
}
