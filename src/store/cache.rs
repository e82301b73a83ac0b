//! The local read cache of an object-store store: SlateDB's object-store cache
//! (`Settings::object_store_cache_options`), on disk, shared by every dataset of the store.
//!
//! How it is shared (read from SlateDB 0.18's `cached_object_store`):
//! - SlateDB names a cached part `<root>/<object path>/_part<size>-<n>`, and the object path
//!   holds the whole key (`<prefix>/datasets/<id>/compacted/<ulid>.sst`), so the datasets of
//!   one store never collide in one directory — and a clone, which reads its parent's SSTs
//!   under the parent's paths, shares the parent's cached parts.
//! - The key does not name the bucket or the endpoint, so each store gets its own
//!   subdirectory of `[storage] cache_dir`, named after its URL and endpoint.
//! - Each open database runs its own evictor over the directory: it learns the directory's
//!   size by scanning it (at open and every [`SCAN_INTERVAL`]) and from its own writes, and
//!   evicts (any dataset's parts, least recently used first) down to 90% of `cache_size`.
//!   Between scans the directory can therefore exceed `cache_size` by what the other open
//!   datasets added since; the scan interval bounds how long.
//! - Only what SlateDB reads is cached (SST parts; the WAL and manifests are not), and the
//!   `file://` store has no cache (it is a local disk already).
//!
//! What is logged: [`CacheUsage`] (files and bytes on disk), and hit and miss counts in the
//! request counts (SlateDB reports them to a metrics recorder: `super::metrics`).

use std::path::{Path, PathBuf};
use std::time::Duration;

use slatedb::config::ObjectStoreCacheOptions;

/// How often each open database rescans the shared cache directory.
pub const SCAN_INTERVAL: Duration = Duration::from_secs(60);

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReadCache {
    /// This store's directory inside `cache_dir`.
    pub root: PathBuf,
    pub max_bytes: u64,
}

impl ReadCache {
    /// The cache of the store at `url` (and `endpoint`) inside `cache_dir`.
    pub fn new(cache_dir: &Path, url: &str, endpoint: Option<&str>, max_bytes: u64) -> ReadCache {
        ReadCache { root: cache_dir.join(store_dir_name(url, endpoint)), max_bytes }
    }

    pub fn options(&self) -> ObjectStoreCacheOptions {
        ObjectStoreCacheOptions {
            root_folder: Some(self.root.clone()),
            max_cache_size_bytes: Some(self.max_bytes.min(usize::MAX as u64) as usize),
            scan_interval: Some(SCAN_INTERVAL),
            ..ObjectStoreCacheOptions::default()
        }
    }

    /// What the cache holds on disk now.
    pub fn usage(&self) -> CacheUsage {
        let mut u = CacheUsage::default();
        walk(&self.root, &mut u);
        u
    }
}

/// Files and bytes in a cache directory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheUsage {
    pub files: u64,
    pub bytes: u64,
}

impl std::fmt::Display for CacheUsage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} files, {} bytes", self.files, self.bytes)
    }
}

fn walk(dir: &Path, u: &mut CacheUsage) {
    let Ok(rd) = std::fs::read_dir(dir) else { return };
    for e in rd.flatten() {
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&e.path(), u);
        } else if ft.is_file() {
            u.files += 1;
            u.bytes += e.metadata().map(|m| m.len()).unwrap_or(0);
        }
    }
}

/// A readable, stable directory name for a store: `s3_bucket_prefix@127.0.0.1_9000`.
fn store_dir_name(url: &str, endpoint: Option<&str>) -> String {
    let mut name = url.trim().replacen("://", "_", 1);
    if let Some(ep) = endpoint {
        let host = ep.split_once("://").map(|(_, h)| h).unwrap_or(ep);
        name.push('@');
        name.push_str(host);
    }
    name.chars()
        .map(|c| if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '@') { c } else { '_' })
        .collect::<String>()
        .trim_end_matches('_')
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_dirs_differ_by_bucket_prefix_and_endpoint() {
        let a = store_dir_name("s3://b1/p", Some("http://127.0.0.1:9000"));
        assert_eq!(a, "s3_b1_p@127.0.0.1_9000");
        assert_ne!(a, store_dir_name("s3://b2/p", Some("http://127.0.0.1:9000")));
        assert_ne!(a, store_dir_name("s3://b1/q", Some("http://127.0.0.1:9000")));
        assert_ne!(a, store_dir_name("s3://b1/p", Some("http://127.0.0.1:9001")));
        assert_eq!(store_dir_name("gs://bucket/", None), "gs_bucket");
    }

    #[test]
    fn usage_counts_files_below_the_root() {
        let d = tempfile::tempdir().unwrap();
        let c = ReadCache::new(d.path(), "s3://b/p", None, 1 << 20);
        std::fs::create_dir_all(c.root.join("p/datasets/1")).unwrap();
        std::fs::write(c.root.join("p/datasets/1/_part4mb-000000000"), [0u8; 100]).unwrap();
        std::fs::write(c.root.join("p/x"), [0u8; 11]).unwrap();
        assert_eq!(c.usage(), CacheUsage { files: 2, bytes: 111 });
        let o = c.options();
        assert_eq!(o.root_folder.as_deref(), Some(c.root.as_path()));
        assert_eq!(o.max_cache_size_bytes, Some(1 << 20));
    }
}
