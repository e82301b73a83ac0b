//! Who may do what: POSIX permission checks from the caller's uid, gid and groups.

use super::codec::Inode;
use super::error::{FsError, FsResult};

pub const READ: u32 = 4;
pub const WRITE: u32 = 2;
pub const EXEC: u32 = 1;

/// The credentials of a caller, as AUTH_UNIX carries them.
#[derive(Debug, Clone)]
pub struct Caller {
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

impl Caller {
    pub fn root() -> Caller {
        Caller { uid: 0, gid: 0, groups: Vec::new() }
    }

    pub fn is_root(&self) -> bool {
        self.uid == 0
    }

    pub fn in_group(&self, gid: u32) -> bool {
        self.gid == gid || self.groups.contains(&gid)
    }

    pub fn owns(&self, inode: &Inode) -> bool {
        self.is_root() || self.uid == inode.uid
    }
}

/// Checks `want` (a mix of READ, WRITE, EXEC) against the inode's mode bits. Root passes every
/// check except executing a file that no one may execute.
pub fn check(caller: &Caller, inode: &Inode, want: u32) -> FsResult<()> {
    if caller.is_root() {
        let any_exec = inode.mode & 0o111 != 0 || inode.kind == super::codec::Kind::Dir;
        if want & EXEC != 0 && !any_exec {
            return Err(FsError::Access);
        }
        return Ok(());
    }
    let bits = if caller.uid == inode.uid {
        (inode.mode >> 6) & 7
    } else if caller.in_group(inode.gid) {
        (inode.mode >> 3) & 7
    } else {
        inode.mode & 7
    };
    if bits & want == want {
        Ok(())
    } else {
        Err(FsError::Access)
    }
}

/// Reading or writing file data: like knfsd, the owner may always touch the data of a file it
/// created, so `open(O_CREAT, 0444)` followed by writes (tar, cp -p) works over NFS, where
/// every WRITE is checked anew.
pub fn check_data(caller: &Caller, inode: &Inode, want: u32) -> FsResult<()> {
    if caller.uid == inode.uid {
        return Ok(());
    }
    check(caller, inode, want)
}

/// Removing or renaming away `child` from `dir`: write+search on the directory, and in a sticky
/// directory only the owner of the entry, the owner of the directory, or root.
pub fn check_unlink(caller: &Caller, dir: &Inode, child: &Inode) -> FsResult<()> {
    check(caller, dir, WRITE | EXEC)?;
    if dir.mode & 0o1000 != 0
        && !caller.is_root()
        && caller.uid != dir.uid
        && caller.uid != child.uid
    {
        return Err(FsError::Access);
    }
    Ok(())
}
