//! `slatefs csi call …`: calls one CSI RPC on a running plugin (operators, and VM tests where
//! no grpcurl exists). It prints the response as JSON on stdout; on a gRPC error it prints
//! `{"code": …, "message": …}` on stderr and exits with the gRPC code as the exit status
//! (5 = NOT_FOUND, 6 = ALREADY_EXISTS, …; 1 for a local error).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tonic::transport::Channel;

use super::csi::DEFAULT_ENDPOINT;
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::identity_client::IdentityClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::volume_capability::{access_mode::Mode, AccessMode, AccessType, MountVolume};
use crate::csi::proto::*;
use crate::csi::transport;

#[derive(Args, Debug)]
pub struct CallArgs {
    /// The plugin's CSI socket.
    #[arg(long, default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    #[command(subcommand)]
    pub op: CallOp,
}

#[derive(Args, Debug, Clone)]
pub struct CapArgs {
    /// Access mode: single-node-writer, single-node-reader-only, multi-node-reader-only,
    /// multi-node-single-writer, multi-node-multi-writer, single-node-single-writer,
    /// single-node-multi-writer.
    #[arg(long, default_value = "single-node-writer")]
    pub access_mode: String,
    /// A mount flag (repeatable).
    #[arg(long = "mount-flag")]
    pub mount_flags: Vec<String>,
    /// Request block access (always refused; for testing).
    #[arg(long)]
    pub block: bool,
}

// The call's CSI `secrets`, as a StorageClass's Secret would supply them. (A `//` comment: a
// doc comment here would become the description of every call that flattens it.)
#[derive(Args, Debug, Clone)]
pub struct SecretArgs {
    /// File of `KEY=VALUE` lines (the format of `kubectl create secret --from-env-file`; `#`
    /// comments and blank lines ignored), sent as the call's CSI secrets. A file, not flags, so
    /// that no secret shows in the process list.
    #[arg(long, value_name = "FILE")]
    pub secrets_file: Option<PathBuf>,
}

impl SecretArgs {
    fn load(&self) -> Result<HashMap<String, String>> {
        let Some(path) = &self.secrets_file else { return Ok(HashMap::new()) };
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the secrets file {}", path.display()))?;
        let mut out = HashMap::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            // Only the key is named on error: the line holds a secret.
            let (k, v) = line
                .split_once('=')
                .with_context(|| format!("{}:{}: expected KEY=VALUE", path.display(), n + 1))?;
            out.insert(k.trim().to_string(), v.to_string());
        }
        Ok(out)
    }
}

