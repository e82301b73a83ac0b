//! Datasets and snapshots: the catalog (`Registry`) over a real store, the admin gRPC API
//! over a real unix socket / TCP listener, and the `slatefs dataset` CLI against a real
//! `slatefs serve` process (including kill -9 in the middle of every catalog operation).
//!
//! One suite for both stores: a local directory by default, a real S3 server on 127.0.0.1
//! (tests/support/s3.rs) under `SLATEFS_TEST_STORE=s3`. What the tests check in the store
//! itself (which databases hold objects, their checkpoints) they read through the store's
//! object_store client, whichever store it is.

#[path = "support/server.rs"]
mod server;

use std::sync::Arc;

use futures::TryStreamExt;
use slatefs::admin::{client, proto, server::AdminListener, AdminAddr};
use slatefs::catalog::{CatalogError, ObjectKind, Registry, SnapshotResult};
use slatefs::config::{CatalogRole, Config, StorageConfig};
use slatefs::fs::{Caller, Filesystem, Kind, NewNode, ROOT_INO};
use slatefs::store::Store;

use server::s3::{test_store, TestStore};

// ------------------------------------------------------------------------------ helpers

fn config_for(storage: &StorageConfig) -> Config {
    Config { storage: storage.clone(), ..Config::default() }
}

async fn open_registry(ts: &TestStore) -> Arc<Registry> {
    let config = config_for(&ts.config);
    Registry::open(ts.open(), &config).await.unwrap()
}

/// Objects under `rel` (a path below the store's root), listed from the store.
async fn objects_under(store: &Store, rel: &str) -> usize {
    match store.object_store().list(Some(&store.path(rel))).try_collect::<Vec<_>>().await {
        Ok(objects) => objects.len(),
        // A local store whose directory was never made.
        Err(object_store::Error::NotFound { .. }) => 0,
        Err(e) => panic!("cannot list {rel}: {e}"),
    }
}

async fn has_db(store: &Store, id: u64) -> bool {
    objects_under(store, &format!("datasets/{id:016x}")).await > 0
}

async fn write_file(fs: &Filesystem, name: &str, data: &[u8]) {
    let c = Caller::root();
    let ino = match fs.lookup(&c, ROOT_INO, name.as_bytes()).await {
        Ok(ino) => ino,
        Err(_) => fs.create(&c, ROOT_INO, name.as_bytes(), NewNode::new(Kind::File, 0o644)).await.unwrap().ino,
    };
    fs.setattr(&c, ino, &slatefs::fs::SetAttr { size: Some(0), ..Default::default() }).await.unwrap();
    fs.write(&c, ino, 0, data).await.unwrap();
}

async fn read_file(fs: &Filesystem, name: &str) -> Option<Vec<u8>> {
    let c = Caller::root();
    let ino = fs.lookup(&c, ROOT_INO, name.as_bytes()).await.ok()?;
    let (data, _) = fs.read(&c, ino, 0, 1 << 20).await.unwrap();
    Some(data)
}

fn is_not_found<T: std::fmt::Debug>(r: Result<T, CatalogError>) -> bool {
    matches!(r, Err(CatalogError::NotFound(_)))
}

