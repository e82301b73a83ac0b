//! `slatefs serve`'s page: per-export NFS counters move by exactly what a real NFS client did,
//! the catalog's datasets and snapshots are there, the store and durability counters move.

use crate::nfs;
use crate::prometheus::scrape;
use crate::{dataset_cli, server_with_metrics};

const CHUNK: usize = 64 * 1024;

#[tokio::test(flavor = "multi_thread")]
async fn nfs_traffic_moves_the_counters_of_its_dataset_and_snapshot() {
    let (server, url) = server_with_metrics();
    let out = dataset_cli(&server, &["create", "projects", "--quota", "1Gi"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let before = scrape(&url);
    assert_eq!(before.status, 200);
    assert!(before.content_type.starts_with("text/plain; version=0.0.4"), "{}", before.content_type);
    assert_eq!(before.one("slatefs_dataset_info", &[("dataset", "projects")]), 1.0);
    assert_eq!(before.one("slatefs_dataset_quota_bytes", &[("dataset", "projects")]), (1u64 << 30) as f64);
    assert_eq!(before.one("slatefs_dataset_snapshots", &[("dataset", "projects")]), 0.0);
    assert_eq!(before.family_type("slatefs_nfs_call_duration_seconds").as_deref(), Some("histogram"));
    let proj = [("dataset", "projects"), ("snapshot", "")];
    let write = [("dataset", "projects"), ("snapshot", ""), ("procedure", "write")];

    let mut c = nfs::Client::mount(server.nfs_port, "/projects").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"data", 0o644).await.unwrap();
    let data = nfs::pattern(7, 3 * CHUNK);
    for (i, part) in data.chunks(CHUNK).enumerate() {
        c.write(&f, (i * CHUNK) as u64, part).await.unwrap();
    }
    for i in 0..3 {
        let (got, _) = c.read(&f, (i * CHUNK) as u64, CHUNK as u32).await.unwrap();
        assert_eq!(got, data[i * CHUNK..(i + 1) * CHUNK]);
    }
    assert_eq!(c.lookup(&root, b"missing").await.unwrap_err(), nfs::nfsstat3::NFS3ERR_NOENT);

    let after = scrape(&url);
    let delta = |sample: &str, labels: &[(&str, &str)]| after.sum(sample, labels) - before.sum(sample, labels);
    assert_eq!(delta("slatefs_nfs_calls_total", &write), 3.0);
    assert_eq!(delta("slatefs_nfs_call_errors_total", &write), 0.0);
    assert_eq!(delta("slatefs_nfs_calls_total", &[("dataset", "projects"), ("procedure", "read")]), 3.0);
    assert_eq!(delta("slatefs_nfs_written_bytes_total", &proj), (3 * CHUNK) as f64);
    assert_eq!(delta("slatefs_nfs_read_bytes_total", &proj), (3 * CHUNK) as f64);
    assert_eq!(delta("slatefs_nfs_calls_total", &[("dataset", "projects"), ("procedure", "create")]), 1.0);
    let lookup = [("dataset", "projects"), ("procedure", "lookup")];
    assert!(delta("slatefs_nfs_call_errors_total", &lookup) >= 1.0);
    // Every call is one observation of its procedure's latency histogram.
    assert_eq!(after.one("slatefs_nfs_call_duration_seconds_count", &write), 3.0);
    assert_eq!(after.one("slatefs_nfs_call_duration_seconds_bucket", &[write[0], write[1], write[2], ("le", "+Inf")]), 3.0);
    // Nothing of it counts under the other dataset.
    assert_eq!(after.sum("slatefs_nfs_written_bytes_total", &[("dataset", "root")]), 0.0);
    // The writes were durable before their replies (sync): waits were timed, requests sent.
    assert!(delta("slatefs_durability_wait_seconds_count", &[]) >= 4.0, "create + 3 writes");
    assert!(delta("slatefs_object_store_requests_total", &[("class", "put")]) >= 1.0);
    assert!(delta("slatefs_object_store_bytes_total", &[("direction", "up")]) >= (3 * CHUNK) as f64);
    assert!(after.one("slatefs_dataset_used_bytes", &[("dataset", "projects")]) >= (3 * CHUNK) as f64);
    assert!(after.one("slatefs_dataset_used_inodes", &[("dataset", "projects")]) >= 2.0);

    // A read-only snapshot: in the catalog families, and its export counts under its own name.
    let out = dataset_cli(&server, &["snapshot", "projects", "monday", "--readonly"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut s = nfs::Client::mount(server.nfs_port, "/projects@monday").await.unwrap();
    let sroot = s.root.clone();
    let sf = s.lookup(&sroot, b"data").await.unwrap();
    let (got, _) = s.read(&sf, 0, CHUNK as u32).await.unwrap();
    assert_eq!(got, data[..CHUNK]);
    assert_eq!(s.write(&sf, 0, b"x").await.unwrap_err(), nfs::nfsstat3::NFS3ERR_ROFS);

    let snap = scrape(&url);
    assert_eq!(snap.one("slatefs_dataset_snapshots", &[("dataset", "projects")]), 1.0);
    assert_eq!(snap.one("slatefs_snapshot_info", &[("dataset", "projects"), ("snapshot", "monday")]), 1.0);
    assert!(snap.one("slatefs_snapshot_size_bytes", &[("snapshot", "monday")]) >= (3 * CHUNK) as f64);
    let monday = [("dataset", "projects"), ("snapshot", "monday")];
    assert_eq!(snap.sum("slatefs_nfs_read_bytes_total", &monday), CHUNK as f64);
    assert_eq!(snap.sum("slatefs_nfs_written_bytes_total", &monday), 0.0);
    assert_eq!(snap.one("slatefs_nfs_call_errors_total", &[monday[0], monday[1], ("procedure", "write")]), 1.0);
    // The live dataset's counters did not take the snapshot's read.
    assert_eq!(snap.sum("slatefs_nfs_read_bytes_total", &proj), after.sum("slatefs_nfs_read_bytes_total", &proj));

    // Only /metrics is served.
    let other = scrape(&url.replace("/metrics", "/other"));
    assert_eq!(other.status, 404);
}

#[test]
fn a_bad_metrics_address_refuses_the_start_before_the_store_is_touched() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let out = std::process::Command::new(crate::server::binary())
        .args(["serve", "--metrics-listen", "everywhere", "--nfs-listen", "127.0.0.1:0"])
        .arg("--store")
        .arg(format!("file://{}", data.display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("[metrics] listen") && err.contains("everywhere"), "{err}");
    assert!(!data.exists(), "the store was created by a refused start");
}
