//! `slatefs serve` on S3, end to end: a real S3 server on 127.0.0.1 (tests/support/s3.rs,
//! in this process, over HTTP), a real `slatefs serve` process configured through a config
//! file (`[storage] endpoint, region, allow_http, path_style, credentials_file`), and a real
//! NFSv3 client over TCP.
//!
//! - writes and reads through NFS land in the bucket; kill -9 of the server loses nothing it
//!   acknowledged, and the client's handles work after the restart;
//! - wrong credentials, a missing bucket and a server without conditional writes stop `serve`
//!   at start-up with a message that names the cause;
//! - a second server opening the same dataset fences the first, which stops acknowledging
//!   writes (NFS3ERR_IO, "dataset fenced" in its log) while the second has every byte the
//!   first acknowledged;
//! - a 30 s store outage in the middle of an NFS write loop: calls answer NFS3ERR_JUKEBOX, then
//!   NFS3ERR_IO after `io_error_after_ms`, never a silent loss; the loop finishes once the
//!   store is back (no restart) and every acknowledged byte is there, also after kill -9;
//! - reads that need the store while it is down (LOOKUP, GETATTR, READ of data not in memory)
//!   answer NFS3ERR_JUKEBOX within `unavailable_after_ms`, NFS3ERR_IO after
//!   `io_error_after_ms`, and work again once it is back;
//! - the on-disk read cache serves reads of data in SSTs while the store is down, and its
//!   hits and misses are in the server's request log line.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/s3.rs"]
mod s3;
#[path = "support/server.rs"]
mod server;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nfs::*;
use s3::S3Server;
use server::{Server, ServerOptions};

const PREFIX: &str = "e2e";


/// A config file body for `s3://<bucket>/<prefix>` on `s3`, credentials in a file under `dir`,
/// with more `[storage]` lines and more sections.
fn s3_config(s3: &S3Server, dir: &Path, storage_extra: &str, rest: &str) -> String {
    let creds = s3.write_credentials_file(dir, &s3.access_key, &s3.secret_key);
    s3_config_with(s3, &s3.bucket, &creds, storage_extra, rest)
}

fn s3_config_with(s3: &S3Server, bucket: &str, creds: &Path, storage_extra: &str, rest: &str) -> String {
    format!(
        "[storage]\nurl = \"s3://{bucket}/{PREFIX}\"\nendpoint = \"{}\"\nregion = \"{}\"\n\
         allow_http = true\npath_style = true\ncredentials_file = \"{}\"\n{storage_extra}\n{rest}\n",
        s3.endpoint,
        s3.region,
        creds.display()
    )
}

fn s3_server_opts(s3: &S3Server, config: String, extra_args: &[&str]) -> ServerOptions {
    ServerOptions {
        store_url: Some(format!("s3://{}/{PREFIX}", s3.bucket)),
        config: Some(config),
        extra_args: extra_args.iter().map(|s| s.to_string()).collect(),
        // Keep the AWS SDK-style environment out of the picture: the config file decides.
        env: vec![
            ("AWS_ACCESS_KEY_ID".into(), String::new()),
            ("AWS_SECRET_ACCESS_KEY".into(), String::new()),
        ],
        ..Default::default()
    }
}

/// Files under `dir`, recursively, relative to it.
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(rd) = std::fs::read_dir(&d) else { continue };
        for e in rd.flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p.strip_prefix(dir).unwrap().to_path_buf());
            }
        }
    }
    out
}

/// Bounds a client call that may hang (a killed or fenced server, a store outage).
async fn within<T>(secs: u64, what: &str, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .unwrap_or_else(|_| panic!("{what}: no answer within {secs}s"))
}

