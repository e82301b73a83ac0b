//! NFSv3 + MOUNT for every dataset and snapshot, on one TCP port.

mod adapter;
mod attrs;
pub mod exports;
mod guard;
pub mod handle;
mod rpc;
mod catalog_exports;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use zerofs_nfsserve::tcp::{NFSTcp, NFSTcpListener};

pub use adapter::{NfsAdapter, SNAPSHOT_DIR};
pub use exports::{ExportError, Exports, ObjectInfo};

pub struct NfsServer {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds `listen` and serves until `shutdown` is cancelled.
pub async fn start<E: Exports>(
    adapter: NfsAdapter<E>,
    listen: &str,
    shutdown: CancellationToken,
) -> Result<NfsServer> {
    let addr: SocketAddr = listen.parse().with_context(|| format!("invalid NFS listen address {listen:?}"))?;
    let front = TcpListener::bind(addr).await.with_context(|| format!("cannot listen for NFS on {addr}"))?;
    let local_addr = front.local_addr()?;
    if std::env::var_os("SLATEFS_OWN_RPC").is_some() {
        let task = tokio::spawn(rpc::serve(adapter, front, shutdown));
        return Ok(NfsServer { local_addr, task });
    }
    let backend_addr: SocketAddr = "127.0.0.1:0".parse().expect("literal address");
    let backend = NFSTcpListener::bind(backend_addr, adapter).await.context("cannot start the NFS listener")?;
    let backend_addr = SocketAddr::new(backend.get_listen_ip(), backend.get_listen_port());
    let backend_stop = shutdown.clone();
    tokio::spawn(async move {
        if let Err(e) = backend.handle_with_shutdown(backend_stop).await {
            tracing::error!("nfs listener: {e}");
        }
    });
    let task = tokio::spawn(guard::run(front, backend_addr, shutdown));
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
