//! How a catalog reader keeps up with the catalog owner: by polling the catalog in the store
//! (a reader outside a cluster), or, in a cluster, by the owner's own stream of the catalog
//! over the internal channel, which costs no store requests while it flows.

use std::time::Duration;

use futures::StreamExt;
use tonic::Request;

use super::*;
use crate::cluster::proto::WatchCatalogRequest;
use crate::cluster::Cluster;

/// While the catalog owner cannot be reached: how long between attempts (each reads the
/// record saying where it is), and how often the catalog is read from the store meanwhile.
const RETRY_MIN: Duration = Duration::from_secs(1);
const RETRY_MAX: Duration = Duration::from_secs(10);
const STORE_FALLBACK: Duration = Duration::from_secs(60);

pub(super) async fn follow_store(registry: Weak<Registry>) {
    loop {
        tokio::time::sleep(READER_POLL).await;
        let Some(r) = registry.upgrade() else { return };
        if r.closed.load(Ordering::Acquire) {
            return;
        }
        if let Err(e) = r.refresh().await {
            tracing::warn!("following the catalog: {e}");
        }
    }
}

pub(super) async fn follow_owner(registry: Weak<Registry>, cluster: Arc<Cluster>) {
    let mut retry = RETRY_MIN;
    let mut last_read = std::time::Instant::now();
    loop {
        match stream_once(&registry, &cluster).await {
            Ok(None) => return,
            Ok(Some(e)) => {
                // It flowed: the owner restarted or moved; look for it again at once.
                tracing::info!("the catalog owner's stream ended ({e}); looking for it again");
                retry = RETRY_MIN;
                last_read = std::time::Instant::now();
            }
            Err(e) => tracing::debug!("following the catalog owner: {e}"),
        }
        let Some(r) = registry.upgrade() else { return };
        if r.closed.load(Ordering::Acquire) {
            return;
        }
        if last_read.elapsed() >= STORE_FALLBACK {
            last_read = std::time::Instant::now();
            match CatalogDb::read_once(&r.store).await {
                Ok(state) => r.apply_state(state).await,
                Err(e) => tracing::warn!("reading the catalog from the store (its owner is not reachable): {e:#}"),
            }
        }
        drop(r);
        tokio::time::sleep(retry).await;
        retry = (retry * 2).min(RETRY_MAX);
    }
}

/// Follows one stream until it ends. `Ok(None)`: the registry is gone or closed;
/// `Ok(Some(why))`: the stream delivered, then ended; `Err`: it never started.
async fn stream_once(registry: &Weak<Registry>, cluster: &Arc<Cluster>) -> Result<Option<String>, String> {
    let owner = cluster.catalog_owner().await.map_err(|e| e.to_string())?.ok_or("the catalog owner never said where it is")?;
    let mut client = cluster.peers().client(&owner.address).map_err(|e| e.to_string())?;
    let req = Request::new(WatchCatalogRequest { from: cluster.me().name.clone() });
    let mut stream = client.watch_catalog(req).await.map_err(|e| e.to_string())?.into_inner();
    tracing::info!("following the catalog of {} ({})", owner.name, owner.address);
    while let Some(msg) = stream.next().await {
        let msg = match msg {
            Ok(m) => m,
            Err(e) => return Ok(Some(e.to_string())),
        };
        let Some(r) = registry.upgrade() else { return Ok(None) };
        if r.closed.load(Ordering::Acquire) {
            return Ok(None);
        }
        let kvs: crate::cluster::CatalogKvs = msg.entries.into_iter().map(|e| (e.key, e.value)).collect();
        match super::super::db::decode(&kvs) {
            Ok(state) => r.apply_state(state).await,
            Err(e) => tracing::warn!("the catalog owner sent a catalog this server cannot read: {e}"),
        }
    }
    Ok(Some("the catalog owner closed the stream".into()))
}
