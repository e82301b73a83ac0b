//! NFSv3 client plumbing over `nfs3_client`: one request at a time per connection, so
//! concurrency is a pool of connections, each driven by its own task.

use anyhow::{anyhow, bail, Result};
use nfs3_client::tokio::{TokioConnector, TokioIo};
use nfs3_client::{Nfs3Connection, Nfs3ConnectionBuilder};
use nfs3_types::nfs3::*;
use nfs3_types::rpc::{auth_unix, opaque_auth};
use nfs3_types::xdr_codec::Opaque;
use std::future::Future;
use std::time::Duration;
use tokio::net::TcpStream;

pub type Conn = Nfs3Connection<TokioIo<TcpStream>>;

/// Where an NFS server listens: NFS and MOUNT ports (equal for slatefs and ZeroFS) and the export.
#[derive(Clone, Debug)]
pub struct Endpoint {
    pub nfs_port: u16,
    pub mount_port: u16,
    pub export: String,
}

pub fn name(n: &str) -> filename3<'static> {
    filename3(Opaque::owned(n.as_bytes().to_vec()))
}

pub fn ok<T, E: std::fmt::Debug>(what: &str, r: Nfs3Result<T, E>) -> Result<T> {
    match r {
        Nfs3Result::Ok(v) => Ok(v),
        Nfs3Result::Err((stat, _)) => Err(anyhow!("{what}: {stat:?}")),
    }
}

pub async fn connect(ep: &Endpoint) -> Result<Conn> {
    let auth = auth_unix { stamp: 1, machinename: Opaque::owned(b"nfsbench".to_vec()), uid: 0, gid: 0, gids: vec![] };
    Nfs3ConnectionBuilder::new(TokioConnector, "127.0.0.1", ep.export.as_str())
        .mount_port(ep.mount_port)
        .nfs3_port(ep.nfs_port)
        .connect_from_privileged_port(false)
        .credential(opaque_auth::auth_unix(&auth))
        .mount()
        .await
        .map_err(|e| anyhow!("mount {} on port {}: {e:?}", ep.export, ep.nfs_port))
}

