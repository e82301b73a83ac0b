//! `slatefs csi`: runs the CSI plugin, and `slatefs csi call …`, a small CSI client for
//! operators and for VM tests (where no grpcurl exists). `call` prints the response as JSON on
//! stdout; on a gRPC error it prints `{"code": …, "message": …}` on stderr and exits with the
//! gRPC code as the exit status (5 = NOT_FOUND, 6 = ALREADY_EXISTS, …; 1 for a local error).

use std::collections::HashMap;
use std::path::PathBuf;

use anyhow::{bail, Context, Result};
use clap::{Args, Subcommand};
use serde_json::{json, Value};
use tonic::transport::Channel;

use crate::admin::AdminAddr;
use crate::config::Config;
use crate::csi::proto::controller_client::ControllerClient;
use crate::csi::proto::identity_client::IdentityClient;
use crate::csi::proto::node_client::NodeClient;
use crate::csi::proto::volume_capability::{access_mode::Mode, AccessMode, AccessType, MountVolume};
use crate::csi::proto::*;
use crate::csi::server::{self, Mode as PluginMode, PluginOptions};
use crate::csi::{transport, DEFAULT_DRIVER_NAME};

pub const DEFAULT_ENDPOINT: &str = "unix:///csi/csi.sock";

#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct CsiArgs {
    #[command(subcommand)]
    pub command: Option<CsiCommand>,
    #[command(flatten)]
    pub plugin: PluginArgs,
}

#[derive(Subcommand, Debug)]
pub enum CsiCommand {
    /// Call one CSI RPC on a running plugin and print the response as JSON.
    Call(CallArgs),
}

#[derive(Args, Debug)]
pub struct PluginArgs {
    /// Which services to serve besides Identity.
    #[arg(long, value_enum)]
    pub mode: Option<PluginMode>,
    /// The CSI socket.
    #[arg(long, default_value = DEFAULT_ENDPOINT)]
    pub endpoint: String,
    /// This node's id (the chart passes the Kubernetes node name); required by the node service.
    #[arg(long, env = "CSI_NODE_ID")]
    pub node_id: Option<String>,
    /// Config file (the same as `slatefs serve`'s).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    #[arg(long, default_value = DEFAULT_DRIVER_NAME)]
    pub driver_name: String,
    /// Admin API of the catalog owner (controller) / of this node's dataset server (node):
    /// unix:///PATH or tcp://HOST:PORT [default: the config's [admin] listen]
    #[arg(long)]
    pub admin: Option<String>,
    /// NFS server the node mounts from [default: the config's [nfs] listen, wildcard → loopback]
    #[arg(long, value_name = "HOST:PORT")]
    pub nfs_server: Option<String>,
}

#[derive(Args, Debug)]
pub struct CallArgs {
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

/// The call's CSI `secrets`, as a StorageClass's Secret would supply them.
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

#[derive(Subcommand, Debug)]
pub enum CallOp {
    PluginInfo,
    PluginCapabilities,
    Probe,
    ControllerCapabilities,
    CreateVolume {
        name: String,
        /// required_bytes (e.g. 1Gi, 500Mi, 1048576).
        #[arg(long)]
        size: Option<String>,
        /// limit_bytes.
        #[arg(long)]
        limit: Option<String>,
        #[arg(long, conflicts_with = "from_volume")]
        from_snapshot: Option<String>,
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
    DeleteVolume {
        #[arg(long)]
        volume_id: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    ListVolumes {
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    GetVolume {
        #[arg(long)]
        volume_id: String,
    },
    ExpandVolume {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        size: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    ValidateVolume {
        #[arg(long)]
        volume_id: String,
        #[command(flatten)]
        cap: CapArgs,
    },
    GetCapacity,
    CreateSnapshot {
        name: String,
        #[arg(long)]
        source_volume_id: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    DeleteSnapshot {
        #[arg(long)]
        snapshot_id: String,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    ListSnapshots {
        #[arg(long, default_value = "")]
        snapshot_id: String,
        #[arg(long, default_value = "")]
        source_volume_id: String,
        #[arg(long, default_value_t = 0)]
        max_entries: i32,
        #[arg(long, default_value = "")]
        starting_token: String,
    },
    GetSnapshot {
        #[arg(long)]
        snapshot_id: String,
    },
    NodePublish {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        target_path: String,
        #[arg(long)]
        readonly: bool,
        #[command(flatten)]
        cap: CapArgs,
        #[command(flatten)]
        secrets: SecretArgs,
    },
    NodeUnpublish {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        target_path: String,
    },
    NodeStats {
        #[arg(long)]
        volume_id: String,
        #[arg(long)]
        volume_path: String,
    },
    NodeInfo,
    NodeCapabilities,
}

pub async fn run(args: CsiArgs) -> Result<()> {
    match args.command {
        Some(CsiCommand::Call(call)) => {
            let code = run_call(call).await?;
            if code != 0 {
                std::process::exit(code);
            }
            Ok(())
        }
        None => run_plugin(args.plugin).await,
    }
}

async fn run_plugin(a: PluginArgs) -> Result<()> {
    let mode = a.mode.context("--mode controller|node|all is required")?;
    let config = Config::load(a.config.as_deref())?;
    let admin = a.admin.as_deref().map(AdminAddr::parse).transpose()?;
    let nfs_server = a.nfs_server.as_deref().map(server::parse_host_port).transpose()?;
    let endpoint = transport::parse_unix_endpoint(&a.endpoint)?;
    let opts = PluginOptions {
        mode,
        endpoint,
        node_id: a.node_id,
        driver_name: a.driver_name,
        admin,
        nfs_server,
        config,
    };
    server::run(opts, shutdown_signal()).await
}

async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => return std::future::pending().await,
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    tracing::info!("slatefs csi: shutting down");
}

/// `1Gi`, `500Mi`, `10G`, `4096`, `1GiB` → bytes.
pub fn parse_size(s: &str) -> Result<i64> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let n: i64 = num.parse().with_context(|| format!("bad size {s:?}"))?;
    let mult: i64 = match unit.trim().trim_end_matches('B') {
        "" => 1,
        "K" | "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        _ => bail!("bad size unit in {s:?} (use K, M, G, T, Ki, Mi, Gi, Ti)"),
    };
    n.checked_mul(mult).with_context(|| format!("size {s:?} is too large"))
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
async fn run_call(a: CallArgs) -> Result<i32> {
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
            let caps: Vec<String> = r.capabilities.iter().map(|c| format!("{:?}", c.r#type)).collect();
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
    }

    #[test]
    fn modes() {
        assert_eq!(parse_mode("single-node-single-writer").unwrap(), Mode::SingleNodeSingleWriter);
        assert_eq!(parse_mode("MULTI_NODE_MULTI_WRITER").unwrap(), Mode::MultiNodeMultiWriter);
        assert!(parse_mode("bogus").is_err());
    }
}
