//! NFSv3 (RFC 1813): the dispatcher and the procedures that change nothing.
//!
//! Every procedure decodes all of its arguments before it calls the filesystem, so arguments
//! that do not decode are answered GARBAGE_ARGS with nothing changed.

use zerofs_nfsserve::nfs::{
    fattr3, fileid3, ftype3, nfs_fh3, nfsstat3, post_op_attr, pre_op_attr, wcc_attr, wcc_data,
};
use zerofs_nfsserve::vfs::AuthContext;

use super::nfs3_dir;
use super::nfs3_modify;
use super::xdr::{put, put_bool, put_opaque, put_u32, Dec, DecResult};
use super::Backend;

pub const PROGRAM: u32 = 100003;
pub const VERSION: u32 = 3;

pub const NULL: u32 = 0;
const GETATTR: u32 = 1;
const SETATTR: u32 = 2;
const LOOKUP: u32 = 3;
const ACCESS: u32 = 4;
const READLINK: u32 = 5;
const READ: u32 = 6;
const WRITE: u32 = 7;
const CREATE: u32 = 8;
const MKDIR: u32 = 9;
const SYMLINK: u32 = 10;
const MKNOD: u32 = 11;
const REMOVE: u32 = 12;
const RMDIR: u32 = 13;
const RENAME: u32 = 14;
const LINK: u32 = 15;
const READDIR: u32 = 16;
const READDIRPLUS: u32 = 17;
const FSSTAT: u32 = 18;
const FSINFO: u32 = 19;
const PATHCONF: u32 = 20;
const COMMIT: u32 = 21;

/// Calls whose second execution would not repeat the first one's answer: their replies are
/// kept in the duplicate request cache.
pub fn is_idempotent(proc_: u32) -> bool {
    !matches!(proc_, SETATTR | WRITE | CREATE | MKDIR | SYMLINK | MKNOD | REMOVE | RMDIR | RENAME | LINK | COMMIT)
}

/// The data bytes a WRITE call carries (0 for any other procedure), for the metrics.
pub fn write_count(proc_: u32, args: &[u8]) -> u64 {
    if proc_ != WRITE {
        return 0;
    }
    let d = &mut Dec::new(args);
    let count = d.opaque(64).and_then(|_| d.u64()).and_then(|_| d.u32());
    count.map(u64::from).unwrap_or(0)
}

pub enum Fail {
    Garbage,
    ProcUnavail,
}

impl From<super::xdr::Garbage> for Fail {
    fn from(_: super::xdr::Garbage) -> Fail {
        Fail::Garbage
    }
}

/// Runs procedure `proc_`, appending its results to `out` (after an accepted-SUCCESS header).
/// Returns the READ payload, which the writer sends after `out` without copying it in.
pub async fn dispatch<V: Backend>(vfs: &V, proc_: u32, auth: &AuthContext, args: &[u8], out: &mut Vec<u8>) -> Result<Vec<u8>, Fail> {
    let d = &mut Dec::new(args);
    match proc_ {
        NULL => {}
        GETATTR => getattr(vfs, auth, d, out).await?,
        SETATTR => nfs3_modify::setattr(vfs, auth, d, out).await?,
        LOOKUP => lookup(vfs, auth, d, out).await?,
        ACCESS => access(vfs, auth, d, out).await?,
        READLINK => readlink(vfs, auth, d, out).await?,
        READ => return Ok(read(vfs, auth, d, out).await?),
        WRITE => nfs3_modify::write(vfs, auth, d, out).await?,
        CREATE => nfs3_modify::create(vfs, auth, d, out).await?,
        MKDIR | SYMLINK | MKNOD => nfs3_modify::make_node(vfs, auth, proc_, d, out).await?,
        REMOVE => nfs3_modify::remove(vfs, auth, d, out, false).await?,
        RMDIR => nfs3_modify::remove(vfs, auth, d, out, true).await?,
        RENAME => nfs3_modify::rename(vfs, auth, d, out).await?,
        LINK => nfs3_modify::link(vfs, auth, d, out).await?,
        READDIR => nfs3_dir::readdir(vfs, auth, d, out).await?,
        READDIRPLUS => nfs3_dir::readdirplus(vfs, auth, d, out).await?,
        FSSTAT => fsstat(vfs, auth, d, out).await?,
        FSINFO => fsinfo(vfs, auth, d, out).await?,
        PATHCONF => pathconf(vfs, auth, d, out).await?,
        COMMIT => nfs3_modify::commit(vfs, auth, d, out).await?,
        _ => return Err(Fail::ProcUnavail),
    }
    Ok(Vec::new())
}

