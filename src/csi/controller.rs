//! CSI Controller service: PV = dataset, VolumeSnapshot = read-only snapshot, PVC from a
//! snapshot = clone of it, PVC from a PVC = writable snapshot, expansion = quota.
//!
//! Every operation goes through [`Backend`] (the catalog owner's admin API); this file only
//! validates, maps names to ids (see `ids.rs`) and maps results to the spec's codes. Concurrent
//! calls for one volume or snapshot name are refused with ABORTED (the spec's "operation pending
//! for volume") rather than raced; nothing else is kept in memory.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use tonic::{Code, Request, Response, Status};

use super::backend::{self, Backend, Dataset, Origin, Snapshot as BSnapshot};
use super::proto::controller_server::Controller;
use super::proto::volume_content_source::{SnapshotSource, Type as SourceType, VolumeSource};
use super::proto::*;
use super::{caps, ids, names, params, secrets};
use crate::store::Store;

pub struct ControllerService {
    backend: Arc<dyn Backend>,
    served: params::Served,
    /// A local (file://) store, for GetCapacity.
    store: Option<Store>,
    inflight: Mutex<HashSet<String>>,
}

/// Removes its key from the in-flight set when dropped.
struct Inflight<'a> {
    set: &'a Mutex<HashSet<String>>,
    key: String,
}

impl Drop for Inflight<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.set.lock() {
            s.remove(&self.key);
        }
    }
}

/// What a CreateVolume asks the new volume to contain.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Want {
    Empty,
    Snapshot { dataset: String, snapshot: String },
    Volume(String),
}

fn not_found_is_ok(r: Result<(), Status>) -> Result<(), Status> {
    match r {
        Err(e) if e.code() == Code::NotFound => Ok(()),
        other => other,
    }
}

fn timestamp(unix_ms: i64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: unix_ms.div_euclid(1000),
        nanos: (unix_ms.rem_euclid(1000) * 1_000_000) as i32,
    }
}

fn csi_snapshot(s: &BSnapshot) -> Snapshot {
    Snapshot {
        size_bytes: s.size_bytes.min(i64::MAX as u64) as i64,
        snapshot_id: ids::snapshot_id(&s.dataset, &s.name),
        source_volume_id: s.dataset.clone(),
        creation_time: Some(timestamp(s.created_unix_ms)),
        ready_to_use: true,
        group_snapshot_id: String::new(),
    }
}