/// Connects, retrying for up to `wait` (servers that are still starting).
pub async fn connect_wait(ep: &Endpoint, wait: Duration) -> Result<Conn> {
    let deadline = std::time::Instant::now() + wait;
    loop {
        match connect(ep).await {
            Ok(c) => return Ok(c),
            Err(e) if std::time::Instant::now() > deadline => return Err(e),
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
}

pub async fn pool(ep: &Endpoint, n: usize) -> Result<Vec<Conn>> {
    let mut v = Vec::with_capacity(n);
    for _ in 0..n {
        v.push(connect(ep).await?);
    }
    Ok(v)
}

/// Runs `f(conn, task_index)` on every connection concurrently; gives the connections back.
pub async fn par<F, Fut>(conns: Vec<Conn>, f: F) -> Result<Vec<Conn>>
where
    F: Fn(Conn, usize) -> Fut,
    Fut: Future<Output = Result<Conn>> + Send + 'static,
{
    let handles: Vec<_> = conns.into_iter().enumerate().map(|(i, c)| tokio::spawn(f(c, i))).collect();
    let mut out = Vec::with_capacity(handles.len());
    let mut first_err = None;
    for h in handles {
        match h.await {
            Ok(Ok(c)) => out.push(c),
            Ok(Err(e)) => first_err = first_err.or(Some(e)),
            Err(e) => first_err = first_err.or(Some(anyhow!("task: {e}"))),
        }
    }
    match first_err {
        Some(e) => Err(e),
        None => Ok(out),
    }
}

pub async fn fsinfo(c: &mut Conn, root: &nfs_fh3) -> Result<FSINFO3resok> {
    ok("FSINFO", c.fsinfo(&FSINFO3args { fsroot: root.clone() }).await?)
}

pub async fn lookup(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<(nfs_fh3, post_op_attr)> {
    let r = ok("LOOKUP", c.lookup(&LOOKUP3args { what: diropargs3 { dir: dir.clone(), name: name(n) } }).await?)?;
    Ok((r.object, r.obj_attributes))
}

fn handle_or_lookup(h: post_op_fh3) -> Option<nfs_fh3> {
    match h {
        post_op_fh3::Some(h) => Some(h),
        post_op_fh3::None => None,
    }
}

pub async fn create(c: &mut Conn, dir: &nfs_fh3, n: &str, guarded: bool) -> Result<nfs_fh3> {
    let attr = sattr3 { mode: set_mode3::Some(0o644), ..Default::default() };
    let how = if guarded { createhow3::GUARDED(attr) } else { createhow3::UNCHECKED(attr) };
    let r = ok("CREATE", c.create(&CREATE3args { where_: diropargs3 { dir: dir.clone(), name: name(n) }, how }).await?)?;
    match handle_or_lookup(r.obj) {
        Some(h) => Ok(h),
        None => Ok(lookup(c, dir, n).await?.0),
    }
}

pub async fn mkdir(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<nfs_fh3> {
    let attributes = sattr3 { mode: set_mode3::Some(0o755), ..Default::default() };
    let r = ok("MKDIR", c.mkdir(&MKDIR3args { where_: diropargs3 { dir: dir.clone(), name: name(n) }, attributes }).await?)?;
    match handle_or_lookup(r.obj) {
        Some(h) => Ok(h),
        None => Ok(lookup(c, dir, n).await?.0),
    }
}

/// Writes all of `data` at `offset` (retrying short writes).
pub async fn write(c: &mut Conn, f: &nfs_fh3, offset: u64, data: &[u8], stable: stable_how) -> Result<()> {
    let mut done = 0usize;
    let mut guard = 0;
    while done < data.len() {
        let chunk = &data[done..];
        let r = ok(
            "WRITE",
            c.write(&WRITE3args { file: f.clone(), offset: offset + done as u64, count: chunk.len() as u32, stable, data: Opaque::borrowed(chunk) })
                .await?,
        )?;
        if r.count == 0 {
            bail!("WRITE wrote 0 bytes");
        }
        done += r.count as usize;
        guard += 1;
        if guard > 1024 {
            bail!("WRITE: too many short writes");
        }
    }
    Ok(())
}

/// Reads exactly `count` bytes at `offset` (retrying short reads); returns the bytes read.
pub async fn read(c: &mut Conn, f: &nfs_fh3, offset: u64, count: u32) -> Result<usize> {
    let mut done = 0u32;
    let mut guard = 0;
    while done < count {
        let r = ok("READ", c.read(&READ3args { file: f.clone(), offset: offset + done as u64, count: count - done }).await?)?;
        let n = r.data.0.len() as u32;
        done += n;
        if r.eof || n == 0 {
            break;
        }
        guard += 1;
        if guard > 1024 {
            bail!("READ: too many short reads");
        }
    }
    if done != count {
        bail!("READ at {offset}: got {done} of {count} bytes");
    }
    Ok(done as usize)
}

pub async fn commit(c: &mut Conn, f: &nfs_fh3) -> Result<()> {
    ok("COMMIT", c.commit(&COMMIT3args { file: f.clone(), offset: 0, count: 0 }).await?).map(|_| ())
}

pub async fn getattr(c: &mut Conn, f: &nfs_fh3) -> Result<fattr3> {
    ok("GETATTR", c.getattr(&GETATTR3args { object: f.clone() }).await?).map(|r| r.obj_attributes)
}

pub async fn remove(c: &mut Conn, dir: &nfs_fh3, n: &str) -> Result<()> {
    ok("REMOVE", c.remove(&REMOVE3args { object: diropargs3 { dir: dir.clone(), name: name(n) } }).await?).map(|_| ())
}

/// Lists a whole directory with READDIRPLUS; returns the number of entries other than . and ..
pub async fn readdirplus_count(c: &mut Conn, dir: &nfs_fh3) -> Result<usize> {
    let mut cookie = 0;
    let mut verf = cookieverf3::default();
    let mut n = 0usize;
    for _page in 0..1_000_000 {
        let r = ok(
            "READDIRPLUS",
            c.readdirplus(&READDIRPLUS3args { dir: dir.clone(), cookie, cookieverf: verf, dircount: 65536, maxcount: 262144 }).await?,
        )?;
        verf = r.cookieverf;
        for e in r.reply.entries.0.iter() {
            cookie = e.cookie;
            let nm = e.name.0.as_ref();
            if nm != b"." && nm != b".." {
                n += 1;
            }
        }
        if r.reply.eof {
            return Ok(n);
        }
        if r.reply.entries.0.is_empty() {
            bail!("READDIRPLUS: empty page without eof");
        }
    }
    bail!("READDIRPLUS: too many pages")
}
