//! The time policies run by: the system clock, or — only when `SLATEFS_TEST_CLOCK_FILE` is
//! set in `serve`'s environment — milliseconds since the Unix epoch read from that file, so
//! tests can move time (docs/policies.md, "Time in tests").

use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

pub const TEST_CLOCK_ENV: &str = "SLATEFS_TEST_CLOCK_FILE";

#[derive(Debug, Clone)]
pub enum Clock {
    System,
    File(PathBuf),
}

impl Clock {
    /// The system clock, or the test clock when the environment names one.
    pub fn from_env() -> Clock {
        match std::env::var_os(TEST_CLOCK_ENV).filter(|v| !v.is_empty()) {
            Some(path) => {
                let path = PathBuf::from(path);
                tracing::warn!(
                    "snapshot policies run by the test clock in {} ({TEST_CLOCK_ENV} is set), not by the system clock",
                    path.display()
                );
                Clock::File(path)
            }
            None => Clock::System,
        }
    }

    /// Now, in ms since the epoch. A test clock file that is missing or unreadable reads as
    /// `None`: the runner then does nothing until it holds a time.
    pub fn now_ms(&self) -> Option<u64> {
        match self {
            Clock::System => Some(SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default().as_millis() as u64),
            Clock::File(path) => std::fs::read_to_string(path).ok()?.trim().parse().ok(),
        }
    }

    /// How long the runner may sleep before looking at the clock again: a test clock is
    /// polled (it jumps), the system clock is slept on until the next slot (at most a minute).
    pub fn poll(&self, until_next_ms: Option<u64>) -> Duration {
        match self {
            Clock::File(_) => Duration::from_millis(50),
            Clock::System => {
                Duration::from_millis(until_next_ms.unwrap_or(60_000).clamp(10, 60_000))
            }
        }
    }
}
