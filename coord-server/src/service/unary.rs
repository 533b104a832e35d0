//! The unary-call protocol, server side: every unary RPC of `coord.v1.Coord`
//! over a plain TCP connection on the client port (docs/api.md). One task per
//! connection reads calls, runs them on the same handlers as the gRPC service
//! and writes each reply as soon as it is ready: calls on one connection
//! overlap and finish in any order. gRPC costs a member three task hand-offs
//! and HTTP/2 framing per call; here a call costs one wake-up of the
//! connection's task when its answer is ready (docs/benchmarks.md).

use std::future::Future;

use bytes::{Bytes, BytesMut};
use coord_proto::frame::{self, FrameError};
use coord_proto::v1::{UnaryCall, UnaryMethod, UnaryReply};
use coord_proto::{UNARY_MAX_FRAME_BYTES, Unary};
use futures_util::FutureExt;
use futures_util::stream::{FuturesUnordered, StreamExt};
use prost::Message;
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::net::tcp::OwnedReadHalf;
use tonic::{Request, Response, Status};

use super::client::CoordService;
use super::errors::ServiceError;

/// Calls one connection may have in flight before the member stops reading
/// more from it.
const MAX_IN_FLIGHT: usize = 4096;
/// Bytes read from a connection at a time.
const READ_BUFFER_BYTES: usize = 64 << 10;

type Reader = BufReader<OwnedReadHalf>;

/// Reads the next call, handing the reader back: the read stays pending
/// across the connection task's other work without losing a half-read frame.
async fn next_call(mut reader: Reader) -> (Reader, Result<Option<UnaryCall>, FrameError>) {
    let call = frame::read_frame(&mut reader, UNARY_MAX_FRAME_BYTES).await;
    (reader, call)
}

/// Serves one unary-protocol connection, whose magic was read
/// ([`super::plain`]), until the client closes it. A request over
/// `max_request` bytes is answered `TOO_LARGE`, as over gRPC; a frame over
/// the protocol's own limit ends the connection.
pub async fn serve_unary(
    stream: TcpStream,
    service: CoordService,
    max_request: usize,
) -> Result<(), FrameError> {
    let (reader, mut writer) = stream.into_split();
    let reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    let mut in_flight = FuturesUnordered::new();
    let mut out = BytesMut::new();
    let reading = next_call(reader);
    tokio::pin!(reading);
    let mut open = true;
    loop {
        tokio::select! {
            (reader, call) = &mut reading, if open && in_flight.len() < MAX_IN_FLIGHT => {
                match call? {
                    Some(call) => {
                        in_flight.push(answer(&service, call, max_request));
                        reading.set(next_call(reader));
                    }
                    None => open = false,
                }
            }
            Some(reply) = in_flight.next() => {
                frame::encode_frame(&reply, &mut out);
                while let Some(Some(reply)) = in_flight.next().now_or_never() {
                    frame::encode_frame(&reply, &mut out);
                }
                writer.write_all(&out).await?;
                out.clear();
            }
            else => return Ok(()),
        }
    }
}

/// Runs one call on its handler and wraps the outcome in a reply.
async fn answer(service: &CoordService, call: UnaryCall, max_request: usize) -> UnaryReply {
    let body = call.body;
    let result = match UnaryMethod::try_from(call.method) {
        _ if body.len() > max_request => Err(service.fail(ServiceError::TooLarge {
            what: "request",
            size: body.len(),
            limit: max_request,
        })),
        Ok(UnaryMethod::Create) => run(body, |r| service.create(r)).await,
        Ok(UnaryMethod::Get) => run(body, |r| service.get(r)).await,
        Ok(UnaryMethod::Set) => run(body, |r| service.set(r)).await,
        Ok(UnaryMethod::Delete) => run(body, |r| service.delete(r)).await,
        Ok(UnaryMethod::Exists) => run(body, |r| service.exists(r)).await,
        Ok(UnaryMethod::Children) => run(body, |r| service.children(r)).await,
        Ok(UnaryMethod::Multi) => run(body, |r| service.multi(r)).await,
        Ok(UnaryMethod::Sync) => run(body, |r| service.sync(r)).await,
        Ok(UnaryMethod::Status) => run(body, |r| service.status(r)).await,
        Ok(UnaryMethod::LeaseGrant) => run(body, |r| service.lease_grant(r)).await,
        Ok(UnaryMethod::LeaseRevoke) => run(body, |r| service.lease_revoke(r)).await,
        Ok(UnaryMethod::LeaseTimeToLive) => run(body, |r| service.lease_time_to_live(r)).await,
        Ok(UnaryMethod::LeaseList) => run(body, |r| service.lease_list(r)).await,
        Ok(UnaryMethod::Unspecified) | Err(_) => Err(Status::unimplemented(format!(
            "unknown unary method {}",
            call.method
        ))),
    };
    match result {
        Ok(body) => UnaryReply {
            id: call.id,
            body,
            ..UnaryReply::default()
        },
        Err(status) => UnaryReply {
            id: call.id,
            code: status.code() as i32,
            message: status.message().to_owned(),
            details: Bytes::copy_from_slice(status.details()),
            body: Bytes::new(),
        },
    }
}

/// Decodes a request, runs `handler` on it and encodes its response.
async fn run<Req, Fut>(
    body: Bytes,
    handler: impl FnOnce(Request<Req>) -> Fut,
) -> Result<Bytes, Status>
where
    Req: Unary,
    Fut: Future<Output = Result<Response<Req::Response>, Status>>,
{
    let request = Req::decode(body)
        .map_err(|e| Status::invalid_argument(format!("undecodable {} request: {e}", Req::NAME)))?;
    let response = handler(Request::new(request)).await?;
    Ok(response.into_inner().encode_to_vec().into())
}
