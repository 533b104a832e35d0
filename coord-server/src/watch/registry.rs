//! The hub's state under its lock: streams and their watches, the indexes by
//! path and by recursive root, and the bounded event history, with the
//! operations that need all of them at once (fan-out, catch-up, cut-off).

use std::collections::{BTreeMap, HashMap, VecDeque};

use coord_proto::v1::{WatchEvent, WatchKind, WatchResponse};
use tokio::sync::mpsc;
use tracing::debug;

use super::coalesce::Queued;
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
    pub(super) tx: mpsc::Sender<Queued>,
    pub(super) watches: HashMap<u64, Watch>,
}

/// A watch as the fan-out needs it, kept in the index under its path: the
/// fan-out matches an event and queues it without looking the stream or the
/// watch up (three hash lookups per watcher and event, a third of the Raft
/// thread's time with a thousand watchers).
#[derive(Debug)]
pub(super) struct Target {
    kind: WatchKind,
    after: u64,
    tx: mpsc::Sender<Queued>,
}

/// The watches registered under one path, by stream and watch id.
type Targets = BTreeMap<(StreamId, u64), Target>;

#[derive(Debug, Default)]
pub(super) struct HubState {
    pub(super) history: VecDeque<(u64, Event)>,
    /// Every event above this zxid is in `history`.
    pub(super) covered_from: u64,
    pub(super) applied: u64,
    pub(super) streams: HashMap<StreamId, Stream>,
    pub(super) exact: HashMap<String, Targets>,
    pub(super) recursive: HashMap<String, Targets>,
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
        if s.tx.try_send(response.into()).is_ok() {
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
        let Some(s) = self.streams.get_mut(&stream) else {
            return;
        };
        let target = Target {
            kind: watch.kind,
            after: watch.after,
            tx: s.tx.clone(),
        };
        let index = if watch.kind == WatchKind::PersistentRecursive {
            &mut self.recursive
        } else {
            &mut self.exact
        };
        index
            .entry(watch.path.clone())
            .or_default()
            .insert((stream, watch_id), target);
        s.watches.insert(watch_id, watch);
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

    /// Queues the events of the entry at `zxid` for every watch they match,
    /// all of one watch's in one response; fires one-shot watches and cuts
    /// off streams too slow to take them.
    pub(super) fn fan_out(&mut self, zxid: u64, events: &[Event]) {
        let mut hits: Vec<((StreamId, u64), &Target, WatchEvent)> = Vec::new();
        for e in events {
            let exact = self.exact.get_key_value(e.path.as_str()).into_iter();
            let recursive =
                ancestors(&e.path).filter_map(|root| self.recursive.get_key_value(root));
            for (watched, targets) in exact.chain(recursive) {
                for (key, target) in targets {
                    if zxid > target.after && matches(target.kind, watched, e.kind, &e.path) {
                        hits.push((*key, target, wire(zxid, e)));
                    }
                }
            }
        }
        if events.len() > 1 {
            // Stable: one watch's events stay in the entry's order.
            hits.sort_by_key(|(key, _, _)| *key);
        }
        let mut fired = Vec::new();
        let mut cut_off: Vec<StreamId> = Vec::new();
        let mut hits = hits.into_iter().peekable();
        while let Some((key, target, event)) = hits.next() {
            let mut batch = vec![event];
            while let Some((_, _, more)) = hits.next_if(|(next, _, _)| *next == key) {
                batch.push(more);
            }
            if cut_off.contains(&key.0) {
                continue;
            }
            let one_shot = is_one_shot(target.kind);
            if one_shot {
                fired.push(key);
            }
            let queued = Queued::Events {
                watch_id: key.1,
                canceled: one_shot,
                events: batch,
            };
            if target.tx.try_send(queued).is_err() {
                cut_off.push(key.0);
            }
        }
        for (stream, watch_id) in fired {
            self.unregister(stream, watch_id);
        }
        for stream in cut_off {
            debug!(stream, "watch stream full or closed; dropped");
            self.drop_stream(stream);
        }
    }
}
