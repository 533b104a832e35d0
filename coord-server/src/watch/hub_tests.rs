//! The hub on its own: fan-out, one-shot firing, resume from history,
//! compaction, limits and cutting off slow streams.

use coord_proto::v1::{EventType, WatchCreate, WatchKind, WatchResponse};
use tokio::sync::mpsc::Receiver;

use super::coalesce::Queued;
use super::hub::{WatchConfig, WatchHub};
use crate::core::Event;

const CONFIG: WatchConfig = WatchConfig {
    history_events: 10,
    max_watches_per_stream: 3,
    stream_buffer: 64,
};

fn create(id: u64, path: &str, kind: WatchKind, after: Option<u64>) -> WatchCreate {
    WatchCreate {
        watch_id: id,
        path: path.into(),
        kind: kind as i32,
        after_zxid: after,
    }
}

fn drain(rx: &mut Receiver<Queued>) -> Vec<WatchResponse> {
    let mut out = Vec::new();
    while let Ok(r) = rx.try_recv() {
        out.push(r.into());
    }
    out
}

fn events(responses: &[WatchResponse]) -> Vec<(u64, String, u64)> {
    responses
        .iter()
        .flat_map(|r| {
            r.events
                .iter()
                .map(move |e| (r.watch_id, e.path.clone(), e.zxid))
        })
        .collect()
}

fn created(path: &str) -> Vec<Event> {
    vec![
        Event::new(EventType::NodeCreated, path),
        Event::new(EventType::NodeChildrenChanged, "/"),
    ]
}

#[test]
fn one_shot_fires_once_and_persistent_keeps_going() {
    let hub = WatchHub::new(CONFIG, 0);
    let (s, mut rx) = hub.open_stream();
    hub.create(s, &create(1, "/a", WatchKind::Exists, None));
    hub.create(s, &create(2, "/", WatchKind::PersistentRecursive, None));
    drain(&mut rx);
    hub.publish(1, created("/a"));
    hub.publish(2, vec![Event::new(EventType::NodeDataChanged, "/a")]);
    let got = drain(&mut rx);
    assert_eq!(
        events(&got),
        [
            (1, "/a".into(), 1),
            (2, "/a".into(), 1),
            (2, "/a".into(), 2)
        ]
    );
    assert!(got[0].canceled, "a one-shot watch is gone once fired");
    assert!(!got[1].canceled);
}

#[test]
fn resume_from_history_misses_nothing_and_repeats_nothing() {
    let hub = WatchHub::new(CONFIG, 0);
    for z in 1..=5 {
        hub.publish(z, created(&format!("/n{z}")));
    }
    let (s, mut rx) = hub.open_stream();
    hub.create(s, &create(7, "/", WatchKind::PersistentRecursive, Some(2)));
    hub.publish(6, created("/n6"));
    let zxids: Vec<u64> = events(&drain(&mut rx)).iter().map(|e| e.2).collect();
    assert_eq!(zxids, [3, 4, 5, 6]);
}

#[test]
fn resuming_before_the_history_is_compacted() {
    let hub = WatchHub::new(CONFIG, 0);
    for z in 1..=8 {
        hub.publish(z, created(&format!("/n{z}")));
    }
    assert!(hub.oldest_zxid() > 1);
    let (s, mut rx) = hub.open_stream();
    hub.create(s, &create(1, "/", WatchKind::PersistentRecursive, Some(0)));
    let got = drain(&mut rx);
    assert_eq!(got.len(), 1);
    assert!(got[0].canceled);
    assert_eq!(got[0].compacted_zxid, hub.oldest_zxid());
}

#[test]
fn limits_and_bad_paths_are_refused() {
    let hub = WatchHub::new(CONFIG, 0);
    let (s, mut rx) = hub.open_stream();
    for id in 0..4 {
        hub.create(s, &create(id, "/a", WatchKind::Persistent, None));
    }
    hub.create(s, &create(9, "a//", WatchKind::Persistent, None));
    let refused: Vec<i32> = drain(&mut rx)
        .iter()
        .filter_map(|r| r.error.as_ref().map(|e| e.code))
        .collect();
    assert_eq!(
        refused,
        [
            coord_proto::v1::ErrorCode::TooManyWatches as i32,
            coord_proto::v1::ErrorCode::InvalidPath as i32
        ]
    );
}

