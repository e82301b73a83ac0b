//! The cache of open datasets (writers) and snapshots (checkpoint readers), by id.

use super::*;

impl Registry {

    /// The open filesystem of a dataset (its writer, opened on first use, quota applied) or of
    /// a read-only snapshot (a reader pinned to its checkpoint), for serving it.
    ///
    /// When another process took the dataset's writer over (SlateDB fencing), a catalog owner
    /// keeps answering with the fenced filesystem, whose writes fail: two servers must not
    /// fight over a dataset. A catalog reader (a node's dataset server on Kubernetes) opens it
    /// again: there the one who takes writers over is the catalog owner, borrowing one to take
    /// a snapshot, and the node must get its dataset back.
    ///
    /// In a cluster ([`crate::cluster`]) a dataset's writer is opened only while this server
    /// owns the dataset, and a fenced writer is never taken back here: the ownership layer
    /// decides who writes.
    pub async fn filesystem(&self, id: u64) -> CatalogResult<Arc<Filesystem>> {
        let reacquire = if self.reacquires_fenced() { Reacquire::WhenKnownFenced } else { Reacquire::Never };
        self.filesystem_with(id, reacquire).await
    }

    /// Whether serving a dataset takes its writer back after another process fenced it.
    pub fn reacquires_fenced(&self) -> bool {
        self.db.is_reader() && self.cluster.is_none()
    }

    /// The filesystem for an admin operation (snapshot, clone, checkpoint, flush): an explicit
    /// request, so a fenced writer is opened again, taking the dataset over.
    pub(super) async fn filesystem_for_admin(&self, id: u64) -> CatalogResult<Arc<Filesystem>> {
        self.filesystem_with(id, Reacquire::AfterChecking).await
    }

    /// Waits for the slot and for an open within the store's wait limits (`store::wait`): while
    /// the store is away, a call that needs a dataset not open yet answers "unavailable" after
    /// `unavailable_after_ms` and the open goes on for the next call.
    pub(super) async fn filesystem_with(&self, id: u64, reacquire: Reacquire) -> CatalogResult<Arc<Filesystem>> {
        self.check_open()?;
        self.object_kind(id).await?;
        self.last_used.lock().unwrap().insert(id, std::time::Instant::now());
        let slot = self.slot(id);
        crate::store::wait::bounded_read(self.filesystem_in_slot(&slot, id, reacquire)).await
    }

    pub(super) async fn filesystem_in_slot(&self, slot: &Slot, id: u64, reacquire: Reacquire) -> CatalogResult<Arc<Filesystem>> {
        let mut guard = slot.lock().await;
        // Re-checked under the slot lock: a delete marks the record first, then closes here.
        let kind = self.object_kind(id).await?;
        self.check_open()?;
        if self.state.read().unwrap().rollbacks.contains_key(&id) {
            // A catalog reader that learnt of a rollback under way: its database is about
            // to be replaced, and nothing may be written to the old one meanwhile.
            if let Some(fs) = guard.take().await {
                let _ = fs.close().await;
            }
            return Err(CatalogError::Unavailable(format!("dataset {id} is being rolled back")));
        }
        if let (Some(cluster), ObjectKind::Dataset) = (&self.cluster, kind) {
            if !cluster.owns(id) {
                if let Some(fs) = guard.take().await {
                    let _ = fs.close().await;
                }
                return Err(CatalogError::Unavailable(format!("dataset {id} is owned by another server")));
            }
            if let Some(fs) = guard.finish_opening().await? {
                if !fs.is_fenced() {
                    return Ok(fs);
                }
                *guard = SlotState::Closed;
                cluster.lost(id);
                return Err(CatalogError::Unavailable(format!("dataset {id}: another server opened it for writing")));
            }
        }
        if let Some(fs) = guard.finish_opening().await? {
            let fenced = match reacquire {
                Reacquire::Never => false,
                // The serving path must stay cheap: SlateDB marks a writer fenced as soon as
                // a write of it is refused.
                Reacquire::WhenKnownFenced => fs.is_fenced(),
                Reacquire::AfterChecking => fs.check_fenced().await,
            };
            if !fenced {
                return Ok(fs);
            }
            tracing::warn!("dataset {id}: another server took its writer over; opening it again");
            *guard = SlotState::Closed;
        }
        match kind {
            ObjectKind::Dataset => {
                let quota = self.state.read().unwrap().datasets.get(&id).and_then(|d| d.quota);
                guard.start_opening(self.open_dataset_task(id, quota));
            }
            ObjectKind::Snapshot { .. } => {
                // The database holding the checkpoint (after a rollback, the replaced one).
                let (dataset_id, checkpoint) = self
                    .state
                    .read()
                    .unwrap()
                    .snapshots
                    .get(&id)
                    .and_then(|s| Some((s.dataset_id, s.checkpoint?)))
                    .ok_or_else(|| CatalogError::NotFound(format!("no snapshot with id {id}")))?;
                let store = self.store.clone();
                let path = self.db_path(dataset_id);
                guard.start_opening(async move {
                    let reader = store
                        .open_checkpoint(&path, checkpoint)
                        .await
                        .map_err(|e| CatalogError::internal("cannot open snapshot", e))?;
                    Filesystem::open_snapshot(reader).await.map_err(|e| fs_err("cannot open snapshot", e))
                });
            }
        }
        guard
            .finish_opening()
            .await?
            .ok_or_else(|| CatalogError::Internal(format!("object {id}: the open left nothing")))
    }

    pub(super) async fn open_dataset(&self, id: u64, quota: Option<u64>) -> CatalogResult<Arc<Filesystem>> {
        self.open_dataset_task(id, quota).await
    }

