//! Many servers, one owner per dataset (docs/ownership.md): ownership records in the store,
//! routing of calls to a dataset's owner, takeover when an owner is gone, handoff to the one
//! server still using a dataset.
//!
//! Layers: this module depends only on `store` and `config`. The catalog (which opens and
//! closes the datasets this server owns) and the NFS layer (which runs forwarded calls) are
//! reached through the [`LocalDatasets`] and [`ForwardedCalls`] traits they implement;
//! `service` is the internal channel's gRPC server over those two.

pub mod peers;
pub mod records;
pub mod service;

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, RwLock, Weak};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use tokio::sync::OwnedRwLockReadGuard;
use tonic::{Code, Status};

use peers::{Client, Liveness, Peers, Secret};
pub use records::{Member, OwnerRecord, Records};

pub mod proto {
    tonic::include_proto!("slatefs.cluster.v1");
}

/// How long a call waits through an owner's failure and the takeover before it is answered
/// "try again later".
const FORWARD_PATIENCE: Duration = Duration::from_secs(20);
/// How often an owner looks for datasets to hand over.
const HANDOFF_SCAN: Duration = Duration::from_millis(500);
/// Resolutions (read the record, maybe claim) one call may go through.
const MAX_ROUNDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClusterError {
    /// Try again later (JUKEBOX / UNAVAILABLE).
    #[error("{0}")]
    Unavailable(String),
    #[error("{0}")]
    Internal(String),
}

/// What the cluster needs from the catalog: the datasets this server owns.
#[async_trait]
pub trait LocalDatasets: Send + Sync {
    /// Flushes and takes a named checkpoint: (checkpoint id, used bytes, used inodes).
    async fn checkpoint(&self, dataset: u64, name: &str) -> Result<(uuid::Uuid, u64, u64), Status>;
    async fn flush(&self, dataset: u64) -> Result<(), Status>;
    async fn stats(&self, dataset: u64) -> Result<proto::Stats, Status>;
    /// This server just became the owner: open the dataset ahead of its first call.
    async fn adopt(&self, dataset: u64);
    /// Flushes and closes the dataset's writer (ownership is about to move).
    async fn release(&self, dataset: u64) -> Result<(), String>;
}

/// What the cluster needs from the NFS layer: run a call another server forwarded.
#[async_trait]
pub trait ForwardedCalls: Send + Sync {
    async fn run(&self, call: proto::NfsCall) -> proto::Answered;
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum View {
    Unknown,
    /// The record at `epoch` names a process found gone: the next resolution claims past it.
    Dead { epoch: u64 },
    Mine { epoch: u64 },
    Theirs { epoch: u64, owner: Member },
}

struct Entry {
    view: RwLock<View>,
    /// Serialises reading the record and claiming, per dataset.
    resolving: tokio::sync::Mutex<()>,
    /// Held shared by every call served here; exclusively by a handoff or a release.
    serving: Arc<tokio::sync::RwLock<()>>,
    /// When this server's own clients last called (ms since the epoch).
    last_local_ms: AtomicU64,
    /// Peers that forwarded calls, with when they last did.
    forwarders: Mutex<HashMap<String, (u64, Member)>>,
}

impl Entry {
    fn new() -> Entry {
        Entry {
            view: RwLock::new(View::Unknown),
            resolving: tokio::sync::Mutex::new(()),
            serving: Arc::new(tokio::sync::RwLock::new(())),
            last_local_ms: AtomicU64::new(0),
            forwarders: Mutex::new(HashMap::new()),
        }
    }

    fn view(&self) -> View {
        self.view.read().expect("view lock").clone()
    }

    fn set(&self, v: View) {
        *self.view.write().expect("view lock") = v;
    }
}

/// A catalog's keys and values, as its owner publishes them to followers.
pub type CatalogKvs = Vec<(Vec<u8>, Vec<u8>)>;

/// Held while a call is served here: a handoff waits for it.
pub type ServingGuard = OwnedRwLockReadGuard<()>;

pub enum Route {
    Local(ServingGuard),
    Remote { epoch: u64, owner: Member },
}

/// Where an operation ran: here (do it under the guard) or on the owner (its answer).
pub enum OnOwner<T> {
    Local(ServingGuard),
    Remote(T),
    /// Nobody alive owns the dataset (only when asked not to claim it).
    Nobody,
}

pub struct Cluster {
    me: Member,
    records: Records,
    peers: Peers,
    table: Mutex<HashMap<u64, Arc<Entry>>>,
    handoff_after: Duration,
    local: OnceLock<Weak<dyn LocalDatasets>>,
    calls: OnceLock<Weak<dyn ForwardedCalls>>,
    /// Set on the catalog owner: the catalog after every change, for `WatchCatalog`.
    catalog_feed: OnceLock<tokio::sync::watch::Receiver<Arc<CatalogKvs>>>,
    stopping: AtomicBool,
    refused_log: Mutex<Option<Instant>>,
}

fn now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or(0)
}

