//! `zerofs_nfsserve::NFSFileSystem` over the catalog's datasets and snapshots.

use std::sync::Arc;

use async_trait::async_trait;
use zerofs_nfsserve::nfs::{
    cookieverf3, fattr3, fileid3, filename3, fsinfo3, fsstat3, ftype3, nfs_fh3, nfspath3,
    nfsstat3, nfstime3, post_op_attr, sattr3, set_size3, specdata3, writeverf3, FSF_CANSETTIME,
    FSF_HOMOGENEOUS, FSF_LINK, FSF_SYMLINK,
};
use zerofs_nfsserve::vfs::{AuthContext, DirEntry as NfsDirEntry, NFSFileSystem, ReadDirResult, VFSCapabilities};

use super::attrs::{self, log_status};
use super::exports::{ExportError, Exports, ObjectInfo};
use super::handle::{self, HandleCodec};
use crate::fs::{Caller, Filesystem, FsError, Kind, NewNode, SetAttr, MAX_FILE_SIZE, MAX_IO_SIZE, RESERVED_INO, ROOT_INO};

pub const SNAPSHOT_DIR: &[u8] = b".snapshots";
const SNAPSHOT_DIR_COOKIE: u64 = 3;

pub struct NfsAdapter<E: Exports> {
    exports: Arc<E>,
    handles: HandleCodec,
    hide_snapshot_dir: bool,
    /// Changes at every start: tells clients that unstable writes may need resending.
    boot_verifier: [u8; 8],
    /// Total and free bytes of the store, when known (a local disk).
    capacity: Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
}

fn caller(auth: &AuthContext) -> Caller {
    Caller { uid: auth.uid, gid: auth.gid, groups: auth.gids.clone() }
}

/// `.snapshots` cannot be removed or renamed away: that is a permission matter, not EXIST.
fn reserved_name_is_not_removable(e: nfsstat3) -> nfsstat3 {
    match e {
        nfsstat3::NFS3ERR_EXIST => nfsstat3::NFS3ERR_ACCES,
        other => other,
    }
}

fn export_status(e: ExportError) -> nfsstat3 {
    match e {
        ExportError::NotFound => nfsstat3::NFS3ERR_STALE,
        ExportError::Unavailable(msg) => {
            tracing::warn!("catalog unavailable: {msg}");
            nfsstat3::NFS3ERR_JUKEBOX
        }
        ExportError::Unreachable(msg) => {
            tracing::warn!("{msg}");
            nfsstat3::NFS3ERR_IO
        }
    }
}

impl<E: Exports> NfsAdapter<E> {
    pub fn new(
        exports: Arc<E>,
        handle_key: [u8; 32],
        hide_snapshot_dir: bool,
        capacity: Box<dyn Fn() -> Option<(u64, u64)> + Send + Sync>,
    ) -> Self {
        NfsAdapter {
            exports,
            handles: HandleCodec::new(handle_key),
            hide_snapshot_dir,
            boot_verifier: rand::random(),
            capacity,
        }
    }

    /// The NFS status for an engine error. A write refused because another server fenced the
    /// dataset is answered with JUKEBOX where the dataset will be opened again, so that the
    /// client's retry lands on the reopened writer instead of failing the application.
    fn status(&self, op: &str, e: FsError) -> nfsstat3 {
        if e == FsError::Fenced && self.exports.reacquires_fenced() {
            tracing::warn!("{op}: dataset fenced by another writer; asking the client to retry");
            return nfsstat3::NFS3ERR_JUKEBOX;
        }
        log_status(op, e)
    }

    async fn fs(&self, object: u64) -> Result<Arc<Filesystem>, nfsstat3> {
        self.exports.filesystem(object).await.map_err(export_status)
    }

    /// The dataset a file id belongs to: its fsid, the same for a dataset and its snapshots
    /// so that `.snapshots/` does not look like a mount point to clients.
    async fn fsid(&self, object: u64) -> Result<u64, nfsstat3> {
        match self.exports.object_info(object).await.map_err(export_status)? {
            ObjectInfo::Dataset => Ok(object),
            ObjectInfo::Snapshot { dataset } => Ok(dataset),
        }
    }

