//! Reports: listings, info, usage and health, flush and checkpoint of a dataset.

use super::*;

impl Registry {
    // ---------------------------------------------------------------- queries (admin side)

    /// The visible datasets; in a cluster with the server owning each (one record read per
    /// dataset, 16 at a time).
    pub async fn list_datasets(&self) -> CatalogResult<Vec<DatasetInfo>> {
        let mut list: Vec<DatasetInfo> = {
            let st = self.state.read().unwrap();
            st.datasets.values().filter(|d| d.state == RecordState::Active).map(|d| dataset_info(&st, d)).collect()
        };
        if self.cluster.is_some() {
            let ids: Vec<u64> = list.iter().map(|d| d.id).collect();
            let owners: Vec<CatalogResult<Option<String>>> =
                futures::stream::iter(ids).map(|id| self.owner_of(id)).buffered(16).collect().await;
            for (d, owner) in list.iter_mut().zip(owners) {
                d.owner = owner?;
            }
        }
        Ok(list)
    }

    /// A dataset with its usage and health (from its owner, which may be this server) and,
    /// in a cluster, the server that owns it.
    pub async fn dataset_info(&self, name: &str) -> CatalogResult<DatasetInfo> {
        let id = self.dataset_id(name)?;
        let (usage, _quota, health) = self.stats_on_owner(id).await?;
        let mut info = self.info_of(id)?;
        info.usage = Some(usage);
        info.health = Some(health);
        info.owner = self.owner_of(id).await?;
        // Read from the store, not the owner: any server can, and a failure only leaves the
        // ratio out of the answer.
        info.tables = match self.store.table_sizes(&self.db_path(id)).await {
            Ok(t) => t,
            Err(e) => {
                tracing::warn!("dataset {name}: cannot read its table sizes: {e:#}");
                None
            }
        };
        Ok(info)
    }

    /// The filesystem a report (info, stats) reads, and its health; opened if needed. A reader
    /// (a node's dataset server) takes back a writer that turns out to be fenced, as serving
    /// does: there the one who fences is the catalog owner borrowing the writer for a snapshot,
    /// and an idle volume must not look broken after every snapshot. An owner never takes a
    /// fenced writer over for a report (asking how a dataset is must not move its writer): it
    /// reads the manifest, so that a takeover is reported even before it writes again.
    pub(super) async fn filesystem_for_report(&self, id: u64) -> CatalogResult<(Arc<Filesystem>, Health)> {
        let fs = if self.db.is_reader() {
            self.filesystem_with(id, Reacquire::AfterChecking).await?
        } else {
            let fs = self.filesystem(id).await?;
            fs.check_fenced().await;
            fs
        };
        let health = fs.health();
        Ok((fs, health))
    }

    /// Every read-only snapshot, or those of the datasets named `dataset`: the active one and
    /// a deleted one kept for its snapshots (what `DATASET@SNAP` ids and exports name).
    pub async fn list_snapshots(&self, dataset: Option<&str>) -> CatalogResult<Vec<SnapshotInfo>> {
        let st = self.state.read().unwrap();
        let only = match dataset {
            Some(name) => Some(snapshot_sources(&st, name)?),
            None => None,
        };
        Ok(st
            .snapshots
            .values()
            .filter(|s| s.state == RecordState::Active && only.as_ref().is_none_or(|d| d.contains(&s.dataset_id)))
            .map(|s| snapshot_info(&st, s))
            .collect())
    }

    pub async fn get_default(&self) -> CatalogResult<DatasetInfo> {
        let id = {
            let st = self.state.read().unwrap();
            st.default
                .filter(|id| active_dataset(&st, *id).is_some())
                .ok_or_else(|| CatalogError::NotFound("there is no default dataset".into()))?
        };
        self.info_of(id)
    }

    /// Usage, quota and health of a dataset, from its owner.
    pub async fn dataset_stats(&self, name: &str) -> CatalogResult<(u64, Usage, Option<u64>, Health)> {
        let id = self.dataset_id(name)?;
        let (usage, quota, health) = self.stats_on_owner(id).await?;
        Ok((id, usage, quota, health))
    }

    /// Flushes a dataset and takes a named SlateDB checkpoint of it, without recording a
    /// snapshot in the catalog (works on catalog readers, whose servers hold the writers).
    pub async fn checkpoint_dataset(&self, name: &str, checkpoint_name: &str) -> CatalogResult<(Uuid, Usage)> {
        if checkpoint_name.is_empty() {
            return Err(CatalogError::InvalidArgument("checkpoint name must not be empty".into()));
        }
        let id = self.dataset_id(name)?;
        self.checkpoint_on_owner(id, checkpoint_name).await
    }

    pub async fn flush_dataset(&self, name: &str) -> CatalogResult<()> {
        let id = self.dataset_id(name)?;
        self.flush_on_owner(id).await
    }
}
