//! The peer transport: Raft messages travel over plain TCP connections of
//! their own (`wire`: the format, `sender`: one task per peer, `receiver`: the
//! inbound side and the peer port it shares with the gRPC peer service).
//! Snapshots travel separately, streamed in chunks by the gRPC
//! `InstallSnapshot` call, and the outcome is reported back to raft-rs.
//! Sending is best effort: when a peer is down its messages are dropped and
//! raft-rs is told it is unreachable (docs/architecture.md, the peer
//! transport).

mod receiver;
mod sender;
mod wire;

pub use receiver::accept_peers;
pub use wire::decode_message;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use coord_proto::peer::SnapshotChunk;
use coord_proto::peer::peer_client::PeerClient;
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use crate::driver::{DriverHandle, Input, Outbox};

/// Messages queued per peer before new ones are dropped.
const QUEUE_MESSAGES: usize = 8192;
/// Size of one streamed snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Largest peer message accepted or sent: a Raft connection's frame, a
/// gRPC peer message.
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
    /// this member included and skipped). Snapshots go through the gRPC peer
    /// service at the same address.
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
            runtime.spawn(sender::peer_loop(
                id,
                peer,
                addr.clone(),
                rx,
                driver.clone(),
            ));
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
mod tests;
