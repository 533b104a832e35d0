//! Leases and the deletions that are not client ops: the lease table (id →
//! TTL), grant, revoke (deleting the lease's ephemeral nodes in the same entry),
//! TTL-node expiry and container cleanup. Deadlines are not here: keep-alives
//! are not replicated, the leader tracks deadlines in memory and proposes a
//! revoke when one passes.

use std::collections::{BTreeMap, BTreeSet};

use coord_proto::raftlog::{CommandResult, LeaseGranted, OpResults, command_result::Outcome};
use coord_proto::v1::EventType;

use super::error::ZnodeError;
use super::event::Event;
use super::kind::NodeKind;
use super::path;
use super::state::{StateMachine, failure};
use super::tree::Stamp;

/// Replicated leases: id → granted TTL in ms.
pub type LeaseTable = BTreeMap<u64, i64>;

fn ok() -> CommandResult {
    CommandResult {
        outcome: Some(Outcome::Ok(OpResults::default())),
    }
}

impl StateMachine {
    /// Every lease with its TTL.
    pub fn leases(&self) -> &LeaseTable {
        &self.leases
    }

    /// Grants a lease whose id is the granting entry's index.
    pub(super) fn grant(&mut self, index: u64, ttl_ms: i64) -> CommandResult {
        if ttl_ms <= 0 {
            return failure(
                ZnodeError::BadArguments {
                    reason: format!("lease TTL must be positive, not {ttl_ms} ms"),
                },
                -1,
            );
        }
        self.leases.insert(index, ttl_ms);
        CommandResult {
            outcome: Some(Outcome::Lease(LeaseGranted { id: index, ttl_ms })),
        }
    }

    /// Ends a lease and deletes its ephemeral nodes.
    pub(super) fn revoke(&mut self, id: u64, at: Stamp, events: &mut Vec<Event>) -> CommandResult {
        if self.leases.remove(&id).is_none() {
            return failure(ZnodeError::LeaseNotFound { id }, -1);
        }
        let paths = self.tree.ephemerals_of(id);
        for p in &paths {
            self.tree.delete_node(p, at, &mut Vec::new(), events);
        }
        self.cleanup_containers(parents_of(&paths), at, events);
        ok()
    }

    /// Deletes the listed TTL nodes that, at the command's time, are childless
    /// and unmodified for their TTL. Others are left alone (they changed since
    /// the leader looked).
    pub(super) fn expire_ttl(
        &mut self,
        paths: &[String],
        at: Stamp,
        events: &mut Vec<Event>,
    ) -> CommandResult {
        let mut deleted = Vec::new();
        for p in paths {
            let Some(node) = self.tree.get(p) else {
                continue;
            };
            let NodeKind::Ttl(ttl) = node.kind() else {
                continue;
            };
            if !node.has_children() && node.stat.mtime.saturating_add(ttl) <= at.time_ms {
                self.tree.delete_node(p, at, &mut Vec::new(), events);
                deleted.push(p.clone());
            }
        }
        self.cleanup_containers(parents_of(&deleted), at, events);
        ok()
    }

    /// Deletes containers among `candidates` that lost their last child,
    /// then their container parents in turn.
    pub(super) fn cleanup_containers(
        &mut self,
        mut candidates: BTreeSet<String>,
        at: Stamp,
        events: &mut Vec<Event>,
    ) {
        while let Some(p) = candidates.pop_last() {
            let Some(node) = self.tree.get(&p) else {
                continue;
            };
            if p == "/" || node.kind() != NodeKind::Container || node.has_children() {
                continue;
            }
            self.tree.delete_node(&p, at, &mut Vec::new(), events);
            candidates.insert(path::split(&p).0.to_owned());
        }
    }
}

/// Parents of the nodes deleted by `events`.
pub(super) fn deleted_parents(events: &[Event]) -> BTreeSet<String> {
    let deleted: Vec<String> = events
        .iter()
        .filter(|e| e.kind == EventType::NodeDeleted)
        .map(|e| e.path.clone())
        .collect();
    parents_of(&deleted)
}

fn parents_of(paths: &[String]) -> BTreeSet<String> {
    paths.iter().map(|p| path::split(p).0.to_owned()).collect()
}
