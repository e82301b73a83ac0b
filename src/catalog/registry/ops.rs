//! Mutations of the catalog: create, snapshot, clone, delete, default, quota.

use super::*;

impl Registry {
    // ---------------------------------------------------------------- mutations

    pub async fn create_dataset(&self, name: &str, quota: Option<u64>) -> CatalogResult<DatasetInfo> {
        validate_name(name)?;
        check_quota(quota)?;
        let _guard = self.mutation().await?;
        self.check_dataset_name_free(name)?;
        let id = self.alloc_and_put_dataset(name, quota, None).await?;
        crash::point("create.after-intent");
        let result = async {
            let fs = self.open_dataset(id, quota).await?;
            let usage = self.keep_created(id, fs).await?;
            crash::point("create.after-db");
            self.set_dataset_state(id, RecordState::Active).await?;
            Ok(usage)
        }
        .await;
        let usage = self.finish_create(id, result).await?;
        Ok(DatasetInfo { usage: Some(usage), ..self.info_of(id)? })
    }

    /// `readonly`: a named checkpoint recorded as a snapshot. Otherwise a writable snapshot: a
    /// new dataset cloned from a fresh checkpoint of the source.
    pub async fn create_snapshot(&self, source: &str, name: &str, readonly: bool) -> CatalogResult<SnapshotResult> {
        validate_name(name)?;
        let _guard = self.mutation().await?;
        let src = self.dataset_id(source)?;
        if readonly {
            self.check_snapshot_name_free(name)?;
            let rec = self.begin_snapshot(src, name).await?;
            crash::point("snapshot.after-intent");
            let result = async {
                let done = self.checkpoint_snapshot(&rec, "snapshot.after-checkpoint").await?;
                self.put_snapshot(done).await
            }
            .await;
            if let Err(e) = result {
                self.abandon_snapshot(rec.id).await;
                return Err(e);
            }
            let id = rec.id;
            let st = self.state.read().unwrap();
            return Ok(SnapshotResult::Snapshot(snapshot_info(&st, &st.snapshots[&id])));
        }

        // A writable snapshot, like a clone, is not opened here: opening replays the WAL the
        // clone copied (what the source had not yet written to an SST), which would make its
        // cost grow with the source's recent writes. It opens on first use, on whichever
        // server serves it, and reports the usage it was cloned with.
        self.check_dataset_name_free(name)?;
        let quota = self.state.read().unwrap().datasets[&src].quota;
        let id = self.alloc_and_put_dataset(name, quota, Some(Origin::Dataset { dataset_id: src })).await?;
        crash::point("clone.after-intent");
        let result = async {
            let (checkpoint, usage) = self.checkpoint_on_owner(src, &clone_checkpoint_name(id)).await?;
            crash::point("clone.after-checkpoint");
            let src_path = self.db_path(src);
            self.store
                .clone_db(&src_path, checkpoint, &self.db_path(id))
                .await
                .map_err(|e| CatalogError::internal("cannot clone the dataset", e))?;
            crash::point("clone.after-clone");
            // The clone pinned its own checkpoint of the source; the temporary one can go.
            self.store
                .delete_checkpoint(&src_path, checkpoint)
                .await
                .map_err(|e| CatalogError::internal("cannot release the temporary checkpoint", e))?;
            self.set_dataset_state(id, RecordState::Active).await?;
            Ok(usage)
        }
        .await;
        let usage = self.finish_create(id, result).await?;
        Ok(SnapshotResult::Dataset(DatasetInfo { usage: Some(usage), ..self.info_of(id)? }))
    }

    /// A new writable dataset from a read-only snapshot.
    pub async fn clone_snapshot(&self, snapshot: &str, name: &str) -> CatalogResult<DatasetInfo> {
        validate_name(name)?;
        let _guard = self.mutation().await?;
        let snap = {
            let st = self.state.read().unwrap();
            snapshot_by_name(&st, snapshot)?.clone()
        };
        self.check_dataset_name_free(name)?;
        let checkpoint = snap.checkpoint.ok_or_else(|| {
            CatalogError::Internal(format!("active snapshot {snapshot} has no checkpoint"))
        })?;
        let quota = self.state.read().unwrap().datasets.get(&snap.dataset_id).and_then(|d| d.quota);
        let origin = Origin::Snapshot { snapshot_id: snap.id, dataset_id: snap.dataset_id, checkpoint };
        let id = self.alloc_and_put_dataset(name, quota, Some(origin)).await?;
        crash::point("clone.after-intent");
        let result = async {
            self.store
                .clone_db(&self.db_path(snap.dataset_id), checkpoint, &self.db_path(id))
                .await
                .map_err(|e| CatalogError::internal("cannot clone the snapshot", e))?;
            crash::point("clone.after-clone");
            self.set_dataset_state(id, RecordState::Active).await
        }
        .await;
        self.finish_create(id, result).await?;
        let usage = Usage { bytes: snap.size_bytes, inodes: snap.inodes };
        Ok(DatasetInfo { usage: Some(usage), ..self.info_of(id)? })
    }

    /// The first step of a read-only snapshot (by hand or by a policy): its `Creating`
    /// record, written durably with the id counter.
    pub(super) async fn begin_snapshot(&self, dataset_id: u64, name: &str) -> CatalogResult<SnapshotRecord> {
        let id = self.alloc_id()?;
        let rec = SnapshotRecord {
            id,
            state: RecordState::Creating,
            name: name.to_string(),
            dataset_id,
            checkpoint: None,
            created_ms: now_ms(),
            size_bytes: 0,
            inodes: 0,
            kubernetes: None,
        };
        let mut batch = WriteBatch::new();
        batch.put(codec::KEY_NEXT_ID, codec::encode_u64(id + 1));
        batch.put(codec::snapshot_key(id), rec.encode());
        self.db.write(batch).await?;
        let mut st = self.state.write().unwrap();
        st.next_id = id + 1;
        st.snapshots.insert(id, rec.clone());
        Ok(rec)
    }

