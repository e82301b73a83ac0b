//! The `Registry`: the catalog's operations (what the admin API calls) and the cache of open
//! datasets and snapshots (what the NFS adapter calls). See the module docs of `catalog` for
//! the object model and the crash-safety design.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use slatedb::WriteBatch;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::codec::{self, DatasetRecord, Origin, RecordState, SnapshotRecord, MAX_ID};
use super::crash;
use super::db::{CatalogDb, State, READER_POLL};
use super::slot::{Slot, SlotState};
use super::{validate_name, CatalogError, CatalogResult, ROOT_DATASET};
use crate::config::{Config, DurabilityMode, StorageConfig};
use crate::fs::{Filesystem, FsOptions, Health, Usage, DEFAULT_CHUNK_SIZE};
use crate::store::{dataset_settings, Store};

/// What to do with a cached dataset writer that another process has fenced.
#[derive(Debug, Clone, Copy)]
enum Reacquire {
    Never,
    WhenKnownFenced,
    AfterChecking,
}

/// What an id names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    Dataset,
    Snapshot { dataset_id: u64 },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetInfo {
    pub id: u64,
    pub name: String,
    pub quota: Option<u64>,
    pub created_ms: u64,
    pub origin: Option<Origin>,
    /// The source dataset's name (writable snapshot) or the snapshot's name (clone).
    pub origin_name: Option<String>,
    pub is_default: bool,
    /// Filled where the dataset is opened anyway (info, create, clone).
    pub usage: Option<Usage>,
    /// Whether this server can still make the dataset's writes durable; filled with `usage`
    /// by [`Registry::dataset_info`].
    pub health: Option<Health>,
    pub snapshot_count: u32,
    pub clone_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotInfo {
    pub id: u64,
    pub name: String,
    pub dataset_id: u64,
    pub dataset: String,
    pub checkpoint: Uuid,
    pub created_ms: u64,
    pub size_bytes: u64,
    pub inodes: u64,
    pub clone_count: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SnapshotResult {
    /// A writable snapshot is a dataset.
    Dataset(DatasetInfo),
    Snapshot(SnapshotInfo),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeleteOutcome {
    /// The objects are gone (false: hidden and kept for its dependants).
    pub removed: bool,
    /// What still depends on it (`dataset` or `dataset@snapshot`).
    pub dependants: Vec<String>,
}

#[derive(Debug, Clone, Copy)]
enum Obj {
    Dataset(u64),
    Snapshot(u64),
}

pub struct Registry {
    store: Store,
    db: CatalogDb,
    state: RwLock<State>,
    /// Serialises mutations (and start-up recovery).
    ops: Mutex<()>,
    /// Open datasets (writers) and snapshots (checkpoint readers) by id.
    open: std::sync::Mutex<HashMap<u64, Slot>>,
    durability: DurabilityMode,
    flush_interval: Duration,
    closed: AtomicBool,
    /// How this process reaches the store (endpoint, region…), for checks of other
    /// credentials against the same store (CSI secrets).
    storage: StorageConfig,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn snap_checkpoint_name(id: u64) -> String {
    format!("slatefs-snap-{id}")
}

fn clone_checkpoint_name(id: u64) -> String {
    format!("slatefs-clone-{id}")
}

fn fs_err(context: &str, e: crate::fs::FsError) -> CatalogError {
    match e {
        crate::fs::FsError::Unavailable(m) => CatalogError::Unavailable(format!("{context}: {m}")),
        crate::fs::FsError::Fenced => CatalogError::Unavailable(format!(
            "{context}: another server opened the dataset for writing"
        )),
        e => CatalogError::Internal(format!("{context}: {e}")),
    }
}

impl Registry {
    /// Opens the catalog (as its owner or as a reader, as the config says). The owner resolves
    /// the intents a crash left behind, collects what nothing needs any more and creates the
    /// default dataset `root` on first start.
    pub async fn open(store: Store, config: &Config) -> anyhow::Result<Arc<Registry>> {
        let db = match config.catalog.role {
            crate::config::CatalogRole::Owner => CatalogDb::open_owner(&store).await?,
            crate::config::CatalogRole::Reader => CatalogDb::open_reader(&store).await?,
        };
        let state = db.load().await?;
        let registry = Arc::new(Registry {
            store,
            db,
            state: RwLock::new(state),
            ops: Mutex::new(()),
            open: std::sync::Mutex::new(HashMap::new()),
            durability: config.durability.mode,
            flush_interval: Duration::from_millis(config.durability.flush_interval_ms),
            closed: AtomicBool::new(false),
            storage: config.storage.clone(),
        });
        if registry.db.is_reader() {
            tokio::spawn(follow(Arc::downgrade(&registry)));
        } else {
            let _guard = registry.ops.lock().await;
            registry.recover().await?;
            registry.ensure_default().await?;
        }
        Ok(registry)
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn storage_config(&self) -> &StorageConfig {
        &self.storage
    }

    pub fn is_reader(&self) -> bool {
        self.db.is_reader()
    }

    // ---------------------------------------------------------------- lookups (NFS side)

    /// Maps an export path to an id: `""`/`"/"` → the default dataset, `NAME` → a dataset,
    /// `NAME@SNAP` → a read-only snapshot of dataset NAME.
    pub async fn resolve_export(&self, path: &str) -> CatalogResult<u64> {
        let p = path.trim_matches('/');
        let st = self.state.read().unwrap();
        if p.is_empty() {
            return st
                .default
                .filter(|id| active_dataset(&st, *id).is_some())
                .ok_or_else(|| CatalogError::NotFound("there is no default dataset".into()));
        }
        if let Some((ds, snap)) = p.split_once('@') {
            let ds_id = dataset_by_name(&st, ds)?.id;
            let s = snapshot_by_name(&st, snap)?;
            if s.dataset_id != ds_id {
                return Err(CatalogError::NotFound(format!(
                    "snapshot {snap:?} is not a snapshot of dataset {ds:?}"
                )));
            }
            return Ok(s.id);
        }
        Ok(dataset_by_name(&st, p)?.id)
    }

    pub async fn object_kind(&self, id: u64) -> CatalogResult<ObjectKind> {
        let st = self.state.read().unwrap();
        kind_of(&st, id)
    }

    /// The read-only snapshots of a dataset, by name (for `.snapshots/`).
    pub async fn snapshots_of(&self, dataset_id: u64) -> CatalogResult<Vec<(String, u64)>> {
        let st = self.state.read().unwrap();
        if active_dataset(&st, dataset_id).is_none() {
            return Err(CatalogError::NotFound(format!("no dataset with id {dataset_id}")));
        }
        let mut v: Vec<(String, u64)> = st
            .snapshots
            .values()
            .filter(|s| s.state == RecordState::Active && s.dataset_id == dataset_id)
            .map(|s| (s.name.clone(), s.id))
            .collect();
        v.sort();
        Ok(v)
    }

    /// The open filesystem of a dataset (its writer, opened on first use, quota applied) or of
    /// a read-only snapshot (a reader pinned to its checkpoint), for serving it.
    ///
    /// When another process took the dataset's writer over (SlateDB fencing), a catalog owner
    /// keeps answering with the fenced filesystem, whose writes fail: two servers must not
    /// fight over a dataset. A catalog reader (a node's dataset server on Kubernetes) opens it
    /// again: there the one who takes writers over is the catalog owner, borrowing one to take
    /// a snapshot, and the node must get its dataset back.
    pub async fn filesystem(&self, id: u64) -> CatalogResult<Arc<Filesystem>> {
        let reacquire = if self.db.is_reader() { Reacquire::WhenKnownFenced } else { Reacquire::Never };
        self.filesystem_with(id, reacquire).await
    }

    /// Whether serving a dataset takes its writer back after another process fenced it.
    pub fn reacquires_fenced(&self) -> bool {
        self.db.is_reader()
    }

    /// The filesystem for an admin operation (snapshot, clone, checkpoint, flush): an explicit
    /// request, so a fenced writer is opened again, taking the dataset over.
    async fn filesystem_for_admin(&self, id: u64) -> CatalogResult<Arc<Filesystem>> {
        self.filesystem_with(id, Reacquire::AfterChecking).await
    }

    /// Waits for the slot and for an open within the store's wait limits (`store::wait`): while
    /// the store is away, a call that needs a dataset not open yet answers "unavailable" after
    /// `unavailable_after_ms` and the open goes on for the next call.
    async fn filesystem_with(&self, id: u64, reacquire: Reacquire) -> CatalogResult<Arc<Filesystem>> {
        self.check_open()?;
        self.object_kind(id).await?;
        let slot = self.slot(id);
        crate::store::wait::bounded_read(self.filesystem_in_slot(&slot, id, reacquire)).await
    }

    async fn filesystem_in_slot(&self, slot: &Slot, id: u64, reacquire: Reacquire) -> CatalogResult<Arc<Filesystem>> {
        let mut guard = slot.lock().await;
        // Re-checked under the slot lock: a delete marks the record first, then closes here.
        let kind = self.object_kind(id).await?;
        self.check_open()?;
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
            ObjectKind::Snapshot { dataset_id } => {
                let checkpoint = self
                    .state
                    .read()
                    .unwrap()
                    .snapshots
                    .get(&id)
                    .and_then(|s| s.checkpoint)
                    .ok_or_else(|| CatalogError::NotFound(format!("no snapshot with id {id}")))?;
                let store = self.store.clone();
                guard.start_opening(async move {
                    let reader = store
                        .open_checkpoint(&store.dataset_path(dataset_id), checkpoint)
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

    /// Flushes and closes every open dataset and snapshot, then the catalog. Later calls fail
    /// with Unavailable.
    pub async fn shutdown(&self) {
        let _guard = self.ops.lock().await;
        if self.closed.swap(true, Ordering::AcqRel) {
            return;
        }
        let ids: Vec<u64> = self.open.lock().unwrap().keys().copied().collect();
        for id in ids {
            self.evict(id).await;
        }
        if let Err(e) = self.db.close().await {
            tracing::warn!("closing the catalog: {e:#}");
        }
    }

    // ---------------------------------------------------------------- queries (admin side)

    pub async fn list_datasets(&self) -> CatalogResult<Vec<DatasetInfo>> {
        let st = self.state.read().unwrap();
        Ok(st
            .datasets
            .values()
            .filter(|d| d.state == RecordState::Active)
            .map(|d| dataset_info(&st, d))
            .collect())
    }

    /// A dataset with its usage and health (opens it).
    pub async fn dataset_info(&self, name: &str) -> CatalogResult<DatasetInfo> {
        let id = self.dataset_id(name)?;
        let (fs, health) = self.filesystem_for_report(id).await?;
        let usage = fs.usage().await;
        let mut info = self.info_of(id)?;
        info.usage = Some(usage);
        info.health = Some(health);
        Ok(info)
    }

    /// The filesystem a report (info, stats) reads, and its health; opened if needed. A reader
    /// (a node's dataset server) takes back a writer that turns out to be fenced, as serving
    /// does: there the one who fences is the catalog owner borrowing the writer for a snapshot,
    /// and an idle volume must not look broken after every snapshot. An owner never takes a
    /// fenced writer over for a report (asking how a dataset is must not move its writer): it
    /// reads the manifest, so that a takeover is reported even before it writes again.
    async fn filesystem_for_report(&self, id: u64) -> CatalogResult<(Arc<Filesystem>, Health)> {
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

    pub async fn list_snapshots(&self, dataset: Option<&str>) -> CatalogResult<Vec<SnapshotInfo>> {
        let st = self.state.read().unwrap();
        let only = match dataset {
            Some(name) => Some(dataset_by_name(&st, name)?.id),
            None => None,
        };
        Ok(st
            .snapshots
            .values()
            .filter(|s| s.state == RecordState::Active && only.is_none_or(|d| s.dataset_id == d))
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

    /// Usage, quota and health of a dataset (opens it).
    pub async fn dataset_stats(&self, name: &str) -> CatalogResult<(u64, Usage, Option<u64>, Health)> {
        let id = self.dataset_id(name)?;
        let (fs, health) = self.filesystem_for_report(id).await?;
        Ok((id, fs.usage().await, fs.quota(), health))
    }

    /// Flushes a dataset and takes a named SlateDB checkpoint of it, without recording a
    /// snapshot in the catalog (works on catalog readers, whose servers hold the writers).
    pub async fn checkpoint_dataset(&self, name: &str, checkpoint_name: &str) -> CatalogResult<(Uuid, Usage)> {
        if checkpoint_name.is_empty() {
            return Err(CatalogError::InvalidArgument("checkpoint name must not be empty".into()));
        }
        let id = self.dataset_id(name)?;
        let fs = self.filesystem_for_admin(id).await?;
        let usage = fs.usage().await;
        let uuid = fs.checkpoint(checkpoint_name).await.map_err(|e| fs_err("cannot checkpoint", e))?;
        Ok((uuid, usage))
    }

    pub async fn flush_dataset(&self, name: &str) -> CatalogResult<()> {
        let id = self.dataset_id(name)?;
        let fs = self.filesystem_for_admin(id).await?;
        fs.flush().await.map_err(|e| fs_err("cannot flush", e))
    }

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
            self.slot(id).lock().await.set(fs);
            crash::point("create.after-db");
            self.set_dataset_state(id, RecordState::Active).await
        }
        .await;
        self.finish_create(id, result).await?;
        self.dataset_info_opened(id).await
    }

    /// `readonly`: a named checkpoint recorded as a snapshot. Otherwise a writable snapshot: a
    /// new dataset cloned from a fresh checkpoint of the source.
    pub async fn create_snapshot(&self, source: &str, name: &str, readonly: bool) -> CatalogResult<SnapshotResult> {
        validate_name(name)?;
        let _guard = self.mutation().await?;
        let src = self.dataset_id(source)?;
        if readonly {
            self.check_snapshot_name_free(name)?;
            let id = self.alloc_id()?;
            let rec = SnapshotRecord {
                id,
                state: RecordState::Creating,
                name: name.to_string(),
                dataset_id: src,
                checkpoint: None,
                created_ms: now_ms(),
                size_bytes: 0,
                inodes: 0,
            };
            let mut batch = WriteBatch::new();
            batch.put(codec::KEY_NEXT_ID, codec::encode_u64(id + 1));
            batch.put(codec::snapshot_key(id), rec.encode());
            self.db.write(batch).await?;
            {
                let mut st = self.state.write().unwrap();
                st.next_id = id + 1;
                st.snapshots.insert(id, rec.clone());
            }
            crash::point("snapshot.after-intent");
            let result = async {
                let fs = self.filesystem_for_admin(src).await?;
                let usage = fs.usage().await;
                let uuid = fs
                    .checkpoint(&snap_checkpoint_name(id))
                    .await
                    .map_err(|e| fs_err("cannot checkpoint the dataset", e))?;
                crash::point("snapshot.after-checkpoint");
                let done = SnapshotRecord {
                    state: RecordState::Active,
                    checkpoint: Some(uuid),
                    size_bytes: usage.bytes,
                    inodes: usage.inodes,
                    ..rec.clone()
                };
                self.put_snapshot(done).await
            }
            .await;
            if let Err(e) = result {
                if let Err(e2) = self.rollback_snapshot(id).await {
                    tracing::warn!("rolling back snapshot {id}: {e2}; retried at next start");
                }
                return Err(e);
            }
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
            let src_fs = self.filesystem_for_admin(src).await?;
            let usage = src_fs.usage().await;
            let cp_name = clone_checkpoint_name(id);
            let checkpoint =
                src_fs.checkpoint(&cp_name).await.map_err(|e| fs_err("cannot checkpoint the source", e))?;
            crash::point("clone.after-checkpoint");
            let src_path = self.store.dataset_path(src);
            self.store
                .clone_db(&src_path, checkpoint, &self.store.dataset_path(id))
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
                .clone_db(&self.store.dataset_path(snap.dataset_id), checkpoint, &self.store.dataset_path(id))
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

    // ---------------------------------------------------------------- internals

    fn check_open(&self) -> CatalogResult<()> {
        if self.closed.load(Ordering::Acquire) {
            return Err(CatalogError::Unavailable("the server is shutting down".into()));
        }
        Ok(())
    }

    async fn mutation(&self) -> CatalogResult<tokio::sync::MutexGuard<'_, ()>> {
        if self.db.is_reader() {
            return Err(CatalogError::FailedPrecondition(
                "this server only follows the catalog ([catalog] role = \"reader\"): send changes to the catalog owner".into(),
            ));
        }
        let guard = self.ops.lock().await;
        self.check_open()?;
        Ok(guard)
    }

    fn dataset_id(&self, name: &str) -> CatalogResult<u64> {
        let st = self.state.read().unwrap();
        Ok(dataset_by_name(&st, name)?.id)
    }

    fn info_of(&self, id: u64) -> CatalogResult<DatasetInfo> {
        let st = self.state.read().unwrap();
        let d = st
            .datasets
            .get(&id)
            .ok_or_else(|| CatalogError::NotFound(format!("no dataset with id {id}")))?;
        Ok(dataset_info(&st, d))
    }

    async fn dataset_info_opened(&self, id: u64) -> CatalogResult<DatasetInfo> {
        let mut info = self.info_of(id)?;
        if let Some(fs) = self.open_fs(id).await {
            info.usage = Some(fs.usage().await);
        }
        Ok(info)
    }

    fn check_dataset_name_free(&self, name: &str) -> CatalogResult<()> {
        let st = self.state.read().unwrap();
        if st.datasets.values().any(|d| d.state != RecordState::Deleted && d.name == name) {
            return Err(CatalogError::AlreadyExists(format!("dataset {name:?} already exists")));
        }
        Ok(())
    }

    fn check_snapshot_name_free(&self, name: &str) -> CatalogResult<()> {
        let st = self.state.read().unwrap();
        if st.snapshots.values().any(|s| s.state != RecordState::Deleted && s.name == name) {
            return Err(CatalogError::AlreadyExists(format!("snapshot {name:?} already exists")));
        }
        Ok(())
    }

    fn alloc_id(&self) -> CatalogResult<u64> {
        let id = self.state.read().unwrap().next_id;
        if id >= MAX_ID {
            return Err(CatalogError::ResourceExhausted(format!(
                "all {MAX_ID} dataset and snapshot ids have been used"
            )));
        }
        Ok(id)
    }

    /// Writes the `Creating` intent of a new dataset together with the id counter.
    async fn alloc_and_put_dataset(
        &self,
        name: &str,
        quota: Option<u64>,
        origin: Option<Origin>,
    ) -> CatalogResult<u64> {
        let id = self.alloc_id()?;
        let rec = DatasetRecord {
            id,
            state: RecordState::Creating,
            name: name.to_string(),
            quota,
            created_ms: now_ms(),
            origin,
        };
        let mut batch = WriteBatch::new();
        batch.put(codec::KEY_NEXT_ID, codec::encode_u64(id + 1));
        batch.put(codec::dataset_key(id), rec.encode());
        self.db.write(batch).await?;
        let mut st = self.state.write().unwrap();
        st.next_id = id + 1;
        st.datasets.insert(id, rec);
        Ok(id)
    }

    /// After a create-like operation: on failure, roll the half-made dataset back.
    async fn finish_create<T>(&self, id: u64, result: CatalogResult<T>) -> CatalogResult<T> {
        if result.is_err() {
            if let Err(e2) = self.rollback_dataset(id).await {
                tracing::warn!("rolling back dataset {id}: {e2}; retried at next start");
            }
        }
        result
    }

    async fn put_dataset(&self, rec: DatasetRecord) -> CatalogResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(codec::dataset_key(rec.id), rec.encode());
        self.db.write(batch).await?;
        self.state.write().unwrap().datasets.insert(rec.id, rec);
        Ok(())
    }

    async fn put_snapshot(&self, rec: SnapshotRecord) -> CatalogResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(codec::snapshot_key(rec.id), rec.encode());
        self.db.write(batch).await?;
        self.state.write().unwrap().snapshots.insert(rec.id, rec);
        Ok(())
    }

    async fn set_dataset_state(&self, id: u64, state: RecordState) -> CatalogResult<()> {
        let mut rec = self.state.read().unwrap().datasets[&id].clone();
        rec.state = state;
        self.put_dataset(rec).await
    }

    async fn remove_record(&self, obj: Obj) -> CatalogResult<()> {
        let mut batch = WriteBatch::new();
        match obj {
            Obj::Dataset(id) => batch.delete(codec::dataset_key(id)),
            Obj::Snapshot(id) => batch.delete(codec::snapshot_key(id)),
        }
        self.db.write(batch).await?;
        let mut st = self.state.write().unwrap();
        match obj {
            Obj::Dataset(id) => {
                st.datasets.remove(&id);
            }
            Obj::Snapshot(id) => {
                st.snapshots.remove(&id);
            }
        }
        Ok(())
    }

    async fn open_dataset(&self, id: u64, quota: Option<u64>) -> CatalogResult<Arc<Filesystem>> {
        self.open_dataset_task(id, quota).await
    }

    /// Opening a dataset's writer, as a future that borrows nothing (it may run as a task).
    fn open_dataset_task(
        &self,
        id: u64,
        quota: Option<u64>,
    ) -> impl std::future::Future<Output = CatalogResult<Arc<Filesystem>>> + Send + 'static {
        let store = self.store.clone();
        let settings = dataset_settings(self.flush_interval, self.store.is_local());
        let opts = FsOptions { durability: self.durability, chunk_size: DEFAULT_CHUNK_SIZE, quota };
        async move {
            let db = store
                .open_db(&store.dataset_path(id), settings)
                .await
                .map_err(|e| CatalogError::internal("cannot open the dataset", e))?;
            Filesystem::open(db, opts).await.map_err(|e| fs_err("cannot open the dataset", e))
        }
    }

    fn slot(&self, id: u64) -> Slot {
        self.open.lock().unwrap().entry(id).or_default().clone()
    }

    async fn open_fs(&self, id: u64) -> Option<Arc<Filesystem>> {
        let slot = self.open.lock().unwrap().get(&id).cloned()?;
        let mut guard = slot.lock().await;
        guard.finish_opening().await.ok().flatten()
    }

    /// Closes an open dataset or snapshot (callers still holding it get errors from then on).
    async fn evict(&self, id: u64) {
        let Some(slot) = self.open.lock().unwrap().get(&id).cloned() else { return };
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

    /// What depends on an object (in any state: a record being created or a deleted one kept
    /// for its own dependants needs its parent just the same).
    fn dependants(st: &State, obj: Obj) -> Vec<Obj> {
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

    fn outcome(&self, obj: Obj) -> DeleteOutcome {
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
    async fn collect(&self, mut work: Vec<Obj>) -> CatalogResult<()> {
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
                    self.store
                        .delete_db(&self.store.dataset_path(id))
                        .await
                        .map_err(|e| CatalogError::internal("cannot delete the dataset's objects", e))?;
                    crash::point("delete.after-store");
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
                            .delete_checkpoint(&self.store.dataset_path(rec.dataset_id), cp)
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
    async fn rollback_dataset(&self, id: u64) -> CatalogResult<()> {
        let rec = match self.state.read().unwrap().datasets.get(&id) {
            Some(r) => r.clone(),
            None => return Ok(()),
        };
        self.evict(id).await;
        let path = self.store.dataset_path(id);
        if let Err(e) = self.store.delete_db(&path).await {
            // A database whose creation stopped before its first manifest cannot be proven to
            // be one; the id was fresh, so everything under its prefix is ours to remove.
            tracing::warn!("rolling back dataset {id}: {e:#}; removing its prefix");
            self.purge_prefix(&path).await?;
        }
        if let Some(Origin::Dataset { dataset_id }) = rec.origin {
            self.delete_named_checkpoints(dataset_id, &clone_checkpoint_name(id)).await?;
        }
        self.remove_record(Obj::Dataset(id)).await?;
        tracing::info!("rolled back the unfinished creation of dataset {} ({id})", rec.name);
        Ok(())
    }

    async fn rollback_snapshot(&self, id: u64) -> CatalogResult<()> {
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

    async fn delete_named_checkpoints(&self, dataset_id: u64, name: &str) -> CatalogResult<()> {
        let path = self.store.dataset_path(dataset_id);
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

    async fn purge_prefix(&self, path: &object_store::path::Path) -> CatalogResult<()> {
        let os = self.store.object_store().clone();
        let locations = os.list(Some(path)).map_ok(|m| m.location).boxed();
        os.delete_stream(locations)
            .try_collect::<Vec<_>>()
            .await
            .map_err(|e| CatalogError::internal("cannot remove objects", e))?;
        Ok(())
    }

    /// Start-up: resolve every intent a crash left behind (see the module docs).
    async fn recover(&self) -> anyhow::Result<()> {
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
        // Newest first, so a half-made clone goes before anything it might depend on.
        for id in creating_datasets.into_iter().rev() {
            self.rollback_dataset(id).await?;
        }
        for id in creating_snapshots {
            self.rollback_snapshot(id).await?;
        }
        self.collect(deleted).await?;
        self.sweep_orphans().await?;
        Ok(())
    }

    /// Deletes `datasets/<id>/` databases whose id was handed out but has no record.
    async fn sweep_orphans(&self) -> anyhow::Result<()> {
        let listing = self.store.object_store().list_with_delimiter(Some(&self.store.path("datasets"))).await?;
        for prefix in listing.common_prefixes {
            let Some(last) = prefix.filename() else { continue };
            let Ok(id) = u64::from_str_radix(last, 16) else { continue };
            let known = {
                let st = self.state.read().unwrap();
                id >= st.next_id || st.datasets.contains_key(&id)
            };
            if known {
                continue;
            }
            tracing::warn!("dataset database {prefix} has no catalog record: deleting it");
            if let Err(e) = self.store.delete_db(&prefix).await {
                tracing::warn!("deleting {prefix}: {e:#}; removing its prefix");
                self.purge_prefix(&prefix).await?;
            }
        }
        Ok(())
    }

    /// First start: create `root` and make it the default.
    async fn ensure_default(&self) -> anyhow::Result<()> {
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
                    self.slot(id).lock().await.set(fs);
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

    /// Catalog readers: take in the owner's latest state; close what was deleted and apply
    /// quota changes to open datasets.
    async fn refresh(&self) -> CatalogResult<()> {
        let state = self.db.load().await?;
        let open: Vec<u64> = self.open.lock().unwrap().keys().copied().collect();
        *self.state.write().unwrap() = state;
        for id in open {
            let kind = self.object_kind(id).await;
            match kind {
                Err(_) => self.evict(id).await,
                Ok(ObjectKind::Dataset) => {
                    let quota = self.state.read().unwrap().datasets.get(&id).and_then(|d| d.quota);
                    if let Some(fs) = self.open_fs(id).await {
                        if fs.quota() != quota {
                            fs.set_quota(quota);
                        }
                    }
                }
                Ok(ObjectKind::Snapshot { .. }) => {}
            }
        }
        Ok(())
    }
}

async fn follow(registry: Weak<Registry>) {
    loop {
        tokio::time::sleep(READER_POLL).await;
        let Some(r) = registry.upgrade() else { return };
        if r.closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = r.refresh().await {
            tracing::warn!("following the catalog: {e}");
        }
    }
}

fn check_quota(quota: Option<u64>) -> CatalogResult<()> {
    if quota == Some(0) {
        return Err(CatalogError::InvalidArgument(
            "quota must be at least 1 byte (omit it for no quota)".into(),
        ));
    }
    Ok(())
}

fn active_dataset(st: &State, id: u64) -> Option<&DatasetRecord> {
    st.datasets.get(&id).filter(|d| d.state == RecordState::Active)
}

fn dataset_by_name<'a>(st: &'a State, name: &str) -> CatalogResult<&'a DatasetRecord> {
    validate_name(name)?;
    st.datasets
        .values()
        .find(|d| d.state == RecordState::Active && d.name == name)
        .ok_or_else(|| CatalogError::NotFound(format!("dataset {name:?} does not exist")))
}

fn snapshot_by_name<'a>(st: &'a State, name: &str) -> CatalogResult<&'a SnapshotRecord> {
    validate_name(name)?;
    st.snapshots
        .values()
        .find(|s| s.state == RecordState::Active && s.name == name)
        .ok_or_else(|| CatalogError::NotFound(format!("snapshot {name:?} does not exist")))
}

fn kind_of(st: &State, id: u64) -> CatalogResult<ObjectKind> {
    if active_dataset(st, id).is_some() {
        return Ok(ObjectKind::Dataset);
    }
    match st.snapshots.get(&id) {
        Some(s) if s.state == RecordState::Active => Ok(ObjectKind::Snapshot { dataset_id: s.dataset_id }),
        _ => Err(CatalogError::NotFound(format!("no dataset or snapshot with id {id}"))),
    }
}

fn dataset_info(st: &State, d: &DatasetRecord) -> DatasetInfo {
    let origin_name = d.origin.map(|o| match o {
        Origin::Dataset { dataset_id } => {
            st.datasets.get(&dataset_id).map(|p| p.name.clone()).unwrap_or_default()
        }
        Origin::Snapshot { snapshot_id, .. } => {
            st.snapshots.get(&snapshot_id).map(|s| s.name.clone()).unwrap_or_default()
        }
    });
    let snapshot_count = st
        .snapshots
        .values()
        .filter(|s| s.state == RecordState::Active && s.dataset_id == d.id)
        .count() as u32;
    let clone_count = st
        .datasets
        .values()
        .filter(|c| c.state == RecordState::Active && c.origin.is_some_and(|o| o.parent_dataset() == d.id))
        .count() as u32;
    DatasetInfo {
        id: d.id,
        name: d.name.clone(),
        quota: d.quota,
        created_ms: d.created_ms,
        origin: d.origin,
        origin_name,
        is_default: st.default == Some(d.id),
        usage: None,
        health: None,
        snapshot_count,
        clone_count,
    }
}

fn snapshot_info(st: &State, s: &SnapshotRecord) -> SnapshotInfo {
    SnapshotInfo {
        id: s.id,
        name: s.name.clone(),
        dataset_id: s.dataset_id,
        dataset: st.datasets.get(&s.dataset_id).map(|d| d.name.clone()).unwrap_or_default(),
        checkpoint: s.checkpoint.unwrap_or_default(),
        created_ms: s.created_ms,
        size_bytes: s.size_bytes,
        inodes: s.inodes,
        clone_count: st
            .datasets
            .values()
            .filter(|c| c.state == RecordState::Active && c.origin.is_some_and(|o| o.parent_snapshot() == Some(s.id)))
            .count() as u32,
    }
}
