//! Configuration: a typed value stored as JSON at one path, and a
//! [`ConfigHandle`] whose [`watch::Receiver`] always holds the latest value,
//! so a service reacts to a change without polling or restarting.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::recipes::config::ConfigError> {
//! use coord_client::Client;
//! use coord_client::recipes::config::ConfigHandle;
//! use serde::{Deserialize, Serialize};
//!
//! #[derive(Debug, Clone, Default, Serialize, Deserialize)]
//! struct Limits { max_connections: u32 }
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let limits: ConfigHandle<Limits> =
//!     ConfigHandle::open_or_create(client, "/config/limits", &Limits::default()).await?;
//! let mut changes = limits.subscribe();
//! limits.update(|mut l| { l.max_connections += 10; l }).await?; // compare-and-set loop
//! changes.changed().await.ok();
//! println!("now {}", changes.borrow().max_connections);
//! # Ok(())
//! # }
//! ```
//!
//! The handle's value moves forward only (by the node's `mzxid`): a write
//! through the handle shows at once, and a late event never brings back an
//! older value. If the node is deleted the last value stays; a node whose data
//! does not decode as `T` is logged and skipped.

use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::support::{RETRY_PAUSE, ensure_path};
use crate::{Client, CreateMode, Error, EventType, Stat, WatchItem, WatchOptions, WatchStream};

/// Why a config call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The cluster (or the client) reported an error; `BadVersion` from
    /// [`ConfigHandle::compare_and_set`] means someone else wrote first.
    #[error(transparent)]
    Coord(#[from] Error),
    /// The node's data is not JSON of the expected type.
    #[error("{path}: cannot decode the config: {reason}")]
    Decode {
        /// The config node.
        path: String,
        /// What serde_json reported.
        reason: String,
    },
    /// The value could not be encoded as JSON.
    #[error("{path}: cannot encode the config: {reason}")]
    Encode {
        /// The config node.
        path: String,
        /// What serde_json reported.
        reason: String,
    },
}

/// The latest value and the stat it came with, shared by the handle and its
/// task so that either may publish, newest `mzxid` winning.
#[derive(Debug)]
struct Published<T> {
    values: watch::Sender<T>,
    stat: Mutex<Stat>,
}

impl<T> Published<T> {
    /// Publishes `value` unless a value at least as new is out already.
    fn offer(&self, value: T, stat: Stat) {
        let mut last = self.stat.lock().unwrap_or_else(PoisonError::into_inner);
        if stat.mzxid > last.mzxid {
            *last = stat;
            self.values.send_replace(value);
        }
    }

