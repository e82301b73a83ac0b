//! The catalog's registry as the NFS adapter's source of exports.

use std::sync::Arc;

use async_trait::async_trait;

use super::exports::{ExportError, Exports, ObjectInfo};
use crate::catalog::{CatalogError, ObjectKind, Registry};
use crate::fs::Filesystem;

fn export_error(e: CatalogError) -> ExportError {
    match e {
        CatalogError::NotFound(_) | CatalogError::InvalidArgument(_) => ExportError::NotFound,
        CatalogError::StoreUnreachable(m) => ExportError::Unreachable(m),
        other => ExportError::Unavailable(other.to_string()),
    }
}

#[async_trait]
impl Exports for Registry {
    async fn resolve_export(&self, path: &str) -> Result<u64, ExportError> {
        Registry::resolve_export(self, path).await.map_err(export_error)
    }

    async fn filesystem(&self, object: u64) -> Result<Arc<Filesystem>, ExportError> {
        Registry::filesystem(self, object).await.map_err(export_error)
    }

    async fn object_info(&self, object: u64) -> Result<ObjectInfo, ExportError> {
        match self.object_kind(object).await.map_err(export_error)? {
            ObjectKind::Dataset => Ok(ObjectInfo::Dataset),
            ObjectKind::Snapshot { dataset_id } => Ok(ObjectInfo::Snapshot { dataset: dataset_id }),
        }
    }

    async fn snapshots_of(&self, dataset: u64) -> Result<Vec<(String, u64)>, ExportError> {
        Registry::snapshots_of(self, dataset).await.map_err(export_error)
    }

    fn reacquires_fenced(&self) -> bool {
        Registry::reacquires_fenced(self)
    }
}
