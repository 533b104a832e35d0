//! Outbound peer transport: one task per peer keeps a client-streaming `Raft`
//! call open and sends batches of whatever messages queued up meanwhile.
//! Snapshots travel separately, streamed in chunks by `InstallSnapshot`, and the
//! outcome is reported back to raft-rs. Sending is best effort: when a peer is
//! down its messages are dropped and raft-rs is told it is unreachable. No
//! stream is trusted blindly: one that ends or stops taking batches is
//! replaced (docs/architecture.md, the peer transport).

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use coord_proto::peer::peer_client::PeerClient;
use coord_proto::peer::{RaftBatch, SnapshotChunk};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use crate::driver::{DriverHandle, Input, Outbox};

/// Messages queued per peer before new ones are dropped.
const QUEUE_MESSAGES: usize = 8192;
/// Longest a batch may wait for a peer's stream to take it before the stream
/// is replaced. Longer than HTTP/2's keep-alive timeout, which catches most
/// dead connections first.
const STALL: Duration = Duration::from_secs(3);
/// Bytes of encoded messages per batch.
const BATCH_BYTES: usize = 4 << 20;
/// Size of one streamed snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Largest peer message accepted or sent.
pub const MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;

/// The driver's [`Outbox`]: routes each message to its peer's task.
#[derive(Debug)]
pub struct Transport {
    id: u64,
    queues: HashMap<u64, mpsc::Sender<Message>>,
    endpoints: HashMap<u64, Endpoint>,
    driver: DriverHandle,
    runtime: Handle,
}

impl Transport {
    /// Starts one sender task per peer (`peers` maps member id to peer address,
    /// this member included and skipped).
    pub fn start(
        id: u64,
        peers: &HashMap<u64, String>,
        driver: DriverHandle,
        runtime: Handle,
    ) -> Result<Self, tonic::transport::Error> {
        let mut queues = HashMap::new();
        let mut endpoints = HashMap::new();
        for (&peer, addr) in peers.iter().filter(|(p, _)| **p != id) {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(2));
            let (tx, rx) = mpsc::channel(QUEUE_MESSAGES);
            runtime.spawn(peer_loop(id, peer, endpoint.clone(), rx, driver.clone()));
            queues.insert(peer, tx);
            endpoints.insert(peer, endpoint);
        }
        Ok(Self {
            id,
            queues,
            endpoints,
            driver,
            runtime,
        })
    }
}

impl Outbox for Transport {
    fn send(&mut self, messages: Vec<Message>) {
        for msg in messages {
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                if let Some(endpoint) = self.endpoints.get(&msg.to) {
                    let task = send_snapshot(self.id, endpoint.clone(), msg, self.driver.clone());
                    self.runtime.spawn(task);
                }
                continue;
            }
            let Some(queue) = self.queues.get(&msg.to) else {
                debug!(to = msg.to, "message for an unknown member dropped");
                continue;
            };
            if queue.try_send(msg).is_err() {
                debug!("peer queue full; message dropped");
            }
        }
    }
}

fn client(channel: Channel) -> PeerClient<Channel> {
    PeerClient::new(channel)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
}

