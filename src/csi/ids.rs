//! Pure functions the CSI services are built on: how CSI names become dataset and snapshot names
//! (and so volume and snapshot ids), how a `CapacityRange` becomes a quota, and the paging
//! tokens of ListVolumes / ListSnapshots. No I/O here, so every rule is unit-tested below.
//!
//! Ids (decided here, documented in the README):
//! - **volume id = dataset name.** The CSI `name` of CreateVolume (the provisioner sends the PV
//!   name, `pvc-<uuid>`) is used as the dataset name when it already is a valid dataset name of at
//!   most [`MAX_DIRECT_NAME`] bytes, so `slatefs dataset list` shows the PV names; any other name
//!   maps to `csi-<32 hex digits of BLAKE3(name)>`. Either way the id is a pure function of the
//!   name: a retried CreateVolume finds the dataset it (maybe) made before.
//! - **snapshot id = `DATASET@SNAPSHOT`**, the same string as the snapshot's read-only NFS export
//!   path, with the snapshot name derived from the CSI snapshot name by the same rule. The source
//!   volume is readable from the id without a lookup, and a node can mount a snapshot id as a
//!   read-only volume.
//! - Both stay within the spec's 128-byte string limit (63 + 1 + 63).

use tonic::Status;

use super::proto::CapacityRange;

/// Longest CSI name used verbatim as a dataset / snapshot name.
pub const MAX_DIRECT_NAME: usize = 63;
/// Capacities are rounded up to whole MiB…
pub const CAPACITY_GRANULE: u64 = 1 << 20;
/// …and are at least this (a filesystem with its metadata needs some room).
pub const MIN_VOLUME_BYTES: u64 = 1 << 20;
/// The size of a volume created without a capacity range.
pub const DEFAULT_VOLUME_BYTES: u64 = 1 << 30;
/// The largest quota we hand out (1 EiB): object storage has no practical bound, but an i64 does.
pub const MAX_VOLUME_BYTES: u64 = 1 << 60;
/// Prefix of the hidden snapshots made to clone a volume from a volume (see controller.rs).
pub const CLONE_SNAPSHOT_PREFIX: &str = "csi-clone-src-";

/// The catalog's name rule: 1–253 bytes of `[a-z0-9._-]`, alphanumeric first.
pub fn is_valid_catalog_name(name: &str) -> bool {
    let b = name.as_bytes();
    !b.is_empty()
        && b.len() <= 253
        && b[0].is_ascii_alphanumeric()
        && !b[0].is_ascii_uppercase()
        && b.iter().all(|c| matches!(c, b'a'..=b'z' | b'0'..=b'9' | b'.' | b'_' | b'-'))
}

/// Dataset / snapshot name for a CSI object name (see the module comment).
pub fn catalog_name_for(csi_name: &str) -> String {
    if csi_name.len() <= MAX_DIRECT_NAME && is_valid_catalog_name(csi_name) {
        return csi_name.to_string();
    }
    let hash = blake3::hash(csi_name.as_bytes());
    format!("csi-{}", &hash.to_hex()[..32])
}

/// CSI forbids control characters other than common whitespace in names; the spec's string
/// limit is 128 bytes.
pub fn validate_csi_name(what: &str, name: &str) -> Result<(), Status> {
    if name.is_empty() {
        return Err(Status::invalid_argument(format!("{what} is required")));
    }
    if name.len() > 128 {
        return Err(Status::invalid_argument(format!("{what} is longer than 128 bytes")));
    }
    if name.chars().any(|c| {
        let u = c as u32;
        u <= 0x08 || u == 0x0b || u == 0x0c || (0x0e..=0x1f).contains(&u) || (0x7f..=0x9f).contains(&u)
    }) {
        return Err(Status::invalid_argument(format!("{what} contains a control character")));
    }
    Ok(())
}

/// A parsed snapshot id `DATASET@SNAPSHOT`. `None` for anything else: such an id names no
/// snapshot of ours (callers answer NOT_FOUND, or OK for deletes).
pub fn parse_snapshot_id(id: &str) -> Option<(&str, &str)> {
    let (ds, snap) = id.split_once('@')?;
    (is_valid_catalog_name(ds) && is_valid_catalog_name(snap)).then_some((ds, snap))
}

pub fn snapshot_id(dataset: &str, snapshot: &str) -> String {
    format!("{dataset}@{snapshot}")
}