fn store_err(e: records::RecordError) -> ClusterError {
    ClusterError::Unavailable(format!("cannot read or write the ownership record: {e}"))
}

impl Cluster {
    pub fn new(me: Member, store: &crate::store::Store, secret: &[u8; 32], handoff_after: Duration) -> Arc<Cluster> {
        let cluster = Arc::new(Cluster {
            peers: Peers::new(Secret::new(secret), me.name.clone()),
            me,
            records: Records::new(store),
            table: Mutex::new(HashMap::new()),
            handoff_after,
            local: OnceLock::new(),
            calls: OnceLock::new(),
            catalog_feed: OnceLock::new(),
            stopping: AtomicBool::new(false),
            refused_log: Mutex::new(None),
        });
        tokio::spawn(handoff_loop(Arc::downgrade(&cluster)));
        cluster
    }

    pub fn me(&self) -> &Member {
        &self.me
    }

    pub fn peers(&self) -> &Peers {
        &self.peers
    }

    pub fn set_local(&self, local: Weak<dyn LocalDatasets>) {
        let _ = self.local.set(local);
    }

    pub fn set_forwarded_calls(&self, calls: Weak<dyn ForwardedCalls>) {
        let _ = self.calls.set(calls);
    }

    /// This server owns the catalog: publish it to followers and say where it is.
    pub async fn serve_catalog(&self, feed: tokio::sync::watch::Receiver<Arc<CatalogKvs>>) -> Result<(), ClusterError> {
        let _ = self.catalog_feed.set(feed);
        self.records.put_catalog_owner(&self.me).await.map_err(store_err)
    }

    pub(crate) fn catalog_feed(&self) -> Option<tokio::sync::watch::Receiver<Arc<CatalogKvs>>> {
        self.catalog_feed.get().cloned()
    }

    /// Where the catalog owner last said it is.
    pub async fn catalog_owner(&self) -> Result<Option<Member>, ClusterError> {
        self.records.catalog_owner().await.map_err(store_err)
    }

    fn local(&self) -> Option<Arc<dyn LocalDatasets>> {
        self.local.get().and_then(|w| w.upgrade())
    }

    pub(crate) fn forwarded_calls(&self) -> Option<Arc<dyn ForwardedCalls>> {
        self.calls.get().and_then(|w| w.upgrade())
    }

    fn entry(&self, dataset: u64) -> Arc<Entry> {
        self.table.lock().expect("table lock").entry(dataset).or_insert_with(|| Arc::new(Entry::new())).clone()
    }

    /// Whether this server holds the dataset's ownership now (the catalog opens a dataset's
    /// writer only then).
    pub fn owns(&self, dataset: u64) -> bool {
        let e = self.table.lock().expect("table lock").get(&dataset).cloned();
        e.is_some_and(|e| matches!(e.view(), View::Mine { .. }))
    }

    /// The current record, read from the store (for `dataset info`).
    pub async fn owner_record(&self, dataset: u64) -> Result<Option<OwnerRecord>, ClusterError> {
        self.records.current(dataset).await.map_err(store_err)
    }

    /// Where calls on `dataset` are served; claims it when nobody alive owns it.
    /// `own_client`: the call comes from this server's own client (not forwarded, not admin).
    pub async fn route(&self, dataset: u64, own_client: bool) -> Result<Route, ClusterError> {
        match self.route_with(dataset, own_client, true).await? {
            Some(r) => Ok(r),
            None => Err(ClusterError::Internal(format!("dataset {dataset}: no owner after claiming it"))),
        }
    }

