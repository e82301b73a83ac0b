//! Test hook for the crash tests: `SLATEFS_CRASH_AT=<point>` makes the process abort (no
//! unwinding, no flush, nothing closed — what `kill -9` leaves behind) when it reaches the named
//! point of a catalog operation. It is read from the environment only, once; without it the
//! hook does nothing. Points:
//!
//! | point                          | state left behind                                        |
//! |--------------------------------|----------------------------------------------------------|
//! | `create.after-intent`          | `Creating` record, no database                           |
//! | `create.after-db`              | `Creating` record, formatted database                    |
//! | `snapshot.after-intent`        | `Creating` snapshot record, no checkpoint                |
//! | `snapshot.after-checkpoint`    | `Creating` snapshot record, checkpoint taken             |
//! | `clone.after-intent`           | `Creating` dataset record (writable snapshot or clone)   |
//! | `clone.after-checkpoint`       | … plus the temporary checkpoint of a writable snapshot   |
//! | `clone.after-clone`            | … plus the cloned database (pinning its parent)          |
//! | `delete.after-intent`          | `Deleted` dataset record, database still there           |
//! | `delete.after-store`           | `Deleted` dataset record, database removed               |
//! | `delete-snapshot.after-intent` | `Deleted` snapshot record, checkpoint still there        |
//! | `delete-snapshot.after-store`  | `Deleted` snapshot record, checkpoint removed            |
//! | `rollback.after-intent`        | `R` intent record, the dataset's writer still open       |
//! | `rollback.after-close`         | … the writer closed                                      |
//! | `rollback.after-clone`         | … plus the new database cloned from the snapshot         |
//! | `rollback.after-floor`         | … plus the inode floor carried over into it              |
//! | `rollback.after-commit`        | the dataset switched to the new database, intent removed |

use std::sync::OnceLock;

pub const ENV: &str = "SLATEFS_CRASH_AT";

pub const POINTS: &[&str] = &[
    "create.after-intent",
    "create.after-db",
    "snapshot.after-intent",
    "snapshot.after-checkpoint",
    "clone.after-intent",
    "clone.after-checkpoint",
    "clone.after-clone",
    "delete.after-intent",
    "delete.after-store",
    "delete-snapshot.after-intent",
    "delete-snapshot.after-store",
    "policy-snapshot.after-intent",
    "policy-snapshot.after-checkpoint",
    "policy-prune.after-intent",
    "rollback.after-intent",
    "rollback.after-close",
    "rollback.after-clone",
    "rollback.after-floor",
    "rollback.after-commit",
];

fn configured() -> Option<&'static str> {
    static AT: OnceLock<Option<String>> = OnceLock::new();
    AT.get_or_init(|| {
        let v = std::env::var(ENV).ok().filter(|v| !v.is_empty())?;
        if !POINTS.contains(&v.as_str()) {
            eprintln!("warning: {ENV}={v:?} names no crash point; known points: {POINTS:?}");
        }
        Some(v)
    })
    .as_deref()
}

/// Aborts the process if `SLATEFS_CRASH_AT` names `point`.
pub fn point(point: &str) {
    if configured() == Some(point) {
        eprintln!("{ENV}={point}: aborting the process (test hook)");
        std::process::abort();
    }
}
