//! A stream's queue and the coalescing of its responses: responses of one watch
//! that carry only events and wait back to back in the stream's queue go out
//! as one response. A watcher that keeps up gets one response per change, as
//! before; one that falls behind (a thousand watchers of a busy node on two
//! cores) gets fewer, larger messages, so it catches up instead of being cut
//! off as too slow. Events stay in zxid order and a zxid's events stay in one
//! response.

use std::pin::Pin;
use std::task::{Context, Poll};

use coord_proto::v1::{WatchEvent, WatchResponse};
use tokio::sync::mpsc;
use tokio_stream::Stream;

/// Events merged into one response at most.
const MAX_EVENTS: usize = 256;
/// Path bytes merged into one response at most (well under gRPC's 4 MiB).
const MAX_PATH_BYTES: usize = 256 * 1024;

/// What a stream's queue holds. Event deliveries, nearly all of a busy
/// stream's traffic, are queued in a quarter of a `WatchResponse`'s size
/// (40 bytes against 160): the Raft thread moves one into every watching
/// stream's queue per change and a tokio worker moves it out again (with a
/// thousand watchers the pushes were 7% of a member's CPU samples, the
/// workers' copies 10%). Anything else is queued whole, boxed.
#[derive(Debug)]
pub enum Queued {
    /// Events of one watch; `canceled` when they fire a one-shot watch.
    Events {
        /// The watch they belong to.
        watch_id: u64,
        /// True when this delivery ends the watch.
        canceled: bool,
        /// The events, in zxid order.
        events: Vec<WatchEvent>,
    },
    /// Any other response (created, canceled, compacted, progress, error).
    Other(Box<WatchResponse>),
}

impl From<WatchResponse> for Queued {
    fn from(r: WatchResponse) -> Self {
        let only_events = !r.events.is_empty()
            && r.header.is_none()
            && !r.created
            && r.compacted_zxid == 0
            && r.progress_zxid == 0
            && r.error.is_none();
        if only_events {
            Self::Events {
                watch_id: r.watch_id,
                canceled: r.canceled,
                events: r.events,
            }
        } else {
            Self::Other(Box::new(r))
        }
    }
}

impl From<Queued> for WatchResponse {
    fn from(q: Queued) -> Self {
        match q {
            Queued::Events {
                watch_id,
                canceled,
                events,
            } => Self {
                watch_id,
                canceled,
                events,
                ..Self::default()
            },
            Queued::Other(r) => *r,
        }
    }
}

/// The responses of one stream, with back-to-back event responses of one
/// watch merged.
#[derive(Debug)]
pub struct Coalesced {
    rx: mpsc::Receiver<Queued>,
    /// A response taken from the queue that could not be merged: sent next.
    held: Option<Queued>,
}

impl Coalesced {
    /// Wraps a stream's queue.
    pub fn new(rx: mpsc::Receiver<Queued>) -> Self {
        Self { rx, held: None }
    }
}

fn path_bytes(events: &[WatchEvent]) -> usize {
    events.iter().map(|e| e.path.len()).sum()
}

impl Stream for Coalesced {
    type Item = WatchResponse;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<WatchResponse>> {
        let this = &mut *self;
        let first = match this.held.take() {
            Some(q) => q,
            None => match this.rx.poll_recv(cx) {
                Poll::Ready(Some(q)) => q,
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
        };
        let Queued::Events {
            watch_id,
            canceled: false,
            mut events,
        } = first
        else {
            return Poll::Ready(Some(first.into()));
        };
        let mut bytes = path_bytes(&events);
        while events.len() < MAX_EVENTS && bytes < MAX_PATH_BYTES {
            let Ok(next) = this.rx.try_recv() else { break };
            match next {
                Queued::Events {
                    watch_id: id,
                    canceled: false,
                    events: more,
                } if id == watch_id => {
                    bytes += path_bytes(&more);
                    events.extend(more);
                }
                other => {
                    this.held = Some(other);
                    break;
                }
            }
        }
        Poll::Ready(Some(
            Queued::Events {
                watch_id,
                canceled: false,
                events,
            }
            .into(),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
            tx.try_send(r.into()).expect("room");
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
            tx.try_send(events(1, &[zxid]).into()).expect("room");
        }
        drop(tx);
        let out: Vec<WatchResponse> = Coalesced::new(rx).collect().await;
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].events.len(), MAX_EVENTS);
        assert_eq!(out[1].events.len(), 10);
        assert_eq!(out[1].events[0].zxid, MAX_EVENTS as u64 + 1);
    }

    #[test]
    fn an_event_delivery_is_queued_in_a_quarter_of_a_response() {
        let (queued, whole) = (size_of::<Queued>(), size_of::<WatchResponse>());
        assert!(4 * queued <= whole, "{queued} bytes queued for {whole}");
    }

    #[test]
    fn only_event_deliveries_are_queued_unboxed_and_both_come_back_whole() {
        let delivery = events(3, &[9]);
        assert!(matches!(
            Queued::from(delivery.clone()),
            Queued::Events {
                watch_id: 3,
                canceled: false,
                ..
            }
        ));
        let progress = WatchResponse {
            watch_id: 3,
            progress_zxid: 9,
            ..WatchResponse::default()
        };
        assert!(matches!(Queued::from(progress.clone()), Queued::Other(_)));
        for r in [delivery, progress] {
            assert_eq!(WatchResponse::from(Queued::from(r.clone())), r);
        }
    }
}