    /// As [`Cluster::route`]; with `claim` false, `None` when nobody alive owns the dataset
    /// (a report must not move a dataset's writer).
    pub async fn route_with(&self, dataset: u64, own_client: bool, claim: bool) -> Result<Option<Route>, ClusterError> {
        let entry = self.entry(dataset);
        for _ in 0..MAX_ROUNDS {
            match entry.view() {
                View::Mine { epoch } => {
                    let guard = entry.serving.clone().read_owned().await;
                    if entry.view() == (View::Mine { epoch }) {
                        if own_client {
                            entry.last_local_ms.store(now_ms(), Ordering::Relaxed);
                        }
                        return Ok(Some(Route::Local(guard)));
                    }
                }
                View::Theirs { epoch, owner } => return Ok(Some(Route::Remote { epoch, owner })),
                View::Unknown | View::Dead { .. } => {
                    if !self.resolve(dataset, &entry, claim).await? {
                        return Ok(None);
                    }
                }
            }
        }
        Err(ClusterError::Unavailable(format!("dataset {dataset}: its ownership keeps changing")))
    }

    /// Reads the record and decides: ours, theirs, or (with `claim`) take it. `false`:
    /// nobody alive owns it and `claim` was not given.
    async fn resolve(&self, dataset: u64, entry: &Entry, claim: bool) -> Result<bool, ClusterError> {
        let _one = entry.resolving.lock().await;
        let seen = entry.view();
        if matches!(seen, View::Mine { .. } | View::Theirs { .. }) {
            return Ok(true);
        }
        if self.stopping.load(Ordering::Acquire) {
            return Err(ClusterError::Unavailable("the server is shutting down".into()));
        }
        for _ in 0..MAX_ROUNDS {
            let rec = self.records.current(dataset).await.map_err(store_err)?;
            let (next, reason, taken_over) = match &rec {
                None => (1, "first use".to_string(), false),
                Some(r) => match &r.owner {
                    None => (r.epoch + 1, "released by its last owner".to_string(), false),
                    Some(o) if *o == self.me => {
                        entry.set(View::Mine { epoch: r.epoch });
                        return Ok(true);
                    }
                    Some(o) if o.name == self.me.name => {
                        (r.epoch + 1, "its owner was an earlier run of this server".to_string(), true)
                    }
                    Some(o) if seen == (View::Dead { epoch: r.epoch }) => {
                        (r.epoch + 1, format!("its owner {} ({}) is gone", o.name, o.address), true)
                    }
                    Some(o) => {
                        entry.set(View::Theirs { epoch: r.epoch, owner: o.clone() });
                        return Ok(true);
                    }
                },
            };
            if !claim {
                return Ok(false);
            }
            let claim = OwnerRecord {
                dataset,
                epoch: next,
                owner: Some(self.me.clone()),
                reason: reason.clone(),
                at_ms: now_ms(),
            };
            if self.records.create(&claim).await.map_err(store_err)? {
                tracing::info!(dataset, epoch = next, "taking ownership of dataset {dataset}: {reason}");
                crate::metrics::events::count(&crate::metrics::events::OWNERSHIP_TAKEN);
                if taken_over {
                    crate::metrics::events::count(&crate::metrics::events::OWNERSHIP_TAKEN_OVER);
                }
                entry.set(View::Mine { epoch: next });
                self.prune_later(dataset, next);
                return Ok(true);
            }
            // Another server took that epoch first: read again.
        }
        Err(ClusterError::Unavailable(format!("dataset {dataset}: could not settle its ownership")))
    }

    fn prune_later(&self, dataset: u64, epoch: u64) {
        let records = self.records.clone();
        tokio::spawn(async move {
            if let Err(e) = records.prune(dataset, epoch).await {
                tracing::debug!("pruning old ownership records of dataset {dataset}: {e}");
            }
        });
    }

    /// The owner said it does not own the dataset at `epoch`: read the record again.
    fn forget(&self, dataset: u64, epoch: u64) {
        let entry = self.entry(dataset);
        if matches!(entry.view(), View::Theirs { epoch: e, .. } if e <= epoch) {
            entry.set(View::Unknown);
        }
    }

    /// This server's writer of `dataset` was fenced: someone else opened it. Read the record
    /// again before serving it.
    pub fn lost(&self, dataset: u64) {
        let entry = self.entry(dataset);
        if let View::Mine { epoch } = entry.view() {
            tracing::warn!(dataset, epoch, "dataset {dataset}: another server opened it for writing; reading its ownership again");
            crate::metrics::events::count(&crate::metrics::events::OWNERSHIP_LOST);
            entry.set(View::Unknown);
        }
    }

