//! The admin gRPC server: every RPC is one `Registry` call.

use std::future::Future;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::{Request, Response, Status};

use super::proto::{self, admin_server::AdminServer};
use super::store_access::{self, S3Credentials};
use super::tls::{check_listener, ServerTls};
use super::AdminAddr;
use crate::catalog::{DatasetInfo, DeleteOutcome, KubernetesRef, Origin, Registry, SnapshotInfo, SnapshotResult};
use crate::fs::Health;

/// A bound admin listener, not yet serving (so callers learn about bind errors at once and
/// know the real address of `tcp://…:0`).
pub struct AdminListener {
    incoming: Incoming,
    token: Option<String>,
    addr: AdminAddr,
    /// Served on a TCP listener (a unix socket is private to the machine already).
    tls: Option<ServerTls>,
}

enum Incoming {
    Unix(UnixListener, PathBuf),
    Tcp(TcpListener),
}

impl AdminListener {
    /// A listener without TLS (a unix socket, or TCP on loopback).
    pub async fn bind(listen: &str, token: Option<String>) -> Result<AdminListener> {
        AdminListener::bind_with(listen, token, None).await
    }

    /// A listener with TLS on TCP when `tls` is given. TCP is refused without a token, and
    /// without TLS unless on loopback ([`check_listener`]).
    pub async fn bind_with(listen: &str, token: Option<String>, tls: Option<ServerTls>) -> Result<AdminListener> {
        let addr = AdminAddr::parse(listen)?;
        let token = token.filter(|t| !t.is_empty());
        check_listener(&addr, token.is_some(), tls.is_some())?;
        let incoming = match &addr {
            AdminAddr::Tcp(hp) => {
                let l = TcpListener::bind(hp).await.with_context(|| format!("cannot listen on {addr}"))?;
                Incoming::Tcp(l)
            }
            AdminAddr::Unix(path) => Incoming::Unix(bind_unix(path)?, path.clone()),
        };
        let (addr, tls) = match &incoming {
            Incoming::Tcp(l) => (AdminAddr::Tcp(l.local_addr()?.to_string()), tls),
            Incoming::Unix(..) => (addr, None),
        };
        Ok(AdminListener { incoming, token, addr, tls })
    }

    /// Whether calls are served over TLS.
    pub fn uses_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// The address clients use (the real port for `tcp://…:0`).
    pub fn addr(&self) -> &AdminAddr {
        &self.addr
    }

    /// Serves until `shutdown` completes; removes the socket file afterwards.
    pub async fn run(self, registry: Arc<Registry>, shutdown: impl Future<Output = ()> + Send) -> Result<()> {
        let token = self.token.map(|t| format!("Bearer {t}"));
        let auth = move |req: Request<()>| -> Result<Request<()>, Status> {
            let Some(expected) = &token else { return Ok(req) };
            let got = req.metadata().get("authorization").map(|v| v.as_bytes()).unwrap_or_default();
            if constant_time_eq(got, expected.as_bytes()) {
                Ok(req)
            } else {
                Err(Status::unauthenticated("missing or wrong admin token (authorization: Bearer <token>)"))
            }
        };
        let service = AdminServer::with_interceptor(AdminService { registry }, auth);
        let mut builder = tonic::transport::Server::builder();
        if let Some(tls) = &self.tls {
            builder = builder.tls_config(tls.tonic_config()).context("admin API TLS settings")?;
        }
        let router = builder.add_service(service);
        match &self.tls {
            Some(tls) => tracing::info!("admin API listening on {} (TLS, certificate {})", self.addr, tls.cert_file.display()),
            None => tracing::info!("admin API listening on {}", self.addr),
        }
        match self.incoming {
            Incoming::Tcp(l) => {
                router.serve_with_incoming_shutdown(TcpListenerStream::new(l), shutdown).await?;
            }
            Incoming::Unix(l, path) => {
                let result = router.serve_with_incoming_shutdown(UnixListenerStream::new(l), shutdown).await;
                let _ = std::fs::remove_file(&path);
                result?;
            }
        }
        Ok(())
    }
}

