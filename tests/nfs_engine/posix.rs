//! POSIX details through the NFSv3 client: who may chown, and the `.snapshots` directory's
//! place in the namespace. Included by tests/nfs_engine.rs.

use super::nfs::*;
use super::server::Server;

fn owner_sattr(uid: Option<u32>, gid: Option<u32>) -> sattr3 {
    sattr3 {
        uid: uid.map_or(set_uid3::None, set_uid3::Some),
        gid: gid.map_or(set_gid3::None, set_gid3::Some),
        ..Default::default()
    }
}

fn ctime(a: &fattr3) -> (u32, u32) {
    (a.ctime.seconds, a.ctime.nseconds)
}

/// chown(2): only root gives a file away and only the owner sets its group (to one of its
/// own). A non-owner naming the owner or group the file already has is refused like any other
/// chown (EPERM), on every file type, and the ctime does not move.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_owner_or_root_may_chown_even_to_the_same_ids() {
    let server = Server::start();
    let port = server.nfs_port;
    let mut rootc = Client::mount(port, "/").await.unwrap();
    let root = rootc.root.clone();
    let mut owner = Client::mount_as(port, "/", 1000, 1000, &[1000, 3000]).await.unwrap();
    // In the file's group, with write permission on everything: still not the owner.
    let mut other = Client::mount_as(port, "/", 2000, 1000, &[1000]).await.unwrap();

    let d = rootc.mkdir(&root, b"d", 0o777).await.unwrap();
    let dev = |mode| devicedata3 { dev_attributes: sattr_mode(mode), spec: specdata3 { specdata1: 1, specdata2: 3 } };
    let objects = vec![
        ("file", rootc.create(&d, b"file", 0o666).await.unwrap()),
        ("directory", rootc.mkdir(&d, b"dir", 0o777).await.unwrap()),
        ("symlink", rootc.symlink(&d, b"link", b"file").await.unwrap()),
        ("fifo", rootc.mknod(&d, b"fifo", mknoddata3::NF3FIFO(sattr_mode(0o666))).await.unwrap()),
        ("socket", rootc.mknod(&d, b"sock", mknoddata3::NF3SOCK(sattr_mode(0o666))).await.unwrap()),
        ("char device", rootc.mknod(&d, b"chr", mknoddata3::NF3CHR(dev(0o666))).await.unwrap()),
        ("block device", rootc.mknod(&d, b"blk", mknoddata3::NF3BLK(dev(0o666))).await.unwrap()),
    ];
    for (what, h) in &objects {
        rootc.setattr(h, owner_sattr(Some(1000), Some(1000))).await.unwrap();
        let before = rootc.getattr(h).await.unwrap();
        assert_eq!((before.uid, before.gid), (1000, 1000));
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
        for (uid, gid) in [(Some(1000), None), (None, Some(1000)), (Some(1000), Some(1000)), (Some(2000), None), (None, Some(3000))] {
            assert_eq!(
                other.setattr(h, owner_sattr(uid, gid)).await.unwrap_err(),
                nfsstat3::NFS3ERR_PERM,
                "{what}: a non-owner sets uid {uid:?} gid {gid:?}"
            );
        }
        let after = rootc.getattr(h).await.unwrap();
        assert_eq!((after.uid, after.gid), (1000, 1000), "{what}");
        assert_eq!(ctime(&after), ctime(&before), "{what}: a refused chown moved the ctime");

        // The owner: its own uid, its own group, another of its groups; nothing else.
        owner.setattr(h, owner_sattr(Some(1000), None)).await.unwrap_or_else(|e| panic!("{what}: owner keeps its uid: {e:?}"));
        owner.setattr(h, owner_sattr(None, Some(1000))).await.unwrap_or_else(|e| panic!("{what}: owner keeps its gid: {e:?}"));
        let a = owner.setattr(h, owner_sattr(Some(1000), Some(3000))).await.unwrap();
        assert_eq!((a.uid, a.gid), (1000, 3000), "{what}");
        assert_eq!(owner.setattr(h, owner_sattr(None, Some(4000))).await.unwrap_err(), nfsstat3::NFS3ERR_PERM, "{what}");
        assert_eq!(owner.setattr(h, owner_sattr(Some(2000), None)).await.unwrap_err(), nfsstat3::NFS3ERR_PERM, "{what}");
        // Root: anything, including the same ids again.
        rootc.setattr(h, owner_sattr(Some(1000), Some(3000))).await.unwrap();
        let a = rootc.setattr(h, owner_sattr(Some(2000), Some(4000))).await.unwrap();
        assert_eq!((a.uid, a.gid), (2000, 4000), "{what}");
    }
    // A non-owner setting other attributes follows the rules it always did: the mode is the
    // owner's, the times "now" anyone's who may write. Root gave the file to 2000: uid 1000 is
    // now a non-owner of a 0666 file.
    let (_, file) = &objects[0];
    assert_eq!(owner.setattr(file, sattr_mode(0o600)).await.unwrap_err(), nfsstat3::NFS3ERR_PERM);
    let now = sattr3 { atime: set_atime::SET_TO_SERVER_TIME, mtime: set_mtime::SET_TO_SERVER_TIME, ..Default::default() };
    owner.setattr(file, now).await.unwrap();
}

