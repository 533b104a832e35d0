//! The watch hub of one member: the bounded history of recent events and every
//! registered watch, under one lock. Events are published by the apply path,
//! under the state machine's write lock, so a watcher's event is queued before
//! any read on this member can return the data that changed. Registration and
//! catch-up from history happen under the hub lock, so a watch resumed from a
//! zxid sees every later event exactly once.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

use coord_proto::v1::{ErrorCode, ErrorDetail, WatchCreate, WatchResponse};
use tokio::sync::mpsc;

use super::coalesce::Queued;
use super::filter::is_one_shot;
use super::registry::{HubState, Stream, Watch};
use crate::core::{Event, path};

/// Limits of the hub.
#[derive(Debug, Clone, Copy)]
pub struct WatchConfig {
    /// Events kept for watches that resume from a zxid.
    pub history_events: usize,
    /// Watches one stream may hold.
    pub max_watches_per_stream: usize,
    /// Responses queued per stream before it is cut off as too slow.
    pub stream_buffer: usize,
}

/// Identifies one client stream.
pub type StreamId = u64;

/// Watches and event history of one member.
#[derive(Debug)]
pub struct WatchHub {
    state: Mutex<HubState>,
    config: WatchConfig,
}

fn failed(watch_id: u64, code: ErrorCode, message: String) -> WatchResponse {
    WatchResponse {
        watch_id,
        canceled: true,
        error: Some(ErrorDetail {
            code: code as i32,
            message,
            op_index: -1,
            ..ErrorDetail::default()
        }),
        ..WatchResponse::default()
    }
}

impl WatchHub {
    /// A hub whose history starts after `applied` (the state it was restored at).
    pub fn new(config: WatchConfig, applied: u64) -> Self {
        Self {
            state: Mutex::new(HubState {
                covered_from: applied,
                applied,
                next_stream: 1,
                ..HubState::default()
            }),
            config,
        }
    }

    fn lock(&self) -> MutexGuard<'_, HubState> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Opens a stream; its responses arrive on the receiver.
    pub fn open_stream(&self) -> (StreamId, mpsc::Receiver<Queued>) {
        let (tx, rx) = mpsc::channel(self.config.stream_buffer.max(1));
        let mut st = self.lock();
        let id = st.next_stream;
        st.next_stream += 1;
        st.streams.insert(
            id,
            Stream {
                tx,
                watches: HashMap::new(),
            },
        );
        (id, rx)
    }

    /// Drops a stream and all its watches.
    pub fn close_stream(&self, stream: StreamId) {
        let mut st = self.lock();
        st.drop_stream(stream);
    }

    /// Oldest zxid whose events are still all in the history.
    pub fn oldest_zxid(&self) -> u64 {
        self.lock().covered_from + 1
    }

    /// Read-only view of the history, for inspection (jepsen-lite's simulation
    /// compares every member's events with a reference): the events above
    /// `after`, oldest first, with `covered_from` and the applied zxid. Every
    /// zxid in `(max(after, covered_from), applied]` has all its events listed
    /// (a zxid without any listed published none).
    pub fn history_after(&self, after: u64) -> (u64, u64, Vec<(u64, Event)>) {
        let st = self.lock();
        let mut events: Vec<(u64, Event)> = st
            .history
            .iter()
            .rev()
            .take_while(|(z, _)| *z > after)
            .cloned()
            .collect();
        events.reverse();
        (st.covered_from, st.applied, events)
    }

