//! What the clients and the simulated lessor did with leases, and the final
//! lease checks: an acknowledged ephemeral create is present exactly while its
//! lease lives, no ephemeral outlives its lease, an ephemeral-sequential create
//! is applied at most once, and a retried grant creates one lease, the one
//! answered.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use coord_proto::raftlog::Proposal;
use coord_server::core::{NodeKind, StateMachine};
use coord_server::driver::Applied;
use prost::Message as _;
use serde::Serialize;

use super::ops::{self, Answer, OpKind};

/// Lease activity, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LeaseCounts {
    /// Grants answered.
    pub granted: u64,
    /// Grants answered after a retry (the same lease id must come back).
    pub grants_retried: u64,
    /// Leases whose client stopped keeping them alive.
    pub abandoned: u64,
    /// Revokes by their client, answered.
    pub revoked: u64,
    /// Expiry revokes the simulated lessor proposed.
    pub expiries_proposed: u64,
    /// Expiry revokes applied (the lease was still there).
    pub expired: u64,
    /// Ephemeral creates acknowledged.
    pub ephemerals: u64,
    /// Ephemeral nodes found at the end.
    pub ephemerals_present: u64,
}

/// How one ephemeral create ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EphemeralCreate {
    /// The lease it named.
    pub lease: u64,
    /// Acknowledged: zxid and path created.
    pub acked: Option<(u64, String)>,
    /// Some attempt reached Raft (or it was acknowledged).
    pub maybe_applied: bool,
}

/// Everything observed about leases.
#[derive(Debug, Default)]
pub struct LeaseRecord {
    /// (client id, seq) of an answered grant → the lease id answered.
    pub grants: BTreeMap<(u64, u64), u64>,
    /// Leases someone proposed to revoke (they may be gone).
    pub revoking: BTreeSet<u64>,
    /// Leases whose revoke was applied, with the zxid.
    pub revoked: BTreeMap<u64, u64>,
    /// Leases the lessor decided to expire: a grant answered later is lost.
    pub doomed: BTreeSet<u64>,
    /// Per element, how its ephemeral create ended.
    pub ephemerals: BTreeMap<u64, EphemeralCreate>,
    /// Counters.
    pub counts: LeaseCounts,
}

/// What an answered lease operation means for the client's lease.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// The client now holds this lease.
    Now(u64),
    /// The client holds no lease any more.
    Dropped,
    /// No change.
    Same,
}

impl LeaseRecord {
    /// A lease operation of client `client_id` (seq `seq`, `attempts` tries)
    /// was applied; returns what the client holds now, or the violation.
    pub fn answered(
        &mut self,
        (client_id, seq, attempts): (u64, u64, u32),
        kind: OpKind,
        applied: &Applied,
    ) -> Result<Held, String> {
        let answer = ops::answer(&applied.result);
        match (kind, &answer) {
            (OpKind::Grant, &Answer::Lease { id }) => {
                self.counts.granted += 1;
                self.counts.grants_retried += u64::from(attempts > 1);
                self.grants.insert((client_id, seq), id);
                // Like a keep-alive answering TTL 0: expired before it was used.
                Ok(if self.doomed.contains(&id) {
                    Held::Dropped
                } else {
                    Held::Now(id)
                })
            }
            (OpKind::Revoke { lease }, Answer::Ok { .. }) => {
                self.counts.revoked += 1;
                self.revoked.insert(lease, applied.index);
                Ok(Held::Dropped)
            }
            (OpKind::Ephemeral { element, .. }, Answer::Ok { .. }) => {
                let path = ops::created_path(&applied.result).unwrap_or_default();
                self.counts.ephemerals += 1;
                if let Some(e) = self.ephemerals.get_mut(&element) {
                    e.acked = Some((applied.index, path.to_owned()));
                    e.maybe_applied = true;
                }
                Ok(Held::Same)
            }
            _ => Err(format!(
                "unexpected answer: client {client_id:#x} seq {seq} {kind:?} got {answer:?} at index {} (the client holds its lease)",
                applied.index
            )),
        }
    }

    /// A lease operation starts (ephemeral creates are recorded as failed
    /// until an attempt reaches Raft).
    pub fn started(&mut self, kind: OpKind) {
        match kind {
            OpKind::Ephemeral { lease, element, .. } => {
                let create = EphemeralCreate {
                    lease,
                    acked: None,
                    maybe_applied: false,
                };
                self.ephemerals.insert(element, create);
            }
            OpKind::Revoke { lease } => {
                self.revoking.insert(lease);
            }
            _ => {}
        }
    }

    /// An attempt of `kind` reached Raft.
    pub fn proposed(&mut self, kind: OpKind) {
        if let OpKind::Ephemeral { element, .. } = kind
            && let Some(e) = self.ephemerals.get_mut(&element)
        {
            e.maybe_applied = true;
        }
    }
}

/// One node found under [`ops::EPHEMERALS`].
struct Found {
    path: String,
    element: Option<u64>,
    kind: NodeKind,
}

