//! Mounting NFS exports on the node. The node service goes through the [`Mounter`] trait; the
//! one implementation, [`SystemMounter`], runs `mount -t nfs` / `umount` and reads the kernel's
//! mount table (`/proc/self/mountinfo`), which is the node's only state: after a restart the
//! plugin finds its publishes there, nothing is kept only in memory.
//!
//! A dead NFS server must not wedge the node: every `mount`/`umount` runs with a timeout; an
//! unmount that does not finish in time (or fails) is retried forced (`umount -f`), then lazy
//! (`umount -l`, which detaches at once and lets the kernel clean up when the server returns).

use std::path::{Path, PathBuf};
use std::time::Duration;

use async_trait::async_trait;
use tokio::process::Command;

/// One line of `/proc/self/mountinfo`, the parts we use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountInfo {
    pub mount_point: PathBuf,
    pub fs_type: String,
    /// `HOST:/EXPORT` for NFS.
    pub source: String,
    /// From the per-mount options (`ro`/`rw`).
    pub read_only: bool,
    /// Per-mount options followed by the superblock options.
    pub options: Vec<String>,
}

impl MountInfo {
    pub fn is_nfs(&self) -> bool {
        self.fs_type == "nfs" || self.fs_type == "nfs4"
    }
}

#[derive(Debug, thiserror::Error)]
pub enum MountError {
    #[error("{0} timed out after {1:?}")]
    Timeout(String, Duration),
    #[error("{cmd} failed ({status}): {stderr}")]
    Failed { cmd: String, status: String, stderr: String },
    #[error("{0}")]
    Io(#[from] std::io::Error),
}

#[async_trait]
pub trait Mounter: Send + Sync {
    /// `mount -t nfs -o OPTIONS SOURCE TARGET`.
    async fn mount_nfs(&self, source: &str, target: &Path, options: &[String]) -> Result<(), MountError>;
    /// Unmounts `target` (forced, then lazy, when a plain unmount fails or hangs).
    async fn unmount(&self, target: &Path) -> Result<(), MountError>;
    /// The mount table.
    async fn mounts(&self) -> Result<Vec<MountInfo>, MountError>;
}

/// The real mounter: `mount(8)` / `umount(8)` and `/proc/self/mountinfo`.
pub struct SystemMounter {
    pub mount_timeout: Duration,
    pub unmount_timeout: Duration,
    pub mountinfo: PathBuf,
}

impl Default for SystemMounter {
    fn default() -> Self {
        SystemMounter {
            mount_timeout: Duration::from_secs(60),
            unmount_timeout: Duration::from_secs(10),
            mountinfo: PathBuf::from("/proc/self/mountinfo"),
        }
    }
}

async fn run(cmd: &str, args: &[&std::ffi::OsStr], timeout: Duration) -> Result<(), MountError> {
    let display = format!(
        "{cmd} {}",
        args.iter().map(|a| a.to_string_lossy()).collect::<Vec<_>>().join(" ")
    );
    let child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(MountError::Timeout(display, timeout)),
        Ok(Err(e)) => Err(MountError::Io(e)),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => Err(MountError::Failed {
            cmd: display,
            status: out.status.to_string(),
            // One line, so that the error reads whole in a log line and a gRPC message.
            stderr: format!("{} {}", String::from_utf8_lossy(&out.stderr), String::from_utf8_lossy(&out.stdout))
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        }),
    }
}

#[async_trait]
impl Mounter for SystemMounter {
    async fn mount_nfs(&self, source: &str, target: &Path, options: &[String]) -> Result<(), MountError> {
        let opts = options.join(",");
        run(
            "mount",
            &["-t".as_ref(), "nfs".as_ref(), "-o".as_ref(), opts.as_ref(), source.as_ref(), target.as_os_str()],
            self.mount_timeout,
        )
        .await
    }

    async fn unmount(&self, target: &Path) -> Result<(), MountError> {
        let t = target.as_os_str();
        let first = match run("umount", &[t], self.unmount_timeout).await {
            Ok(()) => return Ok(()),
            Err(e) => e,
        };
        tracing::warn!(target = %target.display(), error = %first, "unmount failed; forcing");
        if run("umount", &["-f".as_ref(), t], self.unmount_timeout).await.is_ok() {
            return Ok(());
        }
        // Lazy: detaches the mount point at once whatever the server does.
        run("umount", &["-l".as_ref(), t], self.unmount_timeout).await
    }

    async fn mounts(&self) -> Result<Vec<MountInfo>, MountError> {
        let text = tokio::fs::read_to_string(&self.mountinfo).await?;
        Ok(parse_mountinfo(&text))
    }
}

