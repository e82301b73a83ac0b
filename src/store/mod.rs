//! The object store under everything: where the catalog and each dataset's SlateDB database
//! live, and the SlateDB operations the layers above need (open, checkpoint, clone, delete).
//!
//! Layout under the store's root prefix:
//!   catalog/                 the catalog database (datasets, snapshots, default)
//!   datasets/<id:016x>/      one SlateDB database per dataset
//!   secrets/<name>           small random secrets shared by every server on the store

pub mod accounting;
pub mod cache;
pub mod cloud;
pub mod collect_scheduler;
pub mod faults;
pub mod format;
pub mod health;
pub mod local_conditional;
pub mod maintenance;
pub mod metrics;
pub mod patch;
pub mod private;
pub mod probe;
pub mod space;
pub mod url;
pub mod wait;
pub mod memory_cache;
pub mod table_sizes;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use object_store::{path::Path, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload};
use slatedb::admin::Admin;
use slatedb::config::{CheckpointOptions, CheckpointScope, DbReaderOptions, Settings};
use slatedb::{CloneSourceSpec, Db, DbReader, DbReaderMode};
use uuid::Uuid;

use crate::config::StorageConfig;

/// A handle to one store: cheap to clone, shared by every dataset opened from it.
///
/// The object store it hands out is the backend wrapped in request accounting (always), fault
/// injection (only after [`Store::with_faults`]) and the watch of the store's health:
/// `backend → AccountingStore → [FaultInjector] → HealthWatch → (SlateDB's read cache and
/// retry layer, inside SlateDB)`.
#[derive(Clone)]
pub struct Store {
    object_store: Arc<dyn ObjectStore>,
    root: Path,
    local_dir: Option<PathBuf>,
    url: String,
    /// The accounted backend, under any fault injection.
    accounted: Arc<dyn ObjectStore>,
    counters: Arc<accounting::RequestCounters>,
    /// Given to every database opened from this store: its read-cache hits and misses go
    /// into `counters`.
    metrics: Arc<metrics::CacheMetrics>,
    /// The no-retry client for start-up checks (cloud stores): accounted, and faulted like
    /// the rest (`probe_store`), or not (`probe_accounted`).
    probe_store: Option<Arc<dyn ObjectStore>>,
    probe_accounted: Option<Arc<dyn ObjectStore>>,
    faults: Option<faults::FaultControl>,
    /// The on-disk read cache every database opened from this store uses (object stores
    /// with `[storage] cache_dir` only).
    cache: Option<cache::ReadCache>,
    /// The in-memory SST cache shared by every database opened from this store.
    memory_cache: memory_cache::MemoryCache,
    /// `[storage] compression`: every database opened from this store writes (and compacts)
    /// its blocks with it.
    compression: Option<slatedb::config::CompressionCodec>,
    /// `[storage] dataset_format = 2`: databases are opened with the patch operator.
    patches: bool,
    /// `[storage] write_buffer_size`: what [`limit_write_buffer`] gives each dataset.
    write_buffer: u64,
    /// Raw sizes of the tables `dataset info` and the metrics have looked at.
    table_stats: Arc<table_sizes::TableStatsCache>,
}

