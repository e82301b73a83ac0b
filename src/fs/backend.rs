//! The database under a filesystem: a writable `Db` for a dataset, or a `DbReader` pinned to a
//! checkpoint for a read-only snapshot. Reads go through here; writes only exist on `Db`.
//! Reads wait for an unreachable object store only as long as `store::wait` allows.

use std::ops::Range;

use bytes::Bytes;
use slatedb::{Db, DbReader};

use super::error::{FsError, FsResult};
use crate::store::wait::bounded_read;

// One per open dataset: boxing the larger variant would save bytes on nothing that is hot.
#[allow(clippy::large_enum_variant)]
pub enum Backend {
    Writer(Db),
    Snapshot(DbReader),
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
