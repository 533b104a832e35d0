//! A member's peer port refuses a snapshot it cannot keep (one that ends short
//! of the size it announced, one whose data does not restore) and goes on
//! serving: neither reaches its Raft thread.

use std::time::Duration;

use bytes::Bytes;
use coord_client::{Client, CreateMode};
use coord_proto::peer::SnapshotChunk;
use coord_proto::peer::peer_client::PeerClient;
use coord_testkit::Cluster;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tonic::Code;

const BIN: &str = env!("CARGO_BIN_EXE_coord-server");

/// The first chunk of a snapshot from a member 9 at `index`, announcing
/// `data_bytes` of data.
fn header(to: u64, index: u64, data_bytes: u64) -> SnapshotChunk {
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgSnapshot);
    msg.from = 9;
    msg.to = to;
    msg.term = 1;
    let meta = msg.mut_snapshot().mut_metadata();
    meta.index = index;
    meta.term = 1;
    SnapshotChunk {
        message: msg.write_to_bytes().expect("encode").into(),
        data: Bytes::new(),
        data_bytes,
    }
}

fn data(bytes: &'static [u8]) -> SnapshotChunk {
    SnapshotChunk {
        data: Bytes::from_static(bytes),
        ..SnapshotChunk::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_member_refuses_a_snapshot_it_cannot_keep_and_goes_on_serving() {
    let cluster = Cluster::builder(1).binary(BIN).start().await;
    let client = Client::builder(cluster.endpoints())
        .retry_timeout(Duration::from_secs(10))
        .build()
        .await
        .expect("client");
    client
        .create("/before", "1", CreateMode::Persistent)
        .await
        .expect("create");
    let mut peer = PeerClient::connect(format!("http://{}", cluster.member(1).peer_addr))
        .await
        .expect("peer port");

    let short = vec![header(1, 1000, 100), data(b"0123456789")];
    let err = peer
        .install_snapshot(tokio_stream::iter(short))
        .await
        .expect_err("a stream short of its announced size");
    assert_eq!(err.code(), Code::Unavailable, "{err}");

    // A node "/nope" whose parent is fine but whose snapshot has no format.
    let garbage = b"\x1a\x07\x0a\x05/nope";
    let undecodable = vec![header(1, 1000, garbage.len() as u64), data(garbage)];
    let err = peer
        .install_snapshot(tokio_stream::iter(undecodable))
        .await
        .expect_err("data that does not restore");
    assert_eq!(err.code(), Code::InvalidArgument, "{err}");
    assert!(err.message().contains("does not restore"), "{err}");

    let status = cluster.status(1).await.expect("still serving");
    assert_eq!(status.snapshots_installed, 0);
    client
        .create("/after", "2", CreateMode::Persistent)
        .await
        .expect("writes still work");
    let (before, _) = client.get("/before").await.expect("get");
    assert_eq!(before, "1".as_bytes());
    let raft_dir = cluster.member(1).data_dir.join("raft");
    let snapshots = std::fs::read_dir(&raft_dir)
        .expect("list the store")
        .filter(|e| {
            let name = e.as_ref().expect("entry").file_name();
            name.to_string_lossy().starts_with("snapshot-")
        })
        .count();
    assert_eq!(snapshots, 0, "nothing refused became the member's snapshot");
}
