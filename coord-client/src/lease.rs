//! Leases: grant, revoke, time-to-live, list, and the low-level keep-alive
//! stream. A lease is a replicated `{id, ttl}` that the leader revokes (deleting
//! its ephemeral nodes in the same Raft entry) when no keep-alive arrived for a
//! whole TTL. Most applications want a [`Session`](crate::Session), which keeps
//! a lease alive by itself; this module is the layer below it.

use std::time::Duration;

use coord_proto::v1::{
    Header, LeaseGrantRequest, LeaseKeepAliveRequest, LeaseKeepAliveResponse, LeaseListRequest,
    LeaseRevokeRequest, LeaseTimeToLiveRequest,
};

use crate::bidi::{self, Bidi};
use crate::endpoint::Member;
use crate::types::required;
use crate::{Client, Error, ErrorInfo};

/// A granted lease: what ephemeral nodes name as their owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The lease id: the zxid of the entry that granted it.
    pub id: u64,
    /// The granted time to live: the leader revokes the lease when no
    /// keep-alive arrived for this long.
    pub ttl: Duration,
}

/// What the leader knows about one lease, from [`Client::lease_time_to_live`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseTimeToLive {
    /// The lease id.
    pub id: u64,
    /// The TTL it was granted with.
    pub granted_ttl: Duration,
    /// Time left before the leader revokes it, unless kept alive.
    pub remaining_ttl: Duration,
    /// Paths of the ephemeral nodes it owns, sorted.
    pub nodes: Vec<String>,
}

/// One lease of [`Client::lease_list`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseInfo {
    /// The lease id.
    pub id: u64,
    /// The TTL it was granted with.
    pub granted_ttl: Duration,
    /// How many ephemeral nodes it owns.
    pub nodes: u64,
}

/// A successful keep-alive: the lease lives for `ttl` from (about) now.
#[derive(Debug, Clone, PartialEq)]
pub struct KeepAlive {
    /// The answering member's header.
    pub header: Header,
    /// The lease kept alive.
    pub id: u64,
    /// The lease's time to live from when the leader processed the keep-alive.
    pub ttl: Duration,
}

/// A keep-alive stream open on one member, from [`Client::lease_keep_alive`]:
/// the low-level tool behind [`Session`](crate::Session), for callers that
/// keep leases alive on their own schedule. One stream may keep any number of
/// leases alive.
///
/// It does not fail over: after a retryable error that is not `Unavailable`
/// (the stream broke), open a new one. [`keep_alive`](Self::keep_alive) sends
/// one request and reads one answer, so it is not cancel-safe: if its future
/// is dropped before it resolves, drop the stream too (answers come in order,
/// and the next call would read the stale one).
#[derive(Debug)]
pub struct LeaseKeepAlive {
    stream: Bidi<LeaseKeepAliveRequest, LeaseKeepAliveResponse>,
}

/// Milliseconds from the wire as a duration (negative values as zero).
pub(crate) fn from_millis(ms: i64) -> Duration {
    Duration::from_millis(u64::try_from(ms).unwrap_or(0))
}

/// A duration as wire milliseconds, saturating.
pub(crate) fn to_millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl LeaseKeepAlive {
    /// Opens a keep-alive stream on exactly `member`.
    pub(crate) async fn open(member: &Member, timeout: Duration) -> Result<Self, Error> {
        let stream = bidi::open(member, timeout, |mut c, r| async move {
            c.lease_keep_alive(r).await
        })
        .await?;
        Ok(Self { stream })
    }

    /// The endpoint of the member the stream is open on.
    pub fn endpoint(&self) -> &str {
        &self.stream.endpoint
    }

    /// Keeps lease `id` alive: its deadline on the leader becomes now + TTL.
    ///
    /// Fails with `LeaseNotFound` when the lease is gone (expired or revoked:
    /// final), `Unavailable` when the member could not reach a leader (retry,
    /// on this stream or another member's), or `Transport` when the stream broke.
    pub async fn keep_alive(&mut self, id: u64) -> Result<KeepAlive, Error> {
        let endpoint = &self.stream.endpoint;
        if self
            .stream
            .requests
            .send(LeaseKeepAliveRequest { id })
            .is_err()
        {
            return Err(bidi::ended(endpoint));
        }
        match self.stream.responses.message().await {
            Ok(Some(answer)) => answer_of(answer),
            Ok(None) => Err(bidi::ended(endpoint)),
            Err(status) => Err(Error::from_status(&status, endpoint)),
        }
    }
}

