//! The filesystem engine over one dataset database: inodes, directories and chunked file data
//! in SlateDB. No NFS and no CSI here; callers pass inode numbers and a `Caller`.
//!
//! Concurrency: namespace changes (create, link, unlink, rename) take one namespace lock;
//! attribute changes (setattr, truncate, link counts) take the inode's stripe lock exclusively.
//! A WRITE takes the stripe shared and then locks only the chunks it touches, so writes to
//! different chunks of one file read and rebuild their chunks at the same time; the inode's
//! attribute lock then covers just the merge of size, mtime and stored bytes into the inode
//! and the batch. Every batch is applied under the counters lock, which keeps the superblock's
//! usage figures in step with the data. Durability waits happen after all locks are released,
//! so concurrent callers share WAL flushes.

mod attr;
mod backend;
mod changes;
pub mod codec;
mod commit;
mod data;
pub mod error;
mod ino_alloc;
mod inode_cache;
mod namespace;
mod readahead;
pub mod perm;

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use slatedb::config::WriteOptions;
use slatedb::{Db, DbReader, WriteBatch};

use changes::Changes;
/// Inode numbers one durable superblock write reserves (tests make more files than this).
pub use ino_alloc::RANGE as INO_RANGE;
use inode_cache::InodeCache;
use tokio::sync::{Mutex, MutexGuard, Notify, RwLock};

pub use backend::Backend;
pub use codec::{Inode, Kind, Time};
pub use error::{FsError, FsResult};
pub use namespace::{DirEntry, NewNode, RenameOutcome};
pub use perm::Caller;
pub use attr::{SetAttr, SetTime};
pub use commit::Health;

use crate::config::DurabilityMode;
use codec::Superblock;

pub const ROOT_INO: u64 = 1;
/// Inode numbers stay below 2^40 so the NFS layer can put a dataset id beside them in a
/// fileid; the very last one is reserved for the NFS layer's `.snapshots` directory.
pub const MAX_INO: u64 = (1 << 40) - 2;
pub const RESERVED_INO: u64 = (1 << 40) - 1;
pub const DEFAULT_CHUNK_SIZE: u32 = 32 * 1024;
/// The largest READ or WRITE the engine takes in one call.
pub const MAX_IO_SIZE: usize = 1024 * 1024;
/// 16 TiB: the largest file.
pub const MAX_FILE_SIZE: u64 = 1 << 44;
pub const MAX_NAME_LEN: usize = 255;
pub const MAX_SYMLINK_LEN: usize = 4096;
const LOCK_STRIPES: usize = 256;
/// Chunk locks, shared by hashing (inode, chunk index): a 1 MiB WRITE of 32 KiB chunks takes
/// 32 of them, and writes to different chunks rarely meet on one.
const CHUNK_LOCK_STRIPES: usize = 1024;

#[derive(Debug, Clone)]
pub struct FsOptions {
    pub durability: DurabilityMode,
    /// Chunk size for a new dataset; an existing one keeps the size it was formatted with.
    pub chunk_size: u32,
    /// Bytes of file data the dataset may hold; `None` for no limit.
    pub quota: Option<u64>,
    /// Layout of a new dataset (`codec::DATA_*`); an existing one keeps its own.
    pub data_format: u8,
}