    /// Registers a watch, first sending the events it asked for from history.
    pub fn create(&self, stream: StreamId, create: &WatchCreate) {
        let mut st = self.lock();
        let kind = create.kind();
        let id = create.watch_id;
        let refusal = if let Err(err) = path::validate(&create.path, false) {
            Some(failed(id, err.code(), err.to_string()))
        } else if st
            .streams
            .get(&stream)
            .is_some_and(|s| s.watches.len() >= self.config.max_watches_per_stream)
        {
            let limit = self.config.max_watches_per_stream;
            Some(failed(
                id,
                ErrorCode::TooManyWatches,
                format!("a stream may hold {limit} watches"),
            ))
        } else if st
            .streams
            .get(&stream)
            .is_some_and(|s| s.watches.contains_key(&id))
        {
            Some(failed(
                id,
                ErrorCode::BadArguments,
                format!("watch id {id} is in use on this stream"),
            ))
        } else {
            None
        };
        if let Some(refusal) = refusal {
            st.send(stream, refusal);
            return;
        }
        let after = create.after_zxid.unwrap_or(st.applied);
        if after < st.covered_from {
            let oldest = st.covered_from + 1;
            st.send(
                stream,
                WatchResponse {
                    watch_id: id,
                    canceled: true,
                    compacted_zxid: oldest,
                    ..WatchResponse::default()
                },
            );
            return;
        }
        let watch = Watch {
            kind,
            path: create.path.clone(),
            after,
        };
        st.send(
            stream,
            WatchResponse {
                watch_id: id,
                created: true,
                ..WatchResponse::default()
            },
        );
        if st.catch_up(stream, id, &watch) && is_one_shot(kind) {
            return;
        }
        // The stream may have been cut as too slow while catching up.
        if st.streams.contains_key(&stream) {
            st.register(stream, id, watch);
        }
    }

    /// Removes a watch; answered with a canceled response.
    pub fn cancel(&self, stream: StreamId, watch_id: u64) {
        let mut st = self.lock();
        st.unregister(stream, watch_id);
        st.send(
            stream,
            WatchResponse {
                watch_id,
                canceled: true,
                ..WatchResponse::default()
            },
        );
    }

    /// Tells every watch of the stream that all its events up to the applied
    /// zxid have been sent.
    pub fn progress(&self, stream: StreamId) {
        let mut st = self.lock();
        let applied = st.applied;
        // A watch that asked for events after a zxid this member has not yet
        // applied is, trivially, complete up to that zxid.
        let marks: Vec<(u64, u64)> = st
            .streams
            .get(&stream)
            .map(|s| {
                s.watches
                    .iter()
                    .map(|(id, w)| (*id, applied.max(w.after)))
                    .collect()
            })
            .unwrap_or_default();
        for (watch_id, progress_zxid) in marks {
            st.send(
                stream,
                WatchResponse {
                    watch_id,
                    progress_zxid,
                    ..WatchResponse::default()
                },
            );
        }
    }

    /// Sends the events of the entry at `zxid` to matching watches and keeps
    /// them (moved, not copied: a bulk load makes two per znode) in the
    /// history. Called by the apply path for every applied entry.
    pub fn publish(&self, zxid: u64, events: Vec<Event>) {
        let mut st = self.lock();
        st.applied = zxid;
        if events.is_empty() {
            return;
        }
        st.fan_out(zxid, &events);
        st.history.extend(events.into_iter().map(|e| (zxid, e)));
        while st.history.len() > self.config.history_events {
            if let Some((z, _)) = st.history.pop_front() {
                st.covered_from = st.covered_from.max(z);
            }
        }
    }

    /// The state jumped to `zxid` by snapshot: events in between are unknown,
    /// so every watch is ended as compacted and the history starts over.
    pub fn reset(&self, zxid: u64) {
        let mut st = self.lock();
        st.history.clear();
        st.covered_from = zxid;
        st.applied = zxid;
        let keys: Vec<(StreamId, u64)> = st
            .streams
            .iter()
            .flat_map(|(s, stream)| stream.watches.keys().map(move |w| (*s, *w)))
            .collect();
        for (stream, watch_id) in keys {
            st.unregister(stream, watch_id);
            st.send(
                stream,
                WatchResponse {
                    watch_id,
                    canceled: true,
                    compacted_zxid: zxid + 1,
                    ..WatchResponse::default()
                },
            );
        }
    }
}
