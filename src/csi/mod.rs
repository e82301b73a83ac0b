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
//!
//! # Running it
//! ```text
//! slatefs csi --mode controller|node|all --endpoint unix:///csi/csi.sock --node-id ID
//!             [-c FILE] [--driver-name csi.slatefs.io] [--admin ADDR] [--nfs-server HOST:PORT]
//! slatefs csi call [--endpoint unix:///csi/csi.sock] <plugin-info | probe | create-volume NAME
//!             --size 1Gi | node-publish --volume-id V --target-path T [--readonly]
//!             [--access-mode MODE] | node-unpublish … | node-stats … | list-volumes … | …>
//! ```
//! `csi call` prints the response as JSON; on a gRPC error it prints `{"code", "message"}` on
//! stderr and exits with the gRPC code number (5 NOT_FOUND, 6 ALREADY_EXISTS, 10 ABORTED, …).
//! The calls that carry CSI secrets take `--secrets-file FILE` (`KEY=VALUE` lines).
//!
//! # Design decisions
//! - **The controller never opens a dataset database.** Every catalog operation is an admin
//!   API call to the catalog owner (`--admin`, else the config's `[admin] listen`). One writer
//!   of the catalog exists per store, whatever the number of CSI processes.
//! - **In-process catalog owner.** `--mode controller` with no `--admin`, no `[admin] listen`
//!   and `[catalog] role = "owner"` opens the catalog itself (Registry + the admin server on a
//!   private socket `slatefs-catalog-admin.sock` beside the CSI socket) and talks to it through
//!   the same admin client. The decision is static, never "whatever answers at start-up": a
//!   reachability test would race with a `slatefs serve` starting a moment later, and two
//!   catalog owners fence each other.
//! - **Ids** (`ids.rs`): volume id = dataset name (the PV name `pvc-<uuid>` when valid and at
//!   most 63 bytes, else `csi-<BLAKE3 of the name>`), so a retried CreateVolume is idempotent
//!   with no id table; snapshot id = `DATASET@SNAPSHOT`, the snapshot's own read-only NFS
//!   export path, so a node can publish a snapshot id as a read-only volume.
//! - **Capacity**: `required_bytes` rounded up to whole MiB, at least 1 MiB, clamped to
//!   `limit_bytes`; 1 GiB without a range; OUT_OF_RANGE when nothing fits (or the restore target
//!   is smaller than the snapshot / the clone target smaller than the source's usage).
//!   The capacity is the dataset's quota; expansion changes the quota (online,
//!   `node_expansion_required = false`), never shrinks it.
//! - **Sources**: from a snapshot = the admin API's CloneSnapshot; from a volume = a writable
//!   snapshot of it (one O(1) SlateDB clone, no intermediate snapshot to clean up). The
//!   dataset's recorded origin is what a repeated CreateVolume is compared with.
//! - **Paging** tokens are the last id returned (`n1.<hex>`): stable when entries are deleted
//!   between pages; anything else is ABORTED.
//! - **Node state is the mount table** (`/proc/self/mountinfo`): a publish is the NFS mount at
//!   the target path, so a restarted plugin knows every volume it published. Idempotency
//!   compares the export and ro/rw (the kernel rewrites other options, so they are not
//!   compared); SINGLE_NODE_SINGLE_WRITER refuses a second target on this node.
//! - **Mounts** are `mount -t nfs -o vers=3,proto=tcp,port=P,mountport=P,mountproto=tcp,nolock,
//!   hard[,ro][,mount_flags]` from `--nfs-server` (default: `[nfs] listen`, wildcard →
//!   loopback); without nfs-utils' `mount.nfs` helper, `addr=`/`mountaddr=` are added for the
//!   kernel's parser. Unmount: plain, then forced, then lazy, each with a timeout.
//! - **Stats** come from the dataset server (DatasetStats: used bytes/inodes, quota, health),
//!   never a `du` walk. The volume condition is abnormal when that server's writer of the
//!   dataset was fenced or is waiting for an unreachable store (`Filesystem::health`), when the
//!   dataset is over quota, or when the server cannot be reached (a condition, not an error).
//!   ControllerGetVolume reports the catalog owner's view the same way. An owner never takes
//!   a fenced writer back to answer; a node's server (catalog reader) does, as serving would.
//! - **Secrets** (`secrets.rs`) are S3 credentials checked, not kept: a call that carries one
//!   first has the catalog owner (NodePublishVolume: the node's server) run the store's
//!   start-up checks with them (admin CheckStoreAccess); PERMISSION_DENIED when the store
//!   rejects them. The servers' own credentials carry the data.
//! - Concurrent calls on one volume/snapshot name or target path answer ABORTED.
//!
//! StorageClass parameters are documented in `params.rs`.

pub mod admin_backend;
pub mod backend;
pub mod caps;
pub mod controller;
pub mod identity;
pub mod ids;
pub mod mounter;
pub mod names;
pub mod node;
pub mod params;
pub mod secrets;
pub mod server;
pub mod transport;

#[allow(clippy::all, missing_docs, rustdoc::all)]
pub mod proto {
    tonic::include_proto!("csi.v1");
}

/// The driver name unless `--driver-name` says otherwise.
pub const DEFAULT_DRIVER_NAME: &str = "csi.slatefs.io";