fn source_of(want: &Want) -> Option<VolumeContentSource> {
    let t = match want {
        Want::Empty => return None,
        Want::Snapshot { dataset, snapshot } => SourceType::Snapshot(SnapshotSource {
            snapshot_id: ids::snapshot_id(dataset, snapshot),
        }),
        Want::Volume(v) => SourceType::Volume(VolumeSource { volume_id: v.clone() }),
    };
    Some(VolumeContentSource { r#type: Some(t) })
}

/// The CSI volume of a dataset. `snapshot_datasets` maps snapshot names to their datasets (to
/// name the content source of a volume restored from a snapshot).
fn csi_volume(ds: &Dataset, snapshot_datasets: &HashMap<String, String>) -> Volume {
    let content_source = match &ds.origin {
        None => None,
        Some(Origin::SnapshotOfDataset(d)) => source_of(&Want::Volume(d.clone())),
        Some(Origin::CloneOfSnapshot(s)) => snapshot_datasets
            .get(s)
            .and_then(|d| source_of(&Want::Snapshot { dataset: d.clone(), snapshot: s.clone() })),
    };
    Volume {
        capacity_bytes: ds.quota_bytes.unwrap_or(0).min(i64::MAX as u64) as i64,
        volume_id: ds.name.clone(),
        volume_context: HashMap::new(),
        content_source,
        accessible_topology: vec![],
    }
}

/// The condition of a dataset whose usage is known.
fn condition_of(ds: &Dataset) -> VolumeCondition {
    if let Some(problem) = ds.health.as_ref().and_then(|h| h.problem()) {
        return VolumeCondition { abnormal: true, message: problem };
    }
    match (ds.used_bytes, ds.quota_bytes) {
        (Some(used), Some(quota)) if used > quota => VolumeCondition {
            abnormal: true,
            message: format!("dataset uses {used} bytes, more than its quota of {quota}"),
        },
        (Some(used), q) => VolumeCondition {
            abnormal: false,
            message: match q {
                Some(q) => format!("dataset is healthy: {used} of {q} bytes used"),
                None => format!("dataset is healthy: {used} bytes used, no quota"),
            },
        },
        (None, _) => VolumeCondition { abnormal: false, message: "dataset is in the catalog".into() },
    }
}

impl ControllerService {
    pub fn new(backend: Arc<dyn Backend>, served: params::Served, store: Option<Store>) -> Self {
        ControllerService { backend, served, store, inflight: Mutex::new(HashSet::new()) }
    }

    /// Has the catalog owner check a call's CSI secret against the store (see `secrets.rs`);
    /// nothing to do without one.
    async fn check_secrets(&self, secrets: &HashMap<String, String>, store_url: &str) -> Result<(), Status> {
        match secrets::parse(secrets)? {
            Some(creds) => self.backend.check_store_access(store_url, &creds).await,
            None => Ok(()),
        }
    }

    fn begin(&self, key: String) -> Result<Inflight<'_>, Status> {
        let mut s = self.inflight.lock().map_err(|_| Status::internal("in-flight set poisoned"))?;
        if !s.insert(key.clone()) {
            return Err(Status::aborted(format!("an operation on {key} is already in progress")));
        }
        Ok(Inflight { set: &self.inflight, key })
    }

    async fn snapshot_datasets(&self) -> Result<HashMap<String, String>, Status> {
        Ok(self.backend.list_snapshots("").await?.into_iter().map(|s| (s.name, s.dataset)).collect())
    }

    /// The snapshot a snapshot id names, if it exists.
    async fn snapshot_by_id(&self, id: &str) -> Result<Option<BSnapshot>, Status> {
        let Some((ds, snap)) = ids::parse_snapshot_id(id) else { return Ok(None) };
        let list = match self.backend.list_snapshots(ds).await {
            Ok(l) => l,
            Err(e) if e.code() == Code::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(list.into_iter().find(|s| s.name == snap && s.dataset == ds))
    }

    /// The volume a volume id names: a dataset, or a read-only snapshot (`DATASET@SNAP`, a
    /// statically provisioned read-only volume). NOT_FOUND when neither exists.
    async fn lookup_volume(&self, id: &str) -> Result<Result<Dataset, BSnapshot>, Status> {
        if let Some(name) = ids::parse_volume_id(id) {
            return match self.backend.get_dataset(name).await {
                Ok(d) => Ok(Ok(d)),
                Err(e) if e.code() == Code::NotFound => {
                    Err(Status::not_found(format!("volume {id} does not exist")))
                }
                Err(e) => Err(e),
            };
        }
        match self.snapshot_by_id(id).await? {
            Some(s) => Ok(Err(s)),
            None => Err(Status::not_found(format!("volume {id} does not exist"))),
        }
    }

    /// CreateVolume found a dataset of that name: the same volume if compatible.
    async fn existing(
        &self,
        ds: Dataset,
        want: &Want,
        range: Option<&CapacityRange>,
        cap: u64,
    ) -> Result<Volume, Status> {
        let origin_ok = match (want, &ds.origin) {
            (Want::Empty, None) => true,
            (Want::Snapshot { snapshot, .. }, Some(Origin::CloneOfSnapshot(s))) => s == snapshot,
            (Want::Volume(v), Some(Origin::SnapshotOfDataset(d))) => d == v,
            _ => false,
        };
        if !origin_ok {
            return Err(Status::already_exists(format!(
                "volume {} already exists with another content source",
                ds.name
            )));
        }
        let mut ds = ds;
        let current = ds.quota_bytes.unwrap_or(0);
        if !ids::capacity_satisfies(current, range)? {
            if *want == Want::Empty {
                return Err(Status::already_exists(format!(
                    "volume {} already exists with capacity {current} bytes, incompatible with the requested range",
                    ds.name
                )));
            }
            // A clone takes its quota in a second step (the admin API's clone has no quota);
            // a retry after a crash between the two finishes the job.
            ds = self.backend.set_quota(&ds.name, Some(cap)).await?;
        }
        let mut v = csi_volume(&ds, &HashMap::new());
        v.content_source = source_of(want);
        Ok(v)
    }

    async fn create(&self, name: &str, want: &Want, cap: u64) -> Result<Dataset, Status> {
        match want {
            Want::Empty => self.backend.create_dataset(name, Some(cap)).await,
            Want::Snapshot { dataset, snapshot } => {
                let snap = self
                    .snapshot_by_id(&ids::snapshot_id(dataset, snapshot))
                    .await?
                    .ok_or_else(|| {
                        Status::not_found(format!("source snapshot {dataset}@{snapshot} does not exist"))
                    })?;
                if cap < snap.size_bytes {
                    return Err(Status::out_of_range(format!(
                        "capacity {cap} is smaller than the snapshot's {} bytes",
                        snap.size_bytes
                    )));
                }
                self.backend.clone_snapshot(snapshot, name).await?;
                self.backend.set_quota(name, Some(cap)).await
            }
            Want::Volume(src) => {
                let source = match self.backend.get_dataset(src).await {
                    Err(e) if e.code() == Code::NotFound => {
                        return Err(Status::not_found(format!("source volume {src} does not exist")))
                    }
                    other => other?,
                };
                let used = source.used_bytes.unwrap_or(0);
                if cap < used {
                    return Err(Status::out_of_range(format!(
                        "capacity {cap} is smaller than the source volume's {used} used bytes"
                    )));
                }
                self.backend.writable_snapshot(src, name).await?;
                self.backend.set_quota(name, Some(cap)).await
            }
        }
    }
}

fn want_of(source: Option<&VolumeContentSource>) -> Result<Want, Status> {
    let Some(src) = source else { return Ok(Want::Empty) };
    match &src.r#type {
        None => Err(Status::invalid_argument("volume_content_source has no snapshot or volume")),
        Some(SourceType::Snapshot(s)) => {
            if s.snapshot_id.is_empty() {
                return Err(Status::invalid_argument("volume_content_source.snapshot.snapshot_id is required"));
            }
            let (ds, snap) = ids::parse_snapshot_id(&s.snapshot_id).ok_or_else(|| {
                Status::not_found(format!("source snapshot {} does not exist", s.snapshot_id))
            })?;
            Ok(Want::Snapshot { dataset: ds.into(), snapshot: snap.into() })
        }
        Some(SourceType::Volume(v)) => {
            if v.volume_id.is_empty() {
                return Err(Status::invalid_argument("volume_content_source.volume.volume_id is required"));
            }
            let ds = ids::parse_volume_id(&v.volume_id).ok_or_else(|| {
                Status::not_found(format!("source volume {} does not exist", v.volume_id))
            })?;
            Ok(Want::Volume(ds.into()))
        }
    }
}

fn rpc_cap(t: controller_service_capability::rpc::Type) -> ControllerServiceCapability {
    ControllerServiceCapability {
        r#type: Some(controller_service_capability::Type::Rpc(controller_service_capability::Rpc {
            r#type: t as i32,
        })),
    }
}