/// `.snapshots` in a dataset's root is the server's: every way of making that name answers
/// EXIST (an UNCHECKED CREATE used to answer STALE) and changes nothing. Going up from a
/// snapshot's root leads to `.snapshots`, and from there to the dataset's root.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_snapshot_directory_name_is_taken_and_leads_back_up() {
    let server = Server::start();
    let mut c = Client::mount(server.nfs_port, "/").await.unwrap();
    let root = c.root.clone();
    let f = c.create(&root, b"f", 0o644).await.unwrap();
    c.write(&f, 0, b"data").await.unwrap();
    let sub = c.mkdir(&root, b"sub", 0o755).await.unwrap();
    let out = server.cli(&["dataset", "--admin", &server.admin, "snapshot", "root", "snap1", "--readonly"]);
    assert!(out.status.success(), "snapshot: {}", String::from_utf8_lossy(&out.stderr));
    let snapdir = c.lookup(&root, b".snapshots").await.unwrap();
    let snapdir_attr = c.getattr(&snapdir).await.unwrap();
    let listing = c.readdir_all(&root).await.unwrap();

    const NAME: &[u8] = b".snapshots";
    let exist = nfsstat3::NFS3ERR_EXIST;
    assert_eq!(c.create_unchecked(&root, NAME, sattr3::default()).await.unwrap_err(), exist, "CREATE UNCHECKED");
    assert_eq!(c.create_unchecked(&root, NAME, sattr3 { size: set_size3::Some(0), ..Default::default() }).await.unwrap_err(), exist, "CREATE UNCHECKED with a size");
    assert_eq!(c.create(&root, NAME, 0o644).await.unwrap_err(), exist, "CREATE GUARDED");
    assert_eq!(c.create_exclusive(&root, NAME).await.unwrap_err(), exist, "CREATE EXCLUSIVE");
    assert_eq!(c.mkdir(&root, NAME, 0o755).await.unwrap_err(), exist, "MKDIR");
    assert_eq!(c.symlink(&root, NAME, b"f").await.unwrap_err(), exist, "SYMLINK");
    assert_eq!(c.mknod(&root, NAME, mknoddata3::NF3FIFO(sattr_mode(0o644))).await.unwrap_err(), exist, "MKNOD");
    assert_eq!(c.link(&f, &root, NAME).await.unwrap_err(), exist, "LINK");
    assert_eq!(c.rename(&root, b"f", &root, NAME).await.unwrap_err(), exist, "RENAME a file onto it");
    assert_eq!(c.rename(&root, b"sub", &root, NAME).await.unwrap_err(), exist, "RENAME a directory onto it");
    // Nothing changed: the same listing, the file and the snapshot directory as they were.
    assert_eq!(c.readdir_all(&root).await.unwrap(), listing);
    assert_eq!(c.lookup(&root, NAME).await.unwrap(), snapdir);
    assert_eq!(c.getattr(&snapdir).await.unwrap().type_, ftype3::NF3DIR);
    assert_eq!((c.getattr(&f).await.unwrap().nlink, c.read_all(&f).await.unwrap()), (1, b"data".to_vec()));
    assert_eq!(c.lookup(&root, b"sub").await.unwrap(), sub);
    // In a subdirectory the name is an ordinary one.
    c.create(&sub, NAME, 0o644).await.unwrap();

    // Up from a snapshot: its root's parent is `.snapshots`, whose parent is the dataset root.
    let snap = c.lookup(&snapdir, b"snap1").await.unwrap();
    assert_eq!(c.lookup(&snap, b"..").await.unwrap(), snapdir, ".snapshots/snap1/..");
    assert_eq!(c.lookup(&snapdir, b"..").await.unwrap(), root, ".snapshots/..");
    let snap_sub = c.lookup(&snap, b"sub").await.unwrap();
    assert_eq!(c.lookup(&snap_sub, b"..").await.unwrap(), snap, ".snapshots/snap1/sub/..");
    // READDIR says the same of "..".
    let (entries, _, _) = c.readdir_page(&snap, 0, cookieverf3::default()).await.unwrap();
    let dotdot = entries.iter().find(|(n, _, _)| n == b"..").expect("a .. entry");
    assert_eq!(dotdot.1, snapdir_attr.fileid, "the .. entry of a snapshot's root is .snapshots");
    let (entries, _, _) = c.readdir_page(&snapdir, 0, cookieverf3::default()).await.unwrap();
    let dotdot = entries.iter().find(|(n, _, _)| n == b"..").expect("a .. entry");
    assert_eq!(dotdot.1, c.getattr(&root).await.unwrap().fileid);
}
