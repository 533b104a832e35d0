//! Checks that hold after every step, whatever the faults: election safety (one
//! leader per term), committed entries never change (every member's committed
//! entries agree with the first committed entry seen at each index), log
//! matching (equal index and term imply equal logs up to there), replicas
//! with equal applied index have equal tree digests, and no member shows an
//! ephemeral node whose lease is not in its lease table.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use coord_proto::v1::Role;
use coord_server::core::{NodeKind, StateMachine};
use coord_server::storage::MemStore;
use raft::eraftpb::Entry;
use raft::{GetEntriesContext, Storage as _};

use super::member::Member;
use super::ops;

/// Violations kept in the report; a broken run usually repeats itself.
const MAX_VIOLATIONS: usize = 20;

/// What the invariant checks observed.
#[derive(Debug, Default)]
pub struct Invariants {
    /// term → the member that led it.
    leaders: BTreeMap<u64, u64>,
    /// index → (term, data) of the entry first seen committed there.
    committed: BTreeMap<u64, (u64, Bytes)>,
    /// applied index → tree digest first seen there.
    digests: BTreeMap<u64, u64>,
    /// Per member: committed entries already compared, this incarnation.
    checked: BTreeMap<u64, u64>,
    /// Per member: applied index and lease ids at its last lease check, this
    /// incarnation.
    lease_tables: BTreeMap<u64, (u64, Vec<u64>)>,
    /// Every lease id seen in a member's lease table.
    leases_seen: BTreeSet<u64>,
    violations: Vec<String>,
}

/// Ephemeral nodes under [`ops::EPHEMERALS`] whose lease is not in `state`'s table.
fn ephemeral_orphans(state: &StateMachine) -> Vec<String> {
    let tree = state.tree();
    let mut path = String::new();
    let mut orphans = Vec::new();
    for name in tree.children(ops::EPHEMERALS) {
        path.clear();
        path.push_str(ops::EPHEMERALS);
        path.push('/');
        path.push_str(name);
        if let Some(NodeKind::Ephemeral(l)) = tree.get(&path).map(|n| n.kind())
            && !state.leases().contains_key(&l)
        {
            orphans.push(format!("{path} (lease {l})"));
        }
    }
    orphans
}

fn entries(store: &MemStore, low: u64, high: u64) -> Vec<Entry> {
    if low >= high {
        return Vec::new();
    }
    store
        .entries(low, high, None, GetEntriesContext::empty(false))
        .unwrap_or_default()
}

impl Invariants {
    /// Records a violation (the first few are kept).
    pub fn violation(&mut self, step: u64, what: String) {
        if self.violations.len() < MAX_VIOLATIONS {
            self.violations.push(format!("step {step}: {what}"));
        }
    }

    /// Violations found so far.
    pub fn violations(&self) -> &[String] {
        &self.violations
    }

    /// Terms that had a leader.
    pub fn leader_terms(&self) -> u64 {
        self.leaders.len() as u64
    }

    /// Highest index seen committed.
    pub fn max_committed(&self) -> u64 {
        self.committed.last_key_value().map_or(0, |(i, _)| *i)
    }

    /// Every lease id seen in a member's lease table.
    pub fn leases_seen(&self) -> &BTreeSet<u64> {
        &self.leases_seen
    }

    /// The data of the entry seen committed at `index`.
    pub fn committed_data(&self, index: u64) -> Option<&Bytes> {
        self.committed.get(&index).map(|(_, data)| data)
    }

    /// A member restarted: its committed entries are compared again from scratch.
    pub fn restarted(&mut self, id: u64) {
        self.checked.remove(&id);
        self.lease_tables.remove(&id);
    }

    /// Takes in the entries a member has committed and persisted, before its
    /// Ready applies (and may compact) them.
    pub fn observe_log(&mut self, member: &Member, step: u64) {
        if let Some(replica) = member.replica() {
            let log = &replica.raw().raft.raft_log;
            let high = log.committed.min(log.persisted);
            self.observe_committed(member.id(), replica.store(), high, step);
        }
    }

    /// Checks one member after it handled a Ready (or restarted).
    pub fn observe(&mut self, member: &Member, step: u64) {
        let Some(replica) = member.replica() else {
            return;
        };
        let id = member.id();
        let soft = replica.soft_state();
        if soft.role == Role::Leader {
            let leader = *self.leaders.entry(soft.term).or_insert(id);
            if leader != id {
                self.violation(
                    step,
                    format!(
                        "election safety: members {leader} and {id} both led term {}",
                        soft.term
                    ),
                );
            }
        }
        self.observe_committed(
            id,
            replica.store(),
            replica.raw().raft.raft_log.committed,
            step,
        );
        let state = replica.shared().read();
        let (applied, digest) = (state.applied(), state.tree().digest());
        let first = *self.digests.entry(applied).or_insert(digest);
        if first != digest {
            self.violation(
                step,
                format!("replica digest: member {id} at applied index {applied} has digest {digest:#x}, another member had {first:#x}"),
            );
        }
        self.observe_leases(id, &state, step);
    }