fn required(what: &str, v: &str) -> Result<(), Status> {
    if v.is_empty() {
        Err(Status::invalid_argument(format!("{what} is required")))
    } else {
        Ok(())
    }
}

#[tonic::async_trait]
impl Controller for ControllerService {
    async fn create_volume(
        &self,
        request: Request<CreateVolumeRequest>,
    ) -> Result<Response<CreateVolumeResponse>, Status> {
        let req = request.into_inner();
        ids::validate_csi_name("name", &req.name)?;
        caps::validate_all(&req.volume_capabilities)?;
        params::validate_volume_params(&req.parameters, &self.served)?;
        names::check_metadata(&req.parameters)?;
        let policy = params::creation_policy(&req.parameters, &req.mutable_parameters)?;
        let range = req.capacity_range.as_ref();
        let cap = ids::capacity_for(range)?;
        let want = want_of(req.volume_content_source.as_ref())?;
        let name = ids::catalog_name_for(&req.name);
        let _guard = self.begin(format!("volume {name}"))?;
        let store_url = req.parameters.get("storeUrl").map(String::as_str).unwrap_or("");
        self.check_secrets(&req.secrets, store_url).await?;

        match self.backend.get_dataset(&name).await {
            Ok(ds) => {
                let volume = self.existing(ds, &want, range, cap).await?;
                names::record_pvc(self.backend.as_ref(), &name, &req.parameters).await?;
                // A retried call finishes what the first one may not have: the policy.
                if let Some(p) = &policy {
                    self.backend.set_policy(&name, p.as_ref()).await?;
                }
                return Ok(Response::new(CreateVolumeResponse { volume: Some(volume) }));
            }
            Err(e) if e.code() == Code::NotFound => {}
            Err(e) => return Err(e),
        }
        let ds = match self.create(&name, &want, cap).await {
            Ok(ds) => ds,
            // Created meanwhile by someone else (another controller replica): judge that one.
            Err(e) if e.code() == Code::AlreadyExists => {
                let ds = self.backend.get_dataset(&name).await?;
                let volume = self.existing(ds, &want, range, cap).await?;
                names::record_pvc(self.backend.as_ref(), &name, &req.parameters).await?;
                return Ok(Response::new(CreateVolumeResponse { volume: Some(volume) }));
            }
            Err(e) => return Err(e),
        };
        names::record_pvc(self.backend.as_ref(), &name, &req.parameters).await?;
        if let Some(p) = &policy {
            self.backend.set_policy(&name, p.as_ref()).await?;
        }
        tracing::info!(volume = %name, capacity = cap, source = ?want, "created volume");
        let mut volume = csi_volume(&ds, &HashMap::new());
        volume.capacity_bytes = cap as i64;
        volume.content_source = source_of(&want);
        Ok(Response::new(CreateVolumeResponse { volume: Some(volume) }))
    }

