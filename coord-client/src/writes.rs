//! Sequence numbers of writes, for the server's exactly-once de-duplication
//! (Raft dissertation §6.3).
//!
//! Every logical write call takes a [`WriteTicket`]: a fresh sequence number that
//! all retries of the call reuse, so the server answers a retry from its record
//! instead of applying the write twice. The ticket also tells the server the
//! lowest sequence number still in flight, below which it may forget results.

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use coord_proto::v1::WriteMeta;

/// A random non-zero client id. `RandomState` is seeded from the OS per process;
/// mixing in the pid, the time and a counter keeps ids of one process distinct
/// too, without adding a random-number dependency.
pub(crate) fn random_client_id() -> u64 {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let mut hasher = RandomState::new().build_hasher();
    hasher.write_u32(std::process::id());
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    hasher.write_u128(now.as_nanos());
    hasher.write_u64(COUNTER.fetch_add(1, Ordering::Relaxed));
    hasher.finish().max(1)
}

#[derive(Debug)]
struct State {
    next_seq: u64,
    in_flight: BTreeSet<u64>,
}

/// The sequence numbers of one client.
#[derive(Debug)]
pub(crate) struct Writes {
    client_id: u64,
    state: Mutex<State>,
}

impl Writes {
    /// Sequences for `client_id`, starting at 1.
    pub(crate) fn new(client_id: u64) -> Self {
        Self {
            client_id,
            state: Mutex::new(State {
                next_seq: 1,
                in_flight: BTreeSet::new(),
            }),
        }
    }

    pub(crate) fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Starts a logical write. Allocating the number and marking it in flight
    /// happen under one lock, so no other call can compute a first incomplete
    /// sequence number above a number that is about to be sent.
    pub(crate) fn begin(&self) -> WriteTicket<'_> {
        let mut state = self.lock();
        let seq = state.next_seq;
        state.next_seq += 1;
        state.in_flight.insert(seq);
        WriteTicket { writes: self, seq }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement, so a panic elsewhere
        // while holding the lock leaves nothing half-done.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// One logical write in flight; dropping it (success, failure or cancellation)
/// marks it complete.
#[derive(Debug)]
pub(crate) struct WriteTicket<'a> {
    writes: &'a Writes,
    seq: u64,
}

impl WriteTicket<'_> {
    /// The meta to send with the next attempt of this write.
    pub(crate) fn meta(&self) -> WriteMeta {
        let first_incomplete_seq = self
            .writes
            .lock()
            .in_flight
            .first()
            .copied()
            .unwrap_or(self.seq);
        WriteMeta {
            client_id: self.writes.client_id,
            seq: self.seq,
            first_incomplete_seq,
        }
    }
}

impl Drop for WriteTicket<'_> {
    fn drop(&mut self) {
        self.writes.lock().in_flight.remove(&self.seq);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_ids_are_non_zero_and_distinct() {
        let a = random_client_id();
        let b = random_client_id();
        assert_ne!(a, 0);
        assert_ne!(a, b);
    }

    #[test]
    fn a_lone_write_is_its_own_first_incomplete() {
        let writes = Writes::new(7);
        let t = writes.begin();
        let meta = t.meta();
        assert_eq!(
            (meta.client_id, meta.seq, meta.first_incomplete_seq),
            (7, 1, 1)
        );
        // A retry sends the same sequence number.
        assert_eq!(t.meta(), meta);
        drop(t);
        let meta = writes.begin().meta();
        assert_eq!((meta.seq, meta.first_incomplete_seq), (2, 2));
    }

    #[test]
    fn first_incomplete_is_the_oldest_write_in_flight() {
        let writes = Writes::new(1);
        let one = writes.begin();
        let two = writes.begin();
        let three = writes.begin();
        assert_eq!(three.meta().first_incomplete_seq, 1);
        drop(two);
        assert_eq!(three.meta().first_incomplete_seq, 1);
        drop(one);
        assert_eq!(three.meta().first_incomplete_seq, 3);
        let four = writes.begin();
        assert_eq!((four.meta().seq, four.meta().first_incomplete_seq), (4, 3));
        drop(three);
        assert_eq!(four.meta().first_incomplete_seq, 4);
    }
}