/// Interprets a keep-alive answer: `ttl_ms` > 0 alive, 0 gone, -1 with an
/// error: the member could not reach the leader.
fn answer_of(answer: LeaseKeepAliveResponse) -> Result<KeepAlive, Error> {
    if let Some(detail) = answer.error {
        return Err(Error::from_detail(detail));
    }
    match answer.ttl_ms {
        0 => Err(Error::LeaseNotFound(ErrorInfo::from_message(format!(
            "lease {} expired or was revoked",
            answer.id
        )))),
        ms if ms < 0 => Err(Error::Unavailable(ErrorInfo::from_message(format!(
            "no keep-alive answer for lease {}",
            answer.id
        )))),
        ms => Ok(KeepAlive {
            header: required(answer.header, "LeaseKeepAliveResponse.header")?,
            id: answer.id,
            ttl: from_millis(ms),
        }),
    }
}

impl Client {
    /// Grants a lease of `ttl` (the server's bounds apply, 2 s..60 s by
    /// default: outside them the call fails with `BadArguments`). Retried like
    /// every write and de-duplicated, so a retry never grants two leases.
    pub async fn lease_grant(&self, ttl: Duration) -> Result<Lease, Error> {
        let ticket = self.inner.writes.begin().await;
        let request = LeaseGrantRequest {
            meta: Some(ticket.meta()),
            ttl_ms: to_millis(ttl),
        };
        let response = self.inner.call(request).await?;
        Ok(Lease {
            id: response.id,
            ttl: from_millis(response.ttl_ms),
        })
    }

    /// Revokes lease `id` now, deleting its ephemeral nodes in the same entry.
    /// Fails with `LeaseNotFound` if it is already gone.
    pub async fn lease_revoke(&self, id: u64) -> Result<(), Error> {
        let ticket = self.inner.writes.begin().await;
        let request = LeaseRevokeRequest {
            meta: Some(ticket.meta()),
            id,
        };
        self.inner.call(request).await?;
        Ok(())
    }

    /// The granted and remaining TTL of lease `id` and the nodes it owns, as
    /// the leader sees them; `LeaseNotFound` if it is gone.
    pub async fn lease_time_to_live(&self, id: u64) -> Result<LeaseTimeToLive, Error> {
        let response = self.inner.call(LeaseTimeToLiveRequest { id }).await?;
        Ok(LeaseTimeToLive {
            id: response.id,
            granted_ttl: from_millis(response.granted_ttl_ms),
            remaining_ttl: from_millis(response.remaining_ttl_ms),
            nodes: response.nodes,
        })
    }

    /// Every live lease, in id order.
    pub async fn lease_list(&self) -> Result<Vec<LeaseInfo>, Error> {
        let response = self.inner.call(LeaseListRequest {}).await?;
        Ok(response
            .leases
            .into_iter()
            .map(|l| LeaseInfo {
                id: l.id,
                granted_ttl: from_millis(l.granted_ttl_ms),
                nodes: l.nodes,
            })
            .collect())
    }

    /// Opens a keep-alive stream on the first member that accepts it, starting
    /// with the current one.
    pub async fn lease_keep_alive(&self) -> Result<LeaseKeepAlive, Error> {
        let members = &self.inner.members;
        let start = self.inner.current_index();
        let mut last = Error::NoEndpoints;
        for i in 0..members.len() {
            let member = &members[(start + i) % members.len()];
            match LeaseKeepAlive::open(member, self.inner.timeouts.request).await {
                Ok(stream) => return Ok(stream),
                Err(err) if err.is_retryable() => last = err,
                Err(err) => return Err(err),
            }
        }
        Err(last)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::v1::{ErrorCode, ErrorDetail};

    fn answer(ttl_ms: i64, error: Option<ErrorDetail>) -> LeaseKeepAliveResponse {
        LeaseKeepAliveResponse {
            header: Some(Header::default()),
            id: 9,
            ttl_ms,
            error,
        }
    }

    #[test]
    fn keep_alive_answers() {
        let alive = answer_of(answer(2500, None)).map(|k| (k.id, k.ttl));
        assert_eq!(alive, Ok((9, Duration::from_millis(2500))));
        let gone = answer_of(answer(0, None)).map_err(|e| e.name());
        assert_eq!(gone, Err("LeaseNotFound"));
        let detail = ErrorDetail {
            code: ErrorCode::Unavailable.into(),
            message: "no leader".into(),
            op_index: -1,
            ..ErrorDetail::default()
        };
        let err = answer_of(answer(-1, Some(detail))).expect_err("an error");
        assert_eq!(
            (err.name(), err.to_string()),
            ("Unavailable", "no leader".into())
        );
        assert!(err.is_retryable());
        assert!(answer_of(answer(-1, None)).is_err_and(|e| e.is_retryable()));
    }

    #[test]
    fn millis_saturate() {
        assert_eq!(from_millis(-5), Duration::ZERO);
        assert_eq!(to_millis(Duration::from_secs(3)), 3000);
        assert_eq!(to_millis(Duration::MAX), i64::MAX);
    }
}