    async fn is_dataset(&self, object: u64) -> Result<bool, nfsstat3> {
        Ok(self.exports.object_info(object).await.map_err(export_status)? == ObjectInfo::Dataset)
    }

    async fn attr_of(&self, fs: &Filesystem, object: u64, ino: u64) -> Result<fattr3, nfsstat3> {
        let inode = fs.getattr(ino).await.map_err(|e| self.status("getattr", e))?;
        Ok(attrs::fattr(&inode, handle::fileid(object, ino), self.fsid(object).await?))
    }

    async fn snapshot_dir_attr(&self, dataset: u64) -> Result<fattr3, nfsstat3> {
        let fs = self.fs(dataset).await?;
        let root = fs.getattr(ROOT_INO).await.map_err(|e| self.status("getattr", e))?;
        self.snapshot_dir_attr_from(dataset, &root).await
    }

    async fn snapshot_dir_attr_from(&self, dataset: u64, root: &crate::fs::Inode) -> Result<fattr3, nfsstat3> {
        let count = self.exports.snapshots_of(dataset).await.map_err(export_status)?.len();
        Ok(attrs::snapshot_dir_attr(root, handle::fileid(dataset, RESERVED_INO), dataset, count as u32))
    }

    /// The attributes of `dataset`'s `.snapshots` as a snapshot's listing shows them (its
    /// root's ".."). A dataset another server owns is not open here, and a snapshot is served
    /// without its owner: the snapshot's own root stands in for the dataset's root then.
    async fn snapshot_dir_attr_seen_from(&self, dataset: u64, snapshot: &Filesystem) -> Result<fattr3, nfsstat3> {
        let root = match self.exports.filesystem(dataset).await {
            Ok(fs) => fs.getattr(ROOT_INO).await,
            Err(ExportError::Unavailable(_)) => snapshot.getattr(ROOT_INO).await,
            Err(e) => return Err(export_status(e)),
        };
        let root = root.map_err(|e| self.status("getattr", e))?;
        self.snapshot_dir_attr_from(dataset, &root).await
    }

    /// Whether `dataset` still exists, so that its `.snapshots` can be named (a snapshot
    /// outlives its deleted dataset, which is then kept hidden).
    async fn has_snapshot_dir(&self, dataset: u64) -> Result<bool, nfsstat3> {
        match self.exports.object_info(dataset).await {
            Ok(ObjectInfo::Dataset) => Ok(true),
            Ok(ObjectInfo::Snapshot { .. }) | Err(ExportError::NotFound) => Ok(false),
            Err(e) => Err(export_status(e)),
        }
    }

    /// Refuses names the server owns: `.snapshots` in a dataset's root.
    async fn check_reserved(&self, object: u64, dir: u64, name: &[u8]) -> Result<(), nfsstat3> {
        if dir == RESERVED_INO {
            return Err(nfsstat3::NFS3ERR_ROFS);
        }
        if dir == ROOT_INO && name == SNAPSHOT_DIR && self.is_dataset(object).await? {
            return Err(nfsstat3::NFS3ERR_EXIST);
        }
        Ok(())
    }

    async fn make(
        &self,
        auth: &AuthContext,
        dirid: fileid3,
        name: &[u8],
        node: NewNode,
        attr: Option<&sattr3>,
    ) -> Result<(fileid3, fattr3), nfsstat3> {
        let (object, dir) = handle::split(dirid);
        self.check_reserved(object, dir, name).await?;
        let fs = self.fs(object).await?;
        let who = caller(auth);
        let inode = fs.create(&who, dir, name, node).await.map_err(|e| self.status("create", e))?;
        let mut inode = inode;
        // Size and times in the create attributes are applied as a SETATTR would.
        if let Some(a) = attr {
            let mut rest = attrs::set_attr(a);
            rest.mode = None;
            rest.uid = None;
            rest.gid = None;
            if rest.size.is_some() || rest.atime.is_some() || rest.mtime.is_some() {
                inode = fs.setattr(&who, inode.ino, &rest).await.map_err(|e| self.status("create", e))?;
            }
        }
        let id = handle::fileid(object, inode.ino);
        Ok((id, attrs::fattr(&inode, id, self.fsid(object).await?)))
    }