#[test]
fn progress_reports_the_applied_zxid() {
    let hub = WatchHub::new(CONFIG, 0);
    let (s, mut rx) = hub.open_stream();
    hub.create(s, &create(1, "/quiet", WatchKind::Persistent, None));
    hub.publish(3, created("/other"));
    hub.progress(s);
    let got = drain(&mut rx);
    assert_eq!(got.last().map(|r| r.progress_zxid), Some(3));
}

#[test]
fn a_snapshot_ends_every_watch_as_compacted() {
    let hub = WatchHub::new(CONFIG, 0);
    let (s, mut rx) = hub.open_stream();
    hub.create(s, &create(1, "/", WatchKind::PersistentRecursive, None));
    drain(&mut rx);
    hub.reset(100);
    let got = drain(&mut rx);
    assert!(got[0].canceled);
    assert_eq!(got[0].compacted_zxid, 101);
    assert_eq!(hub.oldest_zxid(), 101);
}

#[test]
fn a_stream_that_falls_behind_is_cut_off() {
    let small = WatchConfig {
        stream_buffer: 2,
        ..CONFIG
    };
    let hub = WatchHub::new(small, 0);
    let (s, mut rx) = hub.open_stream();
    hub.create(s, &create(1, "/", WatchKind::PersistentRecursive, None));
    for z in 1..=5 {
        hub.publish(z, created(&format!("/n{z}")));
    }
    let got = drain(&mut rx);
    assert_eq!(
        got.len(),
        2,
        "created + one event, then the stream was dropped"
    );
    assert!(rx.try_recv().is_err());
    hub.publish(6, created("/n6"));
    assert!(drain(&mut rx).is_empty());
}

#[test]
fn a_zxids_events_reach_each_watch_in_one_response_in_order() {
    let hub = WatchHub::new(CONFIG, 0);
    let (s1, mut rx1) = hub.open_stream();
    let (s2, mut rx2) = hub.open_stream();
    hub.create(s1, &create(1, "/", WatchKind::PersistentRecursive, None));
    hub.create(s1, &create(2, "/a", WatchKind::Children, None));
    hub.create(s2, &create(1, "/a", WatchKind::PersistentRecursive, None));
    drain(&mut rx1);
    drain(&mut rx2);
    hub.publish(
        4,
        vec![
            Event::new(EventType::NodeCreated, "/a/x"),
            Event::new(EventType::NodeChildrenChanged, "/a"),
            Event::new(EventType::NodeCreated, "/a/y"),
            Event::new(EventType::NodeCreated, "/b"),
        ],
    );
    let got1 = drain(&mut rx1);
    let got2 = drain(&mut rx2);
    let paths =
        |r: &WatchResponse| -> Vec<String> { r.events.iter().map(|e| e.path.clone()).collect() };
    assert_eq!(got1.len(), 2, "one response per watch: {got1:?}");
    assert_eq!(
        (got1[0].watch_id, paths(&got1[0])),
        (1, vec!["/a/x".into(), "/a/y".into(), "/b".into()])
    );
    assert_eq!((got1[1].watch_id, paths(&got1[1])), (2, vec!["/a".into()]));
    assert!(got1[1].canceled, "the one-shot children watch fired");
    assert_eq!(got2.len(), 1);
    assert_eq!(
        (got2[0].watch_id, paths(&got2[0])),
        (1, vec!["/a/x".into(), "/a/y".into()])
    );
    hub.publish(
        5,
        vec![
            Event::new(EventType::NodeDeleted, "/a/x"),
            Event::new(EventType::NodeChildrenChanged, "/a"),
        ],
    );
    let again: Vec<u64> = drain(&mut rx1).iter().map(|r| r.watch_id).collect();
    assert_eq!(again, [1], "the fired watch is gone from the index");
}
