//! Durability of acknowledged changes. In sync mode every mutating call waits here until its
//! batch is in the object store. One WAL flush runs at a time; callers that arrive while it
//! runs are covered together by the next one (group commit), so concurrent clients share
//! flushes instead of queueing one per write.

use std::sync::atomic::{AtomicU64, Ordering};

use slatedb::Db;
use tokio::sync::Mutex;

use super::error::FsResult;
use crate::config::DurabilityMode;

pub struct Committer {
    mode: DurabilityMode,
    /// Highest sequence number handed back by a write.
    written: AtomicU64,
    /// Highest sequence number known to be durable.
    durable: AtomicU64,
    flush_turn: Mutex<()>,
}

impl Committer {
    pub fn new(mode: DurabilityMode) -> Committer {
        Committer {
            mode,
            written: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            flush_turn: Mutex::new(()),
        }
    }

    pub fn mode(&self) -> DurabilityMode {
        self.mode
    }

    pub fn note_written(&self, seq: u64) {
        self.written.fetch_max(seq, Ordering::AcqRel);
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
        let seq = self.written.load(Ordering::Acquire);
        self.make_durable(db, seq).await
    }

    async fn make_durable(&self, db: &Db, seq: u64) -> FsResult<()> {
        loop {
            if self.durable.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            let _turn = self.flush_turn.lock().await;
            if self.durable.load(Ordering::Acquire) >= seq {
                return Ok(());
            }
            // Everything written up to here is in the WAL buffer this flush writes out.
            let covered = self.written.load(Ordering::Acquire);
            db.flush().await?;
            self.durable.fetch_max(covered, Ordering::AcqRel);
        }
    }
}
