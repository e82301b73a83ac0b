//! A handle never comes to name another file, whatever crashed: inode numbers handed out in
//! a run whose changes were lost are not handed out again.

use crate::nfs::*;
use crate::server::{Server, ServerOptions};

/// What a lost file's handle must answer to every call: NFS3ERR_STALE, never another file.
async fn assert_stale(c: &mut Client, f: &nfs_fh3, what: &str) {
    assert_eq!(c.getattr(f).await.map(|a| a.fileid), Err(nfsstat3::NFS3ERR_STALE), "GETATTR of {what}");
    assert_eq!(c.read(f, 0, 64).await.map(|r| r.0), Err(nfsstat3::NFS3ERR_STALE), "READ of {what}");
    assert_eq!(c.write_unstable(f, 0, b"overwrite").await, Err(nfsstat3::NFS3ERR_STALE), "WRITE to {what}");
    assert_eq!(c.lookup(f, b"x").await, Err(nfsstat3::NFS3ERR_STALE), "LOOKUP in {what}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_of_files_lost_in_an_async_crash_stay_stale() {
    // The interval flush never comes during the test: only COMMIT makes anything durable.
    let mut server = Server::start_with(ServerOptions {
        durability: Some("async".into()),
        config: Some("[durability]\nflush_interval_ms = 600000\n".into()),
        ..Default::default()
    });
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let kept = c.create(&root, b"kept", 0o644).await.unwrap();
    c.write_unstable(&kept, 0, b"durable").await.unwrap();
    c.commit(&kept).await.unwrap();

    // Created and written after the last COMMIT: lost with the kill -9.
    let mut lost = Vec::new();
    let lost_dir = c.mkdir(&root, b"lost-dir", 0o755).await.unwrap();
    lost.push(("lost-dir".to_string(), lost_dir.clone()));
    for i in 0..20u64 {
        let name = format!("lost-{i}");
        let f = c.create(if i % 2 == 0 { &root } else { &lost_dir }, name.as_bytes(), 0o644).await.unwrap();
        c.write_unstable(&f, 0, &pattern(i, 100)).await.unwrap();
        lost.push((name, f));
    }
    server.kill9();
    server.restart();

    let mut c = Client::mount(port, "/").await.unwrap();
    assert_eq!(c.read_all(&kept).await.unwrap(), b"durable", "what COMMIT made durable survives");
    assert_eq!(c.lookup(&root, b"lost-0").await, Err(nfsstat3::NFS3ERR_NOENT), "the unflushed files are gone");
    for (name, f) in &lost {
        assert_stale(&mut c, f, name).await;
    }
    // New files, directories and links after the restart take numbers of their own...
    let mut fresh = Vec::new();
    for i in 0..30u64 {
        let name = format!("new-{i}");
        let f = if i % 3 == 0 {
            c.mkdir(&root, name.as_bytes(), 0o755).await.unwrap()
        } else {
            let f = c.create(&root, name.as_bytes(), 0o644).await.unwrap();
            c.write_unstable(&f, 0, &pattern(1000 + i, 100)).await.unwrap();
            f
        };
        fresh.push(f);
    }
    c.symlink(&root, b"new-link", b"kept").await.unwrap();
    c.commit(&kept).await.unwrap();
    // ...so every old handle still names nothing.
    for (name, f) in &lost {
        assert!(!fresh.contains(f), "{name}'s handle was handed out again");
        assert_stale(&mut c, f, name).await;
    }
    let fresh_ids: Vec<u64> = {
        let mut ids = Vec::new();
        for f in &fresh {
            ids.push(c.getattr(f).await.unwrap().fileid);
        }
        ids
    };
    assert!(!fresh_ids.contains(&c.getattr(&kept).await.unwrap().fileid));
    // And after a second crash, with the new files durable, the same holds.
    server.kill9();
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    c.create(&root, b"after-second-crash", 0o644).await.unwrap();
    for (name, f) in &lost {
        assert_stale(&mut c, f, name).await;
    }
    for (i, f) in fresh.iter().enumerate() {
        assert_eq!(c.getattr(f).await.unwrap().fileid, fresh_ids[i], "a committed file keeps its handle");
    }
}

/// In sync mode every create is durable before it is answered: handles survive a kill -9
/// and the files made after it are new files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sync_mode_handles_survive_a_kill_and_new_files_are_new() {
    let mut server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let mut before = Vec::new();
    for i in 0..10u64 {
        let f = c.create(&root, format!("f{i}").as_bytes(), 0o644).await.unwrap();
        c.write(&f, 0, &pattern(i, 64)).await.unwrap();
        before.push(f);
    }
    server.kill9();
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    let mut ids = std::collections::HashSet::new();
    for (i, f) in before.iter().enumerate() {
        assert_eq!(c.read_all(f).await.unwrap(), pattern(i as u64, 64));
        assert_eq!(c.lookup(&root, format!("f{i}").as_bytes()).await.unwrap(), *f);
        ids.insert(c.getattr(f).await.unwrap().fileid);
    }
    for i in 0..10u64 {
        let f = c.create(&root, format!("g{i}").as_bytes(), 0o644).await.unwrap();
        assert!(ids.insert(c.getattr(&f).await.unwrap().fileid), "g{i} took a number in use");
    }
}
