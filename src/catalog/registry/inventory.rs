//! The Kubernetes names of datasets and snapshots (what csi-provisioner and csi-snapshotter
//! pass with `--extra-create-metadata`), and the inventory the metrics exporter reads.

use super::*;

/// Kubernetes object names: DNS subdomains (lowercase letters, digits, '-' and '.', starting
/// and ending with a letter or digit); namespaces are DNS labels of at most 63 bytes.
fn check_kubernetes_name(what: &str, v: &str, max: usize) -> CatalogResult<()> {
    let ok_char = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit() || c == b'-' || c == b'.';
    let edge = |c: Option<&u8>| c.is_some_and(|c| c.is_ascii_lowercase() || c.is_ascii_digit());
    let b = v.as_bytes();
    if b.len() > max || !b.iter().all(|&c| ok_char(c)) || !edge(b.first()) || !edge(b.last()) {
        return Err(CatalogError::InvalidArgument(format!(
            "invalid Kubernetes {what} {v:?}: expected 1-{max} lowercase letters, digits, '-' or '.', starting and ending with a letter or digit"
        )));
    }
    Ok(())
}

/// Checks a reference (InvalidArgument naming what is wrong); an empty one means "none".
pub fn checked_kubernetes_ref(r: KubernetesRef) -> CatalogResult<Option<KubernetesRef>> {
    if r.namespace.is_empty() && r.name.is_empty() && r.content.is_empty() {
        return Ok(None);
    }
    check_kubernetes_name("namespace", &r.namespace, 63)?;
    check_kubernetes_name("name", &r.name, 253)?;
    if !r.content.is_empty() {
        check_kubernetes_name("object name", &r.content, 253)?;
    }
    Ok(Some(r))
}

/// What the metrics exporter shows of the catalog: every visible dataset (with its usage and
/// health when this process has it open) and every read-only snapshot.
#[derive(Debug, Clone, Default)]
pub struct Inventory {
    pub datasets: Vec<DatasetInfo>,
    pub snapshots: Vec<SnapshotInfo>,
}

impl Registry {
    /// Records which PersistentVolumeClaim a dataset was made for (an empty reference removes
    /// it). Setting what is already recorded writes nothing.
    pub async fn set_dataset_kubernetes_ref(&self, name: &str, r: KubernetesRef) -> CatalogResult<DatasetInfo> {
        let r = checked_kubernetes_ref(r)?;
        let _guard = self.mutation().await?;
        let id = self.dataset_id(name)?;
        let mut rec = self.state.read().unwrap().datasets[&id].clone();
        if rec.kubernetes != r {
            rec.kubernetes = r;
            self.put_dataset(rec).await?;
        }
        self.info_of(id)
    }

    /// Records which VolumeSnapshot a read-only snapshot was made for.
    pub async fn set_snapshot_kubernetes_ref(&self, name: &str, r: KubernetesRef) -> CatalogResult<SnapshotInfo> {
        let r = checked_kubernetes_ref(r)?;
        let _guard = self.mutation().await?;
        let mut rec = {
            let st = self.state.read().unwrap();
            snapshot_by_name(&st, name)?.clone()
        };
        if rec.kubernetes != r {
            rec.kubernetes = r;
            self.put_snapshot(rec.clone()).await?;
        }
        let st = self.state.read().unwrap();
        Ok(snapshot_info(&st, &st.snapshots[&rec.id]))
    }

    /// The catalog as the metrics exporter shows it. Never opens a dataset and never waits
    /// for one: usage is read only from writers this process has open and idle at this moment,
    /// so a scrape costs no object-store request and cannot move a writer.
    pub async fn inventory(&self) -> Inventory {
        let (mut datasets, snapshots) = {
            let st = self.state.read().unwrap();
            let datasets: Vec<DatasetInfo> =
                st.datasets.values().filter(|d| d.state == RecordState::Active).map(|d| dataset_info(&st, d)).collect();
            let snapshots: Vec<SnapshotInfo> =
                st.snapshots.values().filter(|s| s.state == RecordState::Active).map(|s| snapshot_info(&st, s)).collect();
            (datasets, snapshots)
        };
        for d in &mut datasets {
            let Some(slot) = self.open.lock().unwrap().get(&d.id).cloned() else { continue };
            let Ok(guard) = slot.try_lock() else { continue };
            if let Some(fs) = guard.get() {
                d.usage = Some(fs.usage().await);
                d.health = Some(fs.health());
                if let Ok(db) = fs.db() {
                    d.tables = Some(self.store.table_sizes_now(&self.db_path(d.id), db));
                }
            }
        }
        datasets.sort_by_key(|d| d.id);
        let mut snapshots = snapshots;
        snapshots.sort_by_key(|s| s.id);
        Inventory { datasets, snapshots }
    }
}
