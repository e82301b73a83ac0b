//! CSI Node service: mounts a volume's NFS export (`SERVER:/DATASET`, or `SERVER:/DATASET@SNAP`
//! for a read-only snapshot volume) at the target path, unmounts it, and reports its usage.
//!
//! State lives in the kernel's mount table, read through the [`Mounter`]: a publish is "the NFS
//! mount at the target path", so a restarted plugin sees exactly what is mounted and nothing is
//! kept in memory but a guard against two concurrent calls on one target path.
//!
//! The node's dataset server (the `slatefs serve` DaemonSet on this node) is reached through its
//! admin API ([`Backend`]): before mounting, DatasetStats makes sure it knows and serves the
//! dataset (NOT_FOUND for an unknown volume); NodeGetVolumeStats reports that dataset's usage
//! (never a `du` walk), and an abnormal condition when the server cannot answer.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tonic::{Code, Request, Response, Status};

use super::backend::Backend;
use super::mounter::{self, MountInfo, Mounter};
use super::proto::node_server::Node;
use super::proto::volume_capability::access_mode::Mode;
use super::proto::*;
use super::{caps, ids, secrets};

/// How long a stats call may wait for the dataset server before the volume is reported abnormal.
const STATS_TIMEOUT: Duration = Duration::from_secs(10);

pub struct NodeService {
    node_id: String,
    backend: Arc<dyn Backend>,
    mounter: Arc<dyn Mounter>,
    /// NFS server address as the kernel should reach it (`127.0.0.1`, or `10.0.2.2` in a VM).
    nfs_host: String,
    nfs_port: u16,
    inflight: Mutex<HashSet<PathBuf>>,
}

struct Inflight<'a> {
    set: &'a Mutex<HashSet<PathBuf>>,
    key: PathBuf,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.key);
        }
    }
}

/// What a volume id mounts.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Export {
    Dataset(String),
    Snapshot { dataset: String, snapshot: String },
}

impl Export {
    fn parse(volume_id: &str) -> Option<Export> {
        if let Some(d) = ids::parse_volume_id(volume_id) {
            return Some(Export::Dataset(d.to_string()));
        }
        ids::parse_snapshot_id(volume_id)
            .map(|(d, s)| Export::Snapshot { dataset: d.to_string(), snapshot: s.to_string() })
    }
    /// The NFS export path, without the leading `/`.
    fn path(&self) -> String {
        match self {
            Export::Dataset(d) => d.clone(),
            Export::Snapshot { dataset, snapshot } => ids::snapshot_id(dataset, snapshot),
        }
    }
    fn dataset(&self) -> &str {
        match self {
            Export::Dataset(d) | Export::Snapshot { dataset: d, .. } => d,
        }
    }
}

/// The export path of an NFS mount source `HOST:/PATH` (host may be `[v6]`).
fn export_of(m: &MountInfo) -> Option<&str> {
    if !m.is_nfs() {
        return None;
    }
    m.source.rsplit_once(":/").map(|(_, p)| p)
}

fn is_ip(host: &str) -> bool {
    host.trim_start_matches('[').trim_end_matches(']').parse::<std::net::IpAddr>().is_ok()
}

