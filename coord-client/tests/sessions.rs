//! Leases, sessions and the node kinds that depend on them, against real
//! 3-member clusters: a killed `coordctl create -e` process loses its node,
//! sessions survive a leader kill, session states follow a stopped member,
//! and containers, TTL nodes and lease bounds behave as documented.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use coord_client::{
    Client, CreateMode, CreateOptions, EventType, SessionState, WatchItem, WatchOptions,
};
use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use tokio::sync::watch;

use common::{a_follower, client_starting_at, coordctl, events, eventually, next_item, next_line};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_coordctl_loses_its_ephemeral_node() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let eps = cluster.endpoints().join(",");
    let args = ["create", "-e", "--session-ttl", "2s", "/eph", "held"];
    let mut holder = coordctl("holder", &eps, &args);
    assert_eq!(next_line(&mut holder).await, "/eph");

    let (data, stat, data_watch) = client.get_watch("/eph").await.unwrap();
    assert_eq!(&data[..], b"held");
    let owner = stat.ephemeral_owner;
    assert_ne!(owner, 0);
    let ttl = client.lease_time_to_live(owner).await.unwrap();
    assert_eq!(
        (ttl.granted_ttl, ttl.nodes.clone()),
        (Duration::from_secs(2), vec!["/eph".to_owned()])
    );
    let (_, exists_watch) = client.exists_watch("/eph").await.unwrap();
    let mut persistent = client.watch("/eph", WatchOptions::default()).await.unwrap();
    // The process keeps the node alive past its TTL.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(client.exists("/eph").await.unwrap().is_some());

    holder.kill(); // SIGKILL by pid, reaped
    let killed = Instant::now();
    let deleted = tokio::time::timeout(WAIT, data_watch)
        .await
        .unwrap()
        .unwrap();
    let elapsed = killed.elapsed();
    eprintln!("the ephemeral node was deleted {elapsed:?} after the kill");
    assert_eq!(
        (deleted.kind, deleted.path.as_str()),
        (EventType::NodeDeleted, "/eph")
    );
    // TTL (2 s) + one election timeout (at most 1 s with 50 ms ticks) + slack.
    assert!(
        elapsed < Duration::from_millis(3500),
        "deleted {elapsed:?} after the kill"
    );
    let fired = tokio::time::timeout(WAIT, exists_watch)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        (fired.kind, fired.zxid),
        (EventType::NodeDeleted, deleted.zxid)
    );
    let seen = events(&mut persistent, 1, WAIT).await;
    assert_eq!(
        (seen[0].kind, seen[0].zxid),
        (EventType::NodeDeleted, deleted.zxid)
    );
    assert_eq!(client.exists("/eph").await.unwrap(), None);
    let err = client.lease_time_to_live(owner).await.unwrap_err();
    assert_eq!(err.name(), "LeaseNotFound");
}

/// Records whether `states` ever showed `Expired`, until the sender goes.
fn ever_expired(mut states: watch::Receiver<SessionState>) -> tokio::task::JoinHandle<bool> {
    tokio::spawn(async move {
        loop {
            if *states.borrow_and_update() == SessionState::Expired {
                return true;
            }
            if states.changed().await.is_err() {
                return *states.borrow() == SessionState::Expired;
            }
        }
    })
}

#[tokio::test(flavor = "multi_thread")]
async fn fifty_sessions_survive_a_leader_kill() {
    let mut cluster = Cluster::start(3).await;
    let leader = cluster.wait_for_leader(WAIT).await;
    // Every session's keep-alive stream starts on the leader about to die.
    let client = client_starting_at(&cluster, leader).await;
    client
        .create("/s", "", CreateMode::Persistent)
        .await
        .unwrap();
    let ttl = Duration::from_secs(3);
    let starts = (0..50).map(|_| {
        let client = client.clone();
        async move { client.session(ttl).await }
    });
    let sessions: Vec<_> = join_all(starts).await;
    for (i, session) in sessions.iter().enumerate() {
        client
            .create_ephemeral(&format!("/s/{i}"), "", session)
            .await
            .unwrap();
    }
    let monitors: Vec<_> = sessions.iter().map(|s| ever_expired(s.states())).collect();

    cluster.kill(leader);
    cluster.wait_for_new_leader(leader, WAIT).await;
    tokio::time::sleep(2 * ttl).await;

    let (names, _) = client.children("/s").await.unwrap();
    assert_eq!(names.len(), 50, "ephemeral nodes lost: {names:?}");
    for (i, (session, monitor)) in sessions.iter().zip(&monitors).enumerate() {
        // A monitor ends only when it saw Expired.
        assert!(!monitor.is_finished(), "session {i} expired at some point");
        assert_ne!(
            session.state(),
            SessionState::Suspended,
            "session {i} still suspended"
        );
    }
    for monitor in monitors {
        monitor.abort();
    }
}

