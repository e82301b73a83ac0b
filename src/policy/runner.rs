//! The task on the catalog owner that runs every policy (docs/policies.md, "Who runs them"):
//! one pass over the policies whenever the clock reaches a slot, a policy changes, or a failed
//! run's retry is due.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::clock::Clock;
use super::retention;
use super::spec::Schedule;
use super::{due_slot, next_slot};
use crate::catalog::{CatalogError, PolicyInfo, Registry};

const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(60);

/// What the runner of this process knows beyond the catalog: when it last looked, and the
/// failures it could not write down (the store being away is the usual reason for both).
pub struct RunnerState {
    /// The policy clock at the last pass, +1 (0: no pass yet).
    evaluated: AtomicU64,
    failures: Mutex<HashMap<u64, Failure>>,
    wake: Notify,
}

#[derive(Debug, Clone)]
struct Failure {
    /// The slot whose run failed: only its retries wait for `retry_at`; a later slot runs at once.
    slot: u64,
    at_ms: u64,
    message: String,
    retry_at: Instant,
    backoff: Duration,
}

/// The runner state of this process (one runner per process).
pub fn state() -> &'static RunnerState {
    static STATE: OnceLock<RunnerState> = OnceLock::new();
    STATE.get_or_init(|| RunnerState { evaluated: AtomicU64::new(0), failures: Mutex::new(HashMap::new()), wake: Notify::new() })
}

/// The clock policies run by in this process.
pub fn clock() -> &'static Clock {
    static CLOCK: OnceLock<Clock> = OnceLock::new();
    CLOCK.get_or_init(Clock::from_env)
}

impl RunnerState {
    /// The policy clock's reading at the last pass.
    pub fn evaluated_ms(&self) -> Option<u64> {
        self.evaluated.load(Ordering::Acquire).checked_sub(1)
    }

    /// A policy changed: look again now.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// The last failure of a dataset's policy this runner has seen and not yet seen succeed.
    pub fn failure(&self, dataset_id: u64) -> Option<(u64, String)> {
        self.failures.lock().unwrap().get(&dataset_id).map(|f| (f.at_ms, f.message.clone()))
    }

    fn failed(&self, dataset_id: u64, slot: u64, at_ms: u64, message: String) {
        let mut all = self.failures.lock().unwrap();
        let backoff = all
            .get(&dataset_id)
            .filter(|f| f.slot == slot)
            .map(|f| (f.backoff * 2).min(LAST_RETRY))
            .unwrap_or(FIRST_RETRY);
        all.insert(dataset_id, Failure { slot, at_ms, message, retry_at: Instant::now() + backoff, backoff });
    }

    /// A failure to show, without a retry of its own (the run is still going).
    fn noted(&self, dataset_id: u64, slot: u64, at_ms: u64, message: String) {
        let mut all = self.failures.lock().unwrap();
        let backoff = all.get(&dataset_id).map(|f| f.backoff).unwrap_or(FIRST_RETRY);
        all.insert(dataset_id, Failure { slot, at_ms, message, retry_at: Instant::now(), backoff });
    }

    fn succeeded(&self, dataset_id: u64) {
        self.failures.lock().unwrap().remove(&dataset_id);
    }

    fn may_try(&self, dataset_id: u64, slot: u64) -> bool {
        self.failures.lock().unwrap().get(&dataset_id).is_none_or(|f| f.slot != slot || Instant::now() >= f.retry_at)
    }
}

/// Runs the policies of `registry` until `shutdown` (or until the registry is gone).
pub async fn run(registry: Weak<Registry>, shutdown: CancellationToken) {
    let clock = clock();
    let state = state();
    let mut last_seen: Option<u64> = None;
    loop {
        let Some(reg) = registry.upgrade() else { return };
        let now = clock.now_ms();
        let mut until_next = None;
        if let Some(now) = now {
            for policy in reg.list_policies() {
                if shutdown.is_cancelled() {
                    return;
                }
                if let Some(wait) = run_policy(&reg, &policy, now).await {
                    until_next = Some(until_next.map_or(wait, |w: u64| w.min(wait)));
                }
            }
            if last_seen != Some(now) {
                tracing::debug!(now, "snapshot policies evaluated");
            }
            last_seen = Some(now);
            state.evaluated.store(now + 1, Ordering::Release);
        }
        drop(reg);
        let pause = clock.poll(until_next);
        tokio::select! {
            _ = tokio::time::sleep(pause) => {}
            _ = state.wake.notified() => {}
            _ = shutdown.cancelled() => return,
        }
    }
}