/// Whether `mount -t nfs` goes through nfs-utils' `mount.nfs` helper. Without it (a busybox
/// image) the option string goes straight to the kernel, which then needs the server and
/// MOUNT addresses spelled out.
fn has_mount_helper() -> bool {
    ["/sbin/mount.nfs", "/usr/sbin/mount.nfs", "/bin/mount.nfs", "/usr/bin/mount.nfs"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// The NFSv3 mount options: one TCP port for NFS and MOUNT (no portmapper), no NLM (the server
/// has none), `hard` so a restarting server pauses I/O instead of failing it.
pub fn mount_options(host: &str, port: u16, readonly: bool, flags: &[String], helper: bool) -> Vec<String> {
    let mut o: Vec<String> = vec![
        "vers=3".into(),
        "proto=tcp".into(),
        format!("port={port}"),
        format!("mountport={port}"),
        "mountproto=tcp".into(),
        "nolock".into(),
        "hard".into(),
    ];
    if !helper && is_ip(host) {
        let h = host.trim_start_matches('[').trim_end_matches(']');
        o.push(format!("addr={h}"));
        o.push(format!("mountaddr={h}"));
    }
    if readonly {
        o.push("ro".into());
    }
    o.extend(flags.iter().cloned());
    o
}

fn required(what: &str, v: &str) -> Result<(), Status> {
    if v.is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(())
    }
}

fn mount_err(e: mounter::MountError) -> Status {
    Status::internal(format!("{e}"))
}

impl NodeService {
    pub fn new(
        node_id: String,
        backend: Arc<dyn Backend>,
        mounter: Arc<dyn Mounter>,
        nfs_host: String,
        nfs_port: u16,
    ) -> Self {
        NodeService { node_id, backend, mounter, nfs_host, nfs_port, inflight: Mutex::new(HashSet::new()) }
    }

    fn begin(&self, target: &Path) -> Result<Inflight<'_>, Status> {
        let mut s = self.inflight.lock().map_err(|_| Status::internal("in-flight set poisoned"))?;
        if !s.insert(target.to_path_buf()) {
            return Err(Status::aborted(format!(
                "an operation on {} is already in progress",
                target.display()
            )));
        }
        Ok(Inflight { set: &self.inflight, key: target.to_path_buf() })
    }

    fn source(&self, export: &Export) -> String {
        let host = if self.nfs_host.contains(':') && !self.nfs_host.starts_with('[') {
            format!("[{}]", self.nfs_host)
        } else {
            self.nfs_host.clone()
        };
        format!("{host}:/{}", export.path())
    }

    /// Makes sure the node's dataset server knows (and serves) what `export` names.
    async fn ensure_served(&self, export: &Export) -> Result<(), Status> {
        let map = |e: Status, what: String| match e.code() {
            Code::NotFound => Status::not_found(format!("volume {what} does not exist")),
            Code::Unavailable | Code::DeadlineExceeded | Code::Unknown => {
                Status::unavailable(format!("dataset server unavailable: {}", e.message()))
            }
            _ => e,
        };
        self.backend.dataset_stats(export.dataset()).await.map_err(|e| map(e, export.path()))?;
        if let Export::Snapshot { dataset, snapshot } = export {
            let snaps = self.backend.list_snapshots(dataset).await.map_err(|e| map(e, export.path()))?;
            if !snaps.iter().any(|s| &s.name == snapshot) {
                return Err(Status::not_found(format!("volume {} does not exist", export.path())));
            }
        }
        Ok(())
    }
}

#[tonic::async_trait]
impl Node for NodeService {
    async fn node_stage_volume(
        &self,
        _: Request<NodeStageVolumeRequest>,
    ) -> Result<Response<NodeStageVolumeResponse>, Status> {
        Err(Status::unimplemented("NodeStageVolume: no STAGE_UNSTAGE_VOLUME capability"))
    }

    async fn node_unstage_volume(
        &self,
        _: Request<NodeUnstageVolumeRequest>,
    ) -> Result<Response<NodeUnstageVolumeResponse>, Status> {
        Err(Status::unimplemented("NodeUnstageVolume: no STAGE_UNSTAGE_VOLUME capability"))
    }

