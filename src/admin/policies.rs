//! The admin API's policy RPCs (docs/policies.md): requests checked by `crate::policy`, records
//! kept by the catalog, and what `policy show` prints.

use tonic::Status;

use super::proto;
use crate::catalog::{PolicyInfo, Registry, RetentionRecord, ScheduleRecord};
use crate::policy::spec::Schedule;
use crate::policy::{next_slot, runner, PolicyText};

pub fn text_of(r: &proto::SetPolicyRequest) -> PolicyText {
    let keep = r.retention.unwrap_or_default();
    let some = |s: &str| Some(s.to_string()).filter(|s| !s.trim().is_empty());
    PolicyText {
        prefix: some(&r.prefix),
        every: some(&r.every),
        cron: some(&r.cron),
        time_zone: some(&r.time_zone),
        keep_last: keep.keep_last,
        keep_hourly: keep.keep_hourly,
        keep_daily: keep.keep_daily,
        keep_weekly: keep.keep_weekly,
        keep_monthly: keep.keep_monthly,
        keep_yearly: keep.keep_yearly,
        max_age: some(&r.max_age),
        paused: r.paused,
        skip_unchanged: r.skip_unchanged,
    }
}

/// The request as SetPolicy sends it, from checked-or-not text (CLI, CSI parameters).
pub fn request_of(dataset: &str, t: &PolicyText) -> proto::SetPolicyRequest {
    proto::SetPolicyRequest {
        dataset: dataset.to_string(),
        prefix: t.prefix.clone().unwrap_or_default(),
        every: t.every.clone().unwrap_or_default(),
        cron: t.cron.clone().unwrap_or_default(),
        time_zone: t.time_zone.clone().unwrap_or_default(),
        retention: Some(proto::PolicyRetention {
            keep_last: t.keep_last,
            keep_hourly: t.keep_hourly,
            keep_daily: t.keep_daily,
            keep_weekly: t.keep_weekly,
            keep_monthly: t.keep_monthly,
            keep_yearly: t.keep_yearly,
            max_age_seconds: 0,
        }),
        max_age: t.max_age.clone().unwrap_or_default(),
        paused: t.paused,
        skip_unchanged: t.skip_unchanged,
    }
}

/// A stored retention as the admin API carries it, and back (`policy show` describes it).
pub fn retention_msg(r: &RetentionRecord) -> proto::PolicyRetention {
    proto::PolicyRetention {
        keep_last: r.keep_last,
        keep_hourly: r.keep_hourly,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
        max_age_seconds: r.max_age_s,
    }
}

pub fn retention_record(r: &proto::PolicyRetention) -> RetentionRecord {
    RetentionRecord {
        keep_last: r.keep_last,
        keep_hourly: r.keep_hourly,
        keep_daily: r.keep_daily,
        keep_weekly: r.keep_weekly,
        keep_monthly: r.keep_monthly,
        keep_yearly: r.keep_yearly,
        max_age_s: r.max_age_seconds,
    }
}

fn now_ms() -> Result<u64, Status> {
    runner::clock()
        .now_ms()
        .ok_or_else(|| Status::unavailable("the policy test clock file holds no time (SLATEFS_TEST_CLOCK_FILE)"))
}

pub async fn set(registry: &Registry, r: proto::SetPolicyRequest) -> Result<proto::Policy, Status> {
    let settings = text_of(&r).settings().map_err(Status::invalid_argument)?;
    let info = registry.set_policy(&r.dataset, settings, now_ms()?).await?;
    runner::state().wake();
    Ok(policy_msg(registry, &info))
}

pub async fn list(registry: &Registry, r: proto::ListPoliciesRequest) -> Result<proto::ListPoliciesResponse, Status> {
    let infos = if r.dataset.is_empty() { registry.list_policies() } else { vec![registry.policy(&r.dataset)?] };
    let evaluated = if registry.is_reader() { None } else { runner::state().evaluated_ms() };
    Ok(proto::ListPoliciesResponse {
        policies: infos.iter().map(|i| policy_msg(registry, i)).collect(),
        evaluated_unix_ms: evaluated.map(|v| v as i64),
    })
}

