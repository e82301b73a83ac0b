//! Values that small writes patch in place instead of rewriting whole.
//!
//! A patchable value is either whole bytes (`WHOLE` then the bytes) or a list of byte-range
//! patches (`PATCHES` then `offset u32, length u32, bytes` per patch, sorted and disjoint). A
//! patch list is written with SlateDB's merge (no read of the old value) and applied by
//! [`PatchOperator`] on reads, memtable flushes and compactions. SlateDB also merges operands
//! among themselves without the value under them (in L0 compactions, and for a key whose older
//! value lives in a table the compaction does not include), so the operator's result over
//! patches alone stays a patch list; over whole bytes it is whole bytes. A patch list with
//! nothing under it reads as zeros with the patches laid over them, up to its last patched byte.
//!
//! Overlaying is associative (a later patch wins where patches overlap), which is what SlateDB
//! requires of a merge operator.

use bytes::{BufMut, Bytes, BytesMut};
use slatedb::{MergeOperator, MergeOperatorError};

/// The dataset format (superblock's first byte) whose chunk values are patchable values.
pub const PATCHABLE_DATASET_FORMAT: u8 = 2;

pub const WHOLE: u8 = 0;
pub const PATCHES: u8 = 1;
const PATCH_HEADER: usize = 8;

/// The largest value the operator builds: patches past it are refused, not grown into.
pub const MAX_VALUE_LEN: usize = 64 << 20;

/// `bytes` as a whole value.
pub fn whole(bytes: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + bytes.len());
    b.put_u8(WHOLE);
    b.put_slice(bytes);
    b.freeze()
}

/// One patch: `bytes` laid over the value at `offset`.
pub fn patch(offset: u32, bytes: &[u8]) -> Bytes {
    let mut b = BytesMut::with_capacity(1 + PATCH_HEADER + bytes.len());
    b.put_u8(PATCHES);
    b.put_u32(offset);
    b.put_u32(bytes.len() as u32);
    b.put_slice(bytes);
    b.freeze()
}

/// The bytes a stored value stands for (whole bytes without a copy).
pub fn resolve(value: &Bytes) -> Result<Bytes, String> {
    match parse(value)? {
        Parsed::Whole(bytes) => Ok(bytes),
        Parsed::Patches(patches) => {
            let mut overlay = Overlay::default();
            overlay.apply(&patches)?;
            Ok(Bytes::from(overlay.buf))
        }
    }
}

enum Parsed<'a> {
    Whole(Bytes),
    Patches(Vec<(usize, &'a [u8])>),
}

fn parse(value: &Bytes) -> Result<Parsed<'_>, String> {
    match value.first() {
        Some(&WHOLE) => Ok(Parsed::Whole(value.slice(1..))),
        Some(&PATCHES) => {
            let mut rest = &value[1..];
            let mut patches = Vec::new();
            while !rest.is_empty() {
                if rest.len() < PATCH_HEADER {
                    return Err("truncated patch header".into());
                }
                let offset = u32::from_be_bytes(rest[0..4].try_into().expect("4 bytes")) as usize;
                let len = u32::from_be_bytes(rest[4..8].try_into().expect("4 bytes")) as usize;
                if rest.len() - PATCH_HEADER < len {
                    return Err("truncated patch".into());
                }
                if offset + len > MAX_VALUE_LEN {
                    return Err(format!("patch ends at {}, past {MAX_VALUE_LEN}", offset + len));
                }
                patches.push((offset, &rest[PATCH_HEADER..PATCH_HEADER + len]));
                rest = &rest[PATCH_HEADER + len..];
            }
            Ok(Parsed::Patches(patches))
        }
        Some(other) => Err(format!("unknown value tag {other}")),
        None => Err("empty value".into()),
    }
}

/// Patches laid over zeros, remembering which ranges they covered.
#[derive(Default)]
struct Overlay {
    buf: Vec<u8>,
    /// Covered ranges, sorted, disjoint and not touching.
    covered: Vec<(usize, usize)>,
}

impl Overlay {
    fn apply(&mut self, patches: &[(usize, &[u8])]) -> Result<(), String> {
        for &(offset, bytes) in patches {
            let end = offset + bytes.len();
            if end > MAX_VALUE_LEN {
                return Err(format!("patch ends at {end}, past {MAX_VALUE_LEN}"));
            }
            if self.buf.len() < end {
                self.buf.resize(end, 0);
            }
            self.buf[offset..end].copy_from_slice(bytes);
            self.cover(offset, end);
        }
        Ok(())
    }

    fn cover(&mut self, start: usize, end: usize) {
        if start == end {
            return;
        }
        let (mut lo, mut hi) = (start, end);
        // Every range that overlaps or touches [start, end) is folded into it.
        let first = self.covered.partition_point(|&(_, e)| e < start);
        let mut last = first;
        while last < self.covered.len() && self.covered[last].0 <= end {
            lo = lo.min(self.covered[last].0);
            hi = hi.max(self.covered[last].1);
            last += 1;
        }
        self.covered.splice(first..last, [(lo, hi)]);
    }

    fn encode(&self) -> Bytes {
        let len: usize = self.covered.iter().map(|&(s, e)| PATCH_HEADER + e - s).sum();
        let mut b = BytesMut::with_capacity(1 + len);
        b.put_u8(PATCHES);
        for &(s, e) in &self.covered {
            b.put_u32(s as u32);
            b.put_u32((e - s) as u32);
            b.put_slice(&self.buf[s..e]);
        }
        b.freeze()
    }
}

