//! Conversions between the engine's types and NFSv3's.

use zerofs_nfsserve::nfs::{
    fattr3, ftype3, nfsstat3, nfstime3, sattr3, set_atime, set_gid3, set_mode3, set_mtime,
    set_size3, set_uid3, specdata3,
};

use crate::fs::{FsError, Inode, Kind, SetAttr, SetTime, Time};

pub fn status(e: FsError) -> nfsstat3 {
    match e {
        FsError::NotFound => nfsstat3::NFS3ERR_NOENT,
        FsError::Exists => nfsstat3::NFS3ERR_EXIST,
        FsError::NotDir => nfsstat3::NFS3ERR_NOTDIR,
        FsError::IsDir => nfsstat3::NFS3ERR_ISDIR,
        FsError::NotEmpty => nfsstat3::NFS3ERR_NOTEMPTY,
        FsError::Access => nfsstat3::NFS3ERR_ACCES,
        FsError::Perm => nfsstat3::NFS3ERR_PERM,
        FsError::NameTooLong => nfsstat3::NFS3ERR_NAMETOOLONG,
        FsError::Invalid(_) => nfsstat3::NFS3ERR_INVAL,
        FsError::NoSpace | FsError::StoreFull(_) => nfsstat3::NFS3ERR_NOSPC,
        FsError::TooBig => nfsstat3::NFS3ERR_FBIG,
        FsError::ReadOnly => nfsstat3::NFS3ERR_ROFS,
        FsError::Stale => nfsstat3::NFS3ERR_STALE,
        // The client retries JUKEBOX by itself: right while the object store is away.
        FsError::Unavailable(_) => nfsstat3::NFS3ERR_JUKEBOX,
        FsError::Fenced | FsError::Io(_) => nfsstat3::NFS3ERR_IO,
    }
}

/// Logs what the client will only see as a status code.
pub fn log_status(op: &str, e: FsError) -> nfsstat3 {
    match &e {
        FsError::Fenced | FsError::Io(_) | FsError::Unavailable(_) => {
            tracing::error!("{op}: {e}")
        }
        _ => tracing::debug!("{op}: {e}"),
    }
    status(e)
}

fn time(t: Time) -> nfstime3 {
    nfstime3 { seconds: t.secs.clamp(0, u32::MAX as i64) as u32, nseconds: t.nanos }
}

pub fn ftype(kind: Kind) -> ftype3 {
    match kind {
        Kind::File => ftype3::NF3REG,
        Kind::Dir => ftype3::NF3DIR,
        Kind::Symlink => ftype3::NF3LNK,
        Kind::Fifo => ftype3::NF3FIFO,
        Kind::Socket => ftype3::NF3SOCK,
        Kind::CharDev => ftype3::NF3CHR,
        Kind::BlockDev => ftype3::NF3BLK,
    }
}

pub fn kind(t: ftype3) -> Option<Kind> {
    Some(match t {
        ftype3::NF3REG => Kind::File,
        ftype3::NF3DIR => Kind::Dir,
        ftype3::NF3LNK => Kind::Symlink,
        ftype3::NF3FIFO => Kind::Fifo,
        ftype3::NF3SOCK => Kind::Socket,
        ftype3::NF3CHR => Kind::CharDev,
        ftype3::NF3BLK => Kind::BlockDev,
    })
}

pub const DIR_SIZE: u64 = 4096;

pub fn fattr(i: &Inode, fileid: u64, fsid: u64) -> fattr3 {
    fattr3 {
        ftype: ftype(i.kind),
        mode: i.mode,
        nlink: i.nlink,
        uid: i.uid,
        gid: i.gid,
        size: if i.kind == Kind::Dir { DIR_SIZE } else { i.size },
        used: if i.kind == Kind::Dir { DIR_SIZE } else { i.stored },
        rdev: specdata3 { specdata1: i.rdev.0, specdata2: i.rdev.1 },
        fsid,
        fileid,
        atime: time(i.atime),
        mtime: time(i.mtime),
        ctime: time(i.ctime),
    }
}

/// The read-only `.snapshots` directory that the server adds to a dataset's root.
pub fn snapshot_dir_attr(root: &Inode, fileid: u64, fsid: u64, entries: u32) -> fattr3 {
    fattr3 {
        ftype: ftype3::NF3DIR,
        mode: 0o555,
        nlink: 2 + entries,
        uid: 0,
        gid: 0,
        size: DIR_SIZE,
        used: 0,
        rdev: specdata3::default(),
        fsid,
        fileid,
        atime: time(root.ctime),
        mtime: time(root.ctime),
        ctime: time(root.ctime),
    }
}

pub fn set_attr(s: &sattr3) -> SetAttr {
    let set_time = |t: Option<SetTime>| t;
    SetAttr {
        mode: match s.mode {
            set_mode3::mode(m) => Some(m),
            set_mode3::Void => None,
        },
        uid: match s.uid {
            set_uid3::uid(u) => Some(u),
            set_uid3::Void => None,
        },
        gid: match s.gid {
            set_gid3::gid(g) => Some(g),
            set_gid3::Void => None,
        },
        size: match s.size {
            set_size3::size(n) => Some(n),
            set_size3::Void => None,
        },
        atime: set_time(match s.atime {
            set_atime::DONT_CHANGE => None,
            set_atime::SET_TO_SERVER_TIME => Some(SetTime::Now),
            set_atime::SET_TO_CLIENT_TIME(t) => {
                Some(SetTime::At(Time { secs: t.seconds as i64, nanos: t.nseconds }))
            }
        }),
        mtime: match s.mtime {
            set_mtime::DONT_CHANGE => None,
            set_mtime::SET_TO_SERVER_TIME => Some(SetTime::Now),
            set_mtime::SET_TO_CLIENT_TIME(t) => {
                Some(SetTime::At(Time { secs: t.seconds as i64, nanos: t.nseconds }))
            }
        },
    }
}
