//! Collection of deleted objects and start-up recovery of unfinished operations.

use super::*;

impl Registry {
    /// What depends on an object (in any state: a record being created or a deleted one kept
    /// for its own dependants needs its parent just the same).
    pub(super) fn dependants(st: &State, obj: Obj) -> Vec<Obj> {
        match obj {
            Obj::Dataset(id) => st
                .snapshots
                .values()
                .filter(|s| s.dataset_id == id)
                .map(|s| Obj::Snapshot(s.id))
                .chain(
                    st.datasets
                        .values()
                        .filter(|d| d.origin.is_some_and(|o| o.parent_dataset() == id))
                        .map(|d| Obj::Dataset(d.id)),
                )
                .collect(),
            Obj::Snapshot(id) => st
                .datasets
                .values()
                .filter(|d| d.origin.is_some_and(|o| o.parent_snapshot() == Some(id)))
                .map(|d| Obj::Dataset(d.id))
                .collect(),
        }
    }

    pub(super) fn outcome(&self, obj: Obj) -> DeleteOutcome {
        let st = self.state.read().unwrap();
        let present = match obj {
            Obj::Dataset(id) => st.datasets.contains_key(&id),
            Obj::Snapshot(id) => st.snapshots.contains_key(&id),
        };
        let dependants = Self::dependants(&st, obj)
            .into_iter()
            .map(|o| match o {
                Obj::Dataset(id) => {
                    let d = &st.datasets[&id];
                    if d.state == RecordState::Deleted {
                        format!("{} (deleted)", d.name)
                    } else {
                        d.name.clone()
                    }
                }
                Obj::Snapshot(id) => {
                    let s = &st.snapshots[&id];
                    let ds = st.datasets.get(&s.dataset_id).map(|d| d.name.as_str()).unwrap_or("?");
                    if s.state == RecordState::Deleted {
                        format!("{ds}@{} (deleted)", s.name)
                    } else {
                        format!("{ds}@{}", s.name)
                    }
                }
            })
            .collect();
        DeleteOutcome { removed: !present, dependants }
    }

    /// Removes the objects of deleted records nothing depends on any more, then their parents
    /// in turn.
    pub(super) async fn collect(&self, mut work: Vec<Obj>) -> CatalogResult<()> {
        while let Some(obj) = work.pop() {
            match obj {
                Obj::Dataset(id) => {
                    let rec = {
                        let st = self.state.read().unwrap();
                        match st.datasets.get(&id) {
                            Some(r) if r.state == RecordState::Deleted => {
                                if !Self::dependants(&st, obj).is_empty() {
                                    continue;
                                }
                                r.clone()
                            }
                            _ => continue,
                        }
                    };
                    self.evict(id).await;
                    let path = self.db_path(id);
                    self.store
                        .delete_db(&path)
                        .await
                        .map_err(|e| CatalogError::internal("cannot delete the dataset's objects", e))?;
                    self.remove_local_dir(&path).await?;
                    crash::point("delete.after-store");
                    if let Some(cluster) = &self.cluster {
                        cluster.remove_dataset(id).await;
                    }
                    self.remove_record(obj).await?;
                    tracing::info!("dataset {} ({id}) removed from the store", rec.name);
                    if let Some(o) = rec.origin {
                        work.push(Obj::Dataset(o.parent_dataset()));
                        if let Some(s) = o.parent_snapshot() {
                            work.push(Obj::Snapshot(s));
                        }
                    }
                }
                Obj::Snapshot(id) => {
                    let rec = {
                        let st = self.state.read().unwrap();
                        match st.snapshots.get(&id) {
                            Some(r) if r.state == RecordState::Deleted => {
                                if !Self::dependants(&st, obj).is_empty() {
                                    continue;
                                }
                                r.clone()
                            }
                            _ => continue,
                        }
                    };
                    self.evict(id).await;
                    if let Some(cp) = rec.checkpoint {
                        self.store
                            .delete_checkpoint(&self.db_path(rec.dataset_id), cp)
                            .await
                            .map_err(|e| CatalogError::internal("cannot delete the snapshot's checkpoint", e))?;
                    }
                    crash::point("delete-snapshot.after-store");
                    self.remove_record(obj).await?;
                    tracing::info!("snapshot {} ({id}) removed from the store", rec.name);
                    work.push(Obj::Dataset(rec.dataset_id));
                }
            }
        }
        Ok(())
    }

    /// Undoes a create-like operation that did not finish: the half-made database (and a
    /// writable snapshot's temporary checkpoint) go, then the record.
    pub(super) async fn rollback_dataset(&self, id: u64) -> CatalogResult<()> {
        let rec = match self.state.read().unwrap().datasets.get(&id) {
            Some(r) => r.clone(),
            None => return Ok(()),
        };
        self.evict(id).await;
        let path = self.db_path(id);
        if let Err(e) = self.store.delete_db(&path).await {
            // A database whose creation stopped before its first manifest cannot be proven to
            // be one; the id was fresh, so everything under its prefix is ours to remove.
            tracing::warn!("rolling back dataset {id}: {e:#}; removing its prefix");
        }
        // Also whatever `delete_db` does not know of (it only removes what its listing shows).
        self.purge_prefix(&path).await?;
        self.remove_local_dir(&path).await?;
        if let Some(Origin::Dataset { dataset_id }) = rec.origin {
            self.delete_named_checkpoints(dataset_id, &clone_checkpoint_name(id)).await?;
        }
        self.remove_record(Obj::Dataset(id)).await?;
        tracing::info!("rolled back the unfinished creation of dataset {} ({id})", rec.name);
        Ok(())
    }

