//! Operations on a dataset's writer — checkpoint, flush, usage and health — run by the
//! dataset's owner: here when this server owns it (or nobody alive does and this server takes
//! it), otherwise by asking the owner over the internal channel (docs/ownership.md). Without a
//! cluster they run here, as they always did.

use async_trait::async_trait;
use tonic::{Request, Status};

use super::*;
use crate::cluster::proto::{self as pb, checkpoint_reply, flush_reply, stats_reply};
use crate::cluster::{ClusterError, LocalDatasets, OnOwner};

pub(super) fn cluster_err(e: ClusterError) -> CatalogError {
    match e {
        ClusterError::Unavailable(m) => CatalogError::Unavailable(m),
        ClusterError::Internal(m) => CatalogError::Internal(m),
    }
}

fn status_of(e: CatalogError) -> Status {
    match e {
        CatalogError::NotFound(m) => Status::not_found(m),
        CatalogError::InvalidArgument(m) => Status::invalid_argument(m),
        CatalogError::Unavailable(m) | CatalogError::StoreUnreachable(m) => Status::unavailable(m),
        CatalogError::FailedPrecondition(m) => Status::failed_precondition(m),
        other => Status::internal(other.to_string()),
    }
}

/// A health as the internal channel carries it.
fn health_code(h: Health) -> (u32, u64) {
    match h {
        Health::Ok => (1, 0),
        Health::Unavailable(d) => (2, d.as_millis() as u64),
        Health::Fenced => (3, 0),
    }
}

fn health_of(code: u32, pending_ms: u64) -> Health {
    match code {
        2 => Health::Unavailable(Duration::from_millis(pending_ms)),
        3 => Health::Fenced,
        _ => Health::Ok,
    }
}

impl Registry {
    /// Flushes the dataset and takes a named checkpoint of it, on its owner.
    pub(super) async fn checkpoint_on_owner(&self, id: u64, name: &str) -> CatalogResult<(Uuid, Usage)> {
        let Some(cluster) = &self.cluster else { return self.checkpoint_here(id, name).await };
        let answer = cluster
            .on_owner(id, false, true, |mut peer, _epoch| {
                let req = pb::CheckpointRequest { dataset: id, name: name.to_string() };
                async move {
                    Ok(match peer.checkpoint(Request::new(req)).await?.into_inner().outcome {
                        Some(checkpoint_reply::Outcome::Checkpointed(c)) => Ok(c),
                        Some(checkpoint_reply::Outcome::NotOwner(n)) => Err(n.epoch),
                        None => Err(0),
                    })
                }
            })
            .await
            .map_err(cluster_err)?;
        match answer {
            OnOwner::Local(_serving) => self.checkpoint_here(id, name).await,
            OnOwner::Nobody => Err(CatalogError::Internal(format!("dataset {id}: no owner after claiming it"))),
            OnOwner::Remote(c) => {
                let uuid = Uuid::parse_str(&c.checkpoint_id)
                    .map_err(|e| CatalogError::internal("the owner answered a bad checkpoint id", e))?;
                Ok((uuid, Usage { bytes: c.used_bytes, inodes: c.used_inodes }))
            }
        }
    }

    async fn checkpoint_here(&self, id: u64, name: &str) -> CatalogResult<(Uuid, Usage)> {
        let fs = self.writer_here(id).await?;
        let usage = fs.usage().await;
        let uuid = fs.checkpoint(name).await.map_err(|e| fs_err("cannot checkpoint the dataset", e))?;
        Ok((uuid, usage))
    }

    pub(super) async fn flush_on_owner(&self, id: u64) -> CatalogResult<()> {
        let Some(cluster) = &self.cluster else { return self.flush_here(id).await };
        let answer = cluster
            .on_owner(id, false, false, |mut peer, _epoch| async move {
                Ok(match peer.flush(Request::new(pb::DatasetRef { dataset: id })).await?.into_inner().outcome {
                    Some(flush_reply::Outcome::Flushed(_)) => Ok(()),
                    Some(flush_reply::Outcome::NotOwner(n)) => Err(n.epoch),
                    None => Err(0),
                })
            })
            .await
            .map_err(cluster_err)?;
        match answer {
            OnOwner::Local(_serving) => self.flush_here(id).await,
            OnOwner::Remote(()) => Ok(()),
            // No writer is open anywhere: everything acknowledged is in the store already.
            OnOwner::Nobody => Ok(()),
        }
    }

    async fn flush_here(&self, id: u64) -> CatalogResult<()> {
        let fs = self.writer_here(id).await?;
        fs.flush().await.map_err(|e| fs_err("cannot flush", e))
    }