fn found(state: &StateMachine) -> Vec<Found> {
    let tree = state.tree();
    tree.children(ops::EPHEMERALS)
        .into_iter()
        .filter_map(|name| {
            let path = format!("{}/{name}", ops::EPHEMERALS);
            let node = tree.get(&path)?;
            let element = std::str::from_utf8(&node.data).ok()?.parse().ok();
            Some(Found {
                element,
                kind: node.kind(),
                path,
            })
        })
        .collect()
}

/// Every node of `state` that is ephemeral although its lease is gone.
pub fn orphans(state: &StateMachine) -> Vec<String> {
    state
        .tree()
        .sorted_nodes()
        .filter_map(|(path, node)| match node.kind() {
            NodeKind::Ephemeral(l) if !state.leases().contains_key(&l) => {
                Some(format!("{path} (lease {l})"))
            }
            _ => None,
        })
        .collect()
}

/// The final lease checks on the most advanced replica's `state`; `seen` is
/// every lease id seen in a lease table and `entry` finds committed entries.
pub fn check(
    record: &LeaseRecord,
    state: &StateMachine,
    seen: &BTreeSet<u64>,
    entry: impl Fn(u64) -> Option<Bytes>,
    counts: &mut LeaseCounts,
) -> Vec<String> {
    let mut violations = Vec::new();
    let found = found(state);
    counts.ephemerals_present = found.len() as u64;
    let mut by_element: BTreeMap<u64, Vec<&Found>> = BTreeMap::new();
    for f in &found {
        match (f.element, f.kind) {
            (Some(element), NodeKind::Ephemeral(_)) => {
                by_element.entry(element).or_default().push(f);
            }
            _ => violations.push(format!(
                "ephemerals: {} is {:?}, not an ephemeral node of a client",
                f.path, f.kind
            )),
        }
    }
    for (element, nodes) in &by_element {
        let create = record.ephemerals.get(element);
        let lease = create.map(|c| c.lease);
        if nodes.len() > 1 {
            violations.push(format!(
                "exactly-once: ephemeral element {element} created {} times",
                nodes.len()
            ));
        }
        if create.is_none_or(|c| !c.maybe_applied) {
            violations.push(format!(
                "ephemerals: {} present although never proposed",
                nodes[0].path
            ));
        }
        if nodes
            .iter()
            .any(|n| Some(n.kind) != lease.map(NodeKind::Ephemeral))
        {
            violations.push(format!(
                "ephemerals: {} is {:?}, its create named lease {lease:?}",
                nodes[0].path, nodes[0].kind
            ));
        }
    }
    for (element, create) in &record.ephemerals {
        let Some((zxid, path)) = &create.acked else {
            continue;
        };
        if *zxid > state.applied() {
            continue;
        }
        let alive = state.leases().contains_key(&create.lease);
        let present = by_element
            .get(element)
            .is_some_and(|n| n.iter().any(|f| f.path == *path));
        if alive != present {
            violations.push(format!(
                "ephemerals: {path} (acknowledged at {zxid}) is {} but its lease {} is {}",
                if present { "present" } else { "missing" },
                create.lease,
                if alive { "alive" } else { "gone" }
            ));
        }
    }
    check_lease_table(record, state, &mut violations);
    check_grants(record, seen, entry, &mut violations);
    violations
}

/// Leases end only by a revoke, and a revoke applied ends them for good.
fn check_lease_table(record: &LeaseRecord, state: &StateMachine, violations: &mut Vec<String>) {
    for (&id, &zxid) in &record.revoked {
        if zxid <= state.applied() && state.leases().contains_key(&id) {
            violations.push(format!(
                "leases: lease {id} revoked at {zxid} is in the table at {}",
                state.applied()
            ));
        }
    }
    for (&(client, seq), &id) in &record.grants {
        let gone = !state.leases().contains_key(&id) && id <= state.applied();
        if gone && !record.revoking.contains(&id) && !record.doomed.contains(&id) {
            violations.push(format!(
                "leases: lease {id} (client {client:#x} seq {seq}) vanished without a revoke"
            ));
        }
    }
}

/// A retried grant is applied once: every lease seen was created by a
/// distinct (client, seq), and the one answered is that lease.
fn check_grants(
    record: &LeaseRecord,
    seen: &BTreeSet<u64>,
    entry: impl Fn(u64) -> Option<Bytes>,
    violations: &mut Vec<String>,
) {
    let mut creators: BTreeMap<(u64, u64), u64> = BTreeMap::new();
    for &id in seen {
        let Some(meta) = entry(id)
            .and_then(|data| Proposal::decode(data.as_ref()).ok())
            .and_then(|p| p.command)
            .and_then(|c| c.meta)
        else {
            continue;
        };
        let key = (meta.client_id, meta.seq);
        if let Some(other) = creators.insert(key, id) {
            violations.push(format!(
                "exactly-once: grant of client {:#x} seq {} created leases {other} and {id}",
                key.0, key.1
            ));
        }
        if let Some(&answered) = record.grants.get(&key)
            && answered != id
        {
            violations.push(format!(
                "exactly-once: grant of client {:#x} seq {} answered lease {answered}, created lease {id}",
                key.0, key.1
            ));
        }
    }
}