/// Binds and serves the admin API until `shutdown` completes.
pub async fn serve(
    registry: Arc<Registry>,
    listen: &str,
    token: Option<String>,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<()> {
    AdminListener::bind(listen, token).await?.run(registry, shutdown).await
}

fn bind_unix(path: &PathBuf) -> Result<UnixListener> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the directory of the admin socket {}", path.display()))?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            bail!("another server is already listening on the admin socket {}", path.display());
        }
        std::fs::remove_file(path)
            .with_context(|| format!("cannot remove the stale admin socket {}", path.display()))?;
    }
    let l = UnixListener::bind(path).with_context(|| format!("cannot listen on unix://{}", path.display()))?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600))?;
    Ok(l)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    // Compare digests so neither the length nor the first differing byte leaks through timing.
    blake3::hash(a) == blake3::hash(b)
}

struct AdminService {
    registry: Arc<Registry>,
}

type Reply<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl proto::admin_server::Admin for AdminService {
    async fn create_dataset(&self, req: Request<proto::CreateDatasetRequest>) -> Reply<proto::Dataset> {
        let r = req.into_inner();
        let info = self.registry.create_dataset(&r.name, r.quota_bytes).await?;
        Ok(Response::new(dataset_msg(info)))
    }

    async fn list_datasets(&self, _: Request<proto::ListDatasetsRequest>) -> Reply<proto::ListDatasetsResponse> {
        let datasets = self.registry.list_datasets().await?.into_iter().map(dataset_msg).collect();
        Ok(Response::new(proto::ListDatasetsResponse { datasets }))
    }

    async fn get_dataset(&self, req: Request<proto::GetDatasetRequest>) -> Reply<proto::Dataset> {
        let info = self.registry.dataset_info(&req.into_inner().name).await?;
        Ok(Response::new(dataset_msg(info)))
    }

    async fn delete_dataset(&self, req: Request<proto::DeleteDatasetRequest>) -> Reply<proto::DeleteResponse> {
        let out = self.registry.delete_dataset(&req.into_inner().name).await?;
        Ok(Response::new(delete_msg(out)))
    }

    async fn create_snapshot(
        &self,
        req: Request<proto::CreateSnapshotRequest>,
    ) -> Reply<proto::CreateSnapshotResponse> {
        let r = req.into_inner();
        let result = match self.registry.create_snapshot(&r.source, &r.name, r.readonly).await? {
            SnapshotResult::Dataset(d) => proto::create_snapshot_response::Result::Dataset(dataset_msg(d)),
            SnapshotResult::Snapshot(s) => proto::create_snapshot_response::Result::Snapshot(snapshot_msg(s)),
        };
        Ok(Response::new(proto::CreateSnapshotResponse { result: Some(result) }))
    }

    async fn list_snapshots(&self, req: Request<proto::ListSnapshotsRequest>) -> Reply<proto::ListSnapshotsResponse> {
        let r = req.into_inner();
        let filter = Some(r.dataset.as_str()).filter(|d| !d.is_empty());
        let snapshots = self.registry.list_snapshots(filter).await?.into_iter().map(snapshot_msg).collect();
        Ok(Response::new(proto::ListSnapshotsResponse { snapshots }))
    }

    async fn delete_snapshot(&self, req: Request<proto::DeleteSnapshotRequest>) -> Reply<proto::DeleteResponse> {
        let out = self.registry.delete_snapshot(&req.into_inner().name).await?;
        Ok(Response::new(delete_msg(out)))
    }

    async fn clone_snapshot(&self, req: Request<proto::CloneSnapshotRequest>) -> Reply<proto::Dataset> {
        let r = req.into_inner();
        let info = self.registry.clone_snapshot(&r.snapshot, &r.name).await?;
        Ok(Response::new(dataset_msg(info)))
    }

    async fn rollback_dataset(
        &self,
        req: Request<proto::RollbackDatasetRequest>,
    ) -> Reply<proto::RollbackDatasetResponse> {
        let r = req.into_inner();
        let out = self.registry.rollback_to_snapshot(&r.name, &r.snapshot).await?;
        Ok(Response::new(proto::RollbackDatasetResponse {
            dataset: Some(dataset_msg(out.dataset)),
            snapshot: Some(snapshot_msg(out.snapshot)),
        }))
    }

    async fn set_default(&self, req: Request<proto::SetDefaultRequest>) -> Reply<proto::Dataset> {
        let info = self.registry.set_default(&req.into_inner().name).await?;
        Ok(Response::new(dataset_msg(info)))
    }

    async fn get_default(&self, _: Request<proto::GetDefaultRequest>) -> Reply<proto::Dataset> {
        Ok(Response::new(dataset_msg(self.registry.get_default().await?)))
    }

    async fn set_kubernetes_ref(&self, req: Request<proto::SetKubernetesRefRequest>) -> Reply<proto::SetKubernetesRefResponse> {
        let r = req.into_inner();
        let k = r.r#ref.unwrap_or_default();
        let k = KubernetesRef { namespace: k.namespace, name: k.name, content: k.content };
        match r.object {
            Some(proto::set_kubernetes_ref_request::Object::Dataset(name)) => {
                self.registry.set_dataset_kubernetes_ref(&name, k).await?;
            }
            Some(proto::set_kubernetes_ref_request::Object::Snapshot(name)) => {
                self.registry.set_snapshot_kubernetes_ref(&name, k).await?;
            }
            None => return Err(Status::invalid_argument("name a dataset or a snapshot")),
        }
        Ok(Response::new(proto::SetKubernetesRefResponse {}))
    }

    async fn set_quota(&self, req: Request<proto::SetQuotaRequest>) -> Reply<proto::Dataset> {
        let r = req.into_inner();
        let info = self.registry.set_quota(&r.name, r.quota_bytes).await?;
        Ok(Response::new(dataset_msg(info)))
    }

    async fn dataset_stats(&self, req: Request<proto::DatasetStatsRequest>) -> Reply<proto::DatasetStatsResponse> {
        let (id, usage, quota, health) = self.registry.dataset_stats(&req.into_inner().name).await?;
        Ok(Response::new(proto::DatasetStatsResponse {
            id,
            used_bytes: usage.bytes,
            used_inodes: usage.inodes,
            quota_bytes: quota,
            health: Some(health_msg(&health)),
            store_requests: Some(requests_msg(self.registry.store().request_stats())),
        }))
    }

    async fn checkpoint_dataset(
        &self,
        req: Request<proto::CheckpointDatasetRequest>,
    ) -> Reply<proto::CheckpointDatasetResponse> {
        let r = req.into_inner();
        let (uuid, usage) = self.registry.checkpoint_dataset(&r.name, &r.checkpoint_name).await?;
        Ok(Response::new(proto::CheckpointDatasetResponse {
            checkpoint_id: uuid.to_string(),
            used_bytes: usage.bytes,
            used_inodes: usage.inodes,
        }))
    }

    async fn flush_dataset(&self, req: Request<proto::FlushDatasetRequest>) -> Reply<proto::FlushDatasetResponse> {
        self.registry.flush_dataset(&req.into_inner().name).await?;
        Ok(Response::new(proto::FlushDatasetResponse {}))
    }

    async fn check_store_access(
        &self,
        req: Request<proto::CheckStoreAccessRequest>,
    ) -> Reply<proto::CheckStoreAccessResponse> {
        let r = req.into_inner();
        let c = r.credentials.ok_or_else(|| Status::invalid_argument("credentials are required"))?;
        let creds = S3Credentials {
            access_key_id: c.access_key_id,
            secret_access_key: c.secret_access_key,
            session_token: Some(c.session_token).filter(|t| !t.is_empty()),
        };
        let storage = self.registry.storage_config();
        store_access::check(storage, &r.store_url, &creds).await?;
        Ok(Response::new(proto::CheckStoreAccessResponse { store_url: storage.url.clone() }))
    }

    async fn set_policy(&self, req: Request<proto::SetPolicyRequest>) -> Reply<proto::Policy> {
        Ok(Response::new(super::policies::set(&self.registry, req.into_inner()).await?))
    }

    async fn list_policies(&self, req: Request<proto::ListPoliciesRequest>) -> Reply<proto::ListPoliciesResponse> {
        Ok(Response::new(super::policies::list(&self.registry, req.into_inner()).await?))
    }

    async fn pause_policy(&self, req: Request<proto::PausePolicyRequest>) -> Reply<proto::Policy> {
        Ok(Response::new(super::policies::pause(&self.registry, req.into_inner()).await?))
    }

    async fn clear_policy(&self, req: Request<proto::ClearPolicyRequest>) -> Reply<proto::Policy> {
        Ok(Response::new(super::policies::clear(&self.registry, req.into_inner()).await?))
    }
}

