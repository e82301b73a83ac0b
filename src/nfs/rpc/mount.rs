//! MOUNT v3 (RFC 1813 appendix I) and the two PORTMAP v2 procedures clients use to find us
//! (RFC 1833), both served on the NFS port.

use zerofs_nfsserve::nfs::nfsstat3;
use zerofs_nfsserve::vfs::AuthContext;

use super::message::AUTH_UNIX;
use super::nfs3;
use super::xdr::{put_bool, put_opaque, put_u32, Dec, DecResult, MAX_PATH};
use super::Backend;

pub const PROGRAM: u32 = 100005;
pub const VERSION: u32 = 3;
pub const PORTMAP_PROGRAM: u32 = 100000;
pub const PORTMAP_VERSION: u32 = 2;

const MNTPATHLEN: usize = 1024;
const MNT3_OK: u32 = 0;
const MNT3ERR_NOENT: u32 = 2;
const MNT3ERR_NAMETOOLONG: u32 = 63;
const MNT3ERR_SERVERFAULT: u32 = 10006;
const IPPROTO_TCP: u32 = 6;

pub enum Outcome {
    Done,
    ProcUnavail,
}

/// Runs MOUNT procedure `proc_`, appending its results to `out`.
pub async fn mount<V: Backend>(vfs: &V, proc_: u32, args: &[u8], out: &mut Vec<u8>) -> DecResult<Outcome> {
    let d = &mut Dec::new(args);
    match proc_ {
        0 => {}
        1 => {
            let path = d.opaque(MAX_PATH)?;
            mnt(vfs, path, out).await;
        }
        // DUMP: no mount list is kept (a client's record would not survive a restart anyway).
        2 => put_bool(out, false),
        3 => {
            d.opaque(MAX_PATH)?;
        }
        4 => {}
        5 => {
            // EXPORT: every dataset is mountable by name; "/" stands for the default one.
            put_bool(out, true);
            put_opaque(out, b"/");
            put_bool(out, false);
            put_bool(out, false);
        }
        _ => return Ok(Outcome::ProcUnavail),
    }
    Ok(Outcome::Done)
}

async fn mnt<V: Backend>(vfs: &V, path: &[u8], out: &mut Vec<u8>) {
    if path.len() > MNTPATHLEN {
        put_u32(out, MNT3ERR_NAMETOOLONG);
        return;
    }
    // Resolving a path walks directories as root: MOUNT carries no caller worth trusting and
    // access to what is inside is checked on every NFS call.
    let root = AuthContext { uid: 0, gid: 0, gids: Vec::new() };
    match vfs.path_to_id(&root, path).await {
        Ok(id) => {
            put_u32(out, MNT3_OK);
            put_opaque(out, &vfs.id_to_fh(id).data);
            put_u32(out, 1);
            put_u32(out, AUTH_UNIX);
        }
        Err(nfsstat3::NFS3ERR_JUKEBOX | nfsstat3::NFS3ERR_IO | nfsstat3::NFS3ERR_SERVERFAULT) => {
            put_u32(out, MNT3ERR_SERVERFAULT)
        }
        Err(s) => {
            tracing::debug!("mount {:?}: {s:?}", String::from_utf8_lossy(path));
            put_u32(out, MNT3ERR_NOENT)
        }
    }
}

/// PORTMAP: NULL and GETPORT, which answers this port for NFSv3 and MOUNT v3 over TCP.
pub fn portmap(proc_: u32, args: &[u8], port: u16, out: &mut Vec<u8>) -> DecResult<Outcome> {
    let d = &mut Dec::new(args);
    match proc_ {
        0 => {}
        3 => {
            let (prog, vers, prot, _port) = (d.u32()?, d.u32()?, d.u32()?, d.u32()?);
            let ours = matches!((prog, vers), (nfs3::PROGRAM, nfs3::VERSION) | (PROGRAM, VERSION)) && prot == IPPROTO_TCP;
            put_u32(out, if ours { port as u32 } else { 0 });
        }
        _ => return Ok(Outcome::ProcUnavail),
    }
    Ok(Outcome::Done)
}