    async fn readdir_snapshots(&self, dataset: u64, cookie: u64, max: usize) -> Result<ReadDirResult, nfsstat3> {
        let mut snaps = self.exports.snapshots_of(dataset).await.map_err(export_status)?;
        snaps.sort_by_key(|(_, id)| *id);
        let me = handle::fileid(dataset, RESERVED_INO);
        let mut entries = Vec::new();
        if cookie == 0 {
            entries.push(NfsDirEntry { fileid: me, name: b".".to_vec().into(), attr: self.snapshot_dir_attr(dataset).await?, cookie: 1 });
        }
        if cookie <= 1 {
            let root = handle::fileid(dataset, ROOT_INO);
            let fs = self.fs(dataset).await?;
            entries.push(NfsDirEntry { fileid: root, name: b"..".to_vec().into(), attr: self.attr_of(&fs, dataset, ROOT_INO).await?, cookie: 2 });
        }
        let mut end = true;
        for (name, id) in snaps {
            let c = id + SNAPSHOT_DIR_COOKIE;
            if c <= cookie {
                continue;
            }
            if entries.len() >= max.max(1) {
                end = false;
                break;
            }
            let Ok(fs) = self.fs(id).await else { continue };
            let Ok(attr) = self.attr_of(&fs, id, ROOT_INO).await else { continue };
            entries.push(NfsDirEntry { fileid: handle::fileid(id, ROOT_INO), name: name.into_bytes().into(), attr, cookie: c });
        }
        Ok(ReadDirResult { entries, end })
    }
}

#[async_trait]
impl<E: Exports> super::rpc::NfsExtras for NfsAdapter<E> {
    async fn writes_are_stable(&self, id: fileid3) -> bool {
        let (object, _) = handle::split(id);
        match self.fs(object).await {
            Ok(fs) => fs.durability() == crate::config::DurabilityMode::Sync,
            // Nothing was written; a later COMMIT will report the failure.
            Err(_) => true,
        }
    }

    fn object_of_handle(&self, fh: &[u8]) -> Option<u64> {
        self.handles.decode_bytes(fh).ok().map(|id| handle::split(id).0)
    }

    async fn routed_dataset(&self, object: u64) -> Option<u64> {
        match self.exports.object_info(object).await {
            Ok(ObjectInfo::Dataset) => Some(object),
            _ => None,
        }
    }

    async fn remove_entry(&self, auth: &AuthContext, dirid: fileid3, name: &filename3, dir: bool) -> Result<(), nfsstat3> {
        let (object, parent) = handle::split(dirid);
        self.check_reserved(object, parent, name.as_ref()).await.map_err(reserved_name_is_not_removable)?;
        let fs = self.fs(object).await?;
        let caller = caller(auth);
        let result = if dir {
            fs.rmdir(&caller, parent, name.as_ref()).await
        } else {
            fs.remove(&caller, parent, name.as_ref()).await
        };
        result.map_err(|e| self.status(if dir { "rmdir" } else { "remove" }, e))
    }
}

#[async_trait]
impl<E: Exports> NFSFileSystem for NfsAdapter<E> {
    fn capabilities(&self) -> VFSCapabilities {
        VFSCapabilities::ReadWrite
    }

    fn root_dir(&self) -> fileid3 {
        // Only the library's default path_to_id uses this; ours resolves "/" itself.
        handle::fileid(0, ROOT_INO)
    }

    async fn path_to_id(&self, _auth: &AuthContext, path: &[u8]) -> Result<fileid3, nfsstat3> {
        let path = std::str::from_utf8(path).map_err(|_| nfsstat3::NFS3ERR_NOENT)?;
        let mut parts = path.split('/').filter(|p| !p.is_empty());
        let export = parts.next().unwrap_or("");
        let object = self.exports.resolve_export(export).await.map_err(|e| match e {
            ExportError::NotFound => nfsstat3::NFS3ERR_NOENT,
            other => export_status(other),
        })?;
        let mut id = handle::fileid(object, ROOT_INO);
        // Sub-paths of an export mount like any other directory (as root: MOUNT has no caller).
        let root = AuthContext { uid: 0, gid: 0, gids: Vec::new() };
        for part in parts {
            id = self.lookup(&root, id, &part.as_bytes().to_vec().into()).await?;
        }
        Ok(id)
    }