impl Store {
    /// Opens the store the config names. Nothing is sent yet: [`Store::open_checked`] (or
    /// [`probe::probe`]) checks that it is reachable, that the credentials work and that it
    /// has the conditional writes SlateDB needs.
    ///
    /// Also installs the process's limits of waits for an unreachable store
    /// ([`wait::install`], from `[storage] unavailable_after_ms` and `io_error_after_ms`).
    pub fn open(cfg: &StorageConfig) -> Result<Store> {
        let compression = cfg.compression_codec()?;
        let patches = cfg.new_dataset_format()? == patch::PATCHABLE_DATASET_FORMAT;
        let resolved = url::resolve(cfg)?;
        wait::install(wait::WaitLimits::from_config(cfg));
        let mut store =
            Store::from_parts(resolved.object_store, resolved.root, resolved.local_dir, &cfg.url);
        store.memory_cache = memory_cache::MemoryCache::new(cfg.memory_cache_size_bytes()?);
        store.compression = compression;
        store.patches = patches;
        store.write_buffer = cfg.write_buffer_size_bytes()?;
        space::install(store.local_dir.as_deref(), cfg.space_reserve_bytes()?);
        if let (Some(dir), None) = (&cfg.cache_dir, &store.local_dir) {
            let c = cache::ReadCache::new(dir, &cfg.url, cfg.endpoint.as_deref(), cfg.cache_size_bytes()?);
            // Cached SST parts are dataset data: private like a local store.
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new().recursive(true).mode(0o700).create(&c.root).with_context(|| {
                format!("cannot create the read cache directory {}", c.root.display())
            })?;
            store.cache = Some(c);
        }
        store.probe_accounted = resolved.probe_store.map(|p| {
            Arc::new(accounting::AccountingStore::with_counters(p, store.counters.clone()))
                as Arc<dyn ObjectStore>
        });
        store.probe_store = store.probe_accounted.clone();
        Ok(store)
    }

    /// [`Store::open`], then the start-up checks: what a server calls before it serves.
    /// A server's store also logs its request counts (and read cache use) every minute in
    /// which they changed.
    pub async fn open_checked(cfg: &StorageConfig) -> Result<Store> {
        let store = Store::open(cfg)?;
        probe::probe(&store).await?;
        store.check_format().await?;
        if let Some(c) = &store.cache {
            tracing::info!(
                "read cache: {} (at most {} bytes), now {}",
                c.root.display(),
                c.max_bytes,
                c.usage()
            );
        }
        tokio::spawn(log_requests(store.counters.clone(), store.cache.clone()));
        Ok(store)
    }

    pub fn from_parts(
        object_store: Arc<dyn ObjectStore>,
        root: Path,
        local_dir: Option<PathBuf>,
        url: &str,
    ) -> Store {
        let accounted = accounting::AccountingStore::new(object_store);
        let counters = accounted.counters().clone();
        let accounted: Arc<dyn ObjectStore> = Arc::new(accounted);
        Store {
            patches: false,
            object_store: Arc::new(health::HealthWatch::new(accounted.clone())),
            root,
            local_dir,
            url: url.to_string(),
            accounted,
            metrics: Arc::new(metrics::CacheMetrics::new(counters.clone())),
            counters,
            probe_store: None,
            probe_accounted: None,
            faults: None,
            cache: None,
            memory_cache: memory_cache::MemoryCache::new(crate::config::DEFAULT_MEMORY_CACHE_BYTES),
            compression: Some(slatedb::config::CompressionCodec::Lz4),
            write_buffer: crate::config::DEFAULT_WRITE_BUFFER_BYTES,
            table_stats: Arc::default(),
        }
    }

    /// The sizes of the sorted tables of the database at `path` as its latest manifest says
    /// (a LIST and a GET, plus a GET per table not seen before); `None` when there is none.
    pub async fn table_sizes(&self, path: &Path) -> Result<Option<table_sizes::TableSizes>> {
        table_sizes::read_sizes(&self.table_stats, &self.object_store, path).await
    }

    /// The sizes of the tables of an open database from what is known already, sending no
    /// request; stats not known yet are fetched in the background for the next call.
    pub fn table_sizes_now(&self, path: &Path, db: &Db) -> table_sizes::TableSizes {
        let manifest = db.manifest();
        let (sizes, missing) = self.table_stats.sizes_cached(path, &manifest);
        let turn = if missing > 0 { self.table_stats.background_turn() } else { None };
        if let Some(turn) = turn {
            let (cache, store, path) = (self.table_stats.clone(), self.object_store.clone(), path.clone());
            tokio::spawn(async move {
                let _turn = turn;
                if let Err(e) = cache.fill(&store, &path, &manifest).await {
                    tracing::debug!("table stats of {path}: {e:#}");
                }
            });
        }
        sizes
    }

