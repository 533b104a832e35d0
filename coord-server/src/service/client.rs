//! The `coord.v1.Coord` gRPC service: validates requests, proposes writes through
//! the driver, serves reads from the state machine (after a ReadIndex round unless
//! the request is serializable) and maps every failure through
//! [`ServiceError::into_status`].

use std::sync::Arc;

use coord_proto::raftlog::{Command, command_result::Outcome};
use coord_proto::v1::{
    ChildrenRequest, ChildrenResponse, CreateOp, CreateRequest, CreateResponse, DeleteOp,
    DeleteRequest, DeleteResponse, ExistsRequest, ExistsResponse, GetRequest, GetResponse,
    MultiRequest, MultiResponse, Op, OpResult, SetOp, SetRequest, SetResponse, StatusRequest,
    StatusResponse, SyncRequest, SyncResponse, WriteMeta, op, op_result,
};
use tonic::{Request, Response, Status};
use tracing::instrument;

use super::errors::ServiceError;
use super::status::build_status;
use crate::core::tree::is_sequential;
use crate::core::{StateMachine, Znode, ZnodeError, path};
use crate::driver::{DriverHandle, Shared};
use crate::lessor::Lessor;

/// Limits enforced before a request is proposed, and intervals of the
/// streaming RPCs.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest znode data.
    pub max_data_bytes: usize,
    /// Most ops in one multi.
    pub max_multi_ops: usize,
    /// Shortest lease TTL granted.
    pub min_lease_ttl_ms: i64,
    /// Longest lease TTL granted.
    pub max_lease_ttl_ms: i64,
    /// How often watches get progress notifications.
    pub watch_progress: std::time::Duration,
}

/// Implements `coord.v1.Coord`.
#[derive(Debug, Clone)]
pub struct CoordService {
    pub(super) driver: DriverHandle,
    pub(super) lessor: Arc<Lessor>,
    pub(super) limits: Limits,
    peers: Arc<Vec<(u64, String)>>,
    unsafe_stale_reads: bool,
}

/// What every unary handler returns.
pub(super) type Reply<T> = Result<Response<T>, Status>;

impl CoordService {
    /// A service over `driver` and `lessor`; `peers` lists every member's peer
    /// address for `Status`.
    pub fn new(
        driver: DriverHandle,
        lessor: Arc<Lessor>,
        limits: Limits,
        peers: Vec<(u64, String)>,
    ) -> Self {
        Self {
            driver,
            lessor,
            limits,
            peers: Arc::new(peers),
            unsafe_stale_reads: false,
        }
    }

    /// Testing only: skip ReadIndex for linearizable reads (see
    /// `ServerConfig::unsafe_stale_reads`).
    pub fn with_unsafe_stale_reads(mut self, on: bool) -> Self {
        self.unsafe_stale_reads = on;
        self
    }

    pub(super) fn shared(&self) -> &Shared {
        self.driver.shared()
    }

    pub(super) fn fail(&self, err: ServiceError) -> Status {
        err.into_status(self.shared().leader())
    }

    fn check_op(&self, op: &Op) -> Result<(), ServiceError> {
        let (path, sequential, data) = match &op.op {
            Some(op::Op::Create(c)) => (&c.path, is_sequential(c.mode()), Some(&c.data)),
            Some(op::Op::Set(s)) => (&s.path, false, Some(&s.data)),
            Some(op::Op::Delete(d)) => (&d.path, false, None),
            Some(op::Op::Check(c)) => (&c.path, false, None),
            None => {
                return Err(ZnodeError::BadArguments {
                    reason: "an op names no operation".into(),
                }
                .into());
            }
        };
        path::validate(path, sequential)?;
        if let Some(data) = data.filter(|d| d.len() > self.limits.max_data_bytes) {
            return Err(ServiceError::TooLarge {
                what: "znode data",
                size: data.len(),
                limit: self.limits.max_data_bytes,
            });
        }
        Ok(())
    }

    /// Validates, proposes and waits for the results of the ops, all or none.
    async fn write(
        &self,
        meta: Option<WriteMeta>,
        ops: Vec<Op>,
    ) -> Result<(u64, Vec<OpResult>), ServiceError> {
        if ops.len() > self.limits.max_multi_ops {
            return Err(ZnodeError::BadArguments {
                reason: format!(
                    "{} ops in one multi, over the limit of {}",
                    ops.len(),
                    self.limits.max_multi_ops
                ),
            }
            .into());
        }
        for op in &ops {
            self.check_op(op)?;
        }
        let time_ms = crate::clock::now_ms();
        let command = Command {
            meta,
            time_ms,
            ops,
            lease: None,
        };
        let applied = self.driver.propose(command).await?;
        match applied.result.outcome {
            Some(Outcome::Ok(ok)) => Ok((applied.index, ok.results)),
            Some(Outcome::Error(err)) => Err(ServiceError::Command(err)),
            Some(Outcome::Lease(_)) | None => Err(ZnodeError::BadArguments {
                reason: "a znode write returned no op results".into(),
            }
            .into()),
        }
    }

    /// One op as a write; returns the zxid and its single result.
    async fn write_one(
        &self,
        meta: Option<WriteMeta>,
        op: op::Op,
    ) -> Result<(u64, op_result::Result), Status> {
        let (index, results) = self
            .write(meta, vec![Op { op: Some(op) }])
            .await
            .map_err(|e| self.fail(e))?;
        let result = results.into_iter().next().and_then(|r| r.result);
        result
            .map(|r| (index, r))
            .ok_or_else(|| Status::internal("a write returned no result"))
    }