impl Default for FsOptions {
    fn default() -> Self {
        FsOptions {
            durability: DurabilityMode::Sync,
            chunk_size: DEFAULT_CHUNK_SIZE,
            quota: None,
            data_format: codec::DATA_WHOLE_CHUNKS,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Usage {
    pub bytes: u64,
    pub inodes: u64,
}

pub struct Filesystem {
    backend: Backend,
    committer: commit::Committer,
    chunk_size: u64,
    /// `codec::DATA_*`: how chunk values are laid out.
    data_format: u8,
    counters: Mutex<Superblock>,
    inodes: InodeCache,
    namespace: Mutex<()>,
    stripes: Vec<RwLock<()>>,
    chunk_locks: Vec<Mutex<()>>,
    /// Held by a WRITE from re-reading the inode to applying its batch.
    attr_locks: Vec<Mutex<()>>,
    /// 0 means no quota.
    quota: AtomicU64,
    purge_wake: Arc<Notify>,
    closed: AtomicBool,
    /// Numbers below this have a durable ceiling above them and may be handed out
    /// (`ino_alloc`).
    ino_usable: AtomicU64,
    ino_reserving: Mutex<()>,
    /// File data written since this process last flushed the memtable (an over-estimate of
    /// what a memtable flush writes, up to SlateDB's 64 MiB memtable).
    memtable_estimate: AtomicU64,
    readahead: readahead::ReadAhead,
}

/// What a batch changes in the dataset's usage figures.
#[derive(Debug, Default, Clone, Copy)]
struct Delta {
    bytes: i64,
    inodes: i64,
    /// The change releases space even though the figures may not move (removing one of
    /// several links): it is written while the store's room is low (`error::check_room`).
    frees: bool,
}

impl Filesystem {
    /// Opens a dataset's database for writing, formatting it when it is new.
    pub async fn open(db: Db, opts: FsOptions) -> FsResult<Arc<Filesystem>> {
        let mut sb = match db.get(codec::superblock_key()).await? {
            Some(v) => Superblock::decode(&v)?,
            None => format(&db, opts.chunk_size, opts.data_format).await?,
        };
        // Patches are readable only through a store that registered the patch operator, which
        // `[storage] dataset_format = 2` does (store::patch_operator).
        if sb.format == codec::DATA_PATCHABLE && opts.data_format != codec::DATA_PATCHABLE {
            return Err(FsError::Io(
                "the dataset is in format 2 (small writes stored as patches): set [storage] \
                 dataset_format = 2 on this server to open it"
                    .into(),
            ));
        }
        let usable = ino_alloc::resume(&mut sb);
        let fs = Arc::new(Filesystem::build(Backend::Writer(db), opts.durability, sb));
        fs.ino_usable.store(usable, Ordering::Release);
        fs.set_quota(opts.quota);
        tokio::spawn(purge_orphans(Arc::downgrade(&fs)));
        Ok(fs)
    }

    /// Opens a read-only snapshot (a reader pinned to a checkpoint).
    pub async fn open_snapshot(reader: DbReader) -> FsResult<Arc<Filesystem>> {
        let sb = match reader.get(codec::superblock_key()).await? {
            Some(v) => Superblock::decode(&v)?,
            None => return Err(FsError::Io("snapshot holds no filesystem".into())),
        };
        Ok(Arc::new(Filesystem::build(Backend::Snapshot(Arc::new(reader)), DurabilityMode::Sync, sb)))
    }

    fn build(backend: Backend, mode: DurabilityMode, sb: Superblock) -> Filesystem {
        Filesystem {
            backend,
            committer: commit::Committer::new(mode),
            chunk_size: sb.chunk_size as u64,
            data_format: sb.format,
            counters: Mutex::new(sb),
            inodes: InodeCache::new(),
            namespace: Mutex::new(()),
            stripes: (0..LOCK_STRIPES).map(|_| RwLock::new(())).collect(),
            chunk_locks: (0..CHUNK_LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            attr_locks: (0..LOCK_STRIPES).map(|_| Mutex::new(())).collect(),
            quota: AtomicU64::new(0),
            purge_wake: Arc::new(Notify::new()),
            memtable_estimate: AtomicU64::new(0),
            readahead: readahead::ReadAhead::default(),
            closed: AtomicBool::new(false),
            ino_usable: AtomicU64::new(0),
            ino_reserving: Mutex::new(()),
        }
    }

    /// Whether another process opened this dataset for writing after us (SlateDB fencing):
    /// from then on our writes fail, and reads see the state of the takeover.
    pub fn is_fenced(&self) -> bool {
        match &self.backend {
            Backend::Writer(db) => {
                matches!(db.status().close_reason, Some(slatedb::CloseReason::Fenced))
            }
            Backend::Snapshot(_) => false,
        }
    }

    /// For health reports (DatasetStats, the CSI volume condition): fenced, or the store has
    /// not answered a WAL flush for a while. Knows of a fencing only once a write or
    /// [`Filesystem::check_fenced`] met it.
    pub fn health(&self) -> Health {
        if self.is_fenced() {
            return Health::Fenced;
        }
        self.committer.health()
    }

    /// Like [`Filesystem::is_fenced`], after reading the latest manifest: a writer learns it
    /// was fenced only when it writes or polls, and an admin operation must not find out
    /// half-way through.
    pub async fn check_fenced(&self) -> bool {
        if let Backend::Writer(db) = &self.backend {
            if let Err(e) = db.refresh_manifest().await {
                if FsError::from(e) == FsError::Fenced {
                    return true;
                }
            }
        }
        self.is_fenced()
    }

    pub fn is_read_only(&self) -> bool {
        matches!(self.backend, Backend::Snapshot(_))
    }

    pub fn durability(&self) -> DurabilityMode {
        self.committer.mode()
    }

    pub fn chunk_size(&self) -> u64 {
        self.chunk_size
    }

    /// `codec::DATA_*`: the layout the dataset was made in.
    pub fn data_format(&self) -> u8 {
        self.data_format
    }

    pub fn set_quota(&self, quota: Option<u64>) {
        self.quota.store(quota.unwrap_or(0), Ordering::Release);
    }

    pub fn quota(&self) -> Option<u64> {
        match self.quota.load(Ordering::Acquire) {
            0 => None,
            q => Some(q),
        }
    }

    pub async fn usage(&self) -> Usage {
        let sb = self.counters.lock().await;
        Usage { bytes: sb.used_bytes, inodes: sb.used_inodes }
    }

    /// A number that grows with every write to the dataset and survives restarts (SlateDB's
    /// sequence numbers): equal readings mean nothing was written in between. Snapshot
    /// policies skip a snapshot of an unchanged dataset by it. 0 for a read-only snapshot.
    pub fn change_seq(&self) -> u64 {
        match &self.backend {
            Backend::Writer(db) => db.status().durable_seq.max(self.committer.last_written()),
            Backend::Snapshot(_) => 0,
        }
    }

    /// The underlying database, for snapshots (checkpoints) taken by the catalog.
    pub fn db(&self) -> FsResult<&Db> {
        self.backend.writer()
    }

    /// Makes every change so far durable, whatever the durability mode (NFS COMMIT).
    pub async fn flush(&self) -> FsResult<()> {
        match &self.backend {
            Backend::Writer(db) => self.committer.flush_all(db).await,
            Backend::Snapshot(_) => Ok(()),
        }
    }

    /// Writes the memtable into an L0 table, so that the WAL objects before it (and what they
    /// hold of removed files) may be collected.
    async fn flush_memtable(&self) -> FsResult<()> {
        let db = self.backend.writer()?;
        let opts = slatedb::config::FlushOptions { flush_type: slatedb::config::FlushType::MemTable };
        db.flush_with_options(opts).await?;
        Ok(())
    }

    /// Takes a named checkpoint holding everything written before the call.
    pub async fn checkpoint(&self, name: &str) -> FsResult<uuid::Uuid> {
        let db = self.backend.writer()?;
        self.flush().await?;
        Ok(crate::store::Store::checkpoint(db, name).await?)
    }

    /// Flushes and closes the database; later calls fail.
    pub async fn close(&self) -> FsResult<()> {
        if self.closed.swap(true, Ordering::AcqRel) {
            return Ok(());
        }
        self.purge_wake.notify_one();
        self.flush().await?;
        self.backend.close().await
    }

    fn stripe(&self, ino: u64) -> &RwLock<()> {
        &self.stripes[(ino as usize) % LOCK_STRIPES]
    }

    fn attr_lock(&self, ino: u64) -> &Mutex<()> {
        &self.attr_locks[(ino as usize) % LOCK_STRIPES]
    }

    /// Locks chunks `first..=last` of `ino`, in stripe order so that two writes never wait
    /// for each other's locks crosswise.
    async fn lock_chunks(&self, ino: u64, first: u64, last: u64) -> Vec<MutexGuard<'_, ()>> {
        let base = ino.wrapping_mul(0x9E37_79B9_7F4A_7C15);
        let mut stripes: Vec<usize> = (first..=last)
            .map(|index| (base.wrapping_add(index) % CHUNK_LOCK_STRIPES as u64) as usize)
            .collect();
        stripes.sort_unstable();
        stripes.dedup();
        let mut guards = Vec::with_capacity(stripes.len());
        for stripe in stripes {
            guards.push(self.chunk_locks[stripe].lock().await);
        }
        guards
    }

    fn writable(&self) -> FsResult<&Db> {
        if self.closed.load(Ordering::Acquire) {
            return Err(FsError::Io("dataset is closed".into()));
        }
        self.backend.writer()
    }

    pub(crate) async fn load(&self, ino: u64) -> FsResult<Inode> {
        if ino == 0 || ino > MAX_INO {
            return Err(FsError::Stale);
        }
        let ticket = match self.inodes.get(ino) {
            Ok(inode) => return Ok(inode),
            Err(ticket) => ticket,
        };
        match self.backend.get(&codec::inode_key(ino)).await? {
            Some(v) => {
                let inode = Inode::decode(ino, &v)?;
                self.inodes.fill(ticket, &inode);
                Ok(inode)
            }
            None => Err(FsError::Stale),
        }
    }

    /// Applies a batch atomically together with the usage figures it changes, refusing it
    /// whole when it would take the dataset past its quota. Returns the batch's sequence
    /// number for [`Filesystem::settle`], which the caller awaits after releasing its locks so
    /// that concurrent callers share WAL flushes.
    async fn commit(&self, changes: Changes, delta: Delta) -> FsResult<u64> {
        let Changes { mut batch, inodes } = changes;
        let db = self.writable()?;
        error::check_room(delta.frees || delta.bytes < 0 || delta.inodes < 0)?;
        let mut sb = self.counters.lock().await;
        let mut next = *sb;
        next.used_bytes = apply(sb.used_bytes, delta.bytes);
        next.used_inodes = apply(sb.used_inodes, delta.inodes);
        if let Some(quota) = self.quota() {
            if delta.bytes > 0 && next.used_bytes > quota {
                return Err(FsError::NoSpace);
            }
        }
        batch.put(codec::superblock_key(), next.encode());
        let handle = db.write_with_options(batch, &WriteOptions::default()).await?;
        *sb = next;
        self.inodes.apply(&inodes);
        self.committer.note_written(handle.seqnum());
        Ok(handle.seqnum())
    }

    /// Waits until the batch `seq` is as durable as the durability mode promises: the reply
    /// to the client may go once this returns.
    async fn settle(&self, seq: u64) -> FsResult<()> {
        self.committer.settle(self.writable()?, seq).await
    }
}

fn apply(v: u64, delta: i64) -> u64 {
    if delta >= 0 {
        v.saturating_add(delta as u64)
    } else {
        v.saturating_sub(delta.unsigned_abs())
    }
}

async fn format(db: &Db, chunk_size: u32, data_format: u8) -> FsResult<Superblock> {
    let now = Time::now();
    let root = Inode {
        ino: ROOT_INO,
        kind: Kind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        nlink: 2,
        size: 0,
        atime: now,
        mtime: now,
        ctime: now,
        rdev: (0, 0),
        stored: 0,
        parent: ROOT_INO,
        next_cookie: codec::FIRST_ENTRY_COOKIE,
        symlink: Vec::new(),
    };
    let sb = Superblock {
        format: data_format,
        chunk_size,
        next_ino: ROOT_INO + 1,
        used_bytes: 0,
        used_inodes: 1,
        ino_ceiling: ROOT_INO + 1,
    };
    let mut batch = WriteBatch::new();
    batch.put(codec::inode_key(ROOT_INO), root.encode());
    batch.put(codec::superblock_key(), sb.encode());
    db.write(batch).await?;
    db.flush().await?;
    Ok(sb)
}

/// Removed data the purge lets stay in the WAL before it flushes the memtable. Until the
/// memtable is flushed (SlateDB does it at 64 MiB of writes), the WAL objects that hold the
/// removed chunks are still needed for recovery, so collection cannot delete them: without
/// this, a full store stayed full after its files were removed, and an open dataset kept up
/// to 64 MiB of deleted data. The flush writes one L0 table of what the memtable holds.
const PURGED_BYTES_BEFORE_FLUSH: u64 = 4 << 20;
/// The largest memtable a dataset has (`store::limit_write_buffer` caps `l0_sst_size_bytes`
/// at 64 MiB): SlateDB flushes by itself at that size, so a flush never writes more.
const MEMTABLE_BYTES: u64 = 64 << 20;

/// Deletes the chunks of unlinked files in the background, so that removing a large file is
/// as quick as removing an empty one. Orphan records survive a crash and are resumed.
async fn purge_orphans(fs: Weak<Filesystem>) {
    let mut purged_since_flush = 0u64;
    loop {
        let Some(strong) = fs.upgrade() else { return };
        if strong.closed.load(Ordering::Acquire) {
            return;
        }
        match purge_once(&strong).await {
            Ok(Some(chunks)) => {
                tracing::debug!("purged {chunks} chunks of removed files");
                purged_since_flush += chunks * strong.chunk_size;
                continue;
            }
            Ok(None) if purged_since_flush >= PURGED_BYTES_BEFORE_FLUSH => {
                // The flush writes what is still live in the memtable: on a full local disk it
                // waits until the removes have made that small enough to fit in what is free
                // (a write SlateDB cannot finish is retried for ever).
                let written = strong.memtable_estimate.load(Ordering::Relaxed).min(MEMTABLE_BYTES);
                let live = written.saturating_sub(purged_since_flush);
                if crate::store::space::fits(live) {
                    match strong.flush_memtable().await {
                        Ok(()) => {
                            tracing::debug!("flushed the memtable after purging {purged_since_flush} bytes of removed files");
                            purged_since_flush = 0;
                            strong.memtable_estimate.store(0, Ordering::Relaxed);
                        }
                        Err(e) => tracing::warn!("flushing the memtable after a purge: {e}"),
                    }
                }
            }
            Ok(None) => {}
            Err(e) => tracing::warn!("orphan purge: {e}"),
        }
        let wake = strong.purge_wake.clone();
        drop(strong);
        let _ = tokio::time::timeout(Duration::from_secs(10), wake.notified()).await;
    }
}

/// Purges up to a batch of chunks; returns how many were deleted, `None` when no work is left.
async fn purge_once(fs: &Filesystem) -> FsResult<Option<u64>> {
    let Backend::Writer(db) = &fs.backend else { return Ok(None) };
    let orphans = fs.backend.scan(backend::prefix_range(b"O"), 16).await?;
    if orphans.is_empty() {
        return Ok(None);
    }
    let mut deleted = 0;
    for (key, _) in orphans {
        let ino = codec::orphan_ino(&key);
        let mut prefix = vec![b'C'];
        prefix.extend_from_slice(&ino.to_be_bytes());
        let chunks = fs.backend.scan(backend::prefix_range(&prefix), 1024).await?;
        let mut batch = WriteBatch::new();
        for (k, _) in &chunks {
            batch.delete(k);
        }
        if chunks.len() < 1024 {
            batch.delete(&key);
        }
        let handle = db.write(batch).await?;
        fs.committer.note_written(handle.seqnum());
        deleted += chunks.len() as u64;
    }
    Ok(Some(deleted))
}
