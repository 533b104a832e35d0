//! What the simulated clients observed, in the checkers' terms: per register a
//! history of [`Entry<RegisterOp>`] with call and return steps, per set element
//! how its create ended, and the answers no correct cluster gives.

use std::collections::BTreeMap;

use coord_server::driver::Applied;
use serde::Serialize;

use super::leases::LeaseRecord;
use super::ops::{self, Answer, OpKind};
use crate::checker::linear::Entry;
use crate::checker::register::{CasOutcome, RegisterOp};
use crate::checker::set::AddStatus;

/// How operations ended, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct OpCounts {
    /// Answered (a refused compare-and-set counts: its outcome is known).
    pub ok: u64,
    /// Given up without any attempt having reached Raft: certainly not applied.
    pub failed: u64,
    /// Given up after some attempt reached Raft: may or may not be applied.
    pub unknown: u64,
    /// Attempts after the first (a write keeps its sequence number).
    pub retries: u64,
}

/// Everything the clients observed.
#[derive(Debug)]
pub struct Record {
    /// Per register: its operations with call and return steps.
    pub registers: Vec<Vec<Entry<RegisterOp>>>,
    /// Per set element: how its create ended, and its zxid when acknowledged.
    pub adds: BTreeMap<u64, (AddStatus, Option<u64>)>,
    /// Operation outcomes.
    pub counts: OpCounts,
    /// What happened to leases and ephemeral nodes.
    pub leases: LeaseRecord,
    /// Answers no correct cluster gives (e.g. an error on an unconditional set).
    pub violations: Vec<String>,
    /// True once the registers exist; no other operation starts before.
    pub setup_done: bool,
}

impl Record {
    /// An empty record for [`ops::REGISTERS`].
    pub fn new() -> Self {
        Self {
            registers: vec![Vec::new(); ops::REGISTERS.len()],
            adds: BTreeMap::new(),
            counts: OpCounts::default(),
            leases: LeaseRecord::default(),
            violations: Vec::new(),
            setup_done: false,
        }
    }

    /// A write-kind operation called at step `call` was applied; returns the
    /// register and version it produced, if it wrote one.
    pub fn answered(
        &mut self,
        client: usize,
        seq: u64,
        kind: OpKind,
        call: u64,
        now: u64,
        applied: &Applied,
    ) -> Option<(usize, i32)> {
        self.counts.ok += 1;
        let answer = ops::answer(&applied.result);
        match (kind, &answer) {
            (OpKind::Setup, Answer::Ok { .. }) => self.setup_done = true,
            (OpKind::Create { element }, Answer::Ok { .. }) => {
                let acknowledged = (AddStatus::Ok, Some(applied.index));
                self.adds.insert(element, acknowledged);
            }
            _ => match register_op(kind, &answer) {
                Some((reg, op)) => {
                    self.registers[reg].push(Entry {
                        call,
                        ret: Some(now),
                        op,
                    });
                    return written_version(&op).map(|v| (reg, v));
                }
                None => {
                    self.violations.push(format!(
                        "unexpected answer: client {client} seq {seq} {kind:?} got {answer:?} at index {}",
                        applied.index
                    ));
                    // A failed setup must still end, or no client ever starts.
                    self.setup_done |= kind == OpKind::Setup;
                }
            },
        }
        None
    }

    /// A read of register `reg`, served at `index` or later, found `read`.
    pub fn read(&mut self, reg: usize, call: u64, now: u64, index: u64, read: Option<(i64, i32)>) {
        self.counts.ok += 1;
        match read {
            Some((value, version)) => self.registers[reg].push(Entry {
                call,
                ret: Some(now),
                op: RegisterOp::Read { value, version },
            }),
            None => self.violations.push(format!(
                "register missing: {} not found at index {index}, after setup",
                ops::REGISTERS[reg]
            )),
        }
    }

    /// An operation was given up; `maybe_applied` when some attempt of it
    /// reached Raft.
    pub fn gave_up(&mut self, kind: OpKind, call: u64, maybe_applied: bool) {
        if !maybe_applied {
            self.counts.failed += 1;
            if let OpKind::Create { element } = kind {
                self.adds.insert(element, (AddStatus::Failed, None));
            }
            return;
        }
        self.counts.unknown += 1;
        let (reg, op) = match kind {
            OpKind::Write { reg, value } => (
                reg,
                RegisterOp::Write {
                    value,
                    version: None,
                },
            ),
            OpKind::Cas {
                reg,
                expected,
                value,
            } => (
                reg,
                RegisterOp::Cas {
                    expected,
                    value,
                    outcome: CasOutcome::Unknown,
                },
            ),
            OpKind::Create { element } => {
                self.adds.insert(element, (AddStatus::Unknown, None));
                return;
            }
            OpKind::Setup
            | OpKind::Read { .. }
            | OpKind::Grant
            | OpKind::Revoke { .. }
            | OpKind::Ephemeral { .. } => return,
        };
        self.registers[reg].push(Entry {
            call,
            ret: None,
            op,
        });
    }
}

/// The register operation an answered write or compare-and-set records, or
/// `None` when the answer is not one a correct cluster gives.
fn register_op(kind: OpKind, answer: &Answer) -> Option<(usize, RegisterOp)> {
    let cas = |reg, expected, value, outcome| {
        Some((
            reg,
            RegisterOp::Cas {
                expected,
                value,
                outcome,
            },
        ))
    };
    match (kind, answer) {
        (OpKind::Write { reg, value }, &Answer::Ok { version }) => Some((
            reg,
            RegisterOp::Write {
                value,
                version: Some(version),
            },
        )),
        (
            OpKind::Cas {
                reg,
                expected,
                value,
            },
            &Answer::Ok { version },
        ) => cas(reg, expected, value, CasOutcome::Applied(version)),
        (
            OpKind::Cas {
                reg,
                expected,
                value,
            },
            Answer::BadVersion,
        ) => cas(reg, expected, value, CasOutcome::Refused),
        _ => None,
    }
}

/// The version a register operation is known to have produced.
fn written_version(op: &RegisterOp) -> Option<i32> {
    match *op {
        RegisterOp::Write {
            version: Some(v), ..
        }
        | RegisterOp::Cas {
            outcome: CasOutcome::Applied(v),
            ..
        } => Some(v),
        _ => None,
    }
}
