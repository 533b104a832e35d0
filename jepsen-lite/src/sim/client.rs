//! Simulated clients. Each runs one operation at a time against a random live
//! member, like coord-client: a write carries (client id, seq) and is retried
//! with the same seq when its member crashes, its term ends or it times out, so
//! the de-duplication table must answer the retry; a read goes through
//! ReadIndex and is served once the member has applied the read index. A
//! client holds at most one lease, which it keeps alive until it revokes or
//! abandons it (as a crashed client would). What each operation returned, and
//! when, goes into the [`Record`].

use std::collections::BTreeSet;

use coord_proto::v1::WriteMeta;
use coord_server::driver::{Applied, Readied, Replica};
use coord_server::storage::MemStore;

use super::leases::Held;
use super::member::Member;
use super::ops::{self, OpKind};
use super::record::Record;
use crate::rng::Rng;

/// Steps a write attempt waits for its entry before it is retried.
const WRITE_TIMEOUT_STEPS: u64 = 150;
/// Steps a read attempt waits for its read index (and apply) before a retry.
const READ_TIMEOUT_STEPS: u64 = 80;
/// Attempts before a client gives up on an operation (the setup never does).
const MAX_ATTEMPTS: u32 = 6;
/// Chance, per mille, that a client holding a lease abandons it at its turn.
const ABANDON_PER_MILLE: u64 = 15;

/// One try of an operation on one member.
#[derive(Debug, Clone, Copy)]
enum Attempt {
    Write {
        member: usize,
        request_id: u64,
        term: u64,
        expires: u64,
    },
    Read {
        member: usize,
        ctx: u64,
        index: Option<u64>,
        expires: u64,
    },
}

impl Attempt {
    fn member(&self) -> usize {
        match *self {
            Self::Write { member, .. } | Self::Read { member, .. } => member,
        }
    }

    fn expires(&self) -> u64 {
        match *self {
            Self::Write { expires, .. } | Self::Read { expires, .. } => expires,
        }
    }
}

#[derive(Debug)]
struct Pending {
    kind: OpKind,
    seq: u64,
    call: u64,
    attempts: u32,
    /// Some attempt reached Raft, so the write may be applied.
    maybe_applied: bool,
    attempt: Option<Attempt>,
}

impl Pending {
    /// Sends one attempt to `replica` (member `member`); `None` when the
    /// member refused it at once (no leader), so the next turn retries.
    fn attempt(
        &mut self,
        replica: &mut Replica<MemStore>,
        member: usize,
        client_id: u64,
        id: u64,
        now: u64,
    ) -> Option<Attempt> {
        let meta = WriteMeta {
            client_id,
            seq: self.seq,
            first_incomplete_seq: self.seq,
        };
        let Some(command) = ops::command(self.kind, meta, now) else {
            // As `DriverHandle::linearize`: a lone voter reads locally once
            // it may, otherwise a ReadIndex round.
            let index = replica.shared().local_read_index();
            if index.is_none() {
                replica.read_index(id.to_be_bytes().to_vec());
            }
            return Some(Attempt::Read {
                member,
                ctx: id,
                index,
                expires: now + READ_TIMEOUT_STEPS,
            });
        };
        let term = replica.propose(id, command).ok()?;
        self.maybe_applied = true;
        Some(Attempt::Write {
            member,
            request_id: id,
            term,
            expires: now + WRITE_TIMEOUT_STEPS,
        })
    }
}

#[derive(Debug)]
struct Client {
    index: usize,
    id: u64,
    seq: u64,
    /// The version last seen of each register: what a compare-and-set expects.
    versions: Vec<i32>,
    /// The lease it keeps alive.
    lease: Option<u64>,
    pending: Option<Pending>,
}

/// The simulated clients and what they observed.
#[derive(Debug)]
pub struct Clients {
    clients: Vec<Client>,
    record: Record,
    next_id: u64,
}

impl Clients {
    /// `count` idle clients; client 0 runs the setup before anyone else starts.
    pub fn new(count: usize) -> Self {
        let clients = (0..count)
            .map(|index| Client {
                index,
                id: 0xc1_0000 + index as u64,
                seq: 0,
                versions: vec![0; ops::REGISTERS.len()],
                lease: None,
                pending: None,
            })
            .collect();
        Self {
            clients,
            record: Record::new(),
            next_id: 1,
        }
    }

    /// Number of clients.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when there is no client.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// What the clients observed.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// What the clients observed, for the lessor.
    pub fn record_mut(&mut self) -> &mut Record {
        &mut self.record
    }

    /// True when no operation is pending.
    pub fn idle(&self) -> bool {
        self.clients.iter().all(|c| c.pending.is_none())
    }

    /// The leases clients keep alive.
    pub fn held(&self) -> BTreeSet<u64> {
        self.clients.iter().filter_map(|c| c.lease).collect()
    }

