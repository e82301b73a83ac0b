//! Inode numbers are never handed out twice, whatever crashed.
//!
//! An NFS handle names a file by dataset id and inode number. If a number could come back
//! after a crash (a file created in async mode, or whose create never became durable, is lost,
//! and the lost number would be handed out again), an old handle would silently name the new
//! file. So numbers come from a range whose end (`Superblock::ino_ceiling`) is made durable
//! before any number in it is handed out, and a writer that opens the dataset starts at the
//! durable ceiling, above every number any earlier run may have handed out. The cost is one
//! durable superblock write per `RANGE` creates, not one per create; a crash wastes at most
//! `RANGE` numbers of the 2^40.
//!
//! Clones and snapshots carry the superblock of their checkpoint, which was flushed before the
//! checkpoint was taken, so its ceiling covers every number handed out before it; a clone is
//! another dataset id anyway. A dataset whose database is replaced by an older one (rollback)
//! must start above the numbers the replaced database handed out: [`Filesystem::ino_ceiling`]
//! of the old one, passed to [`Filesystem::raise_ino_floor`] of the new one.

use std::sync::atomic::Ordering;

use slatedb::config::WriteOptions;
use slatedb::WriteBatch;

use super::codec::{self, Superblock};
use super::error::{FsError, FsResult};
use super::{Filesystem, MAX_INO};

/// Numbers reserved by one durable superblock write.
pub const RANGE: u64 = 4096;

/// Where a writer that opens a dataset with this superblock starts allocating; nothing is
/// usable until the first reservation of its own is durable.
pub(super) fn resume(sb: &mut Superblock) -> u64 {
    sb.next_ino = sb.next_ino.max(sb.ino_ceiling);
    sb.next_ino
}

impl Filesystem {
    pub(super) async fn alloc_ino(&self) -> FsResult<u64> {
        loop {
            {
                let mut sb = self.counters.lock().await;
                if sb.next_ino > MAX_INO {
                    return Err(FsError::NoSpace);
                }
                if sb.next_ino < self.ino_usable.load(Ordering::Acquire) {
                    let ino = sb.next_ino;
                    sb.next_ino += 1;
                    return Ok(ino);
                }
            }
            self.reserve(0).await?;
        }
    }

    /// The lowest number a database that replaces this one must allocate from: above every
    /// number this one may have handed out, in this run or an earlier one.
    pub async fn ino_ceiling(&self) -> u64 {
        let sb = self.counters.lock().await;
        sb.ino_ceiling.max(sb.next_ino)
    }

    /// Makes this dataset allocate at or above `floor` from now on, durably (a rollback
    /// passes the replaced database's [`Filesystem::ino_ceiling`]).
    pub async fn raise_ino_floor(&self, floor: u64) -> FsResult<()> {
        if floor > MAX_INO + 1 {
            return Err(FsError::Invalid("inode floor beyond the largest inode number"));
        }
        self.reserve(floor).await
    }

    /// Durably moves the ceiling a range above the next number (raised to `floor` first),
    /// then makes the range usable. One reservation runs at a time; callers that queued
    /// behind one that already made room return at once.
    async fn reserve(&self, floor: u64) -> FsResult<()> {
        let _turn = self.ino_reserving.lock().await;
        let db = self.writable()?;
        super::error::check_room(false)?;
        let (seq, ceiling) = {
            let mut sb = self.counters.lock().await;
            let usable = self.ino_usable.load(Ordering::Acquire);
            if sb.next_ino >= floor && sb.next_ino < usable {
                return Ok(());
            }
            let mut next = *sb;
            next.next_ino = next.next_ino.max(floor);
            next.ino_ceiling = (next.next_ino.max(next.ino_ceiling) + RANGE).min(MAX_INO + 1);
            let mut batch = WriteBatch::new();
            batch.put(codec::superblock_key(), next.encode());
            let handle = db.write_with_options(batch, &WriteOptions::default()).await?;
            *sb = next;
            self.committer.note_written(handle.seqnum());
            (handle.seqnum(), next.ino_ceiling)
        };
        // Whatever the durability mode: a number must not be handed out before the ceiling
        // above it is in the store.
        self.committer.make_durable(db, seq).await?;
        self.ino_usable.fetch_max(ceiling, Ordering::AcqRel);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::memory::InMemory;
    use object_store::ObjectStore;

    use super::RANGE;
    use crate::fs::{Caller, Filesystem, FsError, FsOptions, Kind, NewNode, ROOT_INO, MAX_INO};

    async fn open(store: &Arc<dyn ObjectStore>) -> Arc<Filesystem> {
        let db = slatedb::Db::builder("ds", store.clone()).build().await.unwrap();
        Filesystem::open(db, FsOptions::default()).await.unwrap()
    }

    async fn create(fs: &Filesystem, name: &str) -> u64 {
        let node = NewNode::new(Kind::File, 0o644);
        fs.create(&Caller::root(), ROOT_INO, name.as_bytes(), node).await.unwrap().ino
    }

    #[tokio::test]
    async fn a_restart_allocates_above_the_reserved_range_and_a_floor_holds() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let fs = open(&store).await;
        assert_eq!(create(&fs, "a").await, 2);
        assert_eq!(create(&fs, "b").await, 3);
        assert_eq!(fs.ino_ceiling().await, 2 + RANGE, "one reservation covers the next creates");
        fs.close().await.unwrap();

        let fs = open(&store).await;
        assert_eq!(create(&fs, "c").await, 2 + RANGE, "a new run starts at the durable ceiling");
        fs.raise_ino_floor(1_000_000).await.unwrap();
        assert_eq!(create(&fs, "d").await, 1_000_000);
        fs.raise_ino_floor(10).await.unwrap();
        assert_eq!(create(&fs, "e").await, 1_000_001, "a lower floor changes nothing");
        assert_eq!(
            fs.raise_ino_floor(MAX_INO + 2).await,
            Err(FsError::Invalid("inode floor beyond the largest inode number"))
        );
        fs.close().await.unwrap();

        let fs = open(&store).await;
        assert_eq!(create(&fs, "f").await, 1_000_000 + RANGE, "the floor was durable");
        fs.close().await.unwrap();
    }
}
