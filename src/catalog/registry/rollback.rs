//! Rollback: a dataset's live contents made equal to one of its read-only snapshots, in O(1),
//! by giving the dataset a new database cloned from the snapshot's checkpoint. The replaced
//! database becomes a hidden dataset record (state `Deleted`, `successor` = the dataset) that
//! holds the dataset's older snapshots and the clones made from them, and is collected like
//! any deleted dataset once nothing needs it. docs/rollback.md has the design and what each
//! failure does.

use super::*;
use crate::catalog::codec::RollbackIntent;
use crate::cluster::Route;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackOutcome {
    /// The dataset as it is now (same id, name and quota), with its new usage.
    pub dataset: DatasetInfo,
    pub snapshot: SnapshotInfo,
}

impl Registry {
    /// Makes dataset `name`'s contents those of its read-only snapshot `snapshot`. Every
    /// snapshot of the dataset stays (older and newer ones); files created since the snapshot
    /// are gone, and their inode numbers are never handed out again.
    pub async fn rollback_to_snapshot(&self, name: &str, snapshot: &str) -> CatalogResult<RollbackOutcome> {
        validate_name(name)?;
        validate_name(snapshot)?;
        let _guard = self.mutation().await?;
        let (dataset, snap, checkpoint) = {
            let st = self.state.read().unwrap();
            let d = dataset_by_name(&st, name)?.clone();
            let s = snapshot_by_name(&st, snapshot)?.clone();
            if live_dataset(&st, s.dataset_id) != d.id {
                return Err(CatalogError::InvalidArgument(format!(
                    "snapshot {snapshot:?} is not a snapshot of dataset {name:?} (see list-snapshots {name})"
                )));
            }
            let checkpoint = s.checkpoint.ok_or_else(|| {
                CatalogError::Internal(format!("active snapshot {snapshot} has no checkpoint"))
            })?;
            (d, s, checkpoint)
        };
        // In a cluster the writer must be ours for the whole operation: held, a handoff
        // waits, and no other server writes the dataset meanwhile.
        let _serving = match &self.cluster {
            None => None,
            Some(cluster) => match cluster.route(dataset.id, false).await.map_err(owned::cluster_err)? {
                Route::Local(guard) => Some(guard),
                Route::Remote { owner, .. } => {
                    return Err(CatalogError::FailedPrecondition(format!(
                        "dataset {name:?} is in use on server {} ({}), which owns it; a rollback runs on \
                         the catalog owner while it owns the dataset: stop the dataset's clients on {} \
                         (or wait until it hands the dataset over) and retry",
                        owner.name, owner.address, owner.name
                    )))
                }
            },
        };
        let hidden_id = self.alloc_id()?;
        let database = hidden_id + 1;
        if database >= MAX_ID {
            return Err(CatalogError::ResourceExhausted(format!(
                "all {MAX_ID} dataset and snapshot ids have been used"
            )));
        }
        let intent = RollbackIntent { dataset_id: dataset.id, snapshot_id: snap.id, hidden_id, database };
        let mut batch = WriteBatch::new();
        batch.put(codec::KEY_NEXT_ID, codec::encode_u64(database + 1));
        batch.put(codec::rollback_key(dataset.id), intent.encode());
        self.db.write(batch).await?;
        {
            let mut st = self.state.write().unwrap();
            st.next_id = database + 1;
            st.rollbacks.insert(dataset.id, intent.clone());
        }
        crash::point("rollback.after-intent");
        // Held until the dataset serves its new database: nobody opens the old one meanwhile.
        let slot = self.slot(dataset.id);
        let mut open = slot.lock().await;
        match self.switch_database(&dataset, &snap, checkpoint, &intent, &mut open).await {
            Ok(fs) => {
                crash::point("rollback.after-commit");
                open.set(fs.clone());
                drop(open);
                // The replaced database may hold nothing anybody needs.
                self.collect(vec![Obj::Dataset(hidden_id)]).await?;
                tracing::info!(
                    "dataset {name} ({}) rolled back to snapshot {snapshot} ({}); its database is now {}",
                    dataset.id,
                    snap.id,
                    self.db_path(dataset.id)
                );
                let usage = fs.usage().await;
                let st = self.state.read().unwrap();
                Ok(RollbackOutcome {
                    dataset: DatasetInfo { usage: Some(usage), ..dataset_info(&st, &st.datasets[&dataset.id]) },
                    snapshot: snapshot_info(&st, &st.snapshots[&snap.id]),
                })
            }
            Err(e) => {
                drop(open);
                if let Err(e2) = self.undo_rollback(dataset.id).await {
                    tracing::warn!("undoing the rollback of dataset {name}: {e2}; retried at next start");
                }
                Err(e)
            }
        }
    }

