//! Many servers, one owner per dataset (docs/ownership.md), with real processes: three
//! `slatefs serve` on one store (`SLATEFS_TEST_STORE=s3`: on a real S3 server), clients on
//! each writing one dataset, snapshots taken while a node's client writes, kill -9 of an
//! owner, ownership moving to the one server still using a dataset, and the internal channel
//! refusing calls without the cluster secret.

#[path = "support/cluster.rs"]
mod cluster;
#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;

use std::time::{Duration, Instant};

use cluster::{Trio, TrioOptions};
use nfs::{pattern, Client};
use nfs3_types::nfs3::{nfs_fh3, nfsstat3};

const FILE_BYTES: usize = 48 << 10;

async fn mount(trio: &Trio, i: usize, export: &str) -> Client {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        // A catalog reader sees a new dataset on its next look at the catalog.
        match Client::mount(trio.servers[i].nfs_port, export).await {
            Ok(c) => return c,
            Err(e) if Instant::now() < deadline => {
                let _ = e;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("mount {export} on {}: {e}\n{}", cluster::NAMES[i], trio.all_logs()),
        }
    }
}

fn seed(writer: usize, n: usize) -> u64 {
    (writer as u64) << 32 | n as u64
}

/// Writes file `w-N` of writer `w` (CREATE UNCHECKED, WRITE FILE_SYNC); every call must
/// succeed: a JUKEBOX here is a pause a kernel client would wait 5 s for.
async fn write_file(c: &mut Client, writer: usize, n: usize) -> nfs_fh3 {
    let root = c.root.clone();
    let name = format!("w{writer}-{n}");
    let f = c.create(&root, name.as_bytes(), 0o644).await.unwrap_or_else(|e| panic!("create {name}: {e:?}"));
    c.write(&f, 0, &pattern(seed(writer, n), FILE_BYTES)).await.unwrap_or_else(|e| panic!("write {name}: {e:?}"));
    f
}

