//! A dataset's snapshot policy (docs/policies.md) from the console: every handler calls the
//! admin API's own policy operation (`crate::admin::policies`), so the CLI's checks, messages,
//! and the runner's wake-up on a change apply unchanged. Also which policy made a snapshot,
//! from the policy records' own lists (not from snapshot names).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::Json;
use bytes::Bytes;
use serde_json::{json, Value};

use super::error::ApiResult;
use super::{parse_body, AppState};
use crate::admin::policies::{self, policy_json};
use crate::admin::proto;
use crate::catalog::Registry;
use crate::policy::PolicyText;

/// The body of `PUT /datasets/{name}/policy`: the flags of `dataset policy set`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyBody {
    prefix: Option<String>,
    every: Option<String>,
    cron: Option<String>,
    time_zone: Option<String>,
    #[serde(default)]
    keep_last: u32,
    #[serde(default)]
    keep_hourly: u32,
    #[serde(default)]
    keep_daily: u32,
    #[serde(default)]
    keep_weekly: u32,
    #[serde(default)]
    keep_monthly: u32,
    #[serde(default)]
    keep_yearly: u32,
    max_age: Option<String>,
    #[serde(default)]
    paused: bool,
    #[serde(default)]
    skip_unchanged: bool,
}

impl PolicyBody {
    fn text(self) -> PolicyText {
        PolicyText {
            prefix: self.prefix,
            every: self.every,
            cron: self.cron,
            time_zone: self.time_zone,
            keep_last: self.keep_last,
            keep_hourly: self.keep_hourly,
            keep_daily: self.keep_daily,
            keep_weekly: self.keep_weekly,
            keep_monthly: self.keep_monthly,
            keep_yearly: self.keep_yearly,
            max_age: self.max_age,
            paused: self.paused,
            skip_unchanged: self.skip_unchanged,
        }
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct PauseBody {
    paused: bool,
}

/// `{"policy": null}` for a dataset without one (a page shows "no policy", not an error).
pub async fn get(State(web): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    // The catalog's own answer for a bad or unknown name (400, 404).
    web.registry.list_snapshots(Some(&name)).await?;
    let r = policies::list(&web.registry, proto::ListPoliciesRequest { dataset: String::new() }).await?;
    let p = r.policies.iter().find(|p| p.dataset == name).map(policy_json).unwrap_or(Value::Null);
    Ok(Json(json!({ "policy": p, "evaluated_unix_ms": r.evaluated_unix_ms })))
}

pub async fn set(State(web): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let text = parse_body::<PolicyBody>(&body)?.text();
    let p = policies::set(&web.registry, policies::request_of(&name, &text)).await?;
    Ok(Json(json!({ "policy": policy_json(&p) })))
}

pub async fn pause(State(web): State<AppState>, Path(name): Path<String>, body: Bytes) -> ApiResult<Json<Value>> {
    let PauseBody { paused } = parse_body(&body)?;
    let p = policies::pause(&web.registry, proto::PausePolicyRequest { dataset: name, paused }).await?;
    Ok(Json(json!({ "policy": policy_json(&p) })))
}

pub async fn clear(State(web): State<AppState>, Path(name): Path<String>) -> ApiResult<Json<Value>> {
    let p = policies::clear(&web.registry, proto::ClearPolicyRequest { dataset: name }).await?;
    Ok(Json(json!({ "removed": policy_json(&p) })))
}


/// Which policy made a snapshot: its id → (the policy's prefix, the schedule slot it was
/// taken for). A policy's record lists the snapshots it made and has not pruned, written in
/// the same catalog batch as each snapshot, so this never guesses from a name; a snapshot a
/// cleared policy made is hand-made from then on (docs/policies.md), and is not in any list.
pub fn makers(registry: &Registry) -> HashMap<u64, (String, u64)> {
    let mut by_snapshot = HashMap::new();
    for info in registry.list_policies() {
        for &(id, slot_ms) in &info.record.snapshots {
            by_snapshot.insert(id, (info.record.prefix.clone(), slot_ms));
        }
    }
    by_snapshot
}
