//! NFSv3 procedures that change something, each answered with the weak cache consistency data
//! (attributes before and after) RFC 1813 gives it, so clients keep their caches without
//! another GETATTR.

use zerofs_nfsserve::nfs::{
    fileid3, filename3, ftype3, nfs_fh3, nfsstat3, post_op_attr, post_op_fh3, pre_op_attr,
    sattr3, specdata3, wcc_data,
};
use zerofs_nfsserve::vfs::AuthContext;

use super::nfs3::{post_attr, pre_attr, resolve, status, wcc, wcc_of};
use super::xdr::{put, put_u32, Dec, DecResult, Garbage, MAX_NAME, MAX_PATH};
use super::Backend;

const UNSTABLE: u32 = 0;
const FILE_SYNC: u32 = 2;

fn name(d: &mut Dec<'_>) -> DecResult<filename3> {
    Ok(d.opaque(MAX_NAME)?.into())
}

/// The reply of a call that failed before it could read any attributes.
fn fail_wcc(out: &mut Vec<u8>, s: nfsstat3) -> DecResult<()> {
    status(out, s);
    put(out, &wcc_data::default());
    Ok(())
}

pub async fn setattr<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let attr = d.sattr()?;
    let guard = if d.bool()? { Some(d.time()?) } else { None };
    let id = match resolve(vfs, &fh) {
        Ok(id) => id,
        Err(s) => return fail_wcc(out, s),
    };
    let before = match vfs.getattr(auth, id).await {
        Ok(a) => a,
        Err(s) => return fail_wcc(out, s),
    };
    if let Some(ctime) = guard {
        if (ctime.seconds, ctime.nseconds) != (before.ctime.seconds, before.ctime.nseconds) {
            status(out, nfsstat3::NFS3ERR_NOT_SYNC);
            put(out, &wcc_data { before: wcc_of(&before), after: post_op_attr::attributes(before) });
            return Ok(());
        }
    }
    match vfs.setattr(auth, id, attr).await {
        Ok(after) => {
            status(out, nfsstat3::NFS3_OK);
            put(out, &wcc_data { before: wcc_of(&before), after: post_op_attr::attributes(after) });
        }
        Err(s) => {
            status(out, s);
            put(out, &wcc(vfs, auth, id, wcc_of(&before)).await);
        }
    }
    Ok(())
}

pub async fn write<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let offset = d.u64()?;
    let count = d.u32()?;
    let stable = d.u32()?;
    if stable > FILE_SYNC {
        return Err(Garbage);
    }
    let data = d.opaque(super::record::MAX_RECORD)?;
    if data.len() != count as usize {
        return Err(Garbage);
    }
    let id = match resolve(vfs, &fh) {
        Ok(id) => id,
        Err(s) => return fail_wcc(out, s),
    };
    let before = pre_attr(vfs, auth, id).await;
    let after = match vfs.write(auth, id, offset, data).await {
        Ok(a) => a,
        Err(s) => {
            status(out, s);
            put(out, &wcc(vfs, auth, id, before).await);
            return Ok(());
        }
    };
    // In async durability mode a write is acknowledged from memory: say so (UNSTABLE) so the
    // client COMMITs, unless it asked for stable storage, which it then gets before the reply.
    let committed = if vfs.writes_are_stable(id).await {
        FILE_SYNC
    } else if stable == UNSTABLE {
        UNSTABLE
    } else {
        if let Err(s) = vfs.commit(auth, id, offset, count).await {
            status(out, s);
            put(out, &wcc_data { before, after: post_op_attr::attributes(after) });
            return Ok(());
        }
        FILE_SYNC
    };
    status(out, nfsstat3::NFS3_OK);
    put(out, &wcc_data { before, after: post_op_attr::attributes(after) });
    put_u32(out, count);
    put_u32(out, committed);
    put(out, &vfs.get_write_verf());
    Ok(())
}

