//! The Kubernetes CSI driver (spec v1.12): Identity, Controller and Node services over one unix
//! socket, run by `slatefs csi`.
//!
//! - PV = dataset, VolumeSnapshot = read-only snapshot, PVC from snapshot = clone of it, PVC
//!   from PVC = writable snapshot, expansion = quota change (`controller.rs`).
//! - The node mounts the dataset's NFS export from the node's dataset server (`node.rs`,
//!   `mounter.rs`).
//! - Neither opens a dataset database: the controller talks to the catalog owner's admin API,
//!   the node to its dataset server's admin API (`backend.rs`, `admin_backend.rs`).
//! - Ids, capacities and paging are pure functions in `ids.rs`; parameters in `params.rs`;
//!   capability rules in `caps.rs`.

pub mod admin_backend;
pub mod backend;
pub mod caps;
pub mod controller;
pub mod identity;
pub mod ids;
pub mod mounter;
pub mod node;
pub mod params;
pub mod server;
pub mod transport;

#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("csi.v1");
}

/// The driver name unless `--driver-name` says otherwise.
pub const DEFAULT_DRIVER_NAME: &str = "csi.slatefs.io";
