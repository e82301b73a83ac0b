//! Datasets and snapshots: each handler is one `Registry` call, as in the admin gRPC server,
//! so the CLI's checks and messages apply unchanged.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bytes::Bytes;
use futures::StreamExt;
use serde_json::{json, Value};

use super::error::{ApiError, ApiResult};
use super::{parse_body, AppState};
use crate::catalog::{DatasetInfo, Origin, Registry, SnapshotInfo, SnapshotResult};
use crate::fs::Health;

/// How many datasets are opened at once for `GET /datasets` (each report may open one).
const REPORTS_AT_ONCE: usize = 4;

pub async fn list_datasets(State(web): State<AppState>) -> ApiResult<Json<Value>> {
    let list = web.registry.list_datasets().await?;
    let registry = &web.registry;
    let datasets: Vec<Value> = futures::stream::iter(list)
        .map(|d| async move {
            match registry.dataset_info(&d.name).await {
                Ok(full) => dataset_json(&full),
                Err(e) => {
                    let mut v = dataset_json(&d);
                    v["error"] = json!(e.to_string());
                    v
                }
            }
        })
        .buffered(REPORTS_AT_ONCE)
        .collect()
        .await;
    Ok(Json(json!({ "datasets": datasets })))
}

pub async fn get_dataset(State(web): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    Ok(Json(dataset_json(&web.registry.dataset_info(&name).await?)))
}

/// `{"quota": ...}`: bytes, a size as `set-quota` takes it ("20Gi", "none"), or `null` to
/// remove it. The key must be there: a body without it is refused, never read as "no quota".
fn quota_of(body: &Bytes) -> ApiResult<Option<u64>> {
    let fields: serde_json::Map<String, Value> = parse_body(body)?;
    if let Some(other) = fields.keys().find(|k| *k != "quota") {
        return Err(ApiError::bad_request(format!("request body: unknown field `{other}`, expected `quota`")));
    }
    match fields.get("quota") {
        None => Err(ApiError::bad_request("request body: missing field `quota` (null removes the quota)")),
        Some(Value::Null) => Ok(None),
        Some(Value::String(t)) if t.trim().eq_ignore_ascii_case("none") => Ok(None),
        Some(Value::String(t)) => {
            Ok(Some(crate::size::parse_size(t).map_err(|e| ApiError::bad_request(format!("quota: {e}")))?))
        }
        Some(v) => v
            .as_u64()
            .map(Some)
            .ok_or_else(|| ApiError::bad_request(format!("quota: {v} is not a size (bytes, \"20Gi\", or null)"))),
    }
}

