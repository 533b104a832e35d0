//! The one place where a gRPC [`tonic::Status`] becomes a typed [`Error`].
//!
//! coord puts a prost-encoded [`ErrorDetail`] in the `details` of every status it
//! returns, so the stable [`ErrorCode`] decides the variant. A status without a
//! decodable detail did not come from coord's handlers (tonic's own transport
//! errors, a proxy, a timeout): it is classified by its gRPC code alone.

use coord_proto::v1::{ErrorCode, ErrorDetail};
use prost::Message;
use tonic::Code;

/// What the server said about a failure, carried by every server-side variant of
/// [`Error`] so callers can show the message and act on the path or op index.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ErrorInfo {
    /// The server's human-readable message (e.g. `no node: /a`).
    pub message: String,
    /// The path the error is about, if any.
    pub path: Option<String>,
    /// For a multi: the index of the op that failed.
    pub op_index: Option<usize>,
    /// The leader known to the answering member, if it knew one.
    pub leader: Option<u64>,
}

impl ErrorInfo {
    /// An info with only a message: for errors the client itself detects.
    pub fn from_message(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            ..Self::default()
        }
    }

    /// The message, or `fallback` (with the path) when the server sent none.
    fn describe(&self, fallback: &str) -> String {
        match (&self.message, &self.path) {
            (m, _) if !m.is_empty() => m.clone(),
            (_, Some(path)) => format!("{fallback}: {path}"),
            (_, None) => fallback.to_owned(),
        }
    }
}

/// Why a call failed. One variant per [`ErrorCode`] of the server, plus the
/// failures that happen before or below the server (bad endpoints, transport).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The node (or the parent of a node to create) does not exist.
    #[error("{}", .0.describe("no node"))]
    NoNode(ErrorInfo),
    /// A node already exists at the path to create.
    #[error("{}", .0.describe("node exists"))]
    NodeExists(ErrorInfo),
    /// The node to delete has children.
    #[error("{}", .0.describe("node has children"))]
    NotEmpty(ErrorInfo),
    /// The expected version did not match.
    #[error("{}", .0.describe("bad version"))]
    BadVersion(ErrorInfo),
    /// Ephemeral nodes cannot have children.
    #[error("{}", .0.describe("ephemeral node cannot have children"))]
    NoChildrenForEphemerals(ErrorInfo),
    /// The path breaks ZooKeeper's path rules.
    #[error("{}", .0.describe("invalid path"))]
    InvalidPath(ErrorInfo),
    /// The data, request or response exceeds a configured limit.
    #[error("{}", .0.describe("too large"))]
    TooLarge(ErrorInfo),
    /// The request is malformed in a way other than its path.
    #[error("{}", .0.describe("bad arguments"))]
    BadArguments(ErrorInfo),
    /// The member could not reach a leader to serve the request (retryable).
    #[error("{}", .0.describe("not leader"))]
    NotLeader(ErrorInfo),
    /// The member or cluster cannot serve requests right now (retryable).
    #[error("{}", .0.describe("unavailable"))]
    Unavailable(ErrorInfo),
    /// No answer in time. For a write the outcome is unknown; retrying with the
    /// same sequence number is safe, which is what the client does.
    #[error("{}", .0.describe("timeout"))]
    Timeout(ErrorInfo),
    /// The lease does not exist: never granted, revoked or expired. Final: a
    /// lost lease does not come back.
    #[error("{}", .0.describe("lease not found"))]
    LeaseNotFound(ErrorInfo),
    /// The watch stream already holds as many watches as the server allows.
    /// Final: cancel watches (or use another client) before adding more.
    #[error("{}", .0.describe("too many watches"))]
    TooManyWatches(ErrorInfo),
    /// A bug or broken invariant on the server (or a malformed response).
    #[error("{}", .0.describe("internal error"))]
    Internal(ErrorInfo),
    /// A watch asked for the events after `after_zxid`, but the member's bounded
    /// event history no longer holds them all. Final for a one-shot watch:
    /// re-read and set a new watch. Persistent watches recover by themselves
    /// (see [`WatchItem::Resynced`](crate::WatchItem::Resynced)).
    #[error("events after zxid {after_zxid} were compacted; the oldest kept is {oldest_zxid}")]
    Compacted {
        /// The zxid the watch asked to start after.
        after_zxid: u64,
        /// The oldest zxid the member's history still holds.
        oldest_zxid: u64,
    },
    /// The connection to a member failed (refused, reset, broken): retryable.
    #[error("{endpoint}: {message}")]
    Transport {
        /// The endpoint the client was talking to.
        endpoint: String,
        /// What the transport reported.
        message: String,
    },
    /// An endpoint string is not a valid `host:port` or URI.
    #[error("invalid endpoint {endpoint:?}: {reason}")]
    InvalidEndpoint {
        /// The endpoint as given.
        endpoint: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The endpoint list was empty.
    #[error("no endpoints given")]
    NoEndpoints,
}

