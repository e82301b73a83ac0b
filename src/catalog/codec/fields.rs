//! The optional fields after a record's fixed part, in tag order. Tags below
//! `FIRST_SIZED_FIELD` (the rollback's) hold one u64 and must be known to the reader; from
//! `FIRST_SIZED_FIELD` on a field carries a u16 length, so a reader skips one it does not know
//! (a later field then never makes a record unreadable here). A field is written only when it
//! holds something, so a record without any is byte for byte what earlier releases wrote.

use super::{CodecError, Reader, Writer};

pub(super) const FIELD_DATABASE: u8 = 0x30;
pub(super) const FIELD_SUCCESSOR: u8 = 0x31;
const FIRST_SIZED_FIELD: u8 = 0x40;
pub(super) const FIELD_KUBERNETES: u8 = 0x40;

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
    pub(super) fn write_field(r: &Option<KubernetesRef>, w: &mut Writer) {
        let Some(r) = r else { return };
        let mut body = Writer::new();
        body.str(&r.namespace);
        body.str(&r.name);
        body.str(&r.content);
        let len = u16::try_from(body.0.len()).expect("three names of at most 253 bytes");
        w.u8(FIELD_KUBERNETES);
        w.0.extend_from_slice(&len.to_be_bytes());
        w.0.extend_from_slice(&body.0);
    }

    fn decode_body(body: &[u8]) -> Result<KubernetesRef, CodecError> {
        let mut r = Reader::new(body);
        let k = KubernetesRef { namespace: r.str()?, name: r.str()?, content: r.str()? };
        r.end()?;
        Ok(k)
    }
}

/// The optional fields a record may carry (each unset when absent).
#[derive(Default)]
pub(super) struct Fields {
    pub database: Option<u64>,
    pub successor: Option<u64>,
    pub kubernetes: Option<KubernetesRef>,
}

/// Reads the fields after a record's fixed part; `fixed` lists the u64 fields the record may
/// carry (`what` names the record in errors).
pub(super) fn read_fields(r: &mut Reader<'_>, what: &str, fixed: &[u8]) -> Result<Fields, CodecError> {
    let mut fields = Fields::default();
    let mut last_field = 0;
    while !r.buf.is_empty() {
        let field = r.u8()?;
        if field <= last_field {
            return Err(CodecError(format!("{what}: field {field:#x} out of order")));
        }
        last_field = field;
        if field >= FIRST_SIZED_FIELD {
            let len = u16::from_be_bytes(r.take(2)?.try_into().unwrap()) as usize;
            let body = r.take(len)?;
            if field == FIELD_KUBERNETES {
                fields.kubernetes = Some(KubernetesRef::decode_body(body)?);
            }
            continue;
        }
        match field {
            FIELD_DATABASE if fixed.contains(&field) => fields.database = Some(r.u64()?),
            FIELD_SUCCESSOR if fixed.contains(&field) => fields.successor = Some(r.u64()?),
            _ => return Err(CodecError(format!("{what}: unknown field {field:#x}"))),
        }
    }
    Ok(fields)
}
