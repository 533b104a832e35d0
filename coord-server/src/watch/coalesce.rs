//! Coalescing of a stream's queued responses: responses of one watch that
//! carry only events and wait back to back in the stream's queue go out as one
//! response. A watcher that keeps up gets one response per change, as before;
//! one that falls behind (a thousand watchers of a busy node on two cores) gets
//! fewer, larger messages, so it catches up instead of being cut off as too
//! slow. Events stay in zxid order and a zxid's events stay in one response.

use std::pin::Pin;
use std::task::{Context, Poll};

use coord_proto::v1::WatchResponse;
use tokio::sync::mpsc;
use tokio_stream::Stream;

/// Events merged into one response at most.
const MAX_EVENTS: usize = 256;
/// Path bytes merged into one response at most (well under gRPC's 4 MiB).
const MAX_PATH_BYTES: usize = 256 * 1024;

/// The responses of one stream, with back-to-back event responses of one
/// watch merged.
#[derive(Debug)]
pub struct Coalesced {
    rx: mpsc::Receiver<WatchResponse>,
    /// A response taken from the queue that could not be merged: sent next.
    held: Option<WatchResponse>,
}

impl Coalesced {
    /// Wraps a stream's response queue.
    pub fn new(rx: mpsc::Receiver<WatchResponse>) -> Self {
        Self { rx, held: None }
    }
}

/// A response that only delivers events (no state change of the watch).
fn events_only(r: &WatchResponse) -> bool {
    !r.events.is_empty()
        && !r.created
        && !r.canceled
        && r.compacted_zxid == 0
        && r.progress_zxid == 0
        && r.error.is_none()
}

fn path_bytes(r: &WatchResponse) -> usize {
    r.events.iter().map(|e| e.path.len()).sum()
}

impl Stream for Coalesced {
    type Item = WatchResponse;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchResponse>> {
        let this = &mut *self;
        let mut first = match this.held.take() {
            Some(r) => r,
            None => match this.rx.poll_recv(cx) {
                Poll::Ready(Some(r)) => r,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
        };
        if events_only(&first) {
            let mut bytes = path_bytes(&first);
            while first.events.len() < MAX_EVENTS && bytes < MAX_PATH_BYTES {
                let Ok(next) = this.rx.try_recv() else { break };
                if next.watch_id != first.watch_id || !events_only(&next) {
                    this.held = Some(next);
                    break;
                }
                bytes += path_bytes(&next);
                first.events.extend(next.events);
            }
        }
        Poll::Ready(Some(first))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::v1::WatchEvent;
    use tokio_stream::StreamExt;

    fn events(watch_id: u64, zxids: &[u64]) -> WatchResponse {
        WatchResponse {
            watch_id,
            events: zxids
                .iter()
                .map(|&zxid| WatchEvent {
                    path: format!("/n{zxid}"),
                    zxid,
                    ..WatchEvent::default()
                })
                .collect(),
            ..WatchResponse::default()
        }
    }

    fn zxids(r: &WatchResponse) -> Vec<u64> {
        r.events.iter().map(|e| e.zxid).collect()
    }

    #[tokio::test]
    async fn queued_events_of_one_watch_merge_in_order() {
        let (tx, rx) = mpsc::channel(16);
        for r in [
            events(1, &[5]),
            events(1, &[6, 6]),
            events(1, &[7]),
            events(2, &[7]),
            WatchResponse {
                watch_id: 2,
                progress_zxid: 7,
                ..WatchResponse::default()
            },
            events(2, &[8]),
        ] {
            tx.try_send(r).expect("room");
        }
        drop(tx);
        let out: Vec<WatchResponse> = Coalesced::new(rx).collect().await;
        assert_eq!(out.len(), 4);
        assert_eq!((out[0].watch_id, zxids(&out[0])), (1, vec![5, 6, 6, 7]));
        assert_eq!((out[1].watch_id, zxids(&out[1])), (2, vec![7]));
        assert_eq!(out[2].progress_zxid, 7);
        assert_eq!((out[3].watch_id, zxids(&out[3])), (2, vec![8]));
    }

    #[tokio::test]
    async fn a_merged_response_is_bounded() {
        let (tx, rx) = mpsc::channel(MAX_EVENTS + 10);
        for zxid in 1..=(MAX_EVENTS as u64 + 10) {
            tx.try_send(events(1, &[zxid])).expect("room");
        }
        drop(tx);
        let out: Vec<WatchResponse> = Coalesced::new(rx).collect().await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].events.len(), MAX_EVENTS);
        assert_eq!(out[1].events.len(), 10);
        assert_eq!(out[1].events[0].zxid, MAX_EVENTS as u64 + 1);
    }
}
