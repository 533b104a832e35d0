//! The watch stream: a client creates and cancels watches on it and receives
//! their events and progress notifications. One task per stream reads the
//! client's requests and ticks progress; responses come from this member's
//! [`crate::watch::WatchHub`], fed by its apply path. The stream is served
//! over gRPC (`Watch`) and over coord's framing on a plain TCP connection
//! ([`serve_framed_watch`], docs/api.md): the same messages, without
//! HTTP/2's per-message work, and every response ready at once in one write.

use std::pin::Pin;
use std::sync::Arc;

use bytes::BytesMut;
use coord_proto::frame::{self, FrameError};
use coord_proto::v1::{WatchRequest, WatchResponse, watch_request};
use coord_proto::{WATCH_MAGIC, WATCH_MAX_FRAME_BYTES};
use futures_util::FutureExt;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedWriteHalf;
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::client::CoordService;
use crate::driver::Shared;
use crate::watch::StreamId;
use crate::watch::coalesce::Coalesced;

/// The watch response stream.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// Responses encoded before they are written, at most (more wait for the
/// next write).
const WRITE_BATCH_BYTES: usize = 64 << 10;
/// Bytes read from a framed watch connection at a time (requests are small).
const READ_BUFFER_BYTES: usize = 8 << 10;

/// Handles a stream's requests until the client goes away or the requests
/// end; the caller then drops the stream's watches.
async fn serve_requests(
    shared: &Shared,
    stream: StreamId,
    requests: impl Stream<Item = WatchRequest>,
    progress: std::time::Duration,
) {
    tokio::pin!(requests);
    let mut ticker = tokio::time::interval(progress);
    ticker.tick().await;
    loop {
        tokio::select! {
            message = requests.next() => match message {
                Some(WatchRequest { request: Some(request) }) => match request {
                    watch_request::Request::Create(create) => shared.watches.create(stream, &create),
                    watch_request::Request::Cancel(cancel) => shared.watches.cancel(stream, cancel.watch_id),
                    watch_request::Request::Progress(_) => shared.watches.progress(stream),
                },
                Some(WatchRequest { request: None }) => {}
                None => break,
            },
            _ = ticker.tick() => shared.watches.progress(stream),
        }
    }
    debug!(stream, "watch stream closed");
}

/// A stream's response as it leaves: stamped with the member's header.
fn stamped(shared: &Shared, mut response: WatchResponse) -> WatchResponse {
    response.header = Some(shared.header(shared.applied()));
    response
}

/// Writes the stream's responses to `writer` until the stream ends, every
/// response ready at once in one write.
async fn write_responses(
    shared: &Shared,
    responses: &mut Coalesced,
    writer: &mut OwnedWriteHalf,
) -> Result<(), FrameError> {
    let mut out = BytesMut::new();
    while let Some(response) = responses.next().await {
        frame::encode_frame(&stamped(shared, response), &mut out);
        while out.len() < WRITE_BATCH_BYTES {
            match responses.next().now_or_never() {
                Some(Some(response)) => frame::encode_frame(&stamped(shared, response), &mut out),
                _ => break,
            }
        }
        writer.write_all(&out).await?;
        out.clear();
    }
    Ok(())
}

/// Serves a watch stream over coord's framing on a connection whose magic
/// ([`WATCH_MAGIC`]) was read: answers with the magic (so a client knows the
/// member serves it, as a gRPC client knows from the response headers), then
/// reads `WatchRequest` frames and writes `WatchResponse` frames until
/// either side ends, and drops the stream's watches.
pub async fn serve_framed_watch(
    stream: TcpStream,
    shared: Arc<Shared>,
    progress: std::time::Duration,
) -> Result<(), FrameError> {
    let (reader, mut writer) = stream.into_split();
    writer.write_all(WATCH_MAGIC).await?;
    let reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let requests = futures_util::stream::unfold(reader, |mut reader| async move {
        match frame::read_frame::<WatchRequest>(&mut reader, WATCH_MAX_FRAME_BYTES).await {
            Ok(Some(request)) => Some((request, reader)),
            Ok(None) => None,
            Err(err) => {
                debug!(%err, "framed watch stream: unreadable request");
                None
            }
        }
    });
    let (id, responses) = shared.watches.open_stream();
    let mut responses = Coalesced::new(responses);
    let written = tokio::select! {
        () = serve_requests(&shared, id, requests, progress) => Ok(()),
        written = write_responses(&shared, &mut responses, &mut writer) => written,
    };
    shared.watches.close_stream(id);
    written
}

impl CoordService {
    /// Opens a watch stream on this member.
    pub(super) async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let shared = Arc::clone(self.driver.shared());
        let (stream, responses) = shared.watches.open_stream();
        let requests: Streaming<WatchRequest> = request.into_inner();
        let progress = self.limits.watch_progress;
        let serving = Arc::clone(&shared);
        tokio::spawn(async move {
            let requests = requests.map_while(Result::ok);
            serve_requests(&serving, stream, requests, progress).await;
            serving.watches.close_stream(stream);
        });
        let responses = Coalesced::new(responses).map(move |r| Ok(stamped(&shared, r)));
        Ok(Response::new(Box::pin(responses)))
    }
}