    /// A call to the owner failed in transport: find out whether the owner is gone.
    async fn check_owner(&self, dataset: u64, epoch: u64, owner: &Member) -> Result<(), ClusterError> {
        match self.peers.liveness(owner).await {
            Liveness::Alive => {
                tokio::time::sleep(Duration::from_millis(100)).await;
                Ok(())
            }
            Liveness::Gone | Liveness::Silent => {
                let entry = self.entry(dataset);
                if matches!(entry.view(), View::Theirs { epoch: e, .. } if e == epoch) {
                    tracing::warn!(dataset, epoch, "owner {} ({}) of dataset {dataset} does not answer", owner.name, owner.address);
                    entry.set(View::Dead { epoch });
                }
                Ok(())
            }
            Liveness::Refused => {
                self.log_refused(&owner.address);
                Err(ClusterError::Unavailable(format!(
                    "server {} ({}) refused this server's cluster secret",
                    owner.name, owner.address
                )))
            }
        }
    }

    fn log_refused(&self, address: &str) {
        let mut last = self.refused_log.lock().expect("log lock");
        if last.is_none_or(|t| t.elapsed() >= Duration::from_secs(10)) {
            *last = Some(Instant::now());
            tracing::error!("server at {address} refused our cluster secret: every server must use the same [cluster] secret");
        }
    }

    /// Runs `remote` on the dataset's owner, or says to run it here. Waits through an owner's
    /// failure and the takeover, up to [`FORWARD_PATIENCE`].
    /// With `claim` false, [`OnOwner::Nobody`] when nobody alive owns it.
    pub async fn on_owner<T, F, Fut>(&self, dataset: u64, own_client: bool, claim: bool, mut remote: F) -> Result<OnOwner<T>, ClusterError>
    where
        F: FnMut(Client, u64) -> Fut,
        Fut: Future<Output = Result<Result<T, u64>, Status>>,
    {
        let deadline = Instant::now() + FORWARD_PATIENCE;
        loop {
            let (epoch, owner) = match self.route_with(dataset, own_client, claim).await? {
                None => return Ok(OnOwner::Nobody),
                Some(Route::Local(guard)) => return Ok(OnOwner::Local(guard)),
                Some(Route::Remote { epoch, owner }) => (epoch, owner),
            };
            let client = self.peers.client(&owner.address).map_err(|s| ClusterError::Internal(s.message().to_string()))?;
            match remote(client, epoch).await {
                Ok(Ok(answer)) => return Ok(OnOwner::Remote(answer)),
                Ok(Err(_their_epoch)) => self.forget(dataset, epoch),
                Err(s) if s.code() == Code::Unauthenticated => {
                    self.log_refused(&owner.address);
                    return Err(ClusterError::Unavailable(format!("server {} refused our cluster secret", owner.name)));
                }
                Err(s) if s.code() == Code::Unavailable || s.code() == Code::DeadlineExceeded || s.code() == Code::Unknown || s.code() == Code::Cancelled => {
                    tracing::debug!(dataset, "call to owner {} failed: {s}", owner.name);
                    self.check_owner(dataset, epoch, &owner).await?;
                }
                Err(s) => return Err(ClusterError::Internal(format!("owner {}: {}", owner.name, s.message()))),
            }
            if Instant::now() >= deadline {
                return Err(ClusterError::Unavailable(format!(
                    "dataset {dataset}: its owner {} ({}) does not answer",
                    owner.name, owner.address
                )));
            }
        }
    }

    /// A forwarded call arrived: this server must own the dataset at the caller's epoch or
    /// later; otherwise the caller reads the record again.
    pub async fn serve_forwarded(&self, dataset: u64, origin: Option<Member>) -> Result<ServingGuard, u64> {
        match self.route(dataset, false).await {
            Ok(Route::Local(guard)) => {
                if let Some(o) = origin {
                    let entry = self.entry(dataset);
                    entry.forwarders.lock().expect("forwarders lock").insert(o.name.clone(), (now_ms(), o));
                }
                Ok(guard)
            }
            Ok(Route::Remote { epoch, .. }) => Err(epoch),
            Err(_) => Err(0),
        }
    }

    /// The previous owner handed `dataset` to this server.
    pub async fn adopted(&self, dataset: u64) {
        let entry = self.entry(dataset);
        entry.set(View::Unknown);
        match self.resolve(dataset, &entry, false).await {
            Ok(true) if matches!(entry.view(), View::Mine { .. }) => {
                tracing::info!(dataset, "dataset {dataset} was handed to this server");
                if let Some(local) = self.local() {
                    local.adopt(dataset).await;
                }
            }
            Ok(_) => {}
            Err(e) => tracing::warn!("dataset {dataset} was handed over, but: {e}"),
        }
    }

