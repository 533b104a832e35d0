//! Exactly-once writes: a write retried with the same `(client_id, seq)` is
//! answered from the state machine's record, even through another member and
//! across a leader crash, so a retried sequential create makes one node.

use std::time::Duration;

use coord_proto::v1::coord_client::CoordClient;
use coord_proto::v1::{ChildrenRequest, CreateMode, CreateRequest, WriteMeta};
use coord_testkit::Cluster;
use tonic::transport::Channel;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

async fn raw(addr: &str) -> CoordClient<Channel> {
    CoordClient::connect(format!("http://{addr}"))
        .await
        .expect("connect")
}

fn create(path: &str, client_id: u64, seq: u64, mode: CreateMode) -> CreateRequest {
    CreateRequest {
        meta: Some(WriteMeta {
            client_id,
            seq,
            first_incomplete_seq: seq,
        }),
        path: path.into(),
        data: "job".into(),
        mode: mode as i32,
        ..CreateRequest::default()
    }
}

async fn children(addr: &str, path: &str) -> Vec<String> {
    let request = ChildrenRequest {
        path: path.into(),
        serializable: false,
    };
    raw(addr)
        .await
        .children(request)
        .await
        .expect("children")
        .into_inner()
        .children
}

/// Sends `request` to each address in turn until one answers.
async fn create_somewhere(addrs: &[String], request: CreateRequest) -> String {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        for addr in addrs {
            let Ok(mut c) = CoordClient::connect(format!("http://{addr}")).await else {
                continue;
            };
            if let Ok(r) = c.create(request.clone()).await {
                return r.into_inner().path;
            }
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no member accepted the retry"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn retried_sequential_create_makes_one_node() {
    let mut cluster = Cluster::builder(3).binary(BIN).start().await;
    let eps = cluster.endpoints();
    raw(&eps[0])
        .await
        .create(create("/q", 42, 1, CreateMode::Persistent))
        .await
        .expect("parent");

    // Retry through another member: the recorded result comes back.
    let first = raw(&eps[0])
        .await
        .create(create("/q/job-", 42, 2, CreateMode::PersistentSequential))
        .await
        .expect("create")
        .into_inner();
    let retry = raw(&eps[1])
        .await
        .create(create("/q/job-", 42, 2, CreateMode::PersistentSequential))
        .await
        .expect("retry")
        .into_inner();
    assert_eq!(first.path, retry.path);
    assert_eq!(first.stat, retry.stat);
    assert_eq!(children(&eps[2], "/q").await.len(), 1);

    // Retry across a leader crash, the crash racing the original request.
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    let leader_addr = cluster.member(leader).client_addr.clone();
    let request = create("/q/job-", 42, 3, CreateMode::PersistentSequential);
    let in_flight = {
        let request = request.clone();
        tokio::spawn(async move { raw(&leader_addr).await.create(request).await })
    };
    tokio::time::sleep(Duration::from_millis(5)).await;
    cluster.kill(leader);
    let _ = in_flight.await;
    let survivors: Vec<String> = cluster
        .ids()
        .into_iter()
        .filter(|id| *id != leader)
        .map(|id| cluster.member(id).client_addr.clone())
        .collect();
    let path = create_somewhere(&survivors, request.clone()).await;
    let again = create_somewhere(&survivors, request).await;
    assert_eq!(path, again);
    let names = children(&survivors[0], "/q").await;
    assert_eq!(names.len(), 2, "one node per (client_id, seq): {names:?}");
    assert!(names.contains(&path.trim_start_matches("/q/").to_owned()));
}
