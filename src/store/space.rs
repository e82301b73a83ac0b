//! Room left on the disk under a `file://` store.
//!
//! SlateDB retries a failed object-store write without limit, and a change it has taken is
//! already visible to reads: a change written when the disk is full would be answered with an
//! error (the durability wait gives up) and yet be applied, later or at once. So the engine
//! asks here *before* it writes anything, and refuses a change that needs room while the disk
//! has less than a reserve free (`[storage] space_reserve`). The reserve is what SlateDB
//! itself still needs to write what it holds (memtable flushes, compaction outputs, manifests)
//! and what removes need (a remove is a store write too: a WAL entry, and tombstones for its
//! chunks); removes go on until a quarter of the reserve is left. Object stores (S3, GCS,
//! Azure) have no such limit and are never "full" here.
//!
//! The watch is per process, installed when a store is opened (a process serves one store),
//! like the wait limits in `wait.rs`.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::RwLock;

/// Default `[storage] space_reserve`: at most this, and at most a tenth of the disk.
pub const DEFAULT_RESERVE: u64 = 256 << 20;

struct Watch {
    dir: PathBuf,
    reserve: u64,
}

static WATCH: RwLock<Option<Watch>> = RwLock::new(None);
/// The last `Room` seen, to log each change of it once.
static LAST: AtomicU8 = AtomicU8::new(0);

/// How much room the store has for a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Room {
    /// More than the reserve free (or not a local store): every change may be written.
    Enough,
    /// Less than the reserve free: only changes that free space (removes, truncations).
    Low { free: u64, reserve: u64 },
    /// Less than a quarter of the reserve: nothing is written.
    Exhausted { free: u64, reserve: u64 },
}

impl Room {
    fn code(self) -> u8 {
        match self {
            Room::Enough => 0,
            Room::Low { .. } => 1,
            Room::Exhausted { .. } => 2,
        }
    }
}

/// Watches the disk under `dir` (a `file://` store; `None` for object stores). `reserve`:
/// `[storage] space_reserve` in bytes, `None` for the default.
pub fn install(dir: Option<&Path>, reserve: Option<u64>) {
    let watch = dir.map(|dir| Watch {
        dir: dir.to_path_buf(),
        reserve: reserve.unwrap_or_else(|| default_reserve(dir)),
    });
    *WATCH.write().unwrap() = watch;
    LAST.store(0, Ordering::Relaxed);
}

fn default_reserve(dir: &Path) -> u64 {
    match disk_space(dir) {
        Some((total, _)) => DEFAULT_RESERVE.min(total / 10),
        None => DEFAULT_RESERVE,
    }
}

/// The room there is now (one `statvfs`, a few microseconds). Each change of it is logged.
pub fn room() -> Room {
    let guard = WATCH.read().unwrap();
    let Some(w) = guard.as_ref() else { return Room::Enough };
    let Some((_, free)) = disk_space(&w.dir) else { return Room::Enough };
    let room = if free >= w.reserve {
        Room::Enough
    } else if free >= w.reserve / 4 {
        Room::Low { free, reserve: w.reserve }
    } else {
        Room::Exhausted { free, reserve: w.reserve }
    };
    let before = LAST.swap(room.code(), Ordering::Relaxed);
    if before != room.code() {
        log_change(&w.dir, before, room);
    }
    room
}

/// Whether `bytes` more can be written to the store now and still leave a quarter of the
/// reserve free (what removes may use). Always for object stores.
pub fn fits(bytes: u64) -> bool {
    let guard = WATCH.read().unwrap();
    let Some(w) = guard.as_ref() else { return true };
    match disk_space(&w.dir) {
        Some((_, free)) => free >= bytes.saturating_add(w.reserve / 4),
        None => true,
    }
}

fn log_change(dir: &Path, before: u8, room: Room) {
    match room {
        Room::Enough => tracing::info!(
            "object store has room again under {}: changes are written again",
            dir.display()
        ),
        Room::Low { free, reserve } if before == 0 => tracing::warn!(
            "object store full: {} free under {}, less than storage.space_reserve ({}): changes \
             that need space answer NFS3ERR_NOSPC; removes and truncations go on until {} is left",
            mib(free),
            dir.display(),
            mib(reserve),
            mib(reserve / 4)
        ),
        Room::Low { .. } => {}
        Room::Exhausted { free, reserve } => tracing::error!(
            "object store full: {} free under {}, less than a quarter of storage.space_reserve \
             ({}): every change answers NFS3ERR_NOSPC until space is freed on that disk",
            mib(free),
            dir.display(),
            mib(reserve)
        ),
    }
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1u64 << 20) as f64)
}

/// Total and available bytes of the filesystem holding `dir`.
pub fn disk_space(dir: &Path) -> Option<(u64, u64)> {
    let c_path = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).ok()?;
    let mut st: libc::statvfs = unsafe { std::mem::zeroed() };
    // SAFETY: c_path is a valid NUL-terminated path and st a writable statvfs.
    if unsafe { libc::statvfs(c_path.as_ptr(), &mut st) } != 0 {
        return None;
    }
    let frsize = st.f_frsize as u64;
    Some((st.f_blocks as u64 * frsize, st.f_bavail as u64 * frsize))
}