    /// No ephemeral node of a lease that left the table since the last check
    /// (every ephemeral node, after a restart).
    fn observe_leases(&mut self, id: u64, state: &StateMachine, step: u64) {
        let applied = state.applied();
        let previous = self.lease_tables.get_mut(&id);
        match previous {
            Some((a, _)) if *a == applied => return,
            Some((a, before)) if state.leases().keys().eq(before.iter()) => {
                *a = applied;
                return;
            }
            _ => {}
        }
        let previous = self.lease_tables.get(&id);
        let leases: Vec<u64> = state.leases().keys().copied().collect();
        let orphans: Vec<String> = match previous {
            None => ephemeral_orphans(state),
            Some((_, before)) => before
                .iter()
                .filter(|l| leases.binary_search(l).is_err())
                .filter(|l| state.tree().ephemeral_count(**l) > 0)
                .map(|l| format!("{:?} (lease {l})", state.tree().ephemerals_of(*l)))
                .collect(),
        };
        self.leases_seen.extend(leases.iter().copied());
        self.lease_tables.insert(id, (applied, leases));
        for orphan in orphans {
            self.violation(
                step,
                format!("ephemeral outlives its lease: member {id} at applied index {applied} has {orphan}, lease not in its table"),
            );
        }
    }

    /// Every running member: no ephemeral node whose lease is gone.
    pub fn check_ephemerals(&mut self, members: &[Member], step: u64) {
        for member in members {
            let Some(replica) = member.replica() else {
                continue;
            };
            let state = replica.shared().read();
            for orphan in ephemeral_orphans(&state) {
                let what = format!(
                    "ephemeral outlives its lease: member {} at applied index {} has {orphan}, lease not in its table",
                    member.id(),
                    state.applied()
                );
                self.violation(step, what);
            }
        }
    }

    fn observe_committed(&mut self, id: u64, store: &MemStore, committed: u64, step: u64) {
        let checked = self.checked.get(&id).copied().unwrap_or(0);
        if committed <= checked {
            return;
        }
        let first = store.first_index().unwrap_or(1);
        let last = store.last_index().unwrap_or(0);
        let low = (checked + 1).max(first);
        let high = committed.min(last);
        for entry in entries(store, low, high + 1) {
            let seen = self
                .committed
                .entry(entry.index)
                .or_insert_with(|| (entry.term, entry.data.clone()));
            if *seen != (entry.term, entry.data.clone()) {
                let seen_term = seen.0;
                self.violation(
                    step,
                    format!(
                        "committed entry changed: member {id} has term {} at index {}, committed earlier with term {seen_term}{}",
                        entry.term,
                        entry.index,
                        if seen_term == entry.term { " and other data" } else { "" }
                    ),
                );
            }
        }
        self.checked.insert(id, checked.max(high));
    }

    /// Log matching between every two running members: where their logs hold
    /// an entry with the same index and term, they hold equal entries up to it.
    pub fn check_log_matching(&mut self, members: &[Member], step: u64) {
        let stores: Vec<(u64, &MemStore)> = members
            .iter()
            .filter_map(|m| m.replica().map(|r| (m.id(), r.store())))
            .collect();
        let mut found = Vec::new();
        for (i, (a, sa)) in stores.iter().enumerate() {
            for (b, sb) in &stores[i + 1..] {
                let low = sa
                    .first_index()
                    .unwrap_or(1)
                    .max(sb.first_index().unwrap_or(1));
                let high = sa
                    .last_index()
                    .unwrap_or(0)
                    .min(sb.last_index().unwrap_or(0));
                let (ea, eb) = (entries(sa, low, high + 1), entries(sb, low, high + 1));
                let Some(top) = ea.iter().zip(&eb).rposition(|(x, y)| x.term == y.term) else {
                    continue;
                };
                if let Some((x, _)) = ea[..=top]
                    .iter()
                    .zip(&eb[..=top])
                    .find(|(x, y)| (x.term, &x.data) != (y.term, &y.data))
                {
                    found.push(format!(
                        "log matching: members {a} and {b} agree at index {} but differ at index {}",
                        ea[top].index, x.index
                    ));
                }
            }
        }
        for what in found {
            self.violation(step, what);
        }
    }
}
