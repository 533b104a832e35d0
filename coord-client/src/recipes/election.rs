//! Leader election (ZooKeeper's recipe, with etcd's verbs): campaign, observe
//! the leader, resign; leadership carries a fencing token and is lost
//! visibly and at once.
//!
//! Each candidate creates `<path>/candidate-<seq>` (ephemeral, sequential,
//! owned by its session) holding its value; the lowest number leads, and every
//! other candidate watches only the node just before its own (no herd when the
//! leader goes). [`Leadership`] gives the token (the node's `czxid`, increasing
//! from leader to leader), fenced writes, and a [`HoldState`] receiver that
//! turns `Suspended` when the session is and `Lost` the moment the session
//! expires or the node is deleted. Observers ([`observe`], which needs no
//! session) follow the lowest node: its deletion or a new value is a change.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use std::time::Duration;
//! use coord_client::recipes::HoldState;
//! use coord_client::recipes::election::{self, Election};
//! use coord_client::{Client, Op};
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let mut leaders = election::observe(&client, "/elections/scheduler");
//! tokio::spawn(async move {
//!     while let Some(Ok(leader)) = leaders.next().await {
//!         tracing::info!(leader = ?leader.map(|l| l.value), "leader changed");
//!     }
//! });
//!
//! let session = client.session(Duration::from_secs(10)).await?;
//! let election = Election::new(client.clone(), &session, "/elections/scheduler");
//! let leadership = election.campaign("host-a:7000").await?;
//! let mut states = leadership.states();
//! loop {
//!     tokio::select! {
//!         _ = states.changed() => match *states.borrow() {
//!             HoldState::Lost => break, // stop leading at once
//!             HoldState::Suspended | HoldState::Held => {} // pause / resume
//!         },
//!         () = tokio::time::sleep(Duration::from_secs(1)) => {
//!             let tick = Op::set("/scheduler/last-run", "now", -1);
//!             client.multi(leadership.fenced([tick])).await?;
//!         }
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod observe;

use bytes::Bytes;
use tokio::sync::watch;

use crate::recipes::contend::{Claim, Queue, Rule, Wait};
use crate::recipes::lock_nodes::internal;
use crate::recipes::{HoldState, LockGuard};
use crate::{Client, Error, Op, Session};
pub use observe::{LeaderWatch, leader, observe};

/// The name prefix of candidates' nodes.
const PREFIX: &str = "candidate-";

/// The leader of an election, as observers see it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leader {
    /// The leader's node (e.g. `/elections/db/candidate-0000000004`).
    pub node: String,
    /// The value it campaigned with (or last proclaimed).
    pub value: Bytes,
    /// Its fencing token: the node's `czxid`.
    pub token: u64,
    /// The lease (session) that owns the node.
    pub lease: u64,
}

/// An election at a path, for one session: each [`campaign`](Self::campaign)
/// is one candidate. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Election {
    queue: Queue,
    client: Client,
}

impl Election {
    /// The election at `path` (created as a persistent node on first use);
    /// candidates' nodes are owned by `session`.
    pub fn new(client: Client, session: &Session, path: &str) -> Election {
        Election {
            queue: Queue::new(&client, session, path, &[PREFIX]),
            client: client.linearizable(),
        }
    }

    /// The election's path.
    pub fn path(&self) -> &str {
        self.queue.dir()
    }

    /// Becomes a candidate with `value` and waits until it leads. Fails with
    /// `LeaseNotFound` if the session expires first; dropping the future
    /// withdraws the candidacy.
    pub async fn campaign(&self, value: impl Into<Bytes>) -> Result<Leadership, Error> {
        let claim = Claim {
            prefix: PREFIX,
            rule: Rule::Predecessor,
            data: value.into(),
            wait: true,
        };
        let guard = self
            .queue
            .acquire(claim, Wait::Forever)
            .await?
            .ok_or_else(|| internal("campaign returned without leadership"))?;
        Ok(Leadership {
            guard,
            client: self.client.clone(),
        })
    }

    /// The current leader, if any (see [`leader`]).
    pub async fn leader(&self) -> Result<Option<Leader>, Error> {
        leader(&self.client, self.path()).await
    }

    /// The leader now and at every change (see [`observe`]).
    pub fn observe(&self) -> LeaderWatch {
        observe(&self.client, self.path())
    }
}

/// Leading an election. Dropping it resigns (from a background task);
/// [`resign`](Self::resign) waits for it.
#[derive(Debug)]
#[must_use = "leadership is resigned when dropped"]
pub struct Leadership {
    guard: LockGuard,
    client: Client,
}

impl Leadership {
    /// The fencing token: this leader's node's `czxid`, higher than every
    /// earlier leader's.
    pub fn token(&self) -> u64 {
        self.guard.token()
    }

    /// This leader's node.
    pub fn node(&self) -> &str {
        self.guard.node()
    }

    /// `ops` behind a `check` of the leader's node: applied only while this
    /// leadership lasts (see [`LockGuard::fenced`]).
    pub fn fenced(&self, ops: impl IntoIterator<Item = Op>) -> Vec<Op> {
        self.guard.fenced(ops)
    }

    /// True if `err`, from a fenced multi, means leadership was lost.
    pub fn fence_failed(&self, err: &Error) -> bool {
        self.guard.fence_failed(err)
    }

    /// The current state: `Held` (leading), `Suspended` (the session is; pause
    /// leading), `Lost` (final).
    pub fn state(&self) -> HoldState {
        self.guard.state()
    }

    /// A receiver of every state change: how a leader is told at once that
    /// its session is suspended or expired.
    pub fn states(&self) -> watch::Receiver<HoldState> {
        self.guard.states()
    }

    /// True once leadership is lost.
    pub fn is_lost(&self) -> bool {
        self.guard.is_lost()
    }

    /// Resolves as soon as leadership is lost.
    pub async fn lost(&self) {
        self.guard.lost().await;
    }

    /// The underlying guard (node, token, check op).
    pub fn guard(&self) -> &LockGuard {
        &self.guard
    }

    /// Replaces the value observers see, without a new election (etcd's
    /// `Proclaim`). `NoNode` if leadership was lost meanwhile.
    pub async fn proclaim(&self, value: impl Into<Bytes>) -> Result<(), Error> {
        self.client.set(self.node(), value, -1).await.map(|_| ())
    }

    /// Steps down: deletes the leader's node, so the next candidate leads.
    /// Succeeds if leadership was already lost.
    pub async fn resign(self) -> Result<(), Error> {
        self.guard.unlock().await
    }
}