// ------------------------------------------------------------------------------------------
// 1. Through NFS onto S3; kill -9 loses nothing acknowledged.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nfs_on_s3_kill9_loses_nothing_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let mut server = Server::start_with(s3_server_opts(&s3, s3_config(&s3, tmp.path(), "", ""), &[]));
    let port = server.nfs_port;

    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let dir = c.mkdir(&root, b"d", 0o755).await.unwrap();
    let small = c.create(&dir, b"small", 0o644).await.unwrap();
    c.write(&small, 0, b"hello from S3").await.unwrap();
    assert_eq!(c.read_all(&small).await.unwrap(), b"hello from S3");
    let big = c.create(&dir, b"big", 0o644).await.unwrap();
    let data = pattern(1, 3 << 20);
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        c.write(&big, (i << 20) as u64, chunk).await.unwrap();
    }
    assert_eq!(c.read_all(&big).await.unwrap(), data);

    // It is all in the bucket, under the prefix: the catalog, the dataset's WAL, the secret.
    let objects = files_under(&s3.dir.join(&s3.bucket));
    let names: Vec<String> = objects.iter().map(|p| p.display().to_string()).collect();
    assert!(names.iter().any(|n| n.starts_with(&format!("{PREFIX}/catalog/"))), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with(&format!("{PREFIX}/datasets/")) && n.contains("/wal/")), "{names:?}");
    assert!(names.iter().any(|n| n.starts_with(&format!("{PREFIX}/secrets/"))), "{names:?}");
    assert!(!names.iter().any(|n| n.contains(".slatefs-probe")), "start-up check left objects: {names:?}");

    // A writer and a creator run; kill -9 in the middle.
    let writer = {
        let f = big.clone();
        tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            let mut acked = Vec::new();
            for i in 0u64..100_000 {
                match tokio::time::timeout(Duration::from_secs(20), c.try_write(&f, (3 << 20) + i * 4096, &pattern(100 + i, 4096))).await {
                    Ok(Ok(Ok(_))) => acked.push(i),
                    _ => break,
                }
            }
            acked
        })
    };
    let creator = {
        let dir = dir.clone();
        tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            let mut made = Vec::new();
            for i in 0u64..100_000 {
                let name = format!("f{i}");
                match tokio::time::timeout(Duration::from_secs(20), c.try_create(&dir, name.as_bytes())).await {
                    Ok(Ok(Ok(()))) => made.push(name),
                    _ => break,
                }
            }
            made
        })
    };
    tokio::time::sleep(Duration::from_millis(2500)).await;
    server.kill9();
    let acked = writer.await.unwrap();
    let made = creator.await.unwrap();
    assert!(acked.len() > 10 && made.len() > 10, "the workload ran ({} writes, {} creates)", acked.len(), made.len());

    server.restart();
    let mut c = within(30, "mount after restart", Client::mount(port, "/")).await.unwrap();
    assert_eq!(c.root, root, "the root handle is the same after restart");
    // Old handles, new process.
    assert_eq!(c.read_all(&small).await.unwrap(), b"hello from S3");
    let size = c.getattr(&big).await.unwrap().size;
    assert!(size >= (3 << 20) + acked.len() as u64 * 4096, "size {size} < acknowledged writes");
    assert_eq!(c.read(&big, 0, 1 << 20).await.unwrap().0, data[..1 << 20]);
    for &i in &acked {
        let (got, _) = c.read(&big, (3 << 20) + i * 4096, 4096).await.unwrap();
        assert_eq!(got, pattern(100 + i, 4096), "acknowledged write {i} lost");
    }
    for name in &made {
        c.lookup(&dir, name.as_bytes()).await.unwrap_or_else(|e| panic!("acknowledged create {name} lost: {e:?}"));
    }
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let logs = server.logs();
    assert!(logs.contains("object store requests this run"), "request accounting in the log:\n{logs}");
}

// ------------------------------------------------------------------------------------------
// 2. Start-up errors.

