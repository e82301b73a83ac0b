//! The `/metrics` page of `slatefs serve`: what the catalog says of each dataset and snapshot
//! (names, Kubernetes names, usage, snapshot counts), the NFS counters by export and procedure,
//! the object-store request counters, and the process-wide events (durability waits, fencing,
//! ownership changes). Everything is read at scrape time; see docs/metrics.md for each family.

use std::collections::HashMap;
use std::fmt::Error;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::DescriptorEncoder;

use super::events;
use super::families::{self, Labels};
use super::histogram::HistogramSnapshot;
use super::nfs::{ObjectSnapshot, NFS, NO_OBJECT};
use crate::catalog::{Inventory, KubernetesRef, Registry};
use crate::fs::Health;
use crate::store::accounting::RequestStats;

#[derive(Debug)]
struct ServerPage {
    inventory: Inventory,
    nfs: Vec<ObjectSnapshot>,
    store: RequestStats,
    durability_wait: HistogramSnapshot,
}

pub async fn render(registry: &Registry) -> String {
    let page = ServerPage {
        inventory: registry.inventory().await,
        nfs: NFS.snapshot(),
        store: registry.store().request_stats(),
        durability_wait: events::DURABILITY_WAIT.snapshot(),
    };
    families::render(page)
}

fn pvc_labels(k: &Option<KubernetesRef>) -> [(&'static str, String); 2] {
    let k = k.clone().unwrap_or_default();
    [("namespace", k.namespace), ("persistentvolumeclaim", k.name)]
}

impl ServerPage {
    /// The labels every per-export series carries, by object id: the dataset's name, the
    /// snapshot's ("" for the live dataset) and the PVC the dataset was made for.
    fn export_labels(&self) -> HashMap<u64, Labels> {
        let mut by_id = HashMap::new();
        let mut pvc_of = HashMap::new();
        for d in &self.inventory.datasets {
            let mut l: Labels = vec![("dataset", d.name.clone()), ("snapshot", String::new())];
            l.extend(pvc_labels(&d.kubernetes));
            pvc_of.insert(d.id, d.kubernetes.clone());
            by_id.insert(d.id, l);
        }
        for s in &self.inventory.snapshots {
            let mut l: Labels = vec![("dataset", s.dataset.clone()), ("snapshot", s.name.clone())];
            l.extend(pvc_labels(pvc_of.get(&s.dataset_id).unwrap_or(&None)));
            by_id.insert(s.id, l);
        }
        let mut none: Labels = vec![("dataset", String::new()), ("snapshot", String::new())];
        none.extend(pvc_labels(&None));
        by_id.insert(NO_OBJECT, none);
        by_id
    }

    fn encode_nfs(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let labels = self.export_labels();
        // Objects deleted since their calls have no name any more: their series end.
        let known: Vec<(&Labels, &ObjectSnapshot)> =
            self.nfs.iter().filter_map(|o| labels.get(&o.object).map(|l| (l, o))).collect();
        let mut by_procedure: Vec<(Labels, u64, u64, &HistogramSnapshot)> = Vec::new();
        for (l, o) in &known {
            for p in &o.procedures {
                let mut l = (*l).clone();
                l.push(("procedure", p.procedure.to_string()));
                by_procedure.push((l, p.calls, p.errors, &p.latency));
            }
        }
        families::counters(e, "slatefs_nfs_calls", "NFSv3 calls answered, by export and procedure.", by_procedure.iter().map(|(l, c, _, _)| (l, *c)))?;
        families::counters(
            e,
            "slatefs_nfs_call_errors",
            "NFSv3 calls answered with an error status (anything but NFS3_OK) or not accepted.",
            by_procedure.iter().map(|(l, _, n, _)| (l, *n)),
        )?;
        families::histograms(
            e,
            "slatefs_nfs_call_duration_seconds",
            "Time from a call's arrival to its reply, by export and procedure (durability waits included).",
            by_procedure.iter().map(|(l, _, _, h)| (l, *h)),
        )?;
        families::counters(e, "slatefs_nfs_read_bytes", "File data bytes returned by READ.", known.iter().map(|(l, o)| (*l, o.bytes_read)))?;
        families::counters(e, "slatefs_nfs_written_bytes", "File data bytes accepted by WRITE.", known.iter().map(|(l, o)| (*l, o.bytes_written)))
    }

    fn encode_catalog(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let ds = &self.inventory.datasets;
        let info: Vec<Labels> = ds
            .iter()
            .map(|d| {
                let k = d.kubernetes.clone().unwrap_or_default();
                vec![
                    ("dataset", d.name.clone()),
                    ("id", d.id.to_string()),
                    ("origin", d.origin_name.clone().unwrap_or_default()),
                    ("namespace", k.namespace),
                    ("persistentvolumeclaim", k.name),
                    ("persistentvolume", k.content),
                ]
            })
            .collect();
        families::gauges(e, "slatefs_dataset_info", "One series per dataset (value 1), with the names people know it by.", info.iter().map(|l| (l, 1)))?;
        let labels: Vec<Labels> = ds
            .iter()
            .map(|d| {
                let mut l: Labels = vec![("dataset", d.name.clone())];
                l.extend(pvc_labels(&d.kubernetes));
                l
            })
            .collect();
        let with = || labels.iter().zip(ds);
        families::gauges(e, "slatefs_dataset_snapshots", "Read-only snapshots of the dataset.", with().map(|(l, d)| (l, d.snapshot_count as i64)))?;
        families::gauges(e, "slatefs_dataset_quota_bytes", "The dataset's quota (datasets with one).", with().filter_map(|(l, d)| Some((l, d.quota? as i64))))?;
        families::gauges(
            e,
            "slatefs_dataset_used_bytes",
            "Bytes the dataset's files use (datasets this server has open).",
            with().filter_map(|(l, d)| Some((l, d.usage?.bytes as i64))),
        )?;
        families::gauges(
            e,
            "slatefs_dataset_used_inodes",
            "Inodes the dataset uses (datasets this server has open).",
            with().filter_map(|(l, d)| Some((l, d.usage?.inodes as i64))),
        )?;
        families::gauges(
            e,
            "slatefs_dataset_sst_stored_bytes",
            "Bytes of the dataset's sorted tables in the store, compressed (datasets this server has open; WAL objects and tables only snapshots hold are not counted).",
            with().filter_map(|(l, d)| Some((l, d.tables?.stored_bytes as i64))),
        )?;
        families::gauges(
            e,
            "slatefs_dataset_sst_raw_bytes",
            "Keys and values of the dataset's sorted tables before compression, of the tables whose stats this server has read; divide by slatefs_dataset_sst_measured_bytes for the compression ratio.",
            with().filter_map(|(l, d)| Some((l, d.tables?.raw_bytes as i64))),
        )?;
        families::gauges(
            e,
            "slatefs_dataset_sst_measured_bytes",
            "Stored bytes of the tables slatefs_dataset_sst_raw_bytes covers.",
            with().filter_map(|(l, d)| Some((l, d.tables?.stored_with_stats as i64))),
        )?;
        families::gauges(
            e,
            "slatefs_dataset_fenced",
            "1 when this server's writer of the dataset was fenced (another server opened it for writing).",
            with().filter_map(|(l, d)| Some((l, i64::from(d.health.as_ref()? == &Health::Fenced)))),
        )?;
        let snaps = &self.inventory.snapshots;
        let snap_info: Vec<Labels> = snaps
            .iter()
            .map(|s| {
                let k = s.kubernetes.clone().unwrap_or_default();
                vec![
                    ("dataset", s.dataset.clone()),
                    ("snapshot", s.name.clone()),
                    ("id", s.id.to_string()),
                    ("namespace", k.namespace),
                    ("volumesnapshot", k.name),
                    ("volumesnapshotcontent", k.content),
                ]
            })
            .collect();
        families::gauges(e, "slatefs_snapshot_info", "One series per read-only snapshot (value 1), with its VolumeSnapshot.", snap_info.iter().map(|l| (l, 1)))?;
        let snap_labels: Vec<Labels> = snaps
            .iter()
            .map(|s| {
                let k = s.kubernetes.clone().unwrap_or_default();
                vec![("dataset", s.dataset.clone()), ("snapshot", s.name.clone()), ("namespace", k.namespace), ("volumesnapshot", k.name)]
            })
            .collect();
        families::gauges(
            e,
            "slatefs_snapshot_size_bytes",
            "The dataset's used bytes when the snapshot was taken.",
            snap_labels.iter().zip(snaps).map(|(l, s)| (l, s.size_bytes as i64)),
        )
    }

    fn encode_store(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        let s = &self.store;
        let classes: Vec<(Labels, u64)> = [("put", s.put), ("get", s.get), ("head", s.head), ("list", s.list), ("delete", s.delete), ("copy", s.copy)]
            .into_iter()
            .map(|(c, v)| (vec![("class", c.to_string())], v))
            .collect();
        families::counters(e, "slatefs_object_store_requests", "Requests sent to the object store, by billing class.", classes.iter().map(|(l, v)| (l, *v)))?;
        let bytes: Vec<(Labels, u64)> =
            vec![(vec![("direction", "up".into())], s.bytes_up), (vec![("direction", "down".into())], s.bytes_down)];
        families::counters(e, "slatefs_object_store_bytes", "Payload bytes sent to (up) and received from (down) the object store.", bytes.iter().map(|(l, v)| (l, *v)))?;
        families::counter(e, "slatefs_object_store_errors", "Object-store requests that failed (other than \"no such key\").", s.errors)?;
        families::counter(e, "slatefs_object_store_not_found", "Object-store requests answered \"no such key\".", s.not_found)?;
        families::counter(e, "slatefs_read_cache_hits", "Parts of SST reads the on-disk read cache served.", s.cache_hits)?;
        families::counter(e, "slatefs_read_cache_misses", "Parts of SST reads the on-disk read cache fetched from the store.", s.cache_misses)
    }

    fn encode_events(&self, e: &mut DescriptorEncoder<'_>) -> Result<(), Error> {
        families::histogram(
            e,
            "slatefs_durability_wait_seconds",
            "Time calls waited for their changes to become durable in the object store.",
            &self.durability_wait,
        )?;
        families::counter(
            e,
            "slatefs_durability_wait_failures",
            "Durability waits that gave up (store not answering) or met a fenced writer.",
            events::read(&events::DURABILITY_WAIT_FAILURES),
        )?;
        families::counter(e, "slatefs_writers_fenced", "Dataset writers of this server fenced by another process.", events::read(&events::FENCED))?;
        let changes: Vec<(Labels, u64)> = [
            ("taken", &events::OWNERSHIP_TAKEN),
            ("taken_over", &events::OWNERSHIP_TAKEN_OVER),
            ("handed_off", &events::OWNERSHIP_HANDED_OFF),
            ("lost", &events::OWNERSHIP_LOST),
        ]
        .into_iter()
        .map(|(k, c)| (vec![("event", k.to_string())], events::read(c)))
        .collect();
        families::counters(
            e,
            "slatefs_ownership_changes",
            "Dataset ownership changes of this server (cluster mode): taken (taken_over: from a gone owner), handed off, lost to another server.",
            changes.iter().map(|(l, v)| (l, *v)),
        )
    }
}

impl Collector for ServerPage {
    fn encode(&self, mut e: DescriptorEncoder<'_>) -> Result<(), Error> {
        self.encode_nfs(&mut e)?;
        self.encode_catalog(&mut e)?;
        self.encode_store(&mut e)?;
        self.encode_events(&mut e)
    }
}
