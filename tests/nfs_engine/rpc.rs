//! Included by tests/nfs_engine.rs.

use super::nfs::*;
use super::raw_rpc;
use super::server::{Server, ServerOptions};

const ROOT_USER: raw_rpc::Cred = raw_rpc::Cred::Unix { uid: 0, gid: 0 };

/// RPC-level errors get their RFC 5531 answers, nothing changes, and the connection goes on;
/// AUTH_NULL callers act as nobody (65534).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rpc_errors_are_answered_and_auth_null_is_nobody() {
    use raw_rpc::*;
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root_fh = c.root.clone();
    let root = root_fh.data.0.to_vec();
    let mut r = Raw::connect(port).await;

    // RPC version 3: MSG_DENIED / RPC_MISMATCH, versions 2..2.
    let rep = r.roundtrip(&call(1, 3, NFS, 3, 0, ROOT_USER, &Args::default())).await;
    assert_eq!((0..6).map(|i| word(&rep, i)).collect::<Vec<_>>(), [1, 1, 1, 0, 2, 2]);
    // An unknown program, a wrong NFS version, an unknown procedure.
    let rep = r.roundtrip(&call(2, 2, 123456, 1, 0, ROOT_USER, &Args::default())).await;
    assert_eq!((accepted(&rep).0, accepted(&rep).1), (2, 1), "PROG_UNAVAIL");
    let rep = r.roundtrip(&call(3, 2, NFS, 4, 0, ROOT_USER, &Args::default())).await;
    let (_, stat, rest) = accepted(&rep);
    assert_eq!((stat, word(rest, 0), word(rest, 1)), (2, 3, 3), "PROG_MISMATCH 3..3");
    let rep = r.roundtrip(&call(4, 2, MOUNT, 1, 0, ROOT_USER, &Args::default())).await;
    assert_eq!(accepted(&rep).1, 2, "MOUNT v1: PROG_MISMATCH");
    let rep = r.roundtrip(&nfs_call(5, 22, ROOT_USER, &Args::default())).await;
    assert_eq!(accepted(&rep).1, 3, "PROC_UNAVAIL");
    // Arguments that do not decode: GARBAGE_ARGS, and nothing is created.
    let rep = r.roundtrip(&nfs_call(6, 1, ROOT_USER, &Args::default().u32(200))).await;
    assert_eq!(accepted(&rep).1, 4, "GETATTR with a truncated handle");
    let bad_create = Args::default().opaque(&root).opaque(b"garbage-create").u32(9);
    let rep = r.roundtrip(&nfs_call(7, 8, ROOT_USER, &bad_create)).await;
    assert_eq!(accepted(&rep).1, 4, "CREATE with an unknown mode");
    assert_eq!(c.lookup(&root_fh, b"garbage-create").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    // RPCSEC_GSS: MSG_DENIED / AUTH_ERROR / AUTH_TOOWEAK.
    let rep = r.roundtrip(&nfs_call(8, 0, Cred::Flavor(6), &Args::default())).await;
    assert_eq!((0..5).map(|i| word(&rep, i)).collect::<Vec<_>>(), [8, 1, 1, 1, 5]);
    // The connection still serves.
    let rep = r.roundtrip(&nfs_call(9, 0, ROOT_USER, &Args::default())).await;
    assert_eq!((accepted(&rep).0, accepted(&rep).1), (9, 0));

    // AUTH_NULL: the root directory (root's, not world-writable) refuses nobody.
    let root_attr = c.getattr(&root_fh).await.unwrap();
    assert_eq!((root_attr.uid, root_attr.mode & 0o002), (0, 0));
    let create = |xid: u32, dir: &[u8]| nfs_call(xid, 8, Cred::Null, &Args::default().opaque(dir).opaque(b"anon").u32(0).sattr_mode(0o644));
    let rep = r.roundtrip(&create(10, &root)).await;
    let (_, stat, res) = accepted(&rep);
    assert_eq!((stat, word(res, 0)), (0, nfsstat3::NFS3ERR_ACCES as u32));
    assert_eq!(c.lookup(&root_fh, b"anon").await.unwrap_err(), nfsstat3::NFS3ERR_NOENT);
    // In a world-writable directory nobody may create, and owns what it creates.
    let open = c.mkdir(&root_fh, b"open", 0o777).await.unwrap();
    c.setattr(&open, sattr_mode(0o777)).await.unwrap();
    let rep = r.roundtrip(&create(11, &open.data.0)).await;
    let (_, stat, res) = accepted(&rep);
    assert_eq!((stat, word(res, 0)), (0, 0));
    let f = c.lookup(&open, b"anon").await.unwrap();
    let a = c.getattr(&f).await.unwrap();
    assert_eq!((a.uid, a.gid), (65534, 65534));
}

