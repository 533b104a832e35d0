//! Every error a client can see, and the one place that maps them to gRPC
//! statuses. The status carries an encoded `ErrorDetail` so clients can tell
//! `BadVersion` from `NotEmpty` without parsing messages (etcd's
//! `api/v3rpc/util.go` plays the same role).

use coord_proto::raftlog::CommandError;
use coord_proto::v1::{ErrorCode, ErrorDetail};
use prost::Message as _;
use tonic::{Code, Status};

use crate::core::ZnodeError;
use crate::driver::DriverError;

/// Why a client request failed.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ServiceError {
    /// The state machine refused the write (replicated result).
    #[error("{}", .0.message)]
    Command(CommandError),
    /// The request was refused before being proposed.
    #[error(transparent)]
    Znode(#[from] ZnodeError),
    /// Data or a request is over a configured limit.
    #[error("{what} is {size} bytes, over the limit of {limit}")]
    TooLarge {
        /// What is too large.
        what: &'static str,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The cluster could not serve the request now; retry.
    #[error(transparent)]
    Driver(#[from] DriverError),
}

impl ServiceError {
    /// The stable error code.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Command(e) => ErrorCode::try_from(e.code).unwrap_or(ErrorCode::Internal),
            Self::Znode(e) => e.code(),
            Self::TooLarge { .. } => ErrorCode::TooLarge,
            Self::Driver(DriverError::Unavailable(_) | DriverError::Stopped) => {
                ErrorCode::Unavailable
            }
            Self::Driver(DriverError::Timeout(_)) => ErrorCode::Timeout,
        }
    }

    /// The status sent to the client; `leader` is the leader known here.
    pub fn into_status(self, leader: u64) -> Status {
        let code = self.code();
        let (path, op_index) = match &self {
            Self::Command(e) => (e.path.clone(), e.op_index),
            Self::Znode(e) => (e.path().to_owned(), -1),
            _ => (String::new(), -1),
        };
        let message = format!("{}: {self}", code.as_str_name());
        let detail = ErrorDetail {
            code: code as i32,
            message: self.to_string(),
            op_index,
            path,
            leader,
        };
        Status::with_details(grpc_code(code), message, detail.encode_to_vec().into())
    }
}

/// gRPC status code of each error code.
pub fn grpc_code(code: ErrorCode) -> Code {
    match code {
        ErrorCode::NoNode => Code::NotFound,
        ErrorCode::NodeExists => Code::AlreadyExists,
        ErrorCode::NotEmpty | ErrorCode::BadVersion | ErrorCode::NoChildrenForEphemerals => {
            Code::FailedPrecondition
        }
        ErrorCode::InvalidPath | ErrorCode::BadArguments => Code::InvalidArgument,
        ErrorCode::TooLarge => Code::ResourceExhausted,
        ErrorCode::NotLeader | ErrorCode::Unavailable => Code::Unavailable,
        ErrorCode::Timeout => Code::DeadlineExceeded,
        ErrorCode::LeaseNotFound => Code::NotFound,
        ErrorCode::TooManyWatches => Code::ResourceExhausted,
        ErrorCode::Internal | ErrorCode::Unspecified => Code::Internal,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn detail(status: &Status) -> ErrorDetail {
        ErrorDetail::decode(status.details()).expect("detail decodes")
    }

    #[test]
    fn znode_errors_carry_code_and_path() {
        let status = ServiceError::from(ZnodeError::NoNode { path: "/a".into() }).into_status(2);
        assert_eq!(status.code(), Code::NotFound);
        let d = detail(&status);
        assert_eq!(d.code(), ErrorCode::NoNode);
        assert_eq!((d.path.as_str(), d.op_index, d.leader), ("/a", -1, 2));
        assert!(status.message().starts_with("NO_NODE"));
    }

    #[test]
    fn replicated_errors_keep_the_failing_op() {
        let err = ServiceError::Command(CommandError {
            code: ErrorCode::BadVersion as i32,
            message: "bad version".into(),
            op_index: 3,
            path: "/x".into(),
        });
        let status = err.into_status(0);
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert_eq!(detail(&status).op_index, 3);
    }

    #[test]
    fn driver_errors_are_retryable_codes() {
        let unavailable = ServiceError::from(DriverError::Unavailable("x".into())).into_status(0);
        assert_eq!(unavailable.code(), Code::Unavailable);
        let timeout = ServiceError::from(DriverError::Timeout("x".into())).into_status(0);
        assert_eq!(timeout.code(), Code::DeadlineExceeded);
        assert_eq!(detail(&timeout).code(), ErrorCode::Timeout);
    }

    #[test]
    fn grpc_codes_follow_the_documented_table() {
        let table = [
            (ErrorCode::NoNode, Code::NotFound),
            (ErrorCode::NodeExists, Code::AlreadyExists),
            (ErrorCode::NotEmpty, Code::FailedPrecondition),
            (ErrorCode::BadVersion, Code::FailedPrecondition),
            (ErrorCode::NoChildrenForEphemerals, Code::FailedPrecondition),
            (ErrorCode::InvalidPath, Code::InvalidArgument),
            (ErrorCode::BadArguments, Code::InvalidArgument),
            (ErrorCode::TooLarge, Code::ResourceExhausted),
            (ErrorCode::NotLeader, Code::Unavailable),
            (ErrorCode::Unavailable, Code::Unavailable),
            (ErrorCode::Timeout, Code::DeadlineExceeded),
            (ErrorCode::Internal, Code::Internal),
            (ErrorCode::LeaseNotFound, Code::NotFound),
            (ErrorCode::TooManyWatches, Code::ResourceExhausted),
        ];
        for (code, grpc) in table {
            assert_eq!(grpc_code(code), grpc, "{code:?}");
        }
    }
}
