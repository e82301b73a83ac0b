//! Snapshot policies in the catalog (docs/policies.md): their records, and the snapshot and
//! prune steps the policy runner (`crate::policy::runner`) asks for. What a schedule or a
//! retention means is the policy module's; here only records are kept consistent.

use tonic::Request;

use super::*;
use crate::catalog::policy_record::{PolicyRecord, RetentionRecord, ScheduleRecord};
use crate::cluster::proto::{self as pb, stats_reply};
use crate::cluster::OnOwner;

/// Snapshot names are `<prefix>-YYYYMMDD-HHMMSSz`: 17 bytes after the prefix.
pub const MAX_POLICY_PREFIX: usize = super::super::MAX_NAME_BYTES - 17;

/// What `policy set` gives; the rest of a record is the policy's history, kept across sets.
#[derive(Debug, Clone)]
pub struct PolicySettings {
    /// `None`: keep the current prefix, or use the dataset's name for a new policy.
    pub prefix: Option<String>,
    pub schedule: ScheduleRecord,
    pub retention: RetentionRecord,
    pub paused: bool,
    pub skip_unchanged: bool,
}

/// A policy with the name of its dataset.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyInfo {
    pub dataset: String,
    pub record: PolicyRecord,
}

impl Registry {
    /// Every policy of an active dataset, by dataset name.
    pub fn list_policies(&self) -> Vec<PolicyInfo> {
        let st = self.state.read().unwrap();
        let mut v: Vec<PolicyInfo> = st
            .policies
            .values()
            .filter_map(|p| {
                active_dataset(&st, p.dataset_id).map(|d| PolicyInfo { dataset: d.name.clone(), record: p.clone() })
            })
            .collect();
        v.sort_by(|a, b| a.dataset.cmp(&b.dataset));
        v
    }

    pub fn policy(&self, dataset: &str) -> CatalogResult<PolicyInfo> {
        let st = self.state.read().unwrap();
        let d = dataset_by_name(&st, dataset)?;
        st.policies
            .get(&d.id)
            .map(|p| PolicyInfo { dataset: d.name.clone(), record: p.clone() })
            .ok_or_else(|| CatalogError::NotFound(format!("dataset {dataset:?} has no snapshot policy")))
    }

    /// Creates or replaces a dataset's policy. Its snapshots and history stay with it.
    /// `now_ms` is the policy clock's time: a new policy's first slot is the first after it.
    pub async fn set_policy(&self, dataset: &str, settings: PolicySettings, now_ms: u64) -> CatalogResult<PolicyInfo> {
        let _guard = self.mutation().await?;
        let id = self.dataset_id(dataset)?;
        let rec = {
            let st = self.state.read().unwrap();
            let old = st.policies.get(&id);
            let prefix = settings
                .prefix
                .clone()
                .or_else(|| old.map(|o| o.prefix.clone()))
                .unwrap_or_else(|| dataset.to_string());
            check_prefix(&prefix)?;
            if let Some(other) = st.policies.values().find(|p| p.prefix == prefix && p.dataset_id != id) {
                let owner = st.datasets.get(&other.dataset_id).map(|d| d.name.as_str()).unwrap_or("?");
                return Err(CatalogError::AlreadyExists(format!(
                    "the policy of dataset {owner:?} already names its snapshots {prefix}-…; choose another --prefix"
                )));
            }
            PolicyRecord {
                dataset_id: id,
                prefix,
                schedule: settings.schedule,
                retention: settings.retention,
                paused: settings.paused,
                skip_unchanged: settings.skip_unchanged,
                created_ms: old.map(|o| o.created_ms).unwrap_or(now_ms),
                last_slot_ms: old.and_then(|o| o.last_slot_ms),
                last_seq: old.and_then(|o| o.last_seq),
                last_error: old.and_then(|o| o.last_error.clone()),
                snapshots: old.map(|o| o.snapshots.clone()).unwrap_or_default(),
            }
        };
        self.put_policy(rec).await?;
        self.policy(dataset)
    }

    pub async fn set_policy_paused(&self, dataset: &str, paused: bool) -> CatalogResult<PolicyInfo> {
        let _guard = self.mutation().await?;
        let mut rec = self.policy(dataset)?.record;
        rec.paused = paused;
        self.put_policy(rec).await?;
        self.policy(dataset)
    }

