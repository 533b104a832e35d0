//! A distributed read-write (shared/exclusive) lock: ZooKeeper's "shared
//! locks" recipe, in the style of [`Mutex`](super::mutex::Mutex).
//!
//! Readers create `<path>/read-<seq>` and writers `<path>/write-<seq>`
//! (ephemeral, sequential: one counter orders both). A reader holds when no
//! writer node precedes it and otherwise watches the last writer before it;
//! a writer holds when it is first and otherwise watches the node just before
//! it. So a writer's release wakes the readers queued right behind it (they
//! all get the lock) and a reader's release wakes at most the writer behind
//! it. Writers queued before later readers keep their turn: no starvation.
//! Guards are [`LockGuard`]s: fencing token, fenced writes, [`HoldState`](super::HoldState).
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use std::time::Duration;
//! use coord_client::recipes::rwlock::RwLock;
//! use coord_client::{Client, Op};
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let session = client.session(Duration::from_secs(10)).await?;
//! let lock = RwLock::new(client.clone(), &session, "/locks/catalog");
//! let reading = lock.read().await?;
//! let (catalog, _) = client.get("/catalog").await?;
//! reading.unlock().await?;
//!
//! if let Some(writing) = lock.write_timeout(Duration::from_secs(5)).await? {
//!     client.multi(writing.fenced([Op::set("/catalog", "v2", -1)])).await?;
//!     writing.unlock().await?;
//! }
//! # let _ = catalog;
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

/// The name prefix of readers' nodes.
const READ: &str = "read-";
/// The name prefix of writers' nodes.
const WRITE: &str = "write-";

/// Shared (read) or exclusive (write).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    Read,
    Write,
}

/// A read-write lock at a path, for one session. Each `read`/`write` call is
/// one contender. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RwLock {
    queue: Queue,
}

impl RwLock {
    /// The lock at `path` (created as a persistent node on first use); its
    /// nodes are owned by `session`.
    pub fn new(client: Client, session: &Session, path: &str) -> RwLock {
        RwLock {
            queue: Queue::new(&client, session, path, &[READ, WRITE]),
        }
    }

    /// The lock's path.
    pub fn path(&self) -> &str {
        self.queue.dir()
    }

    /// Waits for a shared hold: until no writer is ahead. Fails with
    /// `LeaseNotFound` if the session expires first.
    pub async fn read(&self) -> Result<LockGuard, Error> {
        self.forever(Mode::Read).await
    }

    /// Waits for the exclusive hold: until every earlier reader and writer
    /// has released. Fails with `LeaseNotFound` if the session expires first.
    pub async fn write(&self) -> Result<LockGuard, Error> {
        self.forever(Mode::Write).await
    }

    /// A shared hold if no writer holds or waits; `None` otherwise.
    pub async fn try_read(&self) -> Result<Option<LockGuard>, Error> {
        self.acquire(Mode::Read, Wait::No).await
    }

    /// The exclusive hold if nobody holds or waits; `None` otherwise.
    pub async fn try_write(&self) -> Result<Option<LockGuard>, Error> {
        self.acquire(Mode::Write, Wait::No).await
    }

    /// Waits at most `timeout` for a shared hold.
    pub async fn read_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        let deadline = Instant::now() + timeout;
        self.acquire(Mode::Read, Wait::Until(deadline)).await
    }

    /// Waits at most `timeout` for the exclusive hold.
    pub async fn write_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        let deadline = Instant::now() + timeout;
        self.acquire(Mode::Write, Wait::Until(deadline)).await
    }

    async fn forever(&self, mode: Mode) -> Result<LockGuard, Error> {
        self.acquire(mode, Wait::Forever)
            .await?
            .ok_or_else(|| internal("lock returned without the lock"))
    }

    async fn acquire(&self, mode: Mode, wait: Wait) -> Result<Option<LockGuard>, Error> {
        let (prefix, rule) = match mode {
            Mode::Read => (READ, Rule::NoEarlier(WRITE)),
            Mode::Write => (WRITE, Rule::Predecessor),
        };
        let claim = Claim {
            prefix,
            rule,
            data: Bytes::new(),
            wait: wait != Wait::No,
        };
        self.queue.acquire(claim, wait).await
    }
}
