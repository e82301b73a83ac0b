//! A small synchronous-looking NFSv3 client over the `nfs3_client` crate, for tests: every
//! call returns `Result<_, nfsstat3>` so tests can assert on exact NFS status codes.
#![allow(dead_code)]

use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
pub use nfs3_types::nfs3::*;
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;
use tokio::net::TcpStream;

pub type Conn = Nfs3Connection<TokioIo<TcpStream>>;

/// How long a `try_*` call waits for a reply before it counts the connection as lost.
const TRANSPORT_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

pub struct Client {
    pub conn: Conn,
    pub root: nfs_fh3,
}

/// Deterministic pseudo-random bytes (xorshift): test data that a bug cannot fake.
pub fn pattern(seed: u64, len: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

pub fn fh(data: &[u8]) -> nfs_fh3 {
    nfs_fh3 { data: Opaque::owned(data.to_vec()) }
}

fn name(n: &[u8]) -> filename3<'static> {
    filename3(Opaque::owned(n.to_vec()))
}

fn ok<T, E: std::fmt::Debug>(r: Nfs3Result<T, E>) -> Result<T, nfsstat3> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((stat, _)) => Err(stat),
    }
}

pub fn sattr_mode(mode: u32) -> sattr3 {
    sattr3 { mode: set_mode3::Some(mode), ..Default::default() }
}

impl Client {
    /// Mounts `export` as root (uid 0).
    pub async fn mount(port: u16, export: &str) -> Result<Client, String> {
        Client::mount_as(port, export, 0, 0, &[]).await
    }

    pub async fn mount_as(port: u16, export: &str, uid: u32, gid: u32, gids: &[u32]) -> Result<Client, String> {
        let auth = auth_unix {
            stamp: 1,
            machinename: Opaque::owned(b"slatefs-test".to_vec()),
            uid,
            gid,
            gids: gids.to_vec(),
        };
        let conn = Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", export)
            .mount_port(port)
            .nfs3_port(port)
            .connect_from_privileged_port(false)
            .credential(opaque_auth::auth_unix(&auth))
            .mount()
            .await
            .map_err(|e| format!("{e:?}"))?;
        let root = conn.root_nfs_fh3();
        Ok(Client { conn, root })
    }

    pub async fn getattr(&mut self, f: &nfs_fh3) -> Result<fattr3, nfsstat3> {
        let r = self.conn.getattr(&GETATTR3args { object: f.clone() }).await.expect("rpc");
        ok(r).map(|r| r.obj_attributes)
    }

    pub async fn lookup(&mut self, dir: &nfs_fh3, n: &[u8]) -> Result<nfs_fh3, nfsstat3> {
        let r = self.conn.lookup(&LOOKUP3args { what: diropargs3 { dir: dir.clone(), name: name(n) } }).await.expect("rpc");
        ok(r).map(|r| r.object)
    }

    /// Walks a `/`-separated path from the root.
    pub async fn walk(&mut self, path: &str) -> Result<nfs_fh3, nfsstat3> {
        let mut cur = self.root.clone();
        for part in path.split('/').filter(|p| !p.is_empty()) {
            cur = self.lookup(&cur, part.as_bytes()).await?;
        }
        Ok(cur)
    }

    async fn create_how(&mut self, dir: &nfs_fh3, n: &[u8], how: createhow3) -> Result<nfs_fh3, nfsstat3> {
        let r = self.conn.create(&CREATE3args { where_: diropargs3 { dir: dir.clone(), name: name(n) }, how }).await.expect("rpc");
        let res = ok(r)?;
        match res.obj {
            post_op_fh3::Some(h) => Ok(h),
            post_op_fh3::None => self.lookup(dir, n).await,
        }
    }

    /// GUARDED create: fails with EXIST when the name is taken.
    pub async fn create(&mut self, dir: &nfs_fh3, n: &[u8], mode: u32) -> Result<nfs_fh3, nfsstat3> {
        self.create_how(dir, n, createhow3::GUARDED(sattr_mode(mode))).await
    }

    pub async fn create_unchecked(&mut self, dir: &nfs_fh3, n: &[u8], attr: sattr3) -> Result<nfs_fh3, nfsstat3> {
        self.create_how(dir, n, createhow3::UNCHECKED(attr)).await
    }

    pub async fn create_exclusive(&mut self, dir: &nfs_fh3, n: &[u8]) -> Result<nfs_fh3, nfsstat3> {
        self.create_how(dir, n, createhow3::EXCLUSIVE(createverf3([7; 8]))).await
    }