pub fn status(out: &mut Vec<u8>, s: nfsstat3) {
    put_u32(out, s as u32);
}

pub fn resolve<V: Backend>(vfs: &V, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
    vfs.fh_to_id(fh)
}

pub async fn post_attr<V: Backend>(vfs: &V, auth: &AuthContext, id: fileid3) -> post_op_attr {
    match vfs.getattr(auth, id).await {
        Ok(a) => post_op_attr::attributes(a),
        Err(_) => post_op_attr::Void,
    }
}

pub fn wcc_of(a: &fattr3) -> pre_op_attr {
    pre_op_attr::attributes(wcc_attr { size: a.size, mtime: a.mtime, ctime: a.ctime })
}

/// The attributes a directory had before a change, for the reply's wcc_data.
pub async fn pre_attr<V: Backend>(vfs: &V, auth: &AuthContext, id: fileid3) -> pre_op_attr {
    match vfs.getattr(auth, id).await {
        Ok(a) => wcc_of(&a),
        Err(_) => pre_op_attr::Void,
    }
}

pub async fn wcc<V: Backend>(vfs: &V, auth: &AuthContext, id: fileid3, before: pre_op_attr) -> wcc_data {
    wcc_data { before, after: post_attr(vfs, auth, id).await }
}

async fn getattr<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    match resolve(vfs, &fh) {
        Ok(id) => match vfs.getattr(auth, id).await {
            Ok(a) => {
                status(out, nfsstat3::NFS3_OK);
                put(out, &a);
            }
            Err(s) => status(out, s),
        },
        Err(s) => status(out, s),
    }
    Ok(())
}

async fn lookup<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let dir = d.fh()?;
    let name = d.opaque(super::xdr::MAX_NAME)?;
    let dirid = match resolve(vfs, &dir) {
        Ok(id) => id,
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
            return Ok(());
        }
    };
    match vfs.lookup(auth, dirid, &name.into()).await {
        Ok(id) => {
            let obj = post_attr(vfs, auth, id).await;
            let dir_attr = post_attr(vfs, auth, dirid).await;
            status(out, nfsstat3::NFS3_OK);
            put(out, &vfs.id_to_fh(id));
            put(out, &obj);
            put(out, &dir_attr);
        }
        Err(s) => {
            status(out, s);
            put(out, &post_attr(vfs, auth, dirid).await);
        }
    }
    Ok(())
}

const ACCESS3_READ: u32 = 0x01;
const ACCESS3_LOOKUP: u32 = 0x02;
const ACCESS3_MODIFY: u32 = 0x04;
const ACCESS3_EXTEND: u32 = 0x08;
const ACCESS3_DELETE: u32 = 0x10;
const ACCESS3_EXECUTE: u32 = 0x20;

/// The rights the mode bits give `auth` on an object with attributes `a`, as the filesystem
/// will enforce them (root may read and write anything and execute what anyone may).
pub fn access_rights(a: &fattr3, auth: &AuthContext) -> u32 {
    let is_dir = matches!(a.ftype, ftype3::NF3DIR);
    let (r, w, x) = if auth.uid == 0 {
        (true, true, is_dir || a.mode & 0o111 != 0)
    } else {
        let bits = if auth.uid == a.uid {
            a.mode >> 6
        } else if auth.gid == a.gid || auth.gids.contains(&a.gid) {
            a.mode >> 3
        } else {
            a.mode
        };
        (bits & 4 != 0, bits & 2 != 0, bits & 1 != 0)
    };
    let mut rights = if r { ACCESS3_READ } else { 0 };
    if is_dir {
        rights |= if x { ACCESS3_LOOKUP } else { 0 } | if w { ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE } else { 0 };
    } else {
        rights |= if w { ACCESS3_MODIFY | ACCESS3_EXTEND } else { 0 } | if x { ACCESS3_EXECUTE } else { 0 };
    }
    rights
}

async fn access<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let want = d.u32()?;
    let attr = match resolve(vfs, &fh) {
        Ok(id) => vfs.getattr(auth, id).await,
        Err(s) => Err(s),
    };
    match attr {
        Ok(a) => {
            status(out, nfsstat3::NFS3_OK);
            let granted = want & access_rights(&a, auth);
            put(out, &post_op_attr::attributes(a));
            put_u32(out, granted);
        }
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
        }
    }
    Ok(())
}

async fn readlink<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let id = match resolve(vfs, &fh) {
        Ok(id) => id,
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
            return Ok(());
        }
    };
    let result = vfs.readlink(auth, id).await;
    let attr = post_attr(vfs, auth, id).await;
    match result {
        Ok(target) => {
            status(out, nfsstat3::NFS3_OK);
            put(out, &attr);
            put_opaque(out, &target);
        }
        Err(s) => {
            status(out, s);
            put(out, &attr);
        }
    }
    Ok(())
}

