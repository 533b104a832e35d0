//! Sessions (Curator-like): a lease that the client keeps alive by itself,
//! with its health as a [`SessionState`] that recipes (locks, elections) watch
//! to give up what they hold the moment the session is lost.
//!
//! - `tracker`: the pure state machine (Connected, Suspended, Reconnected, Expired).
//! - `keeper`: the task that sends the keep-alives and fails over.

mod keeper;
mod tracker;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{oneshot, watch};
use tokio::time::Instant;

use crate::{Client, CreateOptions, Created, Error, KeepAlive, Lease};
use keeper::Keeper;
use tracker::Tracker;

/// The health of a [`Session`], as Curator names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SessionState {
    /// Keep-alives are answered.
    Connected,
    /// No keep-alive was answered for about TTL/2, or the keep-alive stream
    /// broke. The lease may well be alive; what it protects (a lock) should be
    /// used with care until the state changes again.
    Suspended,
    /// Keep-alives are answered again after [`Suspended`](Self::Suspended); as
    /// good as [`Connected`](Self::Connected).
    Reconnected,
    /// The lease is gone: the server said so, or a whole TTL passed without an
    /// answered keep-alive, or the session was closed. Final: its ephemeral
    /// nodes are (or will shortly be) deleted.
    Expired,
}

/// A lease kept alive by a background task: every TTL/3 over one keep-alive
/// stream, moving to the next member when the stream breaks or a member does
/// not answer. Clones share the session; many sessions may share one
/// [`Client`].
///
/// When the last clone is dropped, the task stops keeping the lease alive: it
/// then expires after its TTL, like the session of a process that died.
/// [`close`](Self::close) also revokes it, deleting its ephemeral nodes at once.
#[derive(Debug, Clone)]
pub struct Session {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: Client,
    lease: Lease,
    states: watch::Receiver<SessionState>,
    renewals: watch::Receiver<Option<KeepAlive>>,
    /// Taken by `close`; dropped with the last handle, which stops the keeper.
    stop: Mutex<Option<oneshot::Sender<()>>>,
}

impl Client {
    /// Grants a lease of `ttl` and keeps it alive as a session.
    pub async fn session(&self, ttl: Duration) -> Result<Session, Error> {
        let sent = Instant::now();
        let lease = self.lease_grant(ttl).await?;
        // The grant counts as the first keep-alive.
        let first = sent + lease.ttl / 3;
        Ok(self.spawn_session(lease, sent, lease.ttl, first))
    }

    /// Keeps an existing lease alive as a session (e.g. one granted by another
    /// process that handed it over); `LeaseNotFound` if it is gone.
    pub async fn session_from_lease(&self, id: u64) -> Result<Session, Error> {
        let sent = Instant::now();
        let ttl = self.lease_time_to_live(id).await?;
        let lease = Lease {
            id,
            ttl: ttl.granted_ttl,
        };
        Ok(self.spawn_session(lease, sent, ttl.remaining_ttl, Instant::now()))
    }

    /// Creates an ephemeral node owned by `session`: it is deleted when the
    /// session ends (closed, dropped or expired).
    pub async fn create_ephemeral(
        &self,
        path: &str,
        data: impl Into<Bytes>,
        session: &Session,
    ) -> Result<Created, Error> {
        self.create(path, data, CreateOptions::ephemeral(session.id()))
            .await
    }

    /// Starts the keeper of `lease`, which had `remaining` time to live as of
    /// `sent`; its first keep-alive is due at `first`.
    fn spawn_session(
        &self,
        lease: Lease,
        sent: Instant,
        remaining: Duration,
        first: Instant,
    ) -> Session {
        let (states_tx, states) = watch::channel(SessionState::Connected);
        let (stop_tx, stop) = oneshot::channel();
        let (renewals_tx, renewals) = watch::channel(None);
        let keeper = Keeper {
            client: self.clone(),
            lease,
            tracker: Tracker::new(lease.ttl, sent, remaining),
            states: states_tx,
            renewals: renewals_tx,
            stop,
            member: self.inner.current_index(),
            next_send: first,
        };
        tokio::spawn(keeper.run());
        tracing::debug!(lease = lease.id, ttl = ?lease.ttl, "session started");
        Session {
            shared: Arc::new(Shared {
                client: self.clone(),
                lease,
                states,
                renewals,
                stop: Mutex::new(Some(stop_tx)),
            }),
        }
    }
}

impl Session {
    /// The lease id: what ephemeral nodes of this session carry as
    /// `ephemeral_owner`.
    pub fn id(&self) -> u64 {
        self.shared.lease.id
    }

    /// The lease's TTL.
    pub fn ttl(&self) -> Duration {
        self.shared.lease.ttl
    }

    /// The lease.
    pub fn lease(&self) -> Lease {
        self.shared.lease
    }

    /// The current state.
    pub fn state(&self) -> SessionState {
        *self.shared.states.borrow()
    }

    /// A receiver of every state change, for code that must react to
    /// `Suspended` as well as to `Expired`.
    pub fn states(&self) -> watch::Receiver<SessionState> {
        self.shared.states.clone()
    }

    /// The last answered keep-alive (`None` before the first), for
    /// monitoring: it changes at every renewal, about every TTL/3.
    pub fn renewals(&self) -> watch::Receiver<Option<KeepAlive>> {
        self.shared.renewals.clone()
    }

    /// True once the session is [`Expired`](SessionState::Expired).
    pub fn is_expired(&self) -> bool {
        self.state() == SessionState::Expired
    }

    /// Resolves as soon as the session is lost (expired, revoked or closed):
    /// select on it next to the work a lock or leadership protects.
    pub async fn expired(&self) {
        let mut states = self.shared.states.clone();
        // An error means the keeper is gone, which also ends the session.
        let _ = states.wait_for(|s| *s == SessionState::Expired).await;
    }

    /// Stops keeping the lease alive and revokes it, deleting the session's
    /// ephemeral nodes now. Succeeds if the lease was already gone. Other
    /// clones of the session see it [`Expired`](SessionState::Expired).
    pub async fn close(self) -> Result<(), Error> {
        let stop = self
            .shared
            .stop
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some(stop) = stop {
            let _ = stop.send(());
        }
        match self.shared.client.lease_revoke(self.id()).await {
            Ok(()) | Err(Error::LeaseNotFound(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}
