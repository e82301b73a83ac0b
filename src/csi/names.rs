//! Names people know: the PersistentVolumeClaim a volume was made for and the VolumeSnapshot
//! a snapshot was made for, from the metadata csi-provisioner and csi-snapshotter add with
//! `--extra-create-metadata`, recorded with the dataset or snapshot in the catalog.
//!
//! Recorded on every CreateVolume / CreateSnapshot, including the idempotent repeats, so a
//! retry after a crash between creating and recording finishes the job. A catalog owner of a
//! release without names (UNIMPLEMENTED) does not block provisioning.

use std::collections::HashMap;

use tonic::{Code, Status};

use super::backend::Backend;
use super::params;

/// Refuses metadata whose names are no Kubernetes names, before anything is created (the
/// provisioner never sends such; a hand-made call might).
pub fn check_metadata(parameters: &HashMap<String, String>) -> Result<(), Status> {
    for r in [params::pvc_ref(parameters), params::volumesnapshot_ref(parameters)].into_iter().flatten() {
        crate::catalog::checked_kubernetes_ref(r).map_err(|e| Status::invalid_argument(format!("parameters {}*: {e}", params::KUBERNETES_PREFIX)))?;
    }
    Ok(())
}

pub async fn record_pvc(backend: &dyn Backend, dataset: &str, parameters: &HashMap<String, String>) -> Result<(), Status> {
    let Some(r) = params::pvc_ref(parameters) else { return Ok(()) };
    tolerate_unimplemented(backend.set_dataset_kubernetes_ref(dataset, &r).await)
}

pub async fn record_volumesnapshot(backend: &dyn Backend, snapshot: &str, parameters: &HashMap<String, String>) -> Result<(), Status> {
    let Some(r) = params::volumesnapshot_ref(parameters) else { return Ok(()) };
    tolerate_unimplemented(backend.set_snapshot_kubernetes_ref(snapshot, &r).await)
}

fn tolerate_unimplemented(r: Result<(), Status>) -> Result<(), Status> {
    match r {
        Err(e) if e.code() == Code::Unimplemented => {
            tracing::warn!("the catalog owner does not record Kubernetes names (an older release): {}", e.message());
            Ok(())
        }
        other => other,
    }
}
