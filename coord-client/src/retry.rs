//! The retry loop every call goes through: one attempt on the current member,
//! and on a retryable failure the next member after a growing pause, until the
//! call's retry budget is spent.

use std::time::{Duration, Instant};

use coord_proto::Unary;

use crate::client::Inner;
use crate::endpoint::Member;
use crate::{Error, ErrorInfo};

/// Pause before the first retry.
const BACKOFF_FIRST: Duration = Duration::from_millis(50);
/// Longest pause between retries.
const BACKOFF_MAX: Duration = Duration::from_secs(1);

/// Exponential backoff: 50 ms, doubling, capped at 1 s.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            next: BACKOFF_FIRST,
        }
    }
}

impl Backoff {
    /// The pause before the next retry.
    pub(crate) fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = (self.next * 2).min(BACKOFF_MAX);
        delay
    }
}

impl Inner {
    /// Sends `request` until it succeeds, fails for good, or the retry budget
    /// is spent (then the last error is returned).
    pub(crate) async fn call<Req: Unary>(&self, request: Req) -> Result<Req::Response, Error> {
        let rpc = Req::NAME;
        let started = Instant::now();
        let mut backoff = Backoff::default();
        loop {
            let index =
                self.current.load(std::sync::atomic::Ordering::Relaxed) % self.members.len();
            let member = &self.members[index];
            let err = match self.attempt(member, &request).await {
                Ok(response) => return Ok(response),
                Err(err) => err,
            };
            let delay = backoff.next_delay();
            if !err.is_retryable() || started.elapsed() + delay >= self.timeouts.retry {
                tracing::debug!(rpc, endpoint = %member.name, error = %err, "call failed");
                return Err(err);
            }
            self.advance(index);
            tracing::debug!(
                rpc,
                endpoint = %member.name,
                error = %err,
                delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                "retrying on the next endpoint"
            );
            tokio::time::sleep(delay).await;
        }
    }

    /// One attempt against `member`, bounded by the request timeout.
    pub(crate) async fn attempt<Req: Unary>(
        &self,
        member: &Member,
        request: &Req,
    ) -> Result<Req::Response, Error> {
        let timeout = self.timeouts.request;
        match tokio::time::timeout(timeout, member.unary.call(request)).await {
            Ok(Ok(response)) => Ok(response),
            Ok(Err(status)) => Err(Error::from_status(&status, &member.name)),
            Err(_) => Err(Error::Timeout(ErrorInfo::from_message(format!(
                "{}: no answer within {timeout:?}",
                member.name
            )))),
        }
    }

    /// Moves the current member past `from`, unless a concurrent call already did.
    fn advance(&self, from: usize) {
        let next = (from + 1) % self.members.len();
        let _ = self.current.compare_exchange(
            from,
            next,
            std::sync::atomic::Ordering::Relaxed,
            std::sync::atomic::Ordering::Relaxed,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_a_second() {
        let mut b = Backoff::default();
        let delays: Vec<u128> = (0..8).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
    }
}