/// Runs `slatefs serve` with `config`, which must exit at start-up: (exit code, stderr).
fn serve_must_fail(dir: &Path, url: &str, config: &str) -> (Option<i32>, String) {
    let cfg = dir.join(format!("config-{}.toml", rand_suffix()));
    std::fs::write(&cfg, config).unwrap();
    let mut child = Command::new(server::binary())
        .arg("serve")
        .arg("-c")
        .arg(&cfg)
        .arg("--store")
        .arg(url)
        .arg("--nfs-listen")
        .arg(format!("127.0.0.1:{}", server::free_port()))
        .arg("--admin-listen")
        .arg(format!("unix://{}", dir.join(format!("admin-{}.sock", rand_suffix())).display()))
        .env("AWS_ACCESS_KEY_ID", "")
        .env("AWS_SECRET_ACCESS_KEY", "")
        .env("RUST_LOG", "info,slatedb=warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
            return (status.code(), err);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("slatefs serve did not exit at start-up within 60s");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_up_refuses_wrong_credentials_a_missing_bucket_and_no_conditional_writes() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let url = format!("s3://{}/{PREFIX}", s3.bucket);

    // Wrong secret.
    let creds = s3.write_credentials_file(tmp.path(), &s3.access_key, "not-the-secret");
    let started = Instant::now();
    let (code, err) = serve_must_fail(tmp.path(), &url, &s3_config_with(&s3, &s3.bucket, &creds, "", ""));
    assert_eq!(code, Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains("rejected the credentials"), "stderr:\n{err}");
    assert!(started.elapsed() < Duration::from_secs(30), "the error comes at once, not after retries");
    assert!(!err.contains("slatefs serving"), "it must not start serving:\n{err}");

    // Unknown access key.
    let creds = s3.write_credentials_file(tmp.path(), "nobody", &s3.secret_key);
    let (code, err) = serve_must_fail(tmp.path(), &url, &s3_config_with(&s3, &s3.bucket, &creds, "", ""));
    assert_eq!(code, Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains("rejected the credentials"), "stderr:\n{err}");

    // Missing bucket.
    let creds = s3.write_credentials_file(tmp.path(), &s3.access_key, &s3.secret_key);
    let (code, err) = serve_must_fail(
        tmp.path(),
        &format!("s3://no-such-bucket/{PREFIX}"),
        &s3_config_with(&s3, "no-such-bucket", &creds, "", ""),
    );
    assert_eq!(code, Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains("does not exist"), "stderr:\n{err}");
    assert!(err.contains("no-such-bucket"), "the message names the store:\n{err}");

    // Nothing listens there.
    let dead = format!("http://127.0.0.1:{}", server::free_port());
    let body = s3_config_with(&s3, &s3.bucket, &creds, "", "").replace(&s3.endpoint, &dead);
    let (code, err) = serve_must_fail(tmp.path(), &url, &body);
    assert_eq!(code, Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains("cannot reach the object store"), "stderr:\n{err}");

    // A server that ignores If-None-Match (as Garage does).
    let bad = s3::start_s3_with(
        &tmp.path().join("s3-bad"),
        s3::ServerOptions { honour_conditions: false, ..Default::default() },
    )
    .await;
    let creds = bad.write_credentials_file(tmp.path(), &bad.access_key, &bad.secret_key);
    let (code, err) = serve_must_fail(tmp.path(), &url, &s3_config_with(&bad, &bad.bucket, &creds, "", ""));
    assert_eq!(code, Some(1), "exit code; stderr:\n{err}");
    assert!(err.contains("does not support conditional writes") && err.contains("If-None-Match"), "stderr:\n{err}");

    // Nothing was created in the good bucket by any of the failed starts.
    assert!(files_under(&s3.dir.join(&s3.bucket)).is_empty());
}

// ------------------------------------------------------------------------------------------
// 3. Fencing.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_fences_the_first_and_has_everything_it_acknowledged() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let a = Server::start_with(s3_server_opts(&s3, s3_config(&s3, tmp.path(), "", ""), &[]));
    let port_a = a.nfs_port;
    let mut ca = within(30, "mount A", Client::mount(port_a, "/")).await.unwrap();
    let root = ca.root.clone();
    let f = ca.create(&root, b"log", 0o644).await.unwrap();
    ca.write(&f, 0, &pattern(0, 4096)).await.unwrap();

    // A keeps writing while B starts and takes the dataset over.
    let writer = {
        let f = f.clone();
        tokio::spawn(async move {
            let mut c = Client::mount(port_a, "/").await.unwrap();
            let mut acked = vec![0u64];
            let mut refused = None;
            for i in 1u64..1_000_000 {
                match tokio::time::timeout(Duration::from_secs(30), c.try_write(&f, i * 4096, &pattern(i, 4096))).await {
                    Ok(Ok(Ok(_))) => acked.push(i),
                    Ok(Ok(Err(stat))) => {
                        refused = Some(stat);
                        break;
                    }
                    Ok(Err(e)) => panic!("transport error from A: {e}"),
                    Err(_) => panic!("A did not answer a WRITE within 30s"),
                }
            }
            (acked, refused)
        })
    };
    tokio::time::sleep(Duration::from_millis(1000)).await;

    // B: another process, other ports, the same store; it follows the catalog A owns.
    let b = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), "", "[catalog]\nrole = \"reader\"\n"),
        &[],
    ));
    let mut cb = within(30, "mount B", Client::mount(b.nfs_port, "/")).await.unwrap();
    assert_eq!(cb.root, root, "the same dataset, the same handles on either server");
    // B writes: it has opened the dataset as its writer, fencing A.
    let g = within(30, "create on B", cb.create(&root, b"from-b", 0o644)).await.unwrap();
    within(30, "write on B", cb.write(&g, 0, b"written by B")).await.unwrap();

    let (acked, refused) = within(60, "A's writer", writer).await.unwrap();
    assert_eq!(refused, Some(nfsstat3::NFS3ERR_IO), "A refuses writes once fenced ({} acknowledged)", acked.len());
    assert!(acked.len() > 5, "A acknowledged writes before B took over ({})", acked.len());

    // A stays refused, for writes and namespace changes alike, and says why in its log.
    assert_eq!(within(30, "A write", ca.write(&f, 0, b"x")).await.unwrap_err(), nfsstat3::NFS3ERR_IO);
    assert_eq!(within(30, "A create", ca.create(&root, b"from-a", 0o644)).await.unwrap_err(), nfsstat3::NFS3ERR_IO);
    let logs = a.logs();
    assert!(logs.contains("dataset fenced"), "A's log says it was fenced:\n{logs}");

    // B has every byte A acknowledged, and its own.
    let size = within(30, "getattr on B", cb.getattr(&f)).await.unwrap().size;
    assert!(size >= acked.len() as u64 * 4096, "size {size} on B < what A acknowledged");
    for &i in &acked {
        let (got, _) = within(30, "read on B", cb.read(&f, i * 4096, 4096)).await.unwrap();
        assert_eq!(got, pattern(i, 4096), "write {i} acknowledged by A is not on B");
    }
    assert_eq!(within(30, "read on B", cb.read_all(&g)).await.unwrap(), b"written by B");
    assert_eq!(cb.lookup(&root, b"from-a").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    // B goes on working.
    within(30, "write on B", cb.write(&g, 12, b", and more")).await.unwrap();
    assert_eq!(cb.read_all(&g).await.unwrap(), b"written by B, and more");
}

