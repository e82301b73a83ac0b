//! The compression ratio as users see it: `slatefs dataset info` (text and `-o json`) and the
//! `/metrics` page of a real `slatefs serve`, after a real NFSv3 client wrote compressible log
//! lines and incompressible bytes to two datasets. Enough is written to each that the memtable
//! (64 MiB) turns into a sorted table.

use std::time::{Duration, Instant};

use crate::json_logs::json_logs;
use crate::nfs;
use crate::prometheus::scrape;
use crate::{dataset_cli, server_with_metrics};

const WRITE: usize = 1 << 20;
const FILE_BYTES: usize = 80 << 20;

async fn write_file(port: u16, export: &str, data: &[u8]) {
    let mut c = nfs::Client::mount(port, export).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"data", 0o644).await.unwrap();
    for (i, part) in data.chunks(WRITE).enumerate() {
        c.write_unstable(&f, (i * WRITE) as u64, part).await.unwrap();
    }
    c.commit(&f).await.unwrap();
}

fn info_json(server: &crate::server::Server, name: &str) -> serde_json::Value {
    let out = dataset_cli(server, &["info", name, "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_slice(&out.stdout).unwrap()
}

/// `dataset info` until the dataset's data is in a table (the memtable flush runs in the
/// background after the write that filled it).
fn tables_once_flushed(server: &crate::server::Server, name: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let tables = info_json(server, name)["tables"].clone();
        if tables["stored_bytes"].as_u64().unwrap_or(0) > 0 && tables["compression_ratio"].is_f64() {
            return tables;
        }
        assert!(Instant::now() < deadline, "{name}: no table after 120 s: {tables}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn dataset_info_and_metrics_report_the_compression_ratio() {
    let (server, url) = server_with_metrics();
    for name in ["logs", "media"] {
        let out = dataset_cli(&server, &["create", name]);
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    write_file(server.nfs_port, "/logs", &json_logs(FILE_BYTES, 11)).await;
    write_file(server.nfs_port, "/media", &nfs::pattern(5, FILE_BYTES)).await;

    let logs = tables_once_flushed(&server, "logs");
    let media = tables_once_flushed(&server, "media");
    let ratio = |t: &serde_json::Value| t["compression_ratio"].as_f64().unwrap();
    eprintln!("logs tables: {logs}\nmedia tables: {media}");
    // lz4 (the default) on log lines: about 3x (tests/compression.rs); random bytes: 1x.
    assert!(ratio(&logs) > 2.0, "{logs}");
    assert!((0.9..1.1).contains(&ratio(&media)), "{media}");
    for t in [&logs, &media] {
        assert!(t["count"].as_u64().unwrap() >= 1, "{t}");
        assert!(t["raw_bytes"].as_u64().unwrap() > t["stored_with_stats"].as_u64().unwrap() / 2, "{t}");
        assert!(t["stored_with_stats"].as_u64().unwrap() <= t["stored_bytes"].as_u64().unwrap(), "{t}");
    }
    // The raw bytes are what was written (less what is still only in the WAL), not more.
    assert!(logs["raw_bytes"].as_u64().unwrap() <= (FILE_BYTES + (4 << 20)) as u64, "{logs}");

    let text = dataset_cli(&server, &["info", "logs"]);
    let text = String::from_utf8_lossy(&text.stdout);
    let stored = text.lines().find(|l| l.starts_with("stored:")).unwrap_or_else(|| panic!("{text}"));
    assert!(stored.contains("x compressed"), "{stored}");

    // The metrics page: the same tables, once the background read of their stats is done.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let page = scrape(&url);
        let one = |s: &str, d: &str| page.has(s, &[("dataset", d)]).then(|| page.one(s, &[("dataset", d)]));
        let ratio_of = |d: &str| match (one("slatefs_dataset_sst_raw_bytes", d), one("slatefs_dataset_sst_measured_bytes", d)) {
            (Some(raw), Some(measured)) if measured > 0.0 => Some(raw / measured),
            _ => None,
        };
        if let (Some(l), Some(m)) = (ratio_of("logs"), ratio_of("media")) {
            assert!(l > 2.0 && (0.9..1.1).contains(&m), "logs {l}, media {m}");
            assert!(one("slatefs_dataset_sst_stored_bytes", "logs").unwrap() > 0.0);
            break;
        }
        assert!(Instant::now() < deadline, "no ratio on the metrics page after 60 s");
        std::thread::sleep(Duration::from_millis(250));
    }
}
