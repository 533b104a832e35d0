//! The sender against real TCP peers that misbehave in each way it must
//! notice, and the receiver and the shared peer port against the real sender.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use bytes::BytesMut;
use coord_proto::frame::encode_frame;
use coord_proto::peer::RaftBatch;
use coord_proto::peer::peer_client::PeerClient;
use coord_proto::peer::peer_server::{Peer, PeerServer};
use coord_proto::peer::{LeaseQuery, LeaseQueryResponse, PeerAck, SnapshotChunk};
use protobuf::Message as _;
use raft::eraftpb::{Entry, Message, MessageType};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status, Streaming};

use super::receiver::{accept_peers, serve_raft};
use super::sender::{Link, STALL, peer_loop};
use super::wire::{self, DEAD_AFTER, KEEPALIVE, KEEPALIVE_EVERY};
use super::{BATCH_BYTES, Transport, send_snapshot};
use crate::core::StateMachine;
use crate::driver::inbox::{Inbox, Received as Arrived};
use crate::driver::{DriverHandle, Input, Outbox, Shared};
use crate::storage::DiskStore;
use crate::watch::WatchConfig;

/// What a test peer does with a Raft connection after its first frame.
#[derive(Debug, Clone, Copy)]
enum Behaviour {
    /// Keeps sending keep-alives and reads nothing more.
    StopReading,
    /// Reads everything and never sends a keep-alive.
    Silent,
    /// Closes the connection.
    Close,
}

async fn misbehave(stream: TcpStream, behaviour: Behaviour) {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::new(reader);
    if wire::read_magic(&mut reader).await.is_err() || wire::read_frame(&mut reader).await.is_err()
    {
        return;
    }
    match behaviour {
        Behaviour::StopReading => {
            while writer.write_all(&[KEEPALIVE]).await.is_ok() {
                tokio::time::sleep(KEEPALIVE_EVERY).await;
            }
        }
        Behaviour::Silent => while let Ok(Some(_)) = wire::read_frame(&mut reader).await {},
        Behaviour::Close => {}
    }
}

/// Serves a misbehaving peer on a free loopback port; returns its address and
/// a count of the connections it accepted.
async fn serve(behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(misbehave(stream, behaviour));
        }
    });
    (addr, connections)
}

/// A driver handle whose inbox a thread waits on, as the driver thread does
/// (reading inbound Raft connections, writing their keep-alives), passing
/// on what arrives to the returned receiver.
fn driver(id: u64) -> (DriverHandle, std::sync::mpsc::Receiver<Arrived>) {
    let (mut inbox, mailbox) = Inbox::new().expect("inbox");
    let (forward, received) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut arrived = Vec::new();
        loop {
            let open = inbox.wait(Duration::from_millis(20), &mut arrived);
            for item in arrived.drain(..) {
                if forward.send(item).is_err() {
                    return;
                }
            }
            if !matches!(open, Ok(true)) {
                return;
            }
        }
    });
    let watches = WatchConfig {
        history_events: 16,
        max_watches_per_stream: 16,
        stream_buffer: 16,
    };
    let shared = Arc::new(Shared::new(id, StateMachine::new(16), watches));
    (
        DriverHandle::new(mailbox, shared, Duration::from_secs(1)),
        received,
    )
}

/// Starts a peer loop from member 1 to member 2 at `addr`; returns its
/// link and the driver inputs it reports to.
fn start_loop(addr: &str) -> (Arc<Link>, std::sync::mpsc::Receiver<Arrived>) {
    let (handle, reports) = driver(1);
    let link = Arc::new(Link::default());
    tokio::spawn(peer_loop(2, addr.to_string(), Arc::clone(&link), handle));
    (link, reports)
}

/// Sends `msg` from member 1 over `link`, as the transport frames it.
fn send(link: &Link, msg: &Message) {
    let batch = RaftBatch {
        from: 1,
        msgs: vec![msg.write_to_bytes().expect("encodes").into()],
    };
    let mut frame = BytesMut::new();
    encode_frame(&batch, &mut frame);
    link.send(&frame);
}

fn append(bytes: usize, tag: u64) -> Message {
    let entry = Entry {
        index: tag,
        data: Bytes::from(vec![7u8; bytes]),
        ..Entry::default()
    };
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgAppend);
    msg.from = 1;
    msg.to = 2;
    msg.index = tag;
    msg.set_entries(vec![entry].into());
    msg
}