// ------------------------------------------------------------------------------------------
// 4. A store outage in the middle of an NFS write loop.

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_outage_in_an_nfs_write_loop_loses_nothing_and_service_resumes() {
    const BLOCK: usize = 32 * 1024; // one chunk: every write makes a fresh chunk
    const BLOCKS: u64 = 400;
    const OUTAGE: Duration = Duration::from_secs(30);
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let down = tmp.path().join("store-down");
    let spec = format!("outage-file={}", down.display());
    let mut server = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), "unavailable_after_ms = 1000\nio_error_after_ms = 8000", ""),
        &["--inject-faults", &spec],
    ));
    let port = server.nfs_port;
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"loop", 0o644).await.unwrap();

    let started = Instant::now();
    let writer = {
        let f = f.clone();
        tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            let (mut jukebox, mut io, mut retried_ok) = (0u32, 0u32, 0u32);
            let mut acked_at = Vec::new();
            for i in 0..BLOCKS {
                let mut failed_before = false;
                loop {
                    assert!(started.elapsed() < Duration::from_secs(180), "the write loop did not finish");
                    let r = tokio::time::timeout(Duration::from_secs(30), c.try_write(&f, i * BLOCK as u64, &pattern(i, BLOCK)))
                        .await
                        .unwrap_or_else(|_| panic!("WRITE {i} hung for 30s: neither an answer nor JUKEBOX"));
                    match r {
                        Ok(Ok(n)) => {
                            assert_eq!(n as usize, BLOCK);
                            retried_ok += failed_before as u32;
                            acked_at.push(started.elapsed());
                            break;
                        }
                        // What a client does with these: retry (JUKEBOX after a pause, as the
                        // kernel does; EIO as an application that retries would).
                        Ok(Err(nfsstat3::NFS3ERR_JUKEBOX)) => jukebox += 1,
                        Ok(Err(nfsstat3::NFS3ERR_IO)) => io += 1,
                        Ok(Err(other)) => panic!("WRITE {i}: unexpected {other:?}"),
                        Err(e) => panic!("WRITE {i}: transport error {e}"),
                    }
                    failed_before = true;
                    tokio::time::sleep(Duration::from_millis(250)).await;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (jukebox, io, retried_ok, acked_at)
        })
    };
    tokio::time::sleep(Duration::from_secs(2)).await;
    std::fs::write(&down, b"").unwrap();
    let outage_start = started.elapsed();
    tokio::time::sleep(OUTAGE).await;
    std::fs::remove_file(&down).unwrap();
    let outage_end = started.elapsed();

    let (jukebox, io, retried_ok, acked_at) = within(240, "the write loop", writer).await.unwrap();
    assert_eq!(acked_at.len() as u64, BLOCKS, "the loop finished");
    assert!(jukebox > 0, "JUKEBOX while the store was down");
    assert!(io > 0, "EIO once the store had been away for io_error_after_ms (8s of a 30s outage)");
    assert!(retried_ok > 0, "a retried write succeeded after the outage");
    // Nothing was acknowledged while the store was down (a little slack for the outage file
    // being checked every 100 ms and for a reply in flight).
    let slack = Duration::from_millis(400);
    let during: Vec<_> = acked_at
        .iter()
        .filter(|t| **t > outage_start + slack && **t + slack < outage_end)
        .collect();
    assert!(during.is_empty(), "writes acknowledged while the store was down: {during:?}");
    assert!(acked_at.iter().any(|t| *t > outage_end), "the loop went on after the outage");

    // Every acknowledged byte is there, without a restart...
    let want: Vec<u8> = (0..BLOCKS).flat_map(|i| pattern(i, BLOCK)).collect();
    assert_eq!(within(60, "read back", c.read_all(&f)).await.unwrap(), want);
    let logs = server.logs();
    assert!(logs.contains("object store not answering"), "the outage is in the log:\n{logs}");
    assert!(logs.contains("object store back"), "the recovery is in the log:\n{logs}");
    // ...and it is durable: kill -9, restart, the same bytes through the same handle.
    server.kill9();
    server.restart();
    let mut c = within(30, "mount after restart", Client::mount(port, "/")).await.unwrap();
    assert_eq!(within(60, "read after restart", c.read_all(&f)).await.unwrap(), want);
}

