//! The internal channel's server: answers pings, runs forwarded NFS calls and the catalog
//! owner's requests on the datasets this server owns. Every call must carry the cluster
//! secret; one that does not is refused before it reaches anything.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::proto::cluster_server::{Cluster as ClusterRpc, ClusterServer};
use super::proto::{self, nfs_reply, AdoptReply, AdoptRequest, NfsCall, NfsReply, NotOwner, PingReply, PingRequest};
use super::{Cluster, Member};

struct Service {
    cluster: Arc<Cluster>,
}

fn not_owner(epoch: u64) -> NotOwner {
    NotOwner { epoch }
}

type CatalogStream = std::pin::Pin<Box<dyn tokio_stream::Stream<Item = Result<proto::CatalogState, Status>> + Send>>;

#[tonic::async_trait]
impl ClusterRpc for Service {
    type WatchCatalogStream = CatalogStream;

    async fn watch_catalog(&self, _req: Request<proto::WatchCatalogRequest>) -> Result<Response<CatalogStream>, Status> {
        use tokio_stream::StreamExt;
        let feed = self
            .cluster
            .catalog_feed()
            .ok_or_else(|| Status::failed_precondition("this server does not own the catalog"))?;
        let stream = tokio_stream::wrappers::WatchStream::new(feed).map(|kvs| {
            Ok(proto::CatalogState {
                entries: kvs.iter().map(|(k, v)| proto::CatalogEntry { key: k.clone(), value: v.clone() }).collect(),
            })
        });
        Ok(Response::new(Box::pin(stream)))
    }

    async fn ping(&self, _req: Request<PingRequest>) -> Result<Response<PingReply>, Status> {
        let me = self.cluster.me();
        Ok(Response::new(PingReply { name: me.name.clone(), incarnation: me.incarnation }))
    }

    async fn nfs(&self, req: Request<NfsCall>) -> Result<Response<NfsReply>, Status> {
        let call = req.into_inner();
        let origin = (!call.origin.is_empty()).then(|| Member {
            name: call.origin.clone(),
            address: call.origin_address.clone(),
            incarnation: call.origin_incarnation,
        });
        let guard = match self.cluster.serve_forwarded(call.dataset, origin).await {
            Ok(g) => g,
            Err(epoch) => {
                return Ok(Response::new(NfsReply { outcome: Some(nfs_reply::Outcome::NotOwner(not_owner(epoch))) }))
            }
        };
        let calls = self.cluster.forwarded_calls().ok_or_else(|| Status::unavailable("the server is shutting down"))?;
        let answered = calls.run(call).await;
        drop(guard);
        Ok(Response::new(NfsReply { outcome: Some(nfs_reply::Outcome::Answered(answered)) }))
    }

    async fn checkpoint(&self, req: Request<proto::CheckpointRequest>) -> Result<Response<proto::CheckpointReply>, Status> {
        use proto::checkpoint_reply::Outcome;
        let r = req.into_inner();
        let guard = match self.cluster.serve_forwarded(r.dataset, None).await {
            Ok(g) => g,
            Err(epoch) => return Ok(Response::new(proto::CheckpointReply { outcome: Some(Outcome::NotOwner(not_owner(epoch))) })),
        };
        let local = self.cluster.local().ok_or_else(|| Status::unavailable("the server is shutting down"))?;
        let (id, bytes, inodes) = local.checkpoint(r.dataset, &r.name).await?;
        drop(guard);
        Ok(Response::new(proto::CheckpointReply {
            outcome: Some(Outcome::Checkpointed(proto::Checkpointed {
                checkpoint_id: id.to_string(),
                used_bytes: bytes,
                used_inodes: inodes,
            })),
        }))
    }

