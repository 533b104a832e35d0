//! The simulated lessor. The real one (`coord_server::lessor`) runs on the
//! leader: keep-alives push a lease's deadline, a new leader gives every lease
//! a full TTL, and a lease past its deadline is revoked by a `LeaseRevoke {
//! expired: true }` the leader proposes. Here time is steps and a lease is kept
//! alive exactly while a client holds it: a lease no client holds (abandoned,
//! given up, or granted to a grant whose answer was lost) is revoked once it
//! has been unheld for [`EXPIRY_STEPS`] under the same leader.

use std::collections::BTreeMap;

use coord_proto::v1::Role;
use coord_server::driver::Readied;

use super::client::Clients;
use super::leases::LeaseRecord;
use super::member::Member;
use super::ops::{self, Answer};

/// Steps a lease stays unheld, under one leader, before it expires.
const EXPIRY_STEPS: u64 = 200;
/// Steps between two deadline checks (the real lessor checks every 100 ms).
const CHECK_EVERY_STEPS: u64 = 10;
/// Steps an expiry revoke waits for its entry before it is proposed again.
const REVOKE_TIMEOUT_STEPS: u64 = 150;
/// Request ids of the lessor's proposals, apart from the clients' ones.
const REQUEST_ID_BASE: u64 = 1 << 62;

#[derive(Debug, Clone, Copy)]
struct InFlight {
    member: usize,
    request_id: u64,
    term: u64,
    lease: u64,
    expires: u64,
}

/// Lease deadlines of whichever member leads.
#[derive(Debug, Default)]
pub struct Lessor {
    /// The member and term last seen leading.
    leading: Option<(usize, u64)>,
    /// Lease → the step since which no client has held it.
    unheld_since: BTreeMap<u64, u64>,
    in_flight: Option<InFlight>,
    next_request: u64,
    last_check: u64,
}

impl Lessor {
    /// Member `m` ticked: if it leads, it checks deadlines and may propose
    /// one expiry. True when it proposed (its Ready must then be handled).
    pub fn on_tick(
        &mut self,
        m: usize,
        members: &mut [Member],
        clients: &mut Clients,
        now: u64,
    ) -> bool {
        if self.in_flight.is_some_and(|f| f.expires <= now) {
            self.in_flight = None;
        }
        let Some(replica) = members[m].replica_mut() else {
            return false;
        };
        let soft = replica.soft_state();
        if soft.role != Role::Leader || now < self.last_check + CHECK_EVERY_STEPS {
            return false;
        }
        self.last_check = now;
        if self.leading != Some((m, soft.term)) {
            // A new leader starts every lease with a full TTL.
            self.leading = Some((m, soft.term));
            self.unheld_since.clear();
        }
        let held = clients.held();
        let leases: Vec<u64> = replica.shared().read().leases().keys().copied().collect();
        self.unheld_since
            .retain(|id, _| leases.binary_search(id).is_ok() && !held.contains(id));
        for id in leases.into_iter().filter(|id| !held.contains(id)) {
            self.unheld_since.entry(id).or_insert(now);
        }
        if self.in_flight.is_some() {
            return false;
        }
        let Some((&lease, _)) = self
            .unheld_since
            .iter()
            .find(|(_, since)| **since + EXPIRY_STEPS <= now)
        else {
            return false;
        };
        let request_id = REQUEST_ID_BASE + self.next_request;
        self.next_request += 1;
        let Ok(term) = replica.propose(request_id, ops::expire(lease, now)) else {
            return false;
        };
        self.in_flight = Some(InFlight {
            member: m,
            request_id,
            term,
            lease,
            expires: now + REVOKE_TIMEOUT_STEPS,
        });
        let record = &mut clients.record_mut().leases;
        record.doomed.insert(lease);
        record.revoking.insert(lease);
        record.counts.expiries_proposed += 1;
        true
    }

    /// Takes in what a Ready of member `m` produced: the expiry's result, or
    /// the end of the term it was proposed in.
    pub fn on_readied(&mut self, m: usize, readied: &Readied, record: &mut LeaseRecord) {
        let Some(f) = self.in_flight.filter(|f| f.member == m) else {
            return;
        };
        if let Some((_, applied)) = readied.applied.iter().find(|(id, _)| *id == f.request_id) {
            // Not found: an earlier proposal of the same expiry was applied.
            if let Answer::Ok { .. } = ops::answer(&applied.result) {
                record.counts.expired += 1;
                record.revoked.insert(f.lease, applied.index);
            }
            self.in_flight = None;
        } else if readied.soft_state.term > f.term {
            self.in_flight = None;
        }
    }

    /// Member `m` crashed: its proposal is forgotten.
    pub fn on_crash(&mut self, m: usize) {
        if self.in_flight.is_some_and(|f| f.member == m) {
            self.in_flight = None;
        }
    }
}
