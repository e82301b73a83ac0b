//! Key and value codecs of the catalog database. Every key starts with a one-byte tag; numbers
//! are big-endian so keys sort by id. Every value starts with a one-byte record version, so a
//! later release can add fields and still read what this one wrote (and an older release
//! refuses, with a clear error, what it cannot read).
//!
//! ```text
//! key                      value
//! "V"                      u32  catalog format version (CATALOG_FORMAT = 1)
//! "N"                      u64  next id to hand out (datasets and snapshots share it; ids are
//!                               never reused and stay below MAX_ID = 2^24)
//! "F"                      u64  id of the default dataset
//! "D" id:u64               DatasetRecord
//! "S" id:u64               SnapshotRecord
//! "P" dataset_id:u64       PolicyRecord (see `policy_record`)
//! "R" dataset_id:u64       RollbackIntent (a rollback under way; see docs/rollback.md)
//! ```
//!
//! Names are not keys: the whole catalog is small and is loaded into memory when it is opened
//! (and re-read by catalog readers), and uniqueness is checked there under the single
//! mutation lock.
//!
//! Value layouts (version 1). `str` = u16 length + bytes; `opt<T>` = u8 0 | 1 + T;
//! `uuid` = 16 bytes.
//! ```text
//! DatasetRecord  = 0x01 state:u8 name:str quota:opt<u64> created_ms:u64 origin
//!   origin       = 0x00                                     (an original dataset)
//!                | 0x01 dataset_id:u64                      (writable snapshot of dataset_id)
//!                | 0x02 snapshot_id:u64 dataset_id:u64 uuid (clone of a read-only snapshot)
//!   then optional fields, each a tag byte and its value, in tag order (records written
//!   before rollback existed have none and read as all unset):
//!                  0x30 database:u64   its database is `datasets/<database>` (unset: its id)
//!                  0x31 successor:u64  a rolled-back database kept hidden for its snapshots:
//!                                      the dataset that was rolled back
//!                  0x40 len:u16 kubernetes
//! SnapshotRecord = 0x01 state:u8 name:str dataset_id:u64 checkpoint:opt<uuid>
//!                       created_ms:u64 size_bytes:u64 inodes:u64
//!   then optional fields as above:
//!                  0x40 len:u16 kubernetes
//! kubernetes     = namespace:str name:str content:str
//!                  (DatasetRecord: the PersistentVolumeClaim and its PersistentVolume;
//!                   SnapshotRecord: the VolumeSnapshot and its VolumeSnapshotContent)
//! state          = 0 creating | 1 active | 2 deleted
//! RollbackIntent = 0x01 snapshot_id:u64 hidden_id:u64 database:u64
//! ```
//!
//! Fields from 0x40 on carry their length, and a reader skips one it does not know (see
//! `fields`); the fixed-size ones below 0x40 must be known.

use uuid::Uuid;

mod fields;

use fields::{read_fields, FIELD_DATABASE, FIELD_SUCCESSOR};
pub use fields::KubernetesRef;

pub const CATALOG_FORMAT: u32 = 1;
/// Ids stay below 2^24: the NFS layer puts `id << 40 | inode` into 64-bit file ids.
pub const MAX_ID: u64 = 1 << 24;

const RECORD_V1: u8 = 1;

pub const KEY_FORMAT: &[u8] = b"V";
pub const KEY_NEXT_ID: &[u8] = b"N";
pub const KEY_DEFAULT: &[u8] = b"F";
pub const TAG_DATASET: u8 = b'D';
pub const TAG_SNAPSHOT: u8 = b'S';
pub const TAG_POLICY: u8 = b'P';
pub const TAG_ROLLBACK: u8 = b'R';

pub fn dataset_key(id: u64) -> Vec<u8> {
    tagged(TAG_DATASET, id)
}

pub fn snapshot_key(id: u64) -> Vec<u8> {
    tagged(TAG_SNAPSHOT, id)
}

pub fn policy_key(dataset_id: u64) -> Vec<u8> {
    tagged(TAG_POLICY, dataset_id)
}

pub fn rollback_key(dataset_id: u64) -> Vec<u8> {
    tagged(TAG_ROLLBACK, dataset_id)
}

fn tagged(tag: u8, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Splits a record key into its tag and id.
pub fn parse_record_key(key: &[u8]) -> Result<(u8, u64), CodecError> {
    if key.len() != 9 || !matches!(key[0], TAG_DATASET | TAG_SNAPSHOT | TAG_POLICY | TAG_ROLLBACK) {
        return Err(CodecError(format!("unknown catalog key {key:02x?}")));
    }
    Ok((key[0], u64::from_be_bytes(key[1..9].try_into().unwrap())))
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("catalog record is unreadable: {0}")]
pub struct CodecError(pub String);

/// Lifecycle of a record. `Creating` is the intent written before the store operation;
/// `Deleted` is the intent written before the objects are removed (and the state of an object
/// kept for its dependants).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RecordState {
    Creating,
    Active,
    Deleted,
}

