//! `[storage] compression` on every store slatefs offers (the local store and the tests' S3
//! server, tests/support/s3.rs): file data written through the engine in `sync` mode is stored
//! compressed with the default codec and uncompressed with `none`, reads back byte for byte, and
//! a dataset written with one codec stays readable and writable after a switch to another.

#[path = "support/json_logs.rs"]
mod json_logs;
#[path = "support/s3.rs"]
mod s3;

use std::sync::Arc;
use std::time::Duration;

use futures::TryStreamExt;
use slatedb::config::{FlushOptions, FlushType};
use slatefs::config::{DurabilityMode, StorageConfig};
use slatefs::fs::codec::Kind;
use slatefs::fs::perm::Caller;
use slatefs::fs::{Filesystem, FsOptions, NewNode, ROOT_INO};
use json_logs::json_logs;
use slatefs::store::{dataset_settings, Store};

const DATASET: u64 = 3;


fn with_codec(ts: &s3::TestStore, codec: &str) -> Store {
    let cfg = StorageConfig { compression: Some(codec.to_string()), ..ts.config.clone() };
    Store::open(&cfg).expect("open store")
}

async fn open_fs(store: &Store) -> (slatedb::Db, Arc<Filesystem>) {
    let db = store
        .open_db(&store.dataset_path(DATASET), dataset_settings(Duration::from_millis(50), store.is_local()))
        .await
        .expect("open db");
    let fs = Filesystem::open(db.clone(), FsOptions { durability: DurabilityMode::Sync, ..FsOptions::default() })
        .await
        .expect("open fs");
    (db, fs)
}

/// Writes `data` to a new file `name` in 1 MiB writes, then makes the memtable an L0 table so
/// the bytes are in the store twice: in the WAL and in an SST.
async fn write_file(db: &slatedb::Db, fs: &Filesystem, name: &str, data: &[u8]) -> u64 {
    let caller = Caller::root();
    let file = fs.create(&caller, ROOT_INO, name.as_bytes(), NewNode::new(Kind::File, 0o644)).await.expect("create");
    for (i, piece) in data.chunks(1 << 20).enumerate() {
        fs.write(&caller, file.ino, (i as u64) << 20, piece).await.expect("write");
    }
    fs.flush().await.expect("flush");
    db.flush_with_options(FlushOptions { flush_type: FlushType::MemTable }).await.expect("memtable flush");
    file.ino
}

async fn read_file(fs: &Filesystem, ino: u64, len: usize) -> Vec<u8> {
    let caller = Caller::root();
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let (got, _) = fs.read(&caller, ino, out.len() as u64, 1 << 20).await.expect("read");
        assert!(!got.is_empty(), "short read at {}", out.len());
        out.extend_from_slice(&got);
    }
    out
}

/// Bytes of every object of the dataset's database (WAL, SSTs, manifests).
async fn stored_bytes(store: &Store) -> u64 {
    let listed: Vec<_> = store
        .object_store()
        .list(Some(&store.dataset_path(DATASET)))
        .try_collect()
        .await
        .expect("list");
    listed.iter().map(|m| m.size).sum()
}

async fn stored_after_writing(kind: s3::StoreKind, codec: &str, data: &[u8]) -> u64 {
    let ts = s3::test_store_of(kind).await;
    let store = with_codec(&ts, codec);
    let (db, fs) = open_fs(&store).await;
    let ino = write_file(&db, &fs, "logs.json", data).await;
    assert!(read_file(&fs, ino, data.len()).await == data, "{codec}: data read back differs");
    db.close().await.expect("close");
    let stored = stored_bytes(&store).await;
    // Read back once more from the store alone, after a reopen.
    let (db, fs) = open_fs(&store).await;
    assert!(read_file(&fs, ino, data.len()).await == data, "{codec}: data read back after reopen differs");
    db.close().await.expect("close");
    stored
}

async fn compressible_data_is_stored_compressed(kind: s3::StoreKind) {
    let data = json_logs(16 << 20, 1);
    let none = stored_after_writing(kind, "none", &data).await;
    let lz4 = stored_after_writing(kind, "lz4", &data).await;
    let zstd = stored_after_writing(kind, "zstd", &data).await;
    eprintln!(
        "{kind:?}: {} MiB of JSON logs stored as none {none} B, lz4 {lz4} B ({:.2}x), zstd {zstd} B ({:.2}x)",
        data.len() >> 20,
        none as f64 / lz4 as f64,
        none as f64 / zstd as f64
    );
    // Uncompressed, the WAL and the L0 table each hold the data once.
    assert!(none >= data.len() as u64, "none: {none} bytes stored for {} written", data.len());
    assert!(lz4 * 2 < none, "lz4 stored {lz4} bytes, uncompressed {none}");
    assert!(zstd * 2 < none, "zstd stored {zstd} bytes, uncompressed {none}");
}

/// Codec `first` for one file, then `second` for another: both read back after the switch,
/// and the file written first can still be overwritten.
async fn switching_codec_keeps_data_readable(kind: s3::StoreKind, first: &str, second: &str) {
    let ts = s3::test_store_of(kind).await;
    let a = json_logs(3 << 20, 2);
    let b = json_logs(3 << 20, 3);
    let ino_a = {
        let store = with_codec(&ts, first);
        let (db, fs) = open_fs(&store).await;
        let ino = write_file(&db, &fs, "a", &a).await;
        db.close().await.expect("close");
        ino
    };
    let store = with_codec(&ts, second);
    let (db, fs) = open_fs(&store).await;
    assert!(read_file(&fs, ino_a, a.len()).await == a, "{first} -> {second}: old file differs");
    let ino_b = write_file(&db, &fs, "b", &b).await;
    fs.write(&Caller::root(), ino_a, 1 << 20, &b[..4096]).await.expect("overwrite");
    fs.flush().await.expect("flush");
    let mut a_now = a.clone();
    a_now[1 << 20..(1 << 20) + 4096].copy_from_slice(&b[..4096]);
    db.close().await.expect("close");
    let (db, fs) = open_fs(&store).await;
    assert!(read_file(&fs, ino_a, a.len()).await == a_now, "{first} -> {second}: overwritten file differs");
    assert!(read_file(&fs, ino_b, b.len()).await == b, "{first} -> {second}: new file differs");
    db.close().await.expect("close");
}

#[test]
fn an_unknown_codec_is_refused_with_the_choices() {
    let cfg = StorageConfig { compression: Some("brotli".into()), ..StorageConfig::default() };
    let err = Store::open(&cfg).err().expect("brotli refused").to_string();
    assert!(err.contains("brotli") && err.contains("lz4, zstd, snappy, none"), "{err}");
    let cfg = StorageConfig { compression: Some("NONE".into()), ..StorageConfig::default() };
    assert_eq!(cfg.compression_codec().expect("NONE accepted"), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compressible_data_is_stored_compressed_on_the_configured_store() {
    compressible_data_is_stored_compressed(s3::StoreKind::from_env()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_uncompressed_reads_back_after_switching_to_lz4() {
    switching_codec_keeps_data_readable(s3::StoreKind::from_env(), "none", "lz4").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn data_written_with_zstd_reads_back_after_switching_to_snappy() {
    switching_codec_keeps_data_readable(s3::StoreKind::from_env(), "zstd", "snappy").await;
}
