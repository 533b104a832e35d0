//! Nothing acknowledged is lost: `kill -9` of every member at once, snapshots
//! and log compaction, a follower catching up by snapshot, graceful shutdown.

use std::collections::BTreeMap;
use std::time::Duration;

use coord_client::{Client, CreateMode};
use coord_testkit::Cluster;
use nix::sys::signal::Signal;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

async fn client(cluster: &Cluster) -> Client {
    Client::builder(cluster.endpoints())
        .retry_timeout(Duration::from_secs(30))
        .build()
        .await
        .expect("client")
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_all_members_and_restart_keeps_every_acknowledged_write() {
    // A small snapshot interval so recovery goes through snapshot + log.
    let mut cluster = Cluster::builder(3)
        .binary(BIN)
        .args([
            "--snapshot-interval",
            "60",
            "--snapshot-catchup-entries",
            "5",
        ])
        .start()
        .await;
    let c = client(&cluster).await;
    c.create("/d", "", CreateMode::Persistent)
        .await
        .expect("create parent");
    let mut acked = BTreeMap::new();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let c = c.clone();
            tokio::spawn(async move {
                let mut mine = Vec::new();
                for i in 0..40 {
                    let path = format!("/d/w{w}-{i}");
                    let data = format!("value {w} {i}");
                    c.create(&path, data.clone(), CreateMode::Persistent)
                        .await
                        .expect("create");
                    mine.push((path, data));
                }
                mine
            })
        })
        .collect();
    for w in writers {
        acked.extend(w.await.expect("writer"));
    }
    let seq = c
        .create("/d/seq-", "s", CreateMode::PersistentSequential)
        .await
        .expect("sequential");
    for id in cluster.ids() {
        cluster.kill(id);
    }
    for id in cluster.ids() {
        cluster.restart(id);
    }
    cluster.wait_for_leader(Duration::from_secs(30)).await;
    let c = client(&cluster).await;
    for (path, data) in &acked {
        let (got, _) = c
            .get(path)
            .await
            .unwrap_or_else(|e| panic!("{path} lost: {e}"));
        assert_eq!(got, data.as_bytes(), "{path}");
    }
    let (names, stat) = c.children("/d").await.expect("children");
    assert_eq!(names.len(), acked.len() + 1);
    assert!(names.contains(&seq.path.trim_start_matches("/d/").to_owned()));
    assert_eq!(stat.num_children as usize, acked.len() + 1);
    let status = cluster.status(1).await.expect("status");
    assert!(
        status.snapshot_index > 0,
        "a snapshot was taken: {status:?}"
    );
    // The sequential counter survived too: the next suffix continues.
    let next = c
        .create("/d/seq-", "s", CreateMode::PersistentSequential)
        .await
        .expect("sequential");
    assert!(next.path > seq.path, "{} after {}", next.path, seq.path);
}

#[tokio::test(flavor = "multi_thread")]
async fn lagging_follower_catches_up_by_snapshot() {
    let mut cluster = Cluster::builder(3)
        .binary(BIN)
        .args([
            "--snapshot-interval",
            "100",
            "--snapshot-catchup-entries",
            "10",
        ])
        .start()
        .await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let follower = cluster
        .ids()
        .into_iter()
        .find(|id| *id != leader)
        .expect("a follower");
    cluster.kill(follower);
    let c = client(&cluster).await;
    c.create("/s", "", CreateMode::Persistent)
        .await
        .expect("create");
    for i in 0..300 {
        c.set("/s", format!("{i}"), -1).await.expect("set");
    }
    let leader_status = cluster.status(leader).await.expect("status");
    assert!(
        leader_status.first_log_index > 10,
        "the leader compacted its log: {leader_status:?}"
    );
    cluster.restart(follower);
    cluster
        .wait_applied(leader_status.applied_index, Duration::from_secs(30))
        .await;
    let status = cluster.status(follower).await.expect("follower status");
    assert!(
        status.snapshots_installed >= 1,
        "caught up by snapshot: {status:?}"
    );
    let pinned = Client::connect([cluster.member(follower).client_addr.clone()])
        .await
        .expect("client");
    let (data, stat) = pinned.serializable().get("/s").await.expect("get");
    assert_eq!(data, "299".as_bytes());
    assert_eq!(stat.version, 300);
    let leader_now = cluster.status(leader).await.expect("status");
    let leader_digest = leader_now.digest;
    assert_eq!(status.digest, leader_digest);
    // The snapshot was written to a file as it arrived, and the store took
    // that file over as its own snapshot: a restart restores from it.
    let raft_dir = cluster.member(follower).data_dir.join("raft");
    let names: Vec<String> = std::fs::read_dir(&raft_dir)
        .expect("list the follower's store")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        names.iter().all(|name| !name.starts_with("received-")),
        "{names:?}"
    );
    assert!(
        names.iter().any(|name| name.starts_with("snapshot-")),
        "{names:?}"
    );
    cluster.kill(follower);
    cluster.restart(follower);
    // A restarted member serves its snapshot and log at once and learns the
    // commit index of its last entries from the leader a heartbeat later;
    // serializable reads are not monotonic across a restart
    // (docs/consistency.md), so read once it has applied everything again.
    cluster
        .wait_applied(leader_now.applied_index, Duration::from_secs(30))
        .await;
    let (data, _) = pinned
        .serializable()
        .get("/s")
        .await
        .expect("get after restart");
    assert_eq!(data, "299".as_bytes());
    let restarted = cluster.status(follower).await.expect("follower status");
    assert_eq!(restarted.digest, leader_digest);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_shuts_down_cleanly_and_restart_keeps_data() {
    let mut cluster = Cluster::builder(1).binary(BIN).start().await;
    let c = client(&cluster).await;
    c.create("/kept", "yes", CreateMode::Persistent)
        .await
        .expect("create");
    cluster.member(1).signal(Signal::SIGTERM);
    let status = cluster
        .member_mut(1)
        .wait_exit(Duration::from_secs(10))
        .expect("exits on SIGTERM");
    assert!(status.success(), "clean exit: {status:?}");
    assert!(cluster.member(1).log().contains("stopped"));
    cluster.restart(1);
    cluster.wait_for_leader(Duration::from_secs(10)).await;
    let (data, _) = client(&cluster)
        .await
        .get("/kept")
        .await
        .expect("get after restart");
    assert_eq!(data, "yes".as_bytes());
}

