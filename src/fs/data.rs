//! File data: fixed-size chunks keyed by (inode, chunk index). A missing chunk is a hole and
//! reads as zeros; a chunk that would hold only zeros is deleted instead of stored. In a
//! dataset of format 2 a write of at most half a chunk merges a patch into the chunk instead of
//! putting the whole rebuilt chunk (`store::patch`): the old chunk is still read, for the
//! stored-bytes figure and the all-zeros rule, but the WAL, the L0 tables and every
//! compaction until the next full merge carry the written bytes, not the chunk.

use std::collections::HashMap;

use bytes::Bytes;
use super::changes::Changes;
use crate::store::patch;

use super::codec::{self, Inode, Kind, Time, DATA_PATCHABLE};
use super::error::{FsError, FsResult};
use super::perm::{self, Caller, READ, WRITE};
use super::readahead;
use super::{Delta, Filesystem, MAX_FILE_SIZE, MAX_IO_SIZE};

impl Filesystem {
    /// Reads up to `count` bytes at `offset`; returns the bytes and whether they reach EOF.
    pub async fn read(
        &self,
        caller: &Caller,
        ino: u64,
        offset: u64,
        count: u32,
    ) -> FsResult<(Vec<u8>, bool)> {
        let inode = self.load(ino).await?;
        match inode.kind {
            Kind::File => {}
            Kind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("not a regular file")),
        }
        perm::check_data(caller, &inode, READ)?;
        let count = (count as usize).min(MAX_IO_SIZE) as u64;
        if offset >= inode.size || count == 0 {
            return Ok((Vec::new(), offset >= inode.size));
        }
        let end = (offset + count).min(inode.size);
        let mut out = vec![0u8; (end - offset) as usize];
        let cs = self.chunk_size;
        let first = offset / cs;
        let last = (end - 1) / cs;
        for (index, value) in self.stored_chunks(ino, first, last + 1).await? {
            let chunk_start = index * cs;
            // The overlap of this chunk's stored bytes with [offset, end).
            let lo = offset.max(chunk_start);
            let hi = end.min(chunk_start + value.len() as u64);
            if lo < hi {
                out[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&value[(lo - chunk_start) as usize..(hi - chunk_start) as usize]);
            }
        }
        self.read_ahead(ino, offset, end, inode.size);
        Ok((out, end >= inode.size))
    }

    /// Starts fetching the chunks after a sequential stream's READ into the block cache.
    fn read_ahead(&self, ino: u64, offset: u64, end: u64, size: u64) {
        let Some(range) = self.readahead.after_read(ino, offset, end, size) else { return };
        let Some(permit) = self.readahead.try_start() else { return };
        let backend = self.backend.clone();
        let cs = self.chunk_size;
        tokio::spawn(async move {
            let _permit = permit;
            let mut at = range.start;
            while at < range.end {
                let to = (at + readahead::FETCH_PIECE).min(range.end);
                let (first, last) = (at / cs, to.div_ceil(cs));
                let keys = codec::chunk_key(ino, first).to_vec()..codec::chunk_key(ino, last).to_vec();
                // Only the cache is wanted: a failed fetch leaves the READ to fetch it.
                if backend.scan_data(keys, (last - first) as usize, (to - at) as usize).await.is_err() {
                    return;
                }
                at = to;
            }
        });
    }

    /// Writes `data` at `offset`, extending the file (sparsely) when it ends past EOF.
    pub async fn write(
        &self,
        caller: &Caller,
        ino: u64,
        offset: u64,
        data: &[u8],
    ) -> FsResult<Inode> {
        self.writable()?;
        if data.len() > MAX_IO_SIZE {
            return Err(FsError::Invalid("write larger than the server's maximum"));
        }
        let end = offset.checked_add(data.len() as u64).ok_or(FsError::TooBig)?;
        if end > MAX_FILE_SIZE {
            return Err(FsError::TooBig);
        }
        // Truncation and attribute changes hold the stripe exclusively; writes share it and
        // exclude each other only on the chunks they touch.
        let shared = self.stripe(ino).read().await;
        let chunks = match data.is_empty() {
            true => Vec::new(),
            false => self.lock_chunks(ino, offset / self.chunk_size, (end - 1) / self.chunk_size).await,
        };
        // Read after the chunk locks: a write that made one of these chunks has already put
        // the size that covers it into the inode.
        let inode = self.load(ino).await?;
        match inode.kind {
            Kind::File => {}
            Kind::Dir => return Err(FsError::IsDir),
            _ => return Err(FsError::Invalid("not a regular file")),
        }
        perm::check_data(caller, &inode, WRITE)?;
        let mut batch = Changes::new();
        let mut delta = 0i64;
        if !data.is_empty() {
            delta = self.write_chunks(&mut batch, &inode, offset, data).await?;
        }
        // Other writes of this file may have changed its size and stored bytes meanwhile.
        let attr = self.attr_lock(ino).lock().await;
        let mut inode = self.load(ino).await?;
        let now = Time::now();
        inode.size = inode.size.max(end);
        inode.stored = (inode.stored as i64 + delta).max(0) as u64;
        inode.mtime = now;
        inode.ctime = now;
        if !caller.is_root() {
            // A write by anyone but root drops setuid and setgid-with-group-exec, as Linux does.
            inode.mode &= !0o4000;
            if inode.mode & 0o010 != 0 {
                inode.mode &= !0o2000;
            }
        }
        batch.put_inode(&inode);
        let seq = self.commit(batch, Delta { bytes: delta, ..Delta::default() }).await?;
        // The chunks the write touched went into the memtable whole or as patches (one more
        // chunk at most).
        self.memtable_estimate.fetch_add(data.len() as u64 + self.chunk_size, std::sync::atomic::Ordering::Relaxed);
        drop((attr, chunks, shared));
        self.settle(seq).await?;
        Ok(inode)
    }

    /// Puts the new chunks into `batch` and returns the change in stored bytes.
    async fn write_chunks(
        &self,
        batch: &mut Changes,
        inode: &Inode,
        offset: u64,
        data: &[u8],
    ) -> FsResult<i64> {
        let cs = self.chunk_size;
        let end = offset + data.len() as u64;
        let first = offset / cs;
        let last = (end - 1) / cs;
        // Only chunks below the old EOF can exist; fetch those the write touches.
        let existing_end = inode.size.div_ceil(cs).min(last + 1);
        let mut old: HashMap<u64, Bytes> = HashMap::new();
        if first < existing_end {
            old.extend(self.stored_chunks(inode.ino, first, existing_end).await?);
        }
        let mut delta = 0i64;
        for index in first..=last {
            let chunk_start = index * cs;
            let lo = offset.max(chunk_start);
            let hi = end.min(chunk_start + cs);
            let piece = &data[(lo - offset) as usize..(hi - offset) as usize];
            let prev = old.remove(&index);
            let prev_len = prev.as_ref().map_or(0, |p| p.len());
            let in_chunk = (lo - chunk_start) as usize;
            let new_len = prev_len.max(in_chunk + piece.len());
            let mut chunk = Vec::with_capacity(new_len);
            if let Some(p) = &prev {
                chunk.extend_from_slice(p);
            }
            chunk.resize(new_len, 0);
            chunk[in_chunk..in_chunk + piece.len()].copy_from_slice(piece);
            let key = codec::chunk_key(inode.ino, index);
            if chunk.iter().all(|&b| b == 0) {
                if prev.is_some() {
                    batch.delete(key);
                }
                delta -= prev_len as i64;
            } else {
                delta += chunk.len() as i64 - prev_len as i64;
                if self.data_format == DATA_PATCHABLE && piece.len() as u64 * 2 <= cs {
                    batch.merge(key, patch::patch(in_chunk as u32, piece));
                } else {
                    batch.put(key, self.chunk_value(chunk));
                }
            }
        }
        Ok(delta)
    }

    /// The stored chunks of `ino` with indexes in `first..end`, as (index, bytes). One chunk
    /// (every 4 KiB random I/O) is a point read: a SlateDB get uses the bloom filters and is
    /// several times cheaper than opening a scan.
    async fn stored_chunks(&self, ino: u64, first: u64, end: u64) -> FsResult<Vec<(u64, Bytes)>> {
        if end == first + 1 {
            let got = self.backend.get(&codec::chunk_key(ino, first)).await?;
            return got.map(|v| Ok((first, self.chunk_bytes(v)?))).into_iter().collect();
        }
        let rows = self
            .backend
            .scan_data(
                codec::chunk_key(ino, first).to_vec()..codec::chunk_key(ino, end).to_vec(),
                (end - first) as usize,
                ((end - first) * self.chunk_size) as usize,
            )
            .await?;
        rows.into_iter().map(|(k, v)| Ok((codec::chunk_index_of(&k), self.chunk_bytes(v)?))).collect()
    }

    /// What a stored chunk value holds.
    fn chunk_bytes(&self, value: Bytes) -> FsResult<Bytes> {
        match self.data_format {
            DATA_PATCHABLE => patch::resolve(&value).map_err(|e| FsError::Io(format!("corrupt file data: {e}"))),
            _ => Ok(value),
        }
    }

    /// The value that stores `chunk` whole.
    fn chunk_value(&self, chunk: Vec<u8>) -> Bytes {
        match self.data_format {
            DATA_PATCHABLE => patch::whole(&chunk),
            _ => chunk.into(),
        }
    }

    /// Shrinks or extends a file's data to `size` into `batch`; returns the change in stored
    /// bytes. The caller holds the inode's stripe lock and writes the inode.
    pub(super) async fn resize(
        &self,
        batch: &mut Changes,
        inode: &mut Inode,
        size: u64,
    ) -> FsResult<i64> {
        if size > MAX_FILE_SIZE {
            return Err(FsError::TooBig);
        }
        let mut delta = 0i64;
        if size < inode.size {
            let cs = self.chunk_size;
            let keep_chunks = size.div_ceil(cs);
            let old_chunks = inode.size.div_ceil(cs);
            let rows = self
                .backend
                .scan(
                    codec::chunk_key(inode.ino, keep_chunks.saturating_sub(1)).to_vec()
                        ..codec::chunk_key(inode.ino, old_chunks).to_vec(),
                    usize::MAX,
                )
                .await?;
            for (key, value) in rows {
                let value = self.chunk_bytes(value)?;
                let index = codec::chunk_index_of(&key);
                let chunk_start = index * cs;
                if chunk_start >= size {
                    batch.delete(key.as_ref());
                    delta -= value.len() as i64;
                } else if chunk_start + value.len() as u64 > size {
                    let kept = &value[..(size - chunk_start) as usize];
                    delta -= (value.len() - kept.len()) as i64;
                    if kept.iter().all(|&b| b == 0) {
                        batch.delete(key.as_ref());
                        delta -= kept.len() as i64;
                    } else {
                        batch.put(key.as_ref(), self.chunk_value(kept.to_vec()));
                    }
                }
            }
        }
        inode.size = size;
        inode.stored = (inode.stored as i64 + delta).max(0) as u64;
        Ok(delta)
    }
}
