//! The `Registry`: the catalog's operations (what the admin API calls) and the cache of open
//! datasets and snapshots (what the NFS adapter calls). See the module docs of `catalog` for
//! the object model and the crash-safety design.
//!
//! By concern: `open` (the cache of open datasets and snapshots), `queries` (reports),
//! `ops` (mutations), `collect` (collection and start-up recovery), `inventory` (Kubernetes
//! names and what the metrics exporter reads); record helpers here.

mod collect;
mod follow;
mod inventory;
mod open;
mod ops;
mod owned;
mod policies;
mod queries;
mod rollback;

pub use rollback::RollbackOutcome;

pub use policies::{policy_snapshot_name, PolicyInfo, PolicySettings, MAX_POLICY_PREFIX};

pub use inventory::{checked_kubernetes_ref, Inventory};

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStore;
use slatedb::WriteBatch;
use tokio::sync::Mutex;
use uuid::Uuid;

use super::codec::{self, DatasetRecord, KubernetesRef, Origin, RecordState, SnapshotRecord, MAX_ID};
use super::crash;
use super::db::{CatalogDb, State, READER_POLL};
use super::slot::{Slot, SlotState};
use super::{validate_name, CatalogError, CatalogResult, ROOT_DATASET};
use crate::config::{Config, DurabilityMode, StorageConfig};
use crate::fs::{Filesystem, FsOptions, Health, Usage, DEFAULT_CHUNK_SIZE};
use crate::store::{dataset_settings_with, Store};

