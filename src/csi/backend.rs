//! What the CSI services need from slatefs, as one small trait over the admin API.
//!
//! The controller never opens dataset databases: every catalog operation goes to the catalog
//! owner's admin API, and the node asks its dataset server's admin API for usage. The one
//! implementation, [`super::admin_backend::AdminBackend`], is a gRPC client of `slatefs.admin.v1`
//! (over a unix socket, or TCP with a bearer token). The trait only keeps the CSI logic readable
//! (plain structs instead of protobuf messages) and names in one place what the CSI layer uses.
//!
//! Errors are `tonic::Status` with the admin API's codes (NOT_FOUND, ALREADY_EXISTS,
//! FAILED_PRECONDITION, UNAVAILABLE, …); the services translate them into the CSI spec's codes.

use async_trait::async_trait;
use tonic::Status;

use super::secrets::S3Credentials;

/// Where a dataset's data came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A writable snapshot of this dataset (CSI: volume cloned from a volume).
    SnapshotOfDataset(String),
    /// A clone of this read-only snapshot (CSI: volume restored from a snapshot).
    CloneOfSnapshot(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dataset {
    pub name: String,
    /// `None`: no quota.
    pub quota_bytes: Option<u64>,
    pub created_unix_ms: i64,
    pub origin: Option<Origin>,
    pub is_default: bool,
    /// Known only from single-dataset lookups.
    pub used_bytes: Option<u64>,
    pub used_inodes: Option<u64>,
    /// Known with the usage.
    pub health: Option<Health>,
}

/// Whether the server that answered can make a dataset's writes durable.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Health {
    Ok,
    /// A WAL flush has been pending this long: the object store is not answering.
    StoreUnavailable { pending_ms: u64 },
    /// Another server opened the dataset for writing; this one acknowledges no more writes.
    Fenced,
}

impl Health {
    /// What makes a volume's condition abnormal, if anything.
    pub fn problem(&self) -> Option<String> {
        match self {
            Health::Ok => None,
            Health::StoreUnavailable { pending_ms } => Some(format!(
                "object store unreachable: a write to the store has been pending for {:.1} s; writes wait for it",
                *pending_ms as f64 / 1000.0
            )),
            Health::Fenced => Some(
                "dataset fenced: another server opened it for writing, so the dataset server that answered \
                 acknowledges no more writes to it"
                    .into(),
            ),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub name: String,
    pub dataset: String,
    pub created_unix_ms: i64,
    pub size_bytes: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stats {
    pub used_bytes: u64,
    pub used_inodes: u64,
    pub quota_bytes: Option<u64>,
    pub health: Option<Health>,
}

pub use crate::catalog::KubernetesRef;

#[async_trait]
pub trait Backend: Send + Sync {
    /// Cheap reachability check (Probe).
    async fn ping(&self) -> Result<(), Status>;
    async fn get_dataset(&self, name: &str) -> Result<Dataset, Status>;
    async fn list_datasets(&self) -> Result<Vec<Dataset>, Status>;
    async fn create_dataset(&self, name: &str, quota_bytes: Option<u64>) -> Result<Dataset, Status>;
    async fn delete_dataset(&self, name: &str) -> Result<(), Status>;
    async fn set_quota(&self, name: &str, quota_bytes: Option<u64>) -> Result<Dataset, Status>;
    /// A writable snapshot: a new dataset `name` sharing `source`'s data.
    async fn writable_snapshot(&self, source: &str, name: &str) -> Result<Dataset, Status>;
    /// A read-only snapshot of `source` holding everything acknowledged before the call.
    async fn readonly_snapshot(&self, source: &str, name: &str) -> Result<Snapshot, Status>;
    /// `dataset` empty: the snapshots of every dataset.
    async fn list_snapshots(&self, dataset: &str) -> Result<Vec<Snapshot>, Status>;
    async fn delete_snapshot(&self, name: &str) -> Result<(), Status>;
    /// A new writable dataset `name` from read-only snapshot `snapshot`.
    async fn clone_snapshot(&self, snapshot: &str, name: &str) -> Result<Dataset, Status>;
    /// Usage of a dataset served (opened) by this server: the node's "make sure it serves it".
    async fn dataset_stats(&self, name: &str) -> Result<Stats, Status>;
    /// Proves that `creds` may use the server's store (`store_url` empty: whatever it is).
    async fn check_store_access(&self, store_url: &str, creds: &S3Credentials) -> Result<(), Status>;
    /// Records the PersistentVolumeClaim a dataset was made for.
    async fn set_dataset_kubernetes_ref(&self, dataset: &str, r: &KubernetesRef) -> Result<(), Status>;
    /// Records the VolumeSnapshot a read-only snapshot was made for.
    async fn set_snapshot_kubernetes_ref(&self, snapshot: &str, r: &KubernetesRef) -> Result<(), Status>;
    /// Gives dataset `name` this snapshot policy (`None`: removes its policy, if it has one).
    async fn set_policy(&self, name: &str, policy: Option<&crate::policy::PolicyText>) -> Result<(), Status>;
}

/// Looks a snapshot up by name among all snapshots.
pub async fn find_snapshot(b: &dyn Backend, name: &str) -> Result<Option<Snapshot>, Status> {
    Ok(b.list_snapshots("").await?.into_iter().find(|s| s.name == name))
}
