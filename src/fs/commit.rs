//! Durability of acknowledged changes. In sync mode every mutating call waits here until its
//! batch is in the object store. One WAL flush runs at a time; callers that arrive while it
//! runs are covered together by the next one (group commit), so concurrent clients share
//! flushes instead of queueing one per write.
//!
//! An unreachable object store (see `crate::store::wait`): SlateDB retries without limit, so a
//! flush during an outage just does not finish. A caller waits at most
//! `unavailable_after`, then gets [`FsError::Unavailable`] (NFS3ERR_JUKEBOX: the client
//! retries) — or, once the pending flush has been running for `io_error_after`,
//! [`FsError::Io`] (NFS3ERR_IO). The flush itself runs in its own task and goes on: the change
//! is in SlateDB's WAL buffer and becomes durable when the store returns, and a retried call
//! applies the same change again (a WRITE of the same bytes), which is harmless. Nothing is
//! acknowledged before it is durable, so no acknowledged change is lost.
//!
//! A fenced database (another server opened the dataset for writing) makes every later wait
//! fail with [`FsError::Fenced`] and is logged once, loudly.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use slatedb::Db;
use tokio::sync::Mutex;

use super::error::{FsError, FsResult};
use crate::config::DurabilityMode;

pub struct Committer {
    mode: DurabilityMode,
    shared: Arc<Shared>,
}

struct Shared {
    /// Highest sequence number handed back by a write.
    written: AtomicU64,
    /// Highest sequence number known to be durable.
    durable: AtomicU64,
    /// Held by the running flush (its task owns the guard).
    flush_turn: Arc<Mutex<()>>,
    /// When the running flush started; `None` when no flush runs.
    flush_started: std::sync::Mutex<Option<Instant>>,
    /// A flush outlived a caller's wait (the store is not answering) and has not finished.
    stalled: AtomicBool,
    fenced: AtomicBool,
}

/// What the durability path knows about the dataset's database.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// A WAL flush has been pending this long: the object store is not answering.
    Unavailable(Duration),
    /// Another server opened the dataset for writing; this one no longer acknowledges writes.
    Fenced,
}

impl Committer {
    pub fn new(mode: DurabilityMode) -> Committer {
        Committer {
            mode,
            shared: Arc::new(Shared {
                written: AtomicU64::new(0),
                durable: AtomicU64::new(0),
                flush_turn: Arc::new(Mutex::new(())),
                flush_started: std::sync::Mutex::new(None),
                stalled: AtomicBool::new(false),
                fenced: AtomicBool::new(false),
            }),
        }
    }

    pub fn mode(&self) -> DurabilityMode {
        self.mode
    }

    /// The highest sequence number a write handed back so far (0 before the first).
    pub fn last_written(&self) -> u64 {
        self.shared.written.load(Ordering::Acquire)
    }

    pub fn note_written(&self, seq: u64) {
        self.shared.written.fetch_max(seq, Ordering::AcqRel);
    }

    /// Returns once the write with sequence number `seq` is durable (sync mode), or at once
    /// (async mode: the periodic WAL flush and COMMIT make it durable later).
    pub async fn settle(&self, db: &Db, seq: u64) -> FsResult<()> {
        if self.mode == DurabilityMode::Async {
            return Ok(());
        }
        self.make_durable(db, seq).await
    }

    /// Makes everything written so far durable, whatever the mode (COMMIT, snapshot, close).
    pub async fn flush_all(&self, db: &Db) -> FsResult<()> {
        let seq = self.shared.written.load(Ordering::Acquire);
        self.make_durable(db, seq).await
    }

    /// The state of the durability path, as `Filesystem::health()` reports it to DatasetStats
    /// and the CSI volume condition.
    pub fn health(&self) -> Health {
        if self.shared.fenced.load(Ordering::Acquire) {
            return Health::Fenced;
        }
        match self.shared.pending_for() {
            Some(d) if self.shared.stalled.load(Ordering::Acquire) => Health::Unavailable(d),
            _ => Health::Ok,
        }
    }

    pub(super) async fn make_durable(&self, db: &Db, seq: u64) -> FsResult<()> {
        let start = Instant::now();
        let result = self.wait_durable(db, seq).await;
        crate::metrics::events::DURABILITY_WAIT.record(start.elapsed());
        if result.is_err() {
            crate::metrics::events::count(&crate::metrics::events::DURABILITY_WAIT_FAILURES);
        }
        result
    }

