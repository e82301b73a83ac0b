//! READDIR and READDIRPLUS, filled to the byte budgets the client gives (RFC 1813 3.3.16,
//! 3.3.17): READDIR's `count` bounds the whole READDIR3resok; READDIRPLUS's `maxcount` bounds
//! READDIRPLUS3resok and its `dircount` the entries' file ids, names and cookies alone.
//!
//! Cookies are positions the filesystem can always resume from, so the cookie verifier is
//! zero, as RFC 1813 allows for such servers, and is not checked.

use zerofs_nfsserve::nfs::{nfsstat3, post_op_attr, post_op_fh3};
use zerofs_nfsserve::vfs::{AuthContext, DirEntry, ReadDirResult};

use super::nfs3::{resolve, status};
use super::xdr::{opaque_size, put, put_bool, put_opaque, put_u64, Dec, DecResult};
use super::Backend;

/// The most entries asked of the filesystem for one reply.
const MAX_ENTRIES: usize = 4096;
/// XDR size of a post_op_attr carrying attributes.
const ATTR_SIZE: usize = 4 + 84;
/// An entry's smallest dircount share: file id, a name of at most four bytes, cookie.
const MIN_DIR_ENTRY: usize = 8 + 4 + 4 + 8;
const VERIFIER: [u8; 8] = [0; 8];

struct Args {
    dir: zerofs_nfsserve::nfs::nfs_fh3,
    cookie: u64,
}

fn args(d: &mut Dec<'_>) -> DecResult<Args> {
    let dir = d.fh()?;
    let cookie = d.u64()?;
    d.fixed::<8>()?;
    Ok(Args { dir, cookie })
}

/// Lists from `cookie` on, asking for `want` entries; on failure the reply is written.
async fn list<V: Backend>(vfs: &V, auth: &AuthContext, a: &Args, want: usize, out: &mut Vec<u8>) -> Option<(post_op_attr, ReadDirResult)> {
    let dirid = match resolve(vfs, &a.dir) {
        Ok(id) => id,
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
            return None;
        }
    };
    let dir_attr = match vfs.getattr(auth, dirid).await {
        Ok(attr) => post_op_attr::attributes(attr),
        Err(s) => {
            status(out, s);
            put(out, &post_op_attr::Void);
            return None;
        }
    };
    match vfs.readdir(auth, dirid, a.cookie, want.clamp(1, MAX_ENTRIES)).await {
        Ok(r) => Some((dir_attr, r)),
        Err(s) => {
            status(out, s);
            put(out, &dir_attr);
            None
        }
    }
}

fn post_op_size(a: &post_op_attr) -> usize {
    match a {
        post_op_attr::attributes(_) => ATTR_SIZE,
        post_op_attr::Void => 4,
    }
}

/// Writes the entries that fit; answers TOOSMALL when not even one does.
fn emit<F>(out: &mut Vec<u8>, dir_attr: &post_op_attr, r: &ReadDirResult, mut fits: F, mut entry: impl FnMut(&mut Vec<u8>, &DirEntry))
where
    F: FnMut(&DirEntry) -> bool,
{
    let start = out.len();
    status(out, nfsstat3::NFS3_OK);
    put(out, dir_attr);
    out.extend_from_slice(&VERIFIER);
    let mut written = 0;
    let mut all = true;
    for e in &r.entries {
        if !fits(e) {
            all = false;
            break;
        }
        put_bool(out, true);
        entry(out, e);
        written += 1;
    }
    if written == 0 && !all {
        out.truncate(start);
        status(out, nfsstat3::NFS3ERR_TOOSMALL);
        put(out, dir_attr);
        return;
    }
    put_bool(out, false);
    put_bool(out, all && r.end);
}

pub async fn readdir<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let a = args(d)?;
    let count = d.u32()? as usize;
    let want = count / (4 + MIN_DIR_ENTRY) + 1;
    let Some((dir_attr, r)) = list(vfs, auth, &a, want, out).await else { return Ok(()) };
    // READDIR3resok: dir attributes, verifier, the list's end marker and eof, then entries.
    let mut used = post_op_size(&dir_attr) + 8 + 4 + 4;
    let fits = |e: &DirEntry| {
        let size = 4 + 8 + opaque_size(e.name.len()) + 8;
        used += size;
        used <= count
    };
    emit(out, &dir_attr, &r, fits, |out, e| {
        put_u64(out, e.attr.fileid);
        put_opaque(out, &e.name);
        put_u64(out, e.cookie);
    });
    Ok(())
}

pub async fn readdirplus<V: Backend>(vfs: &V, auth: &AuthContext, d: &mut Dec<'_>, out: &mut Vec<u8>) -> DecResult<()> {
    let a = args(d)?;
    let dircount = d.u32()? as usize;
    let maxcount = d.u32()? as usize;
    let want = (dircount / MIN_DIR_ENTRY).min(maxcount / (4 + MIN_DIR_ENTRY + ATTR_SIZE + 8)) + 1;
    let Some((dir_attr, r)) = list(vfs, auth, &a, want, out).await else { return Ok(()) };
    let handles: Vec<_> = r.entries.iter().map(|e| vfs.id_to_fh(e.fileid)).collect();
    let mut used = post_op_size(&dir_attr) + 8 + 4 + 4;
    let mut dir_used = 0;
    let mut i = 0;
    let fits = |e: &DirEntry| {
        let names = 8 + opaque_size(e.name.len()) + 8;
        used += 4 + names + ATTR_SIZE + 4 + opaque_size(handles[i].data.len());
        dir_used += names;
        i += 1;
        used <= maxcount && dir_used <= dircount
    };
    let mut j = 0;
    emit(out, &dir_attr, &r, fits, |out, e| {
        put_u64(out, e.attr.fileid);
        put_opaque(out, &e.name);
        put_u64(out, e.cookie);
        put(out, &post_op_attr::attributes(e.attr));
        put(out, &post_op_fh3::handle(handles[j].clone()));
        j += 1;
    });
    Ok(())
}
