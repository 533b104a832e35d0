//! The replicated state machine: `apply(index, command) -> result`, a pure and
//! deterministic function of the state and the command. Time comes inside the
//! command (stamped by the proposer) and the zxid is the Raft index, so every
//! replica computes the same tree and the same results.

use coord_proto::raftlog::{
    Command, CommandError, CommandResult, OpResults, command_result::Outcome,
};
use coord_proto::v1::{CheckResult, DeleteResult, Op, OpResult, op, op_result};

use super::dedup::{DedupTable, Lookup};
use super::error::ZnodeError;
use super::tree::{Stamp, Tree, Undo};

/// The znode tree plus the de-duplication table, at one applied index.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StateMachine {
    pub(super) tree: Tree,
    pub(super) dedup: DedupTable,
    pub(super) applied: u64,
}

impl StateMachine {
    /// An empty tree that remembers at most `max_clients` clients for retries.
    pub fn new(max_clients: usize) -> Self {
        Self {
            tree: Tree::new(),
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

    /// Records an entry that carries no command (a new leader's empty entry).
    pub fn apply_empty(&mut self, index: u64) {
        self.advance(index);
    }

    /// Applies the command of the entry at `index`, answering a retry from the
    /// de-duplication table instead of applying it twice.
    pub fn apply(&mut self, index: u64, command: &Command) -> CommandResult {
        self.advance(index);
        let meta = command.meta.unwrap_or_default();
        match self.dedup.lookup(&meta) {
            Lookup::Duplicate(result) => return result,
            Lookup::Forgotten => {
                return failure(
                    ZnodeError::BadArguments {
                        reason: format!(
                            "write {} of client {:#x} was already acknowledged and forgotten",
                            meta.seq, meta.client_id
                        ),
                    },
                    -1,
                );
            }
            Lookup::New => {}
        }
        let stamp = Stamp {
            zxid: index,
            time_ms: command.time_ms,
        };
        let result = self.execute(&command.ops, stamp);
        self.dedup.record(index, &meta, &result);
        result
    }

    fn advance(&mut self, index: u64) {
        assert!(
            index > self.applied,
            "entries are applied in order: index {index} after {}",
            self.applied
        );
        self.applied = index;
    }

    /// Runs every op or none: on the first failure the earlier ops are undone.
    fn execute(&mut self, ops: &[Op], stamp: Stamp) -> CommandResult {
        let mut undo = Vec::new();
        let mut results = Vec::with_capacity(ops.len());
        for (i, op) in ops.iter().enumerate() {
            match self.execute_op(op, stamp, &mut undo) {
                Ok(result) => results.push(result),
                Err(err) => {
                    self.tree.rollback(undo);
                    let index = i32::try_from(i).unwrap_or(i32::MAX);
                    return failure(err, index);
                }
            }
        }
        CommandResult {
            outcome: Some(Outcome::Ok(OpResults { results })),
        }
    }

    fn execute_op(
        &mut self,
        op: &Op,
        stamp: Stamp,
        undo: &mut Vec<Undo>,
    ) -> Result<OpResult, ZnodeError> {
        let result = match &op.op {
            Some(op::Op::Create(create)) => {
                op_result::Result::Create(self.tree.create(create, stamp, undo)?)
            }
            Some(op::Op::Set(set)) => op_result::Result::Set(self.tree.set(set, stamp, undo)?),
            Some(op::Op::Delete(delete)) => {
                self.tree.delete(delete, stamp, undo)?;
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