// ------------------------------------------------------------------------------ catalog

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_lifecycle_snapshots_clones_and_deletion_with_dependants() {
    let ts = test_store().await;
    let reg = open_registry(&ts).await;
    let store = ts.open();

    // First start: the default dataset `root`, exported as "" and "/".
    let root = reg.get_default().await.unwrap();
    assert_eq!(root.name, "root");
    assert_eq!(reg.resolve_export("/").await.unwrap(), root.id);
    assert_eq!(reg.resolve_export("").await.unwrap(), root.id);
    assert_eq!(reg.resolve_export("root").await.unwrap(), root.id);

    let data = reg.create_dataset("data", Some(1 << 20)).await.unwrap();
    assert_eq!(data.quota, Some(1 << 20));
    assert!(has_db(&store, data.id).await);
    assert_eq!(reg.object_kind(data.id).await.unwrap(), ObjectKind::Dataset);
    let fs = reg.filesystem(data.id).await.unwrap();
    assert_eq!(fs.quota(), Some(1 << 20));
    write_file(&fs, "f", b"monday").await;

    // Read-only snapshot: a checkpoint; sees what was written before the call only.
    let SnapshotResult::Snapshot(mon) = reg.create_snapshot("data", "monday", true).await.unwrap() else {
        panic!("expected a read-only snapshot")
    };
    assert_eq!(mon.dataset_id, data.id);
    assert_eq!(reg.resolve_export("/data@monday").await.unwrap(), mon.id);
    assert_eq!(reg.object_kind(mon.id).await.unwrap(), ObjectKind::Snapshot { dataset_id: data.id });
    assert!(is_not_found(reg.resolve_export("root@monday").await), "snapshot of another dataset");
    assert_eq!(reg.snapshots_of(data.id).await.unwrap(), vec![("monday".to_string(), mon.id)]);

    // Writable snapshot: a full dataset.
    let SnapshotResult::Dataset(ws) = reg.create_snapshot("data", "data-ws", false).await.unwrap() else {
        panic!("expected a writable snapshot")
    };
    assert_eq!(ws.quota, Some(1 << 20), "a writable snapshot keeps the source's quota");
    write_file(&fs, "f", b"tuesday").await;
    let snap_fs = reg.filesystem(mon.id).await.unwrap();
    assert!(snap_fs.is_read_only());
    assert_eq!(read_file(&snap_fs, "f").await.unwrap(), b"monday");
    let ws_fs = reg.filesystem(ws.id).await.unwrap();
    assert_eq!(read_file(&ws_fs, "f").await.unwrap(), b"monday");
    write_file(&ws_fs, "g", b"only in the writable snapshot").await;
    assert!(read_file(&fs, "g").await.is_none(), "writes to the snapshot do not show in the source");
    assert_eq!(read_file(&ws_fs, "f").await.unwrap(), b"monday", "nor the other way round");

    // Clone of a read-only snapshot.
    let cl = reg.clone_snapshot("monday", "data-clone").await.unwrap();
    let cl_fs = reg.filesystem(cl.id).await.unwrap();
    assert_eq!(read_file(&cl_fs, "f").await.unwrap(), b"monday");
    write_file(&cl_fs, "f", b"clone").await;
    assert_eq!(read_file(&snap_fs, "f").await.unwrap(), b"monday");
    assert_eq!(read_file(&fs, "f").await.unwrap(), b"tuesday");

    // Quota: pushed into the open filesystem at once.
    reg.set_quota("data", Some(5)).await.unwrap();
    assert_eq!(fs.quota(), Some(5));
    reg.set_quota("data", None).await.unwrap();
    assert_eq!(fs.quota(), None);

    // Errors.
    assert!(matches!(reg.create_dataset("data", None).await, Err(CatalogError::AlreadyExists(_))));
    assert!(matches!(reg.create_snapshot("data", "monday", true).await, Err(CatalogError::AlreadyExists(_))));
    assert!(matches!(reg.create_snapshot("root", "data", false).await, Err(CatalogError::AlreadyExists(_))));
    assert!(is_not_found(reg.create_snapshot("nope", "x", true).await));
    assert!(is_not_found(reg.clone_snapshot("nope", "x").await));
    assert!(matches!(reg.create_dataset("Bad", None).await, Err(CatalogError::InvalidArgument(_))));
    assert!(matches!(reg.create_dataset("data", Some(0)).await, Err(CatalogError::InvalidArgument(_))));
    assert!(matches!(reg.delete_dataset("root").await, Err(CatalogError::FailedPrecondition(_))));

    // Delete the source: hidden (not listed, not resolvable) but its objects stay for the
    // snapshot and the clones.
    let out = reg.delete_dataset("data").await.unwrap();
    assert!(!out.removed);
    assert_eq!(out.dependants.len(), 3, "{:?}", out.dependants);
    assert!(is_not_found(reg.resolve_export("data").await));
    assert!(is_not_found(reg.object_kind(data.id).await));
    assert!(!reg.list_datasets().await.unwrap().iter().any(|d| d.name == "data"));
    assert!(has_db(&store, data.id).await);
    assert_eq!(read_file(&cl_fs, "f").await.unwrap(), b"clone", "clones keep working");
    assert_eq!(read_file(&snap_fs, "f").await.unwrap(), b"monday", "snapshots keep working");
    // The name is free again.
    let again = reg.create_dataset("data", None).await.unwrap();
    assert!(again.id > cl.id, "ids are never reused");
    reg.delete_dataset("data").await.unwrap();

    // Deleting the snapshot the clone depends on: hidden as well.
    let out = reg.delete_snapshot("monday").await.unwrap();
    assert!(!out.removed);
    assert_eq!(out.dependants, vec!["data-clone".to_string()]);
    assert!(is_not_found(reg.object_kind(mon.id).await));
    assert!(reg.list_snapshots(None).await.unwrap().is_empty());
    assert!(has_db(&store, data.id).await);

    // Last dependants go: everything is collected.
    assert!(reg.delete_dataset("data-ws").await.unwrap().removed);
    assert!(has_db(&store, data.id).await, "the clone still needs it");
    assert!(reg.delete_dataset("data-clone").await.unwrap().removed);
    assert!(!has_db(&store, cl.id).await);
    assert!(!has_db(&store, ws.id).await);
    assert!(!has_db(&store, data.id).await, "collected with its last dependant");
    assert_eq!(reg.list_datasets().await.unwrap().len(), 1);

    // Restart: state and the id counter survive.
    reg.shutdown().await;
    assert!(matches!(reg.filesystem(root.id).await, Err(CatalogError::Unavailable(_))));
    let reg = open_registry(&ts).await;
    assert_eq!(reg.get_default().await.unwrap().id, root.id);
    let next = reg.create_dataset("after-restart", None).await.unwrap();
    assert!(next.id > again.id, "ids are never reused across restarts");
    reg.set_default("after-restart").await.unwrap();
    assert_eq!(reg.resolve_export("/").await.unwrap(), next.id);
    assert!(reg.delete_dataset("root").await.unwrap().removed, "no longer the default");
    reg.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn catalog_reader_follows_the_owner_and_refuses_changes() {
    let ts = test_store().await;
    let owner = open_registry(&ts).await;
    let mut config = config_for(&ts.config);
    config.catalog.role = CatalogRole::Reader;
    let reader = Registry::open(ts.open(), &config).await.unwrap();
    assert!(reader.is_reader());
    assert_eq!(reader.get_default().await.unwrap().name, "root");

    let err = reader.create_dataset("x", None).await.unwrap_err();
    assert!(matches!(err, CatalogError::FailedPrecondition(_)), "{err}");
    assert!(err.to_string().contains("reader"), "{err}");

    let d = owner.create_dataset("followed", Some(1000)).await.unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while reader.resolve_export("followed").await.is_err() {
        assert!(std::time::Instant::now() < deadline, "the reader never saw the new dataset");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(reader.resolve_export("followed").await.unwrap(), d.id);
    owner.delete_dataset("followed").await.unwrap();
    while reader.resolve_export("followed").await.is_ok() {
        assert!(std::time::Instant::now() < deadline, "the reader never saw the deletion");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    reader.shutdown().await;
    owner.shutdown().await;
}

/// A snapshot and a clone of a dataset holding 200 MiB write next to nothing to the store:
/// counted by the store's request accounting (a wrapper right above the real backend).
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshot_and_clone_of_200_mib_write_almost_nothing() {
    let ts = test_store().await;
    let config = config_for(&ts.config);
    let accounting = ts.open();
    let reg = Registry::open(accounting.clone(), &config).await.unwrap();
    let d = reg.create_dataset("big", None).await.unwrap();
    let fs = reg.filesystem(d.id).await.unwrap();

    // 200 MiB of incompressible data.
    let c = Caller::root();
    let ino = fs.create(&c, ROOT_INO, b"big.bin", NewNode::new(Kind::File, 0o644)).await.unwrap().ino;
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut buf = vec![0u8; slatefs::fs::MAX_IO_SIZE];
    const TOTAL: u64 = 200 << 20;
    let before_data = accounting.request_stats();
    for off in (0..TOTAL).step_by(buf.len()) {
        for w in buf.chunks_exact_mut(8) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            w.copy_from_slice(&x.to_le_bytes());
        }
        fs.write(&c, ino, off, &buf).await.unwrap();
    }
    // Settle the dataset: the WAL and the memtable reach the store (what any dataset does on
    // its own within seconds), so what follows measures the snapshot and clone only.
    fs.flush().await.unwrap();
    fs.db()
        .unwrap()
        .flush_with_options(slatedb::config::FlushOptions { flush_type: slatedb::config::FlushType::MemTable })
        .await
        .unwrap();
    let data_written = (accounting.request_stats() - before_data).bytes_up;
    assert!(data_written >= TOTAL, "the data itself went to the store: {data_written}");
    assert_eq!(fs.usage().await.bytes, TOTAL);

    let before = accounting.request_stats();
    let SnapshotResult::Snapshot(snap) = reg.create_snapshot("big", "snap", true).await.unwrap() else {
        panic!()
    };
    let snapshot_cost = accounting.request_stats() - before;
    assert_eq!(snap.size_bytes, TOTAL);

    let before = accounting.request_stats();
    let clone = reg.clone_snapshot("snap", "big-clone").await.unwrap();
    let clone_cost = accounting.request_stats() - before;

    let before = accounting.request_stats();
    let SnapshotResult::Dataset(ws) = reg.create_snapshot("big", "big-ws", false).await.unwrap() else {
        panic!()
    };
    let writable_cost = accounting.request_stats() - before;

    eprintln!("data: {data_written} bytes up");
    eprintln!("read-only snapshot: {snapshot_cost}");
    eprintln!("clone of it: {clone_cost}");
    eprintln!("writable snapshot: {writable_cost}");
    const TINY: u64 = 256 << 10;
    assert!(snapshot_cost.bytes_up < TINY, "snapshot wrote {} bytes", snapshot_cost.bytes_up);
    assert!(clone_cost.bytes_up < TINY, "clone wrote {} bytes", clone_cost.bytes_up);
    assert!(writable_cost.bytes_up < TINY, "writable snapshot wrote {} bytes", writable_cost.bytes_up);
    // And no file data was read to make them: a clone reads manifests and, when it is
    // opened, the index and filter blocks of the SSTs it shares (~300 KiB here).
    for cost in [snapshot_cost, clone_cost, writable_cost] {
        assert!(cost.bytes_down < 1 << 20, "{cost}");
    }

    // The clone really holds the 200 MiB.
    for id in [clone.id, ws.id] {
        let cfs = reg.filesystem(id).await.unwrap();
        assert_eq!(cfs.usage().await.bytes, TOTAL);
        let (head, _) = cfs.read(&c, ino, TOTAL - 4096, 4096).await.unwrap();
        let (orig, _) = fs.read(&c, ino, TOTAL - 4096, 4096).await.unwrap();
        assert_eq!(head, orig);
    }
    reg.shutdown().await;
}

// ------------------------------------------------------------------------------ admin gRPC

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn admin_api_maps_errors_to_grpc_codes_and_checks_tokens() {
    use tonic::Code;
    let tmp = tempfile::tempdir().unwrap();
    let ts = test_store().await;
    let reg = open_registry(&ts).await;
    let sock = tmp.path().join("admin.sock");
    // A stale socket file from a crashed server is replaced.
    drop(std::os::unix::net::UnixListener::bind(&sock).unwrap());
    assert!(sock.exists());
    let listen = format!("unix://{}", sock.display());
    let listener = AdminListener::bind(&listen, None).await.unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.run(reg.clone(), async move {
        let _ = stop_rx.await;
    }));
    // A second server on the same live socket is refused.
    let err = AdminListener::bind(&listen, None).await.err().expect("socket in use").to_string();
    assert!(err.contains("already listening"), "{err}");

    let mut c = client::connect(&AdminAddr::parse(&listen).unwrap(), None).await.unwrap();
    let d = c
        .create_dataset(proto::CreateDatasetRequest { name: "a".into(), quota_bytes: Some(1 << 30) })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(d.quota_bytes, Some(1 << 30));
    assert_eq!(d.used_inodes, Some(1));

    let code = |r: Result<tonic::Response<proto::Dataset>, tonic::Status>| r.unwrap_err().code();
    for bad in ["..", "a/b", "a\0b", "Upper", "", &"x".repeat(254)] {
        let st = c
            .create_dataset(proto::CreateDatasetRequest { name: bad.into(), quota_bytes: None })
            .await
            .unwrap_err();
        assert_eq!(st.code(), Code::InvalidArgument, "{bad:?}");
        assert!(st.message().contains("[a-z0-9._-]"), "{}", st.message());
    }
    assert_eq!(
        code(c.create_dataset(proto::CreateDatasetRequest { name: "a".into(), quota_bytes: None }).await),
        Code::AlreadyExists
    );
    assert_eq!(code(c.get_dataset(proto::GetDatasetRequest { name: "zz".into() }).await), Code::NotFound);
    let st = c.delete_dataset(proto::DeleteDatasetRequest { name: "root".into() }).await.unwrap_err();
    assert_eq!(st.code(), Code::FailedPrecondition);
    let st = c.delete_snapshot(proto::DeleteSnapshotRequest { name: "zz".into() }).await.unwrap_err();
    assert_eq!(st.code(), Code::NotFound);

    let snap = c
        .create_snapshot(proto::CreateSnapshotRequest { source: "a".into(), name: "s1".into(), readonly: true })
        .await
        .unwrap()
        .into_inner();
    assert!(matches!(snap.result, Some(proto::create_snapshot_response::Result::Snapshot(_))));
    let stats = c.dataset_stats(proto::DatasetStatsRequest { name: "a".into() }).await.unwrap().into_inner();
    assert_eq!((stats.used_inodes, stats.quota_bytes), (1, Some(1 << 30)));
    // The store's request counts since the registry opened it, as the log line has them.
    let sent = stats.store_requests.expect("store requests");
    let now = reg.store().request_stats();
    assert!(sent.put > 0 && sent.get > 0 && sent.put <= now.put && sent.get <= now.get, "{sent:?} vs {now}");
    let cp = c
        .checkpoint_dataset(proto::CheckpointDatasetRequest { name: "a".into(), checkpoint_name: "csi-x".into() })
        .await
        .unwrap()
        .into_inner();
    let cps = reg.store().list_checkpoints(&reg.store().dataset_path(d.id)).await.unwrap();
    assert!(cps.iter().any(|k| k.id.to_string() == cp.checkpoint_id && k.name.as_deref() == Some("csi-x")));
    c.flush_dataset(proto::FlushDatasetRequest { name: "a".into() }).await.unwrap();

    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    assert!(!sock.exists(), "the socket file is removed on shutdown");

    // TCP: refused without a token; with one, every call must carry it.
    let err = AdminListener::bind("tcp://127.0.0.1:0", None).await.err().unwrap().to_string();
    assert!(err.contains("without a token"), "{err}");
    let listener = AdminListener::bind("tcp://127.0.0.1:0", Some("s3cret".into())).await.unwrap();
    let addr = listener.addr().clone();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(listener.run(reg.clone(), async move {
        let _ = stop_rx.await;
    }));
    for token in [None, Some("wrong")] {
        let mut c = client::connect(&addr, token).await.unwrap();
        let st = c.list_datasets(proto::ListDatasetsRequest {}).await.unwrap_err();
        assert_eq!(st.code(), Code::Unauthenticated, "{token:?}");
    }
    let mut c = client::connect(&addr, Some("s3cret")).await.unwrap();
    let names: Vec<String> = c
        .list_datasets(proto::ListDatasetsRequest {})
        .await
        .unwrap()
        .into_inner()
        .datasets
        .into_iter()
        .map(|d| d.name)
        .collect();
    assert_eq!(names, ["root", "a"]);
    stop_tx.send(()).unwrap();
    server.await.unwrap().unwrap();
    reg.shutdown().await;
}

// ------------------------------------------------------------------------------ CLI + serve

#[path = "support/nfs.rs"]
mod nfs;

use server::Server;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// Runs `slatefs dataset --admin <server> ARGS…`.
fn ds(server: &Server, args: &[&str]) -> Out {
    let out = std::process::Command::new(server::binary())
        .arg("dataset")
        .arg("--admin")
        .arg(&server.admin)
        .args(args)
        .output()
        .expect("cannot run slatefs");
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// Runs a command that must succeed.
fn ok(server: &Server, args: &[&str]) -> Out {
    let o = ds(server, args);
    assert_eq!(o.code, 0, "slatefs dataset {args:?} failed: {}\nserver log:\n{}", o.stderr, server.logs());
    o
}

/// Runs a command that must fail with exit code `code` and `msg` in its error.
fn fails(server: &Server, args: &[&str], code: i32, msg: &str) {
    let o = ds(server, args);
    assert_eq!(o.code, code, "slatefs dataset {args:?}: stdout {} stderr {}", o.stdout, o.stderr);
    assert!(o.stderr.contains(msg), "slatefs dataset {args:?}: {msg:?} not in {:?}", o.stderr);
}

fn names(v: &serde_json::Value) -> Vec<String> {
    let mut n: Vec<String> =
        v.as_array().unwrap().iter().map(|d| d["name"].as_str().unwrap().to_string()).collect();
    n.sort();
    n
}

/// A client of the store a server runs on (a local directory, or its S3 server).
fn server_store(server: &Server) -> Store {
    Store::open(&server.storage_config().expect("the test server's store")).unwrap()
}

async fn nfs_put(c: &mut nfs::Client, name: &str, data: &[u8]) -> Result<(), nfs::nfsstat3> {
    let root = c.root.clone();
    let f = match c.lookup(&root, name.as_bytes()).await {
        Ok(f) => f,
        Err(_) => c.create(&root, name.as_bytes(), 0o644).await?,
    };
    c.setattr(&f, nfs::sattr3 { size: nfs::set_size3::Some(0), ..Default::default() }).await?;
    for (i, part) in data.chunks(256 << 10).enumerate() {
        c.write(&f, (i * (256 << 10)) as u64, part).await?;
    }
    Ok(())
}

async fn nfs_get(c: &mut nfs::Client, path: &str) -> Result<Vec<u8>, nfs::nfsstat3> {
    let f = c.walk(path).await?;
    c.read_all(&f).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cli_datasets_snapshots_clones_quota_and_errors_over_a_real_server() {
    let server = Server::start();
    let port = server.nfs_port;
    let store = server_store(&server);

    assert_eq!(ok(&server, &["get-default"]).stdout, "root\n");
    let created = ok(&server, &["create", "data", "--quota", "1Mi", "--output", "json"]).json();
    assert_eq!(created["quota_bytes"], 1 << 20);
    let data_id = created["id"].as_u64().unwrap();

    // Write, snapshot read-only, change the source.
    let mut c = nfs::Client::mount(port, "/data").await.unwrap();
    nfs_put(&mut c, "f", b"monday").await.unwrap();
    let o = ok(&server, &["snapshot", "data", "monday", "--readonly"]);
    assert!(o.stdout.contains("read-only snapshot monday"), "{}", o.stdout);
    nfs_put(&mut c, "f", b"tuesday").await.unwrap();

    // The snapshot's old content: through its own export and through .snapshots/.
    let mut snap = nfs::Client::mount(port, "/data@monday").await.unwrap();
    assert_eq!(nfs_get(&mut snap, "f").await.unwrap(), b"monday");
    let sroot = snap.root.clone();
    assert_eq!(snap.create(&sroot, b"new", 0o644).await.unwrap_err(), nfs::nfsstat3::NFS3ERR_ROFS);
    let sf = snap.walk("f").await.unwrap();
    assert_eq!(snap.write(&sf, 0, b"x").await.unwrap_err(), nfs::nfsstat3::NFS3ERR_ROFS);
    assert_eq!(nfs_get(&mut c, ".snapshots/monday/f").await.unwrap(), b"monday");
    assert_eq!(nfs_get(&mut c, "f").await.unwrap(), b"tuesday");

    // Writable snapshot (the default kind): a dataset; writes do not show through.
    let o = ok(&server, &["snapshot", "data", "data-ws"]);
    assert!(o.stdout.contains("writable snapshot data-ws"), "{}", o.stdout);
    let mut ws = nfs::Client::mount(port, "/data-ws").await.unwrap();
    assert_eq!(nfs_get(&mut ws, "f").await.unwrap(), b"tuesday");
    nfs_put(&mut ws, "f", b"changed in ws").await.unwrap();
    nfs_put(&mut ws, "only-ws", b"x").await.unwrap();
    assert_eq!(nfs_get(&mut c, "f").await.unwrap(), b"tuesday", "the source is unchanged");
    assert_eq!(nfs_get(&mut c, "only-ws").await.unwrap_err(), nfs::nfsstat3::NFS3ERR_NOENT);
    nfs_put(&mut c, "only-src", b"y").await.unwrap();
    assert_eq!(nfs_get(&mut ws, "only-src").await.unwrap_err(), nfs::nfsstat3::NFS3ERR_NOENT);

    // Clone of a read-only snapshot.
    ok(&server, &["clone", "monday", "data-clone"]);
    let mut cl = nfs::Client::mount(port, "/data-clone").await.unwrap();
    assert_eq!(nfs_get(&mut cl, "f").await.unwrap(), b"monday");
    nfs_put(&mut cl, "f", b"clone").await.unwrap();
    assert_eq!(nfs_get(&mut snap, "f").await.unwrap(), b"monday");

    // Listing.
    let list = ok(&server, &["list", "-o", "json"]).json();
    assert_eq!(names(&list), ["data", "data-clone", "data-ws", "root"]);
    let table = ok(&server, &["list"]).stdout;
    assert!(table.starts_with("NAME"), "{table}");
    assert!(table.contains("clone of monday") && table.contains("snapshot of data"), "{table}");
    let snaps = ok(&server, &["list-snapshots", "data", "--output", "json"]).json();
    assert_eq!(names(&snaps), ["monday"]);
    assert_eq!(snaps[0]["clone_count"], 1);
    assert_eq!(names(&ok(&server, &["list-snapshots", "root", "-o", "json"]).json()), Vec::<String>::new());
    let info = ok(&server, &["info", "data", "-o", "json"]).json();
    assert_eq!(info["quota_bytes"], 1 << 20);
    assert!(info["used_bytes"].as_u64().unwrap() > 0);
    assert!(ok(&server, &["info", "data"]).stdout.contains("1.0 MiB"));

    // Quota: writes past it fail and change nothing; raising it lets them through.
    let big = vec![7u8; 1 << 20];
    let err = nfs_put(&mut c, "big", &big).await.unwrap_err();
    assert!(matches!(err, nfs::nfsstat3::NFS3ERR_DQUOT | nfs::nfsstat3::NFS3ERR_NOSPC), "{err:?}");
    let o = ok(&server, &["set-quota", "data", "10Mi"]);
    assert!(o.stdout.contains("10.0 MiB"), "{}", o.stdout);
    nfs_put(&mut c, "big", &big).await.unwrap();
    assert_eq!(nfs_get(&mut c, "big").await.unwrap(), big);
    ok(&server, &["set-quota", "data", "none"]);
    assert!(ok(&server, &["info", "data", "-o", "json"]).json()["quota_bytes"].is_null());

    // Default dataset: also the `/` export.
    ok(&server, &["set-default", "data"]);
    assert_eq!(ok(&server, &["get-default"]).stdout, "data\n");
    let mut slash = nfs::Client::mount(port, "/").await.unwrap();
    assert_eq!(nfs_get(&mut slash, "f").await.unwrap(), b"tuesday");
    fails(&server, &["delete", "data"], 1, "default dataset");
    ok(&server, &["set-default", "root"]);

    // Error cases: exit 1 with the server's message, nothing changed.
    let before = ok(&server, &["list", "-o", "json"]).stdout;
    fails(&server, &["info", "nope"], 1, "dataset \"nope\" does not exist");
    fails(&server, &["delete", "nope"], 1, "does not exist");
    fails(&server, &["snapshot", "nope", "s", "--readonly"], 1, "does not exist");
    fails(&server, &["clone", "nope", "x"], 1, "snapshot \"nope\" does not exist");
    fails(&server, &["delete-snapshot", "nope"], 1, "does not exist");
    fails(&server, &["set-default", "nope"], 1, "does not exist");
    fails(&server, &["set-quota", "nope", "1G"], 1, "does not exist");
    fails(&server, &["list-snapshots", "nope"], 1, "does not exist");
    fails(&server, &["create", "data"], 1, "already exists");
    fails(&server, &["snapshot", "root", "data-ws"], 1, "already exists");
    fails(&server, &["snapshot", "root", "monday", "--readonly"], 1, "snapshot \"monday\" already exists");
    fails(&server, &["clone", "monday", "data"], 1, "already exists");
    fails(&server, &["delete", "root"], 1, "default dataset");
    let long = "a".repeat(254);
    for bad in ["..", "a/b", "Upper", ".hidden", "a@b", long.as_str()] {
        fails(&server, &["create", bad], 1, "[a-z0-9._-]");
        fails(&server, &["snapshot", "data", bad, "--readonly"], 1, "[a-z0-9._-]");
    }
    ok(&server, &["create", &"a".repeat(253)]);
    ok(&server, &["delete", &"a".repeat(253)]);
    // Usage errors: exit 2.
    fails(&server, &["create"], 2, "NAME");
    fails(&server, &["create", "x", "--quota", "10X"], 2, "invalid size");
    fails(&server, &["set-quota", "data", "lots"], 2, "invalid size");
    fails(&server, &["list", "--output", "yaml"], 2, "yaml");
    assert_eq!(ok(&server, &["list", "-o", "json"]).stdout, before, "failed commands changed nothing");

    // Delete with dependants: hidden, not listed or mountable, objects kept.
    let o = ok(&server, &["delete", "data"]);
    assert!(o.stdout.contains("hidden") && o.stdout.contains("data@monday"), "{}", o.stdout);
    assert_eq!(names(&ok(&server, &["list", "-o", "json"]).json()), ["data-clone", "data-ws", "root"]);
    assert!(nfs::Client::mount(port, "/data").await.is_err(), "a deleted dataset does not mount");
    assert!(has_db(&store, data_id).await);
    assert_eq!(nfs_get(&mut cl, "f").await.unwrap(), b"clone", "the clone keeps working");
    assert_eq!(nfs_get(&mut ws, "f").await.unwrap(), b"changed in ws");
    let o = ok(&server, &["delete-snapshot", "monday"]);
    assert!(o.stdout.contains("hidden") && o.stdout.contains("data-clone"), "{}", o.stdout);
    assert!(names(&ok(&server, &["list-snapshots", "-o", "json"]).json()).is_empty());
    ok(&server, &["delete", "data-ws"]);
    assert!(has_db(&store, data_id).await, "the clone still needs the source's objects");
    let o = ok(&server, &["delete", "data-clone"]);
    assert_eq!(o.stdout, "deleted dataset data-clone\n");
    assert!(!has_db(&store, data_id).await, "collected with its last dependant");
    assert_eq!(
        objects_under(&store, "datasets").await,
        objects_under(&store, "datasets/0000000000000001").await,
        "only root's database is left"
    );
    assert_eq!(names(&ok(&server, &["list", "-o", "json"]).json()), ["root"]);
}

/// The dataset ids with a directory in a `file://` store (`None` on other stores, which have
/// no directories): deleted databases must not leave theirs behind.
fn local_dataset_dirs(store: &Store) -> Option<std::collections::BTreeSet<u64>> {
    let dir = store.local_dir()?.join("datasets");
    let entries = match std::fs::read_dir(&dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Some(Default::default()),
        Err(e) => panic!("cannot list {}: {e}", dir.display()),
    };
    Some(
        entries
            .map(|e| {
                let name = e.unwrap().file_name().into_string().unwrap();
                u64::from_str_radix(&name, 16).unwrap_or_else(|_| panic!("{name} in {}", dir.display()))
            })
            .collect(),
    )
}

/// The log of a server's latest start.
fn last_start_log(server: &Server) -> String {
    std::fs::read_to_string(server.log_path()).unwrap()
}

#[path = "datasets/crash.rs"]
mod crash;
#[path = "datasets/deletion.rs"]
mod deletion;
