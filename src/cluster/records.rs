//! Ownership records in the store: `cluster/owners/<dataset>/<epoch>`, immutable, created with
//! `PutMode::Create` so that two servers can never both take epoch `E+1` (docs/ownership.md).

use std::sync::Arc;

use bytes::Bytes;
use futures::TryStreamExt;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use crate::store::Store;

/// A server as a record names it: `incarnation` is drawn at every start, so a record written
/// by a process that has since restarted names nobody alive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Member {
    pub name: String,
    pub address: String,
    pub incarnation: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OwnerRecord {
    pub dataset: u64,
    pub epoch: u64,
    /// `None`: released (its last owner stopped cleanly or gave it up).
    pub owner: Option<Member>,
    /// Why ownership changed (for the log and `dataset info`).
    pub reason: String,
    pub at_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    #[error("the object store: {0}")]
    Store(#[from] object_store::Error),
    #[error("ownership record {0} is not valid: {1}")]
    Corrupt(String, String),
}

#[derive(Clone)]
pub struct Records {
    store: Arc<dyn ObjectStore>,
    root: Path,
    /// `cluster/catalog-owner`: where followers of the catalog find its owner.
    catalog_owner: Path,
}

fn epoch_name(epoch: u64) -> String {
    format!("{epoch:020}")
}

impl Records {
    pub fn new(store: &Store) -> Records {
        Records {
            store: store.object_store().clone(),
            root: store.path("cluster/owners"),
            catalog_owner: store.path("cluster/catalog-owner"),
        }
    }

    /// The catalog owner says where it is (at every start: one PUT).
    pub async fn put_catalog_owner(&self, me: &Member) -> Result<(), RecordError> {
        let body = serde_json::to_vec(me).expect("members serialise");
        self.store.put(&self.catalog_owner, PutPayload::from(Bytes::from(body))).await?;
        Ok(())
    }

    /// Where the catalog owner said it is, if it ever did.
    pub async fn catalog_owner(&self) -> Result<Option<Member>, RecordError> {
        match self.store.get(&self.catalog_owner).await {
            Ok(got) => {
                let bytes = got.bytes().await?;
                serde_json::from_slice(&bytes)
                    .map(Some)
                    .map_err(|e| RecordError::Corrupt(self.catalog_owner.to_string(), e.to_string()))
            }
            Err(object_store::Error::NotFound { .. }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    fn dir(&self, dataset: u64) -> Path {
        self.root.clone().join(format!("{dataset:016x}"))
    }

    /// The epochs on record for a dataset, lowest first.
    async fn epochs(&self, dataset: u64) -> Result<Vec<u64>, RecordError> {
        let dir = self.dir(dataset);
        let listed: Vec<_> = self.store.list(Some(&dir)).try_collect().await?;
        let mut epochs: Vec<u64> =
            listed.iter().filter_map(|m| m.location.filename().and_then(|f| f.parse().ok())).collect();
        epochs.sort_unstable();
        Ok(epochs)
    }

    /// The record with the highest epoch, if the dataset ever had an owner.
    pub async fn current(&self, dataset: u64) -> Result<Option<OwnerRecord>, RecordError> {
        loop {
            let Some(&epoch) = self.epochs(dataset).await?.last() else { return Ok(None) };
            let path = self.dir(dataset).clone().join(epoch_name(epoch));
            let bytes = match self.store.get(&path).await {
                Ok(got) => got.bytes().await?,
                // Pruned between the listing and the read: a newer one exists.
                Err(object_store::Error::NotFound { .. }) => continue,
                Err(e) => return Err(e.into()),
            };
            let rec: OwnerRecord = serde_json::from_slice(&bytes)
                .map_err(|e| RecordError::Corrupt(path.to_string(), e.to_string()))?;
            if rec.dataset != dataset || rec.epoch != epoch {
                return Err(RecordError::Corrupt(path.to_string(), "dataset or epoch does not match its key".into()));
            }
            return Ok(Some(rec));
        }
    }

    /// Creates `rec` (epoch `E+1` after reading `E`). `false`: another server created that
    /// epoch first.
    pub async fn create(&self, rec: &OwnerRecord) -> Result<bool, RecordError> {
        let path = self.dir(rec.dataset).clone().join(epoch_name(rec.epoch));
        let body = serde_json::to_vec(rec).expect("records serialise");
        let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
        match self.store.put_opts(&path, PutPayload::from(Bytes::from(body)), opts).await {
            Ok(_) => Ok(true),
            Err(object_store::Error::AlreadyExists { .. }) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }

    /// Removes records older than `epoch` (they are never read again once a newer one exists).
    pub async fn prune(&self, dataset: u64, epoch: u64) -> Result<(), RecordError> {
        for old in self.epochs(dataset).await?.into_iter().filter(|&e| e < epoch) {
            match self.store.delete(&self.dir(dataset).clone().join(epoch_name(old))).await {
                Ok(()) | Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    /// Removes every record of a dataset (it was deleted from the catalog).
    pub async fn remove_all(&self, dataset: u64) -> Result<(), RecordError> {
        self.prune(dataset, u64::MAX).await
    }
}