// ------------------------------------------------------------------------------------------
// 5. Reads during an outage.

/// One call against a store that is down: its answer and how long it took.
async fn timed<T>(what: &str, f: impl std::future::Future<Output = Result<T, nfsstat3>>) -> (Result<T, nfsstat3>, Duration) {
    let t = Instant::now();
    let r = within(30, what, f).await;
    (r, t.elapsed())
}

/// Calls that only read, but need data the server does not hold in memory, while the store is
/// down: NFS3ERR_JUKEBOX after `unavailable_after_ms` (not a hang), NFS3ERR_IO once the store
/// has been away `io_error_after_ms`; the same calls succeed once it is back, without a
/// restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reads_during_an_outage_answer_jukebox_then_io_error_and_work_again() {
    const UNAVAILABLE_AFTER: Duration = Duration::from_millis(1500);
    const IO_ERROR_AFTER: Duration = Duration::from_secs(8);
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let down = tmp.path().join("store-down");
    let spec = format!("outage-file={}", down.display());
    let storage = format!(
        "unavailable_after_ms = {}\nio_error_after_ms = {}",
        UNAVAILABLE_AFTER.as_millis(),
        IO_ERROR_AFTER.as_millis()
    );
    let mut server = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), &storage, ""),
        &["--inject-faults", &spec],
    ));
    let port = server.nfs_port;
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let dir = c.mkdir(&root, b"d", 0o755).await.unwrap();
    let f = c.create(&dir, b"f", 0o644).await.unwrap();
    let data = pattern(7, 2 << 20);
    for (i, chunk) in data.chunks(256 << 10).enumerate() {
        c.write(&f, (i * (256 << 10)) as u64, chunk).await.unwrap();
    }
    // A clean stop writes the memtable out as an SST; a new process holds none of it.
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    server.restart();
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    assert_eq!(c.root, root);
    // Opens the dataset (opening one while the store is down is not bounded yet: it waits).
    within(30, "GETATTR of the root", c.getattr(&root)).await.unwrap();

    std::fs::write(&down, b"").unwrap();
    let outage_start = Instant::now();
    tokio::time::sleep(Duration::from_millis(300)).await;
    // File data not read since the restart is only in the store (each 32 KiB chunk is a block
    // of its own). Metadata may be: it sits together at the end of the SST, in blocks the
    // open may already have read; either way the answer comes within the limit.
    let slack = Duration::from_millis(2500);
    let (r, took) = timed("READ", c.read(&f, 1 << 20, 64 << 10)).await;
    assert_eq!(r.unwrap_err(), nfsstat3::NFS3ERR_JUKEBOX, "READ while the store is down");
    assert!(took >= UNAVAILABLE_AFTER - Duration::from_millis(100) && took < UNAVAILABLE_AFTER + slack, "READ took {took:?}");
    let (r, took) = timed("LOOKUP", c.lookup(&dir, b"f")).await;
    assert!(matches!(&r, Ok(h) if *h == f) || r == Err(nfsstat3::NFS3ERR_JUKEBOX), "LOOKUP: {r:?}");
    assert!(took < UNAVAILABLE_AFTER + slack, "LOOKUP took {took:?}");
    let (r, took) = timed("GETATTR", c.getattr(&f)).await;
    assert!(matches!(&r, Ok(a) if a.size == data.len() as u64) || matches!(r, Err(nfsstat3::NFS3ERR_JUKEBOX)), "GETATTR: {:?}", r.as_ref().map(|a| a.size));
    assert!(took < UNAVAILABLE_AFTER + slack, "GETATTR took {took:?}");

    // Still down after io_error_after: an I/O error, and in the same bounded time.
    let mut answers = Vec::new();
    loop {
        let (r, took) = timed("READ", c.read(&f, 0, 64 << 10)).await;
        assert!(took < UNAVAILABLE_AFTER + slack, "READ took {took:?}");
        let stat = r.unwrap_err();
        answers.push(stat);
        if stat == nfsstat3::NFS3ERR_IO {
            break;
        }
        assert_eq!(stat, nfsstat3::NFS3ERR_JUKEBOX);
        assert!(outage_start.elapsed() < IO_ERROR_AFTER + Duration::from_secs(10), "no NFS3ERR_IO after {:?}: {answers:?}", outage_start.elapsed());
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert!(outage_start.elapsed() >= IO_ERROR_AFTER, "NFS3ERR_IO before io_error_after: {answers:?}");

    // The store returns: the same calls work (the client retrying as it does on JUKEBOX).
    std::fs::remove_file(&down).unwrap();
    let back = Instant::now();
    let got = loop {
        match within(30, "READ after the outage", c.read_all(&f)).await {
            Ok(got) => break got,
            Err(nfsstat3::NFS3ERR_JUKEBOX | nfsstat3::NFS3ERR_IO) if back.elapsed() < Duration::from_secs(30) => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("READ {:?} after the store came back: {e:?}", back.elapsed()),
        }
    };
    assert!(got == data, "the file reads back after the outage");
    assert_eq!(within(30, "LOOKUP", c.lookup(&dir, b"f")).await.unwrap(), f);
    assert_eq!(within(30, "GETATTR", c.getattr(&f)).await.unwrap().size, data.len() as u64);
    assert!(server.stop(), "clean stop:\n{}", server.logs());
}

