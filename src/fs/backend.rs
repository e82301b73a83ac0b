//! The database under a filesystem: a writable `Db` for a dataset, or a `DbReader` pinned to a
//! checkpoint for a read-only snapshot. Reads go through here; writes only exist on `Db`.
//! Reads wait for an unreachable object store only as long as `store::wait` allows.

use std::ops::Range;
use std::sync::Arc;

use bytes::Bytes;
use slatedb::config::ScanOptions;
use slatedb::{Db, DbReader};

use super::error::{FsError, FsResult};
use crate::store::wait::bounded_read;

/// Concurrent block fetches of one file-data scan: a 1 MiB READ spread over several SSTs (L0
/// tables and sorted runs) fetches from them at once instead of one after another.
const DATA_FETCH_TASKS: usize = 4;

/// Cheap to clone (both kinds are handles on shared state), so read-ahead can run beside the
/// READ that started it.
#[derive(Clone)]
pub enum Backend {
    Writer(Db),
    Snapshot(Arc<DbReader>),
}

impl Backend {
    pub async fn get(&self, key: &[u8]) -> FsResult<Option<Bytes>> {
        bounded_read(async {
            Ok(match self {
                Backend::Writer(db) => db.get(key).await?,
                Backend::Snapshot(r) => r.get(key).await?,
            })
        })
        .await
    }

    /// All key/values in `range`, up to `limit` of them, in key order.
    pub async fn scan(
        &self,
        range: Range<Vec<u8>>,
        limit: usize,
    ) -> FsResult<Vec<(Bytes, Bytes)>> {
        bounded_read(async {
            let mut iter = match self {
                Backend::Writer(db) => db.scan(range).await?,
                Backend::Snapshot(r) => r.scan(range).await?,
            };
            let mut out = Vec::new();
            while out.len() < limit {
                match iter.next().await? {
                    Some(kv) => out.push((kv.key, kv.value)),
                    None => break,
                }
            }
            Ok(out)
        })
        .await
    }

    /// Like [`Backend::scan`] for file data expected to span about `bytes`: each SST holding
    /// part of the range is read with one ranged request (SlateDB's default fetches one 4 KiB
    /// block per request, 30 and more round trips for a 1 MiB READ), with blocks cached.
    pub async fn scan_data(
        &self,
        range: Range<Vec<u8>>,
        limit: usize,
        bytes: usize,
    ) -> FsResult<Vec<(Bytes, Bytes)>> {
        let opts = ScanOptions {
            read_ahead_bytes: bytes.max(1),
            max_fetch_tasks: DATA_FETCH_TASKS,
            cache_blocks: true,
            ..ScanOptions::default()
        };
        bounded_read(async {
            let mut iter = match self {
                Backend::Writer(db) => db.scan_with_options(range, &opts).await?,
                Backend::Snapshot(r) => r.scan_with_options(range, &opts).await?,
            };
            let mut out = Vec::new();
            while out.len() < limit {
                match iter.next().await? {
                    Some(kv) => out.push((kv.key, kv.value)),
                    None => break,
                }
            }
            Ok(out)
        })
        .await
    }

    pub fn writer(&self) -> FsResult<&Db> {
        match self {
            Backend::Writer(db) => Ok(db),
            Backend::Snapshot(_) => Err(FsError::ReadOnly),
        }
    }

    pub async fn close(&self) -> FsResult<()> {
        match self {
            Backend::Writer(db) => db.close().await?,
            Backend::Snapshot(r) => r.close().await?,
        }
        Ok(())
    }
}

/// The key range of every key that starts with `prefix`.
pub fn prefix_range(prefix: &[u8]) -> Range<Vec<u8>> {
    let start = prefix.to_vec();
    let mut end = prefix.to_vec();
    // Prefixes here never end in 0xff bytes only; carry just in case.
    while let Some(last) = end.pop() {
        if last < 0xff {
            end.push(last + 1);
            return start..end;
        }
    }
    start..vec![0xff; 32]
}