    async fn wait_durable(&self, db: &Db, seq: u64) -> FsResult<()> {
        let limits = crate::store::wait::limits();
        let start = Instant::now();
        let sh = &self.shared;
        loop {
            if sh.durable.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            if sh.fenced.load(Ordering::Acquire) {
                return Err(FsError::Fenced);
            }
            let left = limits.unavailable_after.saturating_sub(start.elapsed());
            let turn = match tokio::time::timeout(left, sh.flush_turn.clone().lock_owned()).await {
                Ok(turn) => turn,
                Err(_) => return Err(sh.gave_up(limits)),
            };
            if sh.durable.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            // Everything written up to here is in the WAL buffer this flush writes out.
            let covered = sh.written.load(Ordering::Acquire);
            *sh.flush_started.lock().unwrap() = Some(Instant::now());
            let (db, task_sh) = (db.clone(), sh.clone());
            // The flush runs in its own task, holding the turn, so that it goes on (and the
            // next flush waits for it) when this caller stops waiting.
            let mut flush = tokio::spawn(async move {
                let result = db.flush().await;
                task_sh.flushed(covered, &result);
                drop(turn);
                result
            });
            let left = limits.unavailable_after.saturating_sub(start.elapsed());
            match tokio::time::timeout(left, &mut flush).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(e))) => return Err(FsError::from(e)),
                Ok(Err(e)) => return Err(FsError::Io(format!("WAL flush task failed: {e}"))),
                Err(_) => return Err(sh.gave_up(limits)),
            }
        }
    }
}

impl Shared {
    /// How long the running flush has been running.
    fn pending_for(&self) -> Option<Duration> {
        self.flush_started.lock().unwrap().map(|t| t.elapsed())
    }

    /// A caller stops waiting: "try again later", or an I/O error once the store has not
    /// answered for `io_error_after`.
    fn gave_up(&self, limits: crate::store::wait::WaitLimits) -> FsError {
        let pending = self.pending_for().unwrap_or_default();
        if !self.stalled.swap(true, Ordering::AcqRel) {
            tracing::warn!(
                "object store not answering: a WAL flush has been pending for {:.1}s; calls that \
                 need durability answer NFS3ERR_JUKEBOX (the client retries){} until it returns",
                pending.as_secs_f64(),
                match limits.io_error_after {
                    Some(d) => format!(", and NFS3ERR_IO once it has been away {}s", d.as_secs()),
                    None => String::new(),
                }
            );
        }
        match limits.io_error_after {
            Some(limit) if pending >= limit => FsError::Io(format!(
                "object store unreachable for {}s (storage.io_error_after_ms = {}): the change \
                 is not durable yet; it is kept and written when the store returns",
                pending.as_secs(),
                limit.as_millis()
            )),
            _ => FsError::Unavailable(format!(
                "WAL flush pending for {:.1}s: the change is not durable yet, retry",
                pending.as_secs_f64()
            )),
        }
    }

    /// A flush finished (in its own task, whoever still waits for it).
    fn flushed(&self, covered: u64, result: &Result<(), slatedb::Error>) {
        let pending = self.flush_started.lock().unwrap().take().unwrap_or_else(Instant::now);
        match result {
            Ok(()) => {
                self.durable.fetch_max(covered, Ordering::AcqRel);
                if self.stalled.swap(false, Ordering::AcqRel) {
                    tracing::info!(
                        "object store back: the pending WAL flush completed after {:.1}s",
                        pending.elapsed().as_secs_f64()
                    );
                }
            }
            Err(e) => {
                if matches!(e.kind(), slatedb::ErrorKind::Closed(slatedb::CloseReason::Fenced))
                    && !self.fenced.swap(true, Ordering::AcqRel)
                {
                    crate::metrics::events::count(&crate::metrics::events::FENCED);
                    tracing::error!(
                        "dataset fenced: another server opened it for writing; this server no \
                         longer acknowledges writes to it (NFS3ERR_IO) and its unflushed \
                         changes were never acknowledged; clients must use the new server"
                    );
                }
            }
        }
    }
}