    fn id_to_fh(&self, id: fileid3) -> nfs_fh3 {
        self.handles.encode(id)
    }

    fn fh_to_id(&self, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
        self.handles.decode(fh)
    }

    fn serverid(&self) -> cookieverf3 {
        self.boot_verifier
    }

    fn get_write_verf(&self) -> writeverf3 {
        self.boot_verifier
    }

    async fn lookup(&self, auth: &AuthContext, dirid: fileid3, name: &filename3) -> Result<fileid3, nfsstat3> {
        let (object, dir) = handle::split(dirid);
        let name = name.as_ref();
        if dir == RESERVED_INO {
            return match name {
                b"." => Ok(dirid),
                b".." => Ok(handle::fileid(object, ROOT_INO)),
                _ => {
                    let snaps = self.exports.snapshots_of(object).await.map_err(export_status)?;
                    snaps
                        .into_iter()
                        .find(|(n, _)| n.as_bytes() == name)
                        .map(|(_, id)| handle::fileid(id, ROOT_INO))
                        .ok_or(nfsstat3::NFS3ERR_NOENT)
                }
            };
        }
        let fs = self.fs(object).await?;
        let root_special = dir == ROOT_INO && (name == SNAPSHOT_DIR || name == b"..");
        let info = if root_special { Some(self.exports.object_info(object).await.map_err(export_status)?) } else { None };
        if name == SNAPSHOT_DIR && info == Some(ObjectInfo::Dataset) {
            return Ok(handle::fileid(object, RESERVED_INO));
        }
        let child = fs.lookup(&caller(auth), dir, name).await.map_err(|e| self.status("lookup", e))?;
        if let (b"..", Some(ObjectInfo::Snapshot { dataset })) = (name, info) {
            // A snapshot's root sits in its dataset's `.snapshots`, whichever way it was
            // reached (at the root of the snapshot's own export a client never asks for "..").
            // Once that dataset is deleted there is no `.snapshots`: the root is its own parent.
            if self.has_snapshot_dir(dataset).await? {
                return Ok(handle::fileid(dataset, RESERVED_INO));
            }
        }
        Ok(handle::fileid(object, child))
    }

    async fn getattr(&self, _auth: &AuthContext, id: fileid3) -> Result<fattr3, nfsstat3> {
        let (object, ino) = handle::split(id);
        if ino == RESERVED_INO {
            return self.snapshot_dir_attr(object).await;
        }
        let fs = self.fs(object).await?;
        self.attr_of(&fs, object, ino).await
    }

    async fn setattr(&self, auth: &AuthContext, id: fileid3, setattr: sattr3) -> Result<fattr3, nfsstat3> {
        let (object, ino) = handle::split(id);
        if ino == RESERVED_INO {
            return Err(nfsstat3::NFS3ERR_ROFS);
        }
        let fs = self.fs(object).await?;
        let inode = fs.setattr(&caller(auth), ino, &attrs::set_attr(&setattr)).await.map_err(|e| self.status("setattr", e))?;
        Ok(attrs::fattr(&inode, id, self.fsid(object).await?))
    }

    async fn read(&self, auth: &AuthContext, id: fileid3, offset: u64, count: u32) -> Result<(Vec<u8>, bool), nfsstat3> {
        let (object, ino) = handle::split(id);
        if ino == RESERVED_INO {
            return Err(nfsstat3::NFS3ERR_ISDIR);
        }
        let fs = self.fs(object).await?;
        fs.read(&caller(auth), ino, offset, count).await.map_err(|e| self.status("read", e))
    }

