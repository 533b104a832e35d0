//! The gRPC peer service: streamed snapshots from other members, written into
//! the store as they arrive and then handed to the driver, and lease questions
//! forwarded to this member while it leads. Raft messages come over
//! connections of their own (`transport`).

use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use coord_proto::peer::peer_server::Peer;
use coord_proto::peer::{LeaseQuery, LeaseQueryResponse, PeerAck, SnapshotChunk};
use raft::eraftpb::Message;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status, Streaming};
use tracing::{debug, warn};

use crate::core::StateMachine;
use crate::driver::{DriverHandle, Input};
use crate::lessor::Lessor;
use crate::storage::{SnapshotStager, StoreError};

/// Pieces of a snapshot's data in flight to the thread writing its file.
const PIECES_IN_FLIGHT: usize = 8;

/// Implements the `coord.peer.Peer` gRPC service.
#[derive(Debug, Clone)]
pub struct PeerService {
    driver: DriverHandle,
    lessor: Arc<Lessor>,
    snapshots: Snapshots,
}

/// Where received snapshots go, and how their state is restored.
#[derive(Debug, Clone)]
pub struct Snapshots {
    /// The store's snapshot files.
    pub stager: SnapshotStager,
    /// The state machine's bound on remembered clients.
    pub max_dedup_clients: usize,
    /// One restore at a time: each holds a whole tree beside the member's own.
    pub restoring: Arc<Mutex<()>>,
}

impl PeerService {
    /// A service feeding `driver`, answering lease questions from `lessor`,
    /// receiving snapshots as `snapshots` says.
    pub fn new(driver: DriverHandle, lessor: Arc<Lessor>, snapshots: Snapshots) -> Self {
        Self {
            driver,
            lessor,
            snapshots,
        }
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
        let msg = decode(&first.message)?;
        let index = msg.get_snapshot().get_metadata().index;
        let expected = (first.data_bytes > 0).then_some(first.data_bytes);
        let stager = self.snapshots.stager.clone();
        let bytes = receive(stager, index, expected, &mut stream).await?;
        debug!(from = msg.from, index, bytes, "snapshot received");
        // Restored here, not on the Raft thread; one that does not restore is
        // refused (the leader tries again later) instead of stopping the driver.
        let snapshots = self.snapshots.clone();
        let state = tokio::task::spawn_blocking(move || restore(&snapshots, index))
            .await
            .map_err(|e| Status::internal(format!("snapshot restore: {e}")))??;
        self.driver
            .send(Input::Restored {
                msg: Box::new(msg),
                state: Box::new(state),
            })
            .map_err(|_| Status::unavailable("the server is stopping"))?;
        Ok(Response::new(PeerAck {}))
    }
}

/// The state held by the received snapshot at `index`.
fn restore(snapshots: &Snapshots, index: u64) -> Result<StateMachine, Status> {
    let _one = snapshots
        .restoring
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    let mut reader = snapshots
        .stager
        .received(index)
        .map_err(|e| Status::internal(e.to_string()))?;
    StateMachine::restore_from(&mut reader, snapshots.max_dedup_clients).map_err(|err| {
        warn!(index, %err, "a received snapshot does not restore");
        Status::invalid_argument(format!("snapshot {index} does not restore: {err}"))
    })
}

/// Writes the snapshot's data into the store's file as it arrives, on a
/// blocking thread, and makes it durable once the stream ends; returns its
/// size. A stream that fails, or ends short of the `expected` size the
/// sender announced, leaves no file to install.
async fn receive(
    stager: SnapshotStager,
    index: u64,
    expected: Option<u64>,
    stream: &mut Streaming<SnapshotChunk>,
) -> Result<u64, Status> {
    // `None` marks the end: a channel closed without it is an abandoned stream.
    let (pieces, mut arriving) = mpsc::channel::<Option<Bytes>>(PIECES_IN_FLIGHT);
    let writer = tokio::task::spawn_blocking(move || -> Result<Option<u64>, StoreError> {
        let mut received = stager.receive(index)?;
        while let Some(piece) = arriving.blocking_recv() {
            match piece {
                Some(data) => received.write(&data)?,
                None => return received.finish(expected).map(Some),
            }
        }
        Ok(None)
    });
    let streamed = async {
        while let Some(chunk) = stream.message().await? {
            if pieces.send(Some(chunk.data)).await.is_err() {
                break; // the writer failed: its error is reported below
            }
        }
        let _ = pieces.send(None).await;
        Ok::<(), Status>(())
    }
    .await;
    drop(pieces);
    let written = writer
        .await
        .map_err(|e| Status::internal(format!("snapshot writer: {e}")))?;
    streamed?;
    match written {
        Ok(Some(bytes)) => Ok(bytes),
        Ok(None) => Err(Status::internal("snapshot writer stopped early")),
        Err(err) => {
            warn!(index, %err, "a received snapshot could not be stored");
            Err(Status::unavailable(format!("snapshot not stored: {err}")))
        }
    }
}
