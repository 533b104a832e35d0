//! Unit tests of the watch registry: resume points, de-duplication, one-shot
//! firing, compaction and errors, with hand-made server responses.

use coord_proto::v1::{self as pb, ErrorCode, ErrorDetail, EventType};
use tokio::sync::{mpsc, oneshot};

use super::*;

type Items = mpsc::UnboundedReceiver<Result<WatchItem, Error>>;

fn persistent(
    registry: &mut Registry,
    id: u64,
    after: u64,
) -> (Items, oneshot::Receiver<Result<(), Error>>) {
    let (tx, rx) = mpsc::unbounded_channel();
    let (created, created_rx) = oneshot::channel();
    let entry = Entry::new(
        "/a".into(),
        WatchKind::Persistent,
        after,
        Sink::Stream(tx),
        created,
    );
    let create = registry.add(id, entry);
    assert_eq!(create.after_zxid, Some(after));
    (rx, created_rx)
}

fn event(zxid: u64, kind: EventType) -> pb::WatchEvent {
    pb::WatchEvent {
        r#type: kind.into(),
        path: "/a".into(),
        zxid,
    }
}

fn response(id: u64) -> WatchResponse {
    WatchResponse {
        watch_id: id,
        ..WatchResponse::default()
    }
}

fn created(id: u64) -> WatchResponse {
    WatchResponse {
        created: true,
        ..response(id)
    }
}

fn events(id: u64, zxids: &[u64]) -> WatchResponse {
    WatchResponse {
        events: zxids
            .iter()
            .map(|z| event(*z, EventType::NodeDataChanged))
            .collect(),
        ..response(id)
    }
}

fn drain(rx: &mut Items) -> Vec<WatchItem> {
    let mut out = Vec::new();
    while let Ok(item) = rx.try_recv() {
        out.push(item.expect("no error"));
    }
    out
}

fn zxids(items: &[WatchItem]) -> Vec<u64> {
    items
        .iter()
        .filter_map(|i| match i {
            WatchItem::Event(e) => Some(e.zxid),
            _ => None,
        })
        .collect()
}

#[test]
fn persistent_events_are_delivered_once_in_order() {
    let mut r = Registry::default();
    let (mut rx, mut created_rx) = persistent(&mut r, 1, 10);
    assert_eq!(r.on_response(created(1)), None);
    assert_eq!(created_rx.try_recv().ok(), Some(Ok(())));
    assert_eq!(r.on_response(events(1, &[11, 12, 12])), None);
    // A replay after a reconnect: everything at or below 12 is dropped.
    assert_eq!(r.on_response(events(1, &[9, 12, 13])), None);
    assert_eq!(zxids(&drain(&mut rx)), [11, 12, 12, 13]);
    // Registration again resumes after the last delivered zxid.
    assert_eq!(r.creates()[0].after_zxid, Some(13));
}

#[test]
fn progress_moves_the_resume_point_but_never_back() {
    let mut r = Registry::default();
    let (mut rx, _created) = persistent(&mut r, 1, 10);
    r.on_response(events(1, &[15]));
    let stale = WatchResponse {
        progress_zxid: 12,
        ..response(1)
    };
    r.on_response(stale);
    let fresh = WatchResponse {
        progress_zxid: 20,
        ..response(1)
    };
    r.on_response(fresh);
    let items = drain(&mut rx);
    assert_eq!(items.len(), 2);
    assert!(matches!(items[1], WatchItem::Progress(20)), "{items:?}");
    assert_eq!(r.creates()[0].after_zxid, Some(20));
}

