//! The outbound side of Raft connections. The driver thread writes each
//! batch of messages straight into the peer's socket when nothing is
//! waiting to go before it ([`Link::send`]): handing it to a task first cost
//! a thread wake-up per batch, the largest part of a lone write's latency
//! between members (docs/benchmarks.md). One task per peer does the rest
//! ([`peer_loop`]): it connects, writes whatever the socket did not take at
//! once, and listens for the peer's keep-alives. No connection is trusted
//! blindly: one that closes, that the peer goes silent on, or that stops
//! taking bytes is replaced, and raft-rs is told the peer was unreachable.

use std::io;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio::time::Instant;
use tracing::{debug, info, warn};

use super::wire::{DEAD_AFTER, MAGIC};
use crate::driver::{DriverHandle, Input};

/// Longest a chunk of queued bytes may take to be written before the
/// connection is replaced: the peer keeps sending keep-alives but stopped
/// reading.
pub const STALL: Duration = Duration::from_secs(3);
/// Bytes the task takes from the queue to write at a time.
const CHUNK_BYTES: usize = 4 << 20;
/// Bytes queued for a peer before new frames are dropped (Raft tolerates
/// loss, and a peer this far behind gets a snapshot).
const MAX_QUEUED_BYTES: usize = 64 << 20;
/// Longest a connection attempt may take.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Pause after a failed connection attempt.
const RETRY_AFTER: Duration = Duration::from_millis(100);

/// The connection to one peer as the driver thread and the peer's task share
/// it: whoever writes holds the lock, so frames never interleave.
#[derive(Debug, Default)]
pub struct Link {
    state: Mutex<LinkState>,
    /// Wakes the task: bytes were queued, or the link closed.
    wake: Notify,
}

/// What [`Link`] guards.
#[derive(Debug, Default)]
struct LinkState {
    /// The connection, from the moment the task took it over; `None` between
    /// connections.
    stream: Option<Arc<TcpStream>>,
    /// Bytes for the connection that the socket has not taken yet.
    queued: BytesMut,
    /// The task holds bytes taken from `queued` that are not all written:
    /// new frames must queue behind them.
    writing: bool,
    /// The transport is gone; the task ends.
    closed: bool,
}

impl Link {
    fn lock(&self) -> MutexGuard<'_, LinkState> {
        self.state
            .lock()
            .unwrap_or_else(|_| panic!("peer link lock poisoned"))
    }

    /// Sends one encoded frame: straight into the socket when nothing waits
    /// before it, else queued for the task. Never blocks on the network.
    pub fn send(&self, frame: &[u8]) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        if state.queued.len() + frame.len() > MAX_QUEUED_BYTES {
            debug!(
                queued = state.queued.len(),
                "peer queue full; frame dropped"
            );
            return;
        }
        if let (Some(stream), false, true) = (&state.stream, state.writing, state.queued.is_empty())
        {
            match stream.try_write(frame) {
                Ok(n) if n == frame.len() => return,
                Ok(n) => state.queued.extend_from_slice(&frame[n..]),
                Err(err) if err.kind() == io::ErrorKind::WouldBlock => {
                    state.queued.extend_from_slice(frame);
                }
                // The connection failed: the task hears of it on its read.
                Err(err) => {
                    debug!(%err, "raft frame not written; dropped");
                    return;
                }
            }
        } else {
            state.queued.extend_from_slice(frame);
        }
        drop(state);
        self.wake.notify_one();
    }

    /// Ends the link: queued bytes are dropped and the task stops.
    pub fn close(&self) {
        let mut state = self.lock();
        state.closed = true;
        state.queued.clear();
        drop(state);
        self.wake.notify_one();
    }

    /// Waits until bytes are queued (`true`) or the link closes (`false`).
    async fn queued(&self) -> bool {
        loop {
            {
                let state = self.lock();
                if state.closed {
                    return false;
                }
                if !state.queued.is_empty() {
                    return true;
                }
            }
            self.wake.notified().await;
        }
    }

    /// Forgets what was queued for a connection that could not be used.
    fn drop_queued(&self) {
        let mut state = self.lock();
        state.stream = None;
        state.writing = false;
        state.queued.clear();
    }

    /// Makes `stream` the connection, the task writing first the magic and
    /// what was queued; returns those bytes.
    fn take_over(&self, stream: &Arc<TcpStream>) -> BytesMut {
        let mut state = self.lock();
        state.stream = Some(Arc::clone(stream));
        state.writing = true;
        let mut out = BytesMut::from(&MAGIC[..]);
        let n = state.queued.len().min(CHUNK_BYTES);
        out.extend_from_slice(&state.queued.split_to(n));
        out
    }

    /// The next chunk for the task to write; empty (and the driver writes
    /// directly again) when nothing is queued. `None` once the link closed.
    fn next_chunk(&self) -> Option<BytesMut> {
        let mut state = self.lock();
        if state.closed {
            return None;
        }
        let n = state.queued.len().min(CHUNK_BYTES);
        state.writing = n > 0;
        Some(state.queued.split_to(n))
    }
}

