//! The queue behind the lock-like recipes (mutex, read-write lock, semaphore,
//! election): ZooKeeper's sequential-ephemeral recipe.
//!
//! A contender creates `DIR/<prefix><seq>` (ephemeral and sequential, owned by
//! its session), lists DIR, and either holds (its [`Rule`] finds nothing that
//! blocks it) or waits for **one** notification: the deletion of the one node
//! that blocks it (so a release wakes one waiter, not a herd), or, for the
//! semaphore, a change of DIR's children. Then it lists again, unless the
//! node it waited for was the only one in its way: no node can join ahead of
//! it (sequence numbers only grow), so that node's deletion alone means it
//! holds, and a hand-off costs no listing (ZooKeeper's recipe, as Curator
//! runs it, always lists again).
//!
//! Acquisition runs in a spawned task that answers through a oneshot channel
//! ([`in_task`]). A caller that stops waiting (drops the future, or its
//! deadline passes) only closes the channel: the task then removes the node it
//! made, once its create has answered. A create is never abandoned with an
//! unknown outcome (`create_once` resends it with one sequence number), so no
//! forgotten node can sit in the queue, blocking everyone while the session lives.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use tokio::sync::oneshot;
use tokio::time::Instant;

use crate::recipes::guard::LockGuard;
use crate::recipes::lock_nodes::{create_once, in_sequence, internal, remove};
use crate::recipes::support::{child_path, last_segment, make_path};
use crate::retry::Backoff;
use crate::{Client, CreateOptions, Created, Error, ErrorInfo, EventType, Session};

/// What an acquisition reports: the guard, `None` when it did not wait (a
/// try, or the deadline passed), or why it failed.
pub(super) type Outcome = Result<Option<LockGuard>, Error>;

/// Where an acquisition task sends its [`Outcome`]; closed when the caller
/// stopped waiting.
pub(super) type Reply = oneshot::Sender<Outcome>;

/// How long an acquisition waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Wait {
    /// Not at all: hold now or give up (`try_lock`).
    No,
    /// Until acquired, or the session is lost.
    Forever,
    /// Until acquired or this instant passes.
    Until(Instant),
}

/// When a contender holds, and what it waits for when it does not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rule {
    /// Holds when it is first; waits for the node just before it (mutex,
    /// write lock, election).
    Predecessor,
    /// Holds when no node with this prefix precedes it; waits for the last
    /// one that does (a read lock waits for the last earlier writer).
    NoEarlier(&'static str),
    /// Holds when fewer than this many nodes precede it; waits for a change
    /// of the children (semaphore leases: any holder may release first).
    Within(usize),
}

/// What blocks a contender.
#[derive(Debug, PartialEq, Eq)]
enum Blocker<'a> {
    /// This node, by name.
    Node(&'a str),
    /// Some node before it; any deletion may unblock it.
    Children,
}

impl Rule {
    /// What blocks the contender at index `me` of `order` (names sorted by
    /// sequence number), or `None` if it holds.
    fn blocker<'a>(self, order: &[&'a str], me: usize) -> Option<Blocker<'a>> {
        match self {
            Rule::Predecessor => me.checked_sub(1).map(|i| Blocker::Node(order[i])),
            Rule::NoEarlier(prefix) => order[..me]
                .iter()
                .rev()
                .find(|name| name.starts_with(prefix))
                .map(|name| Blocker::Node(name)),
            Rule::Within(n) => (me >= n).then_some(Blocker::Children),
        }
    }

    /// Whether the contender at index `me` of `order` holds once the node
    /// `blocker` (before it in `order`) is deleted, with no other change: no
    /// node can join ahead of it (later nodes get higher sequence numbers),
    /// so the deletion's event alone is then enough to hold, without another
    /// look at the queue.
    fn holds_without(self, order: &[&str], me: usize, blocker: &str) -> bool {
        let Some(at) = order[..me].iter().position(|name| *name == blocker) else {
            return false;
        };
        let mut rest = order.to_vec();
        rest.remove(at);
        self.blocker(&rest, me - 1).is_none()
    }
}

/// One attempt to join a queue.
#[derive(Debug, Clone)]
pub(super) struct Claim {
    /// The node name's prefix, before the sequence number.
    pub(super) prefix: &'static str,
    /// When the node holds.
    pub(super) rule: Rule,
    /// The node's data (an election candidate's value).
    pub(super) data: Bytes,
    /// Whether to wait when blocked (false: a try).
    pub(super) wait: bool,
}

/// Result of one look at the queue.
#[derive(Debug, PartialEq, Eq)]
enum Step {
    Held,
    Blocked,
    Again,
}

/// The contenders' directory, with the session that owns their nodes.
#[derive(Debug, Clone)]
pub(super) struct Queue {
    client: Client,
    session: Session,
    dir: String,
    /// Name prefixes of this queue's nodes; other children are ignored.
    prefixes: &'static [&'static str],
    /// Watch notifications received while waiting, shared by clones.
    wakeups: Arc<AtomicU64>,
}

