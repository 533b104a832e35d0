//! The replicated state machine: `apply(index, command) -> (result, events)`, a
//! pure and deterministic function of the state and the command. Time comes
//! inside the command (stamped by the proposer) and the zxid is the Raft index,
//! so every replica computes the same tree, the same results and the same events.

use coord_proto::raftlog::{
    Command, CommandError, CommandResult, OpResults, command, command_result::Outcome,
};
use coord_proto::v1::{
    CheckResult, CreateMode, CreateOp, DeleteResult, Op, OpResult, op, op_result,
};

use super::dedup::{DedupTable, Lookup};
use super::error::ZnodeError;
use super::event::Event;
use super::kind::{MAX_TTL_MS, NodeKind};
use super::lease::{LeaseTable, deleted_parents};
use super::tree::{Stamp, Tree, Undo};

/// The znode tree, the leases and the de-duplication table, at one applied index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateMachine {
    pub(super) tree: Tree,
    pub(super) leases: LeaseTable,
    pub(super) dedup: DedupTable,
    pub(super) applied: u64,
}

impl StateMachine {
    /// An empty tree that remembers at most `max_clients` clients for retries.
    pub fn new(max_clients: usize) -> Self {
        Self {
            tree: Tree::new(),
            leases: LeaseTable::new(),
            dedup: DedupTable::new(max_clients),
            applied: 0,
        }
    }

    /// Raft index of the last applied entry.
    pub fn applied(&self) -> u64 {
        self.applied
    }

    /// The znode tree, for reads.
    pub fn tree(&self) -> &Tree {
        &self.tree
    }

    /// Number of clients in the de-duplication table.
    pub fn dedup_clients(&self) -> usize {
        self.dedup.len()
    }

    /// Digest of the tree and the lease table: equal on replicas that applied
    /// the same entries.
    pub fn digest(&self) -> u64 {
        self.leases.iter().fold(self.tree.digest(), |d, (id, ttl)| {
            let mut bytes = [0u8; 16];
            bytes[..8].copy_from_slice(&id.to_le_bytes());
            bytes[8..].copy_from_slice(&ttl.to_le_bytes());
            d.wrapping_add(super::digest::hash_bytes(&bytes))
        })
    }

    /// Records an entry that carries no command (a new leader's empty entry).
    pub fn apply_empty(&mut self, index: u64) {
        self.advance(index);
    }

    /// Applies the command of the entry at `index`, answering a retry from the
    /// de-duplication table instead of applying it twice. Returns the result
    /// and the changes it made, for watchers.
    pub fn apply(&mut self, index: u64, command: &Command) -> (CommandResult, Vec<Event>) {
        self.advance(index);
        let meta = command.meta.unwrap_or_default();
        match self.dedup.lookup(&meta) {
            Lookup::Duplicate(result) => return (result, Vec::new()),
            Lookup::Forgotten => {
                let reason = format!(
                    "write {} of client {:#x} was already acknowledged and forgotten",
                    meta.seq, meta.client_id
                );
                return (failure(ZnodeError::BadArguments { reason }, -1), Vec::new());
            }
            Lookup::New => {}
        }
        let stamp = Stamp {
            zxid: index,
            time_ms: command.time_ms,
        };
        let mut events = Vec::new();
        let result = match &command.lease {
            Some(command::Lease::LeaseGrant(g)) => self.grant(index, g.ttl_ms),
            Some(command::Lease::LeaseRevoke(r)) => self.revoke(r.id, stamp, &mut events),
            Some(command::Lease::ExpireTtl(e)) => self.expire_ttl(&e.paths, stamp, &mut events),
            None => self.execute(&command.ops, stamp, &mut events),
        };
        self.dedup.record(index, &meta, &result);
        (result, events)
    }

    fn advance(&mut self, index: u64) {
        assert!(
            index > self.applied,
            "entries are applied in order: index {index} after {}",
            self.applied
        );
        self.applied = index;
    }

    /// Runs every op or none: on the first failure the earlier ops are undone
    /// and their events dropped. Then containers that lost their last child go.
    fn execute(&mut self, ops: &[Op], stamp: Stamp, events: &mut Vec<Event>) -> CommandResult {
        let mut undo = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.execute_op(op, stamp, &mut undo, events) {
                Ok(result) => results.push(result),
                Err(err) => {
                    self.tree.rollback(undo);
                    events.clear();
                    let index = i32::try_from(i).unwrap_or(i32::MAX);
                    return failure(err, index);
                }
            }
        }
        self.cleanup_containers(deleted_parents(events), stamp, events);
        CommandResult {
            outcome: Some(Outcome::Ok(OpResults { results })),
        }
    }

    fn execute_op(
        &mut self,
        op: &Op,
        stamp: Stamp,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) -> Result<OpResult, ZnodeError> {
        let result = match &op.op {
            Some(op::Op::Create(create)) => {
                let kind = self.kind_of(create)?;
                op_result::Result::Create(self.tree.create(create, kind, stamp, undo, events)?)
            }
            Some(op::Op::Set(set)) => {
                op_result::Result::Set(self.tree.set(set, stamp, undo, events)?)
            }
            Some(op::Op::Delete(delete)) => {
                self.tree.delete(delete, stamp, undo, events)?;
                op_result::Result::Delete(DeleteResult {})
            }
            Some(op::Op::Check(check)) => {
                self.tree.check(check)?;
                op_result::Result::Check(CheckResult {})
            }
            None => {
                return Err(ZnodeError::BadArguments {
                    reason: "an op names no operation".to_owned(),
                });
            }
        };
        Ok(OpResult {
            result: Some(result),
        })
    }

    /// The kind a create makes, checking its lease or TTL.
    fn kind_of(&self, create: &CreateOp) -> Result<NodeKind, ZnodeError> {
        match create.mode() {
            CreateMode::Persistent | CreateMode::PersistentSequential => Ok(NodeKind::Persistent),
            CreateMode::Container => Ok(NodeKind::Container),
            CreateMode::Ephemeral | CreateMode::EphemeralSequential => {
                if self.leases.contains_key(&create.lease) {
                    Ok(NodeKind::Ephemeral(create.lease))
                } else {
                    Err(ZnodeError::LeaseNotFound { id: create.lease })
                }
            }
            CreateMode::PersistentWithTtl | CreateMode::PersistentSequentialWithTtl => {
                if (1..=MAX_TTL_MS).contains(&create.ttl_ms) {
                    Ok(NodeKind::Ttl(create.ttl_ms))
                } else {
                    Err(ZnodeError::BadArguments {
                        reason: format!(
                            "a TTL node needs 1 <= ttl_ms <= {MAX_TTL_MS}, not {}",
                            create.ttl_ms
                        ),
                    })
                }
            }
        }
    }
}

/// A failed command's result; `op_index` is the failing op of a multi.
pub fn failure(err: ZnodeError, op_index: i32) -> CommandResult {
    CommandResult {
        outcome: Some(Outcome::Error(CommandError {
            code: err.code() as i32,
            message: err.to_string(),
            op_index,
            path: err.path().to_owned(),
        })),
    }
}