    /// The codec `[storage] compression` names (`None`: uncompressed).
    pub fn compression(&self) -> Option<slatedb::config::CompressionCodec> {
        self.compression
    }

    /// The read cache databases opened from this store use, if any.
    pub fn read_cache(&self) -> Option<&cache::ReadCache> {
        self.cache.as_ref()
    }

    /// The same store with faults injected as `plan` says (replacing any earlier plan);
    /// steer them at run time through [`Store::faults`]. Databases opened before the call
    /// keep the object store they were opened with.
    pub fn with_faults(mut self, plan: faults::FaultPlan) -> Store {
        let control = faults::FaultControl::new(plan);
        let faulty = Arc::new(faults::FaultInjector::new(self.accounted.clone(), control.clone()));
        self.object_store = Arc::new(health::HealthWatch::new(faulty));
        self.probe_store = self.probe_accounted.as_ref().map(|p| {
            Arc::new(faults::FaultInjector::new(p.clone(), control.clone())) as Arc<dyn ObjectStore>
        });
        self.faults = Some(control);
        self
    }

    /// The fault injection control, when faults were asked for.
    pub fn faults(&self) -> Option<&faults::FaultControl> {
        self.faults.as_ref()
    }

    /// Requests and bytes sent to the object store so far by every user of this store
    /// (all clones share the counters).
    pub fn request_stats(&self) -> accounting::RequestStats {
        self.counters.stats()
    }

    pub fn request_counters(&self) -> &Arc<accounting::RequestCounters> {
        &self.counters
    }

    /// The client the start-up checks use: the no-retry twin of a cloud store, or the store.
    pub fn probe_object_store(&self) -> &Arc<dyn ObjectStore> {
        self.probe_store.as_ref().unwrap_or(&self.object_store)
    }

    pub fn url(&self) -> &str {
        &self.url
    }

    pub fn object_store(&self) -> &Arc<dyn ObjectStore> {
        &self.object_store
    }

    /// The local directory of a `file://` store.
    pub fn local_dir(&self) -> Option<&std::path::Path> {
        self.local_dir.as_deref()
    }

    pub fn path(&self, rel: &str) -> Path {
        let mut p = self.root.clone();
        for part in rel.split('/').filter(|s| !s.is_empty()) {
            p = p.clone().join(part);
        }
        p
    }

    pub fn catalog_path(&self) -> Path {
        self.path("catalog")
    }

    pub fn dataset_path(&self, dataset_id: u64) -> Path {
        self.path(&format!("datasets/{dataset_id:016x}"))
    }

    /// Opens (creating if needed) the database at `path` as its one writer. Opening fences any
    /// earlier writer of the same database. The store's read cache is used unless `settings`
    /// names another one.
    pub async fn open_db(&self, path: &Path, mut settings: Settings) -> Result<Db> {
        if let (Some(c), None) = (&self.cache, &settings.object_store_cache_options.root_folder) {
            settings.object_store_cache_options = c.options();
        }
        // The writer, its WAL and the compactor must write with one codec (SlateDB 0.18 takes
        // it twice); every block records its own, so what was written before still reads.
        settings.compression_codec = self.compression;
        if let Some(worker) = settings.compactor_options.as_mut().and_then(|c| c.worker.as_mut()) {
            worker.compression_codec = self.compression;
        }
        // The compactor gets slatefs's scheduler (size-tiered, and a full merge of a quiet
        // tree: collect_scheduler.rs) with the options `settings` has for it.
        let markers = collect_scheduler::MarkerRequests::default();
        let compactor = settings.compactor_options.take().map(|opts| {
            let c = slatedb::CompactorBuilder::new(path.clone(), self.object_store.clone())
                .with_options(opts)
                .with_scheduler_supplier(Arc::new(collect_scheduler::CollectSchedulerSupplier {
                    markers: markers.clone(),
                }));
            match self.patches {
                true => c.with_merge_operator(patch_operator()),
                false => c,
            }
        });
        let compacted = compactor.is_some();
        let mut builder = Db::builder(path.clone(), self.object_store.clone()).with_settings(settings);
        if let Some(compactor) = compactor {
            builder = builder.with_compactor_builder(compactor);
        }
        if self.patches {
            builder = builder.with_merge_operator(patch_operator());
        }
        let db = builder
            .with_metrics_recorder(self.metrics.clone())
            .with_db_cache(self.memory_cache.cache(), memory_cache::MemoryCache::scope(path))
            .build()
            .await
            .with_context(|| format!("cannot open database {path}"))?;
        if compacted {
            collect_scheduler::spawn_marker_writer(db.clone(), markers);
        }
        Ok(db)
    }

