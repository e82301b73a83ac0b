//! Read-ahead for sequential streams: when READs of a file continue where the previous ones
//! ended, the chunks after them are fetched into the block cache in the background, so the
//! next READs find them in memory instead of waiting on the store.
//!
//! A client keeps several READs of one stream in flight and they arrive out of order, so a
//! READ counts as sequential when it starts within one window of where the stream has got to.
//! What is fetched ahead lands in the process's shared block cache (`[storage]
//! memory_cache_size`), so it costs no memory beyond that bound; the number of fetches running
//! at once is bounded per dataset.

use std::collections::HashMap;
use std::ops::Range;
use std::sync::{Arc, Mutex};

use tokio::sync::Semaphore;

/// How far ahead of a sequential stream data is fetched.
pub const WINDOW: u64 = 8 << 20;
/// A new fetch starts once less than this much is fetched ahead of the stream.
const REFILL_BELOW: u64 = WINDOW / 2;
/// The largest range one background fetch reads (one scan per piece).
pub const FETCH_PIECE: u64 = 2 << 20;
/// Background fetches of one dataset running at once.
const MAX_FETCHES: usize = 8;
/// Streams remembered per dataset; beyond it the table starts over (a forgotten stream only
/// loses its read-ahead until its next two READs).
const MAX_STREAMS: usize = 256;

#[derive(Clone, Copy)]
struct Stream {
    /// The end of the furthest READ of the stream.
    reached: u64,
    /// Everything below this has been fetched or is being fetched.
    fetched_to: u64,
}

pub struct ReadAhead {
    streams: Mutex<HashMap<u64, Stream>>,
    fetches: Arc<Semaphore>,
}

impl Default for ReadAhead {
    fn default() -> Self {
        ReadAhead { streams: Mutex::new(HashMap::new()), fetches: Arc::new(Semaphore::new(MAX_FETCHES)) }
    }
}

impl ReadAhead {
    /// Records a READ of `ino` over `offset..end` of a file of `size` bytes; returns the range
    /// to fetch ahead, if the READ continues a stream and too little is fetched ahead of it.
    pub fn after_read(&self, ino: u64, offset: u64, end: u64, size: u64) -> Option<Range<u64>> {
        let mut streams = self.streams.lock().unwrap_or_else(|p| p.into_inner());
        let Some(s) = streams.get_mut(&ino) else {
            if streams.len() >= MAX_STREAMS {
                streams.clear();
            }
            streams.insert(ino, Stream { reached: end, fetched_to: end });
            return None;
        };
        let sequential = offset <= s.reached + WINDOW && offset + WINDOW >= s.reached;
        if !sequential {
            *s = Stream { reached: end, fetched_to: end };
            return None;
        }
        s.reached = s.reached.max(end);
        s.fetched_to = s.fetched_to.max(s.reached);
        let limit = (s.reached + WINDOW).min(size);
        if s.fetched_to >= limit || s.fetched_to >= s.reached + REFILL_BELOW {
            return None;
        }
        let range = s.fetched_to..limit;
        s.fetched_to = limit;
        Some(range)
    }

    /// A permit to run one background fetch, or `None` when enough are running already (the
    /// stream then goes on without read-ahead for a moment rather than queueing work).
    pub fn try_start(&self) -> Option<tokio::sync::OwnedSemaphorePermit> {
        self.fetches.clone().try_acquire_owned().ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIB: u64 = 1 << 20;

    #[test]
    fn a_first_read_fetches_nothing_and_a_second_sequential_one_fetches_a_window() {
        let ra = ReadAhead::default();
        assert_eq!(ra.after_read(7, 0, MIB, 100 * MIB), None);
        assert_eq!(ra.after_read(7, MIB, 2 * MIB, 100 * MIB), Some(2 * MIB..2 * MIB + WINDOW));
        // Still more than half a window ahead: nothing new.
        assert_eq!(ra.after_read(7, 2 * MIB, 3 * MIB, 100 * MIB), None);
        // Out-of-order READs of the same stream keep it sequential.
        assert_eq!(ra.after_read(7, 4 * MIB, 5 * MIB, 100 * MIB), None);
        assert_eq!(ra.after_read(7, 3 * MIB, 4 * MIB, 100 * MIB), None);
        // Once the stream nears the end of what was fetched, the rest of the window follows.
        let next = ra.after_read(7, 6 * MIB, 7 * MIB, 100 * MIB).expect("a refill");
        assert_eq!(next, 2 * MIB + WINDOW..7 * MIB + WINDOW);
    }

    #[test]
    fn random_reads_fetch_nothing_and_nothing_is_fetched_past_the_end_of_the_file() {
        let ra = ReadAhead::default();
        ra.after_read(1, 0, 4096, 1 << 30);
        assert_eq!(ra.after_read(1, 500 * MIB, 500 * MIB + 4096, 1 << 30), None);
        assert_eq!(ra.after_read(1, 100 * MIB, 100 * MIB + 4096, 1 << 30), None);
        ra.after_read(2, 0, MIB, 3 * MIB);
        assert_eq!(ra.after_read(2, MIB, 2 * MIB, 3 * MIB), Some(2 * MIB..3 * MIB));
        assert_eq!(ra.after_read(2, 2 * MIB, 3 * MIB, 3 * MIB), None);
    }
}
