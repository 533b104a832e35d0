//! Opening the watch stream on one member: over coord's framing on a plain
//! TCP connection (docs/api.md), or over gRPC when the member predates it.
//! Either way the mux gets a sender of requests and a stream of responses.
//!
//! Opening is bounded by a timeout: a member that is alive at the TCP level
//! but stopped (SIGSTOP, a hung process) accepts the connection and never
//! answers the magic.

use std::pin::Pin;
use std::time::Duration;

use bytes::BytesMut;
use coord_proto::frame::{self, FrameError};
use coord_proto::v1::{WatchRequest, WatchResponse};
use coord_proto::{WATCH_MAGIC, WATCH_MAX_FRAME_BYTES};
use futures_util::{Stream, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::mpsc;

use crate::bidi;
use crate::endpoint::Member;
use crate::{Error, ErrorInfo};

/// Bytes read from the connection at a time.
const READ_BUFFER_BYTES: usize = 64 << 10;

/// The responses of an open watch stream; a failure ends it.
pub(crate) type Responses = Pin<Box<dyn Stream<Item = Result<WatchResponse, Error>> + Send>>;

/// An open watch stream.
pub(crate) struct Opened {
    /// The member's endpoint, for errors and logs.
    pub(crate) endpoint: String,
    pub(crate) requests: mpsc::UnboundedSender<WatchRequest>,
    pub(crate) responses: Responses,
}

/// How opening a framed stream failed.
enum Failed {
    /// The member closed (or reset) the connection instead of answering the
    /// magic: it does not know framed watch streams. (A member that crashed
    /// just then fails the gRPC attempt that follows too.)
    Unknown,
    /// Anything else: the member is unreachable or did not answer in time.
    Error(Error),
}

/// Opens a watch stream on `member`, giving up after `timeout`.
pub(crate) async fn open(member: &Member, timeout: Duration) -> Result<Opened, Error> {
    match tokio::time::timeout(timeout, open_framed(member)).await {
        Ok(Ok(opened)) => Ok(opened),
        Ok(Err(Failed::Unknown)) => open_grpc(member, timeout).await,
        Ok(Err(Failed::Error(err))) => Err(err),
        Err(_) => Err(Error::Timeout(ErrorInfo::from_message(format!(
            "{}: watch stream not opened within {timeout:?}",
            member.name
        )))),
    }
}

/// Connects, sends the magic and waits for the member to answer with it.
async fn open_framed(member: &Member) -> Result<Opened, Failed> {
    let endpoint = member.name.clone();
    let transport = |err: &dyn std::fmt::Display| {
        Failed::Error(Error::Transport {
            endpoint: endpoint.clone(),
            message: err.to_string(),
        })
    };
    let stream = TcpStream::connect(member.unary.addr())
        .await
        .map_err(|e| transport(&e))?;
    stream.set_nodelay(true).map_err(|e| transport(&e))?;
    let (reader, mut writer) = stream.into_split();
    writer
        .write_all(WATCH_MAGIC)
        .await
        .map_err(|e| transport(&e))?;
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let mut answer = [0u8; 8];
    match reader.read_exact(&mut answer).await {
        Ok(_) if &answer == WATCH_MAGIC => {}
        Ok(_) => return Err(transport(&FrameError::BadMagic)),
        Err(err)
            if matches!(
                err.kind(),
                std::io::ErrorKind::UnexpectedEof | std::io::ErrorKind::ConnectionReset
            ) =>
        {
            return Err(Failed::Unknown);
        }
        Err(err) => return Err(transport(&err)),
    }
    let (requests, queued) = mpsc::unbounded_channel();
    tokio::spawn(write_requests(queued, writer));
    // The state carries the endpoint, for the error that ends the stream.
    let state = Some((reader, member.name.clone()));
    let responses = futures_util::stream::unfold(state, |state| async move {
        let (mut reader, endpoint) = state?;
        match frame::read_frame::<WatchResponse>(&mut reader, WATCH_MAX_FRAME_BYTES).await {
            Ok(Some(response)) => Some((Ok(response), Some((reader, endpoint)))),
            Ok(None) => Some((Err(bidi::ended(&endpoint)), None)),
            Err(err) => Some((
                Err(Error::Transport {
                    endpoint,
                    message: err.to_string(),
                }),
                None,
            )),
        }
    });
    Ok(Opened {
        endpoint: member.name.clone(),
        requests,
        responses: Box::pin(responses),
    })
}

/// Writes the mux's requests until it drops its sender (the stream is
/// abandoned) or the connection fails; the read side reports the failure.
async fn write_requests(
    mut queued: mpsc::UnboundedReceiver<WatchRequest>,
    mut writer: OwnedWriteHalf,
) {
    let mut out = BytesMut::new();
    while let Some(request) = queued.recv().await {
        frame::encode_frame(&request, &mut out);
        while let Ok(request) = queued.try_recv() {
            frame::encode_frame(&request, &mut out);
        }
        if writer.write_all(&out).await.is_err() {
            return;
        }
        out.clear();
    }
}

/// Opens the stream over gRPC (`Watch`).
async fn open_grpc(member: &Member, timeout: Duration) -> Result<Opened, Error> {
    let opened = bidi::open(member, timeout, |mut c, r| async move { c.watch(r).await }).await?;
    let endpoint = opened.endpoint.clone();
    let responses = opened
        .responses
        .map(move |message| message.map_err(|status| Error::from_status(&status, &endpoint)));
    Ok(Opened {
        endpoint: opened.endpoint,
        requests: opened.requests,
        responses: Box::pin(responses),
    })
}
