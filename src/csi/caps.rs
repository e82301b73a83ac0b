//! Volume capabilities: which access types and modes a slatefs volume supports.
//!
//! A volume is an NFS-mounted filesystem, so only the `mount` access type exists (block →
//! INVALID_ARGUMENT); `fs_type` may be empty or `nfs`. Every access mode is supported: NFS lets
//! many nodes mount a dataset, and all writes go through the one dataset server that holds the
//! dataset's SlateDB writer. SINGLE_NODE_SINGLE_WRITER is enforced by the node service (one
//! target per node; the CO keeps it to one node).

use tonic::Status;

use super::proto::volume_capability::{access_mode::Mode, AccessType};
use super::proto::VolumeCapability;

pub const SUPPORTED_FS_TYPES: &[&str] = &["", "nfs"];

/// Why `cap` is not supported, or `None` when it is.
pub fn unsupported_reason(cap: &VolumeCapability) -> Option<String> {
    match &cap.access_type {
        None => return Some("volume capability has no access type (mount or block)".into()),
        Some(AccessType::Block(_)) => {
            return Some("block access is not supported: slatefs volumes are filesystems".into())
        }
        Some(AccessType::Mount(m)) => {
            if !SUPPORTED_FS_TYPES.contains(&m.fs_type.as_str()) {
                return Some(format!("fs_type {:?} is not supported (use \"\" or \"nfs\")", m.fs_type));
            }
            if m.mount_flags.iter().map(|f| f.len()).sum::<usize>() > 4096 {
                return Some("mount_flags exceed 4 KiB".into());
            }
            if let Some(f) = m.mount_flags.iter().find(|f| f.is_empty() || f.chars().any(char::is_whitespace)) {
                return Some(format!("mount flag {f:?} is empty or contains whitespace"));
            }
        }
    }
    match cap.access_mode.as_ref().map(|m| Mode::try_from(m.mode)) {
        None => Some("volume capability has no access mode".into()),
        Some(Err(_)) => Some("unknown access mode".into()),
        Some(Ok(Mode::Unknown)) => Some("access mode is UNKNOWN".into()),
        Some(Ok(_)) => None,
    }
}

/// Validates a required list of capabilities: INVALID_ARGUMENT when it is empty or any entry is
/// unsupported (the CreateVolume / ValidateVolumeCapabilities request check).
pub fn validate_all(caps: &[VolumeCapability]) -> Result<(), Status> {
    if caps.is_empty() {
        return Err(Status::invalid_argument("volume_capabilities is required"));
    }
    for c in caps {
        if let Some(why) = unsupported_reason(c) {
            return Err(Status::invalid_argument(why));
        }
    }
    Ok(())
}

/// Validates one required capability (NodePublishVolume, ControllerExpandVolume).
pub fn validate_one(cap: Option<&VolumeCapability>) -> Result<&VolumeCapability, Status> {
    let cap = cap.ok_or_else(|| Status::invalid_argument("volume_capability is required"))?;
    if let Some(why) = unsupported_reason(cap) {
        return Err(Status::invalid_argument(why));
    }
    Ok(cap)
}

pub fn mode(cap: &VolumeCapability) -> Mode {
    cap.access_mode.as_ref().and_then(|m| Mode::try_from(m.mode).ok()).unwrap_or(Mode::Unknown)
}

pub fn mount_flags(cap: &VolumeCapability) -> &[String] {
    match &cap.access_type {
        Some(AccessType::Mount(m)) => &m.mount_flags,
        _ => &[],
    }
}

/// Modes in which a publish must be read-only whatever `readonly` says.
pub fn mode_is_read_only(mode: Mode) -> bool {
    matches!(mode, Mode::SingleNodeReaderOnly | Mode::MultiNodeReaderOnly)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::csi::proto::volume_capability::{AccessMode, BlockVolume, MountVolume};

    fn cap(access: Option<AccessType>, mode: i32) -> VolumeCapability {
        VolumeCapability { access_type: access, access_mode: Some(AccessMode { mode }) }
    }
    fn mount(fs: &str, flags: &[&str]) -> Option<AccessType> {
        Some(AccessType::Mount(MountVolume {
            fs_type: fs.into(),
            mount_flags: flags.iter().map(|s| s.to_string()).collect(),
            volume_mount_group: String::new(),
        }))
    }

    #[test]
    fn modes_and_types() {
        for m in 1..=7 {
            assert!(unsupported_reason(&cap(mount("", &[]), m)).is_none(), "mode {m}");
        }
        assert!(unsupported_reason(&cap(mount("nfs", &["noatime"]), 1)).is_none());
        assert!(unsupported_reason(&cap(mount("ext4", &[]), 1)).is_some());
        assert!(unsupported_reason(&cap(mount("", &["a b"]), 1)).is_some());
        assert!(unsupported_reason(&cap(Some(AccessType::Block(BlockVolume {})), 1)).unwrap().contains("block"));
        assert!(unsupported_reason(&cap(None, 1)).is_some());
        assert!(unsupported_reason(&cap(mount("", &[]), 0)).is_some());
        assert!(unsupported_reason(&cap(mount("", &[]), 99)).is_some());
        assert!(unsupported_reason(&VolumeCapability { access_type: mount("", &[]), access_mode: None }).is_some());
        assert_eq!(validate_all(&[]).unwrap_err().code(), tonic::Code::InvalidArgument);
        assert_eq!(validate_one(None).unwrap_err().code(), tonic::Code::InvalidArgument);
    }
}
