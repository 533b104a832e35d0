//! Opening the two bidirectional streams of the API (lease keep-alive and
//! watch) on one member: requests go through an unbounded channel, answers
//! arrive on tonic's [`Streaming`].
//!
//! Opening is bounded by a timeout because a member that is alive at the TCP
//! level but stopped (SIGSTOP, a hung process) never answers the HTTP/2 headers.

use std::time::Duration;

use coord_proto::v1::coord_client::CoordClient;
use tokio::sync::mpsc;
use tokio_stream::wrappers::UnboundedReceiverStream;
use tonic::Streaming;
use tonic::transport::Channel;

use crate::endpoint::Member;
use crate::{Error, ErrorInfo};

/// One open bidirectional stream: where to send requests and where answers come.
#[derive(Debug)]
pub(crate) struct Bidi<Req, Resp> {
    /// The member's endpoint, for errors and logs.
    pub(crate) endpoint: String,
    pub(crate) requests: mpsc::UnboundedSender<Req>,
    pub(crate) responses: Streaming<Resp>,
}

/// Opens a stream on `member` with `call` (e.g. `|mut c, r| async move {
/// c.watch(r).await }`), giving up after `timeout`.
pub(crate) async fn open<Req, Resp, F, Fut>(
    member: &Member,
    timeout: Duration,
    call: F,
) -> Result<Bidi<Req, Resp>, Error>
where
    F: FnOnce(CoordClient<Channel>, UnboundedReceiverStream<Req>) -> Fut,
    Fut: Future<Output = Result<tonic::Response<Streaming<Resp>>, tonic::Status>>,
{
    let (requests, rx) = mpsc::unbounded_channel();
    let client = CoordClient::new(member.channel.clone());
    match tokio::time::timeout(timeout, call(client, UnboundedReceiverStream::new(rx))).await {
        Ok(Ok(response)) => Ok(Bidi {
            endpoint: member.name.clone(),
            requests,
            responses: response.into_inner(),
        }),
        Ok(Err(status)) => Err(Error::from_status(&status, &member.name)),
        Err(_) => Err(Error::Timeout(ErrorInfo::from_message(format!(
            "{}: stream not opened within {timeout:?}",
            member.name
        )))),
    }
}

/// The error for a stream that ended without a status (the member closed it).
pub(crate) fn ended(endpoint: &str) -> Error {
    Error::Transport {
        endpoint: endpoint.to_owned(),
        message: "stream closed by the member".to_owned(),
    }
}
