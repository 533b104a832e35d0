//! The outbound side of Raft connections: one task per peer keeps a TCP
//! connection open and writes batches of whatever messages queued up
//! meanwhile. No connection is trusted blindly: one that closes, that the peer
//! goes silent on, or that stops taking bytes is replaced, and raft-rs is told
//! the peer was unreachable.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use coord_proto::peer::RaftBatch;
use protobuf::Message as _;
use raft::eraftpb::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::wire::{DEAD_AFTER, MAGIC};
use crate::driver::{DriverHandle, Input};
use coord_proto::frame::encode_frame;

/// Longest a frame may take to be written before the connection is replaced:
/// the peer keeps sending keep-alives but stopped reading.
pub const STALL: Duration = Duration::from_secs(3);
/// Bytes of encoded messages per batch.
const BATCH_BYTES: usize = 4 << 20;
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after a failed connection attempt.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// Keeps a Raft connection open to peer `to` at `addr` and feeds it batches
/// from `queue` until the queue closes.
pub async fn peer_loop(
    from: u64,
    to: u64,
    addr: String,
    mut queue: mpsc::Receiver<Message>,
    driver: DriverHandle,
) {
    let mut reachable = true;
    while let Some(first) = queue.recv().await {
        let stream = match connect(&addr).await {
            Ok(stream) => stream,
            Err(err) => {
                if reachable {
                    warn!(peer = to, %err, "peer unreachable");
                }
                reachable = false;
                let _ = driver.send(Input::Unreachable(to));
                while queue.try_recv().is_ok() {}
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if !reachable {
            info!(peer = to, "peer reachable again");
        }
        reachable = true;
        match send_over(from, stream, first, &mut queue).await {
            ConnectionEnd::Closed(err) => debug!(peer = to, %err, "raft connection closed"),
            ConnectionEnd::Silent => warn!(
                peer = to,
                silent_ms = DEAD_AFTER.as_millis() as u64,
                "peer went silent; reconnecting"
            ),
            ConnectionEnd::Stalled => warn!(
                peer = to,
                stall_ms = STALL.as_millis() as u64,
                "peer took no bytes; reconnecting"
            ),
            ConnectionEnd::QueueClosed => return,
        }
        let _ = driver.send(Input::Unreachable(to));
    }
}

async fn connect(addr: &str) -> io::Result<TcpStream> {
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(addr))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Why [`send_over`] returned.
#[derive(Debug)]
enum ConnectionEnd {
    /// The connection failed or the peer closed it.
    Closed(io::Error),
    /// No keep-alive for [`DEAD_AFTER`].
    Silent,
    /// A frame was not taken within [`STALL`].
    Stalled,
    /// The transport is shutting down.
    QueueClosed,
}

/// Writes `first` and then whatever arrives on `queue` over one connection,
/// until it ends, goes silent, stalls, or the queue closes. Listens for the
/// peer's keep-alives the whole time, so a lost connection is noticed even
/// while nothing is queued.
async fn send_over(
    from: u64,
    stream: TcpStream,
    first: Message,
    queue: &mut mpsc::Receiver<Message>,
) -> ConnectionEnd {
    let (mut reader, mut writer) = stream.into_split();
    let mut heard = [0u8; 64];
    let mut alive_until = Instant::now() + DEAD_AFTER;
    let mut frame = BytesMut::from(&MAGIC[..]);
    let mut next = first;
    loop {
        encode_frame(&collect_batch(from, next, queue), &mut frame);
        let write_by = Instant::now() + STALL;
        {
            let write = writer.write_all(&frame);
            tokio::pin!(write);
            loop {
                tokio::select! {
                    written = &mut write => match written {
                        Ok(()) => break,
                        Err(err) => return ConnectionEnd::Closed(err),
                    },
                    read = reader.read(&mut heard) => {
                        if let Some(end) = keep_alive(read, &mut alive_until) {
                            return end;
                        }
                    }
                    () = tokio::time::sleep_until(alive_until) => return ConnectionEnd::Silent,
                    () = tokio::time::sleep_until(write_by) => return ConnectionEnd::Stalled,
                }
            }
        }
        frame.clear();
        next = loop {
            tokio::select! {
                msg = queue.recv() => match msg {
                    Some(msg) => break msg,
                    None => return ConnectionEnd::QueueClosed,
                },
                read = reader.read(&mut heard) => {
                    if let Some(end) = keep_alive(read, &mut alive_until) {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(alive_until) => return ConnectionEnd::Silent,
            }
        };
    }
}

/// Accounts for bytes read from the peer: keep-alives push the deadline out,
/// an end of stream or an error ends the connection.
fn keep_alive(read: io::Result<usize>, alive_until: &mut Instant) -> Option<ConnectionEnd> {
    match read {
        Ok(0) => Some(ConnectionEnd::Closed(io::ErrorKind::UnexpectedEof.into())),
        Ok(_) => {
            *alive_until = Instant::now() + DEAD_AFTER;
            None
        }
        Err(err) => Some(ConnectionEnd::Closed(err)),
    }
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
