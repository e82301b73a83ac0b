//! A write batch that remembers which inodes it writes, so that `Filesystem::commit` can keep
//! the inode cache in step with the database.

use bytes::Bytes;
use slatedb::WriteBatch;

use super::codec::{self, Inode};

pub struct Changes {
    pub(super) batch: WriteBatch,
    pub(super) inodes: Vec<(u64, Option<Inode>)>,
}

impl Changes {
    pub fn new() -> Changes {
        Changes { batch: WriteBatch::new(), inodes: Vec::new() }
    }

    /// Takes the value without copying it (chunk data is the bulk of every write).
    pub fn put(&mut self, key: impl AsRef<[u8]>, value: impl Into<Bytes>) {
        self.batch.put_bytes(Bytes::copy_from_slice(key.as_ref()), value.into());
    }

    /// A merge operand (`store::patch`): applied over the key's value by the patch operator.
    pub fn merge(&mut self, key: impl AsRef<[u8]>, operand: Bytes) {
        self.batch.merge(key.as_ref(), operand);
    }

    pub fn delete(&mut self, key: impl AsRef<[u8]>) {
        self.batch.delete(key);
    }

    pub fn put_inode(&mut self, inode: &Inode) {
        self.put(codec::inode_key(inode.ino), inode.encode());
        self.inodes.push((inode.ino, Some(inode.clone())));
    }

    pub fn delete_inode(&mut self, ino: u64) {
        self.batch.delete(codec::inode_key(ino));
        self.inodes.push((ino, None));
    }
}