async fn read<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<Vec<u8>> {
    let fh = d.fh()?;
    let offset = d.u64()?;
    let count = d.u32()?;
    let id = match resolve(vfs, &fh) {
        Ok(id) => id,
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
            return Ok(Vec::new());
        }
    };
    match vfs.read(auth, id, offset, count).await {
        Ok((data, eof)) => {
            let attr = post_attr(vfs, auth, id).await;
            status(out, nfsstat3::NFS3_OK);
            put(out, &attr);
            put_u32(out, data.len() as u32);
            put_bool(out, eof);
            // The opaque's length; its bytes and padding follow in the writer.
            put_u32(out, data.len() as u32);
            Ok(data)
        }
        Err(s) => {
            status(out, s);
            put(out, &post_attr(vfs, auth, id).await);
            Ok(Vec::new())
        }
    }
}

async fn fsstat<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let result = match resolve(vfs, &fh) {
        Ok(id) => vfs.fsstat(auth, id).await,
        Err(s) => Err(s),
    };
    match result {
        Ok(s) => {
            status(out, nfsstat3::NFS3_OK);
            put(out, &s);
        }
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
        }
    }
    Ok(())
}

async fn fsinfo<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let result = match resolve(vfs, &fh) {
        Ok(id) => vfs.fsinfo(auth, id).await,
        Err(s) => Err(s),
    };
    match result {
        Ok(info) => {
            status(out, nfsstat3::NFS3_OK);
            put(out, &info);
        }
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
        }
    }
    Ok(())
}

/// Hard links a file may have, as the filesystem counts them.
const LINK_MAX: u32 = u32::MAX;
/// The filesystem refuses longer names with NAMETOOLONG.
const NAME_MAX: u32 = 255;

async fn pathconf<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let attr = match resolve(vfs, &fh) {
        Ok(id) => vfs.getattr(auth, id).await,
        Err(s) => Err(s),
    };
    match attr {
        Ok(a) => {
            status(out, nfsstat3::NFS3_OK);
            put(out, &post_op_attr::attributes(a));
            put_u32(out, LINK_MAX);
            put_u32(out, NAME_MAX);
            put_bool(out, true); // no_trunc: long names are refused, not cut
            put_bool(out, true); // chown_restricted
            put_bool(out, false); // case_insensitive
            put_bool(out, true); // case_preserving
        }
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(ftype: ftype3, mode: u32, uid: u32, gid: u32) -> fattr3 {
        fattr3 { ftype, mode, uid, gid, ..Default::default() }
    }

    fn who(uid: u32, gid: u32, gids: &[u32]) -> AuthContext {
        AuthContext { uid, gid, gids: gids.to_vec() }
    }

    #[test]
    fn access_follows_the_mode_bits_of_the_matching_class() {
        let file = attr(ftype3::NF3REG, 0o640, 1000, 100);
        let all = 0x3f;
        assert_eq!(access_rights(&file, &who(1000, 1, &[])) & all, ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND);
        assert_eq!(access_rights(&file, &who(2000, 7, &[100])), ACCESS3_READ, "a supplementary group");
        assert_eq!(access_rights(&file, &who(65534, 65534, &[])), 0, "nobody");
        assert_eq!(access_rights(&file, &who(0, 0, &[])), ACCESS3_READ | ACCESS3_MODIFY | ACCESS3_EXTEND, "root executes only what someone may");
        let script = attr(ftype3::NF3REG, 0o700, 1000, 100);
        assert_ne!(access_rights(&script, &who(0, 0, &[])) & ACCESS3_EXECUTE, 0);
        let dir = attr(ftype3::NF3DIR, 0o755, 0, 0);
        assert_eq!(access_rights(&dir, &who(1000, 100, &[])), ACCESS3_READ | ACCESS3_LOOKUP);
        assert_eq!(access_rights(&dir, &who(0, 0, &[])), ACCESS3_READ | ACCESS3_LOOKUP | ACCESS3_MODIFY | ACCESS3_EXTEND | ACCESS3_DELETE);
    }

    #[test]
    fn only_calls_that_change_something_are_cached() {
        let cached: Vec<u32> = (0..=21).filter(|p| !is_idempotent(*p)).collect();
        assert_eq!(cached, [SETATTR, WRITE, CREATE, MKDIR, SYMLINK, MKNOD, REMOVE, RMDIR, RENAME, LINK, COMMIT]);
    }
}
