//! `slatefs dataset rollback` against a real `slatefs serve`, checked through a real NFSv3
//! client: the contents equal the snapshot byte for byte (a digest of the whole tree), every
//! snapshot stays readable, handles to files that survive keep working and handles to files
//! that are gone answer NFS3ERR_STALE (and their numbers are never handed out again), bad
//! requests change nothing, and (rollback/crash.rs) kill -9 at every crash point leaves the
//! old or the new contents, never a mix.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/server.rs"]
mod server;
#[path = "rollback/crash.rs"]
mod crash;
#[path = "rollback/cluster.rs"]
mod cluster;
#[path = "support/cluster.rs"]
mod cluster_support;

use std::collections::BTreeMap;

use futures::TryStreamExt;
use nfs::{nfsstat3, pattern, Client};
use server::Server;
use slatefs::store::Store;

pub struct Out {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Out {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

/// `slatefs dataset --admin <server> ARGS…`.
pub fn ds(server: &Server, args: &[&str]) -> Out {
    let mut full = vec!["dataset", "--admin", server.admin.as_str()];
    full.extend_from_slice(args);
    let out = server.cli(&full);
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

pub fn ok(server: &Server, args: &[&str]) -> Out {
    let o = ds(server, args);
    assert_eq!(o.code, 0, "slatefs dataset {args:?} failed: {}\nserver log:\n{}", o.stderr, server.logs());
    o
}

pub fn fails(server: &Server, args: &[&str], msg: &str) {
    let o = ds(server, args);
    assert_eq!(o.code, 1, "slatefs dataset {args:?}: stdout {} stderr {}", o.stdout, o.stderr);
    assert!(o.stderr.contains(msg), "slatefs dataset {args:?}: {msg:?} not in {:?}", o.stderr);
}

pub async fn mount(server: &Server, export: &str) -> Client {
    Client::mount(server.nfs_port, export).await.unwrap_or_else(|e| panic!("mount {export}: {e}"))
}

/// Creates or overwrites (truncating) a file at `path` below the root.
pub async fn put(c: &mut Client, path: &str, data: &[u8]) -> nfs::nfs_fh3 {
    let (dir, name) = match path.rsplit_once('/') {
        Some((d, n)) => (c.walk(d).await.unwrap(), n),
        None => (c.root.clone(), path),
    };
    let f = match c.lookup(&dir, name.as_bytes()).await {
        Ok(f) => f,
        Err(_) => c.create(&dir, name.as_bytes(), 0o644).await.unwrap(),
    };
    c.setattr(&f, nfs::sattr3 { size: nfs::set_size3::Some(0), ..Default::default() }).await.unwrap();
    for (i, part) in data.chunks(1 << 20).enumerate() {
        c.write(&f, (i << 20) as u64, part).await.unwrap();
    }
    f
}

/// What the whole tree under the mount's root is, as NFS shows it: each path with its type,
/// mode, size and a digest of its contents (file bytes, symlink target). Two trees are equal
/// byte for byte when these maps are equal. `.snapshots` is left out.
pub async fn tree(c: &mut Client) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut dirs = vec![(String::new(), c.root.clone())];
    while let Some((path, dir)) = dirs.pop() {
        for name in c.readdir_all(&dir).await.unwrap() {
            if path.is_empty() && name == b".snapshots" {
                continue;
            }
            let name = String::from_utf8(name).unwrap();
            let full = format!("{path}/{name}");
            let f = c.lookup(&dir, name.as_bytes()).await.unwrap();
            let a = c.getattr(&f).await.unwrap();
            let body = match a.type_ {
                nfs::ftype3::NF3DIR => {
                    dirs.push((full.clone(), f));
                    String::new()
                }
                nfs::ftype3::NF3LNK => String::from_utf8(c.readlink(&f).await.unwrap()).unwrap(),
                _ => blake3::hash(&c.read_all(&f).await.unwrap()).to_hex().to_string(),
            };
            out.insert(full, format!("{:?} {:o} {} {body}", a.type_, a.mode, a.size));
        }
    }
    out
}

/// A tree of directories, files of several sizes and a symlink; `version` changes contents.
pub async fn build_tree(c: &mut Client, version: u64) {
    let root = c.root.clone();
    for (parent, name) in [("", "docs"), ("docs", "deep")] {
        let dir = c.walk(parent).await.unwrap();
        if c.lookup(&dir, name.as_bytes()).await.is_err() {
            c.mkdir(&dir, name.as_bytes(), 0o755).await.unwrap();
        }
    }
    put(c, "small", format!("version {version}\n").as_bytes()).await;
    put(c, "docs/big", &pattern(version, 300_000)).await;
    put(c, "docs/deep/note", &pattern(version + 100, 5_000)).await;
    if c.lookup(&root, b"link").await.is_err() {
        c.symlink(&root, b"link", b"docs/deep/note").await.unwrap();
    }
}

/// The dataset ids whose databases hold objects in the store (`datasets/<id:016x>/…`).
pub async fn databases(store: &Store) -> std::collections::BTreeSet<u64> {
    let datasets = store.path("datasets");
    let objects: Vec<_> = store.object_store().list(Some(&datasets)).try_collect().await.unwrap();
    objects
        .iter()
        .map(|o| {
            let id = o.location.prefix_match(&datasets).and_then(|mut parts| parts.next()).unwrap();
            u64::from_str_radix(id.as_ref(), 16).unwrap()
        })
        .collect()
}

pub fn server_store(server: &Server) -> Store {
    Store::open(&server.storage_config().expect("the test server's store")).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_restores_the_snapshot_and_keeps_every_snapshot_and_handle() {
    let mut server = Server::start();
    let store = server_store(&server);
    let made = ok(&server, &["create", "data", "--quota", "64Mi", "-o", "json"]).json();
    let id = made["id"].as_u64().unwrap();
    let mut c = mount(&server, "/data").await;

    build_tree(&mut c, 1).await;
    let older = tree(&mut c).await;
    ok(&server, &["snapshot", "data", "older", "--readonly"]);
    build_tree(&mut c, 2).await;
    put(&mut c, "docs/doomed", b"removed after the snapshot").await;
    let kept = c.walk("docs/big").await.unwrap();
    let at_mid = tree(&mut c).await;
    ok(&server, &["snapshot", "data", "mid", "--readonly"]);

    // After the snapshot: a file changed, one removed, new ones (one new directory).
    build_tree(&mut c, 3).await;
    let root = c.root.clone();
    let docs = c.walk("docs").await.unwrap();
    c.remove(&docs, b"doomed").await.unwrap();
    let born = put(&mut c, "born-after", b"made after mid").await;
    let newdir = c.mkdir(&root, b"newdir", 0o700).await.unwrap();
    put(&mut c, "newdir/inside", &pattern(9, 70_000)).await;
    let at_newer = tree(&mut c).await;
    ok(&server, &["snapshot", "data", "newer", "--readonly"]);
    let unsnapshotted = put(&mut c, "unsnapshotted", b"live only").await;
    let mut highest = 0;
    for f in [&born, &newdir, &unsnapshotted] {
        highest = highest.max(c.getattr(f).await.unwrap().fileid);
    }
    assert_ne!(at_mid, at_newer);

    // Bad requests change nothing.
    fails(&server, &["rollback", "data", "nosuch"], "does not exist");
    fails(&server, &["rollback", "nosuch", "mid"], "does not exist");
    fails(&server, &["rollback", "root", "mid"], "is not a snapshot of dataset \"root\"");
    fails(&server, &["rollback", "data", "Bad/Name"], "invalid name");
    assert_eq!(c.read_all(&unsnapshotted).await.unwrap(), b"live only");

    let out = ok(&server, &["rollback", "data", "mid", "-o", "json"]).json();
    assert_eq!(out["dataset"]["id"].as_u64(), Some(id), "{out}");
    assert_eq!(out["dataset"]["name"], "data");
    assert_eq!(out["dataset"]["quota_bytes"].as_u64(), Some(64 << 20), "{out}");
    assert_eq!(out["snapshot"]["name"], "mid");
    let table = ok(&server, &["rollback", "data", "mid"]).stdout;
    assert!(table.starts_with(&format!("rolled dataset data (id {id}) back to snapshot mid")), "{table}");

    // The same connection, the same handles: the tree is the snapshot's, byte for byte.
    assert_eq!(tree(&mut c).await, at_mid, "live tree after the rollback vs the tree at mid");
    assert_eq!(tree(&mut mount(&server, "/data").await).await, at_mid);
    assert_eq!(c.read_all(&kept).await.unwrap(), pattern(2, 300_000), "a surviving handle reads mid's data");
    for (what, f) in [("born-after", &born), ("newdir", &newdir)] {
        assert_eq!(c.getattr(f).await.unwrap_err(), nfsstat3::NFS3ERR_STALE, "{what}");
    }
    assert_eq!(c.read(&born, 0, 10).await.unwrap_err(), nfsstat3::NFS3ERR_STALE);
    assert_eq!(c.write(&born, 0, b"x").await.unwrap_err(), nfsstat3::NFS3ERR_STALE);

    // Every snapshot stays readable, older and newer, as an export and under .snapshots.
    assert_eq!(tree(&mut mount(&server, "/data@older").await).await, older);
    assert_eq!(tree(&mut mount(&server, "/data@mid").await).await, at_mid);
    assert_eq!(tree(&mut mount(&server, "/data@newer").await).await, at_newer);
    let in_dir = c.walk(".snapshots/newer/newdir/inside").await.unwrap();
    assert_eq!(c.read_all(&in_dir).await.unwrap(), pattern(9, 70_000));
    let snaps = ok(&server, &["list-snapshots", "data", "-o", "json"]).json();
    let mut listed: Vec<(String, String, bool)> = snaps
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap().into(), s["dataset"].as_str().unwrap().into(), s["dataset_deleted"] == true))
        .collect();
    listed.sort();
    let want = |n: &str| (n.to_string(), "data".to_string(), false);
    assert_eq!(listed, vec![want("mid"), want("newer"), want("older")]);
    let info = ok(&server, &["info", "data", "-o", "json"]).json();
    assert_eq!(info["snapshot_count"].as_u64(), Some(3), "{info}");

