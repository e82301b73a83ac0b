//! [`Backend`] over the slatefs admin API (`proto/slatefs.proto`): the CSI controller's path to
//! the catalog owner and the node's path to its dataset server.

use std::time::Duration;

use anyhow::Result;
use async_trait::async_trait;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use tonic::{Request, Status};

use super::backend::{Backend, Dataset, Health, KubernetesRef, Origin, Snapshot, Stats};
use super::secrets::S3Credentials;
use super::transport::{self, BearerToken};
use crate::admin::proto as pb;
use crate::admin::proto::admin_client::AdminClient;
use crate::admin::tls::ClientTls;
use crate::admin::AdminAddr;

/// Reads are quick; a mutation may wait for the store (checkpoint, clone, flush).
const READ_TIMEOUT: Duration = Duration::from_secs(30);
const WRITE_TIMEOUT: Duration = Duration::from_secs(120);

#[derive(Clone)]
pub struct AdminBackend {
    client: AdminClient<InterceptedService<Channel, BearerToken>>,
    addr: String,
}

impl AdminBackend {
    /// A backend for `addr`, connected on first use (so start-up does not wait for the server).
    pub fn new(addr: &AdminAddr, token: Option<&str>) -> Result<AdminBackend> {
        AdminBackend::with_tls(addr, token, None)
    }

    /// [`AdminBackend::new`], over TLS on TCP when `tls` is given.
    pub fn with_tls(addr: &AdminAddr, token: Option<&str>, tls: Option<&ClientTls>) -> Result<AdminBackend> {
        let channel = match addr {
            AdminAddr::Unix(p) => transport::unix_channel(p),
            AdminAddr::Tcp(hp) => transport::tcp_channel(hp, tls)?,
        };
        let client = AdminClient::with_interceptor(channel, BearerToken::new(token)?);
        Ok(AdminBackend { client, addr: addr.to_string() })
    }

    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn client(&self) -> AdminClient<InterceptedService<Channel, BearerToken>> {
        self.client.clone()
    }
}

fn req<T>(msg: T, timeout: Duration) -> Request<T> {
    let mut r = Request::new(msg);
    r.set_timeout(timeout);
    r
}

fn dataset(d: pb::Dataset) -> Dataset {
    let origin = d.origin.and_then(|o| match o.source {
        Some(pb::origin::Source::SnapshotOfDataset(s)) => Some(Origin::SnapshotOfDataset(s)),
        Some(pb::origin::Source::CloneOfSnapshot(s)) => Some(Origin::CloneOfSnapshot(s)),
        None => None,
    });
    Dataset {
        name: d.name,
        quota_bytes: d.quota_bytes,
        created_unix_ms: d.created_unix_ms,
        origin,
        is_default: d.is_default,
        used_bytes: d.used_bytes,
        used_inodes: d.used_inodes,
        health: d.health.as_ref().and_then(health),
    }
}

fn health(h: &pb::DatasetHealth) -> Option<Health> {
    use pb::dataset_health::State;
    match State::try_from(h.state).ok()? {
        State::Ok => Some(Health::Ok),
        State::StoreUnavailable => Some(Health::StoreUnavailable { pending_ms: h.pending_ms }),
        State::Fenced => Some(Health::Fenced),
        State::Unspecified => None,
    }
}

fn snapshot(s: pb::Snapshot) -> Snapshot {
    Snapshot { name: s.name, dataset: s.dataset, created_unix_ms: s.created_unix_ms, size_bytes: s.size_bytes }
}

impl AdminBackend {
    async fn set_kubernetes_ref(&self, object: pb::set_kubernetes_ref_request::Object, r: &KubernetesRef) -> Result<(), Status> {
        let r = pb::KubernetesRef { namespace: r.namespace.clone(), name: r.name.clone(), content: r.content.clone() };
        let request = pb::SetKubernetesRefRequest { object: Some(object), r#ref: Some(r) };
        self.client().set_kubernetes_ref(req(request, WRITE_TIMEOUT)).await?;
        Ok(())
    }
}

#[async_trait]
impl Backend for AdminBackend {
    async fn ping(&self) -> Result<(), Status> {
        self.client().list_datasets(req(pb::ListDatasetsRequest {}, Duration::from_secs(5))).await?;
        Ok(())
    }

    async fn get_dataset(&self, name: &str) -> Result<Dataset, Status> {
        let r = self.client().get_dataset(req(pb::GetDatasetRequest { name: name.into() }, READ_TIMEOUT)).await?;
        Ok(dataset(r.into_inner()))
    }

    async fn list_datasets(&self) -> Result<Vec<Dataset>, Status> {
        let r = self.client().list_datasets(req(pb::ListDatasetsRequest {}, READ_TIMEOUT)).await?;
        Ok(r.into_inner().datasets.into_iter().map(dataset).collect())
    }

    async fn create_dataset(&self, name: &str, quota_bytes: Option<u64>) -> Result<Dataset, Status> {
        let r = self
            .client()
            .create_dataset(req(pb::CreateDatasetRequest { name: name.into(), quota_bytes }, WRITE_TIMEOUT))
            .await?;
        Ok(dataset(r.into_inner()))
    }

