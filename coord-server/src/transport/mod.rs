//! The peer transport: Raft messages travel over plain TCP connections of
//! their own (`wire`: the format, `sender`: the outbound side, written by the
//! driver thread itself and kept up by one task per peer, `receiver`: the
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
pub use wire::{KEEPALIVE, KEEPALIVE_EVERY, decode_message, take_frames};

use std::collections::HashMap;
use std::io::Read;
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use coord_proto::frame::encode_frame;
use coord_proto::peer::peer_client::PeerClient;
use coord_proto::peer::{RaftBatch, SnapshotChunk};
use protobuf::Message as _;
use raft::eraftpb::{Message, MessageType};
use std::sync::Arc;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info, warn};

use crate::driver::{DriverHandle, Input, Outbox};
use crate::storage::SnapshotStager;

/// Bytes of encoded messages per frame; a send with more for one peer
/// writes several.
const BATCH_BYTES: usize = 4 << 20;
/// Size of one streamed snapshot chunk.
const SNAPSHOT_CHUNK_BYTES: usize = 1 << 20;
/// Chunks read ahead of the stream sending a snapshot file.
const CHUNKS_IN_FLIGHT: usize = 4;
/// Largest peer message accepted or sent: a Raft connection's frame, a
/// gRPC peer message.
pub const MAX_PEER_MESSAGE_BYTES: usize = 64 << 20;

/// The driver's [`Outbox`]: writes each peer's messages of a send as one
/// frame (several past [`BATCH_BYTES`]) to its link.
#[derive(Debug)]
pub struct Transport {
    id: u64,
    links: HashMap<u64, Arc<sender::Link>>,
    /// The frame being written; reused.
    frame: BytesMut,
    endpoints: HashMap<u64, Endpoint>,
    driver: DriverHandle,
    runtime: Handle,
    files: SnapshotStager,
}

impl Transport {
    /// Starts one link and its task per peer (`peers` maps member id to peer address,
    /// this member included and skipped). Snapshots go through the gRPC peer
    /// service at the same address, their data read from `files`.
    pub fn start(
        id: u64,
        peers: &HashMap<u64, String>,
        driver: DriverHandle,
        runtime: Handle,
        files: SnapshotStager,
    ) -> Result<Self, tonic::transport::Error> {
        let mut links = HashMap::new();
        let mut endpoints = HashMap::new();
        for (&peer, addr) in peers.iter().filter(|(p, _)| **p != id) {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true)
                .http2_keep_alive_interval(Duration::from_secs(1))
                .keep_alive_timeout(Duration::from_secs(2));
            let link = Arc::new(sender::Link::default());
            runtime.spawn(sender::peer_loop(
                peer,
                addr.clone(),
                Arc::clone(&link),
                driver.clone(),
            ));
            links.insert(peer, link);
            endpoints.insert(peer, endpoint);
        }
        Ok(Self {
            id,
            links,
            frame: BytesMut::new(),
            endpoints,
            driver,
            runtime,
            files,
        })
    }
}

impl Outbox for Transport {
    fn send(&mut self, mut messages: Vec<Message>) {
        // A stable sort: each peer's messages keep their order.
        messages.sort_by_key(|msg| msg.to);
        let mut batch = RaftBatch {
            from: self.id,
            msgs: Vec::new(),
        };
        let mut batch_to = None;
        let mut batch_bytes = 0;
        for msg in messages {
            if msg.get_msg_type() == MessageType::MsgSnapshot {
                if let Some(endpoint) = self.endpoints.get(&msg.to) {
                    let task = send_snapshot(
                        self.id,
                        endpoint.clone(),
                        msg,
                        self.driver.clone(),
                        self.files.clone(),
                    );
                    self.runtime.spawn(task);
                }
                continue;
            }
            if !self.links.contains_key(&msg.to) {
                debug!(to = msg.to, "message for an unknown member dropped");
                continue;
            }
            let bytes = match msg.write_to_bytes() {
                Ok(bytes) => Bytes::from(bytes),
                Err(err) => {
                    warn!(%err, "raft message does not encode; dropped");
                    continue;
                }
            };
            let full = batch_bytes + bytes.len() > BATCH_BYTES && !batch.msgs.is_empty();
            if batch_to != Some(msg.to) || full {
                if let Some(to) = batch_to {
                    self.write(to, &mut batch);
                }
                batch_to = Some(msg.to);
                batch_bytes = 0;
            }
            batch_bytes += bytes.len();
            batch.msgs.push(bytes);
        }
        if let Some(to) = batch_to {
            self.write(to, &mut batch);
        }
    }
}

