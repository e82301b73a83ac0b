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
//! SnapshotRecord = 0x01 state:u8 name:str dataset_id:u64 checkpoint:opt<uuid>
//!                       created_ms:u64 size_bytes:u64 inodes:u64
//! state          = 0 creating | 1 active | 2 deleted
//! ```
//!
//! Both records may be followed by extensions, `tag:u8 len:u16 body`, which a reader skips
//! when it does not know the tag (so a later field never makes a record unreadable here), and
//! which are written only when they hold something (so a record without them is byte for byte
//! what earlier releases wrote, and those releases still read it):
//! ```text
//! 0x01 kubernetes = namespace:str name:str content:str
//!        (DatasetRecord: the PersistentVolumeClaim and its PersistentVolume;
//!         SnapshotRecord: the VolumeSnapshot and its VolumeSnapshotContent)
//! ```

use uuid::Uuid;

pub const CATALOG_FORMAT: u32 = 1;
/// Ids stay below 2^24: the NFS layer puts `id << 40 | inode` into 64-bit file ids.
pub const MAX_ID: u64 = 1 << 24;

const RECORD_V1: u8 = 1;
const EXT_KUBERNETES: u8 = 1;

/// The Kubernetes object a dataset or snapshot was made for (the names people know it by),
/// from the metadata csi-provisioner and csi-snapshotter pass with `--extra-create-metadata`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KubernetesRef {
    /// The PersistentVolumeClaim's (VolumeSnapshot's) namespace.
    pub namespace: String,
    /// The PersistentVolumeClaim's (VolumeSnapshot's) name.
    pub name: String,
    /// The PersistentVolume's (VolumeSnapshotContent's) name.
    pub content: String,
}

impl KubernetesRef {
    fn encode_ext(r: &Option<KubernetesRef>, w: &mut Writer) {
        let Some(r) = r else { return };
        let mut body = Writer::new();
        body.str(&r.namespace);
        body.str(&r.name);
        body.str(&r.content);
        w.ext(EXT_KUBERNETES, &body.0);
    }

    fn decode_body(body: &[u8]) -> Result<KubernetesRef, CodecError> {
        let mut r = Reader::new(body);
        let k = KubernetesRef { namespace: r.str()?, name: r.str()?, content: r.str()? };
        r.end()?;
        Ok(k)
    }
}

/// Reads the extensions after a record's fixed fields: the Kubernetes names, if present.
fn decode_extensions(r: &mut Reader<'_>) -> Result<Option<KubernetesRef>, CodecError> {
    let mut kubernetes = None;
    while !r.buf.is_empty() {
        let tag = r.u8()?;
        let len = u16::from_be_bytes(r.take(2)?.try_into().unwrap()) as usize;
        let body = r.take(len)?;
        if tag == EXT_KUBERNETES {
            kubernetes = Some(KubernetesRef::decode_body(body)?);
        }
    }
    Ok(kubernetes)
}

pub const KEY_FORMAT: &[u8] = b"V";
pub const KEY_NEXT_ID: &[u8] = b"N";
pub const KEY_DEFAULT: &[u8] = b"F";
pub const TAG_DATASET: u8 = b'D';
pub const TAG_SNAPSHOT: u8 = b'S';

pub fn dataset_key(id: u64) -> Vec<u8> {
    tagged(TAG_DATASET, id)
}

pub fn snapshot_key(id: u64) -> Vec<u8> {
    tagged(TAG_SNAPSHOT, id)
}

fn tagged(tag: u8, id: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(9);
    k.push(tag);
    k.extend_from_slice(&id.to_be_bytes());
    k
}