impl RecordState {
    fn encode(self) -> u8 {
        match self {
            RecordState::Creating => 0,
            RecordState::Active => 1,
            RecordState::Deleted => 2,
        }
    }

    fn decode(b: u8) -> Result<Self, CodecError> {
        Ok(match b {
            0 => RecordState::Creating,
            1 => RecordState::Active,
            2 => RecordState::Deleted,
            x => return Err(CodecError(format!("unknown record state {x}"))),
        })
    }
}

/// Where a cloned dataset's data comes from. Its database shares SSTs with the parent
/// dataset's database, which is therefore kept as long as the clone exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A writable snapshot: cloned from a temporary checkpoint of `dataset_id`.
    Dataset { dataset_id: u64 },
    /// A clone of the read-only snapshot `snapshot_id` of `dataset_id`.
    Snapshot { snapshot_id: u64, dataset_id: u64, checkpoint: Uuid },
}

impl Origin {
    pub fn parent_dataset(&self) -> u64 {
        match *self {
            Origin::Dataset { dataset_id } | Origin::Snapshot { dataset_id, .. } => dataset_id,
        }
    }

    pub fn parent_snapshot(&self) -> Option<u64> {
        match *self {
            Origin::Dataset { .. } => None,
            Origin::Snapshot { snapshot_id, .. } => Some(snapshot_id),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DatasetRecord {
    pub id: u64,
    pub state: RecordState,
    pub name: String,
    pub quota: Option<u64>,
    pub created_ms: u64,
    pub origin: Option<Origin>,
    /// The id naming its database's prefix, when it is not its own id (after a rollback).
    pub database: Option<u64>,
    /// Set on the hidden record of a database a rollback replaced: the dataset rolled back,
    /// whose snapshots still live in this database.
    pub successor: Option<u64>,
    pub kubernetes: Option<KubernetesRef>,
}

/// A rollback under way (written before anything is made, removed in the same batch that
/// switches the dataset to its new database): what the next start undoes after a crash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RollbackIntent {
    pub dataset_id: u64,
    pub snapshot_id: u64,
    /// The id the replaced database's hidden record takes.
    pub hidden_id: u64,
    /// The id naming the new database's prefix.
    pub database: u64,
}

impl RollbackIntent {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECORD_V1);
        w.u64(self.snapshot_id);
        w.u64(self.hidden_id);
        w.u64(self.database);
        w.0
    }

    pub fn decode(dataset_id: u64, v: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(v);
        let version = r.u8()?;
        if version != RECORD_V1 {
            return Err(CodecError(format!(
                "rollback record of dataset {dataset_id} has version {version}; this slatefs reads version {RECORD_V1}"
            )));
        }
        let intent = RollbackIntent { dataset_id, snapshot_id: r.u64()?, hidden_id: r.u64()?, database: r.u64()? };
        r.end()?;
        Ok(intent)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SnapshotRecord {
    pub id: u64,
    pub state: RecordState,
    pub name: String,
    pub dataset_id: u64,
    /// Set once the checkpoint exists (`None` while `Creating`).
    pub checkpoint: Option<Uuid>,
    pub created_ms: u64,
    pub size_bytes: u64,
    pub inodes: u64,
    pub kubernetes: Option<KubernetesRef>,
}

impl DatasetRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECORD_V1);
        w.u8(self.state.encode());
        w.str(&self.name);
        w.opt_u64(self.quota);
        w.u64(self.created_ms);
        match self.origin {
            None => w.u8(0),
            Some(Origin::Dataset { dataset_id }) => {
                w.u8(1);
                w.u64(dataset_id);
            }
            Some(Origin::Snapshot { snapshot_id, dataset_id, checkpoint }) => {
                w.u8(2);
                w.u64(snapshot_id);
                w.u64(dataset_id);
                w.uuid(checkpoint);
            }
        }
        if let Some(db) = self.database {
            w.u8(FIELD_DATABASE);
            w.u64(db);
        }
        if let Some(s) = self.successor {
            w.u8(FIELD_SUCCESSOR);
            w.u64(s);
        }
        KubernetesRef::write_field(&self.kubernetes, &mut w);
        w.0
    }

    /// The id naming the prefix of this dataset's database.
    pub fn database_id(&self) -> u64 {
        self.database.unwrap_or(self.id)
    }

    pub fn decode(id: u64, v: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(v);
        let version = r.u8()?;
        if version != RECORD_V1 {
            return Err(CodecError(format!(
                "dataset record {id} has version {version}; this slatefs reads version {RECORD_V1}"
            )));
        }
        let state = RecordState::decode(r.u8()?)?;
        let name = r.str()?;
        let quota = r.opt_u64()?;
        let created_ms = r.u64()?;
        let origin = match r.u8()? {
            0 => None,
            1 => Some(Origin::Dataset { dataset_id: r.u64()? }),
            2 => Some(Origin::Snapshot {
                snapshot_id: r.u64()?,
                dataset_id: r.u64()?,
                checkpoint: r.uuid()?,
            }),
            x => return Err(CodecError(format!("dataset record {id}: unknown origin tag {x}"))),
        };
        let fields = read_fields(&mut r, &format!("dataset record {id}"), &[FIELD_DATABASE, FIELD_SUCCESSOR])?;
        Ok(DatasetRecord {
            id,
            state,
            name,
            quota,
            created_ms,
            origin,
            database: fields.database,
            successor: fields.successor,
            kubernetes: fields.kubernetes,
        })
    }
}

