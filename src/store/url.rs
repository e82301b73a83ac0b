//! Turns a store URL from the config into an object store and a root prefix.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use object_store::{local::LocalFileSystem, path::Path, ObjectStore};

use crate::config::StorageConfig;

/// Where a store lives: the backend and the prefix under which every slatefs object is kept.
pub struct ResolvedStore {
    pub object_store: Arc<dyn ObjectStore>,
    pub root: Path,
    /// The local directory for `file://` stores (the admin socket's default home).
    pub local_dir: Option<PathBuf>,
    /// For cloud stores: a client with the same settings but no retries and short timeouts,
    /// used by the start-up checks (`probe.rs`).
    pub probe_store: Option<Arc<dyn ObjectStore>>,
}

pub fn resolve(cfg: &StorageConfig) -> Result<ResolvedStore> {
    let url = cfg.url.trim();
    let Some((scheme, rest)) = url.split_once("://") else {
        bail!("storage url {url:?} has no scheme: use file://, s3://, gs:// or az://");
    };
    match scheme {
        "file" => resolve_local(rest),
        "s3" | "gs" | "az" => {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                bail!("storage url {url:?} names no bucket");
            }
            let stores = super::cloud::build_with_probe(scheme, bucket, cfg)?;
            Ok(ResolvedStore {
                object_store: stores.main,
                root: Path::from(prefix),
                local_dir: None,
                probe_store: Some(stores.probe),
            })
        }
        other => bail!("storage url scheme {other:?} is not supported: use file://, s3://, gs:// or az://"),
    }
}

fn resolve_local(rest: &str) -> Result<ResolvedStore> {
    // `file:///abs` gives "/abs"; `file://./rel` gives "./rel" (relative to the working dir).
    let dir = PathBuf::from(if rest.is_empty() { "." } else { rest });
    let dir = if dir.is_absolute() { dir } else { std::env::current_dir()?.join(dir) };
    // Private to this user: it holds every dataset and the file-handle key.
    super::private::prepare_dir(&dir)?;
    let dir = dir.canonicalize()?;
    let fs = LocalFileSystem::new_with_prefix(&dir)
        .with_context(|| format!("cannot open the store directory {}", dir.display()))?;
    // SlateDB's garbage collector needs conditional updates, which LocalFileSystem lacks.
    let store = super::local_conditional::LocalConditionalStore::new(Arc::new(fs), dir.clone());
    Ok(ResolvedStore {
        object_store: Arc::new(store),
        root: Path::from(""),
        local_dir: Some(dir),
        probe_store: None,
    })
}
