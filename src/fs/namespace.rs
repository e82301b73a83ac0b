//! Names: lookup, create, link, unlink, rename and directory listing.

use tokio::sync::RwLockWriteGuard;

use super::backend::prefix_range;
use super::changes::Changes;
use super::codec::{self, Inode, Kind, Time, FIRST_ENTRY_COOKIE};
use super::error::{FsError, FsResult};
use super::perm::{self, Caller, EXEC, WRITE};
use super::{Delta, Filesystem, MAX_NAME_LEN, MAX_SYMLINK_LEN, ROOT_INO};

/// What to create: the caller's uid/gid own it unless `uid`/`gid` say otherwise (root only).
#[derive(Debug, Clone)]
pub struct NewNode {
    pub kind: Kind,
    pub mode: u32,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub rdev: (u32, u32),
    pub symlink: Vec<u8>,
}

impl NewNode {
    pub fn new(kind: Kind, mode: u32) -> NewNode {
        NewNode { kind, mode, uid: None, gid: None, rdev: (0, 0), symlink: Vec::new() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirEntry {
    pub name: Vec<u8>,
    pub ino: u64,
    pub cookie: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenameOutcome {
    Renamed,
    /// Source and target were already the same file: POSIX says do nothing.
    Unchanged,
}

/// A name a client may create: 1–255 bytes, no `/`, no NUL, not `.` or `..`.
pub fn validate_name(name: &[u8]) -> FsResult<()> {
    if name.is_empty() {
        return Err(FsError::Invalid("empty file name"));
    }
    if name.len() > MAX_NAME_LEN {
        return Err(FsError::NameTooLong);
    }
    if name.contains(&b'/') || name.contains(&0) {
        return Err(FsError::Invalid("file name contains '/' or NUL"));
    }
    Ok(())
}

fn validate_new_name(name: &[u8]) -> FsResult<()> {
    validate_name(name)?;
    if name == b"." || name == b".." {
        return Err(FsError::Exists);
    }
    Ok(())
}

impl Filesystem {
    pub async fn getattr(&self, ino: u64) -> FsResult<Inode> {
        self.load(ino).await
    }

    pub async fn lookup(&self, caller: &Caller, dir: u64, name: &[u8]) -> FsResult<u64> {
        let d = self.load(dir).await?;
        if d.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        perm::check(caller, &d, EXEC)?;
        validate_name(name)?;
        match name {
            b"." => Ok(dir),
            b".." => Ok(d.parent),
            _ => Ok(self.entry(dir, name).await?.ok_or(FsError::NotFound)?.1),
        }
    }

    /// (cookie, child) of a directory entry.
    async fn entry(&self, dir: u64, name: &[u8]) -> FsResult<Option<(u64, u64)>> {
        match self.backend.get(&codec::dirent_key(dir, name)).await? {
            Some(v) => Ok(Some(codec::decode_dirent(&v)?)),
            None => Ok(None),
        }
    }

    async fn load_dir_for_change(&self, caller: &Caller, dir: u64) -> FsResult<Inode> {
        self.writable()?;
        let d = self.load(dir).await?;
        if d.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        perm::check(caller, &d, WRITE | EXEC)?;
        Ok(d)
    }

    /// Creates a file, directory, symlink or special file. Fails with `Exists` when the name
    /// is taken.
    pub async fn create(
        &self,
        caller: &Caller,
        dir: u64,
        name: &[u8],
        node: NewNode,
    ) -> FsResult<Inode> {
        validate_new_name(name)?;
        if node.kind == Kind::Symlink && node.symlink.len() > MAX_SYMLINK_LEN {
            return Err(FsError::NameTooLong);
        }
        if (node.uid.is_some_and(|u| u != caller.uid) || node.gid.is_some_and(|g| !caller.in_group(g)))
            && !caller.is_root()
        {
            return Err(FsError::Perm);
        }
        let _ns = self.namespace.lock().await;
        let mut d = self.load_dir_for_change(caller, dir).await?;
        if self.entry(dir, name).await?.is_some() {
            return Err(FsError::Exists);
        }
        let ino = self.alloc_ino().await?;
        let now = Time::now();
        let setgid_dir = d.mode & 0o2000 != 0;
        let mut mode = node.mode & 0o7777;
        if node.kind == Kind::Dir && setgid_dir {
            mode |= 0o2000;
        }
        let gid = node.gid.unwrap_or(if setgid_dir { d.gid } else { caller.gid });
        let inode = Inode {
            ino,
            kind: node.kind,
            mode,
            uid: node.uid.unwrap_or(caller.uid),
            gid,
            nlink: if node.kind == Kind::Dir { 2 } else { 1 },
            size: if node.kind == Kind::Symlink { node.symlink.len() as u64 } else { 0 },
            atime: now,
            mtime: now,
            ctime: now,
            rdev: node.rdev,
            stored: 0,
            parent: dir,
            next_cookie: FIRST_ENTRY_COOKIE,
            symlink: node.symlink,
        };
        let mut batch = Changes::new();
        self.add_entry(&mut batch, &mut d, name, ino);
        if node.kind == Kind::Dir {
            d.nlink += 1;
        }
        d.mtime = now;
        d.ctime = now;
        batch.put_inode(&inode);
        batch.put_inode(&d);
        let seq = self.commit(batch, Delta { inodes: 1, ..Delta::default() }).await?;
        drop(_ns);
        self.settle(seq).await?;
        Ok(inode)
    }

    fn add_entry(&self, batch: &mut Changes, dir: &mut Inode, name: &[u8], child: u64) {
        let cookie = dir.next_cookie;
        dir.next_cookie += 1;
        batch.put(codec::dirent_key(dir.ino, name), codec::encode_dirent(cookie, child));
        batch.put(codec::cookie_key(dir.ino, cookie), codec::encode_cookie_entry(child, name));
    }

    fn drop_entry(batch: &mut Changes, dir: u64, name: &[u8], cookie: u64) {
        batch.delete(codec::dirent_key(dir, name));
        batch.delete(codec::cookie_key(dir, cookie));
    }

    /// Makes `target` (not a directory) reachable as `dir/name` too.
    pub async fn link(&self, caller: &Caller, target: u64, dir: u64, name: &[u8]) -> FsResult<Inode> {
        validate_new_name(name)?;
        let _ns = self.namespace.lock().await;
        let mut d = self.load_dir_for_change(caller, dir).await?;
        let _t = self.stripe(target).write().await;
        let mut t = self.load(target).await?;
        if t.kind == Kind::Dir {
            return Err(FsError::Perm);
        }
        if self.entry(dir, name).await?.is_some() {
            return Err(FsError::Exists);
        }
        if t.nlink == u32::MAX {
            return Err(FsError::Invalid("too many links"));
        }
        let now = Time::now();
        let mut batch = Changes::new();
        self.add_entry(&mut batch, &mut d, name, target);
        t.nlink += 1;
        t.ctime = now;
        d.mtime = now;
        d.ctime = now;
        batch.put_inode(&t);
        batch.put_inode(&d);
        let seq = self.commit(batch, Delta::default()).await?;
        drop((_t, _ns));
        self.settle(seq).await?;
        Ok(t)
    }

    /// Removes a name that is not a directory (unlink).
    pub async fn remove(&self, caller: &Caller, dir: u64, name: &[u8]) -> FsResult<()> {
        self.unlink(caller, dir, name, Some(false)).await
    }

    /// Removes an empty directory (rmdir).
    pub async fn rmdir(&self, caller: &Caller, dir: u64, name: &[u8]) -> FsResult<()> {
        self.unlink(caller, dir, name, Some(true)).await
    }

    /// Removes a name whatever it is; a directory only when empty (the NFS library's trait
    /// has one `remove` for REMOVE and RMDIR; our RPC layer calls `remove` and `rmdir`).
    pub async fn remove_any(&self, caller: &Caller, dir: u64, name: &[u8]) -> FsResult<()> {
        self.unlink(caller, dir, name, None).await
    }

    async fn unlink(
        &self,
        caller: &Caller,
        dir: u64,
        name: &[u8],
        want_dir: Option<bool>,
    ) -> FsResult<()> {
        validate_name(name)?;
        match name {
            b"." => return Err(FsError::Invalid("cannot remove '.'")),
            b".." => return Err(FsError::NotEmpty),
            _ => {}
        }
        let _ns = self.namespace.lock().await;
        let mut d = self.load_dir_for_change(caller, dir).await?;
        let (cookie, child) = self.entry(dir, name).await?.ok_or(FsError::NotFound)?;
        let _c = self.stripe(child).write().await;
        let c = self.load(child).await?;
        let is_dir = c.kind == Kind::Dir;
        match want_dir {
            Some(false) if is_dir => return Err(FsError::IsDir),
            Some(true) if !is_dir => return Err(FsError::NotDir),
            _ => {}
        }
        if is_dir && !self.dir_is_empty(child).await? {
            return Err(FsError::NotEmpty);
        }
        perm::check_unlink(caller, &d, &c)?;
        let now = Time::now();
        let mut batch = Changes::new();
        Self::drop_entry(&mut batch, dir, name, cookie);
        if c.kind == Kind::Dir {
            d.nlink -= 1;
        }
        d.mtime = now;
        d.ctime = now;
        batch.put_inode(&d);
        let (delta, orphaned) = Self::release_link(&mut batch, c, now);
        let seq = self.commit(batch, Delta { frees: true, ..delta }).await?;
        drop((_c, _ns));
        self.settle(seq).await?;
        if orphaned {
            self.purge_wake.notify_one();
        }
        Ok(())
    }

    /// Drops one link to `c`; when it was the last, the inode goes and its data is handed to
    /// the background purge. Returns the usage change and whether an orphan was recorded.
    fn release_link(batch: &mut Changes, mut c: Inode, now: Time) -> (Delta, bool) {
        if c.kind != Kind::Dir && c.nlink > 1 {
            c.nlink -= 1;
            c.ctime = now;
            batch.put_inode(&c);
            return (Delta::default(), false);
        }
        batch.delete_inode(c.ino);
        let orphaned = c.kind == Kind::File && c.stored > 0;
        if orphaned {
            batch.put(codec::orphan_key(c.ino), bytes::Bytes::from_static(&[codec::FORMAT_V1]));
        }
        (Delta { bytes: -(c.stored as i64), inodes: -1, frees: true }, orphaned)
    }

    async fn dir_is_empty(&self, dir: u64) -> FsResult<bool> {
        let mut prefix = vec![b'E'];
        prefix.extend_from_slice(&dir.to_be_bytes());
        Ok(self.backend.scan(prefix_range(&prefix), 1).await?.is_empty())
    }

    /// Atomically moves `from_dir/from` to `to_dir/to`, replacing a file there or an empty
    /// directory (when the source is a directory too).
    pub async fn rename(
        &self,
        caller: &Caller,
        from_dir: u64,
        from: &[u8],
        to_dir: u64,
        to: &[u8],
    ) -> FsResult<RenameOutcome> {
        validate_name(from)?;
        validate_new_name(to)?;
        if from == b"." || from == b".." {
            return Err(FsError::Invalid("cannot rename '.' or '..'"));
        }
        let _ns = self.namespace.lock().await;
        let mut fd = self.load_dir_for_change(caller, from_dir).await?;
        let mut td = if to_dir == from_dir {
            None
        } else {
            Some(self.load_dir_for_change(caller, to_dir).await?)
        };
        let (src_cookie, src_ino) = self.entry(from_dir, from).await?.ok_or(FsError::NotFound)?;
        let dst = self.entry(to_dir, to).await?;
        if dst.is_some_and(|(_, ino)| ino == src_ino) {
            return Ok(RenameOutcome::Unchanged);
        }
        let (_g1, _g2) = self.lock_pair(src_ino, dst.map(|d| d.1)).await;
        let mut src = self.load(src_ino).await?;
        perm::check_unlink(caller, &fd, &src)?;
        let moving_dir_across = src.kind == Kind::Dir && to_dir != from_dir;
        if moving_dir_across {
            self.ensure_not_within(src_ino, to_dir).await?;
            if caller.uid != src.uid {
                perm::check(caller, &src, WRITE)?;
            }
        }
        let dst_inode = match dst {
            Some((_, ino)) => Some(self.load(ino).await?),
            None => None,
        };
        if let Some(t) = &dst_inode {
            match (src.kind == Kind::Dir, t.kind == Kind::Dir) {
                (true, false) => return Err(FsError::NotDir),
                (false, true) => return Err(FsError::IsDir),
                (true, true) if !self.dir_is_empty(t.ino).await? => return Err(FsError::NotEmpty),
                _ => {}
            }
            perm::check_unlink(caller, td.as_ref().unwrap_or(&fd), t)?;
        }

        let now = Time::now();
        let mut batch = Changes::new();
        let mut delta = Delta::default();
        let mut orphaned = false;
        Self::drop_entry(&mut batch, from_dir, from, src_cookie);
        {
            let target_dir = td.as_mut().unwrap_or(&mut fd);
            if let (Some((dst_cookie, _)), Some(t)) = (dst, dst_inode) {
                batch.delete(codec::cookie_key(to_dir, dst_cookie));
                if t.kind == Kind::Dir {
                    target_dir.nlink -= 1;
                }
                (delta, orphaned) = Self::release_link(&mut batch, t, now);
            }
            self.add_entry(&mut batch, target_dir, to, src_ino);
            if moving_dir_across {
                target_dir.nlink += 1;
            }
            target_dir.mtime = now;
            target_dir.ctime = now;
        }
        if moving_dir_across {
            fd.nlink -= 1;
            src.parent = to_dir;
        }
        fd.mtime = now;
        fd.ctime = now;
        src.ctime = now;
        batch.put_inode(&fd);
        if let Some(t) = &td {
            batch.put_inode(t);
        }
        batch.put_inode(&src);
        let seq = self.commit(batch, delta).await?;
        drop((_g1, _g2, _ns));
        self.settle(seq).await?;
        if orphaned {
            self.purge_wake.notify_one();
        }
        Ok(RenameOutcome::Renamed)
    }

    /// Refuses to move directory `moved` under `dest` when `dest` is `moved` or inside it.
    async fn ensure_not_within(&self, moved: u64, dest: u64) -> FsResult<()> {
        let mut cur = dest;
        loop {
            if cur == moved {
                return Err(FsError::Invalid("cannot move a directory into itself"));
            }
            if cur == ROOT_INO {
                return Ok(());
            }
            cur = self.load(cur).await?.parent;
        }
    }

    /// Locks the stripes of one or two inodes in a fixed order, once each.
    async fn lock_pair(
        &self,
        a: u64,
        b: Option<u64>,
    ) -> (RwLockWriteGuard<'_, ()>, Option<RwLockWriteGuard<'_, ()>>) {
        let sa = (a as usize) % self.stripes.len();
        let Some(b) = b else { return (self.stripes[sa].write().await, None) };
        let sb = (b as usize) % self.stripes.len();
        if sa == sb {
            return (self.stripes[sa].write().await, None);
        }
        let (lo, hi) = if sa < sb { (sa, sb) } else { (sb, sa) };
        let g1 = self.stripes[lo].write().await;
        let g2 = self.stripes[hi].write().await;
        (g1, Some(g2))
    }

    /// Entries after `cookie` (0 = from the start), at most `max`, and whether the listing is
    /// complete. "." and ".." come first with cookies 1 and 2.
    pub async fn readdir(
        &self,
        caller: &Caller,
        dir: u64,
        cookie: u64,
        max: usize,
    ) -> FsResult<(Vec<DirEntry>, bool)> {
        let d = self.load(dir).await?;
        if d.kind != Kind::Dir {
            return Err(FsError::NotDir);
        }
        perm::check(caller, &d, perm::READ)?;
        let max = max.max(1);
        let mut out = Vec::with_capacity(max.min(1024));
        if cookie == 0 {
            out.push(DirEntry { name: b".".to_vec(), ino: dir, cookie: 1 });
        }
        if cookie <= 1 {
            out.push(DirEntry { name: b"..".to_vec(), ino: d.parent, cookie: 2 });
        }
        let start = codec::cookie_key(dir, cookie.max(FIRST_ENTRY_COOKIE - 1) + 1);
        let end = codec::cookie_key(dir, u64::MAX);
        let want = max.saturating_sub(out.len());
        let rows = self.backend.scan(start.to_vec()..end.to_vec(), want + 1).await?;
        let eof = rows.len() <= want;
        for (key, value) in rows.into_iter().take(want) {
            let cookie = u64::from_be_bytes(key[9..17].try_into().expect("cookie key"));
            let (ino, name) = codec::decode_cookie_entry(&value)?;
            out.push(DirEntry { name, ino, cookie });
        }
        Ok((out, eof))
    }

    pub async fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let i = self.load(ino).await?;
        if i.kind != Kind::Symlink {
            return Err(FsError::Invalid("not a symbolic link"));
        }
        Ok(i.symlink)
    }
}
