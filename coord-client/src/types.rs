//! Values the client returns and the ops of a multi, in a friendlier shape than
//! the generated protobuf types (no `Option` wrappers, no `oneof` modules).

use std::time::Duration;

use bytes::Bytes;
use coord_proto::v1::{self as pb, CreateMode, Header, Stat};

use crate::Error;

/// A successful result together with the header of the member that answered,
/// for callers that need the zxid, term or member id (tests, history checkers).
#[derive(Debug, Clone, PartialEq)]
pub struct WithHeader<T> {
    /// Facts about the answering member: applied zxid, leader, term, member id.
    pub header: Header,
    /// The result itself.
    pub value: T,
}

/// What a create made: the path actually created (with the sequential suffix,
/// if any) and the new node's stat.
#[derive(Debug, Clone, PartialEq)]
pub struct Created {
    /// The created path.
    pub path: String,
    /// The new node's stat.
    pub stat: Stat,
}

/// How to create a node: its [`CreateMode`] plus what that mode needs, the
/// owning lease of an ephemeral node or the TTL of a TTL node. One value covers
/// every mode so [`Client::create`](crate::Client::create) and [`Op::create`]
/// take the same argument; a bare [`CreateMode`] converts into it, and the
/// constructors below build the combinations the server accepts (others are
/// refused with `BadArguments`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CreateOptions {
    /// The node's mode.
    pub mode: CreateMode,
    /// Owning lease, for the ephemeral modes (see [`Lease`](crate::Lease) and
    /// [`Session`](crate::Session)).
    pub lease: Option<u64>,
    /// Time without modification (while childless) after which the server
    /// deletes the node, for the TTL modes. Sent in whole milliseconds.
    pub ttl: Option<Duration>,
}

impl CreateOptions {
    /// Options for `mode` with no lease and no TTL.
    pub fn new(mode: CreateMode) -> Self {
        Self {
            mode,
            lease: None,
            ttl: None,
        }
    }

    /// An ephemeral node owned by `lease`: deleted when the lease ends.
    pub fn ephemeral(lease: u64) -> Self {
        Self {
            lease: Some(lease),
            ..Self::new(CreateMode::Ephemeral)
        }
    }

    /// A sequential ephemeral node owned by `lease` (lock and election recipes).
    pub fn ephemeral_sequential(lease: u64) -> Self {
        Self {
            lease: Some(lease),
            ..Self::new(CreateMode::EphemeralSequential)
        }
    }

    /// A container: deleted by the server once its last child is deleted.
    pub fn container() -> Self {
        Self::new(CreateMode::Container)
    }

    /// A node deleted after `ttl` without modification while it has no children.
    pub fn ttl(ttl: Duration) -> Self {
        Self {
            ttl: Some(ttl),
            ..Self::new(CreateMode::PersistentWithTtl)
        }
    }

    /// A sequential TTL node.
    pub fn ttl_sequential(ttl: Duration) -> Self {
        Self {
            ttl: Some(ttl),
            ..Self::new(CreateMode::PersistentSequentialWithTtl)
        }
    }

    /// The wire form of the lease (0 = none).
    pub(crate) fn lease_id(&self) -> u64 {
        self.lease.unwrap_or(0)
    }

    /// The wire form of the TTL (0 = none), saturating.
    pub(crate) fn ttl_ms(&self) -> i64 {
        self.ttl.map_or(0, crate::lease::to_millis)
    }
}

impl From<CreateMode> for CreateOptions {
    fn from(mode: CreateMode) -> Self {
        Self::new(mode)
    }
}

/// One operation of a [`multi`](crate::Client::multi): all of them are applied,
/// or none.
#[derive(Debug, Clone, PartialEq)]
pub enum Op {
    /// Create a node.
    Create {
        /// Path (the prefix, for a sequential node).
        path: String,
        /// Initial data.
        data: Bytes,
        /// Mode, lease and TTL.
        options: CreateOptions,
    },
    /// Replace a node's data if its version matches (-1 = any).
    Set {
        /// Node to change.
        path: String,
        /// New data.
        data: Bytes,
        /// Expected version; -1 matches any version.
        version: i32,
    },
    /// Delete a childless node if its version matches (-1 = any).
    Delete {
        /// Node to delete.
        path: String,
        /// Expected version; -1 matches any version.
        version: i32,
    },
    /// Fail the whole multi unless the node exists with this version (-1 = any):
    /// how a write is fenced by a lock's token.
    Check {
        /// Node to check.
        path: String,
        /// Expected version; -1 only requires existence.
        version: i32,
    },
}

impl Op {
    /// A create op; `options` is a [`CreateMode`] or a [`CreateOptions`].
    pub fn create(
        path: impl Into<String>,
        data: impl Into<Bytes>,
        options: impl Into<CreateOptions>,
    ) -> Self {
        Self::Create {
            path: path.into(),
            data: data.into(),
            options: options.into(),
        }
    }