    async fn write(&self, auth: &AuthContext, id: fileid3, offset: u64, data: &[u8]) -> Result<fattr3, nfsstat3> {
        let (object, ino) = handle::split(id);
        if ino == RESERVED_INO {
            return Err(nfsstat3::NFS3ERR_ROFS);
        }
        let fs = self.fs(object).await?;
        let inode = fs.write(&caller(auth), ino, offset, data).await.map_err(|e| self.status("write", e))?;
        Ok(attrs::fattr(&inode, id, self.fsid(object).await?))
    }

    async fn create(&self, auth: &AuthContext, dirid: fileid3, filename: &filename3, attr: sattr3) -> Result<(fileid3, fattr3), nfsstat3> {
        let mut node = NewNode::new(Kind::File, match attr.mode {
            zerofs_nfsserve::nfs::set_mode3::mode(m) => m,
            zerofs_nfsserve::nfs::set_mode3::Void => 0o644,
        });
        let sa = attrs::set_attr(&attr);
        node.uid = sa.uid;
        node.gid = sa.gid;
        match self.make(auth, dirid, filename.as_ref(), node, Some(&attr)).await {
            // UNCHECKED create of an existing regular file opens it (and truncates it when
            // the attributes carry a size), as RFC 1813 says.
            Err(nfsstat3::NFS3ERR_EXIST) => {
                let (object, _) = handle::split(dirid);
                let id = self.lookup(auth, dirid, filename).await?;
                let (_, ino) = handle::split(id);
                if ino == RESERVED_INO {
                    // `.snapshots`: a directory of the server's, never a file to open.
                    return Err(nfsstat3::NFS3ERR_EXIST);
                }
                let fs = self.fs(object).await?;
                let existing = fs.getattr(ino).await.map_err(|e| self.status("create", e))?;
                if existing.kind != Kind::File {
                    return Err(nfsstat3::NFS3ERR_EXIST);
                }
                if let set_size3::size(size) = attr.size {
                    let set = SetAttr { size: Some(size), ..Default::default() };
                    fs.setattr(&caller(auth), ino, &set).await.map_err(|e| self.status("create", e))?;
                }
                Ok((id, self.attr_of(&fs, object, ino).await?))
            }
            other => other,
        }
    }

    async fn create_exclusive(&self, auth: &AuthContext, dirid: fileid3, filename: &filename3) -> Result<fileid3, nfsstat3> {
        // The client follows an exclusive create with a SETATTR carrying the real mode.
        let node = NewNode::new(Kind::File, 0o600);
        Ok(self.make(auth, dirid, filename.as_ref(), node, None).await?.0)
    }

    async fn mkdir(&self, auth: &AuthContext, dirid: fileid3, dirname: &filename3, attr: &sattr3) -> Result<(fileid3, fattr3), nfsstat3> {
        let sa = attrs::set_attr(attr);
        let mut node = NewNode::new(Kind::Dir, sa.mode.unwrap_or(0o755));
        node.uid = sa.uid;
        node.gid = sa.gid;
        self.make(auth, dirid, dirname.as_ref(), node, None).await
    }

    async fn remove(&self, auth: &AuthContext, dirid: fileid3, filename: &filename3) -> Result<(), nfsstat3> {
        let (object, dir) = handle::split(dirid);
        self.check_reserved(object, dir, filename.as_ref()).await.map_err(reserved_name_is_not_removable)?;
        let fs = self.fs(object).await?;
        fs.remove_any(&caller(auth), dir, filename.as_ref()).await.map_err(|e| self.status("remove", e))
    }