/// How long a shutdown waits for the catalog's database to close.
const CATALOG_CLOSE_WAIT: Duration = Duration::from_secs(10);

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
    /// The server that owns it now (a cluster's `dataset info`; `None` otherwise).
    pub owner: Option<String>,
    /// The PersistentVolumeClaim it was made for.
    pub kubernetes: Option<KubernetesRef>,
    /// Its sorted tables, stored and raw (the compression ratio); filled by `dataset info`
    /// and, for datasets open here, the metrics.
    pub tables: Option<crate::store::table_sizes::TableSizes>,
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
    /// Its dataset was deleted and is kept hidden for it.
    pub dataset_deleted: bool,
    /// The VolumeSnapshot it was made for.
    pub kubernetes: Option<KubernetesRef>,
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
    /// Compaction, collection and idle closing of the databases this process opens.
    maintenance: crate::config::MaintenanceConfig,
    /// When each open dataset or snapshot was last asked for (`open::close_idle`).
    last_used: std::sync::Mutex<HashMap<u64, std::time::Instant>>,
    /// Several servers on this store: datasets are written only by their owner.
    cluster: Option<Arc<crate::cluster::Cluster>>,
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
        Self::open_with(store, config, None).await
    }

    /// As [`Registry::open`], as a member of `cluster`: it opens a dataset's writer only while
    /// this server owns the dataset, and sends snapshots, flushes and reports of datasets other
    /// servers own to them.
    pub async fn open_with(
        store: Store,
        config: &Config,
        cluster: Option<Arc<crate::cluster::Cluster>>,
    ) -> anyhow::Result<Arc<Registry>> {
        use crate::config::CatalogRole;
        let (db, state) = match (config.catalog.role, &cluster) {
            (CatalogRole::Owner, _) => {
                let db = CatalogDb::open_owner(&store, &config.maintenance).await?;
                let state = db.load().await?;
                (db, state)
            }
            // In a cluster the catalog owner pushes every change: read the catalog once.
            (CatalogRole::Reader, Some(_)) => (CatalogDb::Fed, CatalogDb::read_once(&store).await?),
            (CatalogRole::Reader, None) => {
                let db = CatalogDb::open_reader(&store).await?;
                let state = db.load().await?;
                (db, state)
            }
        };
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
            maintenance: config.maintenance.clone(),
            last_used: std::sync::Mutex::new(HashMap::new()),
            cluster: cluster.clone(),
        });
        if registry.maintenance.idle_close_ms > 0 {
            let idle = Duration::from_millis(registry.maintenance.idle_close_ms);
            tokio::spawn(open::close_idle(Arc::downgrade(&registry), idle));
        }
        if let Some(c) = &cluster {
            let local: Arc<dyn crate::cluster::LocalDatasets> = registry.clone();
            c.set_local(Arc::downgrade(&local));
        }
        match (&registry.db, &cluster) {
            (CatalogDb::Fed, Some(c)) => {
                tokio::spawn(follow::follow_owner(Arc::downgrade(&registry), c.clone()));
            }
            (CatalogDb::Reader(_), _) => {
                tokio::spawn(follow::follow_store(Arc::downgrade(&registry)));
            }
            _ => {
                let _guard = registry.ops.lock().await;
                registry.recover().await?;
                registry.ensure_default().await?;
                drop(_guard);
                if let (Some(c), Some(feed)) = (&cluster, registry.db.feed()) {
                    c.serve_catalog(feed).await?;
                }
            }
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
            return Ok(snapshot_of(&st, ds, snap)?.id);
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
            .filter(|s| s.state == RecordState::Active && live_dataset(&st, s.dataset_id) == dataset_id)
            .map(|s| (s.name.clone(), s.id))
            .collect();
        v.sort();
        Ok(v)
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
            tracing::debug!("shutting down: closed {id}");
        }
        // Every catalog write was durable when it returned, so what a close may still wait for
        // is background work: a compaction the catalog's worker has not picked up yet waits for
        // its next poll (`[maintenance] catalog_poll_ms`, 5 min), and SlateDB's close waits
        // with it. The next start takes that compaction up again.
        match tokio::time::timeout(CATALOG_CLOSE_WAIT, self.db.close()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!("closing the catalog: {e:#}"),
            Err(_) => tracing::warn!(
                "the catalog did not close within {} s (background compaction); every change to it is durable, stopping anyway",
                CATALOG_CLOSE_WAIT.as_secs()
            ),
        }
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

    /// The prefix of a dataset record's database (a rollback gives a dataset a new one; an id
    /// with no record names its own prefix).
    pub(super) fn db_path(&self, id: u64) -> object_store::path::Path {
        let db = self.state.read().unwrap().datasets.get(&id).map_or(id, |d| d.database_id());
        self.store.dataset_path(db)
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
            database: None,
            successor: None,
            kubernetes: None,
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

    /// Catalog readers: take in the owner's latest state; close what was deleted and apply
    /// quota changes to open datasets.
    async fn refresh(&self) -> CatalogResult<()> {
        let state = self.db.load().await?;
        self.apply_state(state).await;
        Ok(())
    }

    async fn apply_state(&self, state: State) {
        let open: Vec<u64> = self.open.lock().unwrap().keys().copied().collect();
        let database = |st: &State, id: u64| st.datasets.get(&id).map(|d| d.database_id());
        let replaced: Vec<u64> = {
            let old = self.state.read().unwrap();
            open.iter()
                .copied()
                .filter(|&id| database(&old, id) != database(&state, id) || state.rollbacks.contains_key(&id))
                .collect()
        };
        *self.state.write().unwrap() = state;
        for id in open {
            if replaced.contains(&id) {
                // Rolled back (or being rolled back): its writer is of the replaced database.
                self.evict(id).await;
                continue;
            }
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

/// The datasets named `name` whose read-only snapshots go by `NAME@SNAP`: the active one, and
/// deleted ones kept hidden because snapshots of them remain (a snapshot outlives its dataset,
/// and its id keeps naming it). NotFound when there is neither.
fn snapshot_sources(st: &State, name: &str) -> CatalogResult<Vec<u64>> {
    validate_name(name)?;
    let has_snapshots =
        |id: u64| st.snapshots.values().any(|s| s.state == RecordState::Active && s.dataset_id == id);
    let ids: Vec<u64> = st
        .datasets
        .values()
        .filter(|d| d.name == name)
        .filter(|d| match d.state {
            RecordState::Active => true,
            RecordState::Deleted => has_snapshots(d.id),
            RecordState::Creating => false,
        })
        .map(|d| d.id)
        .collect();
    if ids.is_empty() {
        return Err(CatalogError::NotFound(format!("dataset {name:?} does not exist")));
    }
    Ok(ids)
}

/// Read-only snapshot `snap` of a dataset named `dataset`, active or deleted (see
/// [`snapshot_sources`]).
fn snapshot_of<'a>(st: &'a State, dataset: &str, snap: &str) -> CatalogResult<&'a SnapshotRecord> {
    let sources = snapshot_sources(st, dataset)?;
    let s = snapshot_by_name(st, snap)?;
    if !sources.contains(&s.dataset_id) {
        return Err(CatalogError::NotFound(format!(
            "snapshot {snap:?} is not a snapshot of dataset {dataset:?}"
        )));
    }
    Ok(s)
}

/// The dataset a snapshot held in `dataset_id`'s database belongs to: the dataset itself, or,
/// for the hidden record of a database a rollback replaced, the dataset rolled back (while
/// its record exists: once it is collected, the hidden record speaks for its snapshots).
fn live_dataset(st: &State, dataset_id: u64) -> u64 {
    st.datasets
        .get(&dataset_id)
        .and_then(|d| d.successor)
        .filter(|s| st.datasets.contains_key(s))
        .unwrap_or(dataset_id)
}

fn kind_of(st: &State, id: u64) -> CatalogResult<ObjectKind> {
    if active_dataset(st, id).is_some() {
        return Ok(ObjectKind::Dataset);
    }
    match st.snapshots.get(&id) {
        Some(s) if s.state == RecordState::Active => {
            Ok(ObjectKind::Snapshot { dataset_id: live_dataset(st, s.dataset_id) })
        }
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
        .filter(|s| s.state == RecordState::Active && live_dataset(st, s.dataset_id) == d.id)
        .count() as u32;
    let clone_count = st
        .datasets
        .values()
        .filter(|c| {
            c.id != d.id
                && c.state == RecordState::Active
                && c.origin.is_some_and(|o| live_dataset(st, o.parent_dataset()) == d.id)
        })
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
        owner: None,
        kubernetes: d.kubernetes.clone(),
        tables: None,
    }
}

fn snapshot_info(st: &State, s: &SnapshotRecord) -> SnapshotInfo {
    let dataset_id = live_dataset(st, s.dataset_id);
    let source = st.datasets.get(&dataset_id);
    SnapshotInfo {
        id: s.id,
        name: s.name.clone(),
        dataset_id,
        dataset: source.map(|d| d.name.clone()).unwrap_or_default(),
        dataset_deleted: source.is_none_or(|d| d.state == RecordState::Deleted),
        checkpoint: s.checkpoint.unwrap_or_default(),
        created_ms: s.created_ms,
        size_bytes: s.size_bytes,
        inodes: s.inodes,
        clone_count: st
            .datasets
            .values()
            .filter(|c| c.state == RecordState::Active && c.origin.is_some_and(|o| o.parent_snapshot() == Some(s.id)))
            .count() as u32,
        kubernetes: s.kubernetes.clone(),
    }
}