/// Keeps a `Raft` stream open to one peer and feeds it batches.
async fn peer_loop(
    from: u64,
    to: u64,
    endpoint: Endpoint,
    mut queue: mpsc::Receiver<Message>,
    driver: DriverHandle,
) {
    let mut reachable = true;
    while let Some(first) = queue.recv().await {
        let channel = match endpoint.connect().await {
            Ok(channel) => channel,
            Err(err) => {
                if reachable {
                    warn!(peer = to, %err, "peer unreachable");
                }
                reachable = false;
                let _ = driver.send(Input::Unreachable(to));
                while queue.try_recv().is_ok() {}
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        if !reachable {
            info!(peer = to, "peer reachable again");
        }
        reachable = true;
        match stream_batches(from, client(channel), first, &mut queue).await {
            StreamEnd::Ended(status) => debug!(peer = to, %status, "raft stream ended"),
            StreamEnd::Stalled => warn!(
                peer = to,
                stall_ms = STALL.as_millis() as u64,
                "peer took no messages; reconnecting"
            ),
            StreamEnd::QueueClosed => return,
        }
        let _ = driver.send(Input::Unreachable(to));
    }
}

/// Why [`stream_batches`] returned.
#[derive(Debug)]
enum StreamEnd {
    /// The call finished or failed, or its connection was lost.
    Ended(Status),
    /// A batch waited [`STALL`] for the stream to take it: the stream is
    /// presumed stuck and is dropped.
    Stalled,
    /// The transport is shutting down.
    QueueClosed,
}

/// Sends `first` and then whatever arrives on `queue` over one `Raft` call,
/// until the call ends, stalls, or the queue closes. Watches the call the
/// whole time, so a lost stream is noticed even while nothing is queued. The
/// call takes batches from a one-slot channel, and a batch left in the slot
/// for [`STALL`] means the stream is stuck (a call never dispatched on a
/// connection that died under it, or a peer that stopped reading): the sender
/// must not hang on one stream while the peer's messages pile up and drop.
async fn stream_batches(
    from: u64,
    mut peer: PeerClient<Channel>,
    first: Message,
    queue: &mut mpsc::Receiver<Message>,
) -> StreamEnd {
    let (batches, rx) = mpsc::channel::<RaftBatch>(1);
    let mut call = tokio::spawn(async move { peer.raft(ReceiverStream::new(rx)).await });
    let ended = |joined: Result<Result<_, Status>, tokio::task::JoinError>| {
        StreamEnd::Ended(match joined {
            Ok(Ok(_)) => Status::ok("the peer ended the stream"),
            Ok(Err(status)) => status,
            Err(err) => Status::internal(format!("raft call task: {err}")),
        })
    };
    let mut next = first;
    let end = 'stream: loop {
        let batch = collect_batch(from, next, queue);
        tokio::select! {
            joined = &mut call => break ended(joined),
            sent = tokio::time::timeout(STALL, batches.send(batch)) => match sent {
                Ok(Ok(())) => {}
                Ok(Err(_)) => break StreamEnd::Ended(Status::unavailable("the stream closed")),
                Err(_) => break StreamEnd::Stalled,
            },
        }
        let taken_by = tokio::time::Instant::now() + STALL;
        let mut watching = true;
        next = loop {
            tokio::select! {
                joined = &mut call => break 'stream ended(joined),
                msg = queue.recv() => match msg {
                    Some(msg) => break msg,
                    None => break 'stream StreamEnd::QueueClosed,
                },
                () = tokio::time::sleep_until(taken_by), if watching => {
                    if batches.capacity() == 0 {
                        break 'stream StreamEnd::Stalled;
                    }
                    watching = false;
                }
            }
        };
    };
    call.abort();
    end
}

/// One batch: `first` plus whatever is already queued, up to [`BATCH_BYTES`].
fn collect_batch(from: u64, first: Message, queue: &mut mpsc::Receiver<Message>) -> RaftBatch {
    let mut msgs = Vec::new();
    let mut size = 0;
    let mut next = Some(first);
    while let Some(msg) = next.take() {
        match msg.write_to_bytes() {
            Ok(bytes) => {
                size += bytes.len();
                msgs.push(Bytes::from(bytes));
            }
            Err(err) => warn!(%err, "raft message does not encode; dropped"),
        }
        if size < BATCH_BYTES {
            next = queue.try_recv().ok();
        }
    }
    RaftBatch { from, msgs }
}

/// Streams a MsgSnapshot in chunks and reports the outcome to raft-rs.
async fn send_snapshot(from: u64, endpoint: Endpoint, mut msg: Message, driver: DriverHandle) {
    let to = msg.to;
    let data = std::mem::take(&mut msg.mut_snapshot().data);
    let index = msg.get_snapshot().get_metadata().index;
    let outcome = async {
        let header = msg.write_to_bytes().map_err(|e| e.to_string())?;
        let mut chunks = vec![SnapshotChunk {
            message: header.into(),
            data: Bytes::new(),
        }];
        let mut offset = 0;
        while offset < data.len() {
            let end = (offset + SNAPSHOT_CHUNK_BYTES).min(data.len());
            chunks.push(SnapshotChunk {
                message: Bytes::new(),
                data: data.slice(offset..end),
            });
            offset = end;
        }
        let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
        client(channel)
            .install_snapshot(tokio_stream::iter(chunks))
            .await
            .map_err(|e| e.to_string())
    };
    let timeout = Duration::from_secs(30) + Duration::from_millis(data.len() as u64 / 10_000);
    let ok = match tokio::time::timeout(timeout, outcome).await {
        Ok(Ok(_)) => {
            info!(peer = to, from, index, bytes = data.len(), "snapshot sent");
            true
        }
        Ok(Err(err)) => {
            warn!(peer = to, index, %err, "snapshot not sent");
            false
        }
        Err(_) => {
            warn!(peer = to, index, "snapshot send timed out");
            false
        }
    };
    let _ = driver.send(Input::SnapshotSent { to, ok });
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use coord_proto::peer::peer_server::{Peer, PeerServer};
    use coord_proto::peer::{LeaseQuery, LeaseQueryResponse, PeerAck};
    use raft::eraftpb::Entry;
    use tokio::net::TcpListener;
    use tokio_stream::wrappers::TcpListenerStream;
    use tonic::{Request, Response, Streaming};

    use crate::core::StateMachine;
    use crate::driver::Shared;
    use crate::watch::WatchConfig;

    /// What a test peer does with a `Raft` stream after its first batch.
    #[derive(Debug, Clone, Copy)]
    enum Behaviour {
        /// Keeps the call open and reads nothing more: HTTP/2 still answers
        /// pings, so only the stall bound can notice.
        StopReading,
        /// Fails the call.
        Fail,
    }

    #[derive(Debug)]
    struct TestPeer {
        behaviour: Behaviour,
        streams: Arc<AtomicUsize>,
    }

    #[tonic::async_trait]
    impl Peer for TestPeer {
        async fn leases(
            &self,
            _: Request<LeaseQuery>,
        ) -> Result<Response<LeaseQueryResponse>, Status> {
            Err(Status::unimplemented("test peer"))
        }

        async fn raft(
            &self,
            request: Request<Streaming<RaftBatch>>,
        ) -> Result<Response<PeerAck>, Status> {
            self.streams.fetch_add(1, Ordering::SeqCst);
            let mut stream = request.into_inner();
            stream.message().await?;
            match self.behaviour {
                Behaviour::StopReading => std::future::pending().await,
                Behaviour::Fail => Err(Status::internal("the test peer fails the stream")),
            }
        }

        async fn install_snapshot(
            &self,
            _: Request<Streaming<SnapshotChunk>>,
        ) -> Result<Response<PeerAck>, Status> {
            Err(Status::unimplemented("test peer"))
        }
    }

    /// Serves a test peer on a free loopback port; returns its address and a
    /// count of the `Raft` streams it was sent.
    async fn serve(behaviour: Behaviour) -> (String, Arc<AtomicUsize>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        let streams = Arc::new(AtomicUsize::new(0));
        let peer = TestPeer {
            behaviour,
            streams: Arc::clone(&streams),
        };
        tokio::spawn(
            tonic::transport::Server::builder()
                .add_service(PeerServer::new(peer))
                .serve_with_incoming(TcpListenerStream::new(listener)),
        );
        (addr, streams)
    }

    /// Starts a peer loop from member 1 to member 2 at `addr`; returns its
    /// queue and the driver inputs it reports to.
    fn start_loop(addr: &str) -> (mpsc::Sender<Message>, std::sync::mpsc::Receiver<Input>) {
        let (inputs, reports) = std::sync::mpsc::channel();
        let watches = WatchConfig {
            history_events: 16,
            max_watches_per_stream: 16,
            stream_buffer: 16,
        };
        let shared = Arc::new(Shared::new(1, StateMachine::new(16), watches));
        let driver = DriverHandle::new(inputs, shared, Duration::from_secs(1));
        let endpoint = Endpoint::from_shared(format!("http://{addr}")).expect("endpoint");
        let (queue, rx) = mpsc::channel(QUEUE_MESSAGES);
        tokio::spawn(peer_loop(1, 2, endpoint, rx, driver));
        (queue, reports)
    }

    fn append(bytes: usize) -> Message {
        let entry = Entry {
            data: Bytes::from(vec![7u8; bytes]),
            ..Entry::default()
        };
        let mut msg = Message::default();
        msg.set_msg_type(MessageType::MsgAppend);
        msg.from = 1;
        msg.to = 2;
        msg.set_entries(vec![entry].into());
        msg
    }

    /// Waits up to `within` for the loop to report member 2 unreachable.
    async fn reported_unreachable(
        reports: &std::sync::mpsc::Receiver<Input>,
        within: Duration,
    ) -> bool {
        let deadline = tokio::time::Instant::now() + within;
        while tokio::time::Instant::now() < deadline {
            while let Ok(input) = reports.try_recv() {
                if matches!(input, Input::Unreachable(2)) {
                    return true;
                }
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        false
    }

    #[tokio::test]
    async fn a_stream_the_peer_stopped_reading_is_replaced() {
        let (addr, streams) = serve(Behaviour::StopReading).await;
        let (queue, reports) = start_loop(&addr);
        let feeder = tokio::spawn(async move {
            loop {
                let _ = queue.try_send(append(64 << 10));
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        let replaced = reported_unreachable(&reports, STALL * 4).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
        while streams.load(Ordering::SeqCst) < 2 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        feeder.abort();
        assert!(replaced, "a stalled stream was never given up");
        assert!(
            streams.load(Ordering::SeqCst) >= 2,
            "no new stream after the stall"
        );
    }

    /// One message bigger than the peer's flow-control windows occupies the
    /// call, the next waits in HTTP/2's send buffer for window, the last in
    /// the slot while nothing more is queued.
    #[tokio::test]
    async fn a_batch_left_waiting_with_nothing_queued_is_noticed() {
        let (addr, streams) = serve(Behaviour::StopReading).await;
        let (queue, reports) = start_loop(&addr);
        queue.try_send(append(16)).expect("queued");
        tokio::time::sleep(Duration::from_millis(200)).await;
        queue.try_send(append(3 << 20)).expect("queued");
        for _ in 0..2 {
            tokio::time::sleep(Duration::from_millis(200)).await;
            queue.try_send(append(16)).expect("queued");
        }
        assert!(
            reported_unreachable(&reports, STALL + Duration::from_secs(3)).await,
            "a batch nobody took went unnoticed"
        );
        assert_eq!(streams.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_stream_that_ends_is_noticed_while_nothing_is_queued() {
        let (addr, streams) = serve(Behaviour::Fail).await;
        let (queue, reports) = start_loop(&addr);
        queue.try_send(append(16)).expect("queued");
        assert!(
            reported_unreachable(&reports, Duration::from_secs(5)).await,
            "the failed stream went unnoticed until the next message"
        );
        assert_eq!(streams.load(Ordering::SeqCst), 1);
    }
}
