//! Linearizable reads, batched: every read that arrives while a ReadIndex round
//! is being prepared shares that round. raft-rs silently drops a ReadIndex when
//! there is no leader or the leader has not yet committed in its term, so rounds
//! that go unanswered are re-issued until the read's deadline.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use tokio::sync::oneshot;

use super::handle::DriverError;

type Reply = oneshot::Sender<Result<u64, DriverError>>;

#[derive(Debug)]
struct Read {
    reply: Reply,
    deadline: Instant,
}

#[derive(Debug)]
struct Round {
    reads: Vec<Read>,
    issued: Instant,
}

/// Reads waiting for a read index.
#[derive(Debug)]
pub struct ReadQueue {
    waiting: Vec<Read>,
    rounds: HashMap<u64, Round>,
    next_ctx: u64,
}

impl ReadQueue {
    /// An empty queue; round contexts start at `first_ctx` (random per process,
    /// so answers to a previous incarnation's rounds are not mistaken for ours).
    pub fn new(first_ctx: u64) -> Self {
        Self {
            waiting: Vec::new(),
            rounds: HashMap::new(),
            next_ctx: first_ctx,
        }
    }

    /// Queues a read for the next round.
    pub fn push(&mut self, reply: Reply, deadline: Instant) {
        self.waiting.push(Read { reply, deadline });
    }

    /// Starts a round for every queued read; returns its context for
    /// `RawNode::read_index`, or `None` when no read is queued.
    pub fn start_round(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.waiting.is_empty() {
            return None;
        }
        let reads = std::mem::take(&mut self.waiting);
        Some(self.open(reads, now))
    }

    fn open(&mut self, reads: Vec<Read>, now: Instant) -> Vec<u8> {
        let ctx = self.next_ctx;
        self.next_ctx = self.next_ctx.wrapping_add(1);
        self.rounds.insert(ctx, Round { reads, issued: now });
        ctx.to_be_bytes().to_vec()
    }

    /// Answers the round with this context: reads are safe once `index` is applied.
    pub fn complete(&mut self, ctx: &[u8], index: u64) {
        let Ok(bytes) = <[u8; 8]>::try_from(ctx) else {
            return;
        };
        if let Some(round) = self.rounds.remove(&u64::from_be_bytes(bytes)) {
            for read in round.reads {
                let _ = read.reply.send(Ok(index));
            }
        }
    }

    /// Fails reads past their deadline and re-opens rounds unanswered for
    /// `retry_after`; returns the contexts of the re-opened rounds.
    pub fn retry(&mut self, now: Instant, retry_after: Duration) -> Vec<Vec<u8>> {
        let stale: Vec<u64> = self
            .rounds
            .iter()
            .filter(|(_, r)| now.duration_since(r.issued) >= retry_after)
            .map(|(ctx, _)| *ctx)
            .collect();
        let mut reopened = Vec::new();
        for ctx in stale {
            let Some(round) = self.rounds.remove(&ctx) else {
                continue;
            };
            let (expired, alive): (Vec<_>, Vec<_>) =
                round.reads.into_iter().partition(|r| r.deadline <= now);
            for read in expired {
                let _ = read.reply.send(Err(DriverError::Unavailable(
                    "no leader confirmed a read index in time".into(),
                )));
            }
            if !alive.is_empty() {
                reopened.push(self.open(alive, now));
            }
        }
        reopened
    }

    /// Fails every read (shutdown).
    pub fn fail_all(&mut self, err: &DriverError) {
        let rounds = std::mem::take(&mut self.rounds);
        let reads = std::mem::take(&mut self.waiting)
            .into_iter()
            .chain(rounds.into_values().flat_map(|r| r.reads));
        for read in reads {
            let _ = read.reply.send(Err(err.clone()));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_share_a_round() {
        let mut q = ReadQueue::new(100);
        let now = Instant::now();
        let (tx1, mut rx1) = oneshot::channel();
        let (tx2, mut rx2) = oneshot::channel();
        q.push(tx1, now + Duration::from_secs(5));
        q.push(tx2, now + Duration::from_secs(5));
        let ctx = q.start_round(now).expect("a round");
        assert!(q.start_round(now).is_none(), "nothing left to batch");
        q.complete(&ctx, 42);
        assert_eq!(rx1.try_recv().expect("answered"), Ok(42));
        assert_eq!(rx2.try_recv().expect("answered"), Ok(42));
    }

    #[test]
    fn unanswered_rounds_are_retried_then_failed() {
        let mut q = ReadQueue::new(0);
        let now = Instant::now();
        let (tx, mut rx) = oneshot::channel();
        q.push(tx, now + Duration::from_millis(300));
        let first = q.start_round(now).expect("round");
        assert!(
            q.retry(now + Duration::from_millis(50), Duration::from_millis(100))
                .is_empty()
        );
        let again = q.retry(now + Duration::from_millis(150), Duration::from_millis(100));
        assert_eq!(again.len(), 1);
        assert_ne!(again[0], first);
        q.complete(&first, 1);
        assert!(rx.try_recv().is_err(), "the old round's context is retired");
        assert!(
            q.retry(now + Duration::from_millis(400), Duration::from_millis(100))
                .is_empty()
        );
        assert!(matches!(
            rx.try_recv(),
            Ok(Err(DriverError::Unavailable(_)))
        ));
    }
}