/// Waits up to `within` for the loop to report member 2 unreachable.
async fn reported_unreachable(
    reports: &std::sync::mpsc::Receiver<Arrived>,
    within: Duration,
) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    while tokio::time::Instant::now() < deadline {
        while let Ok(input) = reports.try_recv() {
            if matches!(input, Arrived::Input(Input::Unreachable(2))) {
                return true;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

/// Collects the next `n` peer messages the driver is handed, waiting up to
/// five seconds.
async fn delivered(received: &std::sync::mpsc::Receiver<Arrived>, n: usize) -> Vec<Message> {
    let mut msgs = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while msgs.len() < n && tokio::time::Instant::now() < deadline {
        match received.try_recv() {
            Ok(Arrived::Peer(msg)) => msgs.push(msg),
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    msgs
}

#[tokio::test]
async fn a_connection_the_peer_stopped_reading_is_replaced() {
    let (addr, connections) = serve(Behaviour::StopReading).await;
    let (link, reports) = start_loop(&addr);
    let feeder = tokio::spawn(async move {
        for tag in 0.. {
            send(&link, &append(64 << 10, tag));
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let replaced = reported_unreachable(&reports, STALL * 4).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while connections.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    feeder.abort();
    assert!(replaced, "a stalled connection was never given up");
    assert!(
        connections.load(Ordering::SeqCst) >= 2,
        "no new connection after the stall"
    );
}

#[tokio::test]
async fn a_silent_peer_is_noticed_while_nothing_is_queued() {
    let (addr, connections) = serve(Behaviour::Silent).await;
    let (link, reports) = start_loop(&addr);
    send(&link, &append(16, 1));
    assert!(
        !reported_unreachable(&reports, DEAD_AFTER / 2).await,
        "given up before the keep-alive bound"
    );
    assert!(
        reported_unreachable(&reports, DEAD_AFTER * 2).await,
        "a peer that went silent went unnoticed"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_connection_that_closes_is_noticed_while_nothing_is_queued() {
    let (addr, connections) = serve(Behaviour::Close).await;
    let (link, reports) = start_loop(&addr);
    send(&link, &append(16, 1));
    assert!(
        reported_unreachable(&reports, DEAD_AFTER / 2).await,
        "the closed connection went unnoticed until the keep-alive bound"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn messages_arrive_in_order_and_an_idle_connection_stays_up() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (receiving, received) = driver(2);
    let connections = Arc::new(AtomicUsize::new(0));
    let counted = Arc::clone(&connections);
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            let receiving = receiving.clone();
            tokio::spawn(async move { serve_raft(stream, &receiving).await });
        }
    });
    let (link, reports) = start_loop(&addr);
    let sent: Vec<Message> = (0..200)
        .map(|tag| append(100 + tag as usize, tag))
        .collect();
    for msg in &sent {
        send(&link, msg);
    }
    assert_eq!(delivered(&received, sent.len()).await, sent);
    tokio::time::sleep(DEAD_AFTER + Duration::from_secs(1)).await;
    let late = append(16, 999);
    send(&link, &late);
    assert_eq!(delivered(&received, 1).await, vec![late]);
    assert!(
        !reported_unreachable(&reports, Duration::ZERO).await,
        "an idle but healthy connection was given up"
    );
    assert_eq!(connections.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_send_reaches_its_peer_in_order_in_frames_of_at_most_a_batch() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DiskStore::open(dir.path(), 1 << 20).expect("store");
    let (handle, _reports) = driver(1);
    let peers = [(1, "127.0.0.1:1".to_string()), (2, addr)].into();
    let mut transport = Transport::start(
        1,
        &peers,
        handle,
        tokio::runtime::Handle::current(),
        store.stager(),
    )
    .expect("starts");
    let sent: Vec<Message> = (0..10).map(|tag| append(1 << 20, tag)).collect();
    let mut unknown = append(16, 99);
    unknown.to = 7;
    let mut send = sent.clone();
    send.insert(3, unknown);
    transport.send(send);
    let (stream, _) = listener.accept().await.expect("accepted");
    let mut reader = BufReader::new(stream);
    wire::read_magic(&mut reader).await.expect("magic");
    let mut got = Vec::new();
    let mut frames = 0;
    while got.len() < sent.len() {
        let frame = wire::read_frame(&mut reader)
            .await
            .expect("frame")
            .expect("not closed");
        let bytes: usize = frame.iter().map(|m| m.compute_size() as usize).sum();
        assert!(bytes <= BATCH_BYTES, "a frame of {bytes} bytes");
        frames += 1;
        got.extend(frame);
    }
    assert_eq!(got, sent, "the peer's messages, in order, and only them");
    assert!(frames >= 3, "10 MiB went in {frames} frames");
}

/// Answers lease questions; nothing else.
#[derive(Debug)]
struct LeasePeer;

#[tonic::async_trait]
impl Peer for LeasePeer {
    async fn leases(
        &self,
        request: Request<LeaseQuery>,
    ) -> Result<Response<LeaseQueryResponse>, Status> {
        assert_eq!(request.into_inner().ids, vec![42]);
        Ok(Response::new(LeaseQueryResponse {
            leases: Vec::new(),
            not_leader: true,
        }))
    }

    async fn install_snapshot(
        &self,
        _: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        Err(Status::unimplemented("test peer"))
    }
}

#[tokio::test]
async fn the_peer_port_serves_raft_connections_and_grpc_side_by_side() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (receiving, received) = driver(2);
    let (stop, stopped) = watch::channel(false);
    let incoming = accept_peers(listener, receiving, stopped);
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PeerServer::new(LeasePeer))
            .serve_with_incoming(incoming),
    );
    let (link, _reports) = start_loop(&addr);
    let msg = append(16, 7);
    send(&link, &msg);
    assert_eq!(delivered(&received, 1).await, vec![msg]);
    let mut grpc = PeerClient::connect(format!("http://{addr}"))
        .await
        .expect("grpc connects");
    let answer = grpc
        .leases(LeaseQuery {
            ids: vec![42],
            refresh: false,
        })
        .await
        .expect("grpc answers")
        .into_inner();
    assert!(answer.not_leader);
    let _ = stop.send(true);
}

/// What a test peer received in one `InstallSnapshot` call.
#[derive(Debug, Default)]
struct Received {
    index: u64,
    announced: u64,
    data: Vec<u8>,
    largest_chunk: usize,
}

/// A peer that records the snapshots streamed to it.
struct SnapshotPeer(mpsc::UnboundedSender<Received>);

#[tonic::async_trait]
impl Peer for SnapshotPeer {
    async fn leases(&self, _: Request<LeaseQuery>) -> Result<Response<LeaseQueryResponse>, Status> {
        Err(Status::unimplemented("test peer"))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        let mut stream = request.into_inner();
        let first = stream.message().await?.expect("a first chunk");
        let msg = wire::decode_message(&first.message).expect("the message");
        let mut received = Received {
            index: msg.get_snapshot().get_metadata().index,
            announced: first.data_bytes,
            ..Received::default()
        };
        while let Some(chunk) = stream.message().await? {
            received.largest_chunk = received.largest_chunk.max(chunk.data.len());
            received.data.extend_from_slice(&chunk.data);
        }
        let _ = self.0.send(received);
        Ok(Response::new(PeerAck {}))
    }
}

/// The outcome the sender reported for member 2, waiting up to five seconds.
async fn snapshot_outcome(reports: &std::sync::mpsc::Receiver<Arrived>) -> Option<bool> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while tokio::time::Instant::now() < deadline {
        match reports.try_recv() {
            Ok(Arrived::Input(Input::SnapshotSent { to: 2, ok })) => return Some(ok),
            Ok(_) => {}
            Err(_) => tokio::time::sleep(Duration::from_millis(10)).await,
        }
    }
    None
}

#[tokio::test]
async fn a_snapshot_is_streamed_from_its_file_with_its_size() {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = DiskStore::open(dir.path(), 1 << 20).expect("store");
    let data: Vec<u8> = (0..(5 << 19) + 3).map(|i| (i % 251) as u8).collect();
    store.stager().stage(7, &data).expect("stage");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr").to_string();
    let (peer, mut snapshots) = mpsc::unbounded_channel();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PeerServer::new(SnapshotPeer(peer)))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    let endpoint = tonic::transport::Endpoint::from_shared(format!("http://{addr}")).expect("url");
    let (handle, reports) = driver(1);
    let mut msg = Message::default();
    msg.set_msg_type(MessageType::MsgSnapshot);
    msg.from = 1;
    msg.to = 2;
    msg.mut_snapshot().mut_metadata().index = 7;
    send_snapshot(
        1,
        endpoint.clone(),
        msg.clone(),
        handle.clone(),
        store.stager(),
    )
    .await;
    assert_eq!(snapshot_outcome(&reports).await, Some(true));
    let received = snapshots.recv().await.expect("received");
    assert_eq!(received.index, 7);
    assert_eq!(received.announced, data.len() as u64);
    assert!(received.data == data, "the file's bytes, in order");
    assert_eq!(received.largest_chunk, 1 << 20);
    // An old-format store's inline data goes from memory, the same way.
    let mut inline = msg.clone();
    inline.mut_snapshot().mut_metadata().index = 9;
    inline.mut_snapshot().data = Bytes::from(data[..(3 << 19)].to_vec());
    send_snapshot(1, endpoint.clone(), inline, handle.clone(), store.stager()).await;
    assert_eq!(snapshot_outcome(&reports).await, Some(true));
    let received = snapshots.recv().await.expect("received");
    assert_eq!(received.index, 9);
    assert_eq!(received.announced, 3 << 19);
    assert!(
        received.data == data[..(3 << 19)],
        "the inline bytes, in order"
    );
    // No data file at 8 (a newer snapshot removed it, say): reported failed.
    msg.mut_snapshot().mut_metadata().index = 8;
    send_snapshot(1, endpoint, msg, handle, store.stager()).await;
    assert_eq!(snapshot_outcome(&reports).await, Some(false));
    assert!(snapshots.try_recv().is_err(), "nothing was sent");
}