fn requests_msg(r: crate::store::accounting::RequestStats) -> proto::StoreRequests {
    proto::StoreRequests {
        put: r.put,
        get: r.get,
        head: r.head,
        list: r.list,
        delete: r.delete,
        copy: r.copy,
        bytes_up: r.bytes_up,
        bytes_down: r.bytes_down,
        errors: r.errors,
        not_found: r.not_found,
        cache_hits: r.cache_hits,
        cache_misses: r.cache_misses,
    }
}

fn health_msg(h: &Health) -> proto::DatasetHealth {
    use proto::dataset_health::State;
    let (state, pending) = match h {
        Health::Ok => (State::Ok, Duration::ZERO),
        Health::Unavailable(d) => (State::StoreUnavailable, *d),
        Health::Fenced => (State::Fenced, Duration::ZERO),
    };
    proto::DatasetHealth { state: state as i32, pending_ms: pending.as_millis() as u64 }
}

fn dataset_msg(d: DatasetInfo) -> proto::Dataset {
    let origin = d.origin.map(|o| {
        let name = d.origin_name.clone().unwrap_or_default();
        match o {
            Origin::Dataset { dataset_id } => proto::Origin {
                source: Some(proto::origin::Source::SnapshotOfDataset(name)),
                parent_dataset_id: dataset_id,
                checkpoint_id: String::new(),
            },
            Origin::Snapshot { dataset_id, checkpoint, .. } => proto::Origin {
                source: Some(proto::origin::Source::CloneOfSnapshot(name)),
                parent_dataset_id: dataset_id,
                checkpoint_id: checkpoint.to_string(),
            },
        }
    });
    proto::Dataset {
        id: d.id,
        name: d.name,
        quota_bytes: d.quota,
        created_unix_ms: d.created_ms as i64,
        origin,
        is_default: d.is_default,
        used_bytes: d.usage.map(|u| u.bytes),
        used_inodes: d.usage.map(|u| u.inodes),
        snapshot_count: d.snapshot_count,
        clone_count: d.clone_count,
        health: d.health.as_ref().map(health_msg),
        owner: d.owner.unwrap_or_default(),
        tables: d.tables.map(|t| proto::TableSizes {
            tables: t.tables,
            stored_bytes: t.stored_bytes,
            raw_bytes: t.raw_bytes,
            stored_with_stats: t.stored_with_stats,
        }),
        kubernetes: d.kubernetes.map(kubernetes_msg),
    }
}

fn kubernetes_msg(k: KubernetesRef) -> proto::KubernetesRef {
    proto::KubernetesRef { namespace: k.namespace, name: k.name, content: k.content }
}

fn snapshot_msg(s: SnapshotInfo) -> proto::Snapshot {
    proto::Snapshot {
        id: s.id,
        name: s.name,
        dataset: s.dataset,
        dataset_id: s.dataset_id,
        checkpoint_id: s.checkpoint.to_string(),
        created_unix_ms: s.created_ms as i64,
        size_bytes: s.size_bytes,
        inodes: s.inodes,
        clone_count: s.clone_count,
        dataset_deleted: s.dataset_deleted,
        kubernetes: s.kubernetes.map(kubernetes_msg),
    }
}

fn delete_msg(o: DeleteOutcome) -> proto::DeleteResponse {
    proto::DeleteResponse { removed: o.removed, dependants: o.dependants }
}
