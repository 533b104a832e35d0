//! Watches against real 3-member clusters: one-shot watches, persistent and
//! recursive watches, resumption on another member after a failure (checked
//! against the log of every write), compaction recovery and progress.
#![allow(clippy::unwrap_used)]

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use coord_client::{Client, CreateMode, EventType, Op, WatchEvent, WatchItem, WatchOptions};
use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use tokio::io::AsyncReadExt;
use tokio::net::{TcpListener, TcpStream};

use common::{a_follower, client_starting_at, events, key, next_item};

const WAIT: Duration = Duration::from_secs(10);

fn event(zxid: u64, kind: EventType, path: &str) -> (u64, EventType, String) {
    (zxid, kind, path.to_owned())
}

#[tokio::test(flavor = "multi_thread")]
async fn one_shot_watches_fire_once_with_the_right_types() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();

    let (stat, created) = client.exists_watch("/w").await.unwrap();
    assert_eq!(stat, None);
    let z = client
        .create_with_header("/w", "", CreateMode::Persistent)
        .await
        .unwrap()
        .header
        .zxid;
    let fired = tokio::time::timeout(WAIT, created).await.unwrap().unwrap();
    assert_eq!(key(&fired), event(z, EventType::NodeCreated, "/w"));

    let (_, _, changed) = client.get_watch("/w").await.unwrap();
    let (_, exists_changed) = client.exists_watch("/w").await.unwrap();
    let (names, _, children) = client.children_watch("/w").await.unwrap();
    assert!(names.is_empty());
    let z1 = client
        .set_with_header("/w", "1", -1)
        .await
        .unwrap()
        .header
        .zxid;
    let z2 = client
        .set_with_header("/w", "2", -1)
        .await
        .unwrap()
        .header
        .zxid;
    let fired = tokio::time::timeout(WAIT, changed).await.unwrap().unwrap();
    assert_eq!(key(&fired), event(z1, EventType::NodeDataChanged, "/w"));
    let fired = tokio::time::timeout(WAIT, exists_changed)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        key(&fired),
        event(z1, EventType::NodeDataChanged, "/w"),
        "fires once, at the first change"
    );
    assert!(z2 > z1);

    let z = client
        .create_with_header("/w/c", "", CreateMode::Persistent)
        .await
        .unwrap()
        .header
        .zxid;
    let fired = tokio::time::timeout(WAIT, children).await.unwrap().unwrap();
    assert_eq!(key(&fired), event(z, EventType::NodeChildrenChanged, "/w"));

    // A change between the read and awaiting the watch is not missed.
    let (_, _, deleted) = client.get_watch("/w/c").await.unwrap();
    let z = client
        .delete_with_header("/w/c", -1)
        .await
        .unwrap()
        .header
        .zxid;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let fired = tokio::time::timeout(WAIT, deleted).await.unwrap().unwrap();
    assert_eq!(key(&fired), event(z, EventType::NodeDeleted, "/w/c"));

    let err = client.get_watch("/nope").await.map(|_| ()).unwrap_err();
    assert_eq!(err.name(), "NoNode");
}

/// Applies `ops` atomically and returns the write's zxid.
async fn write(client: &Client, ops: Vec<Op>) -> u64 {
    client.multi_with_header(ops).await.unwrap().header.zxid
}

/// The events' keys, checking they come in zxid order, then sorted so the
/// order of the events of one zxid does not matter.
fn in_zxid_order(events: &[WatchEvent]) -> Vec<(u64, EventType, String)> {
    let order: Vec<u64> = events.iter().map(|e| e.zxid).collect();
    assert!(order.is_sorted(), "out of zxid order: {order:?}");
    sorted(events.iter().map(key).collect())
}

fn sorted<T: Ord>(mut items: Vec<T>) -> Vec<T> {
    items.sort();
    items
}