// Every variant carries its own doc comment: clap takes a subcommand's description from the
// variant, else from the last flattened struct's doc comment, which is how the secrets
// option's text once described seven calls. `cli` tests check each description.
#[derive(Subcommand, Debug)]
pub enum CallOp {
    /// GetPluginInfo: the driver's name and version.
    PluginInfo,
    /// GetPluginCapabilities: the plugin's capabilities, by name.
    PluginCapabilities,
    /// Probe: whether the plugin is ready (its admin API answers).
    Probe,
    /// ControllerGetCapabilities: the controller's RPCs, by name.
    ControllerCapabilities,
    /// CreateVolume: a new volume (a dataset), empty or from a snapshot or volume.
    CreateVolume {
        /// The volume's name (the PV name external-provisioner passes).
        name: String,
        /// capacity_range.required_bytes (SIZE: 1Gi, 500Mi, 10G, 1048576; see `dataset create
        /// --help` for the units).
        #[arg(long, value_name = "SIZE")]
        size: Option<String>,
        /// capacity_range.limit_bytes (SIZE).
        #[arg(long, value_name = "SIZE")]
        limit: Option<String>,
        /// Make it from this snapshot id.
        #[arg(long, conflicts_with = "from_volume")]
        from_snapshot: Option<String>,
        /// Make it a clone of this volume id.
        #[arg(long)]
        from_volume: Option<String>,
        /// StorageClass parameter KEY=VALUE (repeatable).
        #[arg(long = "param")]
        params: Vec<String>,
        #[command(flatten)]
        cap: CapArgs,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// DeleteVolume: deletes a volume (kept hidden while its snapshots need it).
    DeleteVolume {
        #[arg(long)]
        volume_id: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// ListVolumes: every volume, a page at a time.
    ListVolumes {
        /// Page size (0: all).
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        /// The next_token of the previous page.
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    /// ControllerGetVolume: one volume and its condition.
    GetVolume {
        #[arg(long)]
        volume_id: String,
    },
    /// ControllerExpandVolume: raises a volume's capacity (its quota).
    ExpandVolume {
        #[arg(long)]
        volume_id: String,
        /// The new capacity_range.required_bytes (SIZE).
        #[arg(long, value_name = "SIZE")]
        size: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// ValidateVolumeCapabilities: whether a volume supports an access mode.
    ValidateVolume {
        #[arg(long)]
        volume_id: String,
        #[command(flatten)]
        cap: CapArgs,
    },
    /// GetCapacity: the space the store has for new volumes.
    GetCapacity,
    /// CreateSnapshot: a read-only snapshot of a volume.
    CreateSnapshot {
        /// The snapshot's name (the VolumeSnapshotContent name external-snapshotter passes).
        name: String,
        #[arg(long)]
        source_volume_id: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// DeleteSnapshot: deletes a snapshot (kept hidden while volumes made from it need it).
    DeleteSnapshot {
        #[arg(long)]
        snapshot_id: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// ListSnapshots: snapshots, all or one or of one volume, a page at a time.
    ListSnapshots {
        #[arg(long, default_value = "")]
        snapshot_id: String,
        #[arg(long, default_value = "")]
        source_volume_id: String,
        /// Page size (0: all).
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        /// The next_token of the previous page.
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    /// GetSnapshot: one snapshot.
    GetSnapshot {
        #[arg(long)]
        snapshot_id: String,
    },
    /// NodePublishVolume: mounts a volume (or VOLUME@SNAPSHOT) at a target path.
    NodePublish {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        target_path: String,
        /// Mount it read-only.
        #[arg(long)]
        readonly: bool,
        #[command(flatten)]
        cap: CapArgs,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    /// NodeUnpublishVolume: unmounts a target path and removes it.
    NodeUnpublish {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        target_path: String,
    },
    /// NodeGetVolumeStats: bytes and inodes used at a published path.
    NodeStats {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        volume_path: String,
    },
    /// NodeGetInfo: this node's id.
    NodeInfo,
    /// NodeGetCapabilities: the node service's RPCs, by name.
    NodeCapabilities,
}

/// A SIZE argument in bytes, as CSI's int64 fields carry it.
fn parse_size(s: &str) -> Result<i64> {
    let n = crate::size::parse_size(s)?;
    i64::try_from(n).with_context(|| format!("size {s:?} is too large"))
}

fn parse_mode(s: &str) -> Result<Mode> {
    let upper = s.trim().replace('-', "_").to_ascii_uppercase();
    Mode::from_str_name(&upper).with_context(|| format!("unknown access mode {s:?}"))
}

fn capability(c: &CapArgs) -> Result<VolumeCapability> {
    Ok(VolumeCapability {
        access_type: Some(if c.block {
            AccessType::Block(volume_capability::BlockVolume {})
        } else {
            AccessType::Mount(MountVolume {
                fs_type: String::new(),
                mount_flags: c.mount_flags.clone(),
                volume_mount_group: String::new(),
            })
        }),
        access_mode: Some(AccessMode { mode: parse_mode(&c.access_mode)? as i32 }),
    })
}

fn content_source_json(s: &Option<VolumeContentSource>) -> Value {
    match s.as_ref().and_then(|s| s.r#type.as_ref()) {
        Some(volume_content_source::Type::Snapshot(s)) => json!({"snapshot": {"snapshot_id": s.snapshot_id}}),
        Some(volume_content_source::Type::Volume(v)) => json!({"volume": {"volume_id": v.volume_id}}),
        None => Value::Null,
    }
}

fn volume_json(v: &Option<Volume>) -> Value {
    match v {
        None => Value::Null,
        Some(v) => json!({
            "volume_id": v.volume_id,
            "capacity_bytes": v.capacity_bytes,
            "volume_context": v.volume_context,
            "content_source": content_source_json(&v.content_source),
        }),
    }
}

fn condition_json(c: &Option<VolumeCondition>) -> Value {
    match c {
        None => Value::Null,
        Some(c) => json!({"abnormal": c.abnormal, "message": c.message}),
    }
}

fn snapshot_json(s: &Option<Snapshot>) -> Value {
    match s {
        None => Value::Null,
        Some(s) => json!({
            "snapshot_id": s.snapshot_id,
            "source_volume_id": s.source_volume_id,
            "size_bytes": s.size_bytes,
            "ready_to_use": s.ready_to_use,
            "creation_time": s.creation_time.as_ref().map(|t| json!({"seconds": t.seconds, "nanos": t.nanos})),
        }),
    }
}

/// `CONTROLLER_SERVICE`, `VOLUME_ACCESSIBILITY_CONSTRAINTS`, …, `VOLUME_EXPANSION_ONLINE`:
/// the proto's enum names, the expansion ones prefixed so that the list reads alone.
fn plugin_capability_name(c: &PluginCapability) -> String {
    use plugin_capability::{service, volume_expansion, Type};
    match &c.r#type {
        Some(Type::Service(s)) => match service::Type::try_from(s.r#type) {
            Ok(t) => t.as_str_name().to_string(),
            Err(_) => format!("SERVICE_{}", s.r#type),
        },
        Some(Type::VolumeExpansion(e)) => match volume_expansion::Type::try_from(e.r#type) {
            Ok(t) => format!("VOLUME_EXPANSION_{}", t.as_str_name()),
            Err(_) => format!("VOLUME_EXPANSION_{}", e.r#type),
        },
        None => "UNKNOWN".to_string(),
    }
}

fn kv(params: &[String]) -> Result<HashMap<String, String>> {
    params
        .iter()
        .map(|p| {
            p.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("parameter {p:?} is not KEY=VALUE"))
        })
        .collect()
}

/// Runs one call; returns the exit status (0, or the gRPC code).
pub(crate) async fn run_call(a: CallArgs) -> Result<i32> {
    let path = transport::parse_unix_endpoint(&a.endpoint)?;
    let ch: Channel = transport::unix_channel(&path);
    let out = call(ch, a.op).await?;
    match out {
        Ok(v) => {
            println!("{}", serde_json::to_string_pretty(&v)?);
            Ok(0)
        }
        Err(s) => {
            eprintln!(
                "{}",
                json!({"code": format!("{:?}", s.code()), "code_number": s.code() as i32, "message": s.message()})
            );
            Ok((s.code() as i32).max(1))
        }
    }
}

async fn call(ch: Channel, op: CallOp) -> Result<Result<Value, tonic::Status>> {
    let mut id = IdentityClient::new(ch.clone());
    let mut ctl = ControllerClient::new(ch.clone());
    let mut node = NodeClient::new(ch);
    macro_rules! rpc {
        ($e:expr, |$r:ident| $body:expr) => {
            Ok(match $e.await {
                Ok(resp) => {
                    let $r = resp.into_inner();
                    Ok($body)
                }
                Err(s) => Err(s),
            })
        };
    }
    match op {
        CallOp::PluginInfo => rpc!(id.get_plugin_info(GetPluginInfoRequest {}), |r| json!({
            "name": r.name, "vendor_version": r.vendor_version, "manifest": r.manifest})),
        CallOp::PluginCapabilities => rpc!(id.get_plugin_capabilities(GetPluginCapabilitiesRequest {}), |r| {
            let caps: Vec<String> = r.capabilities.iter().map(plugin_capability_name).collect();
            json!({"capabilities": caps})
        }),
        CallOp::Probe => rpc!(id.probe(ProbeRequest {}), |r| json!({"ready": r.ready})),
        CallOp::ControllerCapabilities => {
            rpc!(ctl.controller_get_capabilities(ControllerGetCapabilitiesRequest {}), |r| {
                let caps: Vec<String> = r
                    .capabilities
                    .iter()
                    .filter_map(|c| match &c.r#type {
                        Some(controller_service_capability::Type::Rpc(rpc)) => {
                            controller_service_capability::rpc::Type::try_from(rpc.r#type)
                                .ok()
                                .map(|t| t.as_str_name().to_string())
                        }
                        None => None,
                    })
                    .collect();
                json!({"capabilities": caps})
            })
        }
        CallOp::CreateVolume { name, size, limit, from_snapshot, from_volume, params, cap, secrets } => {
            let capacity_range = if size.is_some() || limit.is_some() {
                Some(CapacityRange {
                    required_bytes: size.as_deref().map(parse_size).transpose()?.unwrap_or(0),
                    limit_bytes: limit.as_deref().map(parse_size).transpose()?.unwrap_or(0),
                })
            } else {
                None
            };
            let volume_content_source = match (from_snapshot, from_volume) {
                (Some(s), _) => Some(VolumeContentSource {
                    r#type: Some(volume_content_source::Type::Snapshot(
                        volume_content_source::SnapshotSource { snapshot_id: s },
                    )),
                }),
                (None, Some(v)) => Some(VolumeContentSource {
                    r#type: Some(volume_content_source::Type::Volume(volume_content_source::VolumeSource {
                        volume_id: v,
                    })),
                }),
                (None, None) => None,
            };
            let req = CreateVolumeRequest {
                name,
                capacity_range,
                volume_capabilities: vec![capability(&cap)?],
                parameters: kv(&params)?,
                volume_content_source,
                secrets: secrets.load()?,
                ..Default::default()
            };
            rpc!(ctl.create_volume(req), |r| json!({"volume": volume_json(&r.volume)}))
        }
        CallOp::DeleteVolume { volume_id, secrets } => {
            rpc!(ctl.delete_volume(DeleteVolumeRequest { volume_id, secrets: secrets.load()? }), |_r| json!({}))
        }
        CallOp::ListVolumes { max_entries, starting_token } => {
            rpc!(ctl.list_volumes(ListVolumesRequest { max_entries, starting_token }), |r| {
                let entries: Vec<Value> = r
                    .entries
                    .iter()
                    .map(|e| json!({
                        "volume": volume_json(&e.volume),
                        "condition": condition_json(&e.status.as_ref().and_then(|s| s.volume_condition.clone())),
                    }))
                    .collect();
                json!({"entries": entries, "next_token": r.next_token})
            })
        }
        CallOp::GetVolume { volume_id } => {
            rpc!(ctl.controller_get_volume(ControllerGetVolumeRequest { volume_id }), |r| json!({
                "volume": volume_json(&r.volume),
                "condition": condition_json(&r.status.as_ref().and_then(|s| s.volume_condition.clone())),
            }))
        }
        CallOp::ExpandVolume { volume_id, size, secrets } => {
            let req = ControllerExpandVolumeRequest {
                volume_id,
                capacity_range: Some(CapacityRange { required_bytes: parse_size(&size)?, limit_bytes: 0 }),
                secrets: secrets.load()?,
                ..Default::default()
            };
            rpc!(ctl.controller_expand_volume(req), |r| json!({
                "capacity_bytes": r.capacity_bytes, "node_expansion_required": r.node_expansion_required}))
        }
        CallOp::ValidateVolume { volume_id, cap } => {
            let req = ValidateVolumeCapabilitiesRequest {
                volume_id,
                volume_capabilities: vec![capability(&cap)?],
                ..Default::default()
            };
            rpc!(ctl.validate_volume_capabilities(req), |r| json!({
                "confirmed": r.confirmed.is_some(), "message": r.message}))
        }
        CallOp::GetCapacity => rpc!(ctl.get_capacity(GetCapacityRequest::default()), |r| json!({
            "available_capacity": r.available_capacity,
            "maximum_volume_size": r.maximum_volume_size,
            "minimum_volume_size": r.minimum_volume_size})),
        CallOp::CreateSnapshot { name, source_volume_id, secrets } => {
            let req = CreateSnapshotRequest { source_volume_id, name, secrets: secrets.load()?, ..Default::default() };
            rpc!(ctl.create_snapshot(req), |r| json!({"snapshot": snapshot_json(&r.snapshot)}))
        }
        CallOp::DeleteSnapshot { snapshot_id, secrets } => {
            let req = DeleteSnapshotRequest { snapshot_id, secrets: secrets.load()? };
            rpc!(ctl.delete_snapshot(req), |_r| json!({}))
        }
        CallOp::ListSnapshots { snapshot_id, source_volume_id, max_entries, starting_token } => {
            let req =
                ListSnapshotsRequest { max_entries, starting_token, source_volume_id, snapshot_id, secrets: HashMap::new() };
            rpc!(ctl.list_snapshots(req), |r| {
                let entries: Vec<Value> = r.entries.iter().map(|e| snapshot_json(&e.snapshot)).collect();
                json!({"entries": entries, "next_token": r.next_token})
            })
        }
        CallOp::GetSnapshot { snapshot_id } => {
            rpc!(ctl.get_snapshot(GetSnapshotRequest { snapshot_id, secrets: HashMap::new() }), |r| json!({
                "snapshot": snapshot_json(&r.snapshot)}))
        }
        CallOp::NodePublish { volume_id, target_path, readonly, cap, secrets } => {
            let req = NodePublishVolumeRequest {
                volume_id,
                target_path,
                readonly,
                volume_capability: Some(capability(&cap)?),
                secrets: secrets.load()?,
                ..Default::default()
            };
            rpc!(node.node_publish_volume(req), |_r| json!({}))
        }
        CallOp::NodeUnpublish { volume_id, target_path } => {
            rpc!(node.node_unpublish_volume(NodeUnpublishVolumeRequest { volume_id, target_path }), |_r| json!({}))
        }
        CallOp::NodeStats { volume_id, volume_path } => {
            let req = NodeGetVolumeStatsRequest { volume_id, volume_path, staging_target_path: String::new() };
            rpc!(node.node_get_volume_stats(req), |r| {
                let usage: Vec<Value> = r
                    .usage
                    .iter()
                    .map(|u| json!({
                        "unit": volume_usage::Unit::try_from(u.unit).map(|x| x.as_str_name()).unwrap_or("UNKNOWN"),
                        "used": u.used, "total": u.total, "available": u.available}))
                    .collect();
                json!({"usage": usage, "condition": condition_json(&r.volume_condition)})
            })
        }
        CallOp::NodeInfo => rpc!(node.node_get_info(NodeGetInfoRequest {}), |r| json!({
            "node_id": r.node_id, "max_volumes_per_node": r.max_volumes_per_node})),
        CallOp::NodeCapabilities => rpc!(node.node_get_capabilities(NodeGetCapabilitiesRequest {}), |r| {
            let caps: Vec<String> = r
                .capabilities
                .iter()
                .filter_map(|c| match &c.r#type {
                    Some(node_service_capability::Type::Rpc(rpc)) => {
                        node_service_capability::rpc::Type::try_from(rpc.r#type)
                            .ok()
                            .map(|t| t.as_str_name().to_string())
                    }
                    None => None,
                })
                .collect();
            json!({"capabilities": caps})
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("4096").unwrap(), 4096);
        assert_eq!(parse_size("1Gi").unwrap(), 1 << 30);
        assert_eq!(parse_size("1GiB").unwrap(), 1 << 30);
        assert_eq!(parse_size("500Mi").unwrap(), 500 << 20);
        assert_eq!(parse_size("2G").unwrap(), 2_000_000_000);
        assert!(parse_size("1Xi").is_err());
        assert!(parse_size("Gi").is_err());
        assert!(parse_size("8192Pi").unwrap_err().to_string().contains("too large"));
    }

    #[test]
    fn plugin_capability_names() {
        use plugin_capability::{service, volume_expansion, Service, Type, VolumeExpansion};
        let svc = PluginCapability {
            r#type: Some(Type::Service(Service { r#type: service::Type::ControllerService as i32 })),
        };
        let exp = PluginCapability {
            r#type: Some(Type::VolumeExpansion(VolumeExpansion { r#type: volume_expansion::Type::Online as i32 })),
        };
        assert_eq!(plugin_capability_name(&svc), "CONTROLLER_SERVICE");
        assert_eq!(plugin_capability_name(&exp), "VOLUME_EXPANSION_ONLINE");
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("single-node-single-writer").unwrap(), Mode::SingleNodeSingleWriter);
        assert_eq!(parse_mode("MULTI_NODE_MULTI_WRITER").unwrap(), Mode::MultiNodeMultiWriter);
        assert!(parse_mode("bogus").is_err());
    }
}
