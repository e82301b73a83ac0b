//! Key and value codecs of a dataset database. Every value starts with a format byte so a
//! later release can read what an earlier one wrote.
//!
//! Keys (big-endian numbers so that keys sort the way we scan them):
//!   "S"                          superblock
//!   "I" ino                      inode record
//!   "D" dir name                 directory entry by name  -> cookie, child ino
//!   "E" dir cookie               directory entry by cookie -> child ino, name (READDIR order)
//!   "C" ino chunk-index          file data chunk (absent = hole)
//!   "O" ino                      orphan: an unlinked inode whose chunks are still being purged

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{FsError, FsResult};

pub const FORMAT_V1: u8 = 1;

/// The dataset's layout, the superblock's first byte. Format 1: a chunk's value is its bytes.
/// Format 2: a chunk's value is a patchable value (`store::patch`), whole bytes or patches
/// that small writes merge in without reading the chunk. A dataset keeps the format it was
/// made in (clones and snapshots inherit it); servers of format 1 refuse format 2.
pub const DATA_WHOLE_CHUNKS: u8 = 1;
pub const DATA_PATCHABLE: u8 = crate::store::patch::PATCHABLE_DATASET_FORMAT;
pub const NEWEST_DATA_FORMAT: u8 = DATA_PATCHABLE;

pub fn superblock_key() -> &'static [u8] {
    b"S"
}

pub fn inode_key(ino: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'I';
    k[1..].copy_from_slice(&ino.to_be_bytes());
    k
}

pub fn dirent_key(dir: u64, name: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(9 + name.len());
    k.push(b'D');
    k.extend_from_slice(&dir.to_be_bytes());
    k.extend_from_slice(name);
    k
}

pub fn cookie_key(dir: u64, cookie: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'E';
    k[1..9].copy_from_slice(&dir.to_be_bytes());
    k[9..].copy_from_slice(&cookie.to_be_bytes());
    k
}

pub fn chunk_key(ino: u64, index: u64) -> [u8; 17] {
    let mut k = [0u8; 17];
    k[0] = b'C';
    k[1..9].copy_from_slice(&ino.to_be_bytes());
    k[9..].copy_from_slice(&index.to_be_bytes());
    k
}

pub fn chunk_index_of(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[9..17].try_into().expect("chunk key is 17 bytes"))
}

pub fn orphan_key(ino: u64) -> [u8; 9] {
    let mut k = [0u8; 9];
    k[0] = b'O';
    k[1..].copy_from_slice(&ino.to_be_bytes());
    k
}

pub fn orphan_ino(key: &[u8]) -> u64 {
    u64::from_be_bytes(key[1..9].try_into().expect("orphan key is 9 bytes"))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File = 1,
    Dir = 2,
    Symlink = 3,
    Fifo = 4,
    Socket = 5,
    CharDev = 6,
    BlockDev = 7,
}

