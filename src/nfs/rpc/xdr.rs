//! XDR (RFC 4506) decoding over a borrowed record and encoding into a reply buffer.
//!
//! Decoding borrows from the record: opaque data (a WRITE's payload, names) comes back as a
//! slice, and a length is checked against the bytes actually present before anything is
//! allocated for it, so a lying length costs nothing. Encoding of the NFS types the library
//! makes public goes through its `XDR` impls; the rest is written here.

use zerofs_nfsserve::nfs::{
    nfs_fh3, nfstime3, sattr3, set_atime, set_gid3, set_mode3, set_mtime, set_size3, set_uid3,
};
use zerofs_nfsserve::xdr::XDR;

/// The arguments could not be decoded: the caller answers GARBAGE_ARGS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Garbage;

pub type DecResult<T> = Result<T, Garbage>;

pub struct Dec<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn padded(len: usize) -> usize {
    (len + 3) & !3
}

impl<'a> Dec<'a> {
    pub fn new(buf: &'a [u8]) -> Dec<'a> {
        Dec { buf, pos: 0 }
    }

    pub fn rest(&self) -> &'a [u8] {
        &self.buf[self.pos..]
    }

    fn take(&mut self, n: usize) -> DecResult<&'a [u8]> {
        let end = self.pos.checked_add(n).ok_or(Garbage)?;
        let s = self.buf.get(self.pos..end).ok_or(Garbage)?;
        self.pos = end;
        Ok(s)
    }

    pub fn u32(&mut self) -> DecResult<u32> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().expect("4 bytes")))
    }

    pub fn u64(&mut self) -> DecResult<u64> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().expect("8 bytes")))
    }

    pub fn bool(&mut self) -> DecResult<bool> {
        match self.u32()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err(Garbage),
        }
    }

    /// Fixed-length opaque of `N` bytes (N a multiple of 4 for every use here).
    pub fn fixed<const N: usize>(&mut self) -> DecResult<[u8; N]> {
        let s = self.take(padded(N))?;
        Ok(s[..N].try_into().expect("N bytes"))
    }

    /// Variable-length opaque of at most `max` bytes, borrowed from the record.
    pub fn opaque(&mut self, max: usize) -> DecResult<&'a [u8]> {
        let len = self.u32()? as usize;
        if len > max {
            return Err(Garbage);
        }
        let s = self.take(padded(len))?;
        Ok(&s[..len])
    }

    pub fn fh(&mut self) -> DecResult<nfs_fh3> {
        Ok(nfs_fh3 { data: self.opaque(64)?.to_vec() })
    }

    pub fn time(&mut self) -> DecResult<nfstime3> {
        Ok(nfstime3 { seconds: self.u32()?, nseconds: self.u32()? })
    }

    pub fn sattr(&mut self) -> DecResult<sattr3> {
        let mode = if self.bool()? { set_mode3::mode(self.u32()?) } else { set_mode3::Void };
        let uid = if self.bool()? { set_uid3::uid(self.u32()?) } else { set_uid3::Void };
        let gid = if self.bool()? { set_gid3::gid(self.u32()?) } else { set_gid3::Void };
        let size = if self.bool()? { set_size3::size(self.u64()?) } else { set_size3::Void };
        let atime = match self.u32()? {
            0 => set_atime::DONT_CHANGE,
            1 => set_atime::SET_TO_SERVER_TIME,
            2 => set_atime::SET_TO_CLIENT_TIME(self.time()?),
            _ => return Err(Garbage),
        };
        let mtime = match self.u32()? {
            0 => set_mtime::DONT_CHANGE,
            1 => set_mtime::SET_TO_SERVER_TIME,
            2 => set_mtime::SET_TO_CLIENT_TIME(self.time()?),
            _ => return Err(Garbage),
        };
        Ok(sattr3 { mode, uid, gid, size, atime, mtime })
    }
}

/// Longest name accepted on the wire; the filesystem refuses anything over 255 with
/// NAMETOOLONG, so a little more must still decode to get that answer.
pub const MAX_NAME: usize = 4096;
/// Longest symlink target or MOUNT path accepted on the wire.
pub const MAX_PATH: usize = 64 * 1024;

pub fn put_u32(out: &mut Vec<u8>, v: u32) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_u64(out: &mut Vec<u8>, v: u64) {
    out.extend_from_slice(&v.to_be_bytes());
}

pub fn put_bool(out: &mut Vec<u8>, v: bool) {
    put_u32(out, v as u32);
}

pub fn put_opaque(out: &mut Vec<u8>, data: &[u8]) {
    put_u32(out, data.len() as u32);
    out.extend_from_slice(data);
    out.extend_from_slice(&[0u8; 3][..padded(data.len()) - data.len()]);
}

/// Encodes one of the library's public XDR types.
pub fn put<T: XDR>(out: &mut Vec<u8>, v: &T) {
    v.serialize(out).expect("writing into a Vec cannot fail");
}

/// Bytes `put_opaque` writes for `len` bytes of data.
pub fn opaque_size(len: usize) -> usize {
    4 + padded(len)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opaque_round_trip_pads_to_four_bytes() {
        for len in 0..9 {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut out = Vec::new();
            put_opaque(&mut out, &data);
            assert_eq!(out.len(), opaque_size(len));
            let mut d = Dec::new(&out);
            assert_eq!(d.opaque(100).unwrap(), &data[..]);
            assert!(d.rest().is_empty());
        }
    }

    #[test]
    fn lying_lengths_are_garbage_without_allocating() {
        let mut out = Vec::new();
        put_u32(&mut out, u32::MAX);
        out.extend_from_slice(&[1, 2, 3, 4]);
        assert_eq!(Dec::new(&out).opaque(usize::MAX), Err(Garbage));
        assert_eq!(Dec::new(&out).opaque(8), Err(Garbage));
        assert_eq!(Dec::new(&[0, 0, 0]).u32(), Err(Garbage));
        assert_eq!(Dec::new(&[0, 0, 0, 2]).bool(), Err(Garbage));
    }

    #[test]
    fn sattr_decodes_what_the_library_encodes() {
        let cases = [
            sattr3::default(),
            sattr3 {
                mode: set_mode3::mode(0o4755),
                uid: set_uid3::uid(1000),
                gid: set_gid3::gid(100),
                size: set_size3::size(1 << 40),
                atime: set_atime::SET_TO_SERVER_TIME,
                mtime: set_mtime::SET_TO_CLIENT_TIME(nfstime3 { seconds: 7, nseconds: 9 }),
            },
        ];
        for s in cases {
            let mut out = Vec::new();
            put(&mut out, &s);
            let mut d = Dec::new(&out);
            let back = d.sattr().unwrap();
            assert!(d.rest().is_empty());
            let mut again = Vec::new();
            put(&mut again, &back);
            assert_eq!(out, again);
        }
    }

    #[test]
    fn our_encoding_matches_nfs3_types() {
        use nfs3_types::xdr_codec::{Opaque, Pack};
        let mut theirs = Vec::new();
        let fh = nfs3_types::nfs3::nfs_fh3 { data: Opaque::owned(vec![9u8; 25]) };
        fh.pack(&mut theirs).unwrap();
        let mut ours = Vec::new();
        put_opaque(&mut ours, &[9u8; 25]);
        assert_eq!(ours, theirs);
        let mut d = Dec::new(&theirs);
        assert_eq!(d.fh().unwrap().data, vec![9u8; 25]);
    }
}