    /// Opening a dataset's writer, as a future that borrows nothing (it may run as a task).
    pub(super) fn open_dataset_task(
        &self,
        id: u64,
        quota: Option<u64>,
    ) -> impl std::future::Future<Output = CatalogResult<Arc<Filesystem>>> + Send + 'static {
        self.open_writer_task(self.db_path(id), quota)
    }

    /// Opening the writer of the database at `path` (a dataset's, or the one a rollback is
    /// making for it).
    pub(super) fn open_writer_task(
        &self,
        path: object_store::path::Path,
        quota: Option<u64>,
    ) -> impl std::future::Future<Output = CatalogResult<Arc<Filesystem>>> + Send + 'static {
        let store = self.store.clone();
        let mut settings = dataset_settings_with(self.flush_interval, self.store.is_local(), &self.maintenance);
        crate::store::limit_write_buffer(&mut settings, self.store.write_buffer());
        let opts = FsOptions {
            durability: self.durability,
            chunk_size: DEFAULT_CHUNK_SIZE,
            quota,
            data_format: self.storage.new_dataset_format().unwrap_or(crate::fs::codec::DATA_WHOLE_CHUNKS),
        };
        async move {
            let db = store
                .open_db(&path, settings)
                .await
                .map_err(|e| CatalogError::internal("cannot open the dataset", e))?;
            // A database that opened but holds no usable filesystem is closed, not dropped: its
            // background tasks (compactor, collector, marker writer) hold it and would run on.
            let writer = db.clone();
            match Filesystem::open(db, opts).await {
                Ok(fs) => Ok(fs),
                Err(e) => {
                    let _ = writer.close().await;
                    Err(fs_err("cannot open the dataset", e))
                }
            }
        }
    }

    pub(super) fn slot(&self, id: u64) -> Slot {
        self.open.lock().unwrap().entry(id).or_default().clone()
    }

    pub(super) async fn open_fs(&self, id: u64) -> Option<Arc<Filesystem>> {
        let slot = self.open.lock().unwrap().get(&id).cloned()?;
        let mut guard = slot.lock().await;
        guard.finish_opening().await.ok().flatten()
    }

    /// Closes an open dataset or snapshot (callers still holding it get errors from then on).
    pub(super) async fn evict(&self, id: u64) {
        let Some(slot) = self.open.lock().unwrap().get(&id).cloned() else { return };
        tracing::debug!("closing {id}");
        let mut guard = slot.lock().await;
        if let Some(fs) = guard.take().await {
            if let Err(e) = fs.close().await {
                tracing::warn!("closing {id}: {e}");
            }
        }
        drop(guard);
        let mut open = self.open.lock().unwrap();
        if open.get(&id).is_some_and(|s| Arc::ptr_eq(s, &slot)) {
            open.remove(&id);
        }
    }

    /// Closes every open dataset and snapshot that no call asked for in `idle` and that no
    /// call holds now: an open dataset's writer and compactor poll the store every second or
    /// so, which an idle server must not pay for. Its next call opens it again (its WAL was
    /// flushed at close, so nothing is replayed but the tail). A slot being opened or used
    /// under its lock is left for the next pass.
    pub(super) async fn close_idle_once(&self, idle: std::time::Duration) {
        let slots: Vec<(u64, Slot)> = self.open.lock().unwrap().iter().map(|(id, s)| (*id, s.clone())).collect();
        for (id, slot) in slots {
            if !self.idle_for(id, idle) {
                continue;
            }
            let Ok(mut guard) = slot.try_lock() else { continue };
            let Some(fs) = guard.get() else { continue };
            // Calls get their filesystem under the slot lock, which is held here: the slot's
            // reference and `fs` are the only ones unless a call still has it.
            if Arc::strong_count(&fs) > 2 || !self.idle_for(id, idle) {
                continue;
            }
            *guard = SlotState::Closed;
            if let Err(e) = fs.close().await {
                tracing::warn!("closing idle {id}: {e}");
                continue;
            }
            tracing::debug!("closed {id}: unused for {} ms", idle.as_millis());
            // Its collector stopped with it: one last pass removes what its last compactions
            // left, instead of keeping it until the dataset is next opened.
            // A task of its own, with bounded retries: a store that is away must not hold up
            // the closing of other datasets.
            drop(guard);
            if let Ok(ObjectKind::Dataset) = self.object_kind(id).await {
                let mut opts = crate::store::maintenance::collector(
                    std::time::Duration::from_millis(self.maintenance.gc_interval_ms),
                    std::time::Duration::from_millis(self.maintenance.gc_min_age_ms),
                );
                opts.object_store_max_retries = Some(3);
                let (store, path) = (self.store.clone(), self.store.dataset_path(id));
                tokio::spawn(async move {
                    if let Err(e) = store.collect_once(&path, opts).await {
                        tracing::warn!("collecting dataset {id} after closing it: {e:#}");
                    }
                });
            }
        }
    }

    /// Whether `id` went unasked for `idle`; an id never asked for starts its clock now.
    fn idle_for(&self, id: u64, idle: std::time::Duration) -> bool {
        let now = std::time::Instant::now();
        let mut last = self.last_used.lock().unwrap();
        now.duration_since(*last.entry(id).or_insert(now)) >= idle
    }
}

/// Runs [`Registry::close_idle_once`] a few times per `idle` until the registry is gone or
/// shut down.
pub(super) async fn close_idle(registry: Weak<Registry>, idle: std::time::Duration) {
    let tick = (idle / 4).max(std::time::Duration::from_millis(100));
    loop {
        tokio::time::sleep(tick).await;
        let Some(r) = registry.upgrade() else { return };
        if r.closed.load(Ordering::Acquire) {
            return;
        }
        r.close_idle_once(idle).await;
    }
}