    async fn set_dataset_kubernetes_ref(&self, dataset: &str, r: &KubernetesRef) -> Result<(), Status> {
        self.set_kubernetes_ref(pb::set_kubernetes_ref_request::Object::Dataset(dataset.into()), r).await
    }

    async fn set_snapshot_kubernetes_ref(&self, snapshot: &str, r: &KubernetesRef) -> Result<(), Status> {
        self.set_kubernetes_ref(pb::set_kubernetes_ref_request::Object::Snapshot(snapshot.into()), r).await
    }

    async fn delete_dataset(&self, name: &str) -> Result<(), Status> {
        self.client().delete_dataset(req(pb::DeleteDatasetRequest { name: name.into() }, WRITE_TIMEOUT)).await?;
        Ok(())
    }

    async fn set_policy(&self, name: &str, policy: Option<&crate::policy::PolicyText>) -> Result<(), Status> {
        match policy {
            Some(text) => {
                let r = crate::admin::policies::request_of(name, text);
                self.client().set_policy(req(r, WRITE_TIMEOUT)).await?;
            }
            None => {
                let r = pb::ClearPolicyRequest { dataset: name.into() };
                match self.client().clear_policy(req(r, WRITE_TIMEOUT)).await {
                    Err(e) if e.code() == tonic::Code::NotFound && e.message().contains("no snapshot policy") => {}
                    other => {
                        other?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn set_quota(&self, name: &str, quota_bytes: Option<u64>) -> Result<Dataset, Status> {
        let r = self
            .client()
            .set_quota(req(pb::SetQuotaRequest { name: name.into(), quota_bytes }, WRITE_TIMEOUT))
            .await?;
        Ok(dataset(r.into_inner()))
    }

    async fn writable_snapshot(&self, source: &str, name: &str) -> Result<Dataset, Status> {
        let r = self
            .client()
            .create_snapshot(req(
                pb::CreateSnapshotRequest { source: source.into(), name: name.into(), readonly: false },
                WRITE_TIMEOUT,
            ))
            .await?;
        match r.into_inner().result {
            Some(pb::create_snapshot_response::Result::Dataset(d)) => Ok(dataset(d)),
            _ => Err(Status::internal("admin API answered a writable snapshot without a dataset")),
        }
    }

    async fn readonly_snapshot(&self, source: &str, name: &str) -> Result<Snapshot, Status> {
        let r = self
            .client()
            .create_snapshot(req(
                pb::CreateSnapshotRequest { source: source.into(), name: name.into(), readonly: true },
                WRITE_TIMEOUT,
            ))
            .await?;
        match r.into_inner().result {
            Some(pb::create_snapshot_response::Result::Snapshot(s)) => Ok(snapshot(s)),
            _ => Err(Status::internal("admin API answered a read-only snapshot without a snapshot")),
        }
    }

    async fn list_snapshots(&self, dataset: &str) -> Result<Vec<Snapshot>, Status> {
        let r = self
            .client()
            .list_snapshots(req(pb::ListSnapshotsRequest { dataset: dataset.into() }, READ_TIMEOUT))
            .await?;
        Ok(r.into_inner().snapshots.into_iter().map(snapshot).collect())
    }

    async fn delete_snapshot(&self, name: &str) -> Result<(), Status> {
        self.client().delete_snapshot(req(pb::DeleteSnapshotRequest { name: name.into() }, WRITE_TIMEOUT)).await?;
        Ok(())
    }

    async fn clone_snapshot(&self, snapshot_name: &str, name: &str) -> Result<Dataset, Status> {
        let r = self
            .client()
            .clone_snapshot(req(
                pb::CloneSnapshotRequest { snapshot: snapshot_name.into(), name: name.into() },
                WRITE_TIMEOUT,
            ))
            .await?;
        Ok(dataset(r.into_inner()))
    }

    async fn dataset_stats(&self, name: &str) -> Result<Stats, Status> {
        let r = self
            .client()
            .dataset_stats(req(pb::DatasetStatsRequest { name: name.into() }, READ_TIMEOUT))
            .await?
            .into_inner();
        Ok(Stats {
            used_bytes: r.used_bytes,
            used_inodes: r.used_inodes,
            quota_bytes: r.quota_bytes,
            health: r.health.as_ref().and_then(health),
        })
    }

    async fn check_store_access(&self, store_url: &str, creds: &S3Credentials) -> Result<(), Status> {
        let credentials = pb::StoreCredentials {
            access_key_id: creds.access_key_id.clone(),
            secret_access_key: creds.secret_access_key.clone(),
            session_token: creds.session_token.clone().unwrap_or_default(),
        };
        self.client()
            .check_store_access(req(
                pb::CheckStoreAccessRequest { store_url: store_url.into(), credentials: Some(credentials) },
                // Five requests to the store, each bounded by the server's 10 s timeout.
                Duration::from_secs(60),
            ))
            .await?;
        Ok(())
    }
}
