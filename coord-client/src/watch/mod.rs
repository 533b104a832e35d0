//! Watches: ZooKeeper's one-shot watches (set by a read, race-free) and 3.6's
//! persistent and persistent-recursive watches, all multiplexed over one
//! `Watch` stream per client that survives member failures.
//!
//! - `registry`: pure bookkeeping (resume points, de-duplication, compaction).
//! - `mux`: the task that owns the stream and fails over between members.
//! - `handles`: [`OneShot`] and [`WatchStream`], which cancel their watch when dropped.

mod handles;
mod mux;
mod registry;
mod stream;

use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use coord_proto::v1::{self as pb, EventType, Stat, WatchKind};
use tokio::sync::{mpsc, oneshot};

use crate::{Client, Error, ErrorInfo};
pub use handles::{OneShot, WatchStream};
use mux::{Command, Mux};
use registry::{Entry, Sink};

/// One change reported by a watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WatchEvent {
    /// What happened.
    pub kind: EventType,
    /// The node it happened to.
    pub path: String,
    /// The zxid of the change (all events of one write share it).
    pub zxid: u64,
}

impl From<pb::WatchEvent> for WatchEvent {
    fn from(e: pb::WatchEvent) -> Self {
        Self {
            kind: EventType::try_from(e.r#type).unwrap_or(EventType::EventNone),
            path: e.path,
            zxid: e.zxid,
        }
    }
}

/// What a persistent [`WatchStream`] yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchItem {
    /// A change, in zxid order, never twice.
    Event(WatchEvent),
    /// Every event of the watch up to this zxid has been yielded: a resume
    /// point to persist, or a sign of life on an idle watch (about once a second).
    Progress(u64),
    /// The member no longer had the events after `from` (its bounded history
    /// dropped them), so the watch was registered again: the events with
    /// zxids in `from + 1 ..= to` were **lost**, and every event after `to`
    /// follows as usual. The application must re-read what it watches.
    Resynced {
        /// The last zxid yielded before the gap.
        from: u64,
        /// The zxid the watch resumed after.
        to: u64,
    },
}

/// Options of a persistent watch, for [`Client::watch`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WatchOptions {
    /// Watch the whole subtree (created, deleted and data-changed events of
    /// the node and every descendant) instead of the node alone (which also
    /// reports its children-changed events).
    pub recursive: bool,
    /// Report the events after this zxid (e.g. the last one a previous run
    /// processed, or the zxid of a read). `None`: after the zxid the contacted
    /// member has applied when the watch is set (linearizable unless the client
    /// handle is [serializable](Client::serializable)).
    pub after_zxid: Option<u64>,
}

/// The client side of the watch stream: the task's command channel and the
/// watch id counter (ids are unique per client, so also per stream).
#[derive(Debug)]
pub(crate) struct Watches {
    commands: mpsc::UnboundedSender<Command>,
    next_id: AtomicU64,
}

impl Client {
    /// The watch task, started by the first watch.
    fn watches(&self) -> &Watches {
        self.inner.watches.get_or_init(|| {
            let (commands, rx) = mpsc::unbounded_channel();
            let mux = Mux {
                members: self.inner.members.clone(),
                open_timeout: self.inner.timeouts.request,
                idle: self.inner.timeouts.watch_idle,
                commands: rx,
                member: self.inner.current_index(),
                registry: registry::Registry::default(),
            };
            tokio::spawn(mux.run());
            Watches {
                commands,
                next_id: AtomicU64::new(1),
            }
        })
    }

    /// Registers a watch and waits until a member confirms it (within the
    /// retry budget); returns its id.
    async fn register(
        &self,
        path: &str,
        kind: WatchKind,
        after: u64,
        sink: Sink,
    ) -> Result<u64, Error> {
        let watches = self.watches();
        let id = watches.next_id.fetch_add(1, Ordering::Relaxed);
        let (created, confirmed) = oneshot::channel();
        let entry = Entry::new(path.to_owned(), kind, after, sink, created);
        if watches.commands.send(Command::Add(id, entry)).is_err() {
            return Err(registry::closed());
        }
        let budget = self.inner.timeouts.retry;
        let outcome = tokio::time::timeout(budget, confirmed).await;
        match outcome {
            Ok(Ok(Ok(()))) => return Ok(id),
            Ok(Ok(Err(err))) => return Err(err),
            Ok(Err(_)) => return Err(registry::closed()),
            Err(_) => {}
        }
        let _ = watches.commands.send(Command::Cancel(id));
        Err(Error::Timeout(ErrorInfo::from_message(format!(
            "no member registered the watch on {path} within {budget:?}"
        ))))
    }

    async fn one_shot(&self, path: &str, kind: WatchKind, after: u64) -> Result<OneShot, Error> {
        let (tx, rx) = oneshot::channel();
        let id = self.register(path, kind, after, Sink::Once(tx)).await?;
        Ok(OneShot::new(id, rx, self.watches().commands.clone()))
    }

    /// [`get`](Client::get) and a one-shot watch that fires when the node's
    /// data changes or it is deleted, after the read (no change is missed
    /// between the read and the watch).
    pub async fn get_watch(&self, path: &str) -> Result<(Bytes, Stat, OneShot), Error> {
        let read = self.get_with_header(path).await?;
        let watch = self
            .one_shot(path, WatchKind::Data, read.header.zxid)
            .await?;
        let (data, stat) = read.value;
        Ok((data, stat, watch))
    }

    /// [`exists`](Client::exists) and a one-shot watch that fires when the
    /// node is created, changed or deleted after the read.
    pub async fn exists_watch(&self, path: &str) -> Result<(Option<Stat>, OneShot), Error> {
        let read = self.exists_with_header(path).await?;
        let watch = self
            .one_shot(path, WatchKind::Exists, read.header.zxid)
            .await?;
        Ok((read.value, watch))
    }

    /// [`children`](Client::children) and a one-shot watch that fires when a
    /// child is created or deleted, or the node is deleted, after the read.
    pub async fn children_watch(&self, path: &str) -> Result<(Vec<String>, Stat, OneShot), Error> {
        let read = self.children_with_header(path).await?;
        let watch = self
            .one_shot(path, WatchKind::Children, read.header.zxid)
            .await?;
        let (names, stat) = read.value;
        Ok((names, stat, watch))
    }

    /// A persistent watch on `path` (or its subtree): every change after
    /// `options.after_zxid`, in zxid order, none missing and none twice, across
    /// member failures (the client resumes it on another member from the last
    /// zxid it yielded). Returns once a member has registered it; fails with
    /// `InvalidPath` or `TooManyWatches` if refused. Dropping the stream
    /// removes the watch.
    pub async fn watch(&self, path: &str, options: WatchOptions) -> Result<WatchStream, Error> {
        let after = match options.after_zxid {
            Some(zxid) => zxid,
            None => self.exists_with_header("/").await?.header.zxid,
        };
        let kind = if options.recursive {
            WatchKind::PersistentRecursive
        } else {
            WatchKind::Persistent
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let id = self.register(path, kind, after, Sink::Stream(tx)).await?;
        Ok(WatchStream::new(
            id,
            after,
            rx,
            self.watches().commands.clone(),
        ))
    }
}