/// A volume id is a dataset name; `None` when it cannot be one.
pub fn parse_volume_id(id: &str) -> Option<&str> {
    is_valid_catalog_name(id).then_some(id)
}

/// The name of the hidden snapshot that a volume-from-volume clone is made from.
pub fn clone_snapshot_name(new_dataset: &str) -> String {
    let name = format!("{CLONE_SNAPSHOT_PREFIX}{new_dataset}");
    if name.len() <= 253 {
        name
    } else {
        format!("{CLONE_SNAPSHOT_PREFIX}{}", &blake3::hash(new_dataset.as_bytes()).to_hex()[..32])
    }
}

pub fn is_clone_snapshot(name: &str) -> bool {
    name.starts_with(CLONE_SNAPSHOT_PREFIX)
}

fn round_up(v: u64, g: u64) -> u64 {
    v.div_ceil(g).saturating_mul(g)
}

/// The (validated) bounds of a capacity range: `(required, limit)`, 0 meaning unspecified.
pub fn capacity_bounds(range: Option<&CapacityRange>) -> Result<(u64, u64), Status> {
    let Some(r) = range else { return Ok((0, 0)) };
    if r.required_bytes < 0 || r.limit_bytes < 0 {
        return Err(Status::invalid_argument("capacity_range values must not be negative"));
    }
    let (req, lim) = (r.required_bytes as u64, r.limit_bytes as u64);
    if lim != 0 && req > lim {
        return Err(Status::out_of_range(format!(
            "capacity_range: required_bytes {req} exceeds limit_bytes {lim}"
        )));
    }
    Ok((req, lim))
}

/// The quota for a new volume: `required_bytes` rounded up to whole MiB (at least
/// [`MIN_VOLUME_BYTES`]), clamped to `limit_bytes` when the rounding overshoots it (quotas are
/// exact to the byte, rounding is only a nicety); [`DEFAULT_VOLUME_BYTES`] (or the limit, if
/// smaller) without a requirement. OUT_OF_RANGE when no size satisfies the range.
pub fn capacity_for(range: Option<&CapacityRange>) -> Result<u64, Status> {
    let (req, lim) = capacity_bounds(range)?;
    let mut cap = if req == 0 { DEFAULT_VOLUME_BYTES } else { round_up(req, CAPACITY_GRANULE) };
    cap = cap.max(MIN_VOLUME_BYTES);
    if lim != 0 && cap > lim {
        cap = lim;
    }
    if cap < MIN_VOLUME_BYTES {
        return Err(Status::out_of_range(format!(
            "capacity_range: the smallest volume is {MIN_VOLUME_BYTES} bytes, limit_bytes is {lim}"
        )));
    }
    if cap > MAX_VOLUME_BYTES {
        return Err(Status::out_of_range(format!(
            "capacity_range: the largest volume is {MAX_VOLUME_BYTES} bytes"
        )));
    }
    debug_assert!(cap >= req && (lim == 0 || cap <= lim));
    Ok(cap)
}

/// Whether an existing volume of `capacity` bytes satisfies `range` (idempotent CreateVolume).
pub fn capacity_satisfies(capacity: u64, range: Option<&CapacityRange>) -> Result<bool, Status> {
    let (req, lim) = capacity_bounds(range)?;
    Ok((req == 0 || capacity >= req) && (lim == 0 || capacity <= lim))
}

/// The quota after ControllerExpandVolume: unchanged when the current size already satisfies
/// the range (expansion never shrinks), else the size CreateVolume would choose.
pub fn expanded_capacity(current: u64, range: Option<&CapacityRange>) -> Result<u64, Status> {
    let (req, lim) = capacity_bounds(range)?;
    if req == 0 && lim == 0 {
        return Err(Status::invalid_argument("capacity_range needs required_bytes or limit_bytes"));
    }
    if lim != 0 && current > lim {
        return Err(Status::out_of_range(format!(
            "volume is already {current} bytes, more than limit_bytes {lim}; volumes do not shrink"
        )));
    }
    if current >= req {
        return Ok(current);
    }
    capacity_for(range)
}

