//! Lease deadlines, kept by the leader only and never replicated (etcd's
//! lessor). Keep-alives push a deadline to now + TTL; when one passes, the
//! leader proposes a `LeaseRevoke` through Raft, which deletes the lease's
//! ephemeral nodes in the same entry. A member that becomes leader starts every
//! lease's deadline at now + TTL (etcd's "promote"), so a leader change never
//! expires a healthy client's lease. Members that do not lead forward
//! keep-alives and time-to-live questions to the leader over the peer service.
//!
//! The leader also expires TTL nodes: it proposes `ExpireTtl` for TTL nodes
//! unmodified for their TTL, and apply re-checks them at the proposal's time.
//!
//! Both are decisions of one leader in one term, proposed with
//! [`DriverHandle::propose_in_term`]: a member that stopped leading before the
//! driver took the proposal up drops it instead of forwarding it to the new
//! leader, whose promotion gave every lease a fresh TTL (a paused old leader,
//! resumed, would otherwise have the new leader revoke leases its clients had
//! just kept alive).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use coord_proto::peer::peer_client::PeerClient;
use coord_proto::peer::{LeaseDeadline, LeaseQuery};
use coord_proto::raftlog::{Command, ExpireTtl, LeaseRevoke, command};
use coord_proto::v1::Role;
use tonic::transport::{Channel, Endpoint};
use tracing::{debug, info};

use crate::core::NodeKind;
use crate::driver::{DriverError, DriverHandle, Shared};

/// How often deadlines are checked.
const CHECK_EVERY: Duration = Duration::from_millis(100);
/// How often TTL nodes are checked.
const TTL_CHECK_EVERY: Duration = Duration::from_secs(1);
/// TTL nodes expired per proposal.
const TTL_BATCH: usize = 1000;

/// An expiry revoke this leader proposed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Revoking {
    /// The term it was proposed in (and may only be proposed in).
    term: u64,
    /// Waiting for its outcome; when false, the last attempt's outcome is
    /// unknown and the revoke is proposed again.
    in_flight: bool,
}

#[derive(Debug, Default)]
struct Deadlines {
    /// The term this member leads in, if it leads.
    leading_term: Option<u64>,
    deadlines: HashMap<u64, Instant>,
    /// Leases whose expiry revoke this member proposed in the term it leads.
    /// Such a lease is never refreshed in that term: the revoke may commit
    /// after the refresh would have promised a new deadline.
    revoking: HashMap<u64, Revoking>,
    expiring_ttl: bool,
}

/// Lease deadlines and TTL-node expiry of one member.
#[derive(Debug)]
pub struct Lessor {
    shared: Arc<Shared>,
    driver: DriverHandle,
    peers: HashMap<u64, Channel>,
    state: Mutex<Deadlines>,
}

