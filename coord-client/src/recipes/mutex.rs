//! A distributed mutex (ZooKeeper's lock recipe) whose holder gets a fencing
//! token.
//!
//! Each contender creates `<path>/lock-<seq>`, ephemeral and sequential,
//! owned by its [`Session`]; the lowest number holds the lock, and every
//! other contender watches only the node just before its own, so a release
//! wakes exactly one waiter. The holder's [`LockGuard`] carries the fencing
//! token (the node's `czxid`, increasing from holder to holder) and fences
//! writes with a `check` of the node, and it says at once when the lock is
//! lost (session expired, node deleted). docs/recipes.md has the details.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use std::time::Duration;
//! use coord_client::recipes::mutex::Mutex;
//! use coord_client::{Client, Op};
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let session = client.session(Duration::from_secs(10)).await?;
//! let mutex = Mutex::new(client.clone(), &session, "/locks/report");
//! let guard = mutex.lock().await?;
//! tracing::info!(token = guard.token(), "holding the lock");
//! // Applied only while the lock is held, even if this process was paused:
//! let write = Op::set("/reports/today", "done", -1);
//! match client.multi(guard.fenced([write])).await {
//!     Err(err) if guard.fence_failed(&err) => { /* lost the lock: nothing written */ }
//!     other => { other?; }
//! }
//! guard.unlock().await?;
//!
//! if let Some(guard) = mutex.lock_timeout(Duration::from_secs(2)).await? {
//!     tokio::select! {
//!         () = guard.lost() => { /* session expired: stop at once */ }
//!         () = tokio::time::sleep(Duration::from_secs(1)) => guard.unlock().await?,
//!     }
//! }
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::recipes::LockGuard;
use crate::recipes::contend::{Claim, Queue, Rule, Wait};
use crate::recipes::lock_nodes::internal;
use crate::{Client, Error, Session};

/// The name prefix of the lock's nodes.
const PREFIX: &str = "lock-";

/// A mutex at a path, for one session: each `lock` call is one contender (two
/// calls on one session exclude each other like any two). Cheap to clone;
/// clones share the [`wakeups`](Self::wakeups) counter.
#[derive(Debug, Clone)]
pub struct Mutex {
    queue: Queue,
}

impl Mutex {
    /// The mutex at `path`: its nodes go under it, owned by `session`. The
    /// path (and missing ancestors) is created as a persistent node on first
    /// use; do not delete it while the lock is in use (see docs/recipes.md).
    pub fn new(client: Client, session: &Session, path: &str) -> Mutex {
        Mutex {
            queue: Queue::new(&client, session, path, &[PREFIX]),
        }
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        self.queue.dir()
    }

    /// Waits until the lock is held. Fails with `LeaseNotFound` if the
    /// session expires first. Dropping the future gives up and removes the
    /// node it made.
    pub async fn lock(&self) -> Result<LockGuard, Error> {
        self.acquire(Wait::Forever)
            .await?
            .ok_or_else(|| internal("lock returned without the lock"))
    }

    /// Takes the lock if nobody holds it or waits for it; `None` otherwise.
    pub async fn try_lock(&self) -> Result<Option<LockGuard>, Error> {
        self.acquire(Wait::No).await
    }

    /// Waits at most `timeout` for the lock; `None` if it did not come.
    pub async fn lock_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.acquire(Wait::Until(Instant::now() + timeout)).await
    }

    /// How many watch notifications this mutex's waiters (all clones) have
    /// received. A waiter is woken only by the deletion of the node just
    /// before its own, so each release wakes one waiter: a diagnostic of
    /// churn, and how tests check that there is no herd effect.
    pub fn wakeups(&self) -> u64 {
        self.queue.wakeups()
    }

    async fn acquire(&self, wait: Wait) -> Result<Option<LockGuard>, Error> {
        let claim = Claim {
            prefix: PREFIX,
            rule: Rule::Predecessor,
            data: Bytes::new(),
            wait: wait != Wait::No,
        };
        self.queue.acquire(claim, wait).await
    }
}
