//! The store's layout format (`slatefs-format.json`, src/store/format.rs) through a real
//! `slatefs serve` on the configured store (local directory, or the tests' S3 server under
//! `SLATEFS_TEST_STORE=s3`): recorded on a new store, recorded again on a store made before
//! the marker existed without touching its data, and a newer or unreadable marker refused at
//! start with an error that says what to do, leaving the store as it was.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use nfs::{pattern, Client};
use object_store::{ObjectStoreExt, PutPayload};
use server::{binary, free_port, Server};
use slatefs::store::Store;

const MARKER: &str = "slatefs-format.json";

fn store_of(server: &Server) -> Store {
    Store::open(&server.storage_config().expect("a store the tests started")).unwrap()
}

async fn marker(store: &Store) -> Option<serde_json::Value> {
    match store.object_store().get(&store.path(MARKER)).await {
        Ok(got) => Some(serde_json::from_slice(&got.bytes().await.unwrap()).unwrap()),
        Err(object_store::Error::NotFound { .. }) => None,
        Err(e) => panic!("{e}"),
    }
}

async fn put_marker(store: &Store, body: &[u8]) {
    store.object_store().put(&store.path(MARKER), PutPayload::from(Bytes::copy_from_slice(body))).await.unwrap();
}

/// `slatefs serve` on `server`'s store and config until it exits (it must, within 60 s);
/// returns its exit success and its log.
fn serve_once(server: &Server) -> (bool, String) {
    let mut cmd = Command::new(binary());
    cmd.args(["serve", "--store", &server.store_url, "--nfs-listen", &format!("127.0.0.1:{}", free_port())])
        .arg("--admin-listen")
        .arg(format!("unix://{}", server.path().join("refused.sock").display()));
    let conf = server.path().join("config.toml");
    if conf.exists() {
        cmd.arg("-c").arg(&conf);
    }
    let log = server.path().join("refused.log");
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("slatefs serve did not exit:\n{}", std::fs::read_to_string(&log).unwrap_or_default());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    (status.success(), std::fs::read_to_string(&log).unwrap_or_default())
}

async fn write_file(server: &Server, data: &[u8]) {
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"kept", 0o644).await.unwrap();
    c.write(&f, 0, data).await.unwrap();
}

async fn read_file(server: &Server) -> Vec<u8> {
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.lookup(&root, b"kept").await.unwrap();
    c.read_all(&f).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_new_store_records_format_1_and_a_store_from_before_the_marker_keeps_its_data() {
    let mut server = Server::start();
    let store = store_of(&server);
    let m = marker(&store).await.expect("the marker is written at start");
    assert_eq!(m["format"], 1, "{m}");
    assert_eq!(m["written_by"], env!("CARGO_PKG_VERSION"), "{m}");

    let data = pattern(3, 300_000);
    write_file(&server, &data).await;
    assert!(server.stop());
    // A store made by a slatefs from before the marker: the same layout, no marker.
    store.object_store().delete(&store.path(MARKER)).await.unwrap();
    assert!(marker(&store).await.is_none());
    server.restart();
    assert_eq!(read_file(&server).await, data);
    assert_eq!(marker(&store).await.expect("written again")["format"], 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_newer_or_unreadable_format_is_refused_at_start_and_nothing_changes() {
    let mut server = Server::start();
    let store = store_of(&server);
    let data = pattern(4, 100_000);
    write_file(&server, &data).await;
    assert!(server.stop());

    let newer = br#"{"format":2,"written_by":"9.9.9"}"#;
    put_marker(&store, newer).await;
    let (ok, log) = serve_once(&server);
    assert!(!ok, "a newer format must be refused:\n{log}");
    assert!(log.contains("layout format 2") && log.contains("9.9.9") && log.contains("upgrade slatefs"), "{log}");
    assert!(!log.contains("slatefs serving"), "{log}");
    let after = store.object_store().get(&store.path(MARKER)).await.unwrap().bytes().await.unwrap();
    assert_eq!(after.as_ref(), newer, "the marker is left as it was");

    put_marker(&store, b"not json").await;
    let (ok, log) = serve_once(&server);
    assert!(!ok, "{log}");
    assert!(log.contains("is not a slatefs format marker"), "{log}");

    put_marker(&store, br#"{"format":1}"#).await;
    server.restart();
    assert_eq!(read_file(&server).await, data, "the refused starts changed nothing");
}