    /// Opens a read-only view pinned to a checkpoint: what a read-only snapshot serves.
    pub async fn open_checkpoint(&self, path: &Path, checkpoint: Uuid) -> Result<DbReader> {
        let mut builder = DbReader::builder(path.clone(), self.object_store.clone())
            .with_reader_mode(DbReaderMode::Checkpoint(checkpoint))
            .with_options(self.reader_options());
        if self.patches {
            builder = builder.with_merge_operator(patch_operator());
        }
        builder
            .with_metrics_recorder(self.metrics.clone())
            .with_db_cache(self.memory_cache.cache(), memory_cache::MemoryCache::scope(path))
            .build()
            .await
            .with_context(|| format!("cannot open checkpoint {checkpoint} of {path}"))
    }

    /// Opens a read-only view of the latest durable state (SlateDB keeps a short-lived
    /// checkpoint for it while it is open): for reading a database nobody is writing.
    pub async fn open_latest(&self, path: &Path) -> Result<DbReader> {
        let mut builder = DbReader::builder(path.clone(), self.object_store.clone())
            .with_reader_mode(DbReaderMode::ManagedCheckpoint)
            .with_options(self.reader_options());
        if self.patches {
            builder = builder.with_merge_operator(patch_operator());
        }
        builder
            .with_metrics_recorder(self.metrics.clone())
            .with_db_cache(self.memory_cache.cache(), memory_cache::MemoryCache::scope(path))
            .build()
            .await
            .with_context(|| format!("cannot open a read-only view of {path}"))
    }

    /// Takes a named checkpoint of an open database holding everything durable in it: callers
    /// flush the WAL first, so that is everything written before the call. The `Durable`
    /// scope records the WAL position in the checkpoint (readers and clones replay the WAL up
    /// to it) instead of first turning the memtable into an L0 table, which is what keeps a
    /// snapshot taken right after a large write as quick as any other. SlateDB's own error is
    /// kept so that callers can tell a fenced writer from other failures.
    pub async fn checkpoint(db: &Db, name: &str) -> Result<Uuid, slatedb::Error> {
        let opts = CheckpointOptions { lifetime: None, source: None, name: Some(name.to_string()) };
        Ok(db.create_checkpoint(CheckpointScope::Durable, &opts).await?.id)
    }

    pub async fn list_checkpoints(&self, path: &Path) -> Result<Vec<slatedb::Checkpoint>> {
        Admin::builder(path.clone(), self.object_store.clone())
            .build()
            .list_checkpoints(None)
            .await
            .with_context(|| format!("cannot list checkpoints of {path}"))
    }

    pub async fn delete_checkpoint(&self, path: &Path, checkpoint: Uuid) -> Result<()> {
        Admin::builder(path.clone(), self.object_store.clone())
            .build()
            .delete_checkpoint(checkpoint)
            .await
            .with_context(|| format!("cannot delete checkpoint {checkpoint} of {path}"))
    }

    /// Makes `child` a new database that shares every SST of `parent` at `checkpoint`.
    /// Nothing but manifests (and the unflushed WAL tail) is written.
    pub async fn clone_db(&self, parent: &Path, checkpoint: Uuid, child: &Path) -> Result<()> {
        Admin::builder(child.clone(), self.object_store.clone())
            .build()
            .create_clone_builder_from_source(CloneSourceSpec::with_checkpoint(
                parent.clone(),
                checkpoint,
            ))
            .build()
            .await
            .with_context(|| format!("cannot clone {parent} at {checkpoint} into {child}"))?;
        Ok(())
    }