/// A retransmitted non-idempotent call (same xid, same arguments, from the same address) gets
/// the first call's reply again, byte for byte, and has no second effect, even on another
/// connection; a new xid is a new call.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retransmitted_calls_are_answered_from_the_cache() {
    use raw_rpc::*;
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let root_fh = c.root.clone();
    let root = root_fh.data.0.to_vec();
    let mut r = Raw::connect(port).await;

    let mkdir_args = Args::default().opaque(&root).opaque(b"once").sattr_mode(0o755);
    let mkdir = nfs_call(100, 9, ROOT_USER, &mkdir_args);
    let first = r.roundtrip(&mkdir).await;
    assert_eq!(word(accepted(&first).2, 0), 0, "MKDIR ok");
    let again = r.roundtrip(&mkdir).await;
    assert_eq!(again, first, "the cached reply, not EXIST");
    let other = r.roundtrip(&nfs_call(101, 9, ROOT_USER, &mkdir_args)).await;
    assert_eq!(word(accepted(&other).2, 0), nfsstat3::NFS3ERR_EXIST as u32, "a new xid is a new call");

    c.create(&root_fh, b"victim", 0o644).await.unwrap();
    let remove = nfs_call(102, 12, ROOT_USER, &Args::default().opaque(&root).opaque(b"victim"));
    let first = r.roundtrip(&remove).await;
    assert_eq!(word(accepted(&first).2, 0), 0, "REMOVE ok");
    let mut r2 = Raw::connect(port).await;
    assert_eq!(r2.roundtrip(&remove).await, first, "not NOENT: the reply of the first REMOVE");

    let names = c.readdir_all(&root_fh).await.unwrap();
    assert_eq!(names.iter().filter(|n| n.as_slice() == b"once").count(), 1);
    assert!(!names.iter().any(|n| n.as_slice() == b"victim"));
}

/// Calls written back to back on one connection run concurrently and are answered as they
/// finish: quick GETATTRs overtake 1 MiB synchronous WRITEs sent before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipelined_calls_are_answered_out_of_order() {
    use raw_rpc::*;
    const MIB: usize = 1 << 20;
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let f = c.create(&c.root.clone(), b"pipe", 0o644).await.unwrap();
    let fh = f.data.0.to_vec();
    let mut batch = Vec::new();
    for i in 0..8u32 {
        let args = Args::default().opaque(&fh).u64(i as u64 * MIB as u64).u32(MIB as u32).u32(2).opaque(&pattern(i as u64, MIB));
        batch.extend(nfs_call(1000 + i, 7, ROOT_USER, &args));
    }
    for i in 0..32u32 {
        batch.extend(nfs_call(2000 + i, 1, ROOT_USER, &Args::default().opaque(&fh)));
    }
    let mut r = Raw::connect(port).await;
    r.send(&batch).await;
    let mut order = Vec::new();
    for _ in 0..40 {
        let rep = r.recv().await;
        let (xid, stat, res) = accepted(&rep);
        assert_eq!((stat, word(res, 0)), (0, 0), "xid {xid}");
        order.push(xid);
    }
    let mut sorted = order.clone();
    sorted.sort();
    assert_eq!(sorted, (1000..1008).chain(2000..2032).collect::<Vec<_>>(), "every call answered once");
    let last_write = order.iter().rposition(|x| *x < 2000).unwrap();
    let first_getattr = order.iter().position(|x| *x >= 2000).unwrap();
    assert!(first_getattr < last_write, "replies follow completion, not arrival: {order:?}");
    let data = c.read_all(&f).await.unwrap();
    assert_eq!(data.len(), 8 * MIB);
    for i in 0..8 {
        assert!(data[i * MIB..(i + 1) * MIB] == pattern(i as u64, MIB)[..], "block {i}");
    }
}