/// The reply of a call that made a node: handle, attributes, and the directory's wcc_data.
fn made(out: &mut Vec<u8>, fh: nfs_fh3, attr: post_op_attr, dir_wcc: wcc_data) {
    status(out, nfsstat3::NFS3_OK);
    put(out, &post_op_fh3::handle(fh));
    put(out, &attr);
    put(out, &dir_wcc);
}

enum How {
    Unchecked(sattr3),
    Guarded(sattr3),
    Exclusive,
}

pub async fn create<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let dir = d.fh()?;
    let name = name(d)?;
    let how = match d.u32()? {
        0 => How::Unchecked(d.sattr()?),
        1 => How::Guarded(d.sattr()?),
        2 => {
            // The verifier would tell a retransmission from a second create; the duplicate
            // request cache already answers retransmissions.
            d.fixed::<8>()?;
            How::Exclusive
        }
        _ => return Err(Garbage),
    };
    let dirid = match resolve(vfs, &dir) {
        Ok(id) => id,
        Err(s) => return fail_wcc(out, s),
    };
    let before = match vfs.getattr(auth, dirid).await {
        Ok(a) => wcc_of(&a),
        Err(s) => return fail_wcc(out, s),
    };
    let result: Result<(fileid3, post_op_attr), nfsstat3> = match how {
        How::Guarded(_) if vfs.lookup(auth, dirid, &name).await.is_ok() => Err(nfsstat3::NFS3ERR_EXIST),
        How::Unchecked(attr) | How::Guarded(attr) => {
            vfs.create(auth, dirid, &name, attr).await.map(|(id, a)| (id, post_op_attr::attributes(a)))
        }
        How::Exclusive => match vfs.create_exclusive(auth, dirid, &name).await {
            Ok(id) => Ok((id, post_attr(vfs, auth, id).await)),
            Err(s) => Err(s),
        },
    };
    finish_make(vfs, auth, dirid, before, result, out).await;
    Ok(())
}

async fn finish_make<V: Backend>(
    vfs: &V,
    auth: &AuthContext,
    dirid: fileid3,
    before: pre_op_attr,
    result: Result<(fileid3, post_op_attr), nfsstat3>,
    out: &mut Vec<u8>,
) {
    let dir_wcc = wcc(vfs, auth, dirid, before).await;
    match result {
        Ok((id, attr)) => made(out, vfs.id_to_fh(id), attr, dir_wcc),
        Err(s) => {
            status(out, s);
            put(out, &dir_wcc);
        }
    }
}

enum Node {
    Dir(sattr3),
    Symlink(sattr3, filename3),
    Special(ftype3, sattr3, Option<specdata3>),
}

/// MKDIR, SYMLINK and MKNOD: the same shape of arguments before the node's description.
pub async fn make_node<V: Backend>(vfs: &V, auth: &AuthContext, proc_: u32, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let dir = d.fh()?;
    let name = name(d)?;
    let node = match proc_ {
        9 => Node::Dir(d.sattr()?),
        10 => {
            let attr = d.sattr()?;
            Node::Symlink(attr, d.opaque(MAX_PATH)?.into())
        }
        _ => match d.u32()? {
            t @ (3 | 4) => {
                let attr = d.sattr()?;
                let spec = specdata3 { specdata1: d.u32()?, specdata2: d.u32()? };
                Node::Special(if t == 3 { ftype3::NF3BLK } else { ftype3::NF3CHR }, attr, Some(spec))
            }
            6 => Node::Special(ftype3::NF3SOCK, d.sattr()?, None),
            7 => Node::Special(ftype3::NF3FIFO, d.sattr()?, None),
            1 => Node::Special(ftype3::NF3REG, sattr3::default(), None),
            2 => Node::Special(ftype3::NF3DIR, sattr3::default(), None),
            5 => Node::Special(ftype3::NF3LNK, sattr3::default(), None),
            _ => return Err(Garbage),
        },
    };
    let dirid = match resolve(vfs, &dir) {
        Ok(id) => id,
        Err(s) => return fail_wcc(out, s),
    };
    let before = match vfs.getattr(auth, dirid).await {
        Ok(a) => wcc_of(&a),
        Err(s) => return fail_wcc(out, s),
    };
    let result = match node {
        Node::Dir(attr) => vfs.mkdir(auth, dirid, &name, &attr).await,
        Node::Symlink(attr, target) => vfs.symlink(auth, dirid, &name, &target, &attr).await,
        Node::Special(t, attr, spec) => vfs.mknod(auth, dirid, &name, t, &attr, spec.as_ref()).await,
    };
    let result = result.map(|(id, a)| (id, post_op_attr::attributes(a)));
    finish_make(vfs, auth, dirid, before, result, out).await;
    Ok(())
}