    pub(super) async fn rollback_snapshot(&self, id: u64) -> CatalogResult<()> {
        let rec = match self.state.read().unwrap().snapshots.get(&id) {
            Some(r) => r.clone(),
            None => return Ok(()),
        };
        self.evict(id).await;
        self.delete_named_checkpoints(rec.dataset_id, &snap_checkpoint_name(id)).await?;
        self.remove_record(Obj::Snapshot(id)).await?;
        tracing::info!("rolled back the unfinished snapshot {} ({id})", rec.name);
        Ok(())
    }

    pub(super) async fn delete_named_checkpoints(&self, dataset_id: u64, name: &str) -> CatalogResult<()> {
        let path = self.db_path(dataset_id);
        let checkpoints = self
            .store
            .list_checkpoints(&path)
            .await
            .map_err(|e| CatalogError::internal("cannot list checkpoints", e))?;
        for c in checkpoints.into_iter().filter(|c| c.name.as_deref() == Some(name)) {
            self.store
                .delete_checkpoint(&path, c.id)
                .await
                .map_err(|e| CatalogError::internal("cannot delete checkpoint", e))?;
        }
        Ok(())
    }

    /// A `file://` store: removes the directory of a prefix whose objects are gone.
    /// object_store's LocalFileSystem deletes files but leaves their directories, and never
    /// lists the staging files (`NAME#N`) of an upload a crash interrupted, so neither the
    /// database's deletion nor [`Self::purge_prefix`] removes those. Called only for the prefix
    /// of a dataset id whose database is deleted, where nothing can be written any more.
    pub(super) async fn remove_local_dir(&self, path: &object_store::path::Path) -> CatalogResult<()> {
        let Some(root) = self.store.local_dir() else { return Ok(()) };
        // A local store's root prefix is empty: object paths are paths below its directory.
        let dir = path.parts().fold(root.to_path_buf(), |d, part| d.join(part.as_ref()));
        match tokio::fs::remove_dir_all(&dir).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(CatalogError::internal(&format!("cannot remove {}", dir.display()), e)),
        }
    }

    pub(super) async fn purge_prefix(&self, path: &object_store::path::Path) -> CatalogResult<()> {
        let os = self.store.object_store().clone();
        let locations = os.list(Some(path)).map_ok(|m| m.location).boxed();
        os.delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| CatalogError::internal("cannot remove objects", e))?;
        Ok(())
    }

    /// Start-up: resolve every intent a crash left behind (see the module docs).
    pub(super) async fn recover(&self) -> anyhow::Result<()> {
        let (creating_datasets, creating_snapshots, deleted) = {
            let st = self.state.read().unwrap();
            let cd: Vec<u64> =
                st.datasets.values().filter(|d| d.state == RecordState::Creating).map(|d| d.id).collect();
            let cs: Vec<u64> =
                st.snapshots.values().filter(|s| s.state == RecordState::Creating).map(|s| s.id).collect();
            let del: Vec<Obj> = st
                .datasets
                .values()
                .filter(|d| d.state == RecordState::Deleted)
                .map(|d| Obj::Dataset(d.id))
                .chain(
                    st.snapshots
                        .values()
                        .filter(|s| s.state == RecordState::Deleted)
                        .map(|s| Obj::Snapshot(s.id)),
                )
                .collect();
            (cd, cs, del)
        };
        let rollbacks: Vec<u64> = self.state.read().unwrap().rollbacks.keys().copied().collect();
        for dataset_id in rollbacks {
            self.undo_rollback(dataset_id).await?;
        }
        // Newest first, so a half-made clone goes before anything it might depend on.
        for id in creating_datasets.into_iter().rev() {
            self.rollback_dataset(id).await?;
        }
        for id in creating_snapshots {
            self.rollback_snapshot(id).await?;
        }
        self.collect(deleted).await?;
        self.sweep_orphan_policies().await?;
        self.sweep_orphans().await?;
        Ok(())
    }

    /// Deletes the policy records of datasets that are gone or deleted: a crash between a
    /// dataset's deletion and its policy's leaves one, which would hold its snapshot prefix
    /// against a new dataset's policy forever.
    async fn sweep_orphan_policies(&self) -> CatalogResult<()> {
        let orphans: Vec<u64> = {
            let st = self.state.read().unwrap();
            st.policies.keys().copied().filter(|id| active_dataset(&st, *id).is_none()).collect()
        };
        for id in orphans {
            self.drop_policy(id).await?;
            tracing::info!("removed the snapshot policy of deleted dataset {id}");
        }
        Ok(())
    }

    /// Deletes `datasets/<id>/` databases whose id was handed out but has no record.
    pub(super) async fn sweep_orphans(&self) -> anyhow::Result<()> {
        let listing = self.store.object_store().list_with_delimiter(Some(&self.store.path("datasets"))).await?;
        for prefix in listing.common_prefixes {
            let Some(last) = prefix.filename() else { continue };
            let Ok(id) = u64::from_str_radix(last, 16) else { continue };
            let known = {
                let st = self.state.read().unwrap();
                id >= st.next_id
                    || st.datasets.values().any(|d| d.database_id() == id)
                    || st.rollbacks.values().any(|r| r.database == id)
            };
            if known {
                continue;
            }
            // A local store lists a directory with no objects left in it (deleted databases
            // left theirs before `remove_local_dir`): nothing to warn about, only it to remove.
            let objects = self.store.object_store().list(Some(&prefix)).try_collect::<Vec<_>>().await?;
            if !objects.is_empty() {
                tracing::warn!(
                    "dataset database {prefix} has no catalog record: deleting its {} objects",
                    objects.len()
                );
                if let Err(e) = self.store.delete_db(&prefix).await {
                    tracing::warn!("deleting {prefix}: {e:#}; removing its prefix");
                }
                self.purge_prefix(&prefix).await?;
            }
            self.remove_local_dir(&prefix).await?;
        }
        Ok(())
    }

}
