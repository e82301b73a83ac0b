//! Per-export NFS counters: calls, failed calls and latency by procedure, bytes read and
//! written, for each object (dataset or read-only snapshot) a call's file handle names.
//!
//! The RPC layer calls [`NfsCounters::record`] once per NFSv3 call. An object's counters are
//! created on its first call (one allocation per object, under the write lock); every later
//! call takes the read lock, finds the object by id and adds with relaxed atomics. Names are
//! not kept here: the exporter resolves ids to names from the catalog at scrape time, so a
//! renamed or deleted object never leaves a wrong label behind.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{LazyLock, RwLock};
use std::time::Duration;

use super::histogram::{HistogramSnapshot, LatencyHistogram};

/// NFSv3 procedures 0..=21 (RFC 1813), by number.
pub const PROCEDURES: [&str; 22] = [
    "null", "getattr", "setattr", "lookup", "access", "readlink", "read", "write", "create", "mkdir", "symlink",
    "mknod", "remove", "rmdir", "rename", "link", "readdir", "readdirplus", "fsstat", "fsinfo", "pathconf", "commit",
];

/// The object a call counts under when its handle names none (NULL, a handle that does not
/// verify). Catalog ids start at 1.
pub const NO_OBJECT: u64 = 0;

/// What one call did, as the RPC layer saw its reply.
#[derive(Debug, Clone, Copy)]
pub struct CallOutcome {
    pub procedure: u32,
    /// The reply's nfsstat3 was not NFS3_OK (or the call was not accepted).
    pub failed: bool,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub elapsed: Duration,
}

#[derive(Debug, Default)]
struct ProcedureCounters {
    calls: AtomicU64,
    errors: AtomicU64,
    latency: LatencyHistogram,
}

#[derive(Debug, Default)]
struct ObjectCounters {
    procedures: [ProcedureCounters; 22],
    bytes_read: AtomicU64,
    bytes_written: AtomicU64,
}

#[derive(Debug, Default)]
pub struct NfsCounters {
    objects: RwLock<HashMap<u64, Box<ObjectCounters>>>,
}

/// The counters of this process's NFS server.
pub static NFS: LazyLock<NfsCounters> = LazyLock::new(NfsCounters::default);

/// A scrape's copy of one procedure of one object (only procedures that were called).
#[derive(Debug, Clone)]
pub struct ProcedureSnapshot {
    pub procedure: &'static str,
    pub calls: u64,
    pub errors: u64,
    pub latency: HistogramSnapshot,
}

#[derive(Debug, Clone)]
pub struct ObjectSnapshot {
    pub object: u64,
    pub procedures: Vec<ProcedureSnapshot>,
    pub bytes_read: u64,
    pub bytes_written: u64,
}

impl NfsCounters {
    pub fn record(&self, object: u64, call: CallOutcome) {
        let Some(index) = usize::try_from(call.procedure).ok().filter(|&i| i < PROCEDURES.len()) else { return };
        {
            let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
            if let Some(c) = objects.get(&object) {
                c.add(index, &call);
                return;
            }
        }
        let mut objects = self.objects.write().unwrap_or_else(|e| e.into_inner());
        objects.entry(object).or_default().add(index, &call);
    }

    pub fn snapshot(&self) -> Vec<ObjectSnapshot> {
        let objects = self.objects.read().unwrap_or_else(|e| e.into_inner());
        let mut v: Vec<ObjectSnapshot> = objects
            .iter()
            .map(|(&object, c)| ObjectSnapshot {
                object,
                procedures: c
                    .procedures
                    .iter()
                    .zip(PROCEDURES)
                    .filter(|(p, _)| p.calls.load(Relaxed) > 0)
                    .map(|(p, name)| ProcedureSnapshot {
                        procedure: name,
                        calls: p.calls.load(Relaxed),
                        errors: p.errors.load(Relaxed),
                        latency: p.latency.snapshot(),
                    })
                    .collect(),
                bytes_read: c.bytes_read.load(Relaxed),
                bytes_written: c.bytes_written.load(Relaxed),
            })
            .collect();
        v.sort_by_key(|o| o.object);
        v
    }
}

impl ObjectCounters {
    fn add(&self, index: usize, call: &CallOutcome) {
        let p = &self.procedures[index];
        p.calls.fetch_add(1, Relaxed);
        if call.failed {
            p.errors.fetch_add(1, Relaxed);
        }
        p.latency.record(call.elapsed);
        if call.bytes_read > 0 {
            self.bytes_read.fetch_add(call.bytes_read, Relaxed);
        }
        if call.bytes_written > 0 {
            self.bytes_written.fetch_add(call.bytes_written, Relaxed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn calls_count_under_their_object_and_procedure() {
        let n = NfsCounters::default();
        let call = |procedure, failed, r, w| CallOutcome { procedure, failed, bytes_read: r, bytes_written: w, elapsed: Duration::from_micros(80) };
        n.record(3, call(6, false, 100, 0));
        n.record(3, call(6, false, 50, 0));
        n.record(3, call(7, true, 0, 0));
        n.record(5, call(7, false, 0, 4096));
        n.record(5, call(99, false, 0, 1)); // no such procedure: ignored
        let s = n.snapshot();
        assert_eq!(s.len(), 2);
        assert_eq!((s[0].object, s[0].bytes_read, s[0].bytes_written), (3, 150, 0));
        let read = s[0].procedures.iter().find(|p| p.procedure == "read").unwrap();
        assert_eq!((read.calls, read.errors, read.latency.count), (2, 0, 2));
        let write = s[0].procedures.iter().find(|p| p.procedure == "write").unwrap();
        assert_eq!((write.calls, write.errors), (1, 1));
        assert_eq!((s[1].object, s[1].bytes_written, s[1].procedures.len()), (5, 4096, 1));
    }
}
