//! Writes waiting for their entry to be applied, keyed by request id (etcd's
//! `pkg/wait`). A request id travels inside the entry, so the member that
//! proposed it recognises its own entries whatever the leader did with them;
//! position in the log is never used to match (it changes with leaders).

use std::collections::HashMap;
use std::time::Instant;

use tokio::sync::oneshot;

use super::handle::{Applied, DriverError};

type Reply = oneshot::Sender<Result<Applied, DriverError>>;

#[derive(Debug)]
struct Waiter {
    reply: Reply,
    deadline: Instant,
    term: u64,
}

/// Pending writes of this member.
#[derive(Debug, Default)]
pub struct Waiters {
    pending: HashMap<u64, Waiter>,
}

impl Waiters {
    /// Registers a write proposed in `term`, to be answered by `deadline`.
    pub fn insert(&mut self, request_id: u64, reply: Reply, deadline: Instant, term: u64) {
        self.pending.insert(
            request_id,
            Waiter {
                reply,
                deadline,
                term,
            },
        );
    }

    /// Answers the write whose entry was applied, if it is ours and still waiting.
    pub fn complete(&mut self, request_id: u64, applied: Applied) {
        if let Some(w) = self.pending.remove(&request_id) {
            let _ = w.reply.send(Ok(applied));
        }
    }

    /// Fails writes past their deadline: their outcome is unknown.
    pub fn expire(&mut self, now: Instant) {
        self.fail_where(
            |w| w.deadline <= now,
            || {
                DriverError::Timeout(
                    "the write was not applied in time; its outcome is unknown".into(),
                )
            },
        );
    }

    /// Fails writes proposed before `term`: a new leader may have dropped them.
    /// The client retries with the same sequence number, so a write that did
    /// commit is answered from the de-duplication table.
    pub fn leader_changed(&mut self, term: u64) {
        self.fail_where(
            |w| w.term < term,
            || DriverError::Timeout("the leader changed; the write's outcome is unknown".into()),
        );
    }

    /// Fails every pending write.
    pub fn fail_all(&mut self, err: DriverError) {
        self.fail_where(|_| true, || err.clone());
    }

    /// Number of writes waiting.
    pub fn len(&self) -> usize {
        self.pending.len()
    }

    /// True when no write is waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    fn fail_where(&mut self, pred: impl Fn(&Waiter) -> bool, err: impl Fn() -> DriverError) {
        let ids: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, w)| pred(w))
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            if let Some(w) = self.pending.remove(&id) {
                let _ = w.reply.send(Err(err()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn applied(index: u64) -> Applied {
        Applied {
            index,
            result: Default::default(),
        }
    }

    #[test]
    fn completes_by_request_id() {
        let mut w = Waiters::default();
        let (tx, mut rx) = oneshot::channel();
        let now = Instant::now();
        w.insert(7, tx, now + Duration::from_secs(1), 1);
        w.complete(8, applied(3));
        assert!(rx.try_recv().is_err(), "another id must not answer");
        w.complete(7, applied(4));
        assert_eq!(rx.try_recv().expect("answered"), Ok(applied(4)));
        assert!(w.is_empty());
    }

    #[test]
    fn expires_and_fails_on_leader_change() {
        let mut w = Waiters::default();
        let now = Instant::now();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        let (tx3, mut rx3) = oneshot::channel();
        w.insert(1, tx1, now, 1);
        w.insert(2, tx2, now + Duration::from_secs(10), 1);
        w.insert(3, tx3, now + Duration::from_secs(10), 2);
        w.expire(now);
        assert!(matches!(rx1.try_recv(), Ok(Err(DriverError::Timeout(_)))));
        w.leader_changed(2);
        assert!(matches!(rx2.try_recv(), Ok(Err(DriverError::Timeout(_)))));
        assert!(rx3.try_recv().is_err());
        assert_eq!(w.len(), 1);
    }
}
