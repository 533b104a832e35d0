//! The gRPC peer service: streamed snapshots from other members, handed to the
//! driver, and lease questions forwarded to this member while it leads. Raft
//! messages come over connections of their own (`transport`).

use bytes::BytesMut;
use coord_proto::peer::peer_server::Peer;
use std::sync::Arc;

use coord_proto::peer::{LeaseQuery, LeaseQueryResponse, PeerAck, SnapshotChunk};
use raft::eraftpb::Message;
use tonic::{Request, Response, Status, Streaming};
use tracing::debug;

use crate::driver::{DriverHandle, Input};
use crate::lessor::Lessor;

/// Implements the `coord.peer.Peer` gRPC service.
#[derive(Debug, Clone)]
pub struct PeerService {
    driver: DriverHandle,
    lessor: Arc<Lessor>,
}

impl PeerService {
    /// A service feeding `driver`, answering lease questions from `lessor`.
    pub fn new(driver: DriverHandle, lessor: Arc<Lessor>) -> Self {
        Self { driver, lessor }
    }

    fn step(&self, msg: Message) -> Result<(), Status> {
        self.driver
            .send(Input::Peer(Box::new(msg)))
            .map_err(|_| Status::unavailable("the server is stopping"))
    }
}

fn decode(bytes: &bytes::Bytes) -> Result<Message, Status> {
    crate::transport::decode_message(bytes)
        .map_err(|e| Status::invalid_argument(format!("undecodable raft message: {e}")))
}

#[tonic::async_trait]
impl Peer for PeerService {
    async fn leases(
        &self,
        request: Request<LeaseQuery>,
    ) -> Result<Response<LeaseQueryResponse>, Status> {
        let query = request.into_inner();
        let response = match self.lessor.local_query(&query.ids, query.refresh).await {
            Some(leases) => LeaseQueryResponse {
                leases,
                not_leader: false,
            },
            None => LeaseQueryResponse {
                leases: Vec::new(),
                not_leader: true,
            },
        };
        Ok(Response::new(response))
    }

    async fn install_snapshot(
        &self,
        request: Request<Streaming<SnapshotChunk>>,
    ) -> Result<Response<PeerAck>, Status> {
        let mut stream = request.into_inner();
        let first = stream
            .message()
            .await?
            .ok_or_else(|| Status::invalid_argument("empty snapshot stream"))?;
        let mut msg = decode(&first.message)?;
        let mut data = BytesMut::new();
        while let Some(chunk) = stream.message().await? {
            data.extend_from_slice(&chunk.data);
        }
        debug!(from = msg.from, bytes = data.len(), "snapshot received");
        msg.mut_snapshot().data = data.freeze();
        self.step(msg)?;
        Ok(Response::new(PeerAck {}))
    }
}
