//! Rollback with several servers on one store (part of the `rollback` test binary): refused
//! while another server owns the dataset, nothing changed; done by the catalog owner once it
//! owns the dataset, and then seen through every server, on the handles they had.

use std::time::{Duration, Instant};

use super::cluster_support::{Trio, TrioOptions, NAMES};
use super::nfs::{nfsstat3, Client};
use super::{put, tree};

async fn mount(trio: &Trio, i: usize, export: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A follower sees a new dataset on its next look at the catalog.
        match Client::mount(trio.servers[i].nfs_port, export).await {
            Ok(c) => return c,
            Err(_) if Instant::now() < deadline => tokio::time::sleep(Duration::from_millis(100)).await,
            Err(e) => panic!("mount {export} on {}: {e}\n{}", NAMES[i], trio.all_logs()),
        }
    }
}

fn rollback(trio: &Trio, args: &[&str]) -> std::process::Output {
    let s = &trio.servers[0];
    let mut full = vec!["dataset", "--admin", s.admin.as_str(), "rollback"];
    full.extend_from_slice(args);
    s.cli(&full)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_in_a_cluster_is_refused_while_another_server_owns_the_dataset() {
    let trio = Trio::start(TrioOptions { handoff_after_ms: 300, ..Default::default() });
    trio.dataset(0, &["create", "shared"]);
    let mut a = mount(&trio, 1, "/shared").await;
    put(&mut a, "kept", b"in the snapshot").await;
    let at_snapshot = tree(&mut a).await;
    trio.dataset(0, &["snapshot", "shared", "s", "--readonly"]);
    let later = put(&mut a, "later", b"after the snapshot").await;
    let before = tree(&mut a).await;
    assert_eq!(trio.owner_of("shared").as_deref(), Some("node-a"));

    let out = rollback(&trio, &["shared", "s"]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("is in use on server node-a"), "{err}");
    assert_eq!(tree(&mut a).await, before, "a refused rollback changes nothing");

    // Its clients move to the catalog owner's server: the dataset is handed over to it.
    let mut o = mount(&trio, 0, "/shared").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    while trio.owner_of("shared").as_deref() != Some("owner") {
        assert!(Instant::now() < deadline, "ownership did not move\n{}", trio.all_logs());
        put(&mut o, &format!("moving-{n}"), b"x").await;
        n += 1;
    }
    let out = rollback(&trio, &["shared", "s"]);
    assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), trio.all_logs());
    assert_eq!(tree(&mut o).await, at_snapshot);
    // node-a forwards to the owner: the snapshot's contents, its old handle stale.
    assert_eq!(tree(&mut a).await, at_snapshot);
    assert_eq!(a.getattr(&later).await.unwrap_err(), nfsstat3::NFS3ERR_STALE);
    assert_eq!(trio.fencing_lines(), Vec::<String>::new(), "no writer was fenced");
}