    pub async fn mkdir(&mut self, dir: &nfs_fh3, n: &[u8], mode: u32) -> Result<nfs_fh3, nfsstat3> {
        let r = self.conn.mkdir(&MKDIR3args { where_: diropargs3 { dir: dir.clone(), name: name(n) }, attributes: sattr_mode(mode) }).await.expect("rpc");
        let res = ok(r)?;
        match res.obj {
            post_op_fh3::Some(h) => Ok(h),
            post_op_fh3::None => self.lookup(dir, n).await,
        }
    }

    pub async fn symlink(&mut self, dir: &nfs_fh3, n: &[u8], target: &[u8]) -> Result<nfs_fh3, nfsstat3> {
        let r = self
            .conn
            .symlink(&SYMLINK3args {
                where_: diropargs3 { dir: dir.clone(), name: name(n) },
                symlink: symlinkdata3 { symlink_attributes: sattr3::default(), symlink_data: nfspath3(Opaque::owned(target.to_vec())) },
            })
            .await
            .expect("rpc");
        let res = ok(r)?;
        match res.obj {
            post_op_fh3::Some(h) => Ok(h),
            post_op_fh3::None => self.lookup(dir, n).await,
        }
    }

    pub async fn readlink(&mut self, f: &nfs_fh3) -> Result<Vec<u8>, nfsstat3> {
        let r = self.conn.readlink(&READLINK3args { symlink: f.clone() }).await.expect("rpc");
        ok(r).map(|r| r.data.0.to_vec())
    }

    pub async fn mknod(&mut self, dir: &nfs_fh3, n: &[u8], what: mknoddata3) -> Result<nfs_fh3, nfsstat3> {
        let r = self.conn.mknod(&MKNOD3args { where_: diropargs3 { dir: dir.clone(), name: name(n) }, what }).await.expect("rpc");
        let res = ok(r)?;
        match res.obj {
            post_op_fh3::Some(h) => Ok(h),
            post_op_fh3::None => self.lookup(dir, n).await,
        }
    }

    pub async fn link(&mut self, f: &nfs_fh3, dir: &nfs_fh3, n: &[u8]) -> Result<(), nfsstat3> {
        let r = self.conn.link(&LINK3args { file: f.clone(), link: diropargs3 { dir: dir.clone(), name: name(n) } }).await.expect("rpc");
        ok(r).map(|_| ())
    }

    pub async fn write(&mut self, f: &nfs_fh3, offset: u64, data: &[u8]) -> Result<u32, nfsstat3> {
        let r = self
            .conn
            .write(&WRITE3args { file: f.clone(), offset, count: data.len() as u32, stable: stable_how::FILE_SYNC, data: Opaque::borrowed(data) })
            .await
            .expect("rpc");
        ok(r).map(|r| r.count)
    }

    /// A WRITE sent UNSTABLE (an async-mode server acknowledges it before it is durable).
    pub async fn write_unstable(&mut self, f: &nfs_fh3, offset: u64, data: &[u8]) -> Result<u32, nfsstat3> {
        let r = self
            .conn
            .write(&WRITE3args { file: f.clone(), offset, count: data.len() as u32, stable: stable_how::UNSTABLE, data: Opaque::borrowed(data) })
            .await
            .expect("rpc");
        ok(r).map(|r| r.count)
    }

    pub async fn read(&mut self, f: &nfs_fh3, offset: u64, count: u32) -> Result<(Vec<u8>, bool), nfsstat3> {
        let r = self.conn.read(&READ3args { file: f.clone(), offset, count }).await.expect("rpc");
        ok(r).map(|r| (r.data.0.to_vec(), r.eof))
    }

    /// Reads the whole file in 1 MiB requests.
    pub async fn read_all(&mut self, f: &nfs_fh3) -> Result<Vec<u8>, nfsstat3> {
        let mut out = Vec::new();
        loop {
            let (data, eof) = self.read(f, out.len() as u64, 1 << 20).await?;
            out.extend_from_slice(&data);
            if eof || data.is_empty() {
                return Ok(out);
            }
        }
    }

    pub async fn setattr(&mut self, f: &nfs_fh3, attr: sattr3) -> Result<fattr3, nfsstat3> {
        let r = self.conn.setattr(&SETATTR3args { object: f.clone(), new_attributes: attr, guard: sattrguard3::None }).await.expect("rpc");
        ok(r).and_then(|r| match r.obj_wcc.after {
            post_op_attr::Some(a) => Ok(a),
            post_op_attr::None => Err(nfsstat3::NFS3ERR_IO),
        })
    }

