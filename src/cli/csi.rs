//! `slatefs csi`: runs the CSI plugin, and `slatefs csi call …` (`csi_call.rs`), a small CSI
//! client for operators and for VM tests.

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};

use super::csi_call::{self, CallArgs};
use crate::admin::AdminAddr;
use crate::config::Config;
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
    /// Serve Prometheus metrics of the CSI RPCs (`GET /metrics`) on HOST:PORT [default: off]
    #[arg(long, value_name = "HOST:PORT")]
    pub metrics_listen: Option<String>,
}

pub async fn run(args: CsiArgs) -> Result<()> {
    match args.command {
        Some(CsiCommand::Call(call)) => {
            let code = csi_call::run_call(call).await?;
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
        metrics_listen: a.metrics_listen,
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