/// Milliseconds since the Unix epoch, for commands (the member's wall clock).
pub fn now_ms() -> i64 {
    crate::clock::now_ms()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Lessor {
    /// A lessor for this member; `peers` maps member ids to peer addresses.
    pub fn new(
        shared: Arc<Shared>,
        driver: DriverHandle,
        peers: &HashMap<u64, String>,
    ) -> Result<Arc<Self>, tonic::transport::Error> {
        let mut channels = HashMap::new();
        for (&id, addr) in peers.iter().filter(|(id, _)| **id != shared.id) {
            let endpoint = Endpoint::from_shared(format!("http://{addr}"))?
                .connect_timeout(Duration::from_millis(500))
                .tcp_nodelay(true);
            channels.insert(id, endpoint.connect_lazy());
        }
        Ok(Arc::new(Self {
            shared,
            driver,
            peers: channels,
            state: Mutex::new(Deadlines::default()),
        }))
    }

    fn lock(&self) -> MutexGuard<'_, Deadlines> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Runs the deadline and TTL checks until the runtime stops.
    pub fn spawn(self: &Arc<Self>) {
        let lessor = Arc::clone(self);
        tokio::spawn(async move {
            let mut ticker = tokio::time::interval(CHECK_EVERY);
            let mut last_ttl_check = Instant::now();
            loop {
                ticker.tick().await;
                lessor.revoke_expired();
                if last_ttl_check.elapsed() >= TTL_CHECK_EVERY {
                    last_ttl_check = Instant::now();
                    lessor.expire_ttl_nodes();
                }
            }
        });
    }

    /// Brings the deadlines in line with leadership and the lease table:
    /// a new term of leadership starts every lease at now + TTL.
    fn sync(&self, st: &mut Deadlines, now: Instant) -> bool {
        let leading = self.shared.role() == Role::Leader;
        let term = self.shared.term();
        if !leading {
            st.leading_term = None;
            st.deadlines.clear();
            st.revoking.clear();
            return false;
        }
        if st.leading_term != Some(term) {
            info!(term, "leading: every lease starts a full TTL");
            st.leading_term = Some(term);
            st.deadlines.clear();
            st.revoking.clear();
        }
        let state = self.shared.read();
        let leases = state.leases();
        st.deadlines.retain(|id, _| leases.contains_key(id));
        for (&id, &ttl) in leases {
            st.deadlines
                .entry(id)
                .or_insert_with(|| now + Duration::from_millis(u64::try_from(ttl).unwrap_or(0)));
        }
        true
    }

    /// Answers for `ids` if this member leads: remaining ms (0: no such lease;
    /// -1: granted so recently that this leader has not applied it yet).
    /// `refresh` is a keep-alive. `None` when not leading.
    ///
    /// A keep-alive is only acknowledged after a ReadIndex round confirms this
    /// member still leads (etcd's `ensureLeadership`): a deposed leader that
    /// has not noticed yet must not promise a deadline the new leader, whose
    /// deadlines started at its promotion, would not keep. Deadlines count from
    /// when the keep-alive arrived, which precedes the confirmation, which in
    /// turn precedes any later leader's promotion.
    pub async fn local_query(&self, ids: &[u64], refresh: bool) -> Option<Vec<LeaseDeadline>> {
        if self.shared.role() != Role::Leader {
            return None;
        }
        let now = Instant::now();
        if refresh && self.driver.linearize().await.is_err() {
            return None;
        }
        let mut st = self.lock();
        if !self.sync(&mut st, now) {
            return None;
        }
        let (ttls, applied) = {
            let state = self.shared.read();
            let ttls: Vec<Option<i64>> = ids
                .iter()
                .map(|id| state.leases().get(id).copied())
                .collect();
            (ttls, state.applied())
        };
        let answers = ids
            .iter()
            .zip(ttls)
            .map(|(&id, ttl)| match ttl {
                Some(_) if refresh && st.revoking.contains_key(&id) => LeaseDeadline {
                    id,
                    remaining_ms: 0,
                    granted_ttl_ms: 0,
                },
                Some(ttl) => {
                    let deadline = st.deadlines.entry(id).or_insert(now);
                    if refresh {
                        *deadline = now + Duration::from_millis(u64::try_from(ttl).unwrap_or(0));
                    }
                    LeaseDeadline {
                        id,
                        remaining_ms: millis(deadline.saturating_duration_since(now)).max(1),
                        granted_ttl_ms: ttl,
                    }
                }
                None => LeaseDeadline {
                    id,
                    remaining_ms: if id > applied { -1 } else { 0 },
                    granted_ttl_ms: 0,
                },
            })
            .collect();
        Some(answers)
    }

    /// Keep-alive (`refresh`) or time-to-live of `ids`, from the leader.
    pub async fn query(
        &self,
        ids: Vec<u64>,
        refresh: bool,
    ) -> Result<Vec<LeaseDeadline>, DriverError> {
        if let Some(answer) = self.local_query(&ids, refresh).await {
            return Ok(answer);
        }
        let leader = self.shared.leader();
        let channel = self
            .peers
            .get(&leader)
            .ok_or_else(|| DriverError::Unavailable("no leader is known".into()))?;
        let mut client = PeerClient::new(channel.clone());
        let ask = client.leases(LeaseQuery { ids, refresh });
        let response = tokio::time::timeout(Duration::from_secs(1), ask)
            .await
            .map_err(|_| DriverError::Unavailable(format!("leader {leader} did not answer")))?
            .map_err(|status| {
                DriverError::Unavailable(format!("leader {leader}: {}", status.message()))
            })?
            .into_inner();
        if response.not_leader {
            return Err(DriverError::Unavailable(format!(
                "member {leader} no longer leads"
            )));
        }
        Ok(response.leases)
    }

    /// Proposes a revoke for every lease past its deadline.
    fn revoke_expired(self: &Arc<Self>) {
        let now = Instant::now();
        let (expired, term) = {
            let mut st = self.lock();
            if !self.sync(&mut st, now) {
                return;
            }
            let ids: Vec<u64> = st
                .deadlines
                .iter()
                .filter(|(id, d)| **d <= now && !st.revoking.get(id).is_some_and(|r| r.in_flight))
                .map(|(id, _)| *id)
                .collect();
            let term = st.leading_term.unwrap_or_default();
            let revoking = Revoking {
                term,
                in_flight: true,
            };
            st.revoking.extend(ids.iter().map(|&id| (id, revoking)));
            (ids, term)
        };
        for id in expired {
            info!(lease = id, "lease expired; revoking");
            let lessor = Arc::clone(self);
            tokio::spawn(async move {
                let revoke = command::Lease::LeaseRevoke(LeaseRevoke { id, expired: true });
                let outcome = lessor
                    .driver
                    .propose_in_term(lease_command(revoke), term)
                    .await;
                debug!(lease = id, ?outcome, "expiry revoke done");
                // A revoke whose outcome is unknown may still commit in this
                // term: the lease stays unrefreshable until the term ends, and
                // the revoke is proposed again (it is idempotent).
                let mut st = lessor.lock();
                if let Some(revoking) = st.revoking.get_mut(&id).filter(|r| r.term == term) {
                    if outcome.is_ok() {
                        st.revoking.remove(&id);
                    } else {
                        revoking.in_flight = false;
                    }
                }
            });
        }
    }

    /// Proposes the expiry of TTL nodes unmodified for their TTL.
    fn expire_ttl_nodes(self: &Arc<Self>) {
        if self.shared.role() != Role::Leader {
            return;
        }
        let term = self.shared.term();
        let now = now_ms();
        let paths: Vec<String> = {
            let state = self.shared.read();
            state
                .tree()
                .ttl_nodes()
                .filter(|p| {
                    state.tree().get(p).is_some_and(|n| {
                        matches!(n.kind(), NodeKind::Ttl(ttl) if !n.has_children() && n.stat.mtime.saturating_add(ttl) <= now)
                    })
                })
                .take(TTL_BATCH)
                .cloned()
                .collect()
        };
        if paths.is_empty() {
            return;
        }
        {
            let mut st = self.lock();
            if st.expiring_ttl {
                return;
            }
            st.expiring_ttl = true;
        }
        let lessor = Arc::clone(self);
        tokio::spawn(async move {
            debug!(nodes = paths.len(), "expiring TTL nodes");
            let expire = command::Lease::ExpireTtl(ExpireTtl { paths });
            let _ = lessor
                .driver
                .propose_in_term(lease_command(expire), term)
                .await;
            lessor.lock().expiring_ttl = false;
        });
    }
}

/// A lease command proposed by the member itself (no client, no de-duplication:
/// revokes and expiries are idempotent).
pub fn lease_command(lease: command::Lease) -> Command {
    Command {
        meta: None,
        time_ms: now_ms(),
        ops: Vec::new(),
        lease: Some(lease),
    }
}