    /// Closes the dataset's writer, clones the snapshot into the new database, carries the
    /// inode floor over and switches the catalog to it; returns the new database's writer.
    /// `open` is the dataset's slot, which the caller holds.
    async fn switch_database(
        &self,
        dataset: &DatasetRecord,
        snap: &SnapshotRecord,
        checkpoint: Uuid,
        intent: &RollbackIntent,
        open: &mut SlotState,
    ) -> CatalogResult<Arc<Filesystem>> {
        if let Some(fs) = open.take().await {
            fs.close().await.map_err(|e| fs_err("cannot close the dataset's writer", e))?;
        }
        crash::point("rollback.after-close");
        let new_path = self.store.dataset_path(intent.database);
        self.store
            .clone_db(&self.db_path(snap.dataset_id), checkpoint, &new_path)
            .await
            .map_err(|e| CatalogError::internal("cannot clone the snapshot", e))?;
        crash::point("rollback.after-clone");
        let floor = self.durable_inode_floor(dataset.id).await?;
        let fs = self.open_writer_task(new_path, dataset.quota).await?;
        let result = async {
            fs.raise_ino_floor(floor).await.map_err(|e| fs_err("cannot carry the inode floor over", e))?;
            crash::point("rollback.after-floor");
            self.commit_rollback(dataset, snap, checkpoint, intent).await
        }
        .await;
        if let Err(e) = result {
            let _ = fs.close().await;
            return Err(e);
        }
        Ok(fs)
    }

    /// The one catalog write that makes the rollback happen: the dataset names its new
    /// database (a clone of the snapshot), the replaced database gets its hidden record, and
    /// what lived in it (snapshots, clones' origins) points at that record.
    async fn commit_rollback(
        &self,
        dataset: &DatasetRecord,
        snap: &SnapshotRecord,
        checkpoint: Uuid,
        intent: &RollbackIntent,
    ) -> CatalogResult<()> {
        let (d, h) = (dataset.id, intent.hidden_id);
        let moved = |id: u64| if id == d { h } else { id };
        let (changed_snapshots, changed_datasets) = {
            let st = self.state.read().unwrap();
            let snaps: Vec<SnapshotRecord> = st
                .snapshots
                .values()
                .filter(|s| s.dataset_id == d)
                .map(|s| SnapshotRecord { dataset_id: h, ..s.clone() })
                .collect();
            let mut sets: Vec<DatasetRecord> = st
                .datasets
                .values()
                .filter(|c| c.id != d && c.origin.is_some_and(|o| o.parent_dataset() == d))
                .map(|c| DatasetRecord { origin: c.origin.map(|o| repoint(o, h)), ..c.clone() })
                .collect();
            let hidden = DatasetRecord {
                id: h,
                state: RecordState::Deleted,
                name: dataset.name.clone(),
                quota: dataset.quota,
                created_ms: dataset.created_ms,
                origin: dataset.origin.map(|o| if o.parent_dataset() == d { repoint(o, h) } else { o }),
                database: Some(dataset.database_id()),
                successor: Some(d),
                // The names stay with the live dataset: the claim is still bound to it.
                kubernetes: None,
            };
            let live = DatasetRecord {
                origin: Some(Origin::Snapshot { snapshot_id: snap.id, dataset_id: moved(snap.dataset_id), checkpoint }),
                database: Some(intent.database),
                ..st.datasets[&d].clone()
            };
            sets.push(hidden);
            sets.push(live);
            (snaps, sets)
        };
        let mut batch = WriteBatch::new();
        for s in &changed_snapshots {
            batch.put(codec::snapshot_key(s.id), s.encode());
        }
        for r in &changed_datasets {
            batch.put(codec::dataset_key(r.id), r.encode());
        }
        batch.delete(codec::rollback_key(d));
        self.db.write(batch).await?;
        let mut st = self.state.write().unwrap();
        for s in changed_snapshots {
            st.snapshots.insert(s.id, s);
        }
        for r in changed_datasets {
            st.datasets.insert(r.id, r);
        }
        st.rollbacks.remove(&d);
        Ok(())
    }

    /// Above every inode number the dataset's current database may have handed out, as it is
    /// in the store (its writer is closed): read through a read-only view, which takes no
    /// writer over.
    async fn durable_inode_floor(&self, id: u64) -> CatalogResult<u64> {
        let fs = self.read_only_view(id).await?;
        let floor = fs.ino_ceiling().await;
        let _ = fs.close().await;
        Ok(floor)
    }

    /// Undoes a rollback that did not commit (an error, or a crash found at start): the new
    /// database goes (releasing the checkpoint it pinned), then the intent. The dataset
    /// keeps its database, untouched.
    pub(super) async fn undo_rollback(&self, dataset_id: u64) -> CatalogResult<()> {
        let Some(intent) = self.state.read().unwrap().rollbacks.get(&dataset_id).cloned() else {
            return Ok(());
        };
        let path = self.store.dataset_path(intent.database);
        if let Err(e) = self.store.delete_db(&path).await {
            // A clone that stopped before its first manifest is no database yet; its prefix
            // was fresh, so everything under it is ours to remove.
            tracing::warn!("undoing the rollback of dataset {dataset_id}: {e:#}; removing its prefix");
        }
        self.purge_prefix(&path).await?;
        self.remove_local_dir(&path).await?;
        let mut batch = WriteBatch::new();
        batch.delete(codec::rollback_key(dataset_id));
        self.db.write(batch).await?;
        self.state.write().unwrap().rollbacks.remove(&dataset_id);
        tracing::info!("undid the unfinished rollback of dataset {dataset_id}: it keeps its contents");
        Ok(())
    }
}

fn repoint(o: Origin, hidden: u64) -> Origin {
    match o {
        Origin::Dataset { .. } => Origin::Dataset { dataset_id: hidden },
        Origin::Snapshot { snapshot_id, checkpoint, .. } => Origin::Snapshot { snapshot_id, dataset_id: hidden, checkpoint },
    }
}