    /// Usage, quota and health of a dataset, from its owner.
    pub(super) async fn stats_on_owner(&self, id: u64) -> CatalogResult<(Usage, Option<u64>, Health)> {
        let Some(cluster) = &self.cluster else {
            let (fs, health) = self.filesystem_for_report(id).await?;
            return Ok((fs.usage().await, fs.quota(), health));
        };
        let answer = cluster
            .on_owner(id, false, false, |mut peer, _epoch| async move {
                Ok(match peer.stats(Request::new(pb::DatasetRef { dataset: id })).await?.into_inner().outcome {
                    Some(stats_reply::Outcome::Stats(s)) => Ok(s),
                    Some(stats_reply::Outcome::NotOwner(n)) => Err(n.epoch),
                    None => Err(0),
                })
            })
            .await
            .map_err(cluster_err)?;
        match answer {
            OnOwner::Local(_serving) => {
                let fs = self.filesystem(id).await?;
                let health = fs.health();
                Ok((fs.usage().await, fs.quota(), health))
            }
            OnOwner::Nobody => {
                let quota = self.state.read().unwrap().datasets.get(&id).and_then(|d| d.quota);
                Ok((self.usage_read_only(id).await?, quota, Health::Ok))
            }
            OnOwner::Remote(s) => Ok((
                Usage { bytes: s.used_bytes, inodes: s.used_inodes },
                s.quota_bytes,
                health_of(s.health, s.pending_ms),
            )),
        }
    }

    /// The usage of a dataset nobody is writing, read through a read-only view (opening a
    /// writer to answer would move its ownership here).
    async fn usage_read_only(&self, id: u64) -> CatalogResult<Usage> {
        let fs = self.read_only_view(id).await?;
        let usage = fs.usage().await;
        let _ = fs.close().await;
        Ok(usage)
    }

    /// A dataset's database as it is in the store, read-only: it takes no writer over.
    pub(super) async fn read_only_view(&self, id: u64) -> CatalogResult<Arc<Filesystem>> {
        let reader = self
            .store
            .open_latest(&self.db_path(id))
            .await
            .map_err(|e| CatalogError::internal("cannot read the dataset", e))?;
        Filesystem::open_snapshot(reader).await.map_err(|e| fs_err("cannot read the dataset", e))
    }

    /// The writer of a dataset this server serves: without a cluster an explicit request takes
    /// a fenced writer back (as it always did); in a cluster only the owner gets here.
    pub(super) async fn writer_here(&self, id: u64) -> CatalogResult<Arc<Filesystem>> {
        if self.cluster.is_some() {
            self.filesystem(id).await
        } else {
            self.filesystem_for_admin(id).await
        }
    }

    /// The server that owns a dataset now, by name, as its ownership record says (`None`
    /// without a cluster or when nobody does).
    pub async fn owner_of(&self, id: u64) -> CatalogResult<Option<String>> {
        let Some(cluster) = &self.cluster else { return Ok(None) };
        let rec = cluster.owner_record(id).await.map_err(cluster_err)?;
        Ok(rec.and_then(|r| r.owner).map(|m| m.name))
    }
}

#[async_trait]
impl LocalDatasets for Registry {
    async fn checkpoint(&self, dataset: u64, name: &str) -> Result<(Uuid, u64, u64), Status> {
        let (uuid, usage) = self.checkpoint_here(dataset, name).await.map_err(status_of)?;
        Ok((uuid, usage.bytes, usage.inodes))
    }

    async fn flush(&self, dataset: u64) -> Result<(), Status> {
        self.flush_here(dataset).await.map_err(status_of)
    }

    async fn stats(&self, dataset: u64) -> Result<pb::Stats, Status> {
        let fs = self.filesystem(dataset).await.map_err(status_of)?;
        let usage = fs.usage().await;
        let (health, pending_ms) = health_code(fs.health());
        Ok(pb::Stats {
            used_bytes: usage.bytes,
            used_inodes: usage.inodes,
            quota_bytes: fs.quota(),
            health,
            pending_ms,
            change_seq: fs.change_seq(),
        })
    }

    async fn adopt(&self, dataset: u64) {
        if let Err(e) = self.filesystem(dataset).await {
            tracing::warn!("opening dataset {dataset} after it was handed over: {e}");
        }
    }

    async fn release(&self, dataset: u64) -> Result<(), String> {
        let Some(slot) = self.open.lock().unwrap().get(&dataset).cloned() else { return Ok(()) };
        let mut guard = slot.lock().await;
        if let Some(fs) = guard.take().await {
            fs.close().await.map_err(|e| format!("cannot close its writer: {e}"))?;
        }
        Ok(())
    }
}
