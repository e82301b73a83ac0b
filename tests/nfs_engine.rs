//! The filesystem engine through a real NFSv3 client over TCP against a real `slatefs serve`.

#[path = "support/nfs.rs"]
mod nfs;
#[path = "support/raw_rpc.rs"]
mod raw_rpc;
#[path = "support/server.rs"]
mod server;
/// RPC-level behaviour (errors, the duplicate request cache, pipelining, READDIR budgets)
/// through hand-built calls on raw sockets.
#[path = "nfs_engine/rpc.rs"]
mod rpc;
/// Connections, record memory and time, and the log lines of misbehaving connections.
#[path = "nfs_engine/limits.rs"]
mod limits;
/// chown rules and the `.snapshots` directory's place in the namespace.
#[path = "nfs_engine/posix.rs"]
mod posix;
/// Handles of files lost in a crash never name a file created later.
#[path = "nfs_engine/handles.rs"]
mod handles;
/// Concurrent writes into one file.
#[path = "nfs_engine/concurrent_writes.rs"]
mod concurrent_writes;

use nfs::*;
use server::{Server, ServerOptions};


fn mode_sattr(mode: u32) -> sattr3 {
    sattr_mode(mode)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_directories_links_and_special_files() {
    let server = Server::start();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();

    let f = c.create(&root, b"a.txt", 0o644).await.unwrap();
    assert_eq!(c.write(&f, 0, b"hello world").await.unwrap(), 11);
    assert_eq!(c.read(&f, 0, 100).await.unwrap(), (b"hello world".to_vec(), true));
    assert_eq!(c.read(&f, 6, 3).await.unwrap(), (b"wor".to_vec(), false));
    assert_eq!(c.create(&root, b"a.txt", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_EXIST);
    // UNCHECKED create of an existing file opens it and truncates to the given size.
    let again = c.create_unchecked(&root, b"a.txt", sattr3 { size: set_size3::Some(5), ..Default::default() }).await.unwrap();
    assert_eq!(again, f);
    assert_eq!(c.read(&f, 0, 100).await.unwrap().0, b"hello");
    assert!(c.create_exclusive(&root, b"excl").await.is_ok());
    assert_eq!(c.create_exclusive(&root, b"excl").await.unwrap_err(), nfsstat3::NFS3ERR_EXIST);

    let d = c.mkdir(&root, b"dir", 0o755).await.unwrap();
    assert_eq!(c.mkdir(&root, b"dir", 0o755).await.unwrap_err(), nfsstat3::NFS3ERR_EXIST);
    assert_eq!(c.getattr(&root).await.unwrap().nlink, 3, "root gains a link for dir/..");
    assert_eq!(c.lookup(&root, b"missing").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    assert_eq!(c.lookup(&f, b"x").await.unwrap_err(), nfsstat3::NFS3ERR_NOTDIR);
    assert_eq!(c.lookup(&d, b"..").await.unwrap(), root);
    c.create(&d, b"inner", 0o600).await.unwrap();
    assert_eq!(c.rmdir(&root, b"dir").await.unwrap_err(), nfsstat3::NFS3ERR_NOTEMPTY);
    assert_eq!(c.read(&d, 0, 10).await.unwrap_err(), nfsstat3::NFS3ERR_ISDIR);
    assert_eq!(c.write(&d, 0, b"x").await.unwrap_err(), nfsstat3::NFS3ERR_ISDIR);
    assert_eq!(c.remove(&root, b"nope").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    // REMOVE takes no directory and RMDIR nothing else; both leave the entry in place.
    let empty = c.mkdir(&root, b"empty", 0o755).await.unwrap();
    assert_eq!(c.remove(&root, b"empty").await.unwrap_err(), nfsstat3::NFS3ERR_ISDIR);
    assert_eq!(c.rmdir(&root, b"a.txt").await.unwrap_err(), nfsstat3::NFS3ERR_NOTDIR);
    assert_eq!(c.lookup(&root, b"empty").await.unwrap(), empty);
    assert_eq!(c.lookup(&root, b"a.txt").await.unwrap(), f);
    c.rmdir(&root, b"empty").await.unwrap();

    // Names: 255 bytes are fine, 256 are too long; '/' and NUL are refused and create nothing.
    let long = vec![b'n'; 255];
    c.create(&root, &long, 0o644).await.unwrap();
    assert_eq!(c.create(&root, &[b'n'; 256], 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_NAMETOOLONG);
    assert_eq!(c.create(&root, b"a/b", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.create(&root, b"a\0b", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.mkdir(&root, b"..", 0o755).await.unwrap_err(), nfsstat3::NFS3ERR_EXIST);
    let odd = b"sp ace-\xff\x01\xe2\x82\xac".to_vec();
    c.create(&root, &odd, 0o644).await.unwrap();
    let names = c.readdir_all(&root).await.unwrap();
    assert!(names.contains(&odd) && names.contains(&long));
    assert!(!names.iter().any(|n| n.contains(&b'/') || n.contains(&0)));

    // Symlinks, hard links, special files.
    let s = c.symlink(&root, b"link", b"dir/inner").await.unwrap();
    assert_eq!(c.readlink(&s).await.unwrap(), b"dir/inner");
    assert_eq!(c.getattr(&s).await.unwrap().type_, ftype3::NF3LNK);
    c.link(&f, &d, b"hard").await.unwrap();
    assert_eq!(c.getattr(&f).await.unwrap().nlink, 2);
    assert_eq!(c.link(&d, &root, b"dirlink").await.unwrap_err(), nfsstat3::NFS3ERR_PERM);
    c.remove(&root, b"a.txt").await.unwrap();
    assert_eq!(c.getattr(&f).await.unwrap().nlink, 1);
    let h = c.lookup(&d, b"hard").await.unwrap();
    assert_eq!(c.read(&h, 0, 100).await.unwrap().0, b"hello");
    let fifo = c.mknod(&root, b"fifo", mknoddata3::NF3FIFO(mode_sattr(0o600))).await.unwrap();
    assert_eq!(c.getattr(&fifo).await.unwrap().type_, ftype3::NF3FIFO);
    let dev = c
        .mknod(&root, b"tty", mknoddata3::NF3CHR(devicedata3 { dev_attributes: mode_sattr(0o620), spec: specdata3 { specdata1: 4, specdata2: 7 } }))
        .await
        .unwrap();
    let a = c.getattr(&dev).await.unwrap();
    assert_eq!((a.type_, a.rdev.specdata1, a.rdev.specdata2), (ftype3::NF3CHR, 4, 7));
    let sock = c.mknod(&root, b"sock", mknoddata3::NF3SOCK(mode_sattr(0o600))).await.unwrap();
    assert_eq!(c.getattr(&sock).await.unwrap().type_, ftype3::NF3SOCK);

    // The server's read-only .snapshots directory.
    let snaps = c.lookup(&root, b".snapshots").await.unwrap();
    assert_eq!(c.create(&snaps, b"x", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_ROFS);
    assert_eq!(c.create(&root, b".snapshots", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_EXIST);
    assert!(names.contains(&b".snapshots".to_vec()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rename_rules() {
    let server = Server::start();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let a = c.mkdir(&root, b"a", 0o755).await.unwrap();
    let b = c.mkdir(&root, b"b", 0o755).await.unwrap();
    let f1 = c.create(&a, b"f1", 0o644).await.unwrap();
    c.write(&f1, 0, b"one").await.unwrap();
    let f2 = c.create(&b, b"f2", 0o644).await.unwrap();
    c.write(&f2, 0, b"two").await.unwrap();

    // A file over a file: atomic replace; the old target is gone.
    c.rename(&a, b"f1", &b, b"f2").await.unwrap();
    assert_eq!(c.lookup(&a, b"f1").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    let moved = c.lookup(&b, b"f2").await.unwrap();
    assert_eq!(moved, f1);
    assert_eq!(c.read(&moved, 0, 10).await.unwrap().0, b"one");
    assert_eq!(c.getattr(&f2).await.unwrap_err(), nfsstat3::NFS3ERR_STALE);

    // Directories: across parents (nlink follows), over an empty dir, never over a full one,
    // never into themselves, never file<->dir.
    let sub = c.mkdir(&a, b"sub", 0o755).await.unwrap();
    c.mkdir(&sub, b"deeper", 0o755).await.unwrap();
    assert_eq!(c.getattr(&a).await.unwrap().nlink, 3);
    c.rename(&a, b"sub", &b, b"sub").await.unwrap();
    assert_eq!(c.getattr(&a).await.unwrap().nlink, 2);
    assert_eq!(c.getattr(&b).await.unwrap().nlink, 3);
    assert_eq!(c.lookup(&sub, b"..").await.unwrap(), b);
    let deeper = c.lookup(&sub, b"deeper").await.unwrap();
    assert_eq!(c.rename(&b, b"sub", &deeper, b"loop").await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.rename(&b, b"sub", &sub, b"self").await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    c.mkdir(&root, b"empty", 0o755).await.unwrap();
    c.rename(&b, b"sub", &root, b"empty").await.unwrap();
    assert_eq!(c.lookup(&root, b"empty").await.unwrap(), sub);
    let full = c.mkdir(&root, b"full", 0o755).await.unwrap();
    c.create(&full, b"x", 0o644).await.unwrap();
    assert_eq!(c.rename(&root, b"empty", &root, b"full").await.unwrap_err(), nfsstat3::NFS3ERR_NOTEMPTY);
    assert_eq!(c.rename(&b, b"f2", &root, b"full").await.unwrap_err(), nfsstat3::NFS3ERR_ISDIR);
    assert_eq!(c.rename(&root, b"full", &b, b"f2").await.unwrap_err(), nfsstat3::NFS3ERR_NOTDIR);
    assert_eq!(c.rename(&root, b"nothing", &b, b"x").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    // Renaming a name onto a hard link of itself changes nothing.
    c.link(&f1, &b, b"alias").await.unwrap();
    c.rename(&b, b"f2", &b, b"alias").await.unwrap();
    assert!(c.lookup(&b, b"f2").await.is_ok() && c.lookup(&b, b"alias").await.is_ok());
    let mut names = c.readdir_all(&b).await.unwrap();
    names.sort();
    assert_eq!(names, vec![b"alias".to_vec(), b"f2".to_vec()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attributes_sizes_and_times() {
    let server = Server::start();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"f", 0o644).await.unwrap();
    c.write(&f, 0, &[7u8; 100_000]).await.unwrap();

    // Extend sparsely; shrink; extend again: the cut part reads back as zeros.
    let a = c.setattr(&f, sattr3 { size: set_size3::Some(1 << 30), ..Default::default() }).await.unwrap();
    assert_eq!(a.size, 1 << 30);
    assert!(a.used < 200_000, "a hole stores nothing (used {})", a.used);
    assert_eq!(c.read(&f, (1 << 30) - 10, 100).await.unwrap(), (vec![0u8; 10], true));
    c.setattr(&f, sattr3 { size: set_size3::Some(50_000), ..Default::default() }).await.unwrap();
    c.setattr(&f, sattr3 { size: set_size3::Some(100_000), ..Default::default() }).await.unwrap();
    let data = c.read_all(&f).await.unwrap();
    assert_eq!(data.len(), 100_000);
    assert!(data[..50_000].iter().all(|&b| b == 7) && data[50_000..].iter().all(|&b| b == 0));

    // mode/uid/gid/times, with ctime moving on every change and mtime on data changes.
    let before = c.getattr(&f).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    let a = c.setattr(&f, sattr3 { mode: set_mode3::Some(0o4711), ..Default::default() }).await.unwrap();
    assert_eq!(a.mode & 0o7777, 0o4711);
    let a = c.setattr(&f, sattr3 { uid: set_uid3::Some(1234), gid: set_gid3::Some(99), ..Default::default() }).await.unwrap();
    assert_eq!((a.mode & 0o7777, a.uid, a.gid), (0o711, 1234, 99), "chown clears setuid");
    assert!((a.ctime.seconds, a.ctime.nseconds) > (before.ctime.seconds, before.ctime.nseconds));
    assert_eq!((a.mtime.seconds, a.mtime.nseconds), (before.mtime.seconds, before.mtime.nseconds));
    let t = nfstime3 { seconds: 1_000_000_000, nseconds: 5 };
    let a = c.setattr(&f, sattr3 { atime: set_atime::SET_TO_CLIENT_TIME(t), mtime: set_mtime::SET_TO_CLIENT_TIME(t), ..Default::default() }).await.unwrap();
    assert_eq!((a.atime, a.mtime), (t, t));
    c.write(&f, 0, b"x").await.unwrap();
    let a = c.getattr(&f).await.unwrap();
    assert!(a.mtime.seconds > t.seconds, "a write moves mtime");

    // FSSTAT reports real usage.
    let st = c.fsstat(&root).await.unwrap();
    assert!(st.tbytes > st.fbytes && st.tfiles > st.ffiles);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn permissions_follow_mode_bits() {
    let server = Server::start();
    let mut rootc = Client::mount(server.nfs_port, "/").await.unwrap();
    let mut user = Client::mount_as(server.nfs_port, "/", 1000, 1000, &[]).await.unwrap();
    let mut other = Client::mount_as(server.nfs_port, "/", 1001, 1001, &[50]).await.unwrap();
    let root = rootc.root.clone();

    assert_eq!(user.create(&root, b"u", 0o644).await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
    let secret = rootc.create(&root, b"secret", 0o600).await.unwrap();
    rootc.write(&secret, 0, b"s3cr3t").await.unwrap();
    assert_eq!(user.read(&secret, 0, 10).await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
    assert_eq!(user.write(&secret, 0, b"x").await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
    assert_eq!(user.setattr(&secret, mode_sattr(0o777)).await.unwrap_err(), nfsstat3::NFS3ERR_PERM);

    let tmp = rootc.mkdir(&root, b"tmp", 0o1777).await.unwrap();
    let mine = user.create(&tmp, b"mine", 0o644).await.unwrap();
    assert_eq!(user.getattr(&mine).await.unwrap().uid, 1000);
    assert_eq!(other.remove(&tmp, b"mine").await.unwrap_err(), nfsstat3::NFS3ERR_ACCES, "sticky directory");
    assert_eq!(other.rename(&tmp, b"mine", &tmp, b"stolen").await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
    assert_eq!(user.setattr(&mine, sattr3 { uid: set_uid3::Some(0), ..Default::default() }).await.unwrap_err(), nfsstat3::NFS3ERR_PERM);
    // The owner may write a file it made read-only (open(O_CREAT, 0444) then write).
    let ro = user.create(&tmp, b"ro", 0o444).await.unwrap();
    user.write(&ro, 0, b"ok").await.unwrap();
    assert_eq!(other.write(&ro, 0, b"no").await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
    // Group permissions through supplementary groups.
    let g = rootc.create(&root, b"group", 0o640).await.unwrap();
    rootc.setattr(&g, sattr3 { gid: set_gid3::Some(50), ..Default::default() }).await.unwrap();
    assert!(other.read(&g, 0, 1).await.is_ok());
    assert_eq!(user.read(&g, 0, 1).await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
    user.remove(&tmp, b"mine").await.unwrap();
    // Search permission: nobody but root walks through a 0700 directory.
    let private = rootc.mkdir(&root, b"private", 0o700).await.unwrap();
    rootc.create(&private, b"f", 0o644).await.unwrap();
    assert_eq!(user.lookup(&private, b"f").await.unwrap_err(), nfsstat3::NFS3ERR_ACCES);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_sparse_file_written_at_random_offsets() {
    use rand::{Rng, SeedableRng};
    let server = Server::start();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"big", 0o644).await.unwrap();
    const SIZE: usize = 300 << 20;
    let mut model = vec![0u8; SIZE];
    let mut rng = rand::rngs::StdRng::seed_from_u64(42);
    let mut written = 0usize;
    for i in 0..60u64 {
        let len = rng.gen_range(1..=(1 << 20));
        let off = rng.gen_range(0..SIZE - len);
        let data = pattern(i, len);
        c.write(&f, off as u64, &data).await.unwrap();
        model[off..off + len].copy_from_slice(&data);
        written += len;
    }
    c.write(&f, SIZE as u64 - 1, &[0xAB]).await.unwrap();
    model[SIZE - 1] = 0xAB;
    let attr = c.getattr(&f).await.unwrap();
    assert_eq!(attr.size, SIZE as u64);
    assert!(attr.used < (written as u64 + (2 << 20)) * 2, "holes store nothing: used {} for {} written", attr.used, written);
    let back = c.read_all(&f).await.unwrap();
    assert_eq!(back.len(), SIZE);
    assert_eq!(blake3::hash(&back), blake3::hash(&model), "checksum of the whole file");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_directory_listed_while_it_changes() {
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let dir = c.mkdir(&c.root.clone(), b"many", 0o755).await.unwrap();
    const N: usize = 20_000;
    const WRITERS: usize = 8;
    let mut tasks = Vec::new();
    for w in 0..WRITERS {
        let dir = dir.clone();
        tasks.push(tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            for i in (w..N).step_by(WRITERS) {
                c.create(&dir, format!("file-{i:05}").as_bytes(), 0o644).await.unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    // List page by page while another client removes some files and creates new ones.
    let churn_dir = dir.clone();
    let churn = tokio::spawn(async move {
        let mut c = Client::mount(port, "/").await.unwrap();
        for i in 0..400 {
            c.create(&churn_dir, format!("new-{i:04}").as_bytes(), 0o644).await.unwrap();
            c.remove(&churn_dir, format!("file-{:05}", i * 7).as_bytes()).await.unwrap();
        }
    });
    let mut seen = std::collections::HashMap::<Vec<u8>, u32>::new();
    let mut cookie = 0;
    let mut verf = cookieverf3::default();
    loop {
        let (entries, eof, v) = c.readdir_page(&dir, cookie, verf).await.unwrap();
        verf = v;
        for (n, _, ck) in entries {
            assert!(ck > cookie, "cookies only grow");
            cookie = ck;
            *seen.entry(n).or_default() += 1;
        }
        if eof {
            break;
        }
    }
    churn.await.unwrap();
    assert!(seen.values().all(|&n| n == 1), "no entry listed twice");
    let removed: std::collections::HashSet<Vec<u8>> = (0..400).map(|i| format!("file-{:05}", i * 7).into_bytes()).collect();
    for i in 0..N {
        let n = format!("file-{i:05}").into_bytes();
        assert!(removed.contains(&n) || seen.contains_key(&n), "{} missing from the listing", String::from_utf8_lossy(&n));
    }
    // Once quiet, a listing is exact.
    let all: std::collections::HashSet<Vec<u8>> = c.readdir_all(&dir).await.unwrap().into_iter().collect();
    assert_eq!(all.len(), N - 400 + 400);
    assert!(removed.iter().all(|n| !all.contains(n)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_clients_write_their_own_files() {
    let server = Server::start();
    let port = server.nfs_port;
    let mut tasks = Vec::new();
    for w in 0..8u64 {
        tasks.push(tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            let root = c.root.clone();
            let f = c.create(&root, format!("w{w}").as_bytes(), 0o644).await.unwrap();
            let data = pattern(w + 100, 8 << 20);
            for (i, chunk) in data.chunks(256 << 10).enumerate() {
                c.write(&f, (i * (256 << 10)) as u64, chunk).await.unwrap();
            }
            (f, data)
        }));
    }
    let mut c = Client::mount(port, "/").await.unwrap();
    for t in tasks {
        let (f, data) = t.await.unwrap();
        assert_eq!(c.read_all(&f).await.unwrap(), data);
    }
}

/// Every write the server acknowledged before a kill -9 is there after restart, and the
/// client's old handles still work.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_loses_no_acknowledged_write() {
    let mut server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let dir = c.mkdir(&root, b"d", 0o755).await.unwrap();
    let f = c.create(&dir, b"log", 0o644).await.unwrap();
    let writer = {
        let f = f.clone();
        tokio::spawn(async move {
            let mut c = Client::mount(port, "/").await.unwrap();
            let mut acked = Vec::new();
            for i in 0u64..100_000 {
                match c.try_write(&f, i * 4096, &pattern(i, 4096)).await {
                    Ok(Ok(_)) => acked.push(i),
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
                match c.try_create(&dir, name.as_bytes()).await {
                    Ok(Ok(())) => made.push(name),
                    _ => break,
                }
            }
            made
        })
    };
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    server.kill9();
    let acked = writer.await.unwrap();
    let made = creator.await.unwrap();
    assert!(acked.len() > 10 && made.len() > 10, "the workload ran ({} writes, {} creates)", acked.len(), made.len());
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    // Old handles, new connection.
    let size = c.getattr(&f).await.unwrap().size;
    assert!(size >= acked.len() as u64 * 4096);
    for &i in &acked {
        let (data, _) = c.read(&f, i * 4096, 4096).await.unwrap();
        assert_eq!(data, pattern(i, 4096), "acknowledged write {i} lost");
    }
    for name in &made {
        c.lookup(&dir, name.as_bytes()).await.unwrap_or_else(|e| panic!("acknowledged create {name} lost: {e:?}"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handles_survive_a_restart() {
    let mut server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let d = c.mkdir(&root, b"d", 0o755).await.unwrap();
    let f = c.create(&d, b"f", 0o644).await.unwrap();
    c.write(&f, 0, b"before").await.unwrap();
    assert!(server.stop(), "clean shutdown on SIGTERM:\n{}", server.logs());
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    assert_eq!(c.root, root, "the root handle is the same after restart");
    assert_eq!(c.read(&f, 0, 100).await.unwrap().0, b"before");
    c.write(&f, 6, b" and after").await.unwrap();
    assert_eq!(c.lookup(&d, b"f").await.unwrap(), f);
    c.create(&d, b"g", 0o644).await.unwrap();
    assert_eq!(c.read_all(&f).await.unwrap(), b"before and after");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mode_commit_makes_writes_durable() {
    let mut server = Server::start_with(ServerOptions { durability: Some("async".into()), ..Default::default() });
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"f", 0o644).await.unwrap();
    let data = pattern(5, 3 << 20);
    for (i, chunk) in data.chunks(1 << 20).enumerate() {
        c.write(&f, (i << 20) as u64, chunk).await.unwrap();
    }
    c.commit(&f).await.unwrap();
    server.kill9();
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    assert_eq!(c.read_all(&f).await.unwrap(), data);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    use std::io::{Read, Write};
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"f", 0o644).await.unwrap();
    c.write(&f, 0, b"keep").await.unwrap();

    // A record-marking header announcing 2 GiB: the connection is closed, nothing allocated.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(10))).unwrap();
    s.write_all(&0xffff_ffffu32.to_be_bytes()).unwrap();
    let _ = s.write_all(&[0u8; 1024]);
    let mut buf = [0u8; 16];
    assert!(matches!(s.read(&mut buf), Ok(0) | Err(_)), "oversize record: connection closed");
    // Garbage inside a well-formed record.
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5))).unwrap();
    let garbage = [0x42u8; 40];
    s.write_all(&((1u32 << 31) | garbage.len() as u32).to_be_bytes()).unwrap();
    s.write_all(&garbage).unwrap();
    let _ = s.read(&mut buf);

    // A WRITE larger than the server's maximum: NFS3ERR_INVAL and the file is unchanged.
    let big = vec![1u8; 2 << 20];
    assert_eq!(c.write(&f, 0, &big).await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.read_all(&f).await.unwrap(), b"keep");

    // Forged handles: a flipped MAC bit, or the file id of another dataset.
    let mut forged = f.data.0.to_vec();
    let last = forged.len() - 1;
    forged[last] ^= 1;
    assert_eq!(c.getattr(&fh(&forged)).await.unwrap_err(), nfsstat3::NFS3ERR_BADHANDLE);
    let mut other = f.data.0.to_vec();
    other[1] ^= 0x10;
    assert_eq!(c.read(&fh(&other), 0, 4).await.unwrap_err(), nfsstat3::NFS3ERR_BADHANDLE);
    assert_eq!(c.getattr(&fh(b"short")).await.unwrap_err(), nfsstat3::NFS3ERR_BADHANDLE);

    // Names with '/' or NUL: refused, nothing created.
    let before = c.readdir_all(&root).await.unwrap();
    assert_eq!(c.mkdir(&root, b"x/y", 0o755).await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.symlink(&root, b"x\0", b"t").await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.rename(&root, b"f", &root, b"../f").await.unwrap_err(), nfsstat3::NFS3ERR_INVAL);
    assert_eq!(c.readdir_all(&root).await.unwrap(), before);

    // Mounting an export that does not exist fails; the server still serves.
    assert!(Client::mount(port, "/no-such-dataset").await.is_err());
    let mut c2 = Client::mount(port, "/").await.unwrap();
    assert_eq!(c2.read_all(&f).await.unwrap(), b"keep");
}

/// The Kubernetes topology: a catalog owner (the controller's server) and a node's dataset
/// server (a catalog reader) on one store. The owner borrows the dataset's writer to take a
/// snapshot, which fences the node's; the node's next write is answered JUKEBOX, the client
/// retries, and the node takes its dataset back. The snapshot holds every write the node
/// acknowledged before it was taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn owner_snapshot_of_a_dataset_served_by_a_node() {
    let owner = Server::start();
    let node = Server::start_with(ServerOptions {
        store_url: Some(owner.store_url.clone()),
        config: Some("[catalog]\nrole = \"reader\"\n".into()),
        ..Default::default()
    });
    let mut c = Client::mount(node.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"data", 0o644).await.unwrap();
    for i in 0..20u64 {
        c.write(&f, i * 4096, &pattern(i, 4096)).await.unwrap();
    }
    let out = owner.cli(&["dataset", "--admin", &owner.admin, "snapshot", "root", "snap1", "--readonly"]);
    assert!(out.status.success(), "snapshot: {}", String::from_utf8_lossy(&out.stderr));

    // The node goes on writing: a fenced write is answered JUKEBOX (retry), never lost.
    let mut retries = 0;
    for i in 20..40u64 {
        loop {
            match c.write(&f, i * 4096, &pattern(i, 4096)).await {
                Ok(_) => break,
                Err(nfsstat3::NFS3ERR_JUKEBOX) if retries < 50 => {
                    retries += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
                }
                Err(e) => panic!("write {i} after the snapshot: {e:?}\n{}", node.logs()),
            }
        }
    }
    let data = c.read_all(&f).await.unwrap();
    assert_eq!(data.len(), 40 * 4096);
    for i in 0..40u64 {
        assert_eq!(&data[(i * 4096) as usize..((i + 1) * 4096) as usize], &pattern(i, 4096)[..], "block {i}");
    }
    // The snapshot has exactly the 20 blocks acknowledged before it.
    let mut s = Client::mount(owner.nfs_port, "/root@snap1").await.unwrap();
    let sf = s.lookup(&s.root.clone(), b"data").await.unwrap();
    let snap = s.read_all(&sf).await.unwrap();
    assert_eq!(snap.len(), 20 * 4096);
    for i in 0..20u64 {
        assert_eq!(&snap[(i * 4096) as usize..((i + 1) * 4096) as usize], &pattern(i, 4096)[..]);
    }
}
#[path = "nfs_engine/fencing.rs"]
mod fencing;
