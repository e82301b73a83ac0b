//! How long a call waits for an unreachable object store before it gives up on the wait.
//!
//! SlateDB retries failed object-store requests without limit: during an outage a WAL flush
//! simply does not finish, and a writer that waits for it would wait for as long as the outage
//! lasts. The durability wait (`src/fs/commit.rs`) therefore waits at most
//! `unavailable_after`, then answers "unavailable" (NFS3ERR_JUKEBOX: the NFS client retries the
//! call by itself) while the flush goes on in the background; once the store has been
//! unreachable for `io_error_after` (when set), the answer becomes an I/O error (NFS3ERR_IO),
//! so that applications on the client learn of a long outage instead of hanging. In both cases
//! the change stays in SlateDB's WAL buffer and becomes durable when the store returns; an NFS
//! client that retries the WRITE writes the same bytes again, which is harmless.
//!
//! Reads obey the same limits ([`bounded_read`]): a READ, LOOKUP, GETATTR or READDIR that
//! needs data the store holds (not in memory, not in the read cache) waits while SlateDB
//! retries, at most `unavailable_after` — and longer only while the store keeps answering
//! other requests (slow, not away) — then answers "unavailable"; once the store has been
//! failing for `io_error_after`, an I/O error. A read changes nothing, so giving up on it
//! loses nothing; the client's retry reads again.
//!
//! The limits are per process: `[storage] unavailable_after_ms` and `io_error_after_ms`,
//! installed when a store is opened ([`super::Store::open`]); a process serves one store.

use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use super::health;
use crate::config::StorageConfig;

pub const DEFAULT_UNAVAILABLE_AFTER: Duration = Duration::from_secs(5);
pub const DEFAULT_IO_ERROR_AFTER: Duration = Duration::from_secs(300);

static UNAVAILABLE_AFTER_MS: AtomicU64 = AtomicU64::new(DEFAULT_UNAVAILABLE_AFTER.as_millis() as u64);
static IO_ERROR_AFTER_MS: AtomicU64 = AtomicU64::new(DEFAULT_IO_ERROR_AFTER.as_millis() as u64);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WaitLimits {
    /// The longest one call waits for a durability flush before answering "unavailable".
    pub unavailable_after: Duration,
    /// How long the store may stay unreachable before calls fail with an I/O error;
    /// `None`: never.
    pub io_error_after: Option<Duration>,
}

impl WaitLimits {
    pub fn from_config(cfg: &StorageConfig) -> WaitLimits {
        WaitLimits {
            unavailable_after: cfg
                .unavailable_after_ms
                .map(|ms| Duration::from_millis(ms.max(1)))
                .unwrap_or(DEFAULT_UNAVAILABLE_AFTER),
            io_error_after: match cfg.io_error_after_ms {
                Some(0) => None,
                Some(ms) => Some(Duration::from_millis(ms)),
                None => Some(DEFAULT_IO_ERROR_AFTER),
            },
        }
    }
}

/// Makes `limits` the limits of every durability wait in this process.
pub fn install(limits: WaitLimits) {
    UNAVAILABLE_AFTER_MS.store(limits.unavailable_after.as_millis() as u64, Ordering::Relaxed);
    IO_ERROR_AFTER_MS.store(
        limits.io_error_after.map(|d| d.as_millis() as u64).unwrap_or(0),
        Ordering::Relaxed,
    );
}

/// The limits in force.
pub fn limits() -> WaitLimits {
    WaitLimits {
        unavailable_after: Duration::from_millis(UNAVAILABLE_AFTER_MS.load(Ordering::Relaxed).max(1)),
        io_error_after: match IO_ERROR_AFTER_MS.load(Ordering::Relaxed) {
            0 => None,
            ms => Some(Duration::from_millis(ms)),
        },
    }
}

/// A read that stopped waiting for the object store.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GaveUp {
    /// Not answering for `unavailable_after`: try again later (NFS3ERR_JUKEBOX).
    #[error("{0}")]
    Unavailable(String),
    /// Failing for `io_error_after` (NFS3ERR_IO).
    #[error("{0}")]
    Unreachable(String),
}

/// Runs `read` (anything that may need the object store and changes nothing) within the
/// limits in force; see the module documentation.
pub async fn bounded_read<T, E: From<GaveUp>>(read: impl Future<Output = Result<T, E>>) -> Result<T, E> {
    let limits = limits();
    let start = Instant::now();
    let mut read = std::pin::pin!(read);
    let mut until = start + limits.unavailable_after;
    loop {
        if let Ok(r) = tokio::time::timeout_at(until.into(), read.as_mut()).await {
            return r;
        }
        match health::last_answer_ago() {
            // The store answered lately: slow, not away. Wait as long again from that answer.
            Some(ago) if ago < limits.unavailable_after => {
                until = Instant::now() + (limits.unavailable_after - ago);
            }
            _ => {
                health::unanswered(start);
                return Err(gave_up(start, limits).into());
            }
        }
    }
}

fn gave_up(start: Instant, limits: WaitLimits) -> GaveUp {
    let failing = health::failing_for().unwrap_or_else(|| start.elapsed());
    match limits.io_error_after {
        Some(limit) if failing >= limit => GaveUp::Unreachable(format!(
            "object store unreachable for {}s (storage.io_error_after_ms = {})",
            failing.as_secs(),
            limit.as_millis()
        )),
        _ => GaveUp::Unavailable(format!(
            "object store not answering for {:.1}s: a read that needs it waits at most \
             storage.unavailable_after_ms = {}; retry",
            failing.as_secs_f64(),
            limits.unavailable_after.as_millis()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn from_config() {
        let mut c = StorageConfig::default();
        assert_eq!(
            WaitLimits::from_config(&c),
            WaitLimits {
                unavailable_after: DEFAULT_UNAVAILABLE_AFTER,
                io_error_after: Some(DEFAULT_IO_ERROR_AFTER)
            }
        );
        c.unavailable_after_ms = Some(250);
        c.io_error_after_ms = Some(0);
        let l = WaitLimits::from_config(&c);
        assert_eq!(l.unavailable_after, Duration::from_millis(250));
        assert_eq!(l.io_error_after, None);
    }
}
