//! The lease RPCs: grant and revoke go through Raft; keep-alives and
//! time-to-live questions go to the leader's lessor (forwarded by followers).

use std::pin::Pin;

use coord_proto::raftlog::{Command, LeaseGrant, LeaseRevoke, command, command_result::Outcome};
use coord_proto::v1::{
    ErrorCode, LeaseGrantRequest, LeaseGrantResponse, LeaseInfo, LeaseKeepAliveRequest,
    LeaseKeepAliveResponse, LeaseListRequest, LeaseListResponse, LeaseRevokeRequest,
    LeaseRevokeResponse, LeaseTimeToLiveRequest, LeaseTimeToLiveResponse, WriteMeta,
};
use tokio_stream::{Stream, StreamExt};
use tonic::{Request, Response, Status, Streaming};
use tracing::instrument;

use super::client::{CoordService, Reply};
use super::errors::ServiceError;
use crate::core::ZnodeError;
use crate::driver::DriverError;
use crate::lessor::now_ms;

/// The keep-alive response stream.
pub type KeepAliveStream =
    Pin<Box<dyn Stream<Item = Result<LeaseKeepAliveResponse, Status>> + Send>>;

impl CoordService {
    /// Proposes a lease command and returns its zxid and outcome.
    async fn lease_write(
        &self,
        meta: Option<WriteMeta>,
        lease: command::Lease,
    ) -> Result<(u64, Outcome), Status> {
        let command = Command {
            meta,
            time_ms: now_ms(),
            ops: Vec::new(),
            lease: Some(lease),
        };
        let applied = self
            .driver
            .propose(command)
            .await
            .map_err(|e| self.fail(e.into()))?;
        match applied.result.outcome {
            Some(Outcome::Error(err)) => Err(self.fail(ServiceError::Command(err))),
            Some(outcome) => Ok((applied.index, outcome)),
            None => Err(Status::internal("a lease command returned no result")),
        }
    }

    #[instrument(level = "debug", skip_all, fields(ttl_ms = request.get_ref().ttl_ms))]
    pub(super) async fn lease_grant(
        &self,
        request: Request<LeaseGrantRequest>,
    ) -> Reply<LeaseGrantResponse> {
        let r = request.into_inner();
        let (min, max) = (self.limits.min_lease_ttl_ms, self.limits.max_lease_ttl_ms);
        if !(min..=max).contains(&r.ttl_ms) {
            let reason = format!(
                "lease TTL {} ms is outside the allowed {min}..={max} ms",
                r.ttl_ms
            );
            return Err(self.fail(ZnodeError::BadArguments { reason }.into()));
        }
        let grant = command::Lease::LeaseGrant(LeaseGrant { ttl_ms: r.ttl_ms });
        match self.lease_write(r.meta, grant).await? {
            (zxid, Outcome::Lease(granted)) => Ok(Response::new(LeaseGrantResponse {
                header: Some(self.shared().header(zxid)),
                id: granted.id,
                ttl_ms: granted.ttl_ms,
            })),
            _ => Err(Status::internal("a lease grant returned another result")),
        }
    }

    #[instrument(level = "debug", skip_all, fields(lease = request.get_ref().id))]
    pub(super) async fn lease_revoke(
        &self,
        request: Request<LeaseRevokeRequest>,
    ) -> Reply<LeaseRevokeResponse> {
        let r = request.into_inner();
        let revoke = command::Lease::LeaseRevoke(LeaseRevoke {
            id: r.id,
            expired: false,
        });
        let (zxid, _) = self.lease_write(r.meta, revoke).await?;
        Ok(Response::new(LeaseRevokeResponse {
            header: Some(self.shared().header(zxid)),
        }))
    }

    /// Answers each keep-alive on the stream with the lease's TTL from now
    /// (0 once the lease is gone); errors are per message and retryable.
    pub(super) async fn lease_keep_alive(
        &self,
        request: Request<Streaming<LeaseKeepAliveRequest>>,
    ) -> Result<Response<KeepAliveStream>, Status> {
        let service = self.clone();
        let responses = request.into_inner().then(move |req| {
            let service = service.clone();
            async move {
                let id = req?.id;
                let shared = service.shared();
                let header = Some(shared.header(shared.applied()));
                let answer = service.lessor.query(vec![id], true).await;
                let remaining = answer
                    .as_ref()
                    .ok()
                    .and_then(|a| a.first())
                    .map_or(0, |a| a.remaining_ms);
                Ok(match answer {
                    Ok(_) if remaining >= 0 => LeaseKeepAliveResponse {
                        header,
                        id,
                        ttl_ms: remaining,
                        error: None,
                    },
                    Ok(_) => LeaseKeepAliveResponse {
                        header,
                        id,
                        ttl_ms: -1,
                        error: Some(coord_proto::v1::ErrorDetail {
                            code: ErrorCode::Unavailable as i32,
                            message:
                                "the lease was granted but the leader has not applied it yet; retry"
                                    .into(),
                            op_index: -1,
                            leader: shared.leader(),
                            ..Default::default()
                        }),
                    },
                    Err(err) => LeaseKeepAliveResponse {
                        header,
                        id,
                        ttl_ms: -1,
                        error: Some(coord_proto::v1::ErrorDetail {
                            code: ErrorCode::Unavailable as i32,
                            message: err.to_string(),
                            op_index: -1,
                            leader: shared.leader(),
                            ..Default::default()
                        }),
                    },
                })
            }
        });
        Ok(Response::new(Box::pin(responses)))
    }

    #[instrument(level = "debug", skip_all, fields(lease = request.get_ref().id))]
    pub(super) async fn lease_time_to_live(
        &self,
        request: Request<LeaseTimeToLiveRequest>,
    ) -> Reply<LeaseTimeToLiveResponse> {
        let id = request.into_inner().id;
        let deadlines = self
            .lessor
            .query(vec![id], false)
            .await
            .map_err(|e| self.fail(e.into()))?;
        let remaining = deadlines.first().map_or(0, |d| d.remaining_ms);
        if remaining < 0 {
            let reason = "the lease was granted but the leader has not applied it yet; retry";
            return Err(self.fail(DriverError::Unavailable(reason.into()).into()));
        }
        let shared = self.shared();
        let response = self
            .read(false, |state| {
                let granted = state.leases().get(&id).copied();
                match granted {
                    Some(ttl) if remaining != 0 => Ok(LeaseTimeToLiveResponse {
                        header: Some(shared.header(state.applied())),
                        id,
                        granted_ttl_ms: ttl,
                        remaining_ttl_ms: remaining,
                        nodes: state.tree().ephemerals_of(id),
                    }),
                    _ => Err(ZnodeError::LeaseNotFound { id }.into()),
                }
            })
            .await?;
        Ok(Response::new(response))
    }

    #[instrument(level = "debug", skip_all)]
    pub(super) async fn lease_list(
        &self,
        _request: Request<LeaseListRequest>,
    ) -> Reply<LeaseListResponse> {
        let shared = self.shared();
        let response = self
            .read(false, |state| {
                let leases = state
                    .leases()
                    .iter()
                    .map(|(&id, &ttl)| LeaseInfo {
                        id,
                        granted_ttl_ms: ttl,
                        nodes: state.tree().ephemeral_count(id) as u64,
                    })
                    .collect();
                Ok(LeaseListResponse {
                    header: Some(shared.header(state.applied())),
                    leases,
                })
            })
            .await?;
        Ok(Response::new(response))
    }
}