    // New files never take a number a gone file had: its old handle stays stale.
    let fresh = put(&mut c, "fresh", b"after the rollback").await;
    let fresh_id = c.getattr(&fresh).await.unwrap().fileid;
    assert!(fresh_id > highest, "new file id {fresh_id:#x} <= highest before the rollback {highest:#x}");
    assert_eq!(c.getattr(&born).await.unwrap_err(), nfsstat3::NFS3ERR_STALE);

    // Writes after the rollback are the dataset's, across a restart.
    drop(c);
    assert!(server.stop(), "clean stop:\n{}", server.logs());
    server.restart();
    let mut c = mount(&server, "/data").await;
    assert_eq!(c.read_all(&fresh).await.unwrap(), b"after the rollback");
    assert_eq!(c.getattr(&born).await.unwrap_err(), nfsstat3::NFS3ERR_STALE);

    // Forward again, to a snapshot newer than the one rolled back to.
    ok(&server, &["rollback", "data", "newer"]);
    assert_eq!(tree(&mut c).await, at_newer, "after a second rollback, to newer");
    assert_eq!(c.read_all(&born).await.unwrap(), b"made after mid", "its handle works again");
    assert_eq!(c.getattr(&fresh).await.unwrap_err(), nfsstat3::NFS3ERR_STALE);
    assert_eq!(tree(&mut mount(&server, "/data@mid").await).await, at_mid);
    drop(c);