#[tokio::test(flavor = "multi_thread")]
async fn persistent_and_recursive_watches_see_every_change_in_order() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let mut node = client.watch("/p", WatchOptions::default()).await.unwrap();
    let recursive = WatchOptions {
        recursive: true,
        ..WatchOptions::default()
    };
    let mut tree = client.watch("/p", recursive).await.unwrap();

    let create = |p: &'static str| Op::create(p, "", CreateMode::Persistent);
    let c = write(&client, vec![create("/p")]).await;
    let s = write(&client, vec![Op::set("/p", "x", -1)]).await;
    let a = write(&client, vec![create("/p/a")]).await;
    let b = write(&client, vec![create("/p/a/b")]).await;
    let sb = write(&client, vec![Op::set("/p/a/b", "y", -1)]).await;
    let db = write(&client, vec![Op::delete("/p/a/b", -1)]).await;
    let m = write(&client, vec![Op::set("/p", "z", -1), create("/p/m")]).await;
    let deletes = ["/p/a", "/p/m", "/p"].map(|p| Op::delete(p, -1));
    let d = write(&client, deletes.to_vec()).await;

    use EventType::*;
    let expected_node = vec![
        event(c, NodeCreated, "/p"),
        event(s, NodeDataChanged, "/p"),
        event(a, NodeChildrenChanged, "/p"),
        event(m, NodeDataChanged, "/p"),
        event(m, NodeChildrenChanged, "/p"),
        event(d, NodeChildrenChanged, "/p"),
        event(d, NodeChildrenChanged, "/p"),
        event(d, NodeDeleted, "/p"),
    ];
    let expected_tree = vec![
        event(c, NodeCreated, "/p"),
        event(s, NodeDataChanged, "/p"),
        event(a, NodeCreated, "/p/a"),
        event(b, NodeCreated, "/p/a/b"),
        event(sb, NodeDataChanged, "/p/a/b"),
        event(db, NodeDeleted, "/p/a/b"),
        event(m, NodeDataChanged, "/p"),
        event(m, NodeCreated, "/p/m"),
        event(d, NodeDeleted, "/p/a"),
        event(d, NodeDeleted, "/p/m"),
        event(d, NodeDeleted, "/p"),
    ];
    let got = events(&mut node, expected_node.len(), WAIT).await;
    assert_eq!(in_zxid_order(&got), sorted(expected_node));
    let got = events(&mut tree, expected_tree.len(), WAIT).await;
    assert_eq!(in_zxid_order(&got), sorted(expected_tree));
    assert!(tree.last_zxid() >= d);
    // Nothing more arrives but progress.
    for stream in [&mut node, &mut tree] {
        if let Ok(Some(Ok(item))) =
            tokio::time::timeout(Duration::from_millis(1500), stream.next()).await
        {
            assert!(matches!(item, WatchItem::Progress(_)), "{item:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_watch_resumes_on_another_member_with_exactly_the_missed_changes() {
    let mut cluster = Cluster::start(3).await;
    let watched = a_follower(&cluster).await;
    let watcher = client_starting_at(&cluster, watched).await;
    let others: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != watched)
        .map(|id| cluster.member(id).client_addr.clone())
        .collect();
    let writer = Client::connect(others).await.unwrap();
    writer
        .create("/r", "", CreateMode::Persistent)
        .await
        .unwrap();
    let recursive = WatchOptions {
        recursive: true,
        after_zxid: None,
    };
    let mut stream = watcher.watch("/r", recursive).await.unwrap();
    let (_, _, one_shot) = watcher.children_watch("/r").await.unwrap();

    let mut log = Vec::new();
    for i in 0..20 {
        let path = format!("/r/n{i}");
        let z = writer
            .create_with_header(&path, "", CreateMode::Persistent)
            .await
            .unwrap()
            .header
            .zxid;
        log.push(event(z, EventType::NodeCreated, &path));
        if i == 5 {
            cluster.kill(watched);
        }
        if i == 14 {
            cluster.restart(watched);
        }
        if i % 3 == 0 {
            let z = writer
                .set_with_header(&path, "v", -1)
                .await
                .unwrap()
                .header
                .zxid;
            log.push(event(z, EventType::NodeDataChanged, &path));
        }
    }
    let got: Vec<_> = events(&mut stream, log.len(), Duration::from_secs(20))
        .await
        .iter()
        .map(key)
        .collect();
    assert_eq!(got, log, "exactly the writes, in order, none twice");
    let fired = tokio::time::timeout(WAIT, one_shot).await.unwrap().unwrap();
    assert_eq!(
        key(&fired),
        event(log[0].0, EventType::NodeChildrenChanged, "/r")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_member_is_given_up_by_the_watch_stream() {
    let cluster = Cluster::start(3).await;
    let stopped = a_follower(&cluster).await;
    let watcher = client_starting_at(&cluster, stopped).await;
    let mut stream = watcher.watch("/s", WatchOptions::default()).await.unwrap();
    cluster.member(stopped).signal(Signal::SIGSTOP);
    let writer = client_without(&cluster, stopped).await;
    let z = writer
        .create_with_header("/s", "", CreateMode::Persistent)
        .await
        .unwrap()
        .header
        .zxid;
    let got = events(&mut stream, 1, WAIT).await;
    cluster.member(stopped).signal(Signal::SIGCONT);
    assert_eq!(key(&got[0]), event(z, EventType::NodeCreated, "/s"));
}

/// A client on every member but `skip` (writes must not wait for a stopped one).
async fn client_without(cluster: &Cluster, skip: u64) -> Client {
    let endpoints: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != skip)
        .map(|id| cluster.member(id).client_addr.clone())
        .collect();
    Client::connect(endpoints).await.unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_compacted_watch_resyncs_and_keeps_delivering() {
    let cluster = Cluster::builder(3)
        .args(["--watch-history", "10"])
        .start()
        .await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let first = client
        .create_with_header("/c", "", CreateMode::Persistent)
        .await
        .unwrap()
        .header
        .zxid;
    let mut sets = Vec::new();
    for i in 0..30 {
        sets.push(
            client
                .set_with_header("/c", format!("{i}"), -1)
                .await
                .unwrap()
                .header
                .zxid,
        );
    }
    let last = sets[sets.len() - 1];
    let options = WatchOptions {
        recursive: false,
        after_zxid: Some(first),
    };
    let mut stream = client.watch("/c", options).await.unwrap();
    let WatchItem::Resynced { from, to } = next_item(&mut stream, WAIT).await else {
        panic!("expected a resync first");
    };
    assert_eq!(from, first);
    assert!(
        to > first && to < last,
        "resumed after {to}, last write {last}"
    );
    // The events still in the history follow, then the new ones, in order.
    let expected: Vec<u64> = sets.iter().copied().filter(|z| *z > to).collect();
    let kept = events(&mut stream, expected.len(), WAIT).await;
    let zxids: Vec<u64> = kept.iter().map(|e| e.zxid).collect();
    assert_eq!(zxids, expected);
    let z = client
        .set_with_header("/c", "new", -1)
        .await
        .unwrap()
        .header
        .zxid;
    let next = events(&mut stream, 1, WAIT).await;
    assert_eq!(key(&next[0]), event(z, EventType::NodeDataChanged, "/c"));
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_watches_are_typed_errors() {
    let cluster = Cluster::builder(1)
        .args(["--max-watches-per-stream", "2"])
        .start()
        .await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let err = client
        .watch("bad", WatchOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.name(), "InvalidPath");
    let a = client.watch("/", WatchOptions::default()).await.unwrap();
    let _b = client.watch("/x", WatchOptions::default()).await.unwrap();
    let err = client
        .watch("/y", WatchOptions::default())
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(err.name(), "TooManyWatches");
    // Dropping a watch removes it from the server, making room.
    drop(a);
    let mut room = false;
    for _ in 0..20 {
        if client.watch("/y", WatchOptions::default()).await.is_ok() {
            room = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(room, "a dropped watch was not removed");
}

#[tokio::test(flavor = "multi_thread")]
async fn progress_arrives_on_an_idle_watch() {
    let cluster = Cluster::builder(3)
        .args(["--watch-progress-ms", "200"])
        .start()
        .await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let mut stream = client
        .watch("/idle", WatchOptions::default())
        .await
        .unwrap();
    let start = stream.last_zxid();
    let mut progress = 0;
    while progress < 3 {
        match next_item(&mut stream, Duration::from_secs(2)).await {
            WatchItem::Progress(z) => {
                assert!(z >= start);
                progress += 1;
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

/// A proxy to `upstream` that answers a framed watch stream as a member that
/// predates them does (it reads the magic and closes the connection) and
/// passes every other connection through; returns its address and how many
/// framed streams it refused.
async fn proxy_without_framed_watches(upstream: String) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let refused = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&refused);
    tokio::spawn(async move {
        while let Ok((mut inbound, _)) = listener.accept().await {
            let upstream = upstream.clone();
            let counted = Arc::clone(&counted);
            tokio::spawn(async move {
                let mut first = [0u8; 8];
                // Every protocol on the port sends at least 8 bytes first.
                while inbound.peek(&mut first).await.unwrap_or(0) < first.len() {
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                if &first == coord_proto::WATCH_MAGIC {
                    counted.fetch_add(1, Ordering::SeqCst);
                    let _ = inbound.read_exact(&mut first).await;
                    return;
                }
                if let Ok(mut outbound) = TcpStream::connect(&upstream).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    (addr, refused)
}

/// A client opens its watch stream over coord's framing; a member that
/// predates it closes such a connection, and the client then opens the
/// stream over gRPC on the same member.
#[tokio::test(flavor = "multi_thread")]
async fn a_member_without_framed_streams_serves_watches_over_grpc() {
    let cluster = Cluster::start(1).await;
    let (proxy, refused) = proxy_without_framed_watches(cluster.endpoints()[0].clone()).await;
    let client = Client::connect([proxy]).await.unwrap();
    let mut stream = client.watch("/old", WatchOptions::default()).await.unwrap();
    let z = client
        .create_with_header("/old", "", CreateMode::Persistent)
        .await
        .unwrap()
        .header
        .zxid;
    let got = events(&mut stream, 1, WAIT).await;
    assert_eq!(key(&got[0]), event(z, EventType::NodeCreated, "/old"));
    assert!(
        refused.load(Ordering::SeqCst) >= 1,
        "the client tried a framed stream first"
    );
}
