//! One entry of the registry's open datasets and snapshots: closed, being opened, or open.
//!
//! Opening runs as a task of its own. A caller that stops waiting for it (the object store is
//! away: see `store::wait`) must not cancel SlateDB's open half-way, and the next caller must
//! wait for that same open rather than start another, which would fence the first writer.

use std::future::Future;
use std::sync::Arc;

use tokio::task::JoinHandle;

use super::{CatalogError, CatalogResult};
use crate::fs::Filesystem;

#[derive(Default)]
pub(super) enum SlotState {
    #[default]
    Closed,
    Opening(JoinHandle<CatalogResult<Arc<Filesystem>>>),
    Open(Arc<Filesystem>),
}

/// A slot's lock is held while an open is started or waited for and while it is closed, and
/// the catalog state is re-checked under it; closing waits for an open under way, so a dataset
/// being deleted is never left open.
pub(super) type Slot = Arc<tokio::sync::Mutex<SlotState>>;

impl SlotState {
    /// The open filesystem, if the slot holds one (an open under way does not count).
    pub fn get(&self) -> Option<Arc<Filesystem>> {
        match self {
            SlotState::Open(fs) => Some(fs.clone()),
            _ => None,
        }
    }

    pub fn set(&mut self, fs: Arc<Filesystem>) {
        *self = SlotState::Open(fs);
    }

    /// Starts `open` as a task unless one is under way.
    pub fn start_opening<F>(&mut self, open: F)
    where
        F: Future<Output = CatalogResult<Arc<Filesystem>>> + Send + 'static,
    {
        if !matches!(self, SlotState::Opening(_)) {
            *self = SlotState::Opening(tokio::spawn(open));
        }
    }

    /// Waits for an open under way and returns what the slot then holds. Cancel-safe: if the
    /// caller stops waiting, the open goes on and stays in the slot for the next caller. A
    /// failed open leaves the slot closed (the next caller tries again).
    pub async fn finish_opening(&mut self) -> CatalogResult<Option<Arc<Filesystem>>> {
        let SlotState::Opening(task) = self else { return Ok(self.get()) };
        let result = match task.await {
            Ok(r) => r,
            Err(e) => Err(CatalogError::internal("the open task failed", e)),
        };
        *self = SlotState::Closed;
        let fs = result?;
        self.set(fs.clone());
        Ok(Some(fs))
    }

    /// Takes the filesystem out to close it, after waiting for an open under way.
    pub async fn take(&mut self) -> Option<Arc<Filesystem>> {
        let fs = self.finish_opening().await.ok().flatten();
        *self = SlotState::Closed;
        fs
    }
}
