//! What the NFS adapter needs from the catalog: export paths, open filesystems and the
//! snapshots of a dataset.

use std::sync::Arc;

use async_trait::async_trait;

use crate::fs::Filesystem;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExportError {
    /// No such dataset or snapshot (any more): STALE for handles, NOENT for paths.
    NotFound,
    /// Try again later (NFS3ERR_JUKEBOX).
    Unavailable(String),
    /// The object store has been away too long (NFS3ERR_IO).
    Unreachable(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectInfo {
    Dataset,
    Snapshot { dataset: u64 },
}

#[async_trait]
pub trait Exports: Send + Sync + 'static {
    /// `""` is the default dataset, `NAME` a dataset, `NAME@SNAP` a read-only snapshot.
    async fn resolve_export(&self, path: &str) -> Result<u64, ExportError>;
    async fn filesystem(&self, object: u64) -> Result<Arc<Filesystem>, ExportError>;
    async fn object_info(&self, object: u64) -> Result<ObjectInfo, ExportError>;
    /// (name, snapshot object id) of a dataset's read-only snapshots.
    async fn snapshots_of(&self, dataset: u64) -> Result<Vec<(String, u64)>, ExportError>;
    /// Whether a dataset fenced by another writer is opened again on the next call (then a
    /// fenced call is worth retrying).
    fn reacquires_fenced(&self) -> bool {
        false
    }
}
