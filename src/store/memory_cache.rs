//! One in-memory SST block and metadata cache for every database a process opens.
//!
//! SlateDB gives each `Db` and `DbReader` its own caches by default (512 MiB of blocks plus
//! 128 MiB of indexes and filters), so a node serving fifty busy volumes could grow to tens
//! of gigabytes. A single cache, sized by `[storage] memory_cache_size`, bounds the process
//! whatever the number of datasets, and lets the busy ones use what the idle ones do not.

use std::sync::Arc;

use object_store::path::Path;
use slatedb::db_cache::foyer::{FoyerCache, FoyerCacheOptions};
use slatedb::db_cache::{DbCache, SplitCache};

#[derive(Clone)]
pub struct MemoryCache {
    cache: Arc<dyn DbCache>,
}

impl MemoryCache {
    /// Three quarters for data blocks, one quarter for indexes and bloom filters (these are
    /// what every point read needs first).
    pub fn new(bytes: u64) -> MemoryCache {
        let part = |b: u64| -> Option<Arc<dyn DbCache>> {
            Some(Arc::new(FoyerCache::new_with_opts(FoyerCacheOptions {
                max_capacity: b.max(1 << 20),
                ..Default::default()
            })))
        };
        let split = SplitCache::new().with_block_cache(part(bytes / 4 * 3)).with_meta_cache(part(bytes / 4));
        MemoryCache { cache: Arc::new(split) }
    }

    pub fn cache(&self) -> Arc<dyn DbCache> {
        self.cache.clone()
    }

    /// The scope of one database's entries in the shared cache: stable for a path, so a
    /// checkpoint reader of a dataset shares entries with its writer (SST files never change).
    pub fn scope(path: &Path) -> u64 {
        let hash = blake3::hash(path.as_ref().as_bytes());
        u64::from_le_bytes(hash.as_bytes()[..8].try_into().expect("8 bytes"))
    }
}