/// Keeps a Raft connection open to peer `to` at `addr` whenever `link` has
/// bytes for it, until the link closes.
pub async fn peer_loop(to: u64, addr: String, link: Arc<Link>, driver: DriverHandle) {
    let mut reachable = true;
    while link.queued().await {
        let stream = match connect(&addr).await {
            Ok(stream) => Arc::new(stream),
            Err(err) => {
                if reachable {
                    warn!(peer = to, %err, "peer unreachable");
                }
                reachable = false;
                link.drop_queued();
                let _ = driver.send(Input::Unreachable(to));
                tokio::time::sleep(RETRY_AFTER).await;
                continue;
            }
        };
        if !reachable {
            info!(peer = to, "peer reachable again");
        }
        reachable = true;
        let first = link.take_over(&stream);
        let end = serve(&link, &stream, first).await;
        link.drop_queued();
        match end {
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
            ConnectionEnd::LinkClosed => return,
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

/// Why [`serve`] returned.
#[derive(Debug)]
enum ConnectionEnd {
    /// The connection failed or the peer closed it.
    Closed(io::Error),
    /// No keep-alive for [`DEAD_AFTER`].
    Silent,
    /// A chunk was not taken within [`STALL`].
    Stalled,
    /// The transport is shutting down.
    LinkClosed,
}

/// Writes `first`, then every chunk the driver could not write itself, over
/// one connection until it ends, goes silent, stalls, or the link closes.
/// Listens for the peer's keep-alives the whole time, so a lost connection
/// is noticed even while nothing is queued.
async fn serve(link: &Link, stream: &TcpStream, first: BytesMut) -> ConnectionEnd {
    let mut heard = [0u8; 64];
    let mut alive_until = Instant::now() + DEAD_AFTER;
    let mut out = first;
    loop {
        let write_by = Instant::now() + STALL;
        while out.has_remaining() {
            tokio::select! {
                writable = stream.writable() => {
                    if let Err(err) = writable {
                        return ConnectionEnd::Closed(err);
                    }
                    match stream.try_write(&out) {
                        Ok(n) => out.advance(n),
                        Err(err) if err.kind() == io::ErrorKind::WouldBlock => {}
                        Err(err) => return ConnectionEnd::Closed(err),
                    }
                }
                readable = stream.readable() => {
                    if let Some(end) = keep_alive(readable, stream, &mut heard, &mut alive_until) {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(alive_until) => return ConnectionEnd::Silent,
                () = tokio::time::sleep_until(write_by) => return ConnectionEnd::Stalled,
            }
        }
        out = loop {
            match link.next_chunk() {
                None => return ConnectionEnd::LinkClosed,
                Some(chunk) if !chunk.is_empty() => break chunk,
                Some(_) => {}
            }
            tokio::select! {
                () = link.wake.notified() => {}
                readable = stream.readable() => {
                    if let Some(end) = keep_alive(readable, stream, &mut heard, &mut alive_until) {
                        return end;
                    }
                }
                () = tokio::time::sleep_until(alive_until) => return ConnectionEnd::Silent,
            }
        };
    }
}

/// Reads what the peer sent once the socket is readable: keep-alives push
/// the deadline out, an end of stream or an error ends the connection.
fn keep_alive(
    readable: io::Result<()>,
    stream: &TcpStream,
    heard: &mut [u8],
    alive_until: &mut Instant,
) -> Option<ConnectionEnd> {
    if let Err(err) = readable {
        return Some(ConnectionEnd::Closed(err));
    }
    match stream.try_read(heard) {
        Ok(0) => Some(ConnectionEnd::Closed(io::ErrorKind::UnexpectedEof.into())),
        Ok(_) => {
            *alive_until = Instant::now() + DEAD_AFTER;
            None
        }
        Err(err) if err.kind() == io::ErrorKind::WouldBlock => None,
        Err(err) => Some(ConnectionEnd::Closed(err)),
    }
}
