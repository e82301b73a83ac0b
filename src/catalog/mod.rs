//! The catalog: which datasets and snapshots exist, their names, ids, parent/child links,
//! quotas and the default dataset, kept in one SlateDB database (`Store::catalog_path()`),
//! and the `Registry` that opens the datasets and snapshots it names.
//!
//! ## Objects
//! - A **dataset** is a POSIX filesystem in its own SlateDB database (`datasets/<id>/`).
//! - A **read-only snapshot** is a named SlateDB checkpoint of a dataset's database.
//! - A **writable snapshot** is a new dataset cloned (SlateDB clone: SSTs shared, nothing
//!   copied) from a fresh checkpoint of the source; a **clone** is a new dataset cloned from a
//!   read-only snapshot's checkpoint.
//!
//! Datasets and snapshots take ids from one counter; ids are never reused and stay below 2^24.
//!
//! ## Dependants and deletion
//! A dataset's database is needed by its read-only snapshots and by every dataset cloned from
//! it (their SSTs live in its database); a read-only snapshot is needed by the datasets cloned
//! from it. Deleting an object marks its record `Deleted` (it stops being listed, resolved or
//! mounted, and its name is free again). Its objects are removed — `delete_db` for a dataset,
//! `delete_checkpoint` for a snapshot — only once nothing depends on it, and removing it may in
//! turn release its own parent (a deleted dataset kept for a clone is collected when the clone
//! goes). A read-only snapshot outlives its dataset: it keeps its id and its name
//! `DATASET@SNAP`, which lookups, listings by dataset name and exports resolve through the
//! hidden dataset's record, so it can still be read, cloned and deleted.
//!
//! ## Crash safety (intent records)
//! Every mutation of the store is bracketed by catalog writes made durable (WAL flushed) before
//! the next step:
//! - **create / writable snapshot / clone**: the dataset record is written in state `Creating`
//!   (with the id counter) *before* the database is created or cloned; it becomes `Active`
//!   only after the database exists and is formatted. A temporary checkpoint taken for a
//!   writable snapshot is named `slatefs-clone-<new id>`.
//! - **read-only snapshot**: the record is written `Creating` before the checkpoint, which is
//!   named `slatefs-snap-<id>`; the record becomes `Active` with the checkpoint's uuid.
//! - **delete**: the record is written `Deleted` before any object is removed; the record is
//!   removed only after the objects are gone (`delete_db` is idempotent and resumable).
//!
//! On start-up the catalog owner resolves every intent: `Creating` records are **rolled
//! back** (the half-made database is deleted with `delete_db`, which also releases the
//! checkpoint a half-made clone pinned in its parent; checkpoints named after the record are
//! deleted; the record is removed), so repeating the command succeeds. `Deleted` records are
//! **rolled forward** (collected when nothing depends on them). Finally every
//! `datasets/<id>/` prefix whose id was handed out but has no record is deleted — a safety
//! net for a record lost by hand. In a `file://` store, deleting or rolling back a dataset
//! also removes its directory (object_store leaves directories, and never lists the staging
//! file of an upload a crash interrupted). So after a crash at any point there is no record
//! without its database and no database that is never collected.
//!
//! `SLATEFS_CRASH_AT=<point>` (see [`crash`]) aborts the process at a named point inside
//! these operations; it exists for the crash tests.
//!
//! ## Roles
//! The owner (standalone `serve`, the CSI controller) writes the catalog. A reader
//! (`[catalog] role = "reader"`, dataset servers on Kubernetes nodes) follows it through a
//! SlateDB `DbReader` and refuses mutations with FailedPrecondition.

pub mod codec;
pub mod crash;
mod db;
pub mod policy_record;
pub mod registry;
mod slot;

pub use policy_record::{PolicyRecord, RetentionRecord, ScheduleRecord};
pub use codec::{DatasetRecord, KubernetesRef, Origin, RecordState, SnapshotRecord, MAX_ID};
pub use registry::{
    checked_kubernetes_ref, policy_snapshot_name, DatasetInfo, DeleteOutcome, Inventory, ObjectKind, PolicyInfo,
    PolicySettings, Registry, RollbackOutcome, SnapshotInfo, SnapshotResult, MAX_POLICY_PREFIX,
};

/// The name of the default dataset created on first start.
pub const ROOT_DATASET: &str = "root";
pub const MAX_NAME_BYTES: usize = 253;
pub const NAME_RULE: &str =
    "names are 1-253 bytes of lowercase letters, digits, '.', '_' and '-' ([a-z0-9._-]), starting with a letter or digit";

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CatalogError {
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    ResourceExhausted(String),
    #[error("{0}")]
    Unavailable(String),
    /// The object store has been failing for `io_error_after_ms` (NFS3ERR_IO rather than a
    /// "try again").
    #[error("{0}")]
    StoreUnreachable(String),
    #[error("{0}")]
    Internal(String),
}

pub type CatalogResult<T> = Result<T, CatalogError>;

impl CatalogError {
    pub(crate) fn internal(context: &str, e: impl std::fmt::Display) -> CatalogError {
        CatalogError::Internal(format!("{context}: {e:#}"))
    }
}

impl From<crate::store::wait::GaveUp> for CatalogError {
    fn from(e: crate::store::wait::GaveUp) -> Self {
        match e {
            crate::store::wait::GaveUp::Unavailable(m) => CatalogError::Unavailable(m),
            crate::store::wait::GaveUp::Unreachable(m) => CatalogError::StoreUnreachable(m),
        }
    }
}

impl From<codec::CodecError> for CatalogError {
    fn from(e: codec::CodecError) -> Self {
        CatalogError::Internal(e.to_string())
    }
}

/// Checks a dataset or snapshot name: 1–253 bytes of `[a-z0-9._-]` starting with a letter or
/// digit (so it fits a Kubernetes object name, and `..`, `/`, `@` and NUL are impossible).
pub fn validate_name(name: &str) -> CatalogResult<()> {
    let b = name.as_bytes();
    let ok = !b.is_empty()
        && b.len() <= MAX_NAME_BYTES
        && b[0].is_ascii_lowercase() | b[0].is_ascii_digit()
        && b.iter()
            .all(|&c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, b'.' | b'_' | b'-'));
    if ok {
        Ok(())
    } else {
        let shown = if name.len() > 40 {
            format!("{:?}… ({} bytes)", &name[..name.floor_char_boundary_compat(40)], name.len())
        } else {
            format!("{name:?}")
        };
        Err(CatalogError::InvalidArgument(format!("invalid name {shown}: {NAME_RULE}")))
    }
}

trait FloorCharBoundary {
    fn floor_char_boundary_compat(&self, i: usize) -> usize;
}

impl FloorCharBoundary for str {
    fn floor_char_boundary_compat(&self, mut i: usize) -> usize {
        while !self.is_char_boundary(i) {
            i -= 1;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for good in ["a", "root", "0", "pvc-1234.x_y", &"a".repeat(253)] {
            validate_name(good).unwrap();
        }
        for bad in ["", "..", ".a", "-a", "_a", "a/b", "a\0b", "Abc", "a b", "a@b", "é", &"a".repeat(254)]
        {
            let err = validate_name(bad).unwrap_err();
            assert!(matches!(err, CatalogError::InvalidArgument(_)), "{bad:?}");
            assert!(err.to_string().contains("[a-z0-9._-]"), "{err}");
        }
        let long = validate_name(&"é".repeat(200)).unwrap_err().to_string();
        assert!(long.contains("400 bytes"), "{long}");
    }
}
