//! The hub's state under its lock: streams and their watches, the indexes by
//! path and by recursive root, and the bounded event history, with the
//! operations that need all of them at once (fan-out, catch-up, cut-off).

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};

use coord_proto::v1::{WatchEvent, WatchKind, WatchResponse};
use tokio::sync::mpsc;
use tracing::debug;

use super::filter::{is_one_shot, matches};
use super::hub::StreamId;
use crate::core::{Event, path};

/// Events per response during catch-up (whole zxids only).
const CATCH_UP_EVENTS: usize = 1000;

#[derive(Debug)]
pub(super) struct Watch {
    pub(super) kind: WatchKind,
    pub(super) path: String,
    /// Report only events above this zxid.
    pub(super) after: u64,
}

#[derive(Debug)]
pub(super) struct Stream {
    pub(super) tx: mpsc::Sender<WatchResponse>,
    pub(super) watches: HashMap<u64, Watch>,
}

#[derive(Debug, Default)]
pub(super) struct HubState {
    pub(super) history: VecDeque<(u64, Event)>,
    /// Every event above this zxid is in `history`.
    pub(super) covered_from: u64,
    pub(super) applied: u64,
    pub(super) streams: HashMap<StreamId, Stream>,
    pub(super) exact: HashMap<String, BTreeSet<(StreamId, u64)>>,
    pub(super) recursive: HashMap<String, BTreeSet<(StreamId, u64)>>,
    pub(super) next_stream: StreamId,
}

/// `path`, its parent, ..., `/`.
fn ancestors(path: &str) -> impl Iterator<Item = &str> {
    let mut next = Some(path);
    std::iter::from_fn(move || {
        let current = next?;
        next = (current != "/").then(|| path::split(current).0);
        Some(current)
    })
}

pub(super) fn wire(zxid: u64, e: &Event) -> WatchEvent {
    WatchEvent {
        r#type: e.kind as i32,
        path: e.path.clone(),
        zxid,
    }
}

impl HubState {
    /// Queues a response; a stream too slow to keep up is cut off (its client
    /// reconnects and resumes from the last zxid it saw).
    pub(super) fn send(&mut self, stream: StreamId, response: WatchResponse) -> bool {
        let Some(s) = self.streams.get(&stream) else {
            return false;
        };
        if s.tx.try_send(response).is_ok() {
            return true;
        }
        debug!(stream, "watch stream full or closed; dropped");
        self.drop_stream(stream);
        false
    }

    pub(super) fn drop_stream(&mut self, stream: StreamId) {
        let ids: Vec<u64> = self
            .streams
            .get(&stream)
            .map(|s| s.watches.keys().copied().collect())
            .unwrap_or_default();
        for id in ids {
            self.unregister(stream, id);
        }
        self.streams.remove(&stream);
    }

    pub(super) fn register(&mut self, stream: StreamId, watch_id: u64, watch: Watch) {
        let index = if watch.kind == WatchKind::PersistentRecursive {
            &mut self.recursive
        } else {
            &mut self.exact
        };
        index
            .entry(watch.path.clone())
            .or_default()
            .insert((stream, watch_id));
        if let Some(s) = self.streams.get_mut(&stream) {
            s.watches.insert(watch_id, watch);
        }
    }

    pub(super) fn unregister(&mut self, stream: StreamId, watch_id: u64) {
        let Some(watch) = self
            .streams
            .get_mut(&stream)
            .and_then(|s| s.watches.remove(&watch_id))
        else {
            return;
        };
        let index = if watch.kind == WatchKind::PersistentRecursive {
            &mut self.recursive
        } else {
            &mut self.exact
        };
        if let Some(keys) = index.get_mut(&watch.path) {
            keys.remove(&(stream, watch_id));
            if keys.is_empty() {
                index.remove(&watch.path);
            }
        }
    }

    /// Sends the history's events for a new watch; true when any matched.
    pub(super) fn catch_up(&mut self, stream: StreamId, watch_id: u64, watch: &Watch) -> bool {
        let mut batch: Vec<WatchEvent> = Vec::new();
        let mut any = false;
        let matching: Vec<WatchEvent> = self
            .history
            .iter()
            .filter(|(z, e)| *z > watch.after && matches(watch.kind, &watch.path, e.kind, &e.path))
            .map(|(z, e)| wire(*z, e))
            .collect();
        for (i, ev) in matching.iter().enumerate() {
            batch.push(ev.clone());
            let zxid_ends = matching.get(i + 1).is_none_or(|next| next.zxid != ev.zxid);
            if zxid_ends
                && (batch.len() >= CATCH_UP_EVENTS
                    || i + 1 == matching.len()
                    || is_one_shot(watch.kind))
            {
                any = true;
                let events = std::mem::take(&mut batch);
                let canceled = is_one_shot(watch.kind);
                self.send(
                    stream,
                    WatchResponse {
                        watch_id,
                        canceled,
                        events,
                        ..WatchResponse::default()
                    },
                );
                if canceled {
                    return true;
                }
            }
        }
        any
    }

    pub(super) fn fan_out(&mut self, zxid: u64, events: &[Event]) {
        let mut hits: BTreeMap<(StreamId, u64), Vec<WatchEvent>> = BTreeMap::new();
        for e in events {
            let mut keys: Vec<(StreamId, u64)> = self
                .exact
                .get(&e.path)
                .into_iter()
                .flatten()
                .copied()
                .collect();
            for root in ancestors(&e.path) {
                keys.extend(self.recursive.get(root).into_iter().flatten().copied());
            }
            for key in keys {
                let Some(watch) = self.streams.get(&key.0).and_then(|s| s.watches.get(&key.1))
                else {
                    continue;
                };
                if zxid > watch.after && matches(watch.kind, &watch.path, e.kind, &e.path) {
                    hits.entry(key).or_default().push(wire(zxid, e));
                }
            }
        }
        for ((stream, watch_id), events) in hits {
            let one_shot = self
                .streams
                .get(&stream)
                .and_then(|s| s.watches.get(&watch_id))
                .is_some_and(|w| is_one_shot(w.kind));
            if one_shot {
                self.unregister(stream, watch_id);
            }
            self.send(
                stream,
                WatchResponse {
                    watch_id,
                    canceled: one_shot,
                    events,
                    ..WatchResponse::default()
                },
            );
        }
    }
}