    pub async fn remove(&mut self, dir: &nfs_fh3, n: &[u8]) -> Result<(), nfsstat3> {
        let r = self.conn.remove(&REMOVE3args { object: diropargs3 { dir: dir.clone(), name: name(n) } }).await.expect("rpc");
        ok(r).map(|_| ())
    }

    pub async fn rmdir(&mut self, dir: &nfs_fh3, n: &[u8]) -> Result<(), nfsstat3> {
        let r = self.conn.rmdir(&RMDIR3args { object: diropargs3 { dir: dir.clone(), name: name(n) } }).await.expect("rpc");
        ok(r).map(|_| ())
    }

    pub async fn rename(&mut self, from: &nfs_fh3, fname: &[u8], to: &nfs_fh3, tname: &[u8]) -> Result<(), nfsstat3> {
        let r = self
            .conn
            .rename(&RENAME3args { from: diropargs3 { dir: from.clone(), name: name(fname) }, to: diropargs3 { dir: to.clone(), name: name(tname) } })
            .await
            .expect("rpc");
        ok(r).map(|_| ())
    }

    /// One READDIRPLUS page after `cookie`: (name, fileid, cookie) and eof.
    pub async fn readdir_page(&mut self, dir: &nfs_fh3, cookie: u64, verf: cookieverf3) -> Result<(Vec<(Vec<u8>, u64, u64)>, bool, cookieverf3), nfsstat3> {
        let r = self
            .conn
            .readdirplus(&READDIRPLUS3args { dir: dir.clone(), cookie, cookieverf: verf, dircount: 8192, maxcount: 65536 })
            .await
            .expect("rpc");
        let res = ok(r)?;
        let entries = res.reply.entries.0.into_iter().map(|e| (e.name.0.to_vec(), e.fileid, e.cookie)).collect();
        Ok((entries, res.reply.eof, res.cookieverf))
    }

    /// Every name in a directory, "." and ".." left out.
    pub async fn readdir_all(&mut self, dir: &nfs_fh3) -> Result<Vec<Vec<u8>>, nfsstat3> {
        let mut names = Vec::new();
        let mut cookie = 0;
        let mut verf = cookieverf3::default();
        loop {
            let (entries, eof, v) = self.readdir_page(dir, cookie, verf).await?;
            verf = v;
            for (n, _, c) in entries {
                cookie = c;
                if n != b"." && n != b".." {
                    names.push(n);
                }
            }
            if eof {
                return Ok(names);
            }
        }
    }

    pub async fn fsstat(&mut self, f: &nfs_fh3) -> Result<FSSTAT3resok, nfsstat3> {
        let r = self.conn.fsstat(&FSSTAT3args { fsroot: f.clone() }).await.expect("rpc");
        ok(r)
    }

    pub async fn commit(&mut self, f: &nfs_fh3) -> Result<(), nfsstat3> {
        let r = self.conn.commit(&COMMIT3args { file: f.clone(), offset: 0, count: 0 }).await.expect("rpc");
        ok(r).map(|_| ())
    }
}

impl Client {
    /// A WRITE whose transport failure is reported instead of panicking (for kill -9 tests).
    /// nfs3_client does not notice a closed connection by itself, so the call is bounded.
    pub async fn try_write(&mut self, f: &nfs_fh3, offset: u64, data: &[u8]) -> Result<Result<u32, nfsstat3>, String> {
        let args = WRITE3args { file: f.clone(), offset, count: data.len() as u32, stable: stable_how::FILE_SYNC, data: Opaque::borrowed(data) };
        match tokio::time::timeout(TRANSPORT_TIMEOUT, self.conn.write(&args)).await {
            Ok(Ok(r)) => Ok(ok(r).map(|r| r.count)),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Err(_) => Err("no reply (connection lost)".into()),
        }
    }

    /// A GUARDED create whose transport failure is reported instead of panicking.
    pub async fn try_create(&mut self, dir: &nfs_fh3, n: &[u8]) -> Result<Result<(), nfsstat3>, String> {
        let args = CREATE3args { where_: diropargs3 { dir: dir.clone(), name: name(n) }, how: createhow3::GUARDED(sattr3::default()) };
        match tokio::time::timeout(TRANSPORT_TIMEOUT, self.conn.create(&args)).await {
            Ok(Ok(r)) => Ok(ok(r).map(|_| ())),
            Ok(Err(e)) => Err(format!("{e:?}")),
            Err(_) => Err("no reply (connection lost)".into()),
        }
    }
}