    async fn flush(&self, req: Request<proto::DatasetRef>) -> Result<Response<proto::FlushReply>, Status> {
        use proto::flush_reply::Outcome;
        let dataset = req.into_inner().dataset;
        let guard = match self.cluster.serve_forwarded(dataset, None).await {
            Ok(g) => g,
            Err(epoch) => return Ok(Response::new(proto::FlushReply { outcome: Some(Outcome::NotOwner(not_owner(epoch))) })),
        };
        let local = self.cluster.local().ok_or_else(|| Status::unavailable("the server is shutting down"))?;
        local.flush(dataset).await?;
        drop(guard);
        Ok(Response::new(proto::FlushReply { outcome: Some(Outcome::Flushed(true)) }))
    }

    async fn stats(&self, req: Request<proto::DatasetRef>) -> Result<Response<proto::StatsReply>, Status> {
        use proto::stats_reply::Outcome;
        let dataset = req.into_inner().dataset;
        let guard = match self.cluster.serve_forwarded(dataset, None).await {
            Ok(g) => g,
            Err(epoch) => return Ok(Response::new(proto::StatsReply { outcome: Some(Outcome::NotOwner(not_owner(epoch))) })),
        };
        let local = self.cluster.local().ok_or_else(|| Status::unavailable("the server is shutting down"))?;
        let stats = local.stats(dataset).await?;
        drop(guard);
        Ok(Response::new(proto::StatsReply { outcome: Some(Outcome::Stats(stats)) }))
    }

    async fn adopt(&self, req: Request<AdoptRequest>) -> Result<Response<AdoptReply>, Status> {
        let r = req.into_inner();
        let cluster = self.cluster.clone();
        // The record is the truth; reading it and opening the dataset need not hold the caller.
        tokio::spawn(async move { cluster.adopted(r.dataset).await });
        Ok(Response::new(AdoptReply {}))
    }
}

/// Refuses calls without the cluster secret, logging at most one line per 10 s.
#[derive(Clone)]
struct Gate {
    secret: super::peers::Secret,
    last_log: Arc<Mutex<(Option<Instant>, u64)>>,
}

impl tonic::service::Interceptor for Gate {
    fn call(&mut self, req: Request<()>) -> Result<Request<()>, Status> {
        if self.secret.admits(req.metadata().get("authorization")) {
            return Ok(req);
        }
        let peer = req.remote_addr().map(|a| a.to_string()).unwrap_or_else(|| "?".into());
        let mut log = self.last_log.lock().expect("log lock");
        log.1 += 1;
        if log.0.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            tracing::warn!(peer, refused = log.1, "internal channel: refused a call without the cluster secret");
            *log = (Some(Instant::now()), 0);
        }
        Err(Status::unauthenticated("the cluster secret is missing or wrong"))
    }
}

pub struct ClusterListener {
    pub local_addr: SocketAddr,
    pub task: tokio::task::JoinHandle<()>,
}

/// Binds the internal channel's address (before the cluster exists: its address is part of
/// this server's identity).
pub async fn bind(listen: &str) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(listen)
        .await
        .with_context(|| format!("cannot listen for the internal channel on {listen}"))
}

/// Serves the internal channel on `listener` until `shutdown` completes.
pub fn start(
    cluster: Arc<Cluster>,
    listener: tokio::net::TcpListener,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<ClusterListener> {
    let local_addr = listener.local_addr()?;
    let gate = Gate { secret: cluster.peers().secret().clone(), last_log: Arc::new(Mutex::new((None, 0))) };
    let service = tonic::service::interceptor::InterceptedService::new(
        ClusterServer::new(Service { cluster }).max_decoding_message_size(16 << 20).max_encoding_message_size(16 << 20),
        gate,
    );
    let incoming = TcpListenerStream::new(listener);
    let task = tokio::spawn(async move {
        let served = tonic::transport::Server::builder()
            .tcp_nodelay(true)
            .http2_keepalive_interval(Some(Duration::from_secs(1)))
            .http2_keepalive_timeout(Some(Duration::from_secs(2)))
            .add_service(service)
            .serve_with_incoming_shutdown(incoming, shutdown)
            .await;
        if let Err(e) = served {
            tracing::error!("internal channel: {e}");
        }
    });
    Ok(ClusterListener { local_addr, task })
}