    /// Removes a dataset's policy; the snapshots it made stay, as hand-made ones.
    pub async fn clear_policy(&self, dataset: &str) -> CatalogResult<PolicyInfo> {
        let _guard = self.mutation().await?;
        let info = self.policy(dataset)?;
        self.drop_policy(info.record.dataset_id).await?;
        Ok(info)
    }

    /// Called with the mutation lock held when a dataset goes.
    pub(super) async fn drop_policy(&self, dataset_id: u64) -> CatalogResult<()> {
        if !self.state.read().unwrap().policies.contains_key(&dataset_id) {
            return Ok(());
        }
        let mut batch = WriteBatch::new();
        batch.delete(codec::policy_key(dataset_id));
        self.db.write(batch).await?;
        self.state.write().unwrap().policies.remove(&dataset_id);
        Ok(())
    }

    async fn put_policy(&self, rec: PolicyRecord) -> CatalogResult<()> {
        let mut batch = WriteBatch::new();
        batch.put(codec::policy_key(rec.dataset_id), rec.encode());
        self.db.write(batch).await?;
        self.state.write().unwrap().policies.insert(rec.dataset_id, rec);
        Ok(())
    }

    /// The current record of a policy, while its dataset is active.
    fn live_policy(&self, dataset_id: u64) -> CatalogResult<PolicyRecord> {
        let st = self.state.read().unwrap();
        active_dataset(&st, dataset_id)
            .and_then(|_| st.policies.get(&dataset_id).cloned())
            .ok_or_else(|| CatalogError::NotFound(format!("dataset {dataset_id} has no snapshot policy")))
    }

    /// Records a run that took no snapshot (the dataset was unchanged), or a failure (`error`
    /// set; `slot` given when the slot is done all the same).
    pub async fn policy_note(&self, dataset_id: u64, slot: Option<u64>, error: Option<(u64, String)>) -> CatalogResult<()> {
        let _guard = self.mutation().await?;
        let mut rec = self.live_policy(dataset_id)?;
        if slot.is_some() {
            rec.last_slot_ms = slot;
        }
        rec.last_error = error;
        self.put_policy(rec).await
    }

    /// Takes the policy's snapshot for `slot_ms`: a read-only snapshot made like
    /// `create_snapshot`'s, whose record becomes active in the same batch as the policy
    /// record that claims it (so a crash leaves no snapshot the policy forgets).
    pub async fn policy_snapshot(&self, dataset_id: u64, slot_ms: u64, seq: Option<u64>) -> CatalogResult<SnapshotInfo> {
        let _guard = self.mutation().await?;
        let policy = self.live_policy(dataset_id)?;
        let name = policy_snapshot_name(&policy.prefix, slot_ms);
        self.check_snapshot_name_free(&name)?;
        let rec = self.begin_snapshot(dataset_id, &name).await?;
        let id = rec.id;
        crash::point("policy-snapshot.after-intent");
        let result = async {
            let done = self.checkpoint_snapshot(&rec, "policy-snapshot.after-checkpoint").await?;
            let mut claimed = self.live_policy(dataset_id)?;
            claimed.snapshots.push((id, slot_ms));
            claimed.last_slot_ms = Some(slot_ms);
            claimed.last_seq = seq;
            claimed.last_error = None;
            let mut batch = WriteBatch::new();
            batch.put(codec::snapshot_key(id), done.encode());
            batch.put(codec::policy_key(dataset_id), claimed.encode());
            self.db.write(batch).await?;
            let mut st = self.state.write().unwrap();
            st.snapshots.insert(id, done);
            st.policies.insert(dataset_id, claimed);
            Ok(())
        }
        .await;
        if let Err(e) = result {
            self.abandon_snapshot(id).await;
            return Err(e);
        }
        let st = self.state.read().unwrap();
        Ok(snapshot_info(&st, &st.snapshots[&id]))
    }