/// Waits until member 1's snapshot index passes `after`; returns it.
async fn snapshot_after(cluster: &Cluster, after: u64) -> u64 {
    let deadline = std::time::Instant::now() + Duration::from_secs(15);
    loop {
        let status = cluster.status(1).await.expect("status");
        if status.snapshot_index > after {
            return status.snapshot_index;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no snapshot after {after}: {status:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A state much larger than the entries written to it is not snapshotted
/// every interval: the next snapshot waits for a log of half the last
/// snapshot's size (serializing it costs in proportion to its size).
#[tokio::test(flavor = "multi_thread")]
async fn a_large_state_is_snapshotted_once_its_log_is_half_its_size() {
    // Long ticks: the quiet-member rule (50 ticks without an entry) must
    // not take a snapshot of its own when the test's writes stall.
    let mut cluster = Cluster::builder(1)
        .binary(BIN)
        .args(["--snapshot-interval", "50", "--tick-ms", "100"])
        .start()
        .await;
    let c = client(&cluster).await;
    let big = vec![b'x'; 600_000];
    c.create("/big", big.clone(), CreateMode::Persistent)
        .await
        .expect("create big");
    c.create("/small", "0", CreateMode::Persistent)
        .await
        .expect("create small");
    for i in 0..60 {
        c.set("/small", i.to_string(), -1).await.expect("set");
    }
    // The first snapshot (none is stored yet) comes at the interval.
    let first = snapshot_after(&cluster, 0).await;
    // 400 small entries: eight intervals, but a few KB of log against a
    // snapshot of 600 KB.
    for i in 0..400 {
        c.set("/small", i.to_string(), -1).await.expect("set");
    }
    let status = cluster.status(1).await.expect("status");
    assert_eq!(
        status.snapshot_index, first,
        "a large state was snapshotted again after a small log: {status:?}"
    );
    // A restarted member knows its stored snapshot's size.
    cluster.kill(1);
    cluster.restart(1);
    cluster.wait_for_leader(Duration::from_secs(10)).await;
    for i in 0..400 {
        c.set("/small", i.to_string(), -1)
            .await
            .expect("set after restart");
    }
    let status = cluster.status(1).await.expect("status");
    assert_eq!(
        status.snapshot_index, first,
        "a restarted member snapshotted a large state after a small log: {status:?}"
    );
    // Two more writes of the big node make the log larger than half of it.
    for _ in 0..2 {
        c.set("/big", big.clone(), -1).await.expect("set big");
    }
    for i in 0..50 {
        c.set("/small", i.to_string(), -1).await.expect("set");
    }
    snapshot_after(&cluster, first).await;
}

/// A burst shorter than the snapshot interval is snapshotted once the
/// member goes quiet, so a restart loads it instead of replaying it.
#[tokio::test(flavor = "multi_thread")]
async fn a_burst_is_snapshotted_once_the_member_is_quiet() {
    let mut cluster = Cluster::builder(1)
        .binary(BIN)
        .args(["--snapshot-interval", "800"])
        .start()
        .await;
    let c = client(&cluster).await;
    c.create("/burst", "0", CreateMode::Persistent)
        .await
        .expect("create");
    let mut last = None;
    for i in 1..=150 {
        last = Some(c.set("/burst", i.to_string(), -1).await.expect("set"));
    }
    let last_zxid = last.expect("writes made").mzxid;
    assert!(
        last_zxid < 800,
        "the burst stays under the interval: {last_zxid}"
    );
    snapshot_after(&cluster, last_zxid - 1).await;
    cluster.kill(1);
    cluster.restart(1);
    cluster.wait_for_leader(Duration::from_secs(10)).await;
    let (data, _) = client(&cluster)
        .await
        .get("/burst")
        .await
        .expect("get after restart");
    assert_eq!(data, "150".as_bytes());
}