pub async fn set_quota(State(web): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let quota = quota_of(&body)?;
    Ok(Json(dataset_json(&web.registry.set_quota(&name, quota).await?)))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct CloneBody {
    snapshot: String,
    name: String,
}

pub async fn clone(State(web): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Response> {
    let CloneBody { snapshot, name: new_name } = parse_body(&body)?;
    snapshot_of(&web.registry, &name, &snapshot).await?;
    let info = web.registry.clone_snapshot(&snapshot, &new_name).await?;
    Ok((StatusCode::CREATED, Json(dataset_json(&info))).into_response())
}

pub async fn list_snapshots(State(web): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let mut list = web.registry.list_snapshots(Some(&name)).await?;
    list.sort_by_key(|s| (s.created_ms, s.id));
    let makers = super::policy::makers(&web.registry);
    let json: Vec<Value> = list.iter().map(|s| snapshot_json(s, makers.get(&s.id))).collect();
    Ok(Json(json!({ "snapshots": json })))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct SnapshotBody {
    name: String,
    /// A writable snapshot (a dataset) when false.
    #[serde(default = "yes")]
    readonly: bool,
}

fn yes() -> bool {
    true
}

pub async fn create_snapshot(State(web): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Response> {
    let SnapshotBody { name: snap, readonly } = parse_body(&body)?;
    let made = match web.registry.create_snapshot(&name, &snap, readonly).await? {
        SnapshotResult::Snapshot(s) => json!({ "snapshot": snapshot_json(&s, None) }),
        SnapshotResult::Dataset(d) => json!({ "dataset": dataset_json(&d) }),
    };
    Ok((StatusCode::CREATED, Json(made)).into_response())
}

pub async fn delete_snapshot(
    State(web): State<AppState>,
    Path((name, snap)): Path<(String, String)>,
) -> ApiResult<Json<Value>> {
    snapshot_of(&web.registry, &name, &snap).await?;
    let out = web.registry.delete_snapshot(&snap).await?;
    Ok(Json(json!({ "removed": out.removed, "dependants": out.dependants })))
}

/// The read-only snapshot `snap` of dataset `dataset` (snapshot names are unique across the
/// catalog, but a URL under one dataset must not act on another's snapshot).
pub async fn snapshot_of(registry: &Registry, dataset: &str, snap: &str) -> ApiResult<SnapshotInfo> {
    let list = registry.list_snapshots(Some(dataset)).await?;
    list.into_iter()
        .find(|s| s.name == snap)
        .ok_or_else(|| ApiError::not_found(format!("snapshot {snap:?} is not a snapshot of dataset {dataset:?}")))
}

fn health_json(d: &DatasetInfo) -> Value {
    let over = match (d.usage, d.quota) {
        (Some(u), Some(q)) => u.bytes >= q,
        _ => false,
    };
    match &d.health {
        None => Value::Null,
        Some(Health::Fenced) => {
            json!({ "state": "fenced", "message": "another server opened the dataset for writing" })
        }
        Some(Health::Unavailable(pending)) => json!({
            "state": "store_unavailable",
            "message": format!("writes have waited {} ms for the object store", pending.as_millis()),
        }),
        Some(Health::Ok) if over => {
            json!({ "state": "over_quota", "message": "the dataset uses all of its quota: writes are refused" })
        }
        Some(Health::Ok) => json!({ "state": "ok", "message": "" }),
    }
}

pub fn dataset_json(d: &DatasetInfo) -> Value {
    let origin = d.origin.map(|o| match o {
        Origin::Dataset { .. } => json!({ "kind": "writable_snapshot_of", "name": d.origin_name }),
        Origin::Snapshot { .. } => json!({ "kind": "clone_of_snapshot", "name": d.origin_name }),
    });
    json!({
        "name": d.name,
        "id": d.id,
        "quota_bytes": d.quota,
        "used_bytes": d.usage.map(|u| u.bytes),
        "used_inodes": d.usage.map(|u| u.inodes),
        "snapshot_count": d.snapshot_count,
        "clone_count": d.clone_count,
        "origin": origin,
        "is_default": d.is_default,
        "owner": d.owner,
        "created_unix_ms": d.created_ms,
        "health": health_json(d),
        "kubernetes": d.kubernetes.as_ref().map(|k| json!({
            "namespace": k.namespace, "persistentvolumeclaim": k.name, "persistentvolume": k.content,
        })),
    })
}

/// `made_by`: the policy that made it, as [`super::policy::makers`] tells (prefix, slot).
pub fn snapshot_json(s: &SnapshotInfo, made_by: Option<&(String, u64)>) -> Value {
    json!({
        "name": s.name,
        "id": s.id,
        "dataset": s.dataset,
        "created_unix_ms": s.created_ms,
        "size_bytes": s.size_bytes,
        "inodes": s.inodes,
        "clone_count": s.clone_count,
        "dataset_deleted": s.dataset_deleted,
        "policy": made_by.map(|(prefix, slot)| json!({ "prefix": prefix, "slot_unix_ms": slot })),
        "kubernetes": s.kubernetes.as_ref().map(|k| json!({
            "namespace": k.namespace, "volumesnapshot": k.name, "volumesnapshotcontent": k.content,
        })),
    })
}
