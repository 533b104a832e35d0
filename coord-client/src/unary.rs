//! The unary-call protocol, client side: every unary call goes over one plain
//! TCP connection per member, multiplexed by call id, instead of a gRPC call
//! over HTTP/2 (docs/api.md, "The unary-call protocol"). The caller writes its
//! own frame; one reader task per connection hands each reply to its caller.
//! A connection that fails fails every call in flight on it as `Unavailable`
//! (the retry loop moves on) and is replaced by the next call; a connect that
//! fails fails the calls that waited for it too (see `Slot`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use bytes::BytesMut;
use coord_proto::frame::{self, encode_frame};
use coord_proto::v1::{UnaryCall, UnaryReply};
use coord_proto::{UNARY_MAGIC, UNARY_MAX_FRAME_BYTES, Unary};
use prost::Message;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tonic::{Code, Status};

/// Bytes read from a connection at a time.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// The unary-protocol connection to one member, opened by the first call
/// and again after a failure.
#[derive(Debug)]
pub(crate) struct UnaryConn {
    /// `host:port` of the member's client port.
    addr: String,
    connect_timeout: Duration,
    slot: tokio::sync::Mutex<Slot>,
}

/// The connection, if one is open, and how the last attempt to open one
/// failed: callers that waited while an attempt ran share its failure
/// instead of each waiting out a connect of its own, one after the other
/// (a member that does not answer would otherwise hold every caller for
/// its whole request timeout).
#[derive(Debug, Default)]
struct Slot {
    live: Option<Arc<Live>>,
    /// When the last failed attempt ended, and its error.
    failed: Option<(Instant, Status)>,
}

/// Calls waiting for their reply; `None` once the connection failed.
type Pending = Option<HashMap<u64, oneshot::Sender<UnaryReply>>>;

/// An open connection.
#[derive(Debug)]
struct Live {
    writer: tokio::sync::Mutex<OwnedWriteHalf>,
    pending: Arc<Mutex<Pending>>,
    next_id: AtomicU64,
    reader: JoinHandle<()>,
}

impl Drop for Live {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Live {
    fn is_open(&self) -> bool {
        lock(&self.pending).is_some()
    }

    /// Fails every call in flight and marks the connection closed.
    fn close(&self) {
        close(&self.pending);
    }
}

fn lock(pending: &Mutex<Pending>) -> std::sync::MutexGuard<'_, Pending> {
    pending.lock().unwrap_or_else(PoisonError::into_inner)
}

fn close(pending: &Mutex<Pending>) {
    // Dropping the senders wakes every waiting call with an error.
    lock(pending).take();
}

/// Closes the connection if dropped before `done` is set.
struct CloseUnlessDone<'a> {
    live: &'a Live,
    done: bool,
}

impl Drop for CloseUnlessDone<'_> {
    fn drop(&mut self) {
        if !self.done {
            self.live.close();
        }
    }
}

/// Takes a call out of the pending table when its caller stops waiting
/// (answered, timed out or dropped).
struct Forget<'a> {
    pending: &'a Mutex<Pending>,
    id: u64,
}

impl Drop for Forget<'_> {
    fn drop(&mut self) {
        if let Some(calls) = lock(self.pending).as_mut() {
            calls.remove(&self.id);
        }
    }
}

impl UnaryConn {
    /// A connection to `addr` (`host:port`), not yet opened.
    pub(crate) fn new(addr: String, connect_timeout: Duration) -> Self {
        Self {
            addr,
            connect_timeout,
            slot: tokio::sync::Mutex::new(Slot::default()),
        }
    }

    /// The member's `host:port`, for other plain-TCP connections to it.
    pub(crate) fn addr(&self) -> &str {
        &self.addr
    }

