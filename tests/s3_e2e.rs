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
//!   first acknowledged.
//!
//! Outages and the read cache: s3_outage.rs.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/s3_serve.rs"]
mod s3_serve;
#[path = "support/server.rs"]
mod server;

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use nfs::*;
use s3_serve::*;
use server::{s3, Server};

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