#[test]
fn compaction_resyncs_a_persistent_watch() {
    let mut r = Registry::default();
    let (mut rx, mut created_rx) = persistent(&mut r, 1, 3);
    let compacted = WatchResponse {
        canceled: true,
        compacted_zxid: 40,
        ..response(1)
    };
    let again = r.on_response(compacted).expect("registered again");
    assert_eq!(again.after_zxid, Some(39));
    // A second compaction before the registration keeps the original gap start.
    let again = r
        .on_response(WatchResponse {
            canceled: true,
            compacted_zxid: 45,
            ..response(1)
        })
        .expect("registered again");
    assert_eq!(again.after_zxid, Some(44));
    assert!(created_rx.try_recv().is_err(), "not created yet");
    r.on_response(created(1));
    assert_eq!(created_rx.try_recv().ok(), Some(Ok(())));
    r.on_response(events(1, &[44, 46]));
    let items = drain(&mut rx);
    assert!(
        matches!(items[0], WatchItem::Resynced { from: 3, to: 44 }),
        "{items:?}"
    );
    assert_eq!(zxids(&items), [46]);
}

#[test]
fn one_shot_fires_once_and_is_gone() {
    let mut r = Registry::default();
    let (tx, mut rx) = oneshot::channel();
    let (created_tx, _created_rx) = oneshot::channel();
    let entry = Entry::new("/a".into(), WatchKind::Data, 7, Sink::Once(tx), created_tx);
    r.add(2, entry);
    r.on_response(created(2));
    assert_eq!(r.creates()[0].after_zxid, Some(7));
    let fired = WatchResponse {
        canceled: true,
        events: vec![event(8, EventType::NodeDeleted)],
        ..response(2)
    };
    assert_eq!(r.on_response(fired), None);
    let got = rx.try_recv().expect("fired").expect("an event");
    assert_eq!((got.kind, got.zxid), (EventType::NodeDeleted, 8));
    assert!(r.is_empty());
    assert_eq!(r.on_response(events(2, &[9])), None);
}

#[test]
fn one_shot_compaction_is_an_error() {
    let mut r = Registry::default();
    let (tx, mut rx) = oneshot::channel();
    let (created_tx, _created_rx) = oneshot::channel();
    r.add(
        3,
        Entry::new(
            "/a".into(),
            WatchKind::Exists,
            7,
            Sink::Once(tx),
            created_tx,
        ),
    );
    r.on_response(created(3));
    let compacted = WatchResponse {
        canceled: true,
        compacted_zxid: 30,
        ..response(3)
    };
    assert_eq!(r.on_response(compacted), None);
    let err = rx.try_recv().expect("answered").expect_err("compacted");
    assert_eq!(
        err,
        Error::Compacted {
            after_zxid: 7,
            oldest_zxid: 30
        }
    );
}

#[test]
fn errors_reach_the_creator_first_then_the_stream() {
    let mut r = Registry::default();
    let detail = |code: ErrorCode| ErrorDetail {
        code: code.into(),
        message: "m".into(),
        op_index: -1,
        ..ErrorDetail::default()
    };
    let (_rx, mut created_rx) = persistent(&mut r, 4, 0);
    let refused = WatchResponse {
        canceled: true,
        error: Some(detail(ErrorCode::TooManyWatches)),
        ..response(4)
    };
    r.on_response(refused);
    let err = created_rx
        .try_recv()
        .expect("answered")
        .expect_err("refused");
    assert_eq!(err.name(), "TooManyWatches");
    assert!(r.is_empty());

    let (mut rx, _created) = persistent(&mut r, 5, 0);
    r.on_response(created(5));
    let refused = WatchResponse {
        canceled: true,
        error: Some(detail(ErrorCode::InvalidPath)),
        ..response(5)
    };
    r.on_response(refused);
    let item = rx.try_recv().expect("an item");
    assert_eq!(item.map_err(|e| e.name()), Err("InvalidPath"));
    assert!(r.is_empty());
}

#[test]
fn removed_watches_ignore_late_responses() {
    let mut r = Registry::default();
    let (_rx, _created) = persistent(&mut r, 6, 0);
    assert!(r.remove(6));
    assert!(!r.remove(6));
    assert_eq!(r.on_response(events(6, &[1])), None);
    let unknown_cancel = WatchResponse {
        canceled: true,
        ..response(6)
    };
    assert_eq!(r.on_response(unknown_cancel), None);
}
