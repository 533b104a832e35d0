//! [`LockGuard`]: what holding a lock, a semaphore permit or leadership
//! means, with the fencing token and a live [`HoldState`].
//!
//! A task per guard follows the session's state and watches the guard's
//! node, so the holder learns at once that it lost the lock: when the session
//! expires (the client declares that no later than the leader revokes the
//! lease) or the node is deleted. Its writes stay safe meanwhile through
//! [`LockGuard::fenced`]: the server refuses them once the node is gone.

use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::recipes::lock_nodes::remove;
use crate::retry::Backoff;
use crate::{Client, Error, EventType, Op, Session, SessionState};

/// What the holder of a [`LockGuard`] may assume right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HoldState {
    /// Held: the session's keep-alives are answered and the node exists.
    Held,
    /// The session is [`Suspended`](SessionState::Suspended): keep-alives
    /// are not answered. The node may well still exist, but the holder cannot
    /// know; it should pause what the lock protects until the state is `Held`
    /// again or `Lost` (fenced writes stay safe either way).
    Suspended,
    /// Final: the session expired or the node was deleted, so another
    /// contender may hold the lock now. Fenced writes are refused.
    Lost,
}

/// Proof of holding a lock ([`Mutex`](super::mutex::Mutex),
/// [`RwLock`](super::rwlock::RwLock)), a semaphore permit
/// ([`Semaphore`](super::semaphore::Semaphore)) or, inside a
/// [`Leadership`](super::election::Leadership), leadership.
///
/// It names the holder's node and its **fencing token**, the node's `czxid`:
/// successive holders of a lock get strictly increasing tokens. Writes that
/// the lock protects should go through [`fenced`](Self::fenced), which makes
/// a `multi` conditional on the node still existing, so a holder that was
/// paused past its session's TTL cannot overwrite its successor's work.
///
/// [`unlock`](Self::unlock) deletes the node. A guard dropped without it
/// deletes the node from a background task (inside a tokio runtime; else the
/// node goes when the session ends).
#[derive(Debug)]
#[must_use = "the lock is released when the guard is dropped"]
pub struct LockGuard {
    client: Client,
    session: Session,
    node: String,
    token: u64,
    states: watch::Receiver<HoldState>,
    monitor: JoinHandle<()>,
    released: bool,
}

impl LockGuard {
    /// The guard of `node` (created with zxid `token`), with its monitor task.
    pub(super) fn start(client: &Client, session: &Session, node: String, token: u64) -> Self {
        let initial = state_of(session.state()).unwrap_or(HoldState::Lost);
        let (publish, states) = watch::channel(initial);
        let monitor = tokio::spawn(monitor(
            client.clone(),
            session.clone(),
            node.clone(),
            publish,
        ));
        Self {
            client: client.clone(),
            session: session.clone(),
            node,
            token,
            states,
            monitor,
            released: false,
        }
    }

    /// The fencing token: the `czxid` of the node, which increases from
    /// one holder of a lock to the next. Give it to a resource that remembers
    /// the highest token it has seen and refuses lower ones.
    pub fn token(&self) -> u64 {
        self.token
    }

    /// The path of the holder's node (e.g. `/locks/db/lock-0000000007`).
    pub fn node(&self) -> &str {
        &self.node
    }

    /// The `check` op of the node: prefixed to a `multi`, it makes the multi
    /// fail (with `NoNode` at op 0) once the node is gone.
    pub fn check(&self) -> Op {
        Op::check(self.node.clone(), -1)
    }

    /// `ops` behind [`check`](Self::check): a multi of these is applied only
    /// while this guard's node exists, i.e. while the lock is held. The first
    /// result is the check's.
    pub fn fenced(&self, ops: impl IntoIterator<Item = Op>) -> Vec<Op> {
        std::iter::once(self.check()).chain(ops).collect()
    }

    /// True if `err`, from a multi built by [`fenced`](Self::fenced), means
    /// the fence refused it: the lock was lost and nothing was applied.
    pub fn fence_failed(&self, err: &Error) -> bool {
        matches!(err, Error::NoNode(_)) && err.op_index() == Some(0)
    }

