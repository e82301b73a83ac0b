//! NFS file ids and file handles.
//!
//! A file id is `object << 40 | inode`: the catalog id of the dataset or snapshot (below
//! 2^24) and the inode number inside it. Nothing in it depends on the server's start time, so a
//! handle stays valid across restarts and across servers that share the store.
//!
//! A handle is `version (1) | file id (8, big-endian) | MAC (16)`, the MAC a keyed BLAKE3 of
//! the first nine bytes under a secret kept in the store. A client cannot forge a handle into
//! another dataset: it would need the key.

use zerofs_nfsserve::nfs::{fileid3, nfs_fh3, nfsstat3};

pub const INODE_BITS: u32 = 40;
pub const MAX_OBJECT_ID: u64 = (1 << (64 - INODE_BITS)) - 1;
const VERSION: u8 = 1;
const MAC_LEN: usize = 16;
pub const HANDLE_LEN: usize = 1 + 8 + MAC_LEN;

pub fn fileid(object: u64, ino: u64) -> fileid3 {
    debug_assert!(object <= MAX_OBJECT_ID && ino < (1 << INODE_BITS));
    (object << INODE_BITS) | ino
}

pub fn split(id: fileid3) -> (u64, u64) {
    (id >> INODE_BITS, id & ((1 << INODE_BITS) - 1))
}

pub struct HandleCodec {
    key: [u8; 32],
}

impl HandleCodec {
    pub fn new(key: [u8; 32]) -> HandleCodec {
        HandleCodec { key }
    }

    fn mac(&self, head: &[u8]) -> [u8; MAC_LEN] {
        let full = blake3::keyed_hash(&self.key, head);
        full.as_bytes()[..MAC_LEN].try_into().expect("16 bytes")
    }

    pub fn encode(&self, id: fileid3) -> nfs_fh3 {
        let mut data = Vec::with_capacity(HANDLE_LEN);
        data.push(VERSION);
        data.extend_from_slice(&id.to_be_bytes());
        let mac = self.mac(&data);
        data.extend_from_slice(&mac);
        nfs_fh3 { data }
    }

    pub fn decode(&self, fh: &nfs_fh3) -> Result<fileid3, nfsstat3> {
        self.decode_bytes(&fh.data)
    }

    /// [`HandleCodec::decode`] of a handle's bytes still in the request buffer (no copy).
    pub fn decode_bytes(&self, d: &[u8]) -> Result<fileid3, nfsstat3> {
        if d.len() != HANDLE_LEN || d[0] != VERSION {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        }
        let expected = self.mac(&d[..9]);
        // Constant-time comparison: the MAC is the only thing between a client and another
        // dataset's files.
        let diff = expected.iter().zip(&d[9..]).fold(0u8, |acc, (a, b)| acc | (a ^ b));
        if diff != 0 {
            return Err(nfsstat3::NFS3ERR_BADHANDLE);
        }
        Ok(u64::from_be_bytes(d[1..9].try_into().expect("8 bytes")))
    }
}

/// How many inodes a dataset may hold, as FSSTAT reports it.
pub const MAX_INODE_COUNT: u64 = crate::fs::MAX_INO;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_round_trip_and_resist_forgery() {
        let codec = HandleCodec::new([7; 32]);
        let id = fileid(3, 12345);
        let fh = codec.encode(id);
        assert_eq!(codec.decode(&fh).ok(), Some(id));
        assert_eq!(split(id), (3, 12345));
        // Pointing the same handle at another dataset breaks the MAC.
        let mut forged = fh.clone();
        forged.data[1..9].copy_from_slice(&fileid(4, 12345).to_be_bytes());
        assert!(matches!(codec.decode(&forged), Err(nfsstat3::NFS3ERR_BADHANDLE)));
        // Another server key does not accept it either.
        assert!(matches!(HandleCodec::new([8; 32]).decode(&fh), Err(nfsstat3::NFS3ERR_BADHANDLE)));
        assert!(matches!(codec.decode(&nfs_fh3 { data: vec![1; 16] }), Err(nfsstat3::NFS3ERR_BADHANDLE)));
    }
}
