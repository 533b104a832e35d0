//! Sequence numbers of writes, for the server's exactly-once de-duplication
//! (Raft dissertation §6.3).
//!
//! Every logical write call takes a [`WriteTicket`]: a fresh sequence number that
//! all retries of the call reuse, so the server answers a retry from its record
//! instead of applying the write twice. The ticket also tells the server the
//! lowest sequence number still in flight, below which it may forget results.
//!
//! A new write waits while it would be [`WRITE_WINDOW`] or more numbers ahead
//! of the oldest write in flight: the server keeps that many results above the
//! oldest, so every write of this client that may still be retried keeps its
//! result. (Without the wait, a thousand writes in flight behind a slow one
//! could see a retry refused as forgotten although it had been applied.)

use std::collections::BTreeSet;
use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::{SystemTime, UNIX_EPOCH};

use coord_proto::WRITE_WINDOW;
use coord_proto::v1::WriteMeta;
use tokio::sync::Notify;

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
    /// Woken when the oldest write in flight completes (the window moves).
    window_moved: Notify,
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
            window_moved: Notify::new(),
        }
    }

    pub(crate) fn client_id(&self) -> u64 {
        self.client_id
    }

    /// Starts a logical write, once it fits in the window. Allocating the
    /// number and marking it in flight happen under one lock, so no other call
    /// can compute a first incomplete sequence number above a number that is
    /// about to be sent.
    pub(crate) async fn begin(&self) -> WriteTicket<'_> {
        loop {
            // Registered before the check, so a move in between is not missed.
            let moved = self.window_moved.notified();
            {
                let mut state = self.lock();
                let oldest = state.in_flight.first().copied().unwrap_or(state.next_seq);
                if state.next_seq - oldest < WRITE_WINDOW {
                    let seq = state.next_seq;
                    state.next_seq += 1;
                    state.in_flight.insert(seq);
                    return WriteTicket { writes: self, seq };
                }
            }
            moved.await;
        }
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
        let mut state = self.writes.lock();
        let was_oldest = state.in_flight.first() == Some(&self.seq);
        state.in_flight.remove(&self.seq);
        drop(state);
        if was_oldest {
            self.writes.window_moved.notify_waiters();
        }
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

    #[tokio::test]
    async fn a_lone_write_is_its_own_first_incomplete() {
        let writes = Writes::new(7);
        let t = writes.begin().await;
        let meta = t.meta();
        assert_eq!(
            (meta.client_id, meta.seq, meta.first_incomplete_seq),
            (7, 1, 1)
        );
        // A retry sends the same sequence number.
        assert_eq!(t.meta(), meta);
        drop(t);
        let meta = writes.begin().await.meta();
        assert_eq!((meta.seq, meta.first_incomplete_seq), (2, 2));
    }

    #[tokio::test]
    async fn first_incomplete_is_the_oldest_write_in_flight() {
        let writes = Writes::new(1);
        let one = writes.begin().await;
        let two = writes.begin().await;
        let three = writes.begin().await;
        assert_eq!(three.meta().first_incomplete_seq, 1);
        drop(two);
        assert_eq!(three.meta().first_incomplete_seq, 1);
        drop(one);
        assert_eq!(three.meta().first_incomplete_seq, 3);
        let four = writes.begin().await;
        assert_eq!((four.meta().seq, four.meta().first_incomplete_seq), (4, 3));
        drop(three);
        assert_eq!(four.meta().first_incomplete_seq, 4);
    }

    #[tokio::test]
    async fn a_write_waits_at_the_edge_of_the_window() {
        let writes = Writes::new(1);
        let oldest = writes.begin().await;
        let mut rest = Vec::new();
        for _ in 1..WRITE_WINDOW {
            rest.push(writes.begin().await);
        }
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), writes.begin());
        assert!(waiting.await.is_err(), "the window is full");
        drop(rest.pop());
        let waiting = tokio::time::timeout(std::time::Duration::from_millis(50), writes.begin());
        assert!(waiting.await.is_err(), "only the oldest moves the window");
        let next = async {
            let ticket = writes.begin().await;
            ticket.meta()
        };
        let release = async {
            tokio::task::yield_now().await;
            drop(oldest);
        };
        let (meta, ()) = tokio::join!(next, release);
        assert_eq!(meta.seq, WRITE_WINDOW + 1);
        assert_eq!(meta.first_incomplete_seq, 2);
        assert!(meta.seq - meta.first_incomplete_seq < WRITE_WINDOW);
    }
}
