//! Reads never go back in time. A leader cut off from the others (by a real
//! partition of its peer links, or frozen with SIGSTOP) and a follower that no
//! longer receives the log do not serve linearizable reads of data the majority
//! has since overwritten; serializable reads may be stale, by design.

use std::time::Duration;

use coord_client::{Client, CreateMode};
use coord_testkit::Cluster;
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

async fn pinned(addr: &str, timeout: Duration) -> Client {
    Client::builder([addr.to_owned()])
        .request_timeout(timeout)
        .retry_timeout(timeout)
        .build()
        .await
        .expect("client")
}

fn others(cluster: &Cluster, id: u64) -> Vec<u64> {
    cluster.ids().into_iter().filter(|m| *m != id).collect()
}

fn addrs(cluster: &Cluster, ids: &[u64]) -> Vec<String> {
    ids.iter()
        .map(|id| cluster.member(*id).client_addr.clone())
        .collect()
}

/// Linearizable reads through `client` for `window`: each must fail with a
/// retryable error or return `fresh`, never anything older.
async fn assert_never_stale(client: &Client, fresh: &str, window: Duration) -> usize {
    let deadline = std::time::Instant::now() + window;
    let mut refused = 0;
    while std::time::Instant::now() < deadline {
        match client.get("/reg").await {
            Ok((data, _)) => assert_eq!(data, fresh.as_bytes(), "stale linearizable read"),
            Err(err) => {
                assert!(err.is_retryable(), "unexpected error: {err}");
                refused += 1;
            }
        }
    }
    refused
}

#[tokio::test(flavor = "multi_thread")]
async fn partitioned_leader_does_not_serve_stale_linearizable_reads() {
    let cluster = Cluster::builder(3).binary(BIN).start().await;
    let all = Client::connect(cluster.endpoints()).await.expect("client");
    all.create("/reg", "old", CreateMode::Persistent)
        .await
        .expect("create");
    let old = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let old_addr = cluster.member(old).client_addr.clone();
    let isolated = pinned(&old_addr, Duration::from_millis(700)).await;

    cluster.isolate(old);
    let rest = others(&cluster, old);
    let new = cluster
        .wait_for_leader_among(&rest, Duration::from_secs(15))
        .await;
    let majority = Client::connect(addrs(&cluster, &rest))
        .await
        .expect("client");
    majority
        .set("/reg", "new", -1)
        .await
        .expect("write on the new leader");
    let (local, _) = isolated
        .serializable()
        .get("/reg")
        .await
        .expect("local read");
    assert_eq!(
        local,
        "old".as_bytes(),
        "the isolated member really is behind"
    );
    let refused = assert_never_stale(&isolated, "new", Duration::from_secs(2)).await;
    assert!(
        refused > 0,
        "the isolated ex-leader refused linearizable reads"
    );

    cluster.heal();
    cluster.wait_for_leader(Duration::from_secs(15)).await;
    let back = pinned(&old_addr, Duration::from_secs(10)).await;
    let (data, _) = back.get("/reg").await.expect("read after healing");
    assert_eq!(data, "new".as_bytes());
    assert_ne!(new, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn follower_cut_off_from_the_leader_does_not_serve_stale_linearizable_reads() {
    let cluster = Cluster::builder(3).binary(BIN).start().await;
    let all = Client::connect(cluster.endpoints()).await.expect("client");
    all.create("/reg", "old", CreateMode::Persistent)
        .await
        .expect("create");
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = others(&cluster, leader)[0];
    let lagging = pinned(
        &cluster.member(follower).client_addr.clone(),
        Duration::from_millis(700),
    )
    .await;
    lagging.get("/reg").await.expect("warm up");

    // One-way: the follower still reaches the leader, but hears nothing back.
    cluster.cut(leader, follower);
    let writer = Client::connect([cluster.member(leader).client_addr.clone()])
        .await
        .expect("client");
    writer
        .set("/reg", "new", -1)
        .await
        .expect("write without the lagging follower");
    let (local, _) = lagging
        .serializable()
        .get("/reg")
        .await
        .expect("local read");
    assert_eq!(local, "old".as_bytes(), "the follower really is behind");
    let refused = assert_never_stale(&lagging, "new", Duration::from_secs(2)).await;
    assert!(refused > 0);

    cluster.heal();
    let caught_up = pinned(
        &cluster.member(follower).client_addr.clone(),
        Duration::from_secs(10),
    )
    .await;
    let (data, _) = caught_up.get("/reg").await.expect("read after healing");
    assert_eq!(data, "new".as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn stopped_leader_does_not_serve_stale_linearizable_reads() {
    let cluster = Cluster::builder(3).binary(BIN).start().await;
    let all = Client::connect(cluster.endpoints()).await.expect("client");
    all.create("/reg", "old", CreateMode::Persistent)
        .await
        .expect("create");
    let old = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let old_addr = cluster.member(old).client_addr.clone();
    let frozen = pinned(&old_addr, Duration::from_secs(8)).await;
    frozen
        .get("/reg")
        .await
        .expect("warm the pinned connection");

    cluster.member(old).signal(Signal::SIGSTOP);
    let rest = others(&cluster, old);
    cluster
        .wait_for_leader_among(&rest, Duration::from_secs(15))
        .await;
    let majority = Client::connect(addrs(&cluster, &rest))
        .await
        .expect("client");
    majority
        .set("/reg", "new", -1)
        .await
        .expect("write on the new leader");

    // Ask the frozen ex-leader, then let it run again: it must not answer "old".
    let read = tokio::spawn(async move { frozen.get("/reg").await });
    tokio::time::sleep(Duration::from_millis(300)).await;
    cluster.member(old).signal(Signal::SIGCONT);
    match read.await.expect("read task") {
        Ok((data, _)) => assert_eq!(data, "new".as_bytes(), "stale linearizable read"),
        Err(err) => assert!(err.is_retryable(), "unexpected error: {err}"),
    }
    let back = pinned(&old_addr, Duration::from_secs(10)).await;
    let (data, _) = back.get("/reg").await.expect("read after rejoin");
    assert_eq!(data, "new".as_bytes());
}

#[tokio::test(flavor = "multi_thread")]
async fn every_member_answers_reads_with_its_own_header() {
    let cluster = Cluster::builder(3).binary(BIN).start().await;
    let c = Client::connect(cluster.endpoints()).await.expect("client");
    let created = c
        .create("/x", "1", CreateMode::Persistent)
        .await
        .expect("create");
    for id in cluster.ids() {
        let member = pinned(
            &cluster.member(id).client_addr.clone(),
            Duration::from_secs(5),
        )
        .await;
        let fresh = member
            .get_with_header("/x")
            .await
            .expect("linearizable get");
        assert_eq!(fresh.value.0, "1".as_bytes());
        assert_eq!(fresh.header.member, id);
        assert!(fresh.header.zxid >= created.stat.czxid);
        let local = member
            .serializable()
            .get_with_header("/x")
            .await
            .expect("serializable get");
        assert_eq!(local.header.member, id);
    }
}
