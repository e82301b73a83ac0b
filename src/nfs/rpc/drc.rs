//! The duplicate request cache: a client that retransmits a call (after a lost reply or a
//! reconnect) must not have a non-idempotent call applied twice; a second REMOVE would answer
//! NOENT for a file the first one removed, a second exclusive CREATE EXIST.
//!
//! Every operation is O(1): calls in progress sit in a set until they finish; replies of
//! non-idempotent calls sit in a map with a FIFO of their keys, and the oldest are dropped when
//! a shard is over its size or older than the window. Sharding by key keeps the locks short
//! and uncontended.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const SHARDS: usize = 16;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Key {
    pub client: IpAddr,
    pub xid: u32,
    pub prog: u32,
    pub vers: u32,
    pub proc_: u32,
    /// A checksum of the arguments, so that two clients behind one address that happen to use
    /// the same xid are not taken for one another.
    pub args: u64,
}

impl Key {
    pub fn new(client: IpAddr, xid: u32, prog: u32, vers: u32, proc_: u32, args: &[u8]) -> Key {
        // The head of the arguments (file handle, name, offset) and the length tell calls
        // apart; hashing a whole 1 MiB WRITE would cost more than it tells.
        let mut h = DefaultHasher::new();
        args[..args.len().min(256)].hash(&mut h);
        args.len().hash(&mut h);
        Key { client, xid, prog, vers, proc_, args: h.finish() }
    }

    fn shard(&self) -> usize {
        (self.xid as usize ^ self.args as usize) % SHARDS
    }
}

pub enum Begin {
    /// Run the call, then call `finish`.
    New,
    /// The same call is being processed: drop this copy (its reply will answer both).
    InProgress,
    /// The call was done: send this reply again.
    Replay(Vec<u8>),
}

/// A call `begin` answered `New` for. Dropping it unfinished (the call's task panicked or was
/// cancelled) forgets the call, so a retransmission runs it rather than waiting forever.
pub struct Ticket<'a> {
    drc: &'a Drc,
    key: Option<Key>,
}

impl<'a> Ticket<'a> {
    pub fn new(drc: &'a Drc, key: Key) -> Ticket<'a> {
        Ticket { drc, key: Some(key) }
    }

    /// Ends the call; `reply` is kept when the call is not idempotent.
    pub fn finish(mut self, reply: Option<&[u8]>) {
        if let Some(key) = self.key.take() {
            self.drc.finish(key, reply);
        }
    }
}

impl Drop for Ticket<'_> {
    fn drop(&mut self) {
        if let Some(key) = self.key.take() {
            self.drc.finish(key, None);
        }
    }
}

#[derive(Default)]
struct Shard {
    running: HashSet<Key>,
    done: HashMap<Key, (u64, Vec<u8>)>,
    order: VecDeque<(Key, u64, Instant)>,
    next_seq: u64,
}

pub struct Drc {
    shards: Vec<Mutex<Shard>>,
    per_shard: usize,
    window: Duration,
}

impl Drc {
    /// Keeps at most `capacity` replies, none older than `window`.
    pub fn new(capacity: usize, window: Duration) -> Drc {
        Drc {
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            per_shard: capacity.div_ceil(SHARDS).max(1),
            window,
        }
    }

    pub fn begin(&self, key: &Key) -> Begin {
        let mut s = self.shards[key.shard()].lock().expect("drc lock");
        if s.running.contains(key) {
            return Begin::InProgress;
        }
        if let Some((_, reply)) = s.done.get(key) {
            return Begin::Replay(reply.clone());
        }
        s.running.insert(key.clone());
        Begin::New
    }

    fn finish(&self, key: Key, reply: Option<&[u8]>) {
        let mut guard = self.shards[key.shard()].lock().expect("drc lock");
        let s = &mut *guard;
        s.running.remove(&key);
        let Some(reply) = reply else { return };
        let now = Instant::now();
        let seq = s.next_seq;
        s.next_seq += 1;
        s.order.push_back((key.clone(), seq, now));
        s.done.insert(key, (seq, reply.to_vec()));
        while let Some((_, _, at)) = s.order.front() {
            if s.order.len() <= self.per_shard && now.duration_since(*at) < self.window {
                break;
            }
            let (old, old_seq, _) = s.order.pop_front().expect("front exists");
            if s.done.get(&old).is_some_and(|(seq, _)| *seq == old_seq) {
                s.done.remove(&old);
            }
        }
    }

    #[cfg(test)]
    fn cached(&self) -> usize {
        self.shards.iter().map(|s| s.lock().unwrap().done.len()).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(xid: u32) -> Key {
        Key::new("10.0.0.1".parse().unwrap(), xid, 100003, 3, 12, b"args")
    }

    #[test]
    fn in_progress_then_replayed_then_forgotten_when_idempotent() {
        let drc = Drc::new(100, Duration::from_secs(60));
        assert!(matches!(drc.begin(&key(1)), Begin::New));
        assert!(matches!(drc.begin(&key(1)), Begin::InProgress));
        drc.finish(key(1), Some(b"reply"));
        assert!(matches!(drc.begin(&key(1)), Begin::Replay(r) if r == b"reply"));
        assert!(matches!(drc.begin(&key(2)), Begin::New));
        drc.finish(key(2), None);
        assert!(matches!(drc.begin(&key(2)), Begin::New), "idempotent calls run again");
    }

    #[test]
    fn other_arguments_or_clients_are_other_calls() {
        let drc = Drc::new(100, Duration::from_secs(60));
        assert!(matches!(drc.begin(&key(1)), Begin::New));
        drc.finish(key(1), Some(b"r"));
        let other_args = Key::new("10.0.0.1".parse().unwrap(), 1, 100003, 3, 12, b"other");
        let other_client = Key::new("10.0.0.2".parse().unwrap(), 1, 100003, 3, 12, b"args");
        assert!(matches!(drc.begin(&other_args), Begin::New));
        assert!(matches!(drc.begin(&other_client), Begin::New));
    }

    #[test]
    fn bounded_by_size_and_age() {
        let drc = Drc::new(SHARDS * 4, Duration::from_secs(60));
        for xid in 0..10_000 {
            assert!(matches!(drc.begin(&key(xid)), Begin::New));
            drc.finish(key(xid), Some(b"r"));
        }
        assert!(drc.cached() <= SHARDS * 4, "{} cached", drc.cached());
        assert!(matches!(drc.begin(&key(9_999)), Begin::Replay(_)), "the newest stay");
        let drc = Drc::new(1000, Duration::from_millis(1));
        drc.begin(&key(1));
        drc.finish(key(1), Some(b"r"));
        std::thread::sleep(Duration::from_millis(5));
        for xid in 100..200 {
            drc.begin(&key(xid));
            drc.finish(key(xid), Some(b"r"));
        }
        assert!(matches!(drc.begin(&key(1)), Begin::New), "expired");
    }
}