/// One policy at `now`: runs it when a slot is due; returns how long until it wants looking
/// at again (ms of policy time), if it does.
async fn run_policy(reg: &Arc<Registry>, policy: &PolicyInfo, now: u64) -> Option<u64> {
    let rec = &policy.record;
    let id = rec.dataset_id;
    if rec.paused {
        return None;
    }
    let schedule = match Schedule::from_record(&rec.schedule) {
        Ok(s) => s,
        Err(e) => {
            state().failed(id, 0, now, format!("the stored schedule is unreadable: {e}"));
            return None;
        }
    };
    let retry_soon = Some(FIRST_RETRY.as_millis() as u64);
    if let Some(slot) = due_slot(&schedule, rec.last_slot_ms, rec.created_ms, now) {
        if !state().may_try(id, slot) {
            return retry_soon;
        }
        match watched(reg, policy, &schedule, slot, now).await {
            Ok(()) => state().succeeded(id),
            Err(e) => {
                let message = e.to_string();
                tracing::warn!(dataset = %policy.dataset, "snapshot policy run for {} failed: {message}; retried", slot_text(slot));
                state().failed(id, slot, now, message.clone());
                // A name someone already took will not free itself: that slot is done.
                let slot_done = matches!(e, CatalogError::AlreadyExists(_)).then_some(slot);
                if let Err(e2) = reg.policy_note(id, slot_done, Some((now, message))).await {
                    tracing::debug!("recording the failure of {}'s policy: {e2}", policy.dataset);
                }
                if slot_done.is_none() {
                    return retry_soon;
                }
            }
        }
    }
    let fresh = reg.policy(&policy.dataset).ok()?.record;
    next_slot(&schedule, fresh.last_slot_ms, fresh.created_ms, now).map(|n| n.saturating_sub(now))
}

/// [`take`] in its own task, reported as a failure while it waits longer than a store call may
/// (the object store not answering: SlateDB retries without end, and a catalog write then
/// waits for the store to return). It is never cancelled: an operation cut half-way would
/// leave its intent for the next start to resolve, where waiting completes it.
async fn watched(reg: &Arc<Registry>, policy: &PolicyInfo, schedule: &Schedule, slot: u64, now: u64) -> Result<(), CatalogError> {
    let (r, p, s) = (reg.clone(), policy.clone(), schedule.clone());
    let mut task = tokio::spawn(async move { take(&r, &p, &s, slot).await });
    let patience = crate::store::wait::limits().unavailable_after.max(Duration::from_millis(100));
    loop {
        match tokio::time::timeout(patience, &mut task).await {
            Ok(joined) => return joined.unwrap_or_else(|e| Err(CatalogError::Internal(format!("policy run panicked: {e}")))),
            Err(_) => {
                let why = match crate::store::health::failing_for() {
                    Some(d) => format!("the object store has not answered for {:.1} s", d.as_secs_f64()),
                    None => "the snapshot is still waiting for the store".to_string(),
                };
                let message = format!("snapshot for {} not taken yet: {why}; it goes on", slot_text(slot));
                tracing::warn!(dataset = %policy.dataset, "{message}");
                state().noted(policy.record.dataset_id, slot, now, message);
            }
        }
    }
}

fn slot_text(slot: u64) -> String {
    chrono::DateTime::from_timestamp_millis(slot as i64)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| slot.to_string())
}

/// Snapshot (or skip, unchanged) for `slot`, then prune.
async fn take(reg: &Registry, policy: &PolicyInfo, schedule: &Schedule, slot: u64) -> Result<(), CatalogError> {
    let rec = &policy.record;
    let id = rec.dataset_id;
    let mut seq = None;
    if rec.skip_unchanged {
        seq = reg.change_seq(id).await?;
        if seq.is_some() && seq == rec.last_seq {
            tracing::debug!(dataset = %policy.dataset, "unchanged since the policy's last snapshot: none taken for slot {slot}");
            return reg.policy_note(id, Some(slot), None).await;
        }
    }
    let snap = reg.policy_snapshot(id, slot, seq).await?;
    tracing::info!(dataset = %policy.dataset, snapshot = %snap.name, "snapshot policy took a snapshot");
    let fresh = reg.policy(&policy.dataset)?.record;
    let keep = retention::keep(&fresh.snapshots, &fresh.retention, slot, schedule.tz());
    let remove: Vec<u64> = fresh.snapshots.iter().map(|s| s.0).filter(|id| !keep.contains(id)).collect();
    if !remove.is_empty() {
        let pruned = reg.policy_prune(id, &remove).await?;
        tracing::info!(dataset = %policy.dataset, "snapshot policy pruned {}", pruned.join(", "));
    }
    Ok(())
}