    // The snapshots outlive the dataset as they do without a rollback; deleting them collects
    // every database it ever had.
    ok(&server, &["delete", "data"]);
    let snaps = ok(&server, &["list-snapshots", "data", "-o", "json"]).json();
    assert_eq!(snaps.as_array().unwrap().len(), 3, "{snaps}");
    for s in snaps.as_array().unwrap() {
        assert!(s["dataset"] == "data" && s["dataset_deleted"] == true, "{s}");
    }
    // (Read by path: READDIRPLUS of the root of a snapshot whose dataset is gone answers STALE
    // for its `..`, with or without a rollback.)
    let mut m = mount(&server, "/data@mid").await;
    let big = m.walk("docs/big").await.unwrap();
    assert_eq!(m.read_all(&big).await.unwrap(), pattern(2, 300_000));
    drop(m);
    for s in ["older", "mid", "newer"] {
        ok(&server, &["delete-snapshot", s]);
    }
    let root_id = ok(&server, &["info", "root", "-o", "json"]).json()["id"].as_u64().unwrap();
    assert_eq!(databases(&store).await.into_iter().collect::<Vec<_>>(), vec![root_id]);
    assert!(server.stop(), "clean stop:\n{}", server.logs());
}

/// More files made after the snapshot than one inode range holds (src/fs/ino_alloc.rs
/// reserves `RANGE` numbers per durable superblock write), so the replaced database reserved
/// ranges the snapshot never saw: without the rollback raising the new database's floor to
/// the replaced one's ceiling, new files would take the numbers of gone files, and the gone
/// files' handles would name them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn numbers_handed_out_after_the_snapshot_are_never_reused_past_a_range() {
    use slatefs::fs::INO_RANGE as RANGE;
    // Async durability: creates are acknowledged without a flush each (the number ranges are
    // made durable before use all the same), so thousands of them are cheap.
    let server = Server::start_with(server::ServerOptions { durability: Some("async".into()), ..Default::default() });
    ok(&server, &["create", "many"]);
    let mut c = mount(&server, "/many").await;
    let root = c.root.clone();
    put(&mut c, "before", b"in the snapshot").await;
    ok(&server, &["snapshot", "many", "base", "--readonly"]);
    let count = RANGE + RANGE / 4;
    let mut gone = Vec::new();
    for n in 0..count {
        let f = c.create(&root, format!("n{n}").as_bytes(), 0o644).await.unwrap();
        // Keep one handle in every 256 (and the last), to check after the rollback.
        if n % 256 == 0 || n == count - 1 {
            gone.push(f);
        }
    }
    let highest = c.getattr(gone.last().unwrap()).await.unwrap().fileid;
    let lowest = c.getattr(&gone[0]).await.unwrap().fileid;
    assert!(highest - lowest >= RANGE, "the files after the snapshot span {lowest:#x}..={highest:#x}, less than a range");

    ok(&server, &["rollback", "many", "base"]);
    for n in 0..16 {
        let f = c.create(&root, format!("after{n}").as_bytes(), 0o644).await.unwrap();
        let id = c.getattr(&f).await.unwrap().fileid;
        assert!(id > highest, "a file made after the rollback got {id:#x}, at or below {highest:#x} handed out before it");
    }
    for f in &gone {
        assert_eq!(c.getattr(f).await.unwrap_err(), nfsstat3::NFS3ERR_STALE, "a gone file's handle");
    }
    let before = c.walk("before").await.unwrap();
    assert_eq!(c.read_all(&before).await.unwrap(), b"in the snapshot");
}