    fn stat(&self) -> Stat {
        *self.stat.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A typed config value at a path, kept current by a persistent watch.
/// Dropping the handle stops the watch (receivers then keep the last value).
#[derive(Debug)]
pub struct ConfigHandle<T> {
    client: Client,
    path: String,
    published: Arc<Published<T>>,
    task: JoinHandle<()>,
}

impl<T> ConfigHandle<T>
where
    T: DeserializeOwned + Send + Sync + 'static,
{
    /// The config at `path`; `NoNode` if it does not exist.
    pub async fn open(client: Client, path: &str) -> Result<ConfigHandle<T>, ConfigError> {
        let read = client.get_with_header(path).await?;
        let (data, stat) = read.value;
        let value = decode::<T>(path, &data)?;
        let options = WatchOptions {
            recursive: false,
            after_zxid: Some(read.header.zxid),
        };
        let watch = client.watch(path, options).await?;
        let (values, _) = watch::channel(value);
        let published = Arc::new(Published {
            values,
            stat: Mutex::new(stat),
        });
        let follower = Follower {
            client: client.clone(),
            path: path.to_owned(),
            published: Arc::clone(&published),
        };
        Ok(ConfigHandle {
            client,
            path: path.to_owned(),
            published,
            task: tokio::spawn(follower.run(watch)),
        })
    }

    /// A receiver of every new value (`borrow()` for the current one,
    /// `changed().await` to wait for the next).
    pub fn subscribe(&self) -> watch::Receiver<T> {
        self.published.values.subscribe()
    }

    /// The version of the current value's node, for
    /// [`compare_and_set`](Self::compare_and_set).
    pub fn version(&self) -> i32 {
        self.published.stat().version
    }

    /// The stat the current value came with.
    pub fn stat(&self) -> Stat {
        self.published.stat()
    }

    /// The config's node.
    pub fn path(&self) -> &str {
        &self.path
    }
}

impl<T> ConfigHandle<T>
where
    T: Clone + DeserializeOwned + Send + Sync + 'static,
{
    /// The current value.
    pub fn get(&self) -> T {
        self.published.values.borrow().clone()
    }
}

impl<T> ConfigHandle<T>
where
    T: Serialize + DeserializeOwned + Send + Sync + 'static,
{
    /// The config at `path`, created with `default` (and missing ancestors)
    /// if it does not exist.
    pub async fn open_or_create(
        client: Client,
        path: &str,
        default: &T,
    ) -> Result<ConfigHandle<T>, ConfigError> {
        let data = encode(path, default)?;
        if let Some((parent, _)) = path.rsplit_once('/').filter(|(p, _)| !p.is_empty()) {
            ensure_path(&client, parent).await?;
        }
        match client.create(path, data, CreateMode::Persistent).await {
            Ok(_) | Err(Error::NodeExists(_)) => Self::open(client, path).await,
            Err(err) => Err(err.into()),
        }
    }

    /// Replaces the value, whatever it is now.
    pub async fn set(&self, value: &T) -> Result<Stat, ConfigError> {
        self.compare_and_set(-1, value).await
    }

    /// Replaces the value if its node's version is still `version` (-1 =
    /// any); `Coord(BadVersion)` if someone else wrote since.
    pub async fn compare_and_set(&self, version: i32, value: &T) -> Result<Stat, ConfigError> {
        let data = encode(&self.path, value)?;
        let stat = self.client.set(&self.path, data.clone(), version).await?;
        // Show our own write at once, without waiting for its event.
        self.published.offer(decode(&self.path, &data)?, stat);
        Ok(stat)
    }

    /// Applies `change` to the current value with compare-and-set, reading
    /// and retrying while other writers get in first; returns the value
    /// written.
    pub async fn update(&self, mut change: impl FnMut(T) -> T) -> Result<T, ConfigError> {
        loop {
            let (data, stat) = self.client.get(&self.path).await?;
            let next = change(decode(&self.path, &data)?);
            match self.compare_and_set(stat.version, &next).await {
                Ok(_) => return Ok(next),
                Err(ConfigError::Coord(Error::BadVersion(_))) => continue,
                Err(err) => return Err(err),
            }
        }
    }
}

impl<T> Drop for ConfigHandle<T> {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// The task that follows the node's changes.
struct Follower<T> {
    client: Client,
    path: String,
    published: Arc<Published<T>>,
}

impl<T: DeserializeOwned> Follower<T> {
    async fn run(self, mut watch: WatchStream) {
        while let Some(item) = watch.next().await {
            match item {
                Ok(WatchItem::Event(e)) if e.kind == EventType::NodeDeleted => {
                    tracing::warn!(
                        path = self.path,
                        "config node deleted; keeping the last value"
                    );
                }
                Ok(WatchItem::Event(_) | WatchItem::Resynced { .. }) => self.refresh().await,
                Ok(WatchItem::Progress(_)) => {}
                Err(err) => {
                    tracing::warn!(path = self.path, error = %err, "config watch stopped");
                    return;
                }
            }
        }
    }

    /// Reads the node and publishes its value, retrying failed reads.
    async fn refresh(&self) {
        loop {
            match self.client.get(&self.path).await {
                Ok((data, stat)) => {
                    match decode(&self.path, &data) {
                        Ok(value) => self.published.offer(value, stat),
                        Err(err) => tracing::warn!(error = %err, "config value skipped"),
                    }
                    return;
                }
                Err(Error::NoNode(_)) => return,
                Err(err) => {
                    tracing::warn!(path = self.path, error = %err, "config read failed; retrying");
                    tokio::time::sleep(RETRY_PAUSE).await;
                }
            }
        }
    }
}

fn decode<T: DeserializeOwned>(path: &str, data: &[u8]) -> Result<T, ConfigError> {
    serde_json::from_slice(data).map_err(|e| ConfigError::Decode {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}

fn encode<T: Serialize>(path: &str, value: &T) -> Result<Vec<u8>, ConfigError> {
    serde_json::to_vec(value).map_err(|e| ConfigError::Encode {
        path: path.to_owned(),
        reason: e.to_string(),
    })
}
