//! The bookkeeping of a client's watches, kept apart from the stream so it is
//! unit-tested without a server: what to (re-)register, where each response
//! goes, the resume point of every watch, de-duplication and compaction.
//!
//! Each watch remembers `last`: every event at or below it was delivered (or
//! predates the watch). A watch registered again on a new stream asks for the
//! events after `last`, and anything at or below `last` that still arrives is
//! dropped, so across reconnects no event is missing or duplicated and all come
//! in zxid order. A progress notification moves `last` forward too.

use std::collections::BTreeMap;

use coord_proto::v1::{WatchCreate, WatchKind, WatchResponse};
use tokio::sync::{mpsc, oneshot};

use crate::watch::{WatchEvent, WatchItem};
use crate::{Error, ErrorInfo};

/// Where a watch's results go.
#[derive(Debug)]
pub(crate) enum Sink {
    /// A one-shot watch: its single event (or why it failed).
    Once(oneshot::Sender<Result<WatchEvent, Error>>),
    /// A persistent watch: items until the stream is dropped or fails.
    Stream(mpsc::UnboundedSender<Result<WatchItem, Error>>),
}

/// One watch of the client.
#[derive(Debug)]
pub(crate) struct Entry {
    pub(crate) path: String,
    pub(crate) kind: WatchKind,
    /// Every event at or below this zxid was delivered or predates the watch.
    pub(crate) last: u64,
    /// After a compaction, until the watch is registered again: the last zxid
    /// delivered before the gap.
    pub(crate) resync_from: Option<u64>,
    pub(crate) sink: Sink,
    /// The caller waiting for the first registration, until it is answered.
    pub(crate) created: Option<oneshot::Sender<Result<(), Error>>>,
}

impl Entry {
    /// A new watch on `path` reporting the events after `after`.
    pub(crate) fn new(
        path: String,
        kind: WatchKind,
        after: u64,
        sink: Sink,
        created: oneshot::Sender<Result<(), Error>>,
    ) -> Self {
        Self {
            path,
            kind,
            last: after,
            resync_from: None,
            sink,
            created: Some(created),
        }
    }

    fn deliver(&self, item: WatchItem) {
        if let Sink::Stream(tx) = &self.sink {
            // A receiver gone means its handle was dropped and a cancel follows.
            let _ = tx.send(Ok(item));
        }
    }
}

/// Every watch of a client, by watch id.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    entries: BTreeMap<u64, Entry>,
}

impl Registry {
    /// True when no watch is registered.
    pub(crate) fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds a watch; returns its registration request.
    pub(crate) fn add(&mut self, id: u64, entry: Entry) -> WatchCreate {
        self.entries.insert(id, entry);
        self.create_of(id)
    }

    /// Removes a watch; true if it was there (so the server must be told).
    pub(crate) fn remove(&mut self, id: u64) -> bool {
        self.entries.remove(&id).is_some()
    }

    /// The registration of every watch, for a new stream.
    pub(crate) fn creates(&self) -> Vec<WatchCreate> {
        self.entries.keys().map(|&id| self.create_of(id)).collect()
    }

    fn create_of(&self, id: u64) -> WatchCreate {
        let entry = &self.entries[&id];
        WatchCreate {
            watch_id: id,
            path: entry.path.clone(),
            kind: entry.kind.into(),
            after_zxid: Some(entry.last),
        }
    }

    /// Handles one response; returns a registration to send again (after a
    /// compaction, or when the server dropped a persistent watch).
    pub(crate) fn on_response(&mut self, r: WatchResponse) -> Option<WatchCreate> {
        let id = r.watch_id;
        let entry = self.entries.get_mut(&id)?;
        if let Some(detail) = r.error {
            self.fail(id, Error::from_detail(detail));
            return None;
        }
        if r.compacted_zxid > 0 {
            return self.on_compacted(id, r.compacted_zxid);
        }
        if r.created {
            if let Some(created) = entry.created.take() {
                let _ = created.send(Ok(()));
            }
            if let Some(from) = entry.resync_from.take() {
                entry.deliver(WatchItem::Resynced {
                    from,
                    to: entry.last,
                });
            }
        }
        if is_one_shot(entry.kind) {
            return self.on_one_shot(id, r);
        }
        let last = entry.last;
        // Moved, not copied: a busy watch delivers every path it is sent.
        for event in r.events.into_iter().filter(|e| e.zxid > last) {
            entry.last = entry.last.max(event.zxid);
            entry.deliver(WatchItem::Event(WatchEvent::from(event)));
        }
        if r.progress_zxid >= entry.last && r.progress_zxid > 0 {
            entry.last = r.progress_zxid;
            entry.deliver(WatchItem::Progress(r.progress_zxid));
        }
        // A persistent watch canceled by the server for no stated reason is
        // registered again from where it stopped.
        r.canceled.then(|| self.create_of(id))
    }

    fn on_one_shot(&mut self, id: u64, r: WatchResponse) -> Option<WatchCreate> {
        if let Some(event) = r.events.into_iter().next() {
            if let Some(Entry {
                sink: Sink::Once(tx),
                ..
            }) = self.entries.remove(&id)
            {
                let _ = tx.send(Ok(WatchEvent::from(event)));
            }
            return None;
        }
        r.canceled.then(|| self.create_of(id))
    }

    fn on_compacted(&mut self, id: u64, oldest: u64) -> Option<WatchCreate> {
        let entry = self.entries.get_mut(&id)?;
        let after = entry.last;
        if is_one_shot(entry.kind) || oldest <= after + 1 {
            let err = Error::Compacted {
                after_zxid: after,
                oldest_zxid: oldest,
            };
            self.fail(id, err);
            return None;
        }
        // Resume from the oldest event still kept: the events in between are
        // lost, which the application learns from `Resynced`.
        entry.resync_from.get_or_insert(after);
        entry.last = oldest - 1;
        Some(self.create_of(id))
    }

    /// Ends a watch with `err`, telling whoever waits for it.
    fn fail(&mut self, id: u64, err: Error) {
        let Some(entry) = self.entries.remove(&id) else {
            return;
        };
        tracing::debug!(watch = id, path = %entry.path, error = %err, "watch failed");
        if let Some(created) = entry.created {
            let _ = created.send(Err(err));
            return;
        }
        match entry.sink {
            Sink::Once(tx) => {
                let _ = tx.send(Err(err));
            }
            Sink::Stream(tx) => {
                let _ = tx.send(Err(err));
            }
        }
    }
}

/// True for the kinds that fire once.
pub(crate) fn is_one_shot(kind: WatchKind) -> bool {
    matches!(
        kind,
        WatchKind::Data | WatchKind::Exists | WatchKind::Children
    )
}

/// The error a watch gets when its client's watch task is gone.
pub(crate) fn closed() -> Error {
    Error::Internal(ErrorInfo::from_message(
        "the client's watch task has stopped",
    ))
}

#[cfg(test)]
#[path = "registry_tests.rs"]
mod tests;