impl Kind {
    fn from_u8(v: u8) -> FsResult<Kind> {
        Ok(match v {
            1 => Kind::File,
            2 => Kind::Dir,
            3 => Kind::Symlink,
            4 => Kind::Fifo,
            5 => Kind::Socket,
            6 => Kind::CharDev,
            7 => Kind::BlockDev,
            _ => return Err(corrupt("inode kind")),
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, PartialOrd, Ord)]
pub struct Time {
    pub secs: i64,
    pub nanos: u32,
}

impl Time {
    pub fn now() -> Time {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Time { secs: d.as_secs() as i64, nanos: d.subsec_nanos() }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inode {
    pub ino: u64,
    pub kind: Kind,
    /// Permission bits and setuid/setgid/sticky (0o7777).
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub nlink: u32,
    pub size: u64,
    pub atime: Time,
    pub mtime: Time,
    pub ctime: Time,
    /// Device numbers of character and block devices.
    pub rdev: (u32, u32),
    /// Bytes of file data stored (sum of chunk lengths): what the quota counts.
    pub stored: u64,
    /// Directories: the parent directory (the root is its own parent).
    pub parent: u64,
    /// Directories: the next READDIR cookie to hand out. Cookies are never reused, so a
    /// cookie a client holds stays valid while the directory changes.
    pub next_cookie: u64,
    pub symlink: Vec<u8>,
}

/// Cookies 1 and 2 are "." and ".."; 3 is reserved for an entry the server adds (the NFS
/// layer's `.snapshots`); stored entries start at 4.
pub const FIRST_ENTRY_COOKIE: u64 = 4;

impl Inode {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(96 + self.symlink.len());
        b.put_u8(FORMAT_V1);
        b.put_u8(self.kind as u8);
        b.put_u32(self.mode);
        b.put_u32(self.uid);
        b.put_u32(self.gid);
        b.put_u32(self.nlink);
        b.put_u64(self.size);
        for t in [self.atime, self.mtime, self.ctime] {
            b.put_i64(t.secs);
            b.put_u32(t.nanos);
        }
        b.put_u32(self.rdev.0);
        b.put_u32(self.rdev.1);
        b.put_u64(self.stored);
        b.put_u64(self.parent);
        b.put_u64(self.next_cookie);
        b.put_u32(self.symlink.len() as u32);
        b.put_slice(&self.symlink);
        b.freeze()
    }

    pub fn decode(ino: u64, v: &[u8]) -> FsResult<Inode> {
        let mut r = Reader(v);
        if r.u8()? != FORMAT_V1 {
            return Err(corrupt("inode format"));
        }
        let kind = Kind::from_u8(r.u8()?)?;
        let mode = r.u32()?;
        let uid = r.u32()?;
        let gid = r.u32()?;
        let nlink = r.u32()?;
        let size = r.u64()?;
        let mut times = [Time::default(); 3];
        for t in times.iter_mut() {
            *t = Time { secs: r.u64()? as i64, nanos: r.u32()? };
        }
        let rdev = (r.u32()?, r.u32()?);
        let stored = r.u64()?;
        let parent = r.u64()?;
        let next_cookie = r.u64()?;
        let len = r.u32()? as usize;
        let symlink = r.take(len)?.to_vec();
        Ok(Inode {
            ino,
            kind,
            mode,
            uid,
            gid,
            nlink,
            size,
            atime: times[0],
            mtime: times[1],
            ctime: times[2],
            rdev,
            stored,
            parent,
            next_cookie,
            symlink,
        })
    }
}

/// Per-dataset counters, rewritten in every batch that changes them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Superblock {
    /// `DATA_WHOLE_CHUNKS` or `DATA_PATCHABLE`.
    pub format: u8,
    pub chunk_size: u32,
    pub next_ino: u64,
    pub used_bytes: u64,
    pub used_inodes: u64,
    /// Inode numbers below this may have been handed out (see `ino_alloc`); a writer that
    /// opens the dataset starts allocating here. Absent from records written before it
    /// existed, which read it as `next_ino`.
    pub ino_ceiling: u64,
}

impl Superblock {
    pub fn encode(&self) -> Bytes {
        let mut b = BytesMut::with_capacity(40);
        b.put_u8(self.format);
        b.put_u32(self.chunk_size);
        b.put_u64(self.next_ino);
        b.put_u64(self.used_bytes);
        b.put_u64(self.used_inodes);
        b.put_u64(self.ino_ceiling);
        b.freeze()
    }

    pub fn decode(v: &[u8]) -> FsResult<Superblock> {
        let mut r = Reader(v);
        let format = match r.u8()? {
            f @ (DATA_WHOLE_CHUNKS | DATA_PATCHABLE) => f,
            0 => return Err(corrupt("superblock format")),
            // A later layout (file data this server cannot read) must stop the open, never be
            // read as an earlier one.
            newer => {
                return Err(FsError::Io(format!(
                    "the dataset is in format {newer}, written by a newer slatefs; this server \
                     ({}) reads formats {DATA_WHOLE_CHUNKS} to {NEWEST_DATA_FORMAT}: upgrade \
                     slatefs to open it",
                    env!("CARGO_PKG_VERSION")
                )))
            }
        };
        let (chunk_size, next_ino, used_bytes, used_inodes) = (r.u32()?, r.u64()?, r.u64()?, r.u64()?);
        let ino_ceiling = if r.0.is_empty() { next_ino } else { r.u64()? };
        Ok(Superblock { format, chunk_size, next_ino, used_bytes, used_inodes, ino_ceiling })
    }
}

/// A directory entry's value under both of its keys.
pub fn encode_dirent(cookie: u64, child: u64) -> Bytes {
    let mut b = BytesMut::with_capacity(17);
    b.put_u8(FORMAT_V1);
    b.put_u64(cookie);
    b.put_u64(child);
    b.freeze()
}

pub fn decode_dirent(v: &[u8]) -> FsResult<(u64, u64)> {
    let mut r = Reader(v);
    if r.u8()? != FORMAT_V1 {
        return Err(corrupt("dirent format"));
    }
    Ok((r.u64()?, r.u64()?))
}

pub fn encode_cookie_entry(child: u64, name: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(9 + name.len());
    b.put_u8(FORMAT_V1);
    b.put_u64(child);
    b.put_slice(name);
    b.freeze()
}

pub fn decode_cookie_entry(v: &[u8]) -> FsResult<(u64, Vec<u8>)> {
    let mut r = Reader(v);
    if r.u8()? != FORMAT_V1 {
        return Err(corrupt("cookie entry format"));
    }
    let child = r.u64()?;
    Ok((child, r.0.to_vec()))
}

fn corrupt(what: &str) -> FsError {
    FsError::Io(format!("corrupt {what} in dataset database"))
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> FsResult<&'a [u8]> {
        if self.0.len() < n {
            return Err(corrupt("record (truncated)"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }
    fn u8(&mut self) -> FsResult<u8> {
        Ok(self.take(1)?[0])
    }
    fn u32(&mut self) -> FsResult<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    fn u64(&mut self) -> FsResult<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inode_round_trip() {
        let i = Inode {
            ino: 7,
            kind: Kind::Symlink,
            mode: 0o4755,
            uid: 1000,
            gid: 100,
            nlink: 3,
            size: 1 << 40,
            atime: Time { secs: -5, nanos: 1 },
            mtime: Time { secs: 1_700_000_000, nanos: 999_999_999 },
            ctime: Time { secs: 2, nanos: 3 },
            rdev: (8, 1),
            stored: 12345,
            parent: 1,
            next_cookie: 99,
            symlink: b"../a/b".to_vec(),
        };
        assert_eq!(Inode::decode(7, &i.encode()).unwrap(), i);
        assert!(Inode::decode(7, &i.encode()[..20]).is_err());
    }

    #[test]
    fn a_superblock_of_a_later_format_is_refused_with_what_to_do() {
        let sb = Superblock { format: DATA_PATCHABLE, chunk_size: 4096, next_ino: 9, used_bytes: 5, used_inodes: 3, ino_ceiling: 9 };
        let mut later = sb.encode().to_vec();
        later[0] = 3;
        let err = Superblock::decode(&later).unwrap_err().to_string();
        assert!(err.contains("format 3") && err.contains("upgrade slatefs"), "{err}");
        later[0] = 0;
        assert!(Superblock::decode(&later).unwrap_err().to_string().contains("corrupt"));
    }

    #[test]
    fn superblock_round_trip_and_records_without_a_ceiling() {
        let sb = Superblock { format: DATA_WHOLE_CHUNKS, chunk_size: 4096, next_ino: 9, used_bytes: 5, used_inodes: 3, ino_ceiling: 4105 };
        assert_eq!(Superblock::decode(&sb.encode()).unwrap(), sb);
        let patchable = Superblock { format: DATA_PATCHABLE, ..sb };
        assert_eq!(Superblock::decode(&patchable.encode()).unwrap(), patchable);
        // A record of a release before the ceiling: everything below next_ino was handed out.
        let old = &sb.encode()[..29];
        assert_eq!(Superblock::decode(old).unwrap(), Superblock { ino_ceiling: 9, ..sb });
    }

    #[test]
    fn keys_sort_by_number() {
        assert!(chunk_key(1, 255) < chunk_key(1, 256));
        assert!(chunk_key(1, u64::MAX) < chunk_key(2, 0));
        assert!(cookie_key(3, 9) < cookie_key(3, 10));
        assert_eq!(chunk_index_of(&chunk_key(5, 77)), 77);
    }
}
