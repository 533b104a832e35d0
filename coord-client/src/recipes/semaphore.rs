//! A counting semaphore: at most N holders at a time, each holding a
//! lease-backed permit. The shape is Curator's `InterProcessSemaphoreV2`.
//!
//! A permit is an ephemeral sequential node `<path>/leases/lease-<seq>` owned
//! by the holder's session, so a crashed holder's permit returns when its
//! session expires. A node holds a permit while fewer than N lease nodes
//! precede it. Holders may release in any order, so a waiter cannot watch one
//! predecessor; instead acquirers first take an internal
//! [`Mutex`](super::mutex::Mutex) at `<path>/locks` and only its holder, the
//! one acquirer at the head of the line, watches the leases' children. A
//! release therefore wakes one acquirer, and the others wait herd-free on the
//! mutex. Every participant must use the same N.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use std::time::Duration;
//! use coord_client::recipes::semaphore::Semaphore;
//! use coord_client::Client;
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let session = client.session(Duration::from_secs(10)).await?;
//! let downloads = Semaphore::new(client.clone(), &session, "/semaphores/downloads", 3);
//! let permit = downloads.acquire().await?;
//! tracing::info!(token = permit.token(), "one of 3 downloads");
//! permit.unlock().await?;
//! # Ok(())
//! # }
//! ```

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use crate::recipes::LockGuard;
use crate::recipes::contend::{Claim, Outcome, Queue, Reply, Rule, Wait, in_task};
use crate::recipes::lock_nodes::internal;
use crate::{Client, Error, ErrorInfo, Session};

/// The name prefix of the internal mutex's nodes.
const GATE: &str = "lock-";
/// The name prefix of permit nodes.
const LEASE: &str = "lease-";

/// A semaphore with a fixed number of permits at a path, for one session.
/// Each `acquire` call takes one permit. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Semaphore {
    gate: Queue,
    leases: Queue,
    permits: usize,
}

impl Semaphore {
    /// The semaphore at `path` with `permits` permits (at least 1; every
    /// participant must agree on it). Its nodes are owned by `session`.
    pub fn new(client: Client, session: &Session, path: &str, permits: usize) -> Semaphore {
        let under = |name: &str| format!("{}/{name}", path.trim_end_matches('/'));
        Semaphore {
            gate: Queue::new(&client, session, &under("locks"), &[GATE]),
            leases: Queue::new(&client, session, &under("leases"), &[LEASE]),
            permits,
        }
    }

    /// The number of permits.
    pub fn permits(&self) -> usize {
        self.permits
    }

    /// Waits for a permit. Fails with `LeaseNotFound` if the session expires
    /// first, `BadArguments` if the semaphore has no permits.
    pub async fn acquire(&self) -> Result<LockGuard, Error> {
        self.run(Wait::Forever)
            .await?
            .ok_or_else(|| internal("acquire returned without a permit"))
    }

    /// A permit if one is free and nobody else is waiting; `None` otherwise.
    pub async fn try_acquire(&self) -> Result<Option<LockGuard>, Error> {
        self.run(Wait::No).await
    }

    /// Waits at most `timeout` for a permit.
    pub async fn acquire_timeout(&self, timeout: Duration) -> Result<Option<LockGuard>, Error> {
        self.run(Wait::Until(Instant::now() + timeout)).await
    }

    async fn run(&self, wait: Wait) -> Outcome {
        if self.permits == 0 {
            return Err(Error::BadArguments(ErrorInfo::from_message(format!(
                "semaphore {} has no permits",
                self.leases.dir()
            ))));
        }
        let semaphore = self.clone();
        in_task(wait, move |mut reply| async move {
            let outcome = semaphore.take(wait != Wait::No, &mut reply).await;
            let _ = reply.send(outcome);
        })
        .await
    }

    /// Takes the internal mutex, then a permit, then releases the mutex.
    async fn take(&self, wait: bool, reply: &mut Reply) -> Outcome {
        let gate = Claim {
            prefix: GATE,
            rule: Rule::Predecessor,
            data: Bytes::new(),
            wait,
        };
        let Some(gate) = self.gate.take(gate, reply).await? else {
            return Ok(None);
        };
        let lease = Claim {
            prefix: LEASE,
            rule: Rule::Within(self.permits),
            data: Bytes::new(),
            wait,
        };
        let permit = self.leases.take(lease, reply).await;
        if let Err(err) = gate.unlock().await {
            tracing::warn!(error = %err, semaphore = self.leases.dir(), "could not release the semaphore's mutex");
        }
        permit
    }
}
