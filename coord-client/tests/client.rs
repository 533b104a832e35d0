//! The client against a real 3-member cluster (`coord-server` processes started
//! by coord-testkit): round trips, typed errors, atomic multi and failover.
#![allow(clippy::unwrap_used)]

use std::time::Duration;

use coord_client::{Client, CreateMode, Error, Op, OpResult};
use coord_testkit::Cluster;

async fn connect(cluster: &Cluster) -> Client {
    Client::connect(cluster.endpoints()).await.unwrap()
}

fn is_sequential_of(path: &str, prefix: &str) -> bool {
    path.strip_prefix(prefix)
        .is_some_and(|suffix| suffix.len() == 10 && suffix.bytes().all(|b| b.is_ascii_digit()))
}

#[tokio::test(flavor = "multi_thread")]
async fn round_trip() {
    let cluster = Cluster::start(3).await;
    let client = connect(&cluster).await;

    let created = client
        .create("/app", "v1", CreateMode::Persistent)
        .await
        .unwrap();
    assert_eq!(created.path, "/app");
    assert_eq!((created.stat.version, created.stat.data_length), (0, 2));
    assert!(created.stat.czxid > 0);

    let read = client.get_with_header("/app").await.unwrap();
    let (data, stat) = read.value;
    assert_eq!(&data[..], b"v1");
    assert_eq!(stat.czxid, created.stat.czxid);
    assert!(read.header.zxid >= created.stat.czxid);
    assert_ne!(read.header.leader, 0);

    let stat = client.set("/app", "v2", 0).await.unwrap();
    assert_eq!(stat.version, 1);
    assert!(stat.mzxid > created.stat.mzxid);
    assert_eq!(
        client.exists("/app").await.unwrap().map(|s| s.version),
        Some(1)
    );
    assert_eq!(client.exists("/nope").await.unwrap(), None);

    client
        .create("/app/b", "", CreateMode::Persistent)
        .await
        .unwrap();
    client
        .create("/app/a", "", CreateMode::Persistent)
        .await
        .unwrap();
    let seq = client
        .create("/app/seq-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(is_sequential_of(&seq.path, "/app/seq-"), "{}", seq.path);
    let (names, parent) = client.children("/app").await.unwrap();
    let seq_name = seq.path.trim_start_matches("/app/").to_owned();
    assert_eq!(names, vec!["a".to_owned(), "b".to_owned(), seq_name]);
    assert_eq!(parent.num_children, 3);

    let results = client
        .multi(vec![
            Op::check("/app", 1),
            Op::create("/app/c", "c", CreateMode::Persistent),
            Op::set("/app/a", "x", -1),
            Op::delete("/app/b", -1),
        ])
        .await
        .unwrap();
    assert_eq!(results.len(), 4);
    assert_eq!(results[0], OpResult::Check);
    assert!(matches!(&results[1], OpResult::Create(c) if c.path == "/app/c"));
    assert!(matches!(&results[2], OpResult::Set(s) if s.version == 1));
    assert_eq!(results[3], OpResult::Delete);
    assert_eq!(client.exists("/app/b").await.unwrap(), None);

    // A serializable read after a sync on the same member sees the multi.
    let synced = client.sync("/").await.unwrap();
    assert!(synced.zxid >= read.header.zxid);
    let (data, _) = client.serializable().get("/app/a").await.unwrap();
    assert_eq!(&data[..], b"x");
    let (names, _) = client.serializable().children("/app").await.unwrap();
    assert!(names.contains(&"c".to_owned()));

    for child in ["a", "c", &seq.path["/app/".len()..]] {
        client.delete(&format!("/app/{child}"), -1).await.unwrap();
    }
    client.delete("/app", -1).await.unwrap();
    assert_eq!(client.exists("/app").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread")]
async fn typed_errors() {
    let cluster = Cluster::start(3).await;
    let client = connect(&cluster).await;

    let err = client.get("/missing").await.unwrap_err();
    assert!(matches!(err, Error::NoNode(_)), "{err:?}");
    assert_eq!(err.path(), Some("/missing"));
    let err = client
        .create("/missing/child", "", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NoNode(_)), "{err:?}");

    client
        .create("/dup", "", CreateMode::Persistent)
        .await
        .unwrap();
    let err = client
        .create("/dup", "", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NodeExists(_)), "{err:?}");
    assert_eq!(err.name(), "NodeExists");

    client
        .create("/dup/child", "", CreateMode::Persistent)
        .await
        .unwrap();
    let err = client.delete("/dup", -1).await.unwrap_err();
    assert!(matches!(err, Error::NotEmpty(_)), "{err:?}");

    let err = client.set("/dup/child", "x", 5).await.unwrap_err();
    assert!(matches!(err, Error::BadVersion(_)), "{err:?}");
    let err = client.delete("/dup/child", 3).await.unwrap_err();
    assert!(matches!(err, Error::BadVersion(_)), "{err:?}");

    for bad in ["relative", "/trailing/", "/a//b", "/a/./b"] {
        let err = client
            .create(bad, "", CreateMode::Persistent)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::InvalidPath(_)), "{bad}: {err:?}");
        assert!(!err.is_retryable());
    }
    let err = client.get("/a/../b").await.unwrap_err();
    assert!(matches!(err, Error::InvalidPath(_)), "{err:?}");

    // Over --max-data-bytes (1 MiB), and a multi over --max-request-bytes
    // (4 MiB): a typed refusal, not a lost connection.
    let big = vec![b'x'; (1 << 20) + 1];
    let err = client
        .create("/big", big, CreateMode::Persistent)
        .await
        .unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err:?}");
    let ops: Vec<Op> = (0..5)
        .map(|i| {
            Op::create(
                format!("/huge{i}"),
                vec![b'x'; 1 << 20],
                CreateMode::Persistent,
            )
        })
        .collect();
    let err = client.multi(ops).await.unwrap_err();
    assert!(matches!(err, Error::TooLarge(_)), "{err:?}");
    assert!(!err.is_retryable());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failed_multi_reports_the_op_and_leaves_no_trace() {
    let cluster = Cluster::start(3).await;
    let client = connect(&cluster).await;
    client
        .create("/m", "orig", CreateMode::Persistent)
        .await
        .unwrap();

    let err = client
        .multi(vec![
            Op::create("/m/new", "", CreateMode::Persistent),
            Op::set("/m", "changed", -1),
            Op::check("/m", 42),
            Op::delete("/m/new", -1),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::BadVersion(_)), "{err:?}");
    assert_eq!(err.op_index(), Some(2));
    assert_eq!(client.exists("/m/new").await.unwrap(), None);
    let (data, stat) = client.get("/m").await.unwrap();
    assert_eq!((&data[..], stat.version), (&b"orig"[..], 0));

    let err = client
        .multi(vec![
            Op::create("/m/a", "", CreateMode::Persistent),
            Op::create("/m/a", "", CreateMode::Persistent),
        ])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::NodeExists(_)), "{err:?}");
    assert_eq!(err.op_index(), Some(1));
    assert_eq!(client.children("/m").await.unwrap().0, Vec::<String>::new());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_member_is_failed_over() {
    let mut cluster = Cluster::start(3).await;
    let client = Client::builder(cluster.endpoints())
        .retry_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    client
        .create("/f", "before", CreateMode::Persistent)
        .await
        .unwrap();
    let talking_to = client.get_with_header("/f").await.unwrap().header.member;
    assert_ne!(talking_to, 0);
    cluster.kill(talking_to);

    let stat = client.set("/f", "after", 0).await.unwrap();
    assert_eq!(stat.version, 1);
    let read = client.get_with_header("/f").await.unwrap();
    assert_eq!(&read.value.0[..], b"after");
    assert_ne!(read.header.member, talking_to);
    let seq = client
        .create("/f/s-", "", CreateMode::PersistentSequential)
        .await
        .unwrap();
    assert!(is_sequential_of(&seq.path, "/f/s-"), "{}", seq.path);
    assert_eq!(client.children("/f").await.unwrap().0.len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_frozen_member_is_skipped_after_the_request_timeout() {
    let cluster = Cluster::start(3).await;
    let client = Client::builder(cluster.endpoints())
        .request_timeout(Duration::from_millis(500))
        .retry_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    client
        .create("/g", "0", CreateMode::Persistent)
        .await
        .unwrap();
    let talking_to = client.get_with_header("/g").await.unwrap().header.member;
    // SIGSTOP keeps the sockets open: only the request timeout can tell.
    cluster
        .member(talking_to)
        .signal(nix::sys::signal::Signal::SIGSTOP);
    let stat = client.set("/g", "1", 0).await.unwrap();
    assert_eq!(stat.version, 1, "the write was applied exactly once");
    let read = client.get_with_header("/g").await.unwrap();
    assert_ne!(read.header.member, talking_to);
    assert_eq!(&read.value.0[..], b"1");
    cluster
        .member(talking_to)
        .signal(nix::sys::signal::Signal::SIGCONT);
}

/// A member that takes no connections (its accept queue is full, so the
/// kernel drops the SYNs and a connect hangs): callers that reach it at the
/// same time share one connect timeout and move on together, instead of
/// each waiting out a connect of its own in turn.
#[tokio::test(flavor = "multi_thread")]
async fn callers_share_a_failed_connect_to_an_unresponsive_member() {
    let cluster = Cluster::start(1).await;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let blackhole = socket.listen(0).unwrap();
    let addr = blackhole.local_addr().unwrap();
    // The one connection a zero backlog admits fills the queue.
    let _queued = std::net::TcpStream::connect(addr).unwrap();
    let mut endpoints = vec![addr.to_string()];
    endpoints.extend(cluster.endpoints());
    let connect_timeout = Duration::from_millis(500);
    let client = Client::builder(endpoints)
        .connect_timeout(connect_timeout)
        .request_timeout(Duration::from_secs(20))
        .retry_timeout(Duration::from_secs(30))
        .build()
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let callers: Vec<_> = (0..8)
        .map(|_| {
            let client = client.clone();
            tokio::spawn(async move { client.exists("/").await })
        })
        .collect();
    for caller in callers {
        assert!(caller.await.unwrap().unwrap().is_some());
    }
    // One connect timeout, a backoff and a round trip; in turn, eight
    // connect timeouts (4 s) for the last caller.
    let took = started.elapsed();
    assert!(
        took < connect_timeout * 4,
        "8 callers took {took:?} to get past one unresponsive member"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn status_of_asks_exactly_one_member() {
    let cluster = Cluster::start(3).await;
    let client = connect(&cluster).await;
    for id in cluster.ids() {
        let status = client
            .status_of(&cluster.member(id).client_addr)
            .await
            .unwrap();
        assert_eq!(status.header.unwrap().member, id);
        assert_eq!(status.members.len(), 3);
    }
    let dead = format!("127.0.0.1:{}", coord_testkit::free_ports(1)[0]);
    let err = client.status_of(&dead).await.unwrap_err();
    assert!(err.is_retryable(), "{err}");
}
