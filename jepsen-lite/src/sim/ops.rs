//! What simulated clients do, in coord's own terms: the commands they propose,
//! how they read the results, and how the final tree is read back. Registers
//! are znodes whose data is a decimal `i64`; the set is the children of
//! [`QUEUE`], created sequentially, each naming the (client, seq) that made it.
//! Clients also grant leases, create ephemeral nodes under [`EPHEMERALS`] with
//! them (data: the element naming the create) and revoke them.

use bytes::Bytes;
use coord_proto::raftlog::{
    Command, CommandResult, LeaseGrant, LeaseRevoke, command, command_result::Outcome,
};
use coord_proto::v1::{CreateMode, CreateOp, ErrorCode, Op, SetOp, WriteMeta, op, op_result};
use coord_server::core::StateMachine;

use crate::checker::set::Found;
use crate::rng::Rng;

/// The registers, created at setup with value 0 and version 0.
pub const REGISTERS: [&str; 2] = ["/r0", "/r1"];
/// Parent of the sequential creates.
pub const QUEUE: &str = "/q";
/// Parent of the ephemeral nodes.
pub const EPHEMERALS: &str = "/eph";
/// TTL of the leases granted (the simulation's lessor ignores it).
const LEASE_TTL_MS: i64 = 10_000;

/// One client operation, before its outcome is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpKind {
    /// Creates the registers and the queue parent (one multi, retried until it
    /// is applied).
    Setup,
    /// A linearizable read of a register.
    Read {
        /// Register index.
        reg: usize,
    },
    /// An unconditional set (version -1).
    Write {
        /// Register index.
        reg: usize,
        /// The value, unique per write.
        value: i64,
    },
    /// A set with an expected version.
    Cas {
        /// Register index.
        reg: usize,
        /// The version the client last saw.
        expected: i32,
        /// The value, unique per write.
        value: i64,
    },
    /// A sequential create whose data names `element`.
    Create {
        /// `(client index + 1) << 32 | seq`.
        element: u64,
    },
    /// Grants a lease.
    Grant,
    /// Revokes the client's lease.
    Revoke {
        /// The lease.
        lease: u64,
    },
    /// Creates an ephemeral node (sequential or named after `element`) owned
    /// by `lease`, whose data names `element`.
    Ephemeral {
        /// The owning lease.
        lease: u64,
        /// `(client index + 1) << 32 | seq`.
        element: u64,
        /// Ephemeral-sequential rather than ephemeral.
        sequential: bool,
    },
}

impl OpKind {
    /// True for the lease operations (grant, revoke, ephemeral create).
    pub fn is_lease(self) -> bool {
        matches!(
            self,
            Self::Grant | Self::Revoke { .. } | Self::Ephemeral { .. }
        )
    }
}

/// What a command's result says, reduced to what the checkers need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The command applied; `version` is the version a set produced.
    Ok {
        /// Version after a set (0 for other ops).
        version: i32,
    },
    /// A lease was granted.
    Lease {
        /// Its id.
        id: u64,
    },
    /// A set was refused with BadVersion.
    BadVersion,
    /// Any other error, which no simulated client should ever see.
    Error(String),
}

/// A random operation of client `index`, numbered `seq`; `versions` holds the
/// version the client last saw of each register, `lease` the lease it holds.
pub fn random_op(
    rng: &mut Rng,
    index: usize,
    seq: u64,
    versions: &[i32],
    lease: Option<u64>,
) -> OpKind {
    let reg = rng.index(REGISTERS.len());
    let unique = ((index as u64 + 1) << 32) | seq;
    let value = i64::try_from(unique).unwrap_or(i64::MAX);
    match (rng.below(100), lease) {
        (0..32, _) => OpKind::Read { reg },
        (32..54, _) => OpKind::Write { reg, value },
        (54..70, _) => OpKind::Cas {
            reg,
            expected: versions[reg],
            value,
        },
        (70..84, _) => OpKind::Create { element: unique },
        (_, None) => OpKind::Grant,
        (draw, Some(lease)) if draw < 96 => OpKind::Ephemeral {
            lease,
            element: unique,
            sequential: draw % 2 == 0,
        },
        (_, Some(lease)) => OpKind::Revoke { lease },
    }
}

fn set(reg: usize, value: i64, version: i32) -> Op {
    Op {
        op: Some(op::Op::Set(SetOp {
            path: REGISTERS[reg].to_owned(),
            data: Bytes::from(value.to_string()),
            version,
        })),
    }
}

fn create(path: String, data: Bytes, mode: CreateMode, lease: u64) -> Op {
    Op {
        op: Some(op::Op::Create(CreateOp {
            path,
            data,
            mode: mode as i32,
            lease,
            ..CreateOp::default()
        })),
    }
}

