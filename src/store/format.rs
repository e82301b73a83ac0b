//! The store's layout version: one small object, `slatefs-format.json` at the store's root, that
//! says how the catalog and the datasets are laid out. A server refuses, at start and before it
//! writes anything else, a store whose format is newer than it knows, instead of misreading it;
//! a store without the object (made before it existed, or new) is format 1, the only layout so
//! far, and gets the object written. A later layout (file data in segment objects,
//! docs/data-path.md) raises the number only for stores that take it up; it never re-lays a store
//! out silently.

use anyhow::{bail, Context, Result};
use bytes::Bytes;
use object_store::{ObjectStoreExt, PutMode, PutOptions, PutPayload};
use serde::{Deserialize, Serialize};

use super::Store;

/// The newest layout this build reads and writes.
pub const FORMAT: u32 = 1;

const MARKER: &str = "slatefs-format.json";

#[derive(Serialize, Deserialize)]
struct Marker {
    format: u32,
    /// The slatefs version that wrote the object (for the person reading the error).
    #[serde(default)]
    written_by: String,
}

impl Store {
    /// Checks the store's format marker, writing it when there is none; returns the format.
    /// Two servers starting at once both succeed: the marker is created only if absent.
    pub async fn check_format(&self) -> Result<u32> {
        let key = self.path(MARKER);
        for _ in 0..2 {
            match self.object_store.get(&key).await {
                Ok(got) => {
                    let body = got.bytes().await.with_context(|| format!("cannot read {key} in {}", self.url))?;
                    return self.accept(&key, &body);
                }
                Err(object_store::Error::NotFound { .. }) => {}
                Err(e) => return Err(e).with_context(|| format!("cannot read {key} in {}", self.url)),
            }
            let marker = Marker { format: FORMAT, written_by: env!("CARGO_PKG_VERSION").to_string() };
            let body = serde_json::to_vec(&marker).expect("a marker serializes");
            let opts = PutOptions { mode: PutMode::Create, ..PutOptions::default() };
            match self.object_store.put_opts(&key, PutPayload::from(Bytes::from(body)), opts).await {
                Ok(_) => {
                    tracing::info!("store {}: layout format {FORMAT} recorded in {key}", self.url);
                    return Ok(FORMAT);
                }
                // Another server wrote it first: read what it wrote.
                Err(object_store::Error::AlreadyExists { .. }) => continue,
                Err(e) => return Err(e).with_context(|| format!("cannot write {key} in {}", self.url)),
            }
        }
        bail!("{key} in {} appeared and disappeared while starting; start again", self.url)
    }

    fn accept(&self, key: &object_store::path::Path, body: &[u8]) -> Result<u32> {
        let marker: Marker = serde_json::from_slice(body).with_context(|| {
            format!(
                "{key} in {} is not a slatefs format marker (expected {{\"format\": N}}); \
                 if the store is slatefs's, restore that object from a backup",
                self.url
            )
        })?;
        match marker.format {
            0 => bail!("{key} in {} names format 0, which no slatefs wrote", self.url),
            f if f > FORMAT => bail!(
                "the store {} is in layout format {f} (written by slatefs {}); this slatefs {} reads \
                 format {FORMAT} and older: upgrade slatefs to use this store (nothing was changed)",
                self.url,
                if marker.written_by.is_empty() { "?" } else { &marker.written_by },
                env!("CARGO_PKG_VERSION"),
            ),
            f => Ok(f),
        }
    }
}