    /// Sends one call and waits for its reply. Failures come back as the
    /// status the server sent, or `Unavailable` when the connection failed.
    pub(crate) async fn call<Req: Unary>(&self, request: &Req) -> Result<Req::Response, Status> {
        let live = self.open().await?;
        let id = live.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        match lock(&live.pending).as_mut() {
            Some(calls) => calls.insert(id, tx),
            None => return Err(lost(&self.addr)),
        };
        let _forget = Forget {
            pending: &live.pending,
            id,
        };
        let call = UnaryCall {
            id,
            method: Req::METHOD as i32,
            body: request.encode_to_vec().into(),
        };
        let mut out = BytesMut::new();
        encode_frame(&call, &mut out);
        {
            let mut writer = live.writer.lock().await;
            // A write given up half-way (the caller timed out) leaves a torn
            // frame: nothing more may follow it on this connection.
            let mut torn = CloseUnlessDone {
                live: &live,
                done: false,
            };
            let written = writer.write_all(&out).await;
            torn.done = true;
            if let Err(err) = written {
                live.close();
                return Err(Status::unavailable(format!("{}: {err}", self.addr)));
            }
        }
        let reply = rx.await.map_err(|_| lost(&self.addr))?;
        if reply.code == Code::Ok as i32 {
            Req::Response::decode(reply.body)
                .map_err(|e| Status::internal(format!("undecodable {} response: {e}", Req::NAME)))
        } else {
            Err(Status::with_details(
                Code::from(reply.code),
                reply.message,
                reply.details,
            ))
        }
    }

    /// The open connection, opening a new one if there is none or it failed;
    /// the failure of an attempt that ended while this caller waited for
    /// its turn is this caller's failure too.
    async fn open(&self) -> Result<Arc<Live>, Status> {
        let asked = Instant::now();
        let mut slot = self.slot.lock().await;
        if let Some(open) = slot.live.as_ref().filter(|l| l.is_open()) {
            return Ok(Arc::clone(open));
        }
        if let Some((ended, err)) = &slot.failed
            && *ended >= asked
        {
            return Err(err.clone());
        }
        match self.connect().await {
            Ok(opened) => {
                *slot = Slot {
                    live: Some(Arc::clone(&opened)),
                    failed: None,
                };
                Ok(opened)
            }
            Err(err) => {
                slot.failed = Some((Instant::now(), err.clone()));
                Err(err)
            }
        }
    }

    /// Opens a connection: TCP within the connect timeout, then the magic.
    async fn connect(&self) -> Result<Arc<Live>, Status> {
        let unavailable = |err: String| Status::unavailable(format!("{}: {err}", self.addr));
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| unavailable(format!("no connection within {:?}", self.connect_timeout)))?
            .map_err(|e| unavailable(e.to_string()))?;
        stream
            .set_nodelay(true)
            .map_err(|e| unavailable(e.to_string()))?;
        let (reader, mut writer) = stream.into_split();
        writer
            .write_all(UNARY_MAGIC)
            .await
            .map_err(|e| unavailable(e.to_string()))?;
        let pending = Arc::new(Mutex::new(Some(HashMap::new())));
        Ok(Arc::new(Live {
            writer: tokio::sync::Mutex::new(writer),
            pending: Arc::clone(&pending),
            next_id: AtomicU64::new(1),
            reader: tokio::spawn(read_replies(reader, pending)),
        }))
    }
}

fn lost(addr: &str) -> Status {
    Status::unavailable(format!("{addr}: connection lost"))
}

/// Hands each reply to its waiting call until the connection ends, then
/// fails the calls still waiting.
async fn read_replies(reader: OwnedReadHalf, pending: Arc<Mutex<Pending>>) {
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    while let Ok(Some(reply)) =
        frame::read_frame::<UnaryReply>(&mut reader, UNARY_MAX_FRAME_BYTES).await
    {
        let waiting = lock(&pending)
            .as_mut()
            .and_then(|calls| calls.remove(&reply.id));
        if let Some(waiting) = waiting {
            let _ = waiting.send(reply);
        }
    }
    close(&pending);
}
