//! A distributed FIFO queue (ZooKeeper's queue recipe): producers add
//! persistent sequential nodes under a directory, consumers take the lowest
//! one, and each item is taken by exactly one consumer, however many compete.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use coord_client::Client;
//! use coord_client::recipes::queue::Queue;
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let jobs = Queue::new(client, "/queues/jobs").await?;
//! jobs.put("resize img-17").await?;
//! let item = jobs.take().await?; // blocks until there is an item
//! assert_eq!(&item.data[..], b"resize img-17");
//! # Ok(())
//! # }
//! ```
//!
//! **Exactly once.** `take` reads the sorted children, reads the first one's
//! data and deletes it with version -1: of the consumers racing for an item,
//! exactly one delete succeeds, the others get `NoNode` and move on to the
//! next item. A delete whose outcome is unknown (a timeout, a leader crash) is
//! resent with the same `(client id, sequence)` until the server answers; the
//! server's de-duplication answers a resend of an applied delete with
//! success, so a consumer never believes it lost an item it in fact removed.
//! The item is then the caller's: if the process dies before using it, it is
//! gone (at-most-once processing, as in ZooKeeper). Dropping a `take` future
//! while its delete is in flight may remove an item nobody receives.

use std::time::Duration;

use bytes::Bytes;
use tokio::time::Instant;

use super::support::{by_sequence, child_path, delete_definitely, ensure_path};
use crate::{Client, CreateMode, Error};

/// Prefix of item names: `qn-0000000042` (ZooKeeper's queue uses the same).
const ITEM_PREFIX: &str = "qn-";

/// A queue rooted at a directory node; cheap to clone, safe to share.
#[derive(Debug, Clone)]
pub struct Queue {
    client: Client,
    dir: String,
}

/// An item taken from a queue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueueItem {
    /// The node the item was stored in (now deleted), e.g.
    /// `/queues/jobs/qn-0000000042`; its suffix gives the order of `put`s.
    pub path: String,
    /// The data given to `put`.
    pub data: Bytes,
}

impl Queue {
    /// The queue stored under `dir`, which is created (with its ancestors, as
    /// persistent nodes) if missing.
    pub async fn new(client: Client, dir: &str) -> Result<Queue, Error> {
        ensure_path(&client, dir).await?;
        Ok(Self::existing(client, dir))
    }

    /// The queue under `dir` without checking or creating it: for callers
    /// that know it exists (a `put` or `take` fails with `NoNode` otherwise).
    pub fn existing(client: Client, dir: &str) -> Queue {
        Queue {
            client,
            dir: dir.to_owned(),
        }
    }

    /// The directory the items live under.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// Appends an item; returns the path of the node that holds it. A retry
    /// after a failover never adds it twice (the create is de-duplicated).
    pub async fn put(&self, data: impl Into<Bytes>) -> Result<String, Error> {
        let prefix = child_path(&self.dir, ITEM_PREFIX);
        let created = self
            .client
            .create(&prefix, data, CreateMode::PersistentSequential)
            .await?;
        Ok(created.path)
    }

    /// Takes the oldest item, waiting (on a children watch, without polling)
    /// while the queue is empty.
    pub async fn take(&self) -> Result<QueueItem, Error> {
        loop {
            // Without a deadline `take_until` only returns with an item.
            if let Some(item) = self.take_until(None).await? {
                return Ok(item);
            }
        }
    }

    /// Takes the oldest item, or `None` at once if the queue is empty.
    pub async fn try_take(&self) -> Result<Option<QueueItem>, Error> {
        self.take_first(&self.client.children(&self.dir).await?.0)
            .await
    }

    /// Takes the oldest item, waiting at most `wait` for one to arrive;
    /// `None` if none did. `wait` bounds only the waiting: a delete already
    /// sent is always seen through, so no item is lost to the deadline.
    pub async fn take_timeout(&self, wait: Duration) -> Result<Option<QueueItem>, Error> {
        self.take_until(Some(Instant::now() + wait)).await
    }

    /// Number of items in the queue now.
    pub async fn len(&self) -> Result<usize, Error> {
        Ok(by_sequence(&self.client.children(&self.dir).await?.0, ITEM_PREFIX).len())
    }

    /// True if the queue holds no item now.
    pub async fn is_empty(&self) -> Result<bool, Error> {
        Ok(self.len().await? == 0)
    }

    /// Takes an item, waiting while there is none until `deadline` (`None`:
    /// forever).
    async fn take_until(&self, deadline: Option<Instant>) -> Result<Option<QueueItem>, Error> {
        loop {
            if let Some(item) = self.try_take().await? {
                return Ok(Some(item));
            }
            // Set the watch with the read, so an item put after it is not missed.
            let (names, _, changed) = self.client.children_watch(&self.dir).await?;
            if let Some(item) = self.take_first(&names).await? {
                return Ok(Some(item));
            }
            let fired = match deadline {
                Some(at) => match tokio::time::timeout_at(at, changed).await {
                    Ok(fired) => fired,
                    Err(_) => return Ok(None),
                },
                None => changed.await,
            };
            match fired {
                // `Compacted`: the member lost the events after our read; re-read.
                Ok(_) | Err(Error::Compacted { .. }) => {}
                Err(err) => return Err(err),
            }
        }
    }

    /// Tries the items among `names` oldest first; the first one this
    /// consumer deletes is its. `None` if others took them all.
    async fn take_first(&self, names: &[String]) -> Result<Option<QueueItem>, Error> {
        for name in by_sequence(names, ITEM_PREFIX) {
            let path = child_path(&self.dir, &name);
            let data = match self.client.get(&path).await {
                Ok((data, _)) => data,
                Err(Error::NoNode(_)) => continue, // taken meanwhile
                Err(err) => return Err(err),
            };
            match delete_definitely(&self.client, &path).await {
                Ok(()) => return Ok(Some(QueueItem { path, data })),
                Err(Error::NoNode(_)) => continue, // another consumer won it
                Err(err) => return Err(err),
            }
        }
        Ok(None)
    }
}