impl Transport {
    /// Writes `batch` to peer `to`'s link as one frame and empties it.
    fn write(&mut self, to: u64, batch: &mut RaftBatch) {
        if let Some(link) = self.links.get(&to) {
            self.frame.clear();
            encode_frame(batch, &mut self.frame);
            link.send(&self.frame);
        }
        batch.msgs.clear();
    }
}

impl Drop for Transport {
    /// Ends the peers' tasks with the driver that fed them.
    fn drop(&mut self) {
        for link in self.links.values() {
            link.close();
        }
    }
}

fn client(channel: Channel) -> PeerClient<Channel> {
    PeerClient::new(channel)
        .max_encoding_message_size(MAX_PEER_MESSAGE_BYTES)
        .max_decoding_message_size(MAX_PEER_MESSAGE_BYTES)
}

/// Streams a MsgSnapshot in chunks and reports the outcome to raft-rs. The
/// data comes from the snapshot's file, a chunk at a time, or from the
/// message when it carries it (an old-format store's inline snapshot).
async fn send_snapshot(
    from: u64,
    endpoint: Endpoint,
    mut msg: Message,
    driver: DriverHandle,
    files: SnapshotStager,
) {
    let to = msg.to;
    let inline = std::mem::take(&mut msg.mut_snapshot().data);
    let index = msg.get_snapshot().get_metadata().index;
    let first = msg.write_to_bytes().map(|header| SnapshotChunk {
        message: header.into(),
        ..SnapshotChunk::default()
    });
    let chunks = match first {
        Err(err) => Err(err.to_string()),
        Ok(first) if inline.is_empty() => file_chunks(first, files, index).await,
        Ok(first) => Ok(memory_chunks(first, inline, index)),
    };
    let ok = match chunks {
        Err(err) => {
            warn!(peer = to, index, %err, "snapshot not sent");
            false
        }
        Ok((chunks, bytes)) => {
            let sent = async move {
                let channel = endpoint.connect().await.map_err(|e| e.to_string())?;
                client(channel)
                    .install_snapshot(chunks)
                    .await
                    .map_err(|e| e.to_string())
            };
            // 30 s, and 1 s more per 10 MB.
            let timeout = Duration::from_secs(30) + Duration::from_millis(bytes / 10_000);
            match tokio::time::timeout(timeout, sent).await {
                Ok(Ok(_)) => {
                    info!(peer = to, from, index, bytes, "snapshot sent");
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
            }
        }
    };
    let _ = driver.send(Input::SnapshotSent { to, ok });
}

/// The chunks of the snapshot at `index`: `first` (given the data's size),
/// then its data file's; and the data's size.
async fn file_chunks(
    first: SnapshotChunk,
    files: SnapshotStager,
    index: u64,
) -> Result<(ReceiverStream<SnapshotChunk>, u64), String> {
    let (file, bytes) = tokio::task::spawn_blocking(move || files.open(index))
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    Ok((spawn_chunks(first, file, bytes, index), bytes))
}

/// `first` (given the data's size), then in-memory `data` in chunks; and the
/// data's size.
fn memory_chunks(
    first: SnapshotChunk,
    data: Bytes,
    index: u64,
) -> (ReceiverStream<SnapshotChunk>, u64) {
    let bytes = data.len() as u64;
    (spawn_chunks(first, data.reader(), bytes, index), bytes)
}

/// `first`, announcing `bytes` of data, then `data` in chunks, read on a
/// blocking thread as the stream takes them.
fn spawn_chunks(
    mut first: SnapshotChunk,
    data: impl Read + Send + 'static,
    bytes: u64,
    index: u64,
) -> ReceiverStream<SnapshotChunk> {
    first.data_bytes = bytes;
    let (chunks, stream) = mpsc::channel(CHUNKS_IN_FLIGHT);
    tokio::task::spawn_blocking(move || {
        if chunks.blocking_send(first).is_ok() {
            read_chunks(data, index, &chunks);
        }
    });
    ReceiverStream::new(stream)
}

/// Sends `data` in chunks until its end, or until the stream is dropped. A
/// read error ends the stream short, which the receiver refuses (it checks
/// the size the first chunk announced).
fn read_chunks(mut data: impl Read, index: u64, chunks: &mpsc::Sender<SnapshotChunk>) {
    loop {
        let mut piece = Vec::with_capacity(SNAPSHOT_CHUNK_BYTES);
        match (&mut data)
            .take(SNAPSHOT_CHUNK_BYTES as u64)
            .read_to_end(&mut piece)
        {
            Ok(0) => return,
            Ok(_) => {}
            Err(err) => {
                warn!(index, %err, "snapshot data not read to its end");
                return;
            }
        }
        let chunk = SnapshotChunk {
            data: piece.into(),
            ..SnapshotChunk::default()
        };
        if chunks.blocking_send(chunk).is_err() {
            return;
        }
    }
}

#[cfg(test)]
mod tests;
