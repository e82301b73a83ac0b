//! What an idle `slatefs serve` costs on S3 (issue 14): every request is a paid one, so a
//! server nobody uses must make close to none: at most one per 10 s, and none for the datasets
//! nobody uses (they are closed after `[maintenance] idle_close_ms`). Counted by the tests' S3
//! server itself (tests/support/s3_requests.rs), so every request the process sends counts.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/s3_serve.rs"]
mod s3_serve;
#[path = "support/server.rs"]
mod server;

use std::time::Duration;

use nfs::*;
use s3_serve::*;
use server::{s3, Server};

/// How long the idle server is watched, and what it may send in that time.
const WINDOW: Duration = Duration::from_secs(60);
const BUDGET: u64 = 6;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_server_makes_at_most_one_request_per_ten_seconds() {
    let tmp = tempfile::tempdir().unwrap();
    let s3 = s3::start_s3(&tmp.path().join("s3")).await;
    // Everything else as shipped; datasets close after 2 s instead of a minute.
    let config = s3_config(&s3, tmp.path(), "", "[maintenance]\nidle_close_ms = 2000\ncollect_quiet_ms = 0\n");
    let mut server = Server::start_with(s3_server_opts(&s3, config, &[]));
    let port = server.nfs_port;

    // The default dataset is opened and written, then left alone.
    let mut c = within(30, "mount", Client::mount(port, "/")).await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"before-idle", 0o644).await.unwrap();
    c.write(&f, 0, b"written before the server went idle").await.unwrap();

    // Quiet once two seconds pass with at most one request (start-up and the dataset's close
    // are behind it); a server that keeps polling never gets there.
    let mut quiet = false;
    for _ in 0..20 {
        let before = s3.requests.snapshot();
        tokio::time::sleep(Duration::from_secs(2)).await;
        if s3.requests.snapshot().since(&before).total() <= 1 {
            quiet = true;
            break;
        }
    }
    let before = s3.requests.snapshot();
    tokio::time::sleep(WINDOW).await;
    let idle = s3.requests.snapshot().since(&before);
    assert!(quiet, "the server never went quiet; in the last window: {idle:?}");
    assert!(
        idle.total() <= BUDGET,
        "an idle server sent {} requests in {} s (at most {BUDGET}): {idle:?}",
        idle.total(),
        WINDOW.as_secs()
    );

    // The closed dataset opens again on the next call, with everything written before.
    assert_eq!(c.read_all(&f).await.unwrap(), b"written before the server went idle");
    let g = c.create(&root, b"after-idle", 0o644).await.unwrap();
    c.write(&g, 0, b"and after").await.unwrap();
    assert_eq!(c.read_all(&g).await.unwrap(), b"and after");
    assert!(server.stop(), "the server stops cleanly");
}
