//! SETATTR: mode, owner, size and times, with the ctime/mtime rules of POSIX.

use super::changes::Changes;

use super::codec::{Inode, Kind, Time};
use super::error::{FsError, FsResult};
use super::perm::{self, Caller, WRITE};
use super::{Delta, Filesystem};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetTime {
    Now,
    At(Time),
}

#[derive(Debug, Clone, Default)]
pub struct SetAttr {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub size: Option<u64>,
    pub atime: Option<SetTime>,
    pub mtime: Option<SetTime>,
}

impl Filesystem {
    pub async fn setattr(&self, caller: &Caller, ino: u64, attr: &SetAttr) -> FsResult<Inode> {
        self.writable()?;
        // Directory inodes change under the namespace lock, everything else under its stripe.
        let probe = self.load(ino).await?;
        let guard = if probe.kind == Kind::Dir {
            (Some(self.namespace.lock().await), None)
        } else {
            (None, Some(self.stripe(ino).write().await))
        };
        let mut inode = self.load(ino).await?;
        let now = Time::now();
        let mut changed = false;
        let mut batch = Changes::new();
        let mut delta = 0i64;

        if attr.uid.is_some() || attr.gid.is_some() {
            let new_uid = attr.uid.unwrap_or(inode.uid);
            let new_gid = attr.gid.unwrap_or(inode.gid);
            if !caller.is_root() {
                // POSIX chown(): only root gives a file away, and only the owner may set the
                // group, to one of its own. A non-owner is refused even when it names the
                // owner or group the file already has (as Linux does): asking is the offence.
                if caller.uid != inode.uid || new_uid != inode.uid {
                    return Err(FsError::Perm);
                }
                if new_gid != inode.gid && !caller.in_group(new_gid) {
                    return Err(FsError::Perm);
                }
            }
            if new_uid != inode.uid || new_gid != inode.gid {
                if inode.kind != Kind::Dir {
                    inode.mode &= !0o4000;
                    if inode.mode & 0o010 != 0 {
                        inode.mode &= !0o2000;
                    }
                }
                inode.uid = new_uid;
                inode.gid = new_gid;
            }
            changed = true;
        }
        if let Some(mode) = attr.mode {
            if !caller.owns(&inode) {
                return Err(FsError::Perm);
            }
            let mut mode = mode & 0o7777;
            if !caller.is_root() && !caller.in_group(inode.gid) {
                mode &= !0o2000;
            }
            inode.mode = mode;
            changed = true;
        }
        if let Some(size) = attr.size {
            match inode.kind {
                Kind::File => {}
                Kind::Dir => return Err(FsError::IsDir),
                _ => return Err(FsError::Invalid("size of a special file")),
            }
            perm::check_data(caller, &inode, WRITE)?;
            if size != inode.size {
                delta = self.resize(&mut batch, &mut inode, size).await?;
            }
            inode.mtime = now;
            changed = true;
        }
        for (which, set) in [(0, attr.atime), (1, attr.mtime)] {
            let Some(set) = set else { continue };
            let t = match set {
                SetTime::Now => {
                    if !caller.owns(&inode) {
                        perm::check(caller, &inode, WRITE).map_err(|_| FsError::Access)?;
                    }
                    now
                }
                SetTime::At(t) => {
                    if !caller.owns(&inode) {
                        return Err(FsError::Perm);
                    }
                    t
                }
            };
            if which == 0 {
                inode.atime = t;
            } else {
                inode.mtime = t;
            }
            changed = true;
        }
        if changed {
            inode.ctime = now;
            batch.put_inode(&inode);
            let seq = self.commit(batch, Delta { bytes: delta, ..Delta::default() }).await?;
            drop(guard);
            self.settle(seq).await?;
        }
        Ok(inode)
    }
}