    /// Deletes the policy's snapshots `remove` (as `delete-snapshot` does: one that clones
    /// need is hidden and kept) and forgets them, with any it lists that no longer exist.
    /// Returns the names deleted.
    pub async fn policy_prune(&self, dataset_id: u64, remove: &[u64]) -> CatalogResult<Vec<String>> {
        let _guard = self.mutation().await?;
        let policy = self.live_policy(dataset_id)?;
        let mut deleted = Vec::new();
        for &(id, _) in policy.snapshots.iter().filter(|(id, _)| remove.contains(id)) {
            let rec = {
                let st = self.state.read().unwrap();
                match st.snapshots.get(&id) {
                    Some(s) if s.state == RecordState::Active && s.dataset_id == dataset_id => s.clone(),
                    _ => continue,
                }
            };
            let name = rec.name.clone();
            self.put_snapshot(SnapshotRecord { state: RecordState::Deleted, ..rec }).await?;
            crash::point("policy-prune.after-intent");
            self.evict(id).await;
            self.collect(vec![Obj::Snapshot(id)]).await?;
            deleted.push(name);
        }
        let mut rec = self.live_policy(dataset_id)?;
        let before = rec.snapshots.len();
        {
            let st = self.state.read().unwrap();
            rec.snapshots.retain(|(id, _)| {
                !remove.contains(id) && st.snapshots.get(id).is_some_and(|s| s.state == RecordState::Active)
            });
        }
        if rec.snapshots.len() != before {
            self.put_policy(rec).await?;
        }
        Ok(deleted)
    }

    /// The names of these snapshots while they are active (`None` for one that is not).
    pub fn snapshot_names(&self, ids: &[u64]) -> Vec<Option<String>> {
        let st = self.state.read().unwrap();
        ids.iter()
            .map(|id| st.snapshots.get(id).filter(|s| s.state == RecordState::Active).map(|s| s.name.clone()))
            .collect()
    }

    /// The dataset's write sequence number, from the server writing it; `None` when nobody
    /// has it open (or the owner cannot tell).
    pub async fn change_seq(&self, dataset_id: u64) -> CatalogResult<Option<u64>> {
        let Some(cluster) = &self.cluster else {
            return Ok(Some(self.writer_here(dataset_id).await?.change_seq()));
        };
        let answer = cluster
            .on_owner(dataset_id, false, false, |mut peer, _epoch| async move {
                let req = Request::new(pb::DatasetRef { dataset: dataset_id });
                Ok(match peer.stats(req).await?.into_inner().outcome {
                    Some(stats_reply::Outcome::Stats(s)) => Ok(s),
                    Some(stats_reply::Outcome::NotOwner(n)) => Err(n.epoch),
                    None => Err(0),
                })
            })
            .await
            .map_err(super::owned::cluster_err)?;
        Ok(match answer {
            OnOwner::Local(_serving) => Some(self.filesystem(dataset_id).await?.change_seq()),
            OnOwner::Remote(s) if s.change_seq > 0 => Some(s.change_seq),
            OnOwner::Remote(_) | OnOwner::Nobody => None,
        })
    }
}

/// `<prefix>-YYYYMMDD-HHMMSSz`, the slot's time in UTC (names sort by time).
pub fn policy_snapshot_name(prefix: &str, slot_ms: u64) -> String {
    let t = chrono::DateTime::from_timestamp_millis(slot_ms as i64).unwrap_or_default();
    format!("{prefix}-{}z", t.format("%Y%m%d-%H%M%S"))
}

fn check_prefix(prefix: &str) -> CatalogResult<()> {
    validate_name(prefix).map_err(|e| CatalogError::InvalidArgument(format!("snapshot prefix: {e}")))?;
    if prefix.len() > MAX_POLICY_PREFIX {
        return Err(CatalogError::InvalidArgument(format!(
            "snapshot prefix {:?}… is {} bytes; at most {MAX_POLICY_PREFIX} (the snapshot names add 17): pass --prefix",
            &prefix[..20],
            prefix.len()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn snapshot_names_sort_by_time() {
        assert_eq!(policy_snapshot_name("db", 1_764_772_200_000), "db-20251203-143000z");
        let a = policy_snapshot_name("db", 1_764_772_200_000);
        let b = policy_snapshot_name("db", 1_764_772_200_000 + 3_600_000);
        assert!(a < b);
        validate_name(&policy_snapshot_name(&"x".repeat(MAX_POLICY_PREFIX), 0)).unwrap();
        assert!(check_prefix(&"x".repeat(MAX_POLICY_PREFIX + 1)).is_err());
    }
}
