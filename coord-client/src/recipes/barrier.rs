//! Barriers (ZooKeeper's recipes). A [`Barrier`] holds processes back while
//! its node exists: a coordinator sets it, workers [`wait`](Barrier::wait),
//! and removing the node lets them all through. A [`DoubleBarrier`] lets N
//! participants start a computation together (`enter` returns once N have
//! entered) and finish it together (`leave` returns once all have left).
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use std::time::Duration;
//! use coord_client::Client;
//! use coord_client::recipes::barrier::{Barrier, DoubleBarrier};
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let gate = Barrier::new(client.clone(), "/barriers/deploy");
//! gate.set().await?;
//! // ... elsewhere, workers block until the coordinator removes it:
//! gate.wait().await?;
//!
//! let session = client.session(Duration::from_secs(10)).await?;
//! let round = DoubleBarrier::new(client, &session, "/barriers/step-1", 3);
//! let inside = round.enter().await?; // returns once 3 participants entered
//! // ... compute ...
//! inside.leave().await?; // returns once all 3 have left
//! # Ok(())
//! # }
//! ```

use super::support::{DeleteOnDrop, by_sequence, child_path, ensure_path, last_segment};
use crate::{Client, CreateMode, CreateOptions, Error, ErrorInfo, OneShot, Op, Session};

/// A barrier: a node whose existence blocks [`wait`](Self::wait)ers.
#[derive(Debug, Clone)]
pub struct Barrier {
    client: Client,
    path: String,
}

impl Barrier {
    /// The barrier at `path` (nothing is read or written yet).
    pub fn new(client: Client, path: &str) -> Barrier {
        Barrier {
            client,
            path: path.to_owned(),
        }
    }

    /// The barrier's node.
    pub fn path(&self) -> &str {
        &self.path
    }

    /// Raises the barrier: creates its node (and missing ancestors). Raising
    /// a raised barrier is fine.
    pub async fn set(&self) -> Result<(), Error> {
        ensure_path(&self.client, &self.path).await
    }