/// Runs the futures concurrently and collects their results, panicking on errors.
async fn join_all<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: Future<Output = Result<T, coord_client::Error>> + Send + 'static,
    T: Send + 'static,
{
    let tasks: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_member_suspends_the_session_until_it_reconnects_elsewhere() {
    let cluster = Cluster::start(3).await;
    let follower = a_follower(&cluster).await;
    let client = client_starting_at(&cluster, follower).await;
    let session = client.session(Duration::from_secs(3)).await.unwrap();
    assert_eq!(session.state(), SessionState::Connected);
    let node = client
        .create_ephemeral("/mine", "", &session)
        .await
        .unwrap();
    assert_eq!(node.stat.ephemeral_owner, session.id());
    let expired = ever_expired(session.states());

    cluster.member(follower).signal(Signal::SIGSTOP);
    let reached = |wanted: SessionState| {
        let mut states = session.states();
        async move {
            let reached = tokio::time::timeout(WAIT, states.wait_for(|s| *s == wanted)).await;
            reached.is_ok_and(|r| r.is_ok())
        }
    };
    let suspended = reached(SessionState::Suspended).await;
    let reconnected = reached(SessionState::Reconnected).await;
    cluster.member(follower).signal(Signal::SIGCONT);
    assert!(suspended, "never suspended");
    assert!(reconnected, "never reconnected");
    assert!(!expired.is_finished(), "expired while a member was stopped");

    // Revoked by someone else: the next keep-alive says so.
    client.lease_revoke(session.id()).await.unwrap();
    tokio::time::timeout(WAIT, session.expired()).await.unwrap();
    assert_eq!(session.state(), SessionState::Expired);
    assert!(expired.await.unwrap());
    assert_eq!(client.exists("/mine").await.unwrap(), None);
    // Closing a lost session is fine.
    session.close().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn leases_sessions_and_ephemeral_nodes() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();

    for bad in [Duration::from_secs(1), Duration::from_secs(61)] {
        let err = client.lease_grant(bad).await.unwrap_err();
        assert_eq!(err.name(), "BadArguments", "{bad:?}");
    }
    let err = client.lease_revoke(424_242).await.unwrap_err();
    assert_eq!(err.name(), "LeaseNotFound");
    let err = client
        .create("/e", "", CreateOptions::ephemeral(424_242))
        .await
        .unwrap_err();
    assert_eq!(err.name(), "LeaseNotFound");

    let lease = client.lease_grant(Duration::from_secs(20)).await.unwrap();
    assert_eq!(lease.ttl, Duration::from_secs(20));
    let session = client.session(Duration::from_secs(5)).await.unwrap();
    client.create_ephemeral("/e", "", &session).await.unwrap();
    let seq = client
        .create("/e-", "", CreateOptions::ephemeral_sequential(lease.id))
        .await
        .unwrap();
    assert!(
        seq.path.starts_with("/e-") && seq.path.len() == 13,
        "{}",
        seq.path
    );
    let err = client
        .create("/e/child", "", CreateMode::Persistent)
        .await
        .unwrap_err();
    assert_eq!(err.name(), "NoChildrenForEphemerals");
    let listed = client.lease_list().await.unwrap();
    let mine = listed.iter().find(|l| l.id == lease.id).unwrap();
    assert_eq!((mine.granted_ttl, mine.nodes), (Duration::from_secs(20), 1));
    assert!(listed.iter().any(|l| l.id == session.id()));
    let ttl = client.lease_time_to_live(lease.id).await.unwrap();
    assert!(ttl.remaining_ttl <= ttl.granted_ttl && ttl.remaining_ttl > Duration::from_secs(15));
    // A low-level keep-alive renews it.
    let mut keep = client.lease_keep_alive().await.unwrap();
    let alive = keep.keep_alive(lease.id).await.unwrap();
    assert!(alive.ttl > Duration::from_secs(19), "{:?}", alive.ttl);

    // Closing a session deletes its nodes at once; revoking a lease too.
    session.close().await.unwrap();
    assert_eq!(client.exists("/e").await.unwrap(), None);
    client.lease_revoke(lease.id).await.unwrap();
    assert_eq!(client.exists(&seq.path).await.unwrap(), None);
    let err = keep.keep_alive(lease.id).await.unwrap_err();
    assert_eq!(err.name(), "LeaseNotFound");
}

#[tokio::test(flavor = "multi_thread")]
async fn containers_and_ttl_nodes_go_by_themselves() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    // A container goes with its last child.
    client
        .create("/box", "", CreateOptions::container())
        .await
        .unwrap();
    client
        .create("/box/a", "", CreateMode::Persistent)
        .await
        .unwrap();
    client
        .create("/box/b", "", CreateMode::Persistent)
        .await
        .unwrap();
    client.delete("/box/a", -1).await.unwrap();
    assert!(client.exists("/box").await.unwrap().is_some());
    client.delete("/box/b", -1).await.unwrap();
    let gone = eventually(Duration::from_secs(5), || async {
        client.exists("/box").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "the empty container is still there");

    // A TTL node goes after its TTL (checked by the leader every second).
    let mut watch = client.watch("/ttl", WatchOptions::default()).await.unwrap();
    let ttl_node = CreateOptions::ttl(Duration::from_millis(500));
    let created = client.create("/ttl", "", ttl_node).await.unwrap();
    assert_ne!(created.stat.ephemeral_owner, 0);
    let gone = eventually(Duration::from_secs(5), || async {
        client.exists("/ttl").await.unwrap().is_none()
    })
    .await;
    assert!(gone, "the TTL node is still there");
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        if let WatchItem::Event(e) = next_item(&mut watch, WAIT).await {
            kinds.push(e.kind);
        }
    }
    assert_eq!(kinds, [EventType::NodeCreated, EventType::NodeDeleted]);
    let seq = client
        .create(
            "/ttl-",
            "",
            CreateOptions::ttl_sequential(Duration::from_millis(500)),
        )
        .await
        .unwrap();
    assert!(seq.path.len() == 15, "{}", seq.path);
}