    /// A set op.
    pub fn set(path: impl Into<String>, data: impl Into<Bytes>, version: i32) -> Self {
        Self::Set {
            path: path.into(),
            data: data.into(),
            version,
        }
    }

    /// A delete op.
    pub fn delete(path: impl Into<String>, version: i32) -> Self {
        Self::Delete {
            path: path.into(),
            version,
        }
    }

    /// A check op.
    pub fn check(path: impl Into<String>, version: i32) -> Self {
        Self::Check {
            path: path.into(),
            version,
        }
    }
}

impl From<Op> for pb::Op {
    fn from(op: Op) -> Self {
        use pb::op::Op as Kind;
        let kind = match op {
            Op::Create {
                path,
                data,
                options,
            } => Kind::Create(pb::CreateOp {
                path,
                data,
                mode: options.mode.into(),
                lease: options.lease_id(),
                ttl_ms: options.ttl_ms(),
            }),
            Op::Set {
                path,
                data,
                version,
            } => Kind::Set(pb::SetOp {
                path,
                data,
                version,
            }),
            Op::Delete { path, version } => Kind::Delete(pb::DeleteOp { path, version }),
            Op::Check { path, version } => Kind::Check(pb::CheckOp { path, version }),
        };
        pb::Op { op: Some(kind) }
    }
}

/// The result of one op of a successful multi, in op order.
#[derive(Debug, Clone, PartialEq)]
pub enum OpResult {
    /// A create's result.
    Create(Created),
    /// A set's result: the node's new stat.
    Set(Stat),
    /// A delete succeeded.
    Delete,
    /// A check succeeded.
    Check,
}

impl TryFrom<pb::OpResult> for OpResult {
    type Error = Error;

    fn try_from(result: pb::OpResult) -> Result<Self, Error> {
        use pb::op_result::Result as Kind;
        Ok(match result.result {
            Some(Kind::Create(c)) => OpResult::Create(Created {
                path: c.path,
                stat: required(c.stat, "CreateResult.stat")?,
            }),
            Some(Kind::Set(s)) => OpResult::Set(required(s.stat, "SetResult.stat")?),
            Some(Kind::Delete(_)) => OpResult::Delete,
            Some(Kind::Check(_)) => OpResult::Check,
            None => return Err(malformed("OpResult.result")),
        })
    }
}

/// A field the server must always fill; its absence is a server bug.
pub(crate) fn required<T>(value: Option<T>, field: &str) -> Result<T, Error> {
    value.ok_or_else(|| malformed(field))
}

fn malformed(field: &str) -> Error {
    Error::Internal(crate::ErrorInfo::from_message(format!(
        "malformed response: {field} is missing"
    )))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_convert_to_proto() {
        let op: pb::Op = Op::create("/a", "x", CreateMode::PersistentSequential).into();
        let Some(pb::op::Op::Create(c)) = op.op else {
            panic!("not a create: {op:?}");
        };
        assert_eq!(
            (c.path.as_str(), &c.data[..], c.mode()),
            ("/a", &b"x"[..], CreateMode::PersistentSequential)
        );
        let op: pb::Op = Op::create("/e", "", CreateOptions::ephemeral(7)).into();
        let Some(pb::op::Op::Create(c)) = op.op else {
            panic!("not a create: {op:?}");
        };
        assert_eq!((c.mode(), c.lease, c.ttl_ms), (CreateMode::Ephemeral, 7, 0));
        let op: pb::Op =
            Op::create("/t", "", CreateOptions::ttl(Duration::from_millis(1500))).into();
        let Some(pb::op::Op::Create(c)) = op.op else {
            panic!("not a create: {op:?}");
        };
        assert_eq!(
            (c.mode(), c.lease, c.ttl_ms),
            (CreateMode::PersistentWithTtl, 0, 1500)
        );
        let op: pb::Op = Op::check("/lock", 3).into();
        assert_eq!(
            op.op,
            Some(pb::op::Op::Check(pb::CheckOp {
                path: "/lock".into(),
                version: 3
            }))
        );
    }

    #[test]
    fn results_convert_from_proto() {
        let stat = Stat {
            version: 2,
            ..Stat::default()
        };
        let set = pb::OpResult {
            result: Some(pb::op_result::Result::Set(pb::SetResult {
                stat: Some(stat),
            })),
        };
        assert_eq!(OpResult::try_from(set), Ok(OpResult::Set(stat)));
        let empty = pb::OpResult { result: None };
        assert_eq!(
            OpResult::try_from(empty).map_err(|e| e.name()),
            Err("Internal")
        );
        let no_stat = pb::OpResult {
            result: Some(pb::op_result::Result::Set(pb::SetResult { stat: None })),
        };
        assert!(OpResult::try_from(no_stat).is_err());
    }
}