    /// Lowers the barrier, releasing every waiter. Lowering a lowered barrier
    /// is fine.
    pub async fn remove(&self) -> Result<(), Error> {
        match self.client.delete(&self.path, -1).await {
            Ok(()) | Err(Error::NoNode(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }

    /// True while the barrier is raised.
    pub async fn is_set(&self) -> Result<bool, Error> {
        Ok(self.client.exists(&self.path).await?.is_some())
    }

    /// Returns once the barrier is down (at once if it is not raised).
    pub async fn wait(&self) -> Result<(), Error> {
        loop {
            let (stat, changed) = self.client.exists_watch(&self.path).await?;
            if stat.is_none() {
                return Ok(());
            }
            settle(changed).await?;
        }
    }
}

/// Prefix of the participants' nodes under a double barrier.
const PARTICIPANT_PREFIX: &str = "p-";
/// The node whose creation lets the entered participants start.
const READY: &str = "ready";

/// A double barrier for `count` participants, each with its own ephemeral
/// node under the barrier's path, owned by its session: a participant whose
/// process dies stops counting once its session expires.
///
/// Use a fresh path per round (`/barriers/job-7/round-3`): the `ready` node
/// that opens a round is removed by the last participant to leave, so a
/// participant entering while the previous round is still leaving would pass
/// straight through.
#[derive(Debug, Clone)]
pub struct DoubleBarrier {
    client: Client,
    session: Session,
    path: String,
    count: usize,
}

/// A participant inside a [`DoubleBarrier`]. Dropping it without
/// [`leave`](Self::leave) deletes its node in the background, so the others
/// do not wait for it at `leave`.
#[derive(Debug)]
pub struct Entered {
    barrier: DoubleBarrier,
    node: DeleteOnDrop,
}

impl DoubleBarrier {
    /// The double barrier at `path` for `count` participants, whose nodes
    /// are owned by `session`.
    pub fn new(client: Client, session: &Session, path: &str, count: usize) -> DoubleBarrier {
        DoubleBarrier {
            client,
            session: session.clone(),
            path: path.to_owned(),
            count,
        }
    }

    /// Joins the barrier and returns once `count` participants have joined
    /// (at once if the round has already started). Fails with `LeaseNotFound`
    /// if the session expires meanwhile.
    pub async fn enter(&self) -> Result<Entered, Error> {
        ensure_path(&self.client, &self.path).await?;
        let prefix = child_path(&self.path, PARTICIPANT_PREFIX);
        let options = CreateOptions::ephemeral_sequential(self.session.id());
        let created = self.client.create(&prefix, "", options).await?;
        // From here on, a cancelled or failed enter deletes the node again.
        let node = DeleteOnDrop::new(self.client.clone(), created.path);
        let ready = child_path(&self.path, READY);
        loop {
            if self.participants().await?.len() >= self.count {
                match self.client.create(&ready, "", CreateMode::Persistent).await {
                    Ok(_) | Err(Error::NodeExists(_)) => break,
                    Err(err) => return Err(err),
                }
            }
            let (stat, changed) = self.client.exists_watch(&ready).await?;
            if stat.is_some() {
                break;
            }
            self.until_expired(settle(changed)).await?;
        }
        Ok(Entered {
            barrier: self.clone(),
            node,
        })
    }

    /// The participants' node names, lowest sequence first.
    async fn participants(&self) -> Result<Vec<String>, Error> {
        let names = self.client.children(&self.path).await?.0;
        Ok(by_sequence(&names, PARTICIPANT_PREFIX))
    }

    /// Runs `wait`, failing with `LeaseNotFound` if the session expires first.
    async fn until_expired(
        &self,
        wait: impl Future<Output = Result<(), Error>>,
    ) -> Result<(), Error> {
        tokio::select! {
            result = wait => result,
            () = self.session.expired() => Err(Error::LeaseNotFound(ErrorInfo::from_message(
                format!("session {} expired while waiting at {}", self.session.id(), self.path),
            ))),
        }
    }
}

impl Entered {
    /// This participant's node.
    pub fn node(&self) -> &str {
        self.node.path()
    }

    /// Leaves the barrier and returns once every participant has left
    /// (ZooKeeper's protocol: the lowest node waits for the highest, the
    /// others delete theirs and wait for the lowest, so each change wakes one
    /// waiter). The last to leave also removes the `ready` node.
    pub async fn leave(self) -> Result<(), Error> {
        let barrier = &self.barrier;
        let client = &barrier.client;
        let me = last_segment(self.node.path()).to_owned();
        loop {
            let nodes = barrier.participants().await?;
            let (Some(lowest), Some(highest)) = (nodes.first(), nodes.last()) else {
                break;
            };
            if nodes.len() == 1 && *lowest == me {
                let ready = child_path(&barrier.path, READY);
                let ops = vec![Op::delete(self.node.path(), -1), Op::delete(&ready, -1)];
                match client.multi(ops).await {
                    Ok(_) => break,
                    // No `ready` (it was never made, or was already removed).
                    Err(Error::NoNode(_)) => break,
                    Err(err) => return Err(err),
                }
            }
            let wait_for = if *lowest == me {
                highest
            } else {
                if nodes.contains(&me) {
                    match client.delete(self.node.path(), -1).await {
                        Ok(()) | Err(Error::NoNode(_)) => {}
                        Err(err) => return Err(err),
                    }
                }
                lowest
            };
            let watched = child_path(&barrier.path, wait_for);
            let (stat, changed) = client.exists_watch(&watched).await?;
            if stat.is_some() {
                barrier.until_expired(settle(changed)).await?;
            }
        }
        self.node.delete().await
    }
}

/// Waits for a one-shot watch; a compacted history (`Compacted`) also ends
/// the wait, since the caller re-reads either way.
async fn settle(changed: OneShot) -> Result<(), Error> {
    match changed.await {
        Ok(_) | Err(Error::Compacted { .. }) => Ok(()),
        Err(err) => Err(err),
    }
}