async fn check_file(c: &mut Client, writer: usize, n: usize) {
    let root = c.root.clone();
    let name = format!("w{writer}-{n}");
    let f = c.lookup(&root, name.as_bytes()).await.unwrap_or_else(|e| panic!("{name} is missing: {e:?}"));
    let data = c.read_all(&f).await.unwrap();
    assert!(data == pattern(seed(writer, n), FILE_BYTES), "{name} has other contents");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_servers_write_one_dataset_and_see_each_others_files() {
    let trio = Trio::start(TrioOptions::default());
    trio.dataset(0, &["create", "shared"]);
    let mut clients = Vec::new();
    for i in 0..3 {
        clients.push(mount(&trio, i, "/shared").await);
    }
    const FILES: usize = 25;
    let tasks: Vec<_> = clients
        .into_iter()
        .enumerate()
        .map(|(w, mut c)| {
            tokio::spawn(async move {
                for n in 0..FILES {
                    write_file(&mut c, w, n).await;
                }
                c
            })
        })
        .collect();
    let mut clients = Vec::new();
    for t in tasks {
        clients.push(t.await.unwrap());
    }
    // Every client sees every file, with its contents, through its own server (after
    // close/reopen: a fresh lookup from the root).
    for (i, c) in clients.iter_mut().enumerate() {
        let mut names = c.readdir_all(&c.root.clone()).await.unwrap();
        names.retain(|n| n.first() == Some(&b'w'));
        assert_eq!(names.len(), 3 * FILES, "through {}", cluster::NAMES[i]);
        for w in 0..3 {
            for n in 0..FILES {
                check_file(c, w, n).await;
            }
        }
    }
    let owner = trio.owner_of("shared").expect("the dataset has an owner");
    assert!(cluster::NAMES.contains(&owner.as_str()), "{owner}");
    let list = trio.dataset(0, &["list"]);
    assert!(list.contains("OWNER") && list.contains(&owner), "{list}");
    assert_eq!(trio.fencing_lines(), Vec::<String>::new(), "a steady run fences nobody");
    let claims = trio.all_logs().matches("taking ownership of dataset").count();
    assert_eq!(claims, 1, "one claim, then everybody forwards:\n{}", trio.all_logs());
}

/// Snapshots by the catalog owner while a node's client writes: no JUKEBOX, and each snapshot
/// holds every write acknowledged before it was asked for, in both durability modes.
async fn snapshots_while_a_node_writes(durability: &'static str) {
    let trio = Trio::start(TrioOptions { durability, ..Default::default() });
    trio.dataset(0, &["create", "busy"]);
    let mut c = mount(&trio, 1, "/busy").await;
    let mut written = 0;
    for round in 0..4 {
        for _ in 0..5 {
            let root = c.root.clone();
            let name = format!("w1-{written}");
            let f = c.create(&root, name.as_bytes(), 0o644).await.unwrap();
            let data = pattern(seed(1, written), FILE_BYTES);
            if durability == "async" {
                // Acknowledged UNSTABLE, never committed: the snapshot must still hold it.
                c.write_unstable(&f, 0, &data).await.unwrap();
            } else {
                c.write(&f, 0, &data).await.unwrap();
            }
            written += 1;
        }
        let snap = format!("s{round}");
        let acked = written;
        // The snapshot runs on the catalog owner while the client keeps writing.
        let admin = trio.servers[0].admin.clone();
        let taking = tokio::task::spawn_blocking(move || {
            std::process::Command::new(server::binary())
                .args(["dataset", "--admin", &admin, "snapshot", "busy", &snap, "--readonly"])
                .output()
                .unwrap()
        });
        for _ in 0..3 {
            let root = c.root.clone();
            let name = format!("w1-{written}");
            let f = c.create(&root, name.as_bytes(), 0o644).await.unwrap_or_else(|e| panic!("{e:?} during a snapshot"));
            c.write(&f, 0, &pattern(seed(1, written), FILE_BYTES)).await.unwrap_or_else(|e| panic!("{e:?} during a snapshot"));
            written += 1;
        }
        let out = taking.await.unwrap();
        assert!(out.status.success(), "{}\n{}", String::from_utf8_lossy(&out.stderr), trio.all_logs());
        // Read it through the other node: snapshots are served locally by every server.
        let mut s = mount(&trio, 2, &format!("/busy@s{round}")).await;
        for n in 0..acked {
            check_file(&mut s, 1, n).await;
        }
        // Listed there too, though its dataset's `.snapshots` (the root's "..") is the owner's.
        let root = s.root.clone();
        let listed = s.readdir_all(&root).await.unwrap_or_else(|e| panic!("READDIRPLUS of a snapshot's root on a non-owner: {e:?}"));
        assert!(listed.len() >= acked, "{} names listed, {acked} files acknowledged", listed.len());
    }
    assert_eq!(trio.fencing_lines(), Vec::<String>::new());
    assert_eq!(trio.owner_of("busy").as_deref(), Some("node-a"), "the writer stayed on the node");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_while_a_node_writes_sync() {
    snapshots_while_a_node_writes("sync").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn snapshots_while_a_node_writes_async() {
    snapshots_while_a_node_writes("async").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_owner_killed_another_server_takes_over_with_the_same_handles() {
    let mut trio = Trio::start(TrioOptions::default());
    trio.dataset(0, &["create", "ha"]);
    // node-a claims the dataset with the first call; node-b forwards to it.
    let mut a = mount(&trio, 1, "/ha").await;
    write_file(&mut a, 1, 0).await;
    let mut b = mount(&trio, 2, "/ha").await;
    let mut handles = Vec::new();
    for n in 0..10 {
        handles.push(write_file(&mut b, 2, n).await);
    }
    assert_eq!(trio.owner_of("ha").as_deref(), Some("node-a"));

    trio.servers[1].kill9();
    let killed = Instant::now();
    // The next write through node-b finds the owner gone, takes over and is answered.
    let again = pattern(99, FILE_BYTES);
    b.write(&handles[0], 0, &again).await.unwrap_or_else(|e| panic!("{e:?} after the owner died\n{}", trio.all_logs()));
    println!("failover: the first write after kill -9 of the owner was answered after {:?}", killed.elapsed());
    for n in 10..20 {
        handles.push(write_file(&mut b, 2, n).await);
    }
    assert_eq!(trio.owner_of("ha").as_deref(), Some("node-b"));
    // Same handles, no STALE; every acknowledged write is there.
    assert_eq!(b.read_all(&handles[0]).await.unwrap(), again);
    for n in 1..20 {
        assert_eq!(b.read_all(&handles[n]).await.unwrap(), pattern(seed(2, n), FILE_BYTES));
    }
    check_file(&mut b, 1, 0).await;

    // node-a comes back: its client's handle works again, now through node-b.
    trio.servers[1].restart();
    let mut a = mount(&trio, 1, "/ha").await;
    for n in 0..20 {
        assert_eq!(a.read_all(&handles[n]).await.unwrap().len(), FILE_BYTES);
    }
    write_file(&mut a, 1, 1).await;
    check_file(&mut b, 1, 1).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ownership_moves_to_the_only_server_still_using_a_dataset() {
    let trio = Trio::start(TrioOptions { handoff_after_ms: 300, ..Default::default() });
    trio.dataset(0, &["create", "moving"]);
    let mut a = mount(&trio, 1, "/moving").await;
    write_file(&mut a, 1, 0).await;
    assert_eq!(trio.owner_of("moving").as_deref(), Some("node-a"));
    // The pod moved: only node-b's client uses the dataset from now on.
    let mut b = mount(&trio, 2, "/moving").await;
    let mut n = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while trio.owner_of("moving").as_deref() != Some("node-b") {
        assert!(Instant::now() < deadline, "ownership did not move\n{}", trio.all_logs());
        write_file(&mut b, 2, n).await;
        n += 1;
    }
    assert!(trio.by_name("node-a").logs().contains("handed over"), "{}", trio.all_logs());
    for k in 0..n {
        check_file(&mut a, 2, k).await;
    }
    check_file(&mut b, 1, 0).await;
    assert_eq!(trio.fencing_lines(), Vec::<String>::new(), "a handoff closes the old writer first");
}

/// CREATE3args for `name` in directory `dir`, UNCHECKED with no attributes.
fn create_args(dir: &nfs_fh3, name: &[u8]) -> Vec<u8> {
    fn opaque(out: &mut Vec<u8>, b: &[u8]) {
        out.extend_from_slice(&(b.len() as u32).to_be_bytes());
        out.extend_from_slice(b);
        out.resize(out.len() + (4 - b.len() % 4) % 4, 0);
    }
    let mut a = Vec::new();
    opaque(&mut a, &dir.data);
    opaque(&mut a, name);
    a.extend_from_slice(&0u32.to_be_bytes());
    a.extend_from_slice(&[0u8; 24]);
    a
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn internal_calls_without_the_cluster_secret_are_refused_and_change_nothing() {
    use slatefs::cluster::proto::cluster_client::ClusterClient;
    use slatefs::cluster::proto::{NfsCall, PingRequest};

    let trio = Trio::start(TrioOptions::default());
    let mut c = mount(&trio, 1, "/").await;
    write_file(&mut c, 1, 0).await;
    let owner = trio.owner_of("root").unwrap();
    let port = trio.internal_ports[Trio::index(&owner)];
    let root = c.root.clone();
    let dataset = u64::from_be_bytes(root.data[1..9].try_into().unwrap()) >> 40;
    let call = |name: &[u8]| NfsCall {
        origin: "intruder".into(),
        xid: 7,
        prog: 100003,
        vers: 3,
        proc: 8,
        args: create_args(&root, name),
        dataset,
        ..Default::default()
    };
    let mut client = ClusterClient::connect(format!("http://127.0.0.1:{port}")).await.unwrap();
    let refused = client.ping(PingRequest { from: "intruder".into() }).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let refused = client.nfs(call(b"no-secret")).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let mut wrong = tonic::Request::new(call(b"wrong-secret"));
    wrong.metadata_mut().insert("authorization", "Bearer 00ff".parse().unwrap());
    assert_eq!(client.nfs(wrong).await.unwrap_err().code(), tonic::Code::Unauthenticated);
    for name in [&b"no-secret"[..], b"wrong-secret"] {
        assert_eq!(c.lookup(&root, name).await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    }
    // The same call with the secret is carried out: the refusals above were about the secret.
    let key = blake3::hash(cluster::SECRET.as_bytes());
    let bearer: String = key.as_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let mut right = tonic::Request::new(call(b"with-secret"));
    right.metadata_mut().insert("authorization", format!("Bearer {bearer}").parse().unwrap());
    client.nfs(right).await.unwrap();
    c.lookup(&root, b"with-secret").await.unwrap();
    let log = trio.by_name(&owner).logs();
    assert!(log.contains("refused a call without the cluster secret"), "{log}");
    assert!(!log.contains(cluster::SECRET) && !log.contains(&bearer), "the secret must never be logged");
}