impl Queue {
    /// The queue in `dir`. Reads are linearizable whatever `client` is, but
    /// for the looks at the queue ([`Queue::list_after_own`], [`Queue::step`]'s
    /// exists read).
    pub(super) fn new(
        client: &Client,
        session: &Session,
        dir: &str,
        prefixes: &'static [&'static str],
    ) -> Self {
        Self {
            client: client.linearizable(),
            session: session.clone(),
            dir: dir.to_owned(),
            prefixes,
            wakeups: Arc::default(),
        }
    }

    /// The directory.
    pub(super) fn dir(&self) -> &str {
        &self.dir
    }

    /// Watch notifications received by waiters so far.
    pub(super) fn wakeups(&self) -> u64 {
        self.wakeups.load(Ordering::Relaxed)
    }

    /// Acquires with `claim` in a task (see the module doc).
    pub(super) async fn acquire(&self, claim: Claim, wait: Wait) -> Outcome {
        let queue = self.clone();
        in_task(wait, move |mut reply| async move {
            let outcome = queue.take(claim, &mut reply).await;
            // If the caller is gone, the guard comes back and its drop releases it.
            let _ = reply.send(outcome);
        })
        .await
    }

    /// Creates a node, waits as `claim` says, and returns its guard; removes
    /// the node unless it holds. Stops when `reply` closes.
    pub(super) async fn take(&self, claim: Claim, reply: &mut Reply) -> Outcome {
        // Not raced with `reply`: the create's answer names the node to remove.
        let created = tokio::select! {
            created = self.create(&claim) => created?,
            () = self.session.expired() => return Err(self.session_lost()),
        };
        let node = created.path;
        let held = tokio::select! {
            held = self.contend(&claim, &node) => held,
            () = self.session.expired() => Err(self.session_lost()),
            () = reply.closed() => Ok(false),
        };
        match held {
            Ok(true) => Ok(Some(LockGuard::start(
                &self.client,
                &self.session,
                node,
                created.stat.czxid,
            ))),
            Ok(false) => remove(&self.client, &self.session, &node)
                .await
                .map(|()| None),
            Err(err) => {
                if let Err(cleanup) = remove(&self.client, &self.session, &node).await {
                    tracing::warn!(node, error = %cleanup, "could not remove a lock node");
                }
                Err(err)
            }
        }
    }

    /// Creates the claim's node, making the directory when it is missing.
    async fn create(&self, claim: &Claim) -> Result<Created, Error> {
        let path = self.child(claim.prefix);
        let options = CreateOptions::ephemeral_sequential(self.session.id());
        let mut attempts = 0;
        loop {
            let created = create_once(&self.client, &self.session, &path, &claim.data, options);
            match created.await {
                // The directory is missing (or was deleted meanwhile).
                Err(Error::NoNode(_)) if attempts < 3 => {
                    attempts += 1;
                    make_path(&self.client, &self.dir).await?;
                }
                other => return other,
            }
        }
    }

    /// Looks at the queue until `node` holds (`true`), or is blocked and the
    /// claim does not wait (`false`). Retryable failures are retried.
    async fn contend(&self, claim: &Claim, node: &str) -> Result<bool, Error> {
        let own = last_segment(node);
        let mut backoff = Backoff::default();
        loop {
            match self.step(claim, own).await {
                Ok(Step::Held) => return Ok(true),
                Ok(Step::Blocked) => return Ok(false),
                Ok(Step::Again) => backoff = Backoff::default(),
                Err(err) if err.is_retryable() || matches!(err, Error::Compacted { .. }) => {
                    tracing::debug!(node, error = %err, "lock queue read failed; retrying");
                    tokio::time::sleep(backoff.next_delay()).await;
                }
                Err(err) => return Err(err),
            }
        }
    }

    /// Lists the queue once and, if blocked and waiting, waits for one
    /// notification: `Held` at once if it is the deletion of the only node
    /// in the way ([`Rule::holds_without`]). The watch starts after the read
    /// it follows (the semaphore's children read, or the exists read of the
    /// blocking node), so no change is missed. The exists read is
    /// serializable, as ZooKeeper's recipe's reads are: a member that shows
    /// the blocking node fires the watch when it applies the node's
    /// deletion, and one that does not show it (deleted, or not yet applied
    /// there) sends the waiter to look again, which is never wrong, only a
    /// loop more.
    async fn step(&self, claim: &Claim, own: &str) -> Result<Step, Error> {
        let (names, children_changed) = match claim.rule {
            Rule::Within(_) => {
                let (names, _, watch) = self.client.children_watch(&self.dir).await?;
                (names, Some(watch))
            }
            Rule::Predecessor | Rule::NoEarlier(_) => (self.list_after_own(own).await?, None),
        };
        let order = in_sequence(&names, self.prefixes);
        let Some(me) = order.iter().position(|name| *name == own) else {
            return Err(Error::NoNode(ErrorInfo {
                message: format!("lock node {} was deleted while waiting", self.child(own)),
                path: Some(self.child(own)),
                ..ErrorInfo::default()
            }));
        };
        let blocker = match claim.rule.blocker(&order, me) {
            None => return Ok(Step::Held),
            Some(_) if !claim.wait => return Ok(Step::Blocked),
            Some(blocker) => blocker,
        };
        let (notified, last_blocker) = match (blocker, children_changed) {
            (Blocker::Children, Some(watch)) => (watch, false),
            (Blocker::Node(name), _) => match self.local().exists_watch(&self.child(name)).await? {
                (Some(_), watch) => (watch, claim.rule.holds_without(&order, me, name)),
                (None, _) => return Ok(Step::Again),
            },
            (Blocker::Children, None) => return Err(internal("no children watch to wait on")),
        };
        let event = notified.await?;
        self.wakeups.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(dir = self.dir, own, kind = ?event.kind, path = event.path, "lock waiter woken");
        if last_blocker && event.kind == EventType::NodeDeleted {
            return Ok(Step::Held);
        }
        Ok(Step::Again)
    }

    /// The queue's children as some member applied them *after* `own` was
    /// created: a serializable list that shows `own` is such a state, and is
    /// enough, since every node that precedes `own` was created before it and
    /// a deleted one never comes back; only a member that has not applied the
    /// creation yet (`own` missing) is asked again linearizably. This saves a
    /// ReadIndex round per look, as ZooKeeper's recipe, whose reads are all
    /// local, does. A stale "blocked by P" is harmless: P precedes `own`, so
    /// `own` cannot hold before P is gone, and the watch on P fires once it is.
    async fn list_after_own(&self, own: &str) -> Result<Vec<String>, Error> {
        let (names, _) = self.local().children(&self.dir).await?;
        if names.iter().any(|name| name == own) {
            return Ok(names);
        }
        Ok(self.client.children(&self.dir).await?.0)
    }

    /// The client for the looks at the queue that need no ReadIndex round.
    fn local(&self) -> Client {
        self.client.serializable()
    }

    /// The path of the child `name` of the directory.
    fn child(&self, name: &str) -> String {
        child_path(&self.dir, name)
    }

    /// The error of an acquisition whose session expired.
    fn session_lost(&self) -> Error {
        Error::LeaseNotFound(ErrorInfo {
            message: format!(
                "session {} expired while acquiring {}",
                self.session.id(),
                self.dir
            ),
            path: Some(self.dir.clone()),
            ..ErrorInfo::default()
        })
    }
}