    /// The current state.
    pub fn state(&self) -> HoldState {
        *self.states.borrow()
    }

    /// A receiver of every state change, to pause on `Suspended` and stop on
    /// `Lost` (select on `changed()` next to the protected work).
    pub fn states(&self) -> watch::Receiver<HoldState> {
        self.states.clone()
    }

    /// True once the lock is [`Lost`](HoldState::Lost).
    pub fn is_lost(&self) -> bool {
        self.state() == HoldState::Lost
    }

    /// Resolves as soon as the lock is lost (the session expired or the node
    /// was deleted): select on it next to the work the lock protects.
    pub async fn lost(&self) {
        let mut states = self.states.clone();
        // An error means the monitor ended, which it does only after `Lost`.
        let _ = states.wait_for(|s| *s == HoldState::Lost).await;
    }

    /// Releases: deletes exactly this guard's node (never a successor's:
    /// sequential names are never reused). Succeeds if the node is already
    /// gone (a lost lock); retries until the node is deleted or the session
    /// is lost.
    pub async fn unlock(mut self) -> Result<(), Error> {
        self.released = true;
        self.monitor.abort();
        remove(&self.client, &self.session, &self.node).await
    }
}

impl Drop for LockGuard {
    fn drop(&mut self) {
        self.monitor.abort();
        if self.released {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // No runtime: the node goes with the session.
        };
        let (client, session) = (self.client.clone(), self.session.clone());
        let node = std::mem::take(&mut self.node);
        runtime.spawn(async move {
            if let Err(err) = remove(&client, &session, &node).await {
                tracing::warn!(node, error = %err, "could not release a dropped lock guard");
            }
        });
    }
}

/// The hold state a session state implies; `None` once it expired.
fn state_of(session: SessionState) -> Option<HoldState> {
    match session {
        SessionState::Connected | SessionState::Reconnected => Some(HoldState::Held),
        SessionState::Suspended => Some(HoldState::Suspended),
        SessionState::Expired => None,
    }
}

/// Publishes the guard's state until it is lost.
async fn monitor(
    client: Client,
    session: Session,
    node: String,
    publish: watch::Sender<HoldState>,
) {
    let reason = tokio::select! {
        () = follow_session(session.states(), &publish) => "the session expired",
        () = deleted(&client, &node) => "the node was deleted",
    };
    tracing::warn!(node, reason, "lock lost");
    publish.send_replace(HoldState::Lost);
}

/// Mirrors the session's state; returns when it expires.
async fn follow_session(
    mut states: watch::Receiver<SessionState>,
    publish: &watch::Sender<HoldState>,
) {
    loop {
        let Some(state) = state_of(*states.borrow_and_update()) else {
            return;
        };
        publish.send_if_modified(|current| std::mem::replace(current, state) != state);
        if states.changed().await.is_err() {
            return; // The keeper is gone: the session ended.
        }
    }
}

/// Returns once `node` is deleted (watching it, and reading it again after
/// a watch failure). The read is serializable while it shows the node (a
/// member that has applied the node's creation fires the watch when it
/// applies its deletion), which saves the holder a ReadIndex round per
/// acquisition; a member that does not show it may not have applied the
/// creation yet, so "gone" is confirmed linearizably.
async fn deleted(client: &Client, node: &str) {
    let local = client.serializable();
    let mut backoff = Backoff::default();
    loop {
        let looked = match local.exists_watch(node).await {
            Ok((None, _)) => client.linearizable().exists_watch(node).await,
            other => other,
        };
        match looked {
            Ok((None, _)) => return,
            Ok((Some(_), watch)) => match watch.await {
                Ok(event) if event.kind == EventType::NodeDeleted => return,
                Ok(_) => backoff = Backoff::default(),
                Err(err) => {
                    tracing::debug!(node, error = %err, "lock node watch failed; watching again");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
            },
            Err(err) => {
                tracing::debug!(node, error = %err, "lock node read failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}
