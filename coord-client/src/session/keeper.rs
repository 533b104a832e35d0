//! The task that keeps one session's lease alive: one keep-alive stream at a
//! time, a keep-alive every TTL/3, and on any failure the next member after a
//! backoff. It publishes the [`Tracker`]'s state and every answered keep-alive
//! on watch channels, and ends when the session expires, is closed, or its last
//! handle is dropped.

use std::convert::Infallible;
use std::time::Duration;

use tokio::sync::{oneshot, watch};
use tokio::time::{Instant, sleep_until};

use crate::lease::{KeepAlive, LeaseKeepAlive};
use crate::retry::Backoff;
use crate::session::SessionState;
use crate::session::tracker::Tracker;
use crate::{Client, Error, ErrorInfo, Lease};

/// Why the keeper stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Exit {
    /// The lease is gone, or its local deadline passed.
    Expired,
    /// The session was closed, or every handle of it was dropped.
    Stopped,
}

/// The keep-alive loop of one session.
#[derive(Debug)]
pub(crate) struct Keeper {
    pub(crate) client: Client,
    pub(crate) lease: Lease,
    pub(crate) tracker: Tracker,
    pub(crate) states: watch::Sender<SessionState>,
    pub(crate) renewals: watch::Sender<Option<KeepAlive>>,
    /// Fires on close; closed (sender dropped) when the session is dropped.
    pub(crate) stop: oneshot::Receiver<()>,
    /// Index of the member to try next.
    pub(crate) member: usize,
    /// When the next keep-alive is due.
    pub(crate) next_send: Instant,
}

impl Keeper {
    /// Keeps the lease alive until the session ends, then marks it expired.
    pub(crate) async fn run(mut self) {
        let exit = match self.keep().await {
            Err(exit) => exit,
            Ok(never) => match never {},
        };
        self.tracker.on_gone();
        self.publish();
        tracing::debug!(lease = self.lease.id, ?exit, "session keeper stopped");
    }

    /// How long one keep-alive (or opening a stream) may take before the
    /// member is given up: a keep-alive period, at most the request timeout.
    fn answer_timeout(&self) -> Duration {
        (self.lease.ttl / 3).min(self.client.inner.timeouts.request)
    }

    async fn keep(&mut self) -> Result<Infallible, Exit> {
        let mut backoff = Backoff::default();
        let timeout = self.answer_timeout();
        loop {
            let members = &self.client.inner.members;
            let member = members[self.member % members.len()].clone();
            match self.guarded(LeaseKeepAlive::open(&member, timeout)).await? {
                Ok(mut stream) => {
                    let err = self.keep_on(&mut stream, &mut backoff).await?;
                    self.failed(&member.name, &err);
                }
                Err(err) => self.failed(&member.name, &err),
            }
            self.member += 1;
            let pause = backoff.next_delay();
            self.guarded(tokio::time::sleep(pause)).await?;
        }
    }

    /// Keeps alive over one stream until a keep-alive fails; returns why.
    async fn keep_on(
        &mut self,
        stream: &mut LeaseKeepAlive,
        backoff: &mut Backoff,
    ) -> Result<Error, Exit> {
        let id = self.lease.id;
        let timeout = self.answer_timeout();
        loop {
            self.guarded(sleep_until(self.next_send)).await?;
            let sent = Instant::now();
            let answer = tokio::time::timeout(timeout, stream.keep_alive(id));
            let failure = match self.guarded(answer).await? {
                Ok(Ok(alive)) => {
                    self.tracker.on_alive(Instant::now(), sent, alive.ttl);
                    self.publish();
                    self.renewals.send_replace(Some(alive));
                    *backoff = Backoff::default();
                    self.next_send = sent + self.lease.ttl / 3;
                    continue;
                }
                Ok(Err(Error::LeaseNotFound(_))) => return Err(Exit::Expired),
                Ok(Err(err)) => err,
                Err(_) => Error::Timeout(ErrorInfo::from_message(format!(
                    "no keep-alive answer within {timeout:?}"
                ))),
            };
            // The next stream sends at once.
            self.next_send = Instant::now();
            return Ok(failure);
        }
    }

    /// Runs `work` while watching the session's clock and its stop signal:
    /// the state is published as time passes, and the keeper stops at once
    /// when the session expires or is closed or dropped.
    async fn guarded<T>(&mut self, work: impl Future<Output = T>) -> Result<T, Exit> {
        tokio::pin!(work);
        loop {
            tokio::select! {
                out = &mut work => return Ok(out),
                () = sleep_until(self.tracker.next_check()) => {
                    self.tracker.on_tick(Instant::now());
                    self.publish();
                    if self.tracker.state() == SessionState::Expired {
                        return Err(Exit::Expired);
                    }
                }
                _ = &mut self.stop => return Err(Exit::Stopped),
            }
        }
    }

    fn failed(&mut self, endpoint: &str, err: &Error) {
        tracing::debug!(lease = self.lease.id, endpoint, error = %err, "keep-alive failed; trying the next member");
        self.tracker.on_broken(Instant::now());
        self.publish();
    }

    fn publish(&self) {
        let state = self.tracker.state();
        let changed = self.states.send_if_modified(|current| {
            let changed = *current != state;
            *current = state;
            changed
        });
        if changed {
            tracing::info!(lease = self.lease.id, ?state, "session state");
        }
    }
}