    async fn node_publish_volume(
        &self,
        request: Request<NodePublishVolumeRequest>,
    ) -> Result<Response<NodePublishVolumeResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        required("target_path", &req.target_path)?;
        let cap = caps::validate_one(req.volume_capability.as_ref())?;
        let target = PathBuf::from(&req.target_path);
        if !target.is_absolute() {
            return Err(Status::invalid_argument("target_path must be absolute"));
        }
        let export = Export::parse(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume {} does not exist", req.volume_id)))?;
        let mode = caps::mode(cap);
        let readonly = req.readonly
            || caps::mode_is_read_only(mode)
            || matches!(export, Export::Snapshot { .. });
        let source = self.source(&export);
        let creds = secrets::parse(&req.secrets)?;
        let _guard = self.begin(&target)?;
        if let Some(creds) = creds {
            // The node's dataset server checks them against the store it serves the volume from.
            self.backend.check_store_access("", &creds).await?;
        }

        let mounts = self.mounter.mounts().await.map_err(mount_err)?;
        if let Some(m) = mounter::mount_at(&mounts, &target) {
            if export_of(m) == Some(export.path().as_str()) && m.read_only == readonly {
                return Ok(Response::new(NodePublishVolumeResponse {}));
            }
            return Err(Status::already_exists(format!(
                "{} is already mounted ({} {}, {}), incompatible with this publish",
                target.display(),
                m.fs_type,
                m.source,
                if m.read_only { "ro" } else { "rw" }
            )));
        }
        if mode == Mode::SingleNodeSingleWriter {
            if let Some(other) = mounts
                .iter()
                .find(|m| export_of(m) == Some(export.path().as_str()) && m.mount_point != target)
            {
                return Err(Status::failed_precondition(format!(
                    "volume {} is SINGLE_NODE_SINGLE_WRITER and already published at {}",
                    req.volume_id,
                    other.mount_point.display()
                )));
            }
        }

        self.ensure_served(&export).await?;
        tokio::fs::create_dir_all(&target)
            .await
            .map_err(|e| Status::internal(format!("cannot create {}: {e}", target.display())))?;
        let options =
            mount_options(&self.nfs_host, self.nfs_port, readonly, caps::mount_flags(cap), has_mount_helper());
        if let Err(e) = self.mounter.mount_nfs(&source, &target, &options).await {
            let hint = if mounter::kernel_has_nfs() { "" } else { " (this kernel has no NFS client)" };
            // The caller (kubelet) shows this only in a pod's events, and not for long: the
            // node's own log keeps it, with the mount command's output (in `error`).
            tracing::warn!(
                volume = %req.volume_id,
                target = %target.display(),
                source = %source,
                options = %options.join(","),
                error = %e,
                "mount failed{hint}"
            );
            return Err(Status::internal(format!("mounting {source} at {}: {e}{hint}", target.display())));
        }
        tracing::info!(volume = %req.volume_id, target = %target.display(), readonly, "published");
        Ok(Response::new(NodePublishVolumeResponse {}))
    }