    async fn delete_volume(
        &self,
        request: Request<DeleteVolumeRequest>,
    ) -> Result<Response<DeleteVolumeResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        let Some(name) = ids::parse_volume_id(&req.volume_id) else {
            // Not a dataset name (e.g. a static snapshot volume): nothing of ours to delete.
            return Ok(Response::new(DeleteVolumeResponse {}));
        };
        let _guard = self.begin(format!("volume {name}"))?;
        self.check_secrets(&req.secrets, "").await?;
        not_found_is_ok(self.backend.delete_dataset(name).await)?;
        tracing::info!(volume = %name, "deleted volume");
        Ok(Response::new(DeleteVolumeResponse {}))
    }

    async fn controller_publish_volume(
        &self,
        _: Request<ControllerPublishVolumeRequest>,
    ) -> Result<Response<ControllerPublishVolumeResponse>, Status> {
        Err(Status::unimplemented("ControllerPublishVolume: volumes need no attach step"))
    }

    async fn controller_unpublish_volume(
        &self,
        _: Request<ControllerUnpublishVolumeRequest>,
    ) -> Result<Response<ControllerUnpublishVolumeResponse>, Status> {
        Err(Status::unimplemented("ControllerUnpublishVolume: volumes need no attach step"))
    }

    async fn validate_volume_capabilities(
        &self,
        request: Request<ValidateVolumeCapabilitiesRequest>,
    ) -> Result<Response<ValidateVolumeCapabilitiesResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        if req.volume_capabilities.is_empty() {
            return Err(Status::invalid_argument("volume_capabilities is required"));
        }
        for c in &req.volume_capabilities {
            if c.access_mode.is_none() || c.access_type.is_none() {
                return Err(Status::invalid_argument(
                    "every volume capability needs an access_type and an access_mode",
                ));
            }
        }
        secrets::parse(&req.secrets)?;
        let volume = self.lookup_volume(&req.volume_id).await?;
        let mut reasons: Vec<String> =
            req.volume_capabilities.iter().filter_map(caps::unsupported_reason).collect();
        if volume.is_err() {
            for c in &req.volume_capabilities {
                let m = caps::mode(c);
                if !caps::mode_is_read_only(m) {
                    reasons.push(format!("{} is a read-only snapshot; access mode {m:?} writes", req.volume_id));
                }
            }
        }
        if let Err(e) = params::validate_volume_params(&req.parameters, &self.served) {
            reasons.push(e.message().to_string());
        }
        if !req.mutable_parameters.is_empty() {
            reasons.push("mutable_parameters are not supported".into());
        }
        let resp = if reasons.is_empty() {
            ValidateVolumeCapabilitiesResponse {
                confirmed: Some(validate_volume_capabilities_response::Confirmed {
                    volume_context: req.volume_context,
                    volume_capabilities: req.volume_capabilities,
                    parameters: req.parameters,
                    mutable_parameters: HashMap::new(),
                }),
                message: String::new(),
            }
        } else {
            ValidateVolumeCapabilitiesResponse { confirmed: None, message: reasons.join("; ") }
        };
        Ok(Response::new(resp))
    }

    async fn list_volumes(
        &self,
        request: Request<ListVolumesRequest>,
    ) -> Result<Response<ListVolumesResponse>, Status> {
        let req = request.into_inner();
        // Validate the token before any I/O.
        ids::parse_page_token(&req.starting_token)?;
        let mut datasets = self.backend.list_datasets().await?;
        datasets.sort_by(|a, b| a.name.cmp(&b.name));
        let (page, next_token) = ids::page(datasets, |d| d.name.as_str(), req.max_entries, &req.starting_token)?;
        let snaps = self.snapshot_datasets().await?;
        let entries = page
            .iter()
            .map(|d| list_volumes_response::Entry {
                volume: Some(csi_volume(d, &snaps)),
                status: Some(list_volumes_response::VolumeStatus {
                    published_node_ids: vec![],
                    volume_condition: Some(condition_of(d)),
                }),
            })
            .collect();
        Ok(Response::new(ListVolumesResponse { entries, next_token }))
    }

    async fn get_capacity(
        &self,
        request: Request<GetCapacityRequest>,
    ) -> Result<Response<GetCapacityResponse>, Status> {
        let req = request.into_inner();
        params::validate_volume_params(&req.parameters, &self.served)?;
        if req.volume_capabilities.iter().any(|c| caps::unsupported_reason(c).is_some()) {
            // Nothing can be provisioned with these capabilities.
            return Ok(Response::new(GetCapacityResponse {
                available_capacity: 0,
                maximum_volume_size: Some(0),
                minimum_volume_size: Some(ids::MIN_VOLUME_BYTES as i64),
            }));
        }
        // Object storage has no meaningful free space; a local store has its disk's.
        let available = self
            .store
            .as_ref()
            .and_then(|s| s.capacity())
            .map(|(_total, free)| free)
            .unwrap_or(ids::MAX_VOLUME_BYTES)
            .min(ids::MAX_VOLUME_BYTES);
        Ok(Response::new(GetCapacityResponse {
            available_capacity: available as i64,
            maximum_volume_size: Some(available as i64),
            minimum_volume_size: Some(ids::MIN_VOLUME_BYTES as i64),
        }))
    }

    async fn controller_get_capabilities(
        &self,
        _: Request<ControllerGetCapabilitiesRequest>,
    ) -> Result<Response<ControllerGetCapabilitiesResponse>, Status> {
        use controller_service_capability::rpc::Type as T;
        let capabilities = [
            T::CreateDeleteVolume,
            T::CreateDeleteSnapshot,
            T::ListSnapshots,
            T::GetSnapshot,
            T::CloneVolume,
            T::ExpandVolume,
            T::ListVolumes,
            T::GetCapacity,
            T::GetVolume,
            T::VolumeCondition,
            T::SingleNodeMultiWriter,
            T::ModifyVolume,
        ]
        .into_iter()
        .map(rpc_cap)
        .collect();
        Ok(Response::new(ControllerGetCapabilitiesResponse { capabilities }))
    }

    async fn create_snapshot(
        &self,
        request: Request<CreateSnapshotRequest>,
    ) -> Result<Response<CreateSnapshotResponse>, Status> {
        let req = request.into_inner();
        required("source_volume_id", &req.source_volume_id)?;
        ids::validate_csi_name("name", &req.name)?;
        params::validate_snapshot_params(&req.parameters)?;
        names::check_metadata(&req.parameters)?;
        let snap = ids::catalog_name_for(&req.name);
        let _guard = self.begin(format!("snapshot {snap}"))?;
        self.check_secrets(&req.secrets, "").await?;

        if let Some(s) = backend::find_snapshot(self.backend.as_ref(), &snap).await? {
            if s.dataset == req.source_volume_id {
                names::record_volumesnapshot(self.backend.as_ref(), &snap, &req.parameters).await?;
                return Ok(Response::new(CreateSnapshotResponse { snapshot: Some(csi_snapshot(&s)) }));
            }
            return Err(Status::already_exists(format!(
                "snapshot {} already exists for volume {}",
                req.name, s.dataset
            )));
        }
        let source = ids::parse_volume_id(&req.source_volume_id).ok_or_else(|| {
            Status::not_found(format!("source volume {} does not exist", req.source_volume_id))
        })?;
        let s = match self.backend.readonly_snapshot(source, &snap).await {
            Ok(s) => s,
            Err(e) if e.code() == Code::NotFound => {
                return Err(Status::not_found(format!("source volume {source} does not exist")))
            }
            Err(e) if e.code() == Code::AlreadyExists => {
                match backend::find_snapshot(self.backend.as_ref(), &snap).await? {
                    Some(s) if s.dataset == source => s,
                    _ => return Err(e),
                }
            }
            Err(e) => return Err(e),
        };
        names::record_volumesnapshot(self.backend.as_ref(), &snap, &req.parameters).await?;
        tracing::info!(snapshot = %snap, volume = %source, "created snapshot");
        Ok(Response::new(CreateSnapshotResponse { snapshot: Some(csi_snapshot(&s)) }))
    }

    async fn delete_snapshot(
        &self,
        request: Request<DeleteSnapshotRequest>,
    ) -> Result<Response<DeleteSnapshotResponse>, Status> {
        let req = request.into_inner();
        required("snapshot_id", &req.snapshot_id)?;
        let Some((_, snap)) = ids::parse_snapshot_id(&req.snapshot_id) else {
            return Ok(Response::new(DeleteSnapshotResponse {}));
        };
        let _guard = self.begin(format!("snapshot {snap}"))?;
        self.check_secrets(&req.secrets, "").await?;
        // Only delete the snapshot the id names (same name on another dataset: not ours).
        if self.snapshot_by_id(&req.snapshot_id).await?.is_some() {
            not_found_is_ok(self.backend.delete_snapshot(snap).await)?;
            tracing::info!(snapshot = %req.snapshot_id, "deleted snapshot");
        }
        Ok(Response::new(DeleteSnapshotResponse {}))
    }

    async fn list_snapshots(
        &self,
        request: Request<ListSnapshotsRequest>,
    ) -> Result<Response<ListSnapshotsResponse>, Status> {
        let req = request.into_inner();
        ids::parse_page_token(&req.starting_token)?;
        self.check_secrets(&req.secrets, "").await?;
        let mut snaps: Vec<BSnapshot> = if !req.snapshot_id.is_empty() {
            self.snapshot_by_id(&req.snapshot_id).await?.into_iter().collect()
        } else if !req.source_volume_id.is_empty() {
            match ids::parse_volume_id(&req.source_volume_id) {
                None => vec![],
                Some(v) => match self.backend.list_snapshots(v).await {
                    Err(e) if e.code() == Code::NotFound => vec![],
                    other => other?,
                },
            }
        } else {
            self.backend.list_snapshots("").await?
        };
        if !req.source_volume_id.is_empty() {
            snaps.retain(|s| s.dataset == req.source_volume_id);
        }
        let mut entries: Vec<(String, BSnapshot)> =
            snaps.into_iter().map(|s| (ids::snapshot_id(&s.dataset, &s.name), s)).collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let (page, next_token) = ids::page(entries, |e| e.0.as_str(), req.max_entries, &req.starting_token)?;
        let entries = page
            .iter()
            .map(|(_, s)| list_snapshots_response::Entry { snapshot: Some(csi_snapshot(s)) })
            .collect();
        Ok(Response::new(ListSnapshotsResponse { entries, next_token }))
    }

    async fn get_snapshot(
        &self,
        request: Request<GetSnapshotRequest>,
    ) -> Result<Response<GetSnapshotResponse>, Status> {
        let req = request.into_inner();
        required("snapshot_id", &req.snapshot_id)?;
        self.check_secrets(&req.secrets, "").await?;
        let s = self
            .snapshot_by_id(&req.snapshot_id)
            .await?
            .ok_or_else(|| Status::not_found(format!("snapshot {} does not exist", req.snapshot_id)))?;
        Ok(Response::new(GetSnapshotResponse { snapshot: Some(csi_snapshot(&s)) }))
    }

    async fn controller_expand_volume(
        &self,
        request: Request<ControllerExpandVolumeRequest>,
    ) -> Result<Response<ControllerExpandVolumeResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        let range = req
            .capacity_range
            .as_ref()
            .ok_or_else(|| Status::invalid_argument("capacity_range is required"))?;
        if let Some(c) = req.volume_capability.as_ref() {
            caps::validate_one(Some(c))?;
        }
        let name = ids::parse_volume_id(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume {} does not exist", req.volume_id)))?;
        let _guard = self.begin(format!("volume {name}"))?;
        self.check_secrets(&req.secrets, "").await?;
        let ds = match self.backend.get_dataset(name).await {
            Err(e) if e.code() == Code::NotFound => {
                return Err(Status::not_found(format!("volume {name} does not exist")))
            }
            other => other?,
        };
        let current = ds.quota_bytes.unwrap_or(0);
        let new = ids::expanded_capacity(current, Some(range))?;
        if new != current || ds.quota_bytes.is_none() {
            self.backend.set_quota(name, Some(new)).await?;
            tracing::info!(volume = %name, from = current, to = new, "expanded volume");
        }
        Ok(Response::new(ControllerExpandVolumeResponse {
            capacity_bytes: new as i64,
            node_expansion_required: false,
        }))
    }

    async fn controller_get_volume(
        &self,
        request: Request<ControllerGetVolumeRequest>,
    ) -> Result<Response<ControllerGetVolumeResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        let name = ids::parse_volume_id(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume {} does not exist", req.volume_id)))?;
        let (ds, condition) = match self.backend.get_dataset(name).await {
            Ok(ds) => {
                let c = condition_of(&ds);
                (ds, c)
            }
            Err(e) if e.code() == Code::NotFound => {
                return Err(Status::not_found(format!("volume {name} does not exist")))
            }
            // The catalog knows it but the dataset cannot be opened: report, don't fail.
            Err(e) => {
                let ds = self
                    .backend
                    .list_datasets()
                    .await?
                    .into_iter()
                    .find(|d| d.name == name)
                    .ok_or_else(|| Status::not_found(format!("volume {name} does not exist")))?;
                let c = VolumeCondition {
                    abnormal: true,
                    message: format!("dataset cannot be opened: {}", e.message()),
                };
                (ds, c)
            }
        };
        let snaps = self.snapshot_datasets().await.unwrap_or_default();
        Ok(Response::new(ControllerGetVolumeResponse {
            volume: Some(csi_volume(&ds, &snaps)),
            status: Some(controller_get_volume_response::VolumeStatus {
                published_node_ids: vec![],
                volume_condition: Some(condition),
            }),
        }))
    }

    /// Applies VolumeAttributesClass parameters: `snapshotPolicy` (the only mutable one).
    /// Everything is checked before anything changes.
    async fn controller_modify_volume(
        &self,
        request: Request<ControllerModifyVolumeRequest>,
    ) -> Result<Response<ControllerModifyVolumeResponse>, Status> {
        let req = request.into_inner();
        required("volume_id", &req.volume_id)?;
        let policy = params::mutable_policy(&req.mutable_parameters)?;
        let name = ids::parse_volume_id(&req.volume_id)
            .ok_or_else(|| Status::not_found(format!("volume {} does not exist", req.volume_id)))?;
        let _guard = self.begin(format!("volume {name}"))?;
        self.check_secrets(&req.secrets, "").await?;
        if let Err(e) = self.backend.get_dataset(name).await {
            return Err(match e.code() {
                Code::NotFound => Status::not_found(format!("volume {name} does not exist")),
                _ => e,
            });
        }
        if let Some(p) = &policy {
            self.backend.set_policy(name, p.as_ref()).await?;
            tracing::info!(volume = %name, policy = ?p, "modified volume");
        }
        Ok(Response::new(ControllerModifyVolumeResponse {}))
    }
}