    /// One garbage collection pass over a database (open here, elsewhere or not at all), as
    /// `opts` says: what a dataset closed for being idle gets, since its own collector stopped
    /// with it.
    pub async fn collect_once(&self, path: &Path, opts: slatedb::config::GarbageCollectorOptions) -> Result<()> {
        Admin::builder(path.clone(), self.object_store.clone())
            .build()
            .run_gc_once(opts)
            .await
            .with_context(|| format!("cannot collect garbage of {path}"))
    }

    /// Removes a database and its objects, releasing the checkpoints it pinned in its parents.
    /// Idempotent: deleting what is already gone succeeds.
    pub async fn delete_db(&self, path: &Path) -> Result<()> {
        Admin::builder(path.clone(), self.object_store.clone())
            .build()
            .delete_db(true)
            .await
            .with_context(|| format!("cannot delete database {path}"))?;
        Ok(())
    }

    /// A 32-byte secret stored once per store (e.g. the file-handle key): the first server
    /// to start creates it with a conditional put, every other one reads the same bytes. On a
    /// local store it is a file only this user may read ([`private::local_secret`]).
    pub async fn secret(&self, name: &str) -> Result<[u8; 32]> {
        let path = self.path(&format!("secrets/{name}"));
        if let Some(dir) = &self.local_dir {
            let file = dir.join(path.as_ref());
            return tokio::task::spawn_blocking(move || private::local_secret(&file)).await?;
        }
        loop {
            match self.object_store.get(&path).await {
                Ok(got) => {
                    let bytes = got.bytes().await?;
                    let key: [u8; 32] = bytes.as_ref().try_into().with_context(|| {
                        format!("secret {path} is {} bytes, expected 32", bytes.len())
                    })?;
                    return Ok(key);
                }
                Err(object_store::Error::NotFound { .. }) => {
                    let fresh: [u8; 32] = rand::random();
                    let opts = PutOptions { mode: PutMode::Create, ..Default::default() };
                    match self
                        .object_store
                        .put_opts(&path, PutPayload::from(Bytes::copy_from_slice(&fresh)), opts)
                        .await
                    {
                        Ok(_) => return Ok(fresh),
                        Err(object_store::Error::AlreadyExists { .. }) => continue,
                        Err(e) => return Err(e).context("cannot store secret"),
                    }
                }
                Err(e) => return Err(e).with_context(|| format!("cannot read secret {path}")),
            }
        }
    }
}

impl Store {
    /// Reader options with the store's read cache.
    pub fn reader_options(&self) -> DbReaderOptions {
        let mut o = DbReaderOptions::default();
        if let Some(c) = &self.cache {
            o.object_store_cache_options = c.options();
        }
        o
    }
}

/// Logs the store's request counts, and the read cache's size, every minute in which the
/// counts changed; ends when the store's last handle is gone.
async fn log_requests(
    counters: Arc<accounting::RequestCounters>,
    cache: Option<cache::ReadCache>,
) {
    let counters = Arc::downgrade(&counters);
    let mut last = accounting::RequestStats::default();
    loop {
        tokio::time::sleep(Duration::from_secs(60)).await;
        let Some(c) = counters.upgrade() else { return };
        let now = c.stats();
        drop(c);
        if now == last {
            continue;
        }
        let delta = now - last;
        last = now;
        match &cache {
            Some(cache) => {
                let usage = tokio::task::spawn_blocking({
                    let cache = cache.clone();
                    move || cache.usage()
                })
                .await
                .unwrap_or_default();
                tracing::info!(
                    "object store requests: last minute {delta}; since start {now}; read cache {usage}"
                )
            }
            None => tracing::info!("object store requests: last minute {delta}; since start {now}"),
        }
    }
}

