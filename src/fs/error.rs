//! Errors of the filesystem engine, one per POSIX meaning; the NFS adapter maps them to
//! NFS3ERR_* codes and the CLI to messages.

use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FsError {
    #[error("no such file or directory")]
    NotFound,
    #[error("file exists")]
    Exists,
    #[error("not a directory")]
    NotDir,
    #[error("is a directory")]
    IsDir,
    #[error("directory not empty")]
    NotEmpty,
    #[error("permission denied")]
    Access,
    #[error("operation not permitted")]
    Perm,
    #[error("file name too long")]
    NameTooLong,
    #[error("invalid argument: {0}")]
    Invalid(&'static str),
    #[error("no space left (dataset quota reached)")]
    NoSpace,
    /// The disk under a local store is (nearly) full (`store::space`): nothing was written.
    #[error("no space left in the object store: {0}")]
    StoreFull(String),
    #[error("file too large")]
    TooBig,
    #[error("read-only filesystem")]
    ReadOnly,
    #[error("stale file handle")]
    Stale,
    #[error("object store unavailable: {0}")]
    Unavailable(String),
    #[error("dataset fenced: another server opened it for writing")]
    Fenced,
    #[error("I/O error: {0}")]
    Io(String),
}

pub type FsResult<T> = Result<T, FsError>;

impl From<slatedb::Error> for FsError {
    fn from(e: slatedb::Error) -> Self {
        match e.kind() {
            slatedb::ErrorKind::Closed(slatedb::CloseReason::Fenced) => FsError::Fenced,
            slatedb::ErrorKind::Unavailable => FsError::Unavailable(e.to_string()),
            _ => FsError::Io(e.to_string()),
        }
    }
}

/// A read that stopped waiting for an unreachable object store (`store::wait`).
impl From<crate::store::wait::GaveUp> for FsError {
    fn from(e: crate::store::wait::GaveUp) -> Self {
        match e {
            crate::store::wait::GaveUp::Unavailable(m) => FsError::Unavailable(m),
            crate::store::wait::GaveUp::Unreachable(m) => FsError::Io(m),
        }
    }
}

/// Refuses a change before anything of it is written when the store has no room for it
/// (`store::space`); `frees`: the change releases space (a remove, a truncation), which is
/// still written while the room is low so that space can be freed.
pub fn check_room(frees: bool) -> FsResult<()> {
    use crate::store::space::Room;
    match crate::store::space::room() {
        Room::Enough => Ok(()),
        Room::Low { .. } if frees => Ok(()),
        Room::Low { free, reserve } | Room::Exhausted { free, reserve } => Err(FsError::StoreFull(format!(
            "{free} bytes free on the store's disk, storage.space_reserve is {reserve}"
        ))),
    }
}
