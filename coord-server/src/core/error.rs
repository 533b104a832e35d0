//! The expected failures of znode operations. They are values, not panics: a
//! failed operation leaves the tree untouched and its error is replicated as the
//! command's result.

use coord_proto::v1::ErrorCode;

/// Why a znode operation was refused. Each variant has a stable [`ErrorCode`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ZnodeError {
    /// The node (or the parent of a node to create) does not exist.
    #[error("no node: {path}")]
    NoNode {
        /// The missing path.
        path: String,
    },
    /// A node already exists at the path to create.
    #[error("node exists: {path}")]
    NodeExists {
        /// The existing path.
        path: String,
    },
    /// The node to delete has children.
    #[error("node has children: {path}")]
    NotEmpty {
        /// The node that still has children.
        path: String,
    },
    /// The expected version did not match the node's version.
    #[error("bad version for {path}: expected {expected}, actual {actual}")]
    BadVersion {
        /// The node whose version differs.
        path: String,
        /// The version the request expected.
        expected: i32,
        /// The node's version.
        actual: i32,
    },
    /// Ephemeral nodes cannot have children.
    #[error("ephemeral node cannot have children: {path}")]
    NoChildrenForEphemerals {
        /// The ephemeral parent.
        path: String,
    },
    /// The path breaks ZooKeeper's path rules.
    #[error("invalid path {path:?}: {reason}")]
    InvalidPath {
        /// The rejected path.
        path: String,
        /// Which rule it breaks.
        reason: &'static str,
    },
    /// The lease does not exist (never granted, revoked or expired).
    #[error("no lease {id}")]
    LeaseNotFound {
        /// The lease asked for.
        id: u64,
    },
    /// The request is malformed in a way other than its path.
    #[error("bad arguments: {reason}")]
    BadArguments {
        /// What is wrong.
        reason: String,
    },
}

impl ZnodeError {
    /// The stable wire code of this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::NoNode { .. } => ErrorCode::NoNode,
            Self::NodeExists { .. } => ErrorCode::NodeExists,
            Self::NotEmpty { .. } => ErrorCode::NotEmpty,
            Self::BadVersion { .. } => ErrorCode::BadVersion,
            Self::NoChildrenForEphemerals { .. } => ErrorCode::NoChildrenForEphemerals,
            Self::InvalidPath { .. } => ErrorCode::InvalidPath,
            Self::BadArguments { .. } => ErrorCode::BadArguments,
            Self::LeaseNotFound { .. } => ErrorCode::LeaseNotFound,
        }
    }

    /// The path the error is about, if it is about one.
    pub fn path(&self) -> &str {
        match self {
            Self::NoNode { path }
            | Self::NodeExists { path }
            | Self::NotEmpty { path }
            | Self::BadVersion { path, .. }
            | Self::NoChildrenForEphemerals { path }
            | Self::InvalidPath { path, .. } => path,
            Self::BadArguments { .. } | Self::LeaseNotFound { .. } => "",
        }
    }
}