impl SnapshotRecord {
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u8(RECORD_V1);
        w.u8(self.state.encode());
        w.str(&self.name);
        w.u64(self.dataset_id);
        match self.checkpoint {
            None => w.u8(0),
            Some(u) => {
                w.u8(1);
                w.uuid(u);
            }
        }
        w.u64(self.created_ms);
        w.u64(self.size_bytes);
        w.u64(self.inodes);
        KubernetesRef::write_field(&self.kubernetes, &mut w);
        w.0
    }

    pub fn decode(id: u64, v: &[u8]) -> Result<Self, CodecError> {
        let mut r = Reader::new(v);
        let version = r.u8()?;
        if version != RECORD_V1 {
            return Err(CodecError(format!(
                "snapshot record {id} has version {version}; this slatefs reads version {RECORD_V1}"
            )));
        }
        let state = RecordState::decode(r.u8()?)?;
        let name = r.str()?;
        let dataset_id = r.u64()?;
        let checkpoint = match r.u8()? {
            0 => None,
            1 => Some(r.uuid()?),
            x => return Err(CodecError(format!("snapshot record {id}: bad option tag {x}"))),
        };
        let created_ms = r.u64()?;
        let size_bytes = r.u64()?;
        let inodes = r.u64()?;
        let kubernetes = read_fields(&mut r, &format!("snapshot record {id}"), &[])?.kubernetes;
        Ok(SnapshotRecord { id, state, name, dataset_id, checkpoint, created_ms, size_bytes, inodes, kubernetes })
    }
}

pub fn encode_u64(v: u64) -> Vec<u8> {
    v.to_be_bytes().to_vec()
}

pub fn decode_u64(what: &str, v: &[u8]) -> Result<u64, CodecError> {
    let b: [u8; 8] =
        v.try_into().map_err(|_| CodecError(format!("{what} is {} bytes, expected 8", v.len())))?;
    Ok(u64::from_be_bytes(b))
}

pub fn encode_format() -> Vec<u8> {
    CATALOG_FORMAT.to_be_bytes().to_vec()
}

pub fn decode_format(v: &[u8]) -> Result<u32, CodecError> {
    let b: [u8; 4] = v
        .try_into()
        .map_err(|_| CodecError(format!("format version is {} bytes, expected 4", v.len())))?;
    Ok(u32::from_be_bytes(b))
}

struct Writer(Vec<u8>);

impl Writer {
    fn new() -> Self {
        Writer(Vec::with_capacity(64))
    }
    fn u8(&mut self, v: u8) {
        self.0.push(v);
    }
    fn u64(&mut self, v: u64) {
        self.0.extend_from_slice(&v.to_be_bytes());
    }
    fn opt_u64(&mut self, v: Option<u64>) {
        match v {
            None => self.u8(0),
            Some(v) => {
                self.u8(1);
                self.u64(v);
            }
        }
    }
    fn str(&mut self, s: &str) {
        let len = u16::try_from(s.len()).expect("catalog names are at most 253 bytes");
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(s.as_bytes());
    }
    fn uuid(&mut self, u: Uuid) {
        self.0.extend_from_slice(u.as_bytes());
    }
}

/// Reads the big-endian fields records are made of (catalog records here, policy records in
/// `policy_record`).
pub(super) struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub(super) fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    pub(super) fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError("record is truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    pub(super) fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    pub(super) fn u32(&mut self) -> Result<u32, CodecError> {
        Ok(u32::from_be_bytes(self.take(4)?.try_into().unwrap()))
    }
    pub(super) fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    pub(super) fn opt_u64(&mut self) -> Result<Option<u64>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            x => Err(CodecError(format!("bad option tag {x}"))),
        }
    }
    pub(super) fn str(&mut self) -> Result<String, CodecError> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| CodecError("text is not UTF-8".into()))
    }
    pub(super) fn uuid(&mut self) -> Result<Uuid, CodecError> {
        Ok(Uuid::from_bytes(self.take(16)?.try_into().unwrap()))
    }
    pub(super) fn end(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

#[cfg(test)]
mod tests;
