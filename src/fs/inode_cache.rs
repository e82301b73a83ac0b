//! Recently used inodes, so that LOOKUP, GETATTR, ACCESS and the attributes every NFS reply
//! carries do not each cost a SlateDB read (a SlateDB get walks the memtables, the L0 tables
//! and the sorted runs; a LOOKUP used to cost four of them).
//!
//! Coherence: every change to an inode goes through `Filesystem::commit`, which applies it
//! here right after the batch is written, under the counters lock, so the cache sees changes
//! in the database's own order. A read that missed fills the cache only when no change touched
//! the inode's shard since the read began (a per-shard generation), so a slow read can never
//! put back a value older than one a writer already installed.

use std::collections::HashMap;
use std::sync::Mutex;

use super::codec::Inode;

const SHARDS: usize = 64;
/// Per shard: 64 × 512 = 32768 inodes, a few MiB per busy dataset and nothing for an idle one.
const PER_SHARD: usize = 512;

pub struct InodeCache {
    shards: Vec<Mutex<Shard>>,
}

#[derive(Default)]
struct Shard {
    generation: u64,
    inodes: HashMap<u64, Inode>,
}

/// Where a read that missed the cache started, for [`InodeCache::fill`].
#[derive(Clone, Copy)]
pub struct Ticket {
    generation: u64,
}

impl InodeCache {
    pub fn new() -> InodeCache {
        InodeCache { shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect() }
    }

    fn shard(&self, ino: u64) -> std::sync::MutexGuard<'_, Shard> {
        self.shards[(ino as usize) % SHARDS].lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The cached inode, or a ticket to fill the cache with what the database answers.
    pub fn get(&self, ino: u64) -> Result<Inode, Ticket> {
        let shard = self.shard(ino);
        match shard.inodes.get(&ino) {
            Some(inode) => Ok(inode.clone()),
            None => Err(Ticket { generation: shard.generation }),
        }
    }

    /// Caches what the database answered, unless a change reached the shard meanwhile.
    pub fn fill(&self, ticket: Ticket, inode: &Inode) {
        let mut shard = self.shard(inode.ino);
        if shard.generation == ticket.generation {
            shard.insert(inode.clone());
        }
    }

    /// Installs the inodes a committed batch wrote (`Some`) or deleted (`None`).
    pub fn apply(&self, changes: &[(u64, Option<Inode>)]) {
        for (ino, inode) in changes {
            let mut shard = self.shard(*ino);
            shard.generation += 1;
            match inode {
                Some(inode) => shard.insert(inode.clone()),
                None => {
                    shard.inodes.remove(ino);
                }
            }
        }
    }
}

impl Shard {
    fn insert(&mut self, inode: Inode) {
        if self.inodes.len() >= PER_SHARD && !self.inodes.contains_key(&inode.ino) {
            // HashMap order is randomised per process, so this drops an arbitrary entry:
            // random eviction, with no bookkeeping on the hit path.
            if let Some(victim) = self.inodes.keys().next().copied() {
                self.inodes.remove(&victim);
            }
        }
        self.inodes.insert(inode.ino, inode);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::codec::{Kind, Time};

    fn inode(ino: u64, size: u64) -> Inode {
        Inode {
            ino,
            kind: Kind::File,
            mode: 0o644,
            uid: 0,
            gid: 0,
            nlink: 1,
            size,
            atime: Time::now(),
            mtime: Time::now(),
            ctime: Time::now(),
            rdev: (0, 0),
            stored: 0,
            parent: 1,
            next_cookie: 0,
            symlink: Vec::new(),
        }
    }

    #[test]
    fn a_read_that_raced_a_change_does_not_put_back_the_old_value() {
        let cache = InodeCache::new();
        let ticket = cache.get(7).unwrap_err();
        // A writer commits size 10 while the reader's database read (size 0) is in flight.
        cache.apply(&[(7, Some(inode(7, 10)))]);
        cache.fill(ticket, &inode(7, 0));
        assert_eq!(cache.get(7).map(|i| i.size).ok(), Some(10));
    }

    #[test]
    fn a_deleted_inode_is_not_refilled_by_a_stale_read() {
        let cache = InodeCache::new();
        cache.apply(&[(9, Some(inode(9, 1)))]);
        cache.apply(&[(9, None)]);
        let ticket = cache.get(9).unwrap_err();
        cache.apply(&[(9 + SHARDS as u64, None)]);
        cache.fill(ticket, &inode(9, 1));
        assert!(cache.get(9).is_err());
    }

    #[test]
    fn the_cache_stays_bounded() {
        let cache = InodeCache::new();
        for ino in 1..=(SHARDS * PER_SHARD * 3) as u64 {
            let ticket = cache.get(ino).unwrap_err();
            cache.fill(ticket, &inode(ino, 0));
        }
        let held: usize = cache.shards.iter().map(|s| s.lock().unwrap().inodes.len()).sum();
        assert_eq!(held, SHARDS * PER_SHARD);
    }
}