/// Runs `work` in a task and waits for its answer as `wait` says: on
/// `Wait::Until`, `None` once the deadline passes (dropping the receiver
/// tells the task to clean up).
pub(super) async fn in_task<F, Fut>(wait: Wait, work: F) -> Outcome
where
    F: FnOnce(Reply) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (reply, answer) = oneshot::channel();
    tokio::spawn(work(reply));
    let answered = match wait {
        Wait::Until(deadline) => match tokio::time::timeout_at(deadline, answer).await {
            Ok(answered) => answered,
            Err(_) => return Ok(None),
        },
        Wait::No | Wait::Forever => answer.await,
    };
    answered.unwrap_or_else(|_| Err(internal("the acquisition task ended without an answer")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_name_what_blocks() {
        let order = ["read-1", "write-2", "read-3", "read-4", "write-5"];
        assert_eq!(Rule::Predecessor.blocker(&order, 0), None);
        assert_eq!(
            Rule::Predecessor.blocker(&order, 3),
            Some(Blocker::Node("read-3"))
        );
        let read = Rule::NoEarlier("write-");
        assert_eq!(read.blocker(&order, 0), None);
        assert_eq!(read.blocker(&order, 3), Some(Blocker::Node("write-2")));
        assert_eq!(read.blocker(&["read-1", "read-2"], 1), None);
        assert_eq!(Rule::Within(2).blocker(&order, 1), None);
        assert_eq!(Rule::Within(2).blocker(&order, 2), Some(Blocker::Children));
    }

    #[test]
    fn a_deletion_alone_hands_over_only_from_the_last_blocker() {
        let order = ["write-1", "write-2", "read-3", "read-4"];
        assert!(Rule::Predecessor.holds_without(&order, 1, "write-1"));
        assert!(!Rule::Predecessor.holds_without(&order, 2, "write-2"));
        let read = Rule::NoEarlier("write-");
        assert!(!read.holds_without(&order, 3, "write-2"));
        assert!(read.holds_without(&["read-1", "write-2", "read-3"], 2, "write-2"));
        assert!(!Rule::Predecessor.holds_without(&order, 1, "gone-0"));
        assert!(
            !Rule::Predecessor.holds_without(&order, 1, "read-3"),
            "only earlier nodes block"
        );
    }
}