    /// Runs `read` on the state machine, after a ReadIndex round unless serializable.
    pub(super) async fn read<T>(
        &self,
        serializable: bool,
        read: impl FnOnce(&StateMachine) -> Result<T, ServiceError>,
    ) -> Result<T, Status> {
        if !serializable && !self.unsafe_stale_reads {
            self.driver
                .linearize()
                .await
                .map_err(|e| self.fail(e.into()))?;
        }
        let state = self.shared().read();
        read(&state).map_err(|e| self.fail(e))
    }
}

fn node<'a>(state: &'a StateMachine, p: &str) -> Result<&'a Znode, ServiceError> {
    path::validate(p, false)?;
    state
        .tree()
        .get(p)
        .ok_or_else(|| ZnodeError::NoNode { path: p.to_owned() }.into())
}

/// The znode RPCs; `coord.rs` routes the gRPC trait to them.
impl CoordService {
    #[instrument(level = "debug", skip_all, fields(path = %request.get_ref().path))]
    pub(super) async fn create(&self, request: Request<CreateRequest>) -> Reply<CreateResponse> {
        let r = request.into_inner();
        let op = op::Op::Create(CreateOp {
            path: r.path,
            data: r.data,
            mode: r.mode,
            lease: r.lease,
            ttl_ms: r.ttl_ms,
        });
        let (zxid, result) = self.write_one(r.meta, op).await?;
        let op_result::Result::Create(created) = result else {
            return Err(Status::internal("create returned another op's result"));
        };
        Ok(Response::new(CreateResponse {
            header: Some(self.shared().header(zxid)),
            path: created.path,
            stat: created.stat,
        }))
    }

    #[instrument(level = "debug", skip_all, fields(path = %request.get_ref().path))]
    pub(super) async fn get(&self, request: Request<GetRequest>) -> Reply<GetResponse> {
        let r = request.into_inner();
        let shared = self.shared();
        let response = self
            .read(r.serializable, |state| {
                let n = node(state, &r.path)?;
                Ok(GetResponse {
                    header: Some(shared.header(state.applied())),
                    data: bytes::Bytes::copy_from_slice(&n.data),
                    stat: Some(n.full_stat()),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(level = "debug", skip_all, fields(path = %request.get_ref().path))]
    pub(super) async fn set(&self, request: Request<SetRequest>) -> Reply<SetResponse> {
        let r = request.into_inner();
        let op = op::Op::Set(SetOp {
            path: r.path,
            data: r.data,
            version: r.version,
        });
        let (zxid, result) = self.write_one(r.meta, op).await?;
        let op_result::Result::Set(set) = result else {
            return Err(Status::internal("set returned another op's result"));
        };
        Ok(Response::new(SetResponse {
            header: Some(self.shared().header(zxid)),
            stat: set.stat,
        }))
    }

    #[instrument(level = "debug", skip_all, fields(path = %request.get_ref().path))]
    pub(super) async fn delete(&self, request: Request<DeleteRequest>) -> Reply<DeleteResponse> {
        let r = request.into_inner();
        let op = op::Op::Delete(DeleteOp {
            path: r.path,
            version: r.version,
        });
        let (zxid, _) = self.write_one(r.meta, op).await?;
        Ok(Response::new(DeleteResponse {
            header: Some(self.shared().header(zxid)),
        }))
    }

    #[instrument(level = "debug", skip_all, fields(path = %request.get_ref().path))]
    pub(super) async fn exists(&self, request: Request<ExistsRequest>) -> Reply<ExistsResponse> {
        let r = request.into_inner();
        let shared = self.shared();
        let response = self
            .read(r.serializable, |state| {
                path::validate(&r.path, false)?;
                Ok(ExistsResponse {
                    header: Some(shared.header(state.applied())),
                    stat: state.tree().get(&r.path).map(Znode::full_stat),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(level = "debug", skip_all, fields(path = %request.get_ref().path))]
    pub(super) async fn children(
        &self,
        request: Request<ChildrenRequest>,
    ) -> Reply<ChildrenResponse> {
        let r = request.into_inner();
        let shared = self.shared();
        let response = self
            .read(r.serializable, |state| {
                let n = node(state, &r.path)?;
                Ok(ChildrenResponse {
                    header: Some(shared.header(state.applied())),
                    children: state
                        .tree()
                        .children(&r.path)
                        .into_iter()
                        .map(str::to_owned)
                        .collect(),
                    stat: Some(n.full_stat()),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(level = "debug", skip_all, fields(ops = request.get_ref().ops.len()))]
    pub(super) async fn multi(&self, request: Request<MultiRequest>) -> Reply<MultiResponse> {
        let r = request.into_inner();
        let (zxid, results) = self.write(r.meta, r.ops).await.map_err(|e| self.fail(e))?;
        Ok(Response::new(MultiResponse {
            header: Some(self.shared().header(zxid)),
            results,
        }))
    }

    #[instrument(level = "debug", skip_all)]
    pub(super) async fn sync(&self, _request: Request<SyncRequest>) -> Reply<SyncResponse> {
        let shared = self.shared();
        let response = self
            .read(false, |state| {
                Ok(SyncResponse {
                    header: Some(shared.header(state.applied())),
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(level = "debug", skip_all)]
    pub(super) async fn status(&self, _request: Request<StatusRequest>) -> Reply<StatusResponse> {
        let raft = self
            .driver
            .status()
            .await
            .map_err(|e| self.fail(e.into()))?;
        let state = self.shared().read();
        Ok(Response::new(build_status(
            self.shared(),
            &state,
            raft,
            &self.peers,
        )))
    }
}