    /// The second step: the checkpoint, taken by the dataset's owner. Returns the record as
    /// it is once active, for the caller to write (with whatever else its batch holds).
    pub(super) async fn checkpoint_snapshot(&self, rec: &SnapshotRecord, crash_at: &str) -> CatalogResult<SnapshotRecord> {
        let (uuid, usage) = self.checkpoint_on_owner(rec.dataset_id, &snap_checkpoint_name(rec.id)).await?;
        crash::point(crash_at);
        Ok(SnapshotRecord {
            state: RecordState::Active,
            checkpoint: Some(uuid),
            size_bytes: usage.bytes,
            inodes: usage.inodes,
            ..rec.clone()
        })
    }

    /// A snapshot whose creation failed is undone now, or at the next start if that fails too.
    pub(super) async fn abandon_snapshot(&self, id: u64) {
        if let Err(e) = self.rollback_snapshot(id).await {
            tracing::warn!("rolling back snapshot {id}: {e}; retried at next start");
        }
    }

    /// Deletes a dataset: removes its objects, or hides it while snapshots or clones need it.
    pub async fn delete_dataset(&self, name: &str) -> CatalogResult<DeleteOutcome> {
        let _guard = self.mutation().await?;
        let id = self.dataset_id(name)?;
        if self.state.read().unwrap().default == Some(id) {
            return Err(CatalogError::FailedPrecondition(format!(
                "dataset {name:?} is the default dataset; make another dataset the default first (set-default)"
            )));
        }
        self.set_dataset_state(id, RecordState::Deleted).await?;
        crash::point("delete.after-intent");
        self.drop_policy(id).await?;
        self.evict(id).await;
        self.collect(vec![Obj::Dataset(id)]).await?;
        Ok(self.outcome(Obj::Dataset(id)))
    }

    pub async fn delete_snapshot(&self, name: &str) -> CatalogResult<DeleteOutcome> {
        let _guard = self.mutation().await?;
        let mut rec = {
            let st = self.state.read().unwrap();
            snapshot_by_name(&st, name)?.clone()
        };
        rec.state = RecordState::Deleted;
        let id = rec.id;
        self.put_snapshot(rec).await?;
        crash::point("delete-snapshot.after-intent");
        self.evict(id).await;
        self.collect(vec![Obj::Snapshot(id)]).await?;
        Ok(self.outcome(Obj::Snapshot(id)))
    }

    pub async fn set_default(&self, name: &str) -> CatalogResult<DatasetInfo> {
        let _guard = self.mutation().await?;
        let id = self.dataset_id(name)?;
        let mut batch = WriteBatch::new();
        batch.put(codec::KEY_DEFAULT, codec::encode_u64(id));
        self.db.write(batch).await?;
        self.state.write().unwrap().default = Some(id);
        self.info_of(id)
    }

    /// Sets (or with `None` removes) a dataset's quota; an open dataset enforces it at once.
    pub async fn set_quota(&self, name: &str, quota: Option<u64>) -> CatalogResult<DatasetInfo> {
        check_quota(quota)?;
        let _guard = self.mutation().await?;
        let id = self.dataset_id(name)?;
        let mut rec = self.state.read().unwrap().datasets[&id].clone();
        rec.quota = quota;
        self.put_dataset(rec).await?;
        if let Some(fs) = self.open_fs(id).await {
            fs.set_quota(quota);
        }
        self.info_of(id)
    }

    /// First start: create `root` and make it the default.
    pub(super) async fn ensure_default(&self) -> anyhow::Result<()> {
        if self.state.read().unwrap().default.is_some() {
            return Ok(());
        }
        let existing = {
            let st = self.state.read().unwrap();
            dataset_by_name(&st, ROOT_DATASET).ok().map(|d| d.id)
        };
        let id = match existing {
            Some(id) => id,
            None => {
                let id = self.alloc_and_put_dataset(ROOT_DATASET, None, None).await?;
                crash::point("create.after-intent");
                let result = async {
                    let fs = self.open_dataset(id, None).await?;
                    self.keep_created(id, fs).await?;
                    crash::point("create.after-db");
                    self.set_dataset_state(id, RecordState::Active).await
                }
                .await;
                self.finish_create(id, result).await?;
                id
            }
        };
        let mut batch = WriteBatch::new();
        batch.put(codec::KEY_DEFAULT, codec::encode_u64(id));
        self.db.write(batch).await?;
        self.state.write().unwrap().default = Some(id);
        tracing::info!("created the default dataset {ROOT_DATASET:?} (id {id})");
        Ok(())
    }

    /// A dataset just created and formatted: kept open for its first use, or, in a cluster,
    /// closed, so that the first server to use it takes its ownership (nobody can know of it
    /// before it is active, so no other writer exists).
    async fn keep_created(&self, id: u64, fs: Arc<Filesystem>) -> CatalogResult<Usage> {
        let usage = fs.usage().await;
        if self.cluster.is_some() {
            fs.close().await.map_err(|e| fs_err("cannot close the new dataset", e))?;
        } else {
            self.slot(id).lock().await.set(fs);
        }
        Ok(usage)
    }
}
