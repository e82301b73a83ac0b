//! What a database's sorted tables (its L0 tables and sorted runs) hold, as stored and before
//! compression: the compression ratio `dataset info` and the metrics report.
//!
//! The stored size of a table is in the manifest; its raw size (keys plus values before block
//! compression) only in the table's stats block, one ranged GET per table. Tables never change,
//! so each raw size is fetched once and kept by table id (a few dozen bytes a table). The
//! figures cover the tree the latest manifest describes: WAL objects that are not yet in a
//! table, and tables only a snapshot still holds, are not in them.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result};
use object_store::path::Path;
use object_store::ObjectStore;
use slatedb::admin::Admin;
use slatedb::{SstReader, VersionedManifest};
use ulid::Ulid;

/// Entries kept before the cache starts over (about 4 MiB); a server with more live tables
/// than this fetches some stats again, which costs requests, not correctness.
const MAX_CACHED_TABLES: usize = 100_000;

/// The sorted tables of one database.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct TableSizes {
    pub tables: u64,
    /// Bytes of the table objects.
    pub stored_bytes: u64,
    /// Keys and values before compression, of the tables whose stats are known.
    pub raw_bytes: u64,
    /// Stored bytes of those same tables, so that `raw_bytes / stored_with_stats` is a ratio
    /// over like with like when a table's stats are missing (written by an older SlateDB, or
    /// not fetched yet).
    pub stored_with_stats: u64,
}

impl TableSizes {
    /// Raw bytes per stored byte; `None` until some table's stats are known.
    pub fn ratio(&self) -> Option<f64> {
        (self.stored_with_stats > 0).then(|| self.raw_bytes as f64 / self.stored_with_stats as f64)
    }
}

/// Raw sizes by table id; `None` records a table without a stats block.
#[derive(Default)]
pub struct TableStatsCache {
    raw: Mutex<HashMap<Ulid, Option<u64>>>,
    /// A background fill runs; scrapes that find stats missing meanwhile start no other.
    filling: AtomicBool,
}

/// Held by the one background fill; lets the next one start when dropped.
pub struct FillTurn(Arc<TableStatsCache>);

impl Drop for FillTurn {
    fn drop(&mut self) {
        self.0.filling.store(false, Ordering::Release);
    }
}

/// A table of the tree: its id, the database directory it lives in (a clone's tables can be
/// its parent's), its stored size and handle.
struct Table {
    id: Ulid,
    home: Path,
    stored: u64,
    handle: slatedb::manifest::SsTableHandle,
}

fn tables_of(path: &Path, manifest: &VersionedManifest) -> Vec<Table> {
    let external: HashMap<Ulid, Path> = manifest
        .external_dbs()
        .iter()
        .flat_map(|db| db.sst_ids.iter().map(|id| (id.value(), Path::from(db.path.as_str()))))
        .collect();
    let views = manifest.l0().iter().chain(manifest.compacted().iter().flat_map(|run| run.sst_views().iter()));
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for view in views {
        let id = view.sst.id.value();
        // Two views can project one table; it is stored once.
        if !seen.insert(id) {
            continue;
        }
        let home = external.get(&id).cloned().unwrap_or_else(|| path.clone());
        out.push(Table { id, home, stored: view.estimate_size(), handle: view.sst.clone() });
    }
    out
}

impl TableStatsCache {
    /// The turn to fill in the background, unless a fill runs already.
    pub fn background_turn(self: &Arc<Self>) -> Option<FillTurn> {
        self.filling
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire)
            .ok()
            .map(|_| FillTurn(self.clone()))
    }

    /// The sizes of `manifest`'s tables from what is cached; no request.
    pub fn sizes_cached(&self, path: &Path, manifest: &VersionedManifest) -> (TableSizes, usize) {
        let raw = self.raw.lock().unwrap();
        let mut sizes = TableSizes::default();
        let mut missing = 0;
        for t in tables_of(path, manifest) {
            sizes.tables += 1;
            sizes.stored_bytes += t.stored;
            match raw.get(&t.id) {
                Some(Some(r)) => {
                    sizes.raw_bytes += r;
                    sizes.stored_with_stats += t.stored;
                }
                Some(None) => {}
                None => missing += 1,
            }
        }
        (sizes, missing)
    }

    /// Fetches the stats of the tables not cached yet, one at a time.
    pub async fn fill(&self, store: &Arc<dyn ObjectStore>, path: &Path, manifest: &VersionedManifest) -> Result<()> {
        let todo: Vec<Table> = {
            let raw = self.raw.lock().unwrap();
            tables_of(path, manifest).into_iter().filter(|t| !raw.contains_key(&t.id)).collect()
        };
        let mut readers: HashMap<Path, SstReader> = HashMap::new();
        for t in todo {
            let reader = readers
                .entry(t.home.clone())
                .or_insert_with(|| SstReader::new(t.home.clone(), store.clone(), None, None));
            let file = reader.open_with_handle(t.handle)?;
            let stats = match file.stats().await {
                Ok(s) => s,
                // Collected since the manifest was read: it is in no tree any more.
                Err(e) if e.kind() == slatedb::ErrorKind::Data => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot read the stats of table {} in {}", t.id, t.home)),
            };
            let mut raw = self.raw.lock().unwrap();
            if raw.len() >= MAX_CACHED_TABLES {
                raw.clear();
            }
            raw.insert(t.id, stats.map(|s| s.raw_key_size + s.raw_val_size));
        }
        Ok(())
    }
}

/// The sizes of the tree the latest manifest of the database at `path` describes, fetching
/// what is not cached; `None` when there is no database there.
pub async fn read_sizes(
    cache: &TableStatsCache,
    store: &Arc<dyn ObjectStore>,
    path: &Path,
) -> Result<Option<TableSizes>> {
    let manifest = Admin::builder(path.clone(), store.clone())
        .build()
        .read_manifest(None)
        .await
        .with_context(|| format!("cannot read the manifest of {path}"))?;
    let Some(manifest) = manifest else { return Ok(None) };
    cache.fill(store, path, &manifest).await?;
    Ok(Some(cache.sizes_cached(path, &manifest).0))
}