impl Error {
    /// The variant's name (`"NoNode"`, `"Transport"`...): stable, for scripts
    /// and for `coordctl`'s `Error: <Name>: <message>` lines.
    pub fn name(&self) -> &'static str {
        match self {
            Self::NoNode(_) => "NoNode",
            Self::NodeExists(_) => "NodeExists",
            Self::NotEmpty(_) => "NotEmpty",
            Self::BadVersion(_) => "BadVersion",
            Self::NoChildrenForEphemerals(_) => "NoChildrenForEphemerals",
            Self::InvalidPath(_) => "InvalidPath",
            Self::TooLarge(_) => "TooLarge",
            Self::BadArguments(_) => "BadArguments",
            Self::NotLeader(_) => "NotLeader",
            Self::Unavailable(_) => "Unavailable",
            Self::Timeout(_) => "Timeout",
            Self::LeaseNotFound(_) => "LeaseNotFound",
            Self::TooManyWatches(_) => "TooManyWatches",
            Self::Internal(_) => "Internal",
            Self::Compacted { .. } => "Compacted",
            Self::Transport { .. } => "Transport",
            Self::InvalidEndpoint { .. } => "InvalidEndpoint",
            Self::NoEndpoints => "NoEndpoints",
        }
    }

    /// True for failures that another attempt (on another member) may cure:
    /// `NotLeader`, `Unavailable`, `Timeout` and `Transport`.
    pub fn is_retryable(&self) -> bool {
        matches!(
            self,
            Self::NotLeader(_) | Self::Unavailable(_) | Self::Timeout(_) | Self::Transport { .. }
        )
    }

    /// What the server said, for the variants that come from the server.
    pub fn info(&self) -> Option<&ErrorInfo> {
        match self {
            Self::NoNode(i)
            | Self::NodeExists(i)
            | Self::NotEmpty(i)
            | Self::BadVersion(i)
            | Self::NoChildrenForEphemerals(i)
            | Self::InvalidPath(i)
            | Self::TooLarge(i)
            | Self::BadArguments(i)
            | Self::NotLeader(i)
            | Self::Unavailable(i)
            | Self::Timeout(i)
            | Self::LeaseNotFound(i)
            | Self::TooManyWatches(i)
            | Self::Internal(i) => Some(i),
            Self::Compacted { .. }
            | Self::Transport { .. }
            | Self::InvalidEndpoint { .. }
            | Self::NoEndpoints => None,
        }
    }

    /// The path the error is about, if the server named one.
    pub fn path(&self) -> Option<&str> {
        self.info().and_then(|i| i.path.as_deref())
    }

    /// For a failed multi: the index of the op that failed.
    pub fn op_index(&self) -> Option<usize> {
        self.info().and_then(|i| i.op_index)
    }

    /// Maps a status returned by `endpoint` to an error.
    pub(crate) fn from_status(status: &tonic::Status, endpoint: &str) -> Self {
        match decode_detail(status) {
            Some(detail) => from_detail(detail, status.message()),
            None => from_code(status, endpoint),
        }
    }

    /// Maps an [`ErrorDetail`] carried inside a stream message (a keep-alive
    /// answer, a watch response) to an error.
    pub(crate) fn from_detail(detail: ErrorDetail) -> Self {
        from_detail(detail, "")
    }
}

/// The status's [`ErrorDetail`], if it carries a decodable one with a known code.
fn decode_detail(status: &tonic::Status) -> Option<ErrorDetail> {
    if status.details().is_empty() {
        return None;
    }
    let detail = ErrorDetail::decode(status.details()).ok()?;
    match ErrorCode::try_from(detail.code) {
        Ok(ErrorCode::Unspecified) | Err(_) => None,
        Ok(_) => Some(detail),
    }
}

/// `fallback` is the status message, used when the detail carries none.
fn from_detail(detail: ErrorDetail, fallback: &str) -> Error {
    let code = detail.code();
    let message = if detail.message.is_empty() {
        fallback.to_owned()
    } else {
        detail.message
    };
    let info = ErrorInfo {
        message,
        path: Some(detail.path).filter(|p| !p.is_empty()),
        op_index: usize::try_from(detail.op_index).ok(),
        leader: Some(detail.leader).filter(|l| *l != 0),
    };
    match code {
        ErrorCode::NoNode => Error::NoNode(info),
        ErrorCode::NodeExists => Error::NodeExists(info),
        ErrorCode::NotEmpty => Error::NotEmpty(info),
        ErrorCode::BadVersion => Error::BadVersion(info),
        ErrorCode::NoChildrenForEphemerals => Error::NoChildrenForEphemerals(info),
        ErrorCode::InvalidPath => Error::InvalidPath(info),
        ErrorCode::TooLarge => Error::TooLarge(info),
        ErrorCode::BadArguments => Error::BadArguments(info),
        ErrorCode::NotLeader => Error::NotLeader(info),
        ErrorCode::Unavailable => Error::Unavailable(info),
        ErrorCode::Timeout => Error::Timeout(info),
        ErrorCode::LeaseNotFound => Error::LeaseNotFound(info),
        ErrorCode::TooManyWatches => Error::TooManyWatches(info),
        ErrorCode::Internal | ErrorCode::Unspecified => Error::Internal(info),
    }
}

/// Classifies a status that carries no coord detail by its gRPC code. Such a
/// status comes from tonic (connection failures surface as `Unavailable` or
/// `Unknown`, an expired request timeout as `Cancelled`) or from a proxy.
fn from_code(status: &tonic::Status, endpoint: &str) -> Error {
    let message = status.message().to_owned();
    let info = || ErrorInfo::from_message(format!("{}: {message}", code_name(status.code())));
    match status.code() {
        Code::Unavailable | Code::Unknown => Error::Transport {
            endpoint: endpoint.to_owned(),
            message,
        },
        Code::Internal if message.starts_with("h2 protocol error") => Error::Transport {
            endpoint: endpoint.to_owned(),
            message,
        },
        Code::DeadlineExceeded | Code::Cancelled => Error::Timeout(info()),
        Code::NotFound => Error::NoNode(info()),
        Code::AlreadyExists => Error::NodeExists(info()),
        Code::InvalidArgument => Error::BadArguments(info()),
        Code::ResourceExhausted | Code::OutOfRange => Error::TooLarge(info()),
        _ => Error::Internal(info()),
    }
}

fn code_name(code: Code) -> String {
    format!("{code:?}")
}

#[cfg(test)]
#[path = "error_tests.rs"]
mod tests;