/// Names in a READDIR/READDIRPLUS reply body (dir attributes present), and its eof flag.
fn listed(resok: &[u8], plus: bool) -> (usize, bool) {
    use raw_rpc::word;
    let at = |i: usize| word(&resok[i..], 0);
    let pad = |n: usize| (n + 3) & !3;
    assert_eq!(at(0), 1, "directory attributes");
    let mut i = 4 + 84 + 8;
    let mut n = 0;
    while at(i) == 1 {
        i += 4 + 8;
        i += 4 + pad(at(i) as usize) + 8;
        if plus {
            i += 4 + if at(i) == 1 { 84 } else { 0 };
            i += 4 + if at(i) == 1 { 4 + pad(at(i + 4) as usize) } else { 0 };
        }
        n += 1;
    }
    assert_eq!(i + 8, resok.len(), "list end and eof close the reply");
    (n, at(i + 4) == 1)
}

/// READDIR and READDIRPLUS stay within the client's byte budgets exactly, also below 128
/// bytes, and answer TOOSMALL when not one entry fits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readdir_budgets_are_honoured_even_when_tiny() {
    use raw_rpc::*;
    let server = Server::start();
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let d = c.mkdir(&c.root.clone(), b"small", 0o755).await.unwrap();
    for n in [b"a", b"b", b"c"] {
        c.create(&d, n, 0o644).await.unwrap();
    }
    let dfh = d.data.0.to_vec();
    let mut r = Raw::connect(port).await;
    let readdir = |xid: u32, count: u32| nfs_call(xid, 16, ROOT_USER, &Args::default().opaque(&dfh).u64(0).u64(0).u32(count));
    let plus = |xid: u32, dircount: u32, maxcount: u32| {
        nfs_call(xid, 17, ROOT_USER, &Args::default().opaque(&dfh).u64(0).u64(0).u32(dircount).u32(maxcount))
    };

    for count in [0, 100, 127] {
        let rep = r.roundtrip(&readdir(count, count)).await;
        let (_, stat, res) = accepted(&rep);
        assert_eq!((stat, word(res, 0)), (0, nfsstat3::NFS3ERR_TOOSMALL as u32), "count {count}");
    }
    let rep = r.roundtrip(&readdir(140, 140)).await;
    let res = accepted(&rep).2;
    assert_eq!(word(res, 0), 0);
    assert!(res.len() - 4 <= 140);
    assert_eq!(listed(&res[4..], false), (1, false));
    let rep = r.roundtrip(&readdir(141, 4096)).await;
    let res = accepted(&rep).2;
    let (all, eof) = listed(&res[4..], false);
    assert!(all >= 3 && eof, "{all} entries, eof {eof}");

    // dircount 40 covers one entry's id, name and cookie (24 bytes), not two.
    let rep = r.roundtrip(&plus(200, 40, 8192)).await;
    let res = accepted(&rep).2;
    assert_eq!(word(res, 0), 0);
    assert_eq!(listed(&res[4..], true), (1, false));
    let rep = r.roundtrip(&plus(201, 8192, 200)).await;
    assert_eq!(word(accepted(&rep).2, 0), nfsstat3::NFS3ERR_TOOSMALL as u32, "maxcount below one entry");
    let rep = r.roundtrip(&plus(202, 8192, 8192)).await;
    let res = accepted(&rep).2;
    assert!(res.len() - 4 <= 8192);
    assert_eq!(listed(&res[4..], true), (all, true));
}