/// Lays patch lists over whole values or over each other (see the module comment).
pub struct PatchOperator;

enum Merged {
    Whole(Vec<u8>),
    Patches(Overlay),
}

impl Merged {
    fn apply(&mut self, value: &Bytes) -> Result<(), String> {
        match (parse(value)?, &mut *self) {
            (Parsed::Whole(bytes), _) => *self = Merged::Whole(bytes.to_vec()),
            (Parsed::Patches(patches), Merged::Patches(overlay)) => overlay.apply(&patches)?,
            (Parsed::Patches(patches), Merged::Whole(buf)) => {
                for (offset, bytes) in patches {
                    let end = offset + bytes.len();
                    if buf.len() < end {
                        buf.resize(end, 0);
                    }
                    buf[offset..end].copy_from_slice(bytes);
                }
            }
        }
        Ok(())
    }
}

impl MergeOperator for PatchOperator {
    fn merge(&self, key: &Bytes, existing: Option<Bytes>, value: Bytes) -> Result<Bytes, MergeOperatorError> {
        self.merge_batch(key, existing, std::slice::from_ref(&value))
    }

    fn merge_batch(
        &self,
        _key: &Bytes,
        existing: Option<Bytes>,
        operands: &[Bytes],
    ) -> Result<Bytes, MergeOperatorError> {
        let fail = |message: String| MergeOperatorError::Callback { message: format!("patched value: {message}") };
        if existing.is_none() && operands.is_empty() {
            return Err(MergeOperatorError::EmptyBatch);
        }
        // A single operand over nothing is already in its merged form.
        if let (None, [only]) = (&existing, operands) {
            parse(only).map_err(fail)?;
            return Ok(only.clone());
        }
        let mut merged = Merged::Patches(Overlay::default());
        for value in existing.iter().chain(operands) {
            merged.apply(value).map_err(fail)?;
        }
        Ok(match merged {
            Merged::Whole(buf) => whole(&buf),
            Merged::Patches(overlay) => overlay.encode(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Bytes {
        Bytes::from_static(b"k")
    }

    fn merge(existing: Option<Bytes>, operands: &[Bytes]) -> Bytes {
        PatchOperator.merge_batch(&key(), existing, operands).unwrap()
    }

    #[test]
    fn patches_over_whole_bytes_give_whole_bytes_grown_where_needed() {
        let got = merge(Some(whole(b"abcdef")), &[patch(1, b"XY"), patch(5, b"ZZZ")]);
        assert_eq!(got[0], WHOLE);
        assert_eq!(resolve(&got).unwrap().as_ref(), b"aXYdeZZZ");
    }

    #[test]
    fn patches_over_nothing_stay_patches_and_read_over_zeros() {
        let got = merge(None, &[patch(4, b"ab"), patch(5, b"cd"), patch(0, b"z")]);
        assert_eq!(got[0], PATCHES);
        assert_eq!(resolve(&got).unwrap().as_ref(), b"z\0\0\0acd");
        // Disjoint ranges stay apart, touching ones are joined.
        assert_eq!(got.len(), 1 + (8 + 1) + (8 + 3));
    }

    #[test]
    fn merging_is_associative_whatever_slatedb_groups() {
        let base = whole(&[7u8; 40]);
        let ops: Vec<Bytes> = (0..12u32).map(|i| patch((i * 13) % 50, &vec![i as u8 + 1; (i % 5 + 1) as usize * 3])).collect();
        let all_at_once = resolve(&merge(Some(base.clone()), &ops)).unwrap();
        for split in 1..ops.len() {
            let left = merge(None, &ops[..split]);
            let right = merge(None, &ops[split..]);
            let grouped = merge(Some(merge(Some(base.clone()), &[left.clone()])), &[right.clone()]);
            assert_eq!(resolve(&grouped).unwrap(), all_at_once, "split at {split}");
            let nested = merge(Some(base.clone()), &[merge(Some(left), &[right])]);
            assert_eq!(resolve(&nested).unwrap(), all_at_once, "nested split at {split}");
        }
    }

    #[test]
    fn a_whole_value_among_operands_replaces_what_is_under_it() {
        let got = merge(Some(whole(b"old old")), &[patch(0, b"x"), whole(b"new"), patch(3, b"!")]);
        assert_eq!(resolve(&got).unwrap().as_ref(), b"new!");
    }

    #[test]
    fn malformed_values_are_errors_not_data() {
        for bad in [Bytes::new(), Bytes::from_static(&[9, 1, 2]), Bytes::from_static(&[PATCHES, 0, 0, 0])] {
            assert!(resolve(&bad).is_err());
            assert!(PatchOperator.merge_batch(&key(), Some(whole(b"a")), &[bad.clone()]).is_err());
        }
        let mut past = BytesMut::new();
        past.put_u8(PATCHES);
        past.put_u32(MAX_VALUE_LEN as u32);
        past.put_u32(1);
        past.put_u8(1);
        assert!(resolve(&past.freeze()).is_err());
        let truncated = patch(0, b"abcd").slice(..7);
        assert!(resolve(&truncated).is_err());
    }
}