/// Splits a record key into its tag and id.
pub fn parse_record_key(key: &[u8]) -> Result<(u8, u64), CodecError> {
    if key.len() != 9 || !matches!(key[0], TAG_DATASET | TAG_SNAPSHOT) {
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
    pub kubernetes: Option<KubernetesRef>,
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
        KubernetesRef::encode_ext(&self.kubernetes, &mut w);
        w.0
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
        let kubernetes = decode_extensions(&mut r)?;
        Ok(DatasetRecord { id, state, name, quota, created_ms, origin, kubernetes })
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
        KubernetesRef::encode_ext(&self.kubernetes, &mut w);
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
        let kubernetes = decode_extensions(&mut r)?;
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
    fn ext(&mut self, tag: u8, body: &[u8]) {
        let len = u16::try_from(body.len()).expect("extensions are small");
        self.u8(tag);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(body);
    }
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], CodecError> {
        if self.buf.len() < n {
            return Err(CodecError("record is truncated".into()));
        }
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }
    fn u8(&mut self) -> Result<u8, CodecError> {
        Ok(self.take(1)?[0])
    }
    fn u64(&mut self) -> Result<u64, CodecError> {
        Ok(u64::from_be_bytes(self.take(8)?.try_into().unwrap()))
    }
    fn opt_u64(&mut self) -> Result<Option<u64>, CodecError> {
        match self.u8()? {
            0 => Ok(None),
            1 => Ok(Some(self.u64()?)),
            x => Err(CodecError(format!("bad option tag {x}"))),
        }
    }
    fn str(&mut self) -> Result<String, CodecError> {
        let len = u16::from_be_bytes(self.take(2)?.try_into().unwrap()) as usize;
        String::from_utf8(self.take(len)?.to_vec())
            .map_err(|_| CodecError("name is not UTF-8".into()))
    }
    fn uuid(&mut self) -> Result<Uuid, CodecError> {
        Ok(Uuid::from_bytes(self.take(16)?.try_into().unwrap()))
    }
    fn end(&self) -> Result<(), CodecError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(CodecError(format!("{} trailing bytes", self.buf.len())))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dataset_records_round_trip() {
        let records = [
            DatasetRecord {
                id: 1,
                state: RecordState::Active,
                name: "root".into(),
                quota: None,
                created_ms: 1_700_000_000_000,
                origin: None,
                kubernetes: None,
            },
            DatasetRecord {
                id: 7,
                state: RecordState::Creating,
                name: "a.b-c".into(),
                quota: Some(10 << 30),
                created_ms: 5,
                origin: Some(Origin::Dataset { dataset_id: 3 }),
                kubernetes: Some(KubernetesRef { namespace: "shop".into(), name: "data".into(), content: "pvc-1".into() }),
            },
            DatasetRecord {
                id: (1 << 24) - 1,
                state: RecordState::Deleted,
                name: "x".repeat(253),
                quota: Some(1),
                created_ms: u64::MAX,
                origin: Some(Origin::Snapshot {
                    snapshot_id: 9,
                    dataset_id: 2,
                    checkpoint: Uuid::new_v4(),
                }),
                kubernetes: Some(KubernetesRef { namespace: "n".repeat(63), name: "x".repeat(253), content: String::new() }),
            },
        ];
        for r in records {
            assert_eq!(DatasetRecord::decode(r.id, &r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn snapshot_records_round_trip() {
        for checkpoint in [None, Some(Uuid::new_v4())] {
            let r = SnapshotRecord {
                id: 12,
                state: RecordState::Active,
                name: "monday".into(),
                dataset_id: 4,
                checkpoint,
                created_ms: 99,
                size_bytes: 200 << 20,
                inodes: 17,
                kubernetes: checkpoint.map(|_| KubernetesRef { namespace: "shop".into(), name: "nightly".into(), content: "snapcontent-1".into() }),
            };
            assert_eq!(SnapshotRecord::decode(12, &r.encode()).unwrap(), r);
        }
    }

    #[test]
    fn layout_is_stable() {
        // The bytes on disk are the contract: a change here needs a new record version.
        let r = DatasetRecord {
            id: 2,
            state: RecordState::Active,
            name: "ab".into(),
            quota: Some(3),
            created_ms: 4,
            origin: Some(Origin::Dataset { dataset_id: 5 }),
            kubernetes: None,
        };
        assert_eq!(
            r.encode(),
            [
                1, 1, 0, 2, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0,
                0, 0, 0, 0, 0, 0, 5
            ]
        );
        assert_eq!(dataset_key(0x0102), [b'D', 0, 0, 0, 0, 0, 0, 1, 2]);
        assert_eq!(snapshot_key(3), [b'S', 0, 0, 0, 0, 0, 0, 0, 3]);
        assert_eq!(parse_record_key(&snapshot_key(3)).unwrap(), (TAG_SNAPSHOT, 3));
    }

    #[test]
    fn records_written_before_names_existed_decode_unchanged() {
        // The layout_is_stable bytes: a record of an earlier release, without extensions.
        let old = [1, 1, 0, 2, b'a', b'b', 1, 0, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 0, 4, 1, 0, 0, 0, 0, 0, 0, 0, 5];
        let r = DatasetRecord::decode(2, &old).unwrap();
        assert_eq!((r.name.as_str(), r.quota, r.kubernetes.is_none()), ("ab", Some(3), true));
        assert_eq!(r.encode(), old, "a record without names is written as before");
        let named = DatasetRecord {
            kubernetes: Some(KubernetesRef { namespace: "ns".into(), name: "db".into(), content: "pv".into() }),
            ..r
        };
        let bytes = named.encode();
        assert_eq!(&bytes[..old.len()], &old[..]);
        assert_eq!(&bytes[old.len()..], &[1, 0, 12, 0, 2, b'n', b's', 0, 2, b'd', b'b', 0, 2, b'p', b'v']);
        assert_eq!(DatasetRecord::decode(2, &bytes).unwrap(), named);
    }

    #[test]
    fn unknown_versions_and_garbage_are_refused() {
        let mut v = DatasetRecord {
            id: 1,
            state: RecordState::Active,
            name: "a".into(),
            quota: None,
            created_ms: 0,
            origin: None,
            kubernetes: None,
        }
        .encode();
        v[0] = 2;
        let err = DatasetRecord::decode(1, &v).unwrap_err().to_string();
        assert!(err.contains("version 2"), "{err}");
        assert!(DatasetRecord::decode(1, &[1, 1]).is_err());
        assert!(SnapshotRecord::decode(1, &[]).is_err());
        let mut ok = SnapshotRecord {
            id: 1,
            state: RecordState::Active,
            name: "a".into(),
            dataset_id: 1,
            checkpoint: None,
            created_ms: 0,
            size_bytes: 0,
            inodes: 0,
            kubernetes: None,
        }
        .encode();
        // An extension cut short is refused; an unknown one is skipped.
        ok.push(0);
        assert!(SnapshotRecord::decode(1, &ok).unwrap_err().to_string().contains("truncated"));
        ok.extend_from_slice(&[0, 2, 9, 9]);
        assert_eq!(SnapshotRecord::decode(1, &ok).unwrap().kubernetes, None);
        assert!(parse_record_key(b"X12345678").is_err());
    }
}