/// REMOVE (`dir` false) and RMDIR (`dir` true).
pub async fn remove<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>, rmdir: bool) -> DecResult<()> {
    let dir = d.fh()?;
    let name = name(d)?;
    let dirid = match resolve(vfs, &dir) {
        Ok(id) => id,
        Err(s) => return fail_wcc(out, s),
    };
    let before = pre_attr(vfs, auth, dirid).await;
    let result = vfs.remove_entry(auth, dirid, &name, rmdir).await;
    status(out, result.err().unwrap_or(nfsstat3::NFS3_OK));
    put(out, &wcc(vfs, auth, dirid, before).await);
    Ok(())
}

pub async fn rename<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let from_dir = d.fh()?;
    let from_name = name(d)?;
    let to_dir = d.fh()?;
    let to_name = name(d)?;
    let (from, to) = match (resolve(vfs, &from_dir), resolve(vfs, &to_dir)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(s), _) | (_, Err(s)) => {
            status(out, s);
            put(out, &wcc_data::default());
            put(out, &wcc_data::default());
            return Ok(());
        }
    };
    let from_before = pre_attr(vfs, auth, from).await;
    let to_before = pre_attr(vfs, auth, to).await;
    let result = vfs.rename(auth, from, &from_name, to, &to_name).await;
    status(out, result.err().unwrap_or(nfsstat3::NFS3_OK));
    put(out, &wcc(vfs, auth, from, from_before).await);
    put(out, &wcc(vfs, auth, to, to_before).await);
    Ok(())
}

pub async fn link<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let file = d.fh()?;
    let dir = d.fh()?;
    let name = name(d)?;
    let (fileid, dirid) = match (resolve(vfs, &file), resolve(vfs, &dir)) {
        (Ok(f), Ok(t)) => (f, t),
        (Err(s), _) | (_, Err(s)) => {
            status(out, s);
            put(out, &post_op_attr::Void);
            put(out, &wcc_data::default());
            return Ok(());
        }
    };
    let before = pre_attr(vfs, auth, dirid).await;
    let result = vfs.link(auth, fileid, dirid, &name).await;
    status(out, result.err().unwrap_or(nfsstat3::NFS3_OK));
    put(out, &post_attr(vfs, auth, fileid).await);
    put(out, &wcc(vfs, auth, dirid, before).await);
    Ok(())
}

pub async fn commit<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let fh = d.fh()?;
    let offset = d.u64()?;
    let count = d.u32()?;
    let id = match resolve(vfs, &fh) {
        Ok(id) => id,
        Err(s) => return fail_wcc(out, s),
    };
    let before = pre_attr(vfs, auth, id).await;
    let result = vfs.commit(auth, id, offset, count).await;
    let file_wcc = wcc(vfs, auth, id, before).await;
    match result {
        Ok(verf) => {
            status(out, nfsstat3::NFS3_OK);
            put(out, &file_wcc);
            put(out, &verf);
        }
        Err(s) => {
            status(out, s);
            put(out, &file_wcc);
        }
    }
    Ok(())
}