/// Undoes the octal escapes (`\040` for a space, …) of mountinfo fields.
fn unescape(field: &str) -> String {
    let b = field.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 3 < b.len() && b[i + 1..i + 4].iter().all(|c| (b'0'..=b'7').contains(c)) {
            let v = (b[i + 1] - b'0') as u32 * 64 + (b[i + 2] - b'0') as u32 * 8 + (b[i + 3] - b'0') as u32;
            out.push(v as u8);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Parses `/proc/PID/mountinfo` (proc(5)): `ID PARENT MAJ:MIN ROOT MOUNTPOINT OPTS [TAGS…] -
/// FSTYPE SOURCE SUPEROPTS`. Malformed lines are skipped.
pub fn parse_mountinfo(text: &str) -> Vec<MountInfo> {
    let mut out = Vec::new();
    for line in text.lines() {
        let fields: Vec<&str> = line.split(' ').collect();
        let Some(sep) = fields.iter().position(|f| *f == "-") else { continue };
        if sep < 6 || fields.len() < sep + 3 {
            continue;
        }
        let per_mount: Vec<String> = fields[5].split(',').map(str::to_string).collect();
        let mut options = per_mount.clone();
        if let Some(sup) = fields.get(sep + 3) {
            options.extend(sup.split(',').map(str::to_string));
        }
        out.push(MountInfo {
            mount_point: PathBuf::from(unescape(fields[4])),
            fs_type: fields[sep + 1].to_string(),
            source: unescape(fields[sep + 2]),
            read_only: per_mount.iter().any(|o| o == "ro"),
            options,
        });
    }
    out
}

/// The path a mount at `target` shows in the mount table: the parent is resolved (symlinks),
/// the last component is not (stat-ing a mount point of a dead server would hang).
pub fn table_path(target: &Path) -> PathBuf {
    match (target.parent(), target.file_name()) {
        (Some(parent), Some(name)) => match std::fs::canonicalize(parent) {
            Ok(p) => p.join(name),
            Err(_) => target.to_path_buf(),
        },
        _ => target.to_path_buf(),
    }
}

/// The topmost mount at `target` (the last one listed wins, as in the kernel).
pub fn mount_at<'a>(mounts: &'a [MountInfo], target: &Path) -> Option<&'a MountInfo> {
    let resolved = table_path(target);
    mounts.iter().rev().find(|m| m.mount_point == target || m.mount_point == resolved)
}

/// Whether this kernel can mount NFS at all (`nfs` in `/proc/filesystems`, or a module that
/// provides it). Used for clear errors and by tests to decide whether to skip.
pub fn kernel_has_nfs() -> bool {
    if let Ok(fs) = std::fs::read_to_string("/proc/filesystems") {
        if fs.lines().any(|l| l.split_whitespace().last() == Some("nfs")) {
            return true;
        }
    }
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let dir = Path::new("/lib/modules").join(release.trim()).join("kernel/fs/nfs");
    dir.join("nfs.ko").exists() || dir.join("nfs.ko.xz").exists() || dir.join("nfs.ko.zst").exists()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /proc rw,nosuid,nodev,noexec,relatime shared:12 - proc proc rw
98 29 0:45 / /var/lib/kubelet/pods/u1/volumes/kubernetes.io~csi/pvc-1/mount rw,relatime shared:50 - nfs 127.0.0.1:/pvc-1 rw,vers=3,rsize=1048576,hard,proto=tcp,port=20490
99 29 0:46 / /mnt/with\\040space ro,relatime - nfs 10.0.2.2:/pvc-2@snap-1 ro,vers=3
bogus line
";

    #[test]
    fn parses_mountinfo() {
        let m = parse_mountinfo(SAMPLE);
        assert_eq!(m.len(), 3);
        assert_eq!(m[1].source, "127.0.0.1:/pvc-1");
        assert_eq!(m[1].fs_type, "nfs");
        assert!(!m[1].read_only);
        assert!(m[1].options.iter().any(|o| o == "hard"));
        assert_eq!(m[2].mount_point, PathBuf::from("/mnt/with space"));
        assert!(m[2].read_only && m[2].is_nfs());
        assert_eq!(m[2].source, "10.0.2.2:/pvc-2@snap-1");
        assert!(mount_at(&m, Path::new("/mnt/with space")).is_some());
        assert!(mount_at(&m, Path::new("/mnt/other")).is_none());
    }

    #[test]
    fn unescapes() {
        assert_eq!(unescape("a\\040b\\134c"), "a b\\c");
        assert_eq!(unescape("trailing\\04"), "trailing\\04");
    }
}
