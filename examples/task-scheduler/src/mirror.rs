//! [`Mirror`]: a live copy of the JSON values under a directory (the jobs,
//! or the tasks of every job), kept current by one persistent recursive
//! watch. The scheduler decides from it; `watch` draws progress from it.
//!
//! Like the discovery recipe's cache, it sets the watch first and then reads
//! everything, and applies each event by reading the node again, so applying
//! is idempotent and nothing changed after the watch's start is missed. A
//! node's entry only moves forward (by `mzxid`), so the scheduler can record
//! its own writes at once and the late events of those writes change nothing.
//! coord-client has no generic tree cache (Curator's `TreeCache`), hence this
//! module.

use std::collections::BTreeMap;

use coord_client::{Client, Error, EventType, Stat, WatchItem, WatchOptions, WatchStream};
use serde::de::DeserializeOwned;
use tokio::task::JoinSet;

/// Reads at once while (re)loading a directory.
const PARALLEL_READS: usize = 16;

/// The values at depth `depth` below `root`, by path, with their stats.
#[derive(Debug)]
pub struct Mirror<T> {
    client: Client,
    root: String,
    depth: usize,
    watch: WatchStream,
    nodes: BTreeMap<String, (T, Stat)>,
    /// A read failed: reload everything at the next [`heal`](Self::heal).
    stale: bool,
}

impl<T: DeserializeOwned + Send + 'static> Mirror<T> {
    /// Watches `root`, then reads the values `depth` levels below it
    /// (1: its children; 2: its grandchildren).
    pub async fn start(client: &Client, root: &str, depth: usize) -> Result<Mirror<T>, Error> {
        let options = WatchOptions {
            recursive: true,
            after_zxid: None,
        };
        let watch = client.watch(root, options).await?;
        let nodes = read_all(client, root, depth).await?;
        Ok(Mirror {
            client: client.clone(),
            root: root.to_owned(),
            depth,
            watch,
            nodes,
            stale: false,
        })
    }

    /// The next item of the watch. Cancel-safe (select on it, then
    /// [`apply`](Self::apply) what it returned).
    pub async fn next_item(&mut self) -> Option<Result<WatchItem, Error>> {
        self.watch.next().await
    }

    /// Applies a watch item; true if a value may have changed.
    pub async fn apply(&mut self, item: WatchItem) -> bool {
        match item {
            WatchItem::Event(event) if self.is_value(&event.path) => {
                if event.kind == EventType::NodeDeleted {
                    return self.nodes.remove(&event.path).is_some();
                }
                let known = self.nodes.get(&event.path).map(|(_, s)| s.mzxid);
                if known.is_some_and(|mzxid| mzxid >= event.zxid) {
                    return false; // Our own write, recorded already.
                }
                self.refresh(&event.path).await
            }
            WatchItem::Event(_) | WatchItem::Progress(_) => false,
            WatchItem::Resynced { from, to } => {
                tracing::warn!(root = self.root, from, to, "watch history lost; reloading");
                self.stale = true;
                self.heal().await;
                true
            }
        }
    }

    /// Reloads everything if an earlier read failed.
    pub async fn heal(&mut self) {
        if !self.stale {
            return;
        }
        match read_all(&self.client, &self.root, self.depth).await {
            Ok(nodes) => {
                self.nodes = nodes;
                self.stale = false;
            }
            Err(err) => {
                tracing::warn!(root = self.root, error = %err, "reload failed; retrying later")
            }
        }
    }

    /// Records a value this process wrote (unless a newer one is known).
    pub fn record(&mut self, path: &str, value: T, stat: Stat) {
        let newer = self
            .nodes
            .get(path)
            .is_none_or(|(_, known)| known.mzxid < stat.mzxid);
        if newer {
            self.nodes.insert(path.to_owned(), (value, stat));
        }
    }

    /// The value at `path`, with its stat.
    pub fn get(&self, path: &str) -> Option<&(T, Stat)> {
        self.nodes.get(path)
    }

    /// Every value, by path.
    pub fn nodes(&self) -> &BTreeMap<String, (T, Stat)> {
        &self.nodes
    }

    /// Reads one node again; true if it changed.
    pub async fn refresh(&mut self, path: &str) -> bool {
        match self.client.get(path).await {
            Ok((data, stat)) => match serde_json::from_slice(&data) {
                Ok(value) => {
                    self.record(path, value, stat);
                    true
                }
                Err(err) => {
                    tracing::warn!(path, error = %err, "not a valid value; skipped");
                    false
                }
            },
            Err(Error::NoNode(_)) => self.nodes.remove(path).is_some(),
            Err(err) => {
                tracing::warn!(path, error = %err, "read failed; will reload");
                self.stale = true;
                false
            }
        }
    }

    /// True if `path` is `depth` levels below the root.
    fn is_value(&self, path: &str) -> bool {
        path.strip_prefix(&self.root)
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| rest.split('/').count() == self.depth)
    }
}

/// Reads every value `depth` levels below `root` (none if `root` is absent).
/// Values that do not decode are skipped with a warning.
pub async fn read_all<T: DeserializeOwned + Send + 'static>(
    client: &Client,
    root: &str,
    depth: usize,
) -> Result<BTreeMap<String, (T, Stat)>, Error> {
    let mut level = vec![root.to_owned()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for dir in &level {
            match client.children(dir).await {
                Ok((names, _)) => next.extend(names.iter().map(|n| format!("{dir}/{n}"))),
                Err(Error::NoNode(_)) => {}
                Err(err) => return Err(err),
            }
        }
        level = next;
    }
    let mut nodes = BTreeMap::new();
    for chunk in level.chunks(PARALLEL_READS) {
        let mut reads = JoinSet::new();
        for path in chunk {
            let (client, path) = (client.clone(), path.clone());
            reads.spawn(async move { (client.get(&path).await, path) });
        }
        while let Some(joined) = reads.join_next().await {
            let Ok((read, path)) = joined else { continue };
            let (data, stat) = match read {
                Ok(read) => read,
                Err(Error::NoNode(_)) => continue,
                Err(err) => return Err(err),
            };
            match serde_json::from_slice(&data) {
                Ok(value) => {
                    nodes.insert(path, (value, stat));
                }
                Err(err) => tracing::warn!(path, error = %err, "not a valid value; skipped"),
            }
        }
    }
    Ok(nodes)
}