    /// Hands datasets whose only user is another server to that server.
    async fn scan_handoffs(&self) {
        let now = now_ms();
        let window = self.handoff_after.as_millis() as u64;
        let entries: Vec<(u64, Arc<Entry>)> =
            self.table.lock().expect("table lock").iter().map(|(k, v)| (*k, v.clone())).collect();
        for (dataset, entry) in entries {
            let View::Mine { epoch } = entry.view() else { continue };
            if now.saturating_sub(entry.last_local_ms.load(Ordering::Relaxed)) < window {
                continue;
            }
            let users: Vec<Member> = {
                let mut fw = entry.forwarders.lock().expect("forwarders lock");
                fw.retain(|_, (at, _)| now.saturating_sub(*at) < window);
                fw.values().map(|(_, m)| m.clone()).collect()
            };
            if let [only] = users.as_slice() {
                self.move_ownership(dataset, &entry, epoch, Some(only.clone()), "the only server using it").await;
            }
        }
    }

    /// Gives ownership up: waits for calls in progress, closes the writer, writes the next
    /// record naming `to` (or nobody).
    async fn move_ownership(&self, dataset: u64, entry: &Entry, epoch: u64, to: Option<Member>, why: &str) {
        let _exclusive = entry.serving.write().await;
        if entry.view() != (View::Mine { epoch }) {
            return;
        }
        let Some(local) = self.local() else { return };
        if let Err(e) = local.release(dataset).await {
            tracing::warn!("dataset {dataset}: not moving ownership ({why}): {e}");
            return;
        }
        let reason = match &to {
            Some(m) => format!("handed over by {}: {} is {why}", self.me.name, m.name),
            None => format!("released by {}: {why}", self.me.name),
        };
        let rec = OwnerRecord { dataset, epoch: epoch + 1, owner: to.clone(), reason: reason.clone(), at_ms: now_ms() };
        match self.records.create(&rec).await {
            Ok(true) => {
                tracing::info!(dataset, epoch = epoch + 1, "dataset {dataset}: {reason}");
                entry.forwarders.lock().expect("forwarders lock").clear();
                match to {
                    Some(m) => {
                        crate::metrics::events::count(&crate::metrics::events::OWNERSHIP_HANDED_OFF);
                        entry.set(View::Theirs { epoch: epoch + 1, owner: m.clone() });
                        self.prune_later(dataset, epoch + 1);
                        if let Ok(mut client) = self.peers.client(&m.address) {
                            tokio::spawn(async move {
                                let req = proto::AdoptRequest { dataset, epoch: epoch + 1 };
                                if let Err(e) = client.adopt(req).await {
                                    tracing::debug!("telling {} it owns dataset {dataset}: {e}", m.name);
                                }
                            });
                        }
                    }
                    None => entry.set(View::Unknown),
                }
            }
            Ok(false) => entry.set(View::Unknown),
            // Still ours: the writer opens again on the next call.
            Err(e) => tracing::warn!("dataset {dataset}: cannot write its ownership record ({why}): {e}"),
        }
    }

    /// Shutdown: releases every dataset this server owns, so that others take them at once.
    pub async fn release_all(&self) {
        self.stopping.store(true, Ordering::Release);
        let entries: Vec<(u64, Arc<Entry>)> =
            self.table.lock().expect("table lock").iter().map(|(k, v)| (*k, v.clone())).collect();
        for (dataset, entry) in entries {
            if let View::Mine { epoch } = entry.view() {
                self.move_ownership(dataset, &entry, epoch, None, "it is stopping").await;
            }
        }
    }

    /// The dataset is gone from the catalog: forget it and its records.
    pub async fn remove_dataset(&self, dataset: u64) {
        self.table.lock().expect("table lock").remove(&dataset);
        if let Err(e) = self.records.remove_all(dataset).await {
            tracing::warn!("removing the ownership records of dataset {dataset}: {e}");
        }
    }
}

async fn handoff_loop(cluster: Weak<Cluster>) {
    loop {
        tokio::time::sleep(HANDOFF_SCAN).await;
        let Some(c) = cluster.upgrade() else { return };
        if c.stopping.load(Ordering::Acquire) {
            return;
        }
        c.scan_handoffs().await;
    }
}