/// SlateDB settings for a dataset's database. The WAL is flushed on demand by the group
/// committer in sync mode and on `flush_interval` in async mode.
///
/// Memory per busy dataset is bounded by its write buffer ([`limit_write_buffer`], the default
/// `[storage] write_buffer_size`). SlateDB's own defaults (64 MiB memtable, 512 MiB unflushed)
/// let one async-mode writer grow the process past 1.5 GiB.
///
/// SlateDB stops flushing memtables, and so stalls every writer, once `l0_max_ssts` L0 tables
/// wait for compaction. On a local disk compaction is quick, and 16 instead of the default 8
/// more than doubled a 1 GiB sequential write (80-130 to 230-490 MB/s, BENCHMARKS.md). On
/// object storage it only moved the stall: the sequential write gained 40%, but the random
/// writes after it waited on a 1 GiB compaction (60-80 instead of 400-700 ops/s), so object
/// stores keep 8.
/// With `[storage] dataset_format = 2` every database and reader of the store gets the patch
/// operator: a value written as patches is otherwise unreadable (SlateDB refuses merge records
/// it has no operator for). Only then: with an operator SlateDB 0.18 compacts differently
/// (a settled quiet tree was merged again in tests/collection.rs, not understood yet), so the
/// default format 1 keeps the databases as they were.
fn patch_operator() -> Arc<dyn slatedb::MergeOperator + Send + Sync> {
    Arc::new(patch::PatchOperator)
}

pub fn dataset_settings(flush_interval: Duration, on_local_disk: bool) -> Settings {
    dataset_settings_with(flush_interval, on_local_disk, &crate::config::MaintenanceConfig::default())
}

/// [`dataset_settings`] with compaction and collection as `[maintenance]` says.
pub fn dataset_settings_with(
    flush_interval: Duration,
    on_local_disk: bool,
    maintenance_cfg: &crate::config::MaintenanceConfig,
) -> Settings {
    let l0_max_ssts = if on_local_disk { 16 } else { 8 };
    let mut settings = Settings {
        flush_interval: Some(flush_interval),
        l0_max_ssts,
        l0_max_ssts_per_key: l0_max_ssts,
        ..Settings::default()
    };
    limit_write_buffer(&mut settings, crate::config::DEFAULT_WRITE_BUFFER_BYTES);
    maintenance::apply_dataset(&mut settings, maintenance_cfg);
    settings
}

/// Splits a dataset's write buffer of `bytes` between the active memtable (two fifths, at most
/// 64 MiB: the size of the L0 tables it becomes) and the changes waiting to be written
/// (`max_unflushed_bytes`, the rest), so that the two together stay within `bytes`. Smaller
/// memtables make more, smaller L0 tables and writers stall on their compaction: a 1 GiB
/// sequential write fell from 181-306 MB/s to 51 with 24 MiB ones (docs/memory.md).
pub fn limit_write_buffer(settings: &mut Settings, bytes: u64) {
    // SlateDB wants more unflushed bytes than one memtable holds.
    let memtable = (bytes * 2 / 5).clamp(4 << 20, 64 << 20);
    settings.l0_sst_size_bytes = memtable as usize;
    settings.max_unflushed_bytes = bytes.saturating_sub(memtable).max(memtable + (1 << 20)) as usize;
}

impl Store {
    /// Whether the store is a directory on a local disk (`file://`).
    pub fn is_local(&self) -> bool {
        self.local_dir.is_some()
    }

    /// `[storage] write_buffer_size` in bytes: see [`limit_write_buffer`].
    pub fn write_buffer(&self) -> u64 {
        self.write_buffer
    }

    /// Total and free bytes of the disk under a `file://` store; `None` for object stores,
    /// whose capacity is not known.
    pub fn capacity(&self) -> Option<(u64, u64)> {
        let dir = self.local_dir.as_ref()?;
        let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
        let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: c_path is a valid NUL-terminated path and st a writable statvfs.
        if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
            return None;
        }
        let frsize = st.f_frsize as u64;
        Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
    }
}