// ------------------------------------------------------------------------------------------
// 6. The read cache.

/// The read cache's (hits, misses) in the "object store requests this run" line a server logs
/// when it stops: start `n` of `server`.
fn cache_counts(server: &Server, n: u32) -> (u64, u64) {
    let log = std::fs::read_to_string(server.path().join(format!("serve-{n}.log"))).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("object store requests this run"))
        .unwrap_or_else(|| panic!("no request line in the log of start {n}:\n{log}"));
    let count = |key: &str| -> u64 {
        let at = line.find(key).unwrap_or_else(|| panic!("no {key} in {line:?}")) + key.len();
        line[at..].split(|c: char| !c.is_ascii_digit()).next().unwrap().parse().unwrap()
    };
    (count("read cache hits="), count(" misses="))
}

/// Data in SSTs is read through the on-disk cache: with the cache warm, a fresh process reads
/// a whole file while the store is down. Each process logs its cache hits and misses: the
/// one that warms the cache misses, the one that reads while the store is down only hits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_cache_serves_sst_reads_while_the_store_is_down() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    let cache = tmp.path().join("cache");
    let down = tmp.path().join("store-down");
    let spec = format!("outage-file={}", down.display());
    let storage = format!(
        "cache_dir = \"{}\"\ncache_size = \"1GiB\"\nunavailable_after_ms = 1000\nio_error_after_ms = 0",
        cache.display()
    );
    let mut server = Server::start_with(s3_server_opts(
        &s3,
        s3_config(&s3, tmp.path(), &storage, ""),
        &["--inject-faults", &spec],
    ));
    let port = server.nfs_port;
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"big", 0o644).await.unwrap();
    // More than a memtable (SlateDB's l0_sst_size_bytes, 64 MiB) so that most of it is in SSTs.
    let mib = 96u64;
    for i in 0..mib {
        within(60, "write", c.write(&f, i << 20, &pattern(i, 1 << 20))).await.unwrap();
    }
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let ssts = files_under(&s3.dir.join(&s3.bucket))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("/compacted/") && p.to_string_lossy().ends_with(".sst"))
        .count();
    assert!(ssts > 0, "the data reached SSTs");

    // Warm the cache: a new process reads the file once.
    server.restart();
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    for i in 0..mib {
        let (got, _) = within(60, "read", c.read(&f, i << 20, 1 << 20)).await.unwrap();
        assert!(got == pattern(i, 1 << 20), "MiB {i} reads back");
    }
    let cached: Vec<PathBuf> = files_under(&cache);
    assert!(cached.iter().any(|p| p.to_string_lossy().contains("/datasets/") && p.to_string_lossy().contains("_part")), "SST parts cached under the dataset's path: {cached:?}");
    let store_dirs: Vec<_> = std::fs::read_dir(&cache).unwrap().flatten().map(|e| e.file_name()).collect();
    assert_eq!(store_dirs.len(), 1, "one directory per store: {store_dirs:?}");
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let (_, warm_misses) = cache_counts(&server, 2);
    assert!(warm_misses > 0, "the first reader fills the cache");

    // A fresh process (nothing in memory) opens the dataset, then the store goes down: the
    // whole file still reads, from the disk cache.
    server.restart();
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    within(30, "getattr", c.getattr(&f)).await.unwrap();
    std::fs::write(&down, b"").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    for i in 0..mib {
        let (got, _) = within(20, "read from the cache while the store is down", c.read(&f, i << 20, 1 << 20)).await.unwrap();
        assert!(got == pattern(i, 1 << 20), "MiB {i} reads back from the cache");
    }
    std::fs::remove_file(&down).unwrap();
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    let (hits, misses) = cache_counts(&server, 3);
    assert_eq!(misses, 0, "everything came from the cache");
    assert!(hits >= warm_misses, "the parts the first reader fetched are hits now: {hits} < {warm_misses}");
    let logs = server.logs();
    assert!(logs.contains("read cache:"), "the cache is in the log:\n{logs}");
}