/// Paging over a name-sorted listing. The token is the last name returned, hex-encoded behind a
/// version tag: a page starts after it, so deletions between calls never skip or repeat entries.
pub fn page_token(last_name: &str) -> String {
    let mut s = String::from("n1.");
    for b in last_name.bytes() {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// The name a token says to start after; ABORTED for a token we did not make (the spec's code
/// for an invalid `starting_token`).
pub fn parse_page_token(token: &str) -> Result<Option<String>, Status> {
    if token.is_empty() {
        return Ok(None);
    }
    let bad = || Status::aborted(format!("invalid starting_token {token:?}"));
    let hex = token.strip_prefix("n1.").ok_or_else(bad)?;
    if hex.is_empty() || hex.len() % 2 != 0 {
        return Err(bad());
    }
    let bytes = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16))
        .collect::<Result<Vec<u8>, _>>()
        .map_err(|_| bad())?;
    String::from_utf8(bytes).map(Some).map_err(|_| bad())
}

/// One page of `items` (sorted by `key`): the entries and the next token (empty at the end).
pub fn page<T>(
    items: Vec<T>,
    key: impl Fn(&T) -> &str,
    max_entries: i32,
    starting_token: &str,
) -> Result<(Vec<T>, String), Status> {
    if max_entries < 0 {
        return Err(Status::invalid_argument("max_entries must not be negative"));
    }
    let after = parse_page_token(starting_token)?;
    let mut rest: Vec<T> = match &after {
        Some(a) => items.into_iter().filter(|i| key(i) > a.as_str()).collect(),
        None => items,
    };
    if max_entries == 0 || rest.len() <= max_entries as usize {
        return Ok((rest, String::new()));
    }
    rest.truncate(max_entries as usize);
    let next = page_token(key(rest.last().expect("max_entries > 0")));
    Ok((rest, next))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tonic::Code;

    fn range(req: i64, lim: i64) -> CapacityRange {
        CapacityRange { required_bytes: req, limit_bytes: lim }
    }

    #[test]
    fn names_map_deterministically() {
        assert_eq!(catalog_name_for("pvc-0b7e4a9c-1111-2222-3333-444455556666"), "pvc-0b7e4a9c-1111-2222-3333-444455556666");
        let odd = catalog_name_for("My Volume");
        assert!(odd.starts_with("csi-") && odd.len() == 36, "{odd}");
        assert_eq!(odd, catalog_name_for("My Volume"));
        assert_ne!(odd, catalog_name_for("My Volume2"));
        assert!(is_valid_catalog_name(&odd));
        let long = "a".repeat(64);
        assert!(catalog_name_for(&long).starts_with("csi-"));
        assert_eq!(catalog_name_for(&"a".repeat(63)), "a".repeat(63));
        assert!(catalog_name_for("-x").starts_with("csi-"));
        assert!(catalog_name_for("a@b").starts_with("csi-"));
    }

    #[test]
    fn catalog_name_rule() {
        for ok in ["a", "0", "a.b_c-d", &"z".repeat(253)] {
            assert!(is_valid_catalog_name(ok), "{ok}");
        }
        for bad in ["", "A", "-a", ".a", "a/b", "a b", "a@b", "é", &"z".repeat(254)] {
            assert!(!is_valid_catalog_name(bad), "{bad}");
        }
    }

    #[test]
    fn csi_name_validation() {
        assert!(validate_csi_name("name", "ok name").is_ok());
        assert_eq!(validate_csi_name("name", "").unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(validate_csi_name("name", "a\u{1}").unwrap_err().code(), Code::InvalidArgument);
        assert_eq!(validate_csi_name("name", "a\u{85}").unwrap_err().code(), Code::InvalidArgument);
        assert!(validate_csi_name("name", "tab\tok").is_ok());
        assert_eq!(validate_csi_name("name", &"x".repeat(129)).unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn snapshot_ids_round_trip() {
        let id = snapshot_id("pvc-1", "snapshot-2");
        assert_eq!(parse_snapshot_id(&id), Some(("pvc-1", "snapshot-2")));
        assert_eq!(parse_snapshot_id("nope"), None);
        assert_eq!(parse_snapshot_id("a@"), None);
        assert_eq!(parse_snapshot_id("@b"), None);
        assert_eq!(parse_snapshot_id("a@b@c"), None);
        assert_eq!(parse_volume_id("a@b"), None);
        assert_eq!(parse_volume_id("pvc-1"), Some("pvc-1"));
        assert!(is_clone_snapshot(&clone_snapshot_name("pvc-9")));
        assert!(is_valid_catalog_name(&clone_snapshot_name(&"a".repeat(253))));
    }

    #[test]
    fn capacity_rounding() {
        const MIB: u64 = 1 << 20;
        assert_eq!(capacity_for(None).unwrap(), DEFAULT_VOLUME_BYTES);
        assert_eq!(capacity_for(Some(&range(0, 0))).unwrap(), DEFAULT_VOLUME_BYTES);
        assert_eq!(capacity_for(Some(&range(1, 0))).unwrap(), MIB);
        assert_eq!(capacity_for(Some(&range(MIB as i64 + 1, 0))).unwrap(), 2 * MIB);
        assert_eq!(capacity_for(Some(&range(5 * MIB as i64, 0))).unwrap(), 5 * MIB);
        // rounding would overshoot the limit: the limit itself
        assert_eq!(capacity_for(Some(&range(MIB as i64 + 1, MIB as i64 + 100))).unwrap(), MIB + 100);
        // exact size
        assert_eq!(capacity_for(Some(&range(3 * MIB as i64, 3 * MIB as i64))).unwrap(), 3 * MIB);
        // limit only: default, capped by the limit
        assert_eq!(capacity_for(Some(&range(0, 10 * MIB as i64))).unwrap(), 10 * MIB);
        assert_eq!(capacity_for(Some(&range(0, 1 << 40))).unwrap(), DEFAULT_VOLUME_BYTES);
    }

    #[test]
    fn capacity_errors() {
        let code = |r: CapacityRange| capacity_for(Some(&r)).unwrap_err().code();
        assert_eq!(code(range(-1, 0)), Code::InvalidArgument);
        assert_eq!(code(range(0, -1)), Code::InvalidArgument);
        assert_eq!(code(range(10, 5)), Code::OutOfRange);
        assert_eq!(code(range(0, 1000)), Code::OutOfRange); // below the minimum
        assert_eq!(code(range(i64::MAX, 0)), Code::OutOfRange);
    }

    #[test]
    fn capacity_compatibility_and_expansion() {
        const MIB: u64 = 1 << 20;
        assert!(capacity_satisfies(5 * MIB, None).unwrap());
        assert!(capacity_satisfies(5 * MIB, Some(&range(4 * MIB as i64, 0))).unwrap());
        assert!(!capacity_satisfies(5 * MIB, Some(&range(6 * MIB as i64, 0))).unwrap());
        assert!(!capacity_satisfies(5 * MIB, Some(&range(0, 4 * MIB as i64))).unwrap());

        assert_eq!(expanded_capacity(5 * MIB, Some(&range(8 * MIB as i64, 0))).unwrap(), 8 * MIB);
        assert_eq!(expanded_capacity(5 * MIB, Some(&range(3 * MIB as i64, 0))).unwrap(), 5 * MIB);
        assert_eq!(expanded_capacity(5 * MIB, Some(&range(7 * MIB as i64 + 3, 0))).unwrap(), 8 * MIB);
        assert_eq!(
            expanded_capacity(5 * MIB, Some(&range(0, 4 * MIB as i64))).unwrap_err().code(),
            Code::OutOfRange
        );
        assert_eq!(expanded_capacity(5 * MIB, None).unwrap_err().code(), Code::InvalidArgument);
    }

    #[test]
    fn paging() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"].iter().map(|s| s.to_string()).collect();
        #[allow(clippy::ptr_arg)]
        fn key(s: &String) -> &str {
            s.as_str()
        }
        let (p1, t1) = page(names.clone(), key, 2, "").unwrap();
        assert_eq!(p1, ["a", "b"]);
        let (p2, t2) = page(names.clone(), key, 2, &t1).unwrap();
        assert_eq!(p2, ["c", "d"]);
        let (p3, t3) = page(names.clone(), key, 2, &t2).unwrap();
        assert_eq!(p3, ["e"]);
        assert_eq!(t3, "");
        // a deletion between calls neither skips nor repeats
        let fewer: Vec<String> = names.iter().filter(|n| *n != "c").cloned().collect();
        let (p2b, _) = page(fewer, key, 2, &t1).unwrap();
        assert_eq!(p2b, ["d", "e"]);
        // exactly max entries left: no token
        let (all, t) = page(names.clone(), key, 5, "").unwrap();
        assert_eq!((all.len(), t.as_str()), (5, ""));
        let (all, t) = page(names.clone(), key, 0, "").unwrap();
        assert_eq!((all.len(), t.as_str()), (5, ""));
        for bad in ["x", "n1.", "n1.zz", "n1.abc", "n1.ff"] {
            assert_eq!(page(names.clone(), key, 2, bad).unwrap_err().code(), Code::Aborted, "{bad}");
        }
        assert_eq!(page(names, key, -1, "").unwrap_err().code(), Code::InvalidArgument);
    }
}