    /// Client `which` takes its turn: starts an operation (when `may_start`),
    /// retries one, or gives up. Returns the member it talked to, whose Ready
    /// must then be handled.
    pub fn act(
        &mut self,
        which: usize,
        members: &mut [Member],
        now: u64,
        rng: &mut Rng,
        may_start: bool,
    ) -> Option<usize> {
        let client = &mut self.clients[which];
        if client.pending.is_none() {
            let kind = match (self.record.setup_done, client.index) {
                (false, 0) => OpKind::Setup,
                (true, _) if may_start => {
                    if client.lease.is_some() && rng.chance(ABANDON_PER_MILLE) {
                        client.lease = None;
                        self.record.leases.counts.abandoned += 1;
                        return None;
                    }
                    let (seq, lease) = (client.seq + 1, client.lease);
                    ops::random_op(rng, client.index, seq, &client.versions, lease)
                }
                _ => return None,
            };
            client.start(kind, now);
            self.record.leases.started(kind);
        }
        let pending = client.pending.as_mut()?;
        if pending.attempt.is_some() {
            return None;
        }
        if pending.kind != OpKind::Setup && pending.attempts >= MAX_ATTEMPTS {
            self.record
                .gave_up(pending.kind, pending.call, pending.maybe_applied);
            client.give_up();
            return None;
        }
        pending.attempts += 1;
        if pending.attempts > 1 {
            self.record.counts.retries += 1;
        }
        let up: Vec<usize> = (0..members.len()).filter(|&m| members[m].is_up()).collect();
        let member = *up.get(rng.index(up.len()))?;
        let replica = members[member].replica_mut()?;
        let id = self.next_id;
        self.next_id += 1;
        pending.attempt = pending.attempt(replica, member, client.id, id, now);
        if pending.maybe_applied {
            self.record.leases.proposed(pending.kind);
        }
        if let Some(Attempt::Read {
            index: Some(index), ..
        }) = pending.attempt
        {
            client.serve_read(Some(index), &members[member], now, &mut self.record);
        }
        Some(member)
    }

    /// Takes in what a Ready of member `m` produced: answers writes, records
    /// read indexes, abandons writes of an ended term and serves reads.
    pub fn on_readied(&mut self, m: usize, readied: &Readied, member: &Member, now: u64) {
        for client in &mut self.clients {
            match client.attempt() {
                Some(Attempt::Write {
                    member: am,
                    request_id,
                    term,
                    ..
                }) if am == m => {
                    let answer = readied.applied.iter().find(|(id, _)| *id == request_id);
                    if let Some((_, applied)) = answer {
                        client.complete(applied, now, &mut self.record);
                    } else if readied.soft_state.term > term {
                        // As the server does: a new leader may have dropped it.
                        client.abandon_attempt();
                    }
                }
                Some(Attempt::Read {
                    member: am,
                    ctx,
                    index,
                    ..
                }) if am == m => {
                    let ctx = ctx.to_be_bytes();
                    let index = index.or_else(|| {
                        let state = readied.read_states.iter().find(|(c, _)| *c == ctx);
                        state.map(|(_, i)| *i)
                    });
                    client.serve_read(index, member, now, &mut self.record);
                }
                _ => {}
            }
        }
    }

    /// Abandons every attempt on member `m` (it crashed).
    pub fn on_crash(&mut self, m: usize) {
        for client in &mut self.clients {
            if client.attempt().is_some_and(|a| a.member() == m) {
                client.abandon_attempt();
            }
        }
    }

    /// Abandons attempts past their deadline; the client retries at its next turn.
    pub fn expire(&mut self, now: u64) {
        for client in &mut self.clients {
            if client.attempt().is_some_and(|a| a.expires() <= now) {
                client.abandon_attempt();
            }
        }
    }

    /// Gives up every pending operation (the run is over).
    pub fn finish(&mut self) {
        for client in &mut self.clients {
            if let Some(p) = &client.pending {
                self.record.gave_up(p.kind, p.call, p.maybe_applied);
            }
            client.give_up();
        }
    }
}

impl Client {
    fn attempt(&self) -> Option<Attempt> {
        self.pending.as_ref().and_then(|p| p.attempt)
    }

    fn start(&mut self, kind: OpKind, now: u64) {
        if !matches!(kind, OpKind::Read { .. }) {
            self.seq += 1;
        }
        self.pending = Some(Pending {
            kind,
            seq: self.seq,
            call: now,
            attempts: 0,
            maybe_applied: false,
            attempt: None,
        });
    }

    /// Drops the pending operation; a revoke given up may have ended the
    /// lease, so the client stops keeping it alive (the lessor expires it).
    fn give_up(&mut self) {
        if let Some(p) = self.pending.take()
            && matches!(p.kind, OpKind::Revoke { .. })
        {
            self.lease = None;
        }
    }

    fn abandon_attempt(&mut self) {
        if let Some(p) = self.pending.as_mut() {
            p.attempt = None;
        }
    }

    /// This client's write was applied on the member it was proposed to.
    fn complete(&mut self, applied: &Applied, now: u64, record: &mut Record) {
        let Some(p) = self.pending.take() else { return };
        if p.kind.is_lease() {
            record.counts.ok += 1;
            let who = (self.id, p.seq, p.attempts);
            match record.leases.answered(who, p.kind, applied) {
                Ok(Held::Now(id)) => self.lease = Some(id),
                Ok(Held::Dropped) => self.lease = None,
                Ok(Held::Same) => {}
                Err(violation) => record.violations.push(violation),
            }
            return;
        }
        if let Some((reg, version)) =
            record.answered(self.index, p.seq, p.kind, p.call, now, applied)
        {
            self.versions[reg] = version;
        }
    }

    /// Notes the read index, and serves the read once the member has applied it.
    fn serve_read(&mut self, index: Option<u64>, member: &Member, now: u64, record: &mut Record) {
        let Some(p) = self.pending.as_mut() else {
            return;
        };
        let (OpKind::Read { reg }, Some(Attempt::Read { index: slot, .. })) =
            (p.kind, p.attempt.as_mut())
        else {
            return;
        };
        *slot = index;
        let (Some(index), Some(replica)) = (index, member.replica()) else {
            return;
        };
        let state = replica.shared().read();
        if state.applied() < index {
            return;
        }
        let read = ops::read_register(&state, reg);
        drop(state);
        record.read(reg, p.call, now, index, read);
        if let Some((_, version)) = read {
            self.versions[reg] = version;
        }
        self.pending = None;
    }
}
