//! NFSv3 + MOUNT for every dataset and snapshot, on one TCP port.

mod adapter;
mod attrs;
pub mod exports;
pub mod handle;
mod rpc;
mod catalog_exports;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

pub use adapter::{NfsAdapter, SNAPSHOT_DIR};
pub use exports::{ExportError, Exports, ObjectInfo};
pub use rpc::Limits;

pub struct NfsServer {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `listen` and serves until `shutdown` is cancelled.
/// With a cluster, calls on datasets other servers own are forwarded to them.
pub async fn start<E: Exports>(
    adapter: NfsAdapter<E>,
    listen: &str,
    limits: Limits,
    shutdown: CancellationToken,
    cluster: Option<Arc<crate::cluster::Cluster>>,
) -> Result<NfsServer> {
    let addr: SocketAddr = listen.parse().with_context(|| format!("invalid NFS listen address {listen:?}"))?;
    let listener = TcpListener::bind(addr).await.with_context(|| format!("cannot listen for NFS on {addr}"))?;
    let local_addr = listener.local_addr()?;
    let rpc = rpc::Rpc::new(adapter, local_addr.port(), cluster);
    let task = tokio::spawn(rpc::serve(rpc, listener, limits, shutdown));
    Ok(NfsServer { local_addr, task })
}

/// Shares an `Arc` of exports with the adapter (the adapter owns an `Arc` too).
pub fn adapter<E: Exports>(
    exports: Arc<E>,
    handle_key: [u8; 32],
    hide_snapshot_dir: bool,
    capacity: Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
) -> NfsAdapter<E> {
    NfsAdapter::new(exports, handle_key, hide_snapshot_dir, capacity)
}