    async fn node_unpublish_volume(
        &self,
        request: Request<NodeUnpublishVolumeRequest>,
    ) -> Result<Response<NodeUnpublishVolumeResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        required("target_path", &req.target_path)?;
        let target = PathBuf::from(&req.target_path);
        let _guard = self.begin(&target)?;
        // Stacked mounts (a publish repeated by hand) are all removed.
        for _ in 0..8 {
            let mounts = self.mounter.mounts().await.map_err(mount_err)?;
            if mounter::mount_at(&mounts, &target).is_none() {
                break;
            }
            self.mounter.unmount(&target).await.map_err(mount_err)?;
        }
        let mounts = self.mounter.mounts().await.map_err(mount_err)?;
        if mounter::mount_at(&mounts, &target).is_some() {
            return Err(Status::internal(format!("{} is still mounted", target.display())));
        }
        match tokio::fs::remove_dir(&target).await {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotADirectory => {
                tokio::fs::remove_file(&target)
                    .await
                    .map_err(|e| Status::internal(format!("cannot remove {}: {e}", target.display())))?;
            }
            Err(e) => return Err(Status::internal(format!("cannot remove {}: {e}", target.display()))),
        }
        tracing::info!(volume = %req.volume_id, target = %target.display(), "unpublished");
        Ok(Response::new(NodeUnpublishVolumeResponse {}))
    }

    async fn node_get_volume_stats(
        &self,
        request: Request<NodeGetVolumeStatsRequest>,
    ) -> Result<Response<NodeGetVolumeStatsResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        required("volume_path", &req.volume_path)?;
        let path = PathBuf::from(&req.volume_path);
        let export = Export::parse(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume {} does not exist", req.volume_id)))?;
        // The mount table, not a stat of the path: that would hang on a dead server.
        let mounts = self.mounter.mounts().await.map_err(mount_err)?;
        match mounter::mount_at(&mounts, &path) {
            Some(m) if export_of(m) == Some(export.path().as_str()) => {}
            Some(m) => {
                return Err(Status::not_found(format!(
                    "volume {} is not published at {} ({} is mounted there)",
                    req.volume_id,
                    path.display(),
                    m.source
                )))
            }
            None => {
                return Err(Status::not_found(format!(
                    "volume {} is not published at {}",
                    req.volume_id,
                    path.display()
                )))
            }
        }

        let stats = match &export {
            Export::Dataset(d) => tokio::time::timeout(STATS_TIMEOUT, self.backend.dataset_stats(d))
                .await
                .map_err(|_| Status::deadline_exceeded("dataset server did not answer"))
                .and_then(|r| r)
                .map(|s| (s.used_bytes, s.used_inodes, s.quota_bytes, s.health)),
            Export::Snapshot { dataset, snapshot } => {
                tokio::time::timeout(STATS_TIMEOUT, self.backend.list_snapshots(dataset))
                    .await
                    .map_err(|_| Status::deadline_exceeded("dataset server did not answer"))
                    .and_then(|r| r)
                    .and_then(|l| {
                        l.into_iter()
                            .find(|s| &s.name == snapshot)
                            .map(|s| (s.size_bytes, 0, Some(s.size_bytes), None))
                            .ok_or_else(|| Status::not_found("snapshot is gone"))
                    })
            }
        };
        let resp = match stats {
            Ok((used, inodes, quota, health)) => {
                let total = quota.unwrap_or(ids::MAX_VOLUME_BYTES).max(used);
                let problem = health.and_then(|h| h.problem());
                let abnormal = problem.is_some() || quota.is_some_and(|q| used > q);
                NodeGetVolumeStatsResponse {
                    usage: vec![
                        VolumeUsage {
                            available: (total - used) as i64,
                            total: total as i64,
                            used: used as i64,
                            unit: volume_usage::Unit::Bytes as i32,
                        },
                        // Inodes are not limited: only the count in use is meaningful.
                        VolumeUsage {
                            available: 0,
                            total: 0,
                            used: inodes as i64,
                            unit: volume_usage::Unit::Inodes as i32,
                        },
                    ],
                    volume_condition: Some(VolumeCondition {
                        abnormal,
                        message: if let Some(p) = problem {
                            p
                        } else if abnormal {
                            format!("over quota: {used} bytes used of {total}")
                        } else {
                            "dataset server reachable".into()
                        },
                    }),
                }
            }
            Err(e) => NodeGetVolumeStatsResponse {
                usage: vec![],
                volume_condition: Some(VolumeCondition {
                    abnormal: true,
                    message: format!("dataset server or store unreachable: {}", e.message()),
                }),
            },
        };
        Ok(Response::new(resp))
    }

    async fn node_expand_volume(
        &self,
        _: Request<NodeExpandVolumeRequest>,
    ) -> Result<Response<NodeExpandVolumeResponse>, Status> {
        Err(Status::unimplemented("NodeExpandVolume: expansion is a quota change on the controller"))
    }

    async fn node_get_capabilities(
        &self,
        _: Request<NodeGetCapabilitiesRequest>,
    ) -> Result<Response<NodeGetCapabilitiesResponse>, Status> {
        use node_service_capability::rpc::Type as T;
        let capabilities = [T::GetVolumeStats, T::VolumeCondition, T::SingleNodeMultiWriter]
            .into_iter()
            .map(|t| NodeServiceCapability {
                r#type: Some(node_service_capability::Type::Rpc(node_service_capability::Rpc {
                    r#type: t as i32,
                })),
            })
            .collect();
        Ok(Response::new(NodeGetCapabilitiesResponse { capabilities }))
    }

    async fn node_get_info(
        &self,
        _: Request<NodeGetInfoRequest>,
    ) -> Result<Response<NodeGetInfoResponse>, Status> {
        Ok(Response::new(NodeGetInfoResponse {
            node_id: self.node_id.clone(),
            max_volumes_per_node: 0,
            accessible_topology: None,
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options() {
        let o = mount_options("127.0.0.1", 20490, false, &["noatime".into()], true);
        assert_eq!(
            o.join(","),
            "vers=3,proto=tcp,port=20490,mountport=20490,mountproto=tcp,nolock,hard,noatime"
        );
        let o = mount_options("10.0.2.2", 1, true, &[], false).join(",");
        assert!(o.contains("addr=10.0.2.2,mountaddr=10.0.2.2") && o.ends_with(",ro"), "{o}");
        let o = mount_options("nfs.example", 1, false, &[], false).join(",");
        assert!(!o.contains("addr="), "{o}");
    }

    #[test]
    fn exports() {
        assert_eq!(Export::parse("pvc-1"), Some(Export::Dataset("pvc-1".into())));
        let s = Export::parse("pvc-1@snap-2").unwrap();
        assert_eq!(s.path(), "pvc-1@snap-2");
        assert_eq!(s.dataset(), "pvc-1");
        assert_eq!(Export::parse("Bad"), None);
        let m = MountInfo {
            mount_point: "/t".into(),
            fs_type: "nfs".into(),
            source: "[::1]:/pvc-1".into(),
            read_only: false,
            options: vec![],
        };
        assert_eq!(export_of(&m), Some("pvc-1"));
    }
}
