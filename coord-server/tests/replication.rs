//! Multi-process tests of replication: real `coord-server` processes on
//! loopback, real sled files, real TCP.

use std::time::Duration;

use coord_client::{Client, CreateMode};
use coord_testkit::Cluster;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

async fn pinned(addr: &str) -> Client {
    Client::builder([addr])
        .retry_timeout(Duration::from_secs(20))
        .build()
        .await
        .expect("client")
}

/// Waits until every running member reports the same digest at the same applied index.
async fn assert_converged(cluster: &Cluster) {
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    loop {
        let mut seen = Vec::new();
        for id in cluster.ids() {
            if cluster.member(id).is_running() {
                let s = cluster.status(id).await;
                seen.push(s.map(|s| (s.applied_index, s.digest)));
            }
        }
        if seen.windows(2).all(|w| w[0].is_some() && w[0] == w[1]) {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "members did not converge: {seen:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn write_through_one_member_read_through_another() {
    let cluster = Cluster::builder(3).binary(BIN).start().await;
    let eps = cluster.endpoints();
    let writer = pinned(&eps[0]).await;
    let readers = [pinned(&eps[1]).await, pinned(&eps[2]).await];
    writer
        .create("/k", "0", CreateMode::Persistent)
        .await
        .expect("create");
    for i in 1..=30u32 {
        let stat = writer.set("/k", i.to_string(), -1).await.expect("set");
        assert_eq!(stat.version, i as i32);
        // A linearizable read anywhere sees every write acknowledged before it.
        for reader in &readers {
            let (data, stat) = reader.get("/k").await.expect("get");
            assert_eq!(data, i.to_string().as_bytes(), "stale read");
            assert_eq!(stat.version, i as i32);
        }
    }
    assert_converged(&cluster).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn leader_crash_elects_a_new_leader_and_the_old_one_catches_up() {
    let mut cluster = Cluster::builder(3).binary(BIN).start().await;
    let client = Client::connect(cluster.endpoints()).await.expect("client");
    client
        .create("/a", "1", CreateMode::Persistent)
        .await
        .expect("create");
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    cluster.kill(leader);
    let started = std::time::Instant::now();
    let new_leader = cluster
        .wait_for_new_leader(leader, Duration::from_secs(10))
        .await;
    assert_ne!(new_leader, leader);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "election took {:?}",
        started.elapsed()
    );
    for i in 0..20 {
        client
            .create(&format!("/after-{i}"), "x", CreateMode::Persistent)
            .await
            .expect("writes continue after the leader crash");
    }
    cluster.restart(leader);
    let (_, root) = client.children("/").await.expect("children");
    let status = cluster.status(new_leader).await.expect("status");
    cluster
        .wait_applied(status.applied_index, Duration::from_secs(20))
        .await;
    let rejoined = pinned(&cluster.member(leader).client_addr.clone()).await;
    let (names, stat) = rejoined
        .serializable()
        .children("/")
        .await
        .expect("children on the restarted member");
    assert_eq!(names.len(), 21);
    assert_eq!(stat.cversion, root.cversion);
    assert_converged(&cluster).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn writes_through_followers_are_forwarded() {
    let cluster = Cluster::builder(3).binary(BIN).start().await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    let client = pinned(&cluster.member(follower).client_addr.clone()).await;
    let created = client
        .create_with_header("/via-follower", "x", CreateMode::Persistent)
        .await
        .expect("create through a follower");
    assert_eq!(created.header.member, follower);
    assert_eq!(created.header.leader, leader);
    assert_eq!(created.value.stat.czxid, created.header.zxid);
}
