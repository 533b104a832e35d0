//! The watch stream: a client creates and cancels watches on it and receives
//! their events and progress notifications. One task per stream reads the
//! client's requests and ticks progress; responses come from this member's
//! [`crate::watch::WatchHub`], fed by its apply path.

use std::pin::Pin;
use std::sync::Arc;

use coord_proto::v1::{WatchRequest, WatchResponse, watch_request};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use super::client::CoordService;
use crate::driver::Shared;
use crate::watch::StreamId;
use crate::watch::coalesce::Coalesced;

/// The watch response stream.
pub type WatchStream = Pin<Box<dyn Stream<Item = Result<WatchResponse, Status>> + Send>>;

/// Handles a stream's requests until the client goes away, then drops its watches.
async fn serve_requests(
    shared: Arc<Shared>,
    stream: StreamId,
    mut requests: Streaming<WatchRequest>,
    progress: std::time::Duration,
) {
    let mut ticker = tokio::time::interval(progress);
    ticker.tick().await;
    loop {
        tokio::select! {
            message = requests.message() => match message {
                Ok(Some(WatchRequest { request: Some(request) })) => match request {
                    watch_request::Request::Create(create) => shared.watches.create(stream, &create),
                    watch_request::Request::Cancel(cancel) => shared.watches.cancel(stream, cancel.watch_id),
                    watch_request::Request::Progress(_) => shared.watches.progress(stream),
                },
                Ok(Some(WatchRequest { request: None })) => {}
                Ok(None) | Err(_) => break,
            },
            _ = ticker.tick() => shared.watches.progress(stream),
        }
    }
    debug!(stream, "watch stream closed");
    shared.watches.close_stream(stream);
}

impl CoordService {
    /// Opens a watch stream on this member.
    pub(super) async fn watch(
        &self,
        request: Request<Streaming<WatchRequest>>,
    ) -> Result<Response<WatchStream>, Status> {
        let shared = Arc::clone(self.driver.shared());
        let (stream, responses) = shared.watches.open_stream();
        tokio::spawn(serve_requests(
            Arc::clone(&shared),
            stream,
            request.into_inner(),
            self.limits.watch_progress,
        ));
        let responses = Coalesced::new(responses).map(move |mut r| {
            r.header = Some(shared.header(shared.applied()));
            Ok(r)
        });
        Ok(Response::new(Box::pin(responses)))
    }
}