/// WRITE reports what it promises: FILE_SYNC in sync mode whatever was asked; in async mode
/// UNSTABLE when asked for UNSTABLE, and FILE_SYNC, flushed before the reply, when asked for
/// it (the data survives a kill -9 without a COMMIT).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn write_stability_is_reported_honestly() {
    use raw_rpc::*;
    const UNSTABLE: u32 = 0;
    const FILE_SYNC: u32 = 2;
    // status, wcc_data (pre_op_attr 4+24, post_op_attr 4+84), count, then committed.
    const COMMITTED: usize = (4 + 28 + 88 + 4) / 4;
    async fn write(r: &mut Raw, xid: u32, fh: &[u8], offset: u64, stable: u32, data: &[u8]) -> (u32, Vec<u8>) {
        let args = Args::default().opaque(fh).u64(offset).u32(data.len() as u32).u32(stable).opaque(data);
        let rep = r.roundtrip(&nfs_call(xid, 7, ROOT_USER, &args)).await;
        let res = accepted(&rep).2;
        assert_eq!(word(res, 0), 0, "WRITE ok");
        (word(res, COMMITTED), res[(COMMITTED + 1) * 4..(COMMITTED + 3) * 4].to_vec())
    }

    let sync = Server::start();
    let mut c = Client::mount(sync.nfs_port, "/").await.unwrap();
    let f = c.create(&c.root.clone(), b"s", 0o644).await.unwrap();
    let mut r = Raw::connect(sync.nfs_port).await;
    assert_eq!(write(&mut r, 1, &f.data.0, 0, UNSTABLE, b"sync").await.0, FILE_SYNC);

    let mut server = Server::start_with(ServerOptions { durability: Some("async".into()), ..Default::default() });
    let port = server.nfs_port;
    let mut c = Client::mount(port, "/").await.unwrap();
    let f = c.create(&c.root.clone(), b"a", 0o644).await.unwrap();
    let mut r = Raw::connect(port).await;
    let (committed, verf) = write(&mut r, 2, &f.data.0, 0, UNSTABLE, &pattern(1, 4096)).await;
    assert_eq!(committed, UNSTABLE);
    let (committed, verf2) = write(&mut r, 3, &f.data.0, 4096, FILE_SYNC, &pattern(2, 4096)).await;
    assert_eq!((committed, &verf2), (FILE_SYNC, &verf), "one verifier per server run");
    server.kill9();
    server.restart();
    let mut c = Client::mount(port, "/").await.unwrap();
    let data = c.read_all(&f).await.unwrap();
    assert_eq!(&data[4096..], &pattern(2, 4096)[..], "the FILE_SYNC write survived kill -9");
}

/// MOUNT v3 and PORTMAP v2 on the NFS port: MNT gives the handle the client library gets,
/// with AUTH_UNIX offered; GETPORT points at this port for NFSv3 and MOUNT v3 over TCP only.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mount_and_portmap_on_the_nfs_port() {
    use raw_rpc::*;
    let server = Server::start();
    let port = server.nfs_port;
    let c = Client::mount(port, "/").await.unwrap();
    let mut r = Raw::connect(port).await;
    let mount = |xid: u32, proc_: u32, args: &Args| call(xid, 2, MOUNT, 3, proc_, ROOT_USER, args);

    let rep = r.roundtrip(&mount(1, 1, &Args::default().opaque(b"/"))).await;
    let res = accepted(&rep).2;
    let fh = Args::default().opaque(&c.root.data.0).0;
    assert_eq!(word(res, 0), 0, "MNT3_OK");
    assert_eq!(&res[4..4 + fh.len()], &fh[..], "the root handle");
    assert_eq!(&res[4 + fh.len()..], &[0, 0, 0, 1, 0, 0, 0, 1], "flavors: AUTH_UNIX");
    let rep = r.roundtrip(&mount(2, 1, &Args::default().opaque(b"/no-such-dataset"))).await;
    assert_eq!(accepted(&rep).2, &[0, 0, 0, 2], "MNT3ERR_NOENT");
    let rep = r.roundtrip(&mount(3, 5, &Args::default())).await;
    let export = Args::default().u32(1).opaque(b"/").u32(0).u32(0).0;
    assert_eq!(accepted(&rep).2, &export[..], "EXPORT: /");
    let rep = r.roundtrip(&mount(4, 3, &Args::default().opaque(b"/"))).await;
    assert_eq!((accepted(&rep).1, accepted(&rep).2.len()), (0, 0), "UMNT: void");
    let rep = r.roundtrip(&mount(5, 2, &Args::default())).await;
    assert_eq!(accepted(&rep).2, &[0, 0, 0, 0], "DUMP: empty list");

    let getport = |xid: u32, prog: u32, vers: u32, prot: u32| {
        call(xid, 2, 100000, 2, 3, Cred::Null, &Args::default().u32(prog).u32(vers).u32(prot).u32(0))
    };
    for (xid, prog, vers, prot, want) in [(6, NFS, 3, 6, port as u32), (7, MOUNT, 3, 6, port as u32), (8, NFS, 3, 17, 0), (9, 100021, 4, 6, 0)] {
        let rep = r.roundtrip(&getport(xid, prog, vers, prot)).await;
        assert_eq!(word(accepted(&rep).2, 0), want, "GETPORT {prog} v{vers} proto {prot}");
    }
}