    async fn rename(&self, auth: &AuthContext, from_dirid: fileid3, from_filename: &filename3, to_dirid: fileid3, to_filename: &filename3) -> Result<(), nfsstat3> {
        let (from_object, from_dir) = handle::split(from_dirid);
        let (to_object, to_dir) = handle::split(to_dirid);
        if from_object != to_object {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        self.check_reserved(from_object, from_dir, from_filename.as_ref()).await.map_err(reserved_name_is_not_removable)?;
        self.check_reserved(to_object, to_dir, to_filename.as_ref()).await?;
        let fs = self.fs(from_object).await?;
        fs.rename(&caller(auth), from_dir, from_filename.as_ref(), to_dir, to_filename.as_ref())
            .await
            .map(|_| ())
            .map_err(|e| self.status("rename", e))
    }

    async fn readdir(&self, auth: &AuthContext, dirid: fileid3, start_after: fileid3, max_entries: usize) -> Result<ReadDirResult, nfsstat3> {
        let (object, dir) = handle::split(dirid);
        if dir == RESERVED_INO {
            return self.readdir_snapshots(object, start_after, max_entries).await;
        }
        let fs = self.fs(object).await?;
        let cookie = start_after;
        let max = max_entries.max(1);
        let info = if dir == ROOT_INO { Some(self.exports.object_info(object).await.map_err(export_status)?) } else { None };
        let show_snapdir = info == Some(ObjectInfo::Dataset) && !self.hide_snapshot_dir;
        let (rows, eof) = fs.readdir(&caller(auth), dir, cookie, max).await.map_err(|e| self.status("readdir", e))?;
        let fsid = self.fsid(object).await?;
        let mut entries = Vec::with_capacity(rows.len() + 1);
        for row in rows {
            if show_snapdir && row.cookie > SNAPSHOT_DIR_COOKIE && cookie < SNAPSHOT_DIR_COOKIE && entries.iter().all(|e: &NfsDirEntry| e.cookie != SNAPSHOT_DIR_COOKIE) {
                entries.push(NfsDirEntry { fileid: handle::fileid(object, RESERVED_INO), name: SNAPSHOT_DIR.to_vec().into(), attr: self.snapshot_dir_attr(object).await?, cookie: SNAPSHOT_DIR_COOKIE });
            }
            if let (b"..", Some(ObjectInfo::Snapshot { dataset })) = (&row.name[..], info) {
                // As LOOKUP answers it: a snapshot's root lives in `.snapshots` while its
                // dataset exists.
                if self.has_snapshot_dir(dataset).await? {
                    let attr = self.snapshot_dir_attr_seen_from(dataset, &fs).await?;
                    entries.push(NfsDirEntry { fileid: handle::fileid(dataset, RESERVED_INO), name: row.name.into(), attr, cookie: row.cookie });
                    continue;
                }
            }
            // An entry removed since the listing was read is skipped, not reported broken.
            let attr = match fs.getattr(row.ino).await {
                Ok(inode) => attrs::fattr(&inode, handle::fileid(object, row.ino), fsid),
                Err(FsError::Stale) => continue,
                Err(e) => return Err(self.status("readdir", e)),
            };
            entries.push(NfsDirEntry { fileid: handle::fileid(object, row.ino), name: row.name.into(), attr, cookie: row.cookie });
        }
        if show_snapdir && eof && cookie < SNAPSHOT_DIR_COOKIE && entries.iter().all(|e| e.cookie != SNAPSHOT_DIR_COOKIE) {
            entries.push(NfsDirEntry { fileid: handle::fileid(object, RESERVED_INO), name: SNAPSHOT_DIR.to_vec().into(), attr: self.snapshot_dir_attr(object).await?, cookie: SNAPSHOT_DIR_COOKIE });
        }
        Ok(ReadDirResult { entries, end: eof })
    }

    async fn symlink(&self, auth: &AuthContext, dirid: fileid3, linkname: &filename3, symlink: &nfspath3, attr: &sattr3) -> Result<(fileid3, fattr3), nfsstat3> {
        let sa = attrs::set_attr(attr);
        let mut node = NewNode::new(Kind::Symlink, sa.mode.unwrap_or(0o777));
        node.symlink = symlink.as_ref().to_vec();
        node.uid = sa.uid;
        node.gid = sa.gid;
        self.make(auth, dirid, linkname.as_ref(), node, None).await
    }

    async fn readlink(&self, _auth: &AuthContext, id: fileid3) -> Result<nfspath3, nfsstat3> {
        let (object, ino) = handle::split(id);
        if ino == RESERVED_INO {
            return Err(nfsstat3::NFS3ERR_INVAL);
        }
        let fs = self.fs(object).await?;
        Ok(fs.readlink(ino).await.map_err(|e| self.status("readlink", e))?.into())
    }

    async fn mknod(&self, auth: &AuthContext, dirid: fileid3, filename: &filename3, ftype: ftype3, attr: &sattr3, spec: Option<&specdata3>) -> Result<(fileid3, fattr3), nfsstat3> {
        let kind = attrs::kind(ftype).ok_or(nfsstat3::NFS3ERR_BADTYPE)?;
        if matches!(kind, Kind::File | Kind::Dir | Kind::Symlink) {
            return Err(nfsstat3::NFS3ERR_BADTYPE);
        }
        let sa = attrs::set_attr(attr);
        let mut node = NewNode::new(kind, sa.mode.unwrap_or(0o644));
        node.uid = sa.uid;
        node.gid = sa.gid;
        if let Some(s) = spec {
            node.rdev = (s.specdata1, s.specdata2);
        }
        self.make(auth, dirid, filename.as_ref(), node, None).await
    }

    async fn link(&self, auth: &AuthContext, fileid: fileid3, linkdirid: fileid3, linkname: &filename3) -> Result<(), nfsstat3> {
        let (object, ino) = handle::split(fileid);
        let (dir_object, dir) = handle::split(linkdirid);
        if object != dir_object {
            return Err(nfsstat3::NFS3ERR_XDEV);
        }
        if ino == RESERVED_INO {
            return Err(nfsstat3::NFS3ERR_ROFS);
        }
        self.check_reserved(object, dir, linkname.as_ref()).await?;
        let fs = self.fs(object).await?;
        fs.link(&caller(auth), ino, dir, linkname.as_ref()).await.map(|_| ()).map_err(|e| self.status("link", e))
    }

    async fn commit(&self, _auth: &AuthContext, fileid: fileid3, _offset: u64, _count: u32) -> Result<writeverf3, nfsstat3> {
        let (object, _) = handle::split(fileid);
        let fs = self.fs(object).await?;
        fs.flush().await.map_err(|e| self.status("commit", e))?;
        Ok(self.boot_verifier)
    }

    async fn fsinfo(&self, auth: &AuthContext, root_fileid: fileid3) -> Result<fsinfo3, nfsstat3> {
        let attr = self.getattr(auth, root_fileid).await?;
        let io = MAX_IO_SIZE as u32;
        Ok(fsinfo3 {
            obj_attributes: post_op_attr::attributes(attr),
            rtmax: io,
            rtpref: io,
            rtmult: 4096,
            wtmax: io,
            wtpref: io,
            wtmult: 4096,
            dtpref: 64 * 1024,
            maxfilesize: MAX_FILE_SIZE,
            time_delta: nfstime3 { seconds: 0, nseconds: 1 },
            properties: FSF_LINK | FSF_SYMLINK | FSF_HOMOGENEOUS | FSF_CANSETTIME,
        })
    }

    async fn fsstat(&self, auth: &AuthContext, fileid: fileid3) -> Result<fsstat3, nfsstat3> {
        let attr = self.getattr(auth, fileid).await?;
        let (object, _) = handle::split(fileid);
        let fs = self.fs(object).await?;
        let usage = fs.usage().await;
        const UNKNOWN_CAPACITY: u64 = 1 << 50;
        let (total, free) = match (fs.quota(), (self.capacity)()) {
            (Some(q), Some((_, disk_free))) => (q, q.saturating_sub(usage.bytes).min(disk_free)),
            (Some(q), None) => (q, q.saturating_sub(usage.bytes)),
            (None, Some((_, disk_free))) => (usage.bytes + disk_free, disk_free),
            (None, None) => (UNKNOWN_CAPACITY.max(usage.bytes), UNKNOWN_CAPACITY.saturating_sub(usage.bytes)),
        };
        let max_files = handle::MAX_INODE_COUNT;
        Ok(fsstat3 {
            obj_attributes: post_op_attr::attributes(attr),
            tbytes: total,
            fbytes: free,
            abytes: free,
            tfiles: max_files,
            ffiles: max_files - usage.inodes.min(max_files),
            afiles: max_files - usage.inodes.min(max_files),
            invarsec: 0,
        })
    }
}