pub async fn pause(registry: &Registry, r: proto::PausePolicyRequest) -> Result<proto::Policy, Status> {
    let info = registry.set_policy_paused(&r.dataset, r.paused).await?;
    runner::state().wake();
    Ok(policy_msg(registry, &info))
}

pub async fn clear(registry: &Registry, r: proto::ClearPolicyRequest) -> Result<proto::Policy, Status> {
    let info = registry.clear_policy(&r.dataset).await?;
    Ok(policy_msg(registry, &info))
}

fn policy_msg(registry: &Registry, info: &PolicyInfo) -> proto::Policy {
    let rec = &info.record;
    let schedule = Schedule::from_record(&rec.schedule);
    let (every_seconds, cron, time_zone) = match &rec.schedule {
        ScheduleRecord::Every { seconds } => (*seconds, String::new(), String::new()),
        ScheduleRecord::Cron { expr, tz } => (0, expr.clone(), tz.clone()),
    };
    let next = match (&schedule, rec.paused, runner::clock().now_ms()) {
        (Ok(s), false, Some(now)) => next_slot(s, rec.last_slot_ms, rec.created_ms, now),
        _ => None,
    };
    // A failure this runner saw but could not record (the store away) is newer than the record.
    let error = match (runner::state().failure(rec.dataset_id), &rec.last_error) {
        (Some(mem), Some(stored)) if stored.0 >= mem.0 => Some(stored.clone()),
        (Some(mem), _) if !registry.is_reader() => Some(mem),
        (_, stored) => stored.clone(),
    };
    let names = {
        let mut by_slot = rec.snapshots.clone();
        by_slot.sort_by_key(|s| s.1);
        let all = registry.snapshot_names(&by_slot.iter().map(|s| s.0).collect::<Vec<_>>());
        all.into_iter().flatten().collect()
    };
    proto::Policy {
        dataset: info.dataset.clone(),
        prefix: rec.prefix.clone(),
        schedule: match &schedule {
            Ok(s) => s.describe(),
            Err(e) => format!("unreadable: {e}"),
        },
        every_seconds,
        cron,
        time_zone,
        retention: Some(retention_msg(&rec.retention)),
        paused: rec.paused,
        skip_unchanged: rec.skip_unchanged,
        last_run_unix_ms: rec.last_slot_ms.map(|v| v as i64),
        next_run_unix_ms: next.map(|v| v as i64),
        last_error: error.as_ref().map(|e| e.1.clone()).unwrap_or_default(),
        last_error_unix_ms: error.map(|e| e.0 as i64),
        snapshots: names,
    }
}

/// A policy as `-o json` and the web API show it (one shape for both).
pub fn policy_json(p: &proto::Policy) -> serde_json::Value {
    let r = p.retention.unwrap_or_default();
    let nonempty = |s: &str| (!s.is_empty()).then(|| s.to_string());
    serde_json::json!({
        "dataset": p.dataset,
        "prefix": p.prefix,
        "schedule": p.schedule,
        "every_seconds": (p.every_seconds > 0).then_some(p.every_seconds),
        "cron": nonempty(&p.cron),
        "time_zone": nonempty(&p.time_zone),
        "retention": {
            "keep_last": r.keep_last,
            "keep_hourly": r.keep_hourly,
            "keep_daily": r.keep_daily,
            "keep_weekly": r.keep_weekly,
            "keep_monthly": r.keep_monthly,
            "keep_yearly": r.keep_yearly,
            "max_age_seconds": r.max_age_seconds,
        },
        "paused": p.paused,
        "skip_unchanged": p.skip_unchanged,
        "last_run_unix_ms": p.last_run_unix_ms,
        "next_run_unix_ms": p.next_run_unix_ms,
        "last_error": nonempty(&p.last_error),
        "last_error_unix_ms": p.last_error_unix_ms,
        "snapshots": p.snapshots,
    })
}