/// The path an ephemeral create asks for.
fn ephemeral_path(element: u64, sequential: bool) -> String {
    if sequential {
        format!("{EPHEMERALS}/s-")
    } else {
        format!("{EPHEMERALS}/e-{element}")
    }
}

/// The command a write-kind op proposes (`None` for reads).
pub fn command(kind: OpKind, meta: WriteMeta, now: u64) -> Option<Command> {
    let mut lease = None;
    let ops = match kind {
        OpKind::Read { .. } => return None,
        OpKind::Setup => REGISTERS
            .iter()
            .map(|r| (*r, "0"))
            .chain([(QUEUE, ""), (EPHEMERALS, "")])
            .map(|(p, data)| create(p.to_owned(), Bytes::from(data), CreateMode::Persistent, 0))
            .collect(),
        OpKind::Write { reg, value } => vec![set(reg, value, -1)],
        OpKind::Cas {
            reg,
            expected,
            value,
        } => vec![set(reg, value, expected)],
        OpKind::Create { element } => vec![create(
            format!("{QUEUE}/e-"),
            Bytes::from(element.to_string()),
            CreateMode::PersistentSequential,
            0,
        )],
        OpKind::Ephemeral {
            lease: id,
            element,
            sequential,
        } => {
            let mode = if sequential {
                CreateMode::EphemeralSequential
            } else {
                CreateMode::Ephemeral
            };
            let path = ephemeral_path(element, sequential);
            vec![create(path, Bytes::from(element.to_string()), mode, id)]
        }
        OpKind::Grant => {
            let grant = LeaseGrant {
                ttl_ms: LEASE_TTL_MS,
            };
            lease = Some(command::Lease::LeaseGrant(grant));
            Vec::new()
        }
        OpKind::Revoke { lease: id } => {
            let revoke = LeaseRevoke { id, expired: false };
            lease = Some(command::Lease::LeaseRevoke(revoke));
            Vec::new()
        }
    };
    Some(Command {
        meta: Some(meta),
        time_ms: i64::try_from(now).unwrap_or(i64::MAX),
        ops,
        lease,
    })
}

/// The expiry revoke a leader's lessor proposes (no client, so no
/// de-duplication: a revoke is idempotent).
pub fn expire(id: u64, now: u64) -> Command {
    Command {
        meta: None,
        time_ms: i64::try_from(now).unwrap_or(i64::MAX),
        ops: Vec::new(),
        lease: Some(command::Lease::LeaseRevoke(LeaseRevoke {
            id,
            expired: true,
        })),
    }
}

/// The path a create produced, from its result.
pub fn created_path(result: &CommandResult) -> Option<&str> {
    let Some(Outcome::Ok(ok)) = &result.outcome else {
        return None;
    };
    match &ok.results.first()?.result {
        Some(op_result::Result::Create(c)) => Some(&c.path),
        _ => None,
    }
}

/// Reads a command's result.
pub fn answer(result: &CommandResult) -> Answer {
    match &result.outcome {
        Some(Outcome::Ok(ok)) => {
            let version = ok
                .results
                .first()
                .and_then(|r| match &r.result {
                    Some(op_result::Result::Set(s)) => s.stat.map(|st| st.version),
                    _ => None,
                })
                .unwrap_or(0);
            Answer::Ok { version }
        }
        Some(Outcome::Error(e)) if e.code == ErrorCode::BadVersion as i32 => Answer::BadVersion,
        Some(Outcome::Error(e)) => Answer::Error(e.message.clone()),
        Some(Outcome::Lease(granted)) => Answer::Lease { id: granted.id },
        None => Answer::Error("no outcome".to_owned()),
    }
}

/// A register's value and version, if the register exists and holds a number.
pub fn read_register(state: &StateMachine, reg: usize) -> Option<(i64, i32)> {
    let node = state.tree().get(REGISTERS[reg])?;
    let value = std::str::from_utf8(&node.data).ok()?.parse().ok()?;
    Some((value, node.stat.version))
}

/// Every child of [`QUEUE`], for the set checker.
pub fn queue_contents(state: &StateMachine) -> Vec<Found> {
    state
        .tree()
        .children(QUEUE)
        .into_iter()
        .filter_map(|name| {
            let node = state.tree().get(&format!("{QUEUE}/{name}"))?;
            let element = std::str::from_utf8(&node.data).ok()?.parse().ok()?;
            Some(Found {
                element,
                name: name.to_owned(),
                czxid: node.stat.czxid,
                sequential: true,
            })
        })
        .collect()
}
