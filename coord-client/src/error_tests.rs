//! Unit tests of the status-to-error mapping.

use super::*;
use bytes::Bytes;

fn status(code: Code, detail: ErrorDetail) -> tonic::Status {
    tonic::Status::with_details(code, "status message", Bytes::from(detail.encode_to_vec()))
}

fn detail(code: ErrorCode, message: &str, path: &str, op_index: i32) -> ErrorDetail {
    ErrorDetail {
        code: code.into(),
        message: message.to_owned(),
        op_index,
        path: path.to_owned(),
        leader: 0,
    }
}

#[test]
fn every_code_maps_to_its_variant() {
    let cases = [
        (ErrorCode::NoNode, Code::NotFound, "NoNode"),
        (ErrorCode::NodeExists, Code::AlreadyExists, "NodeExists"),
        (ErrorCode::NotEmpty, Code::FailedPrecondition, "NotEmpty"),
        (
            ErrorCode::BadVersion,
            Code::FailedPrecondition,
            "BadVersion",
        ),
        (
            ErrorCode::NoChildrenForEphemerals,
            Code::FailedPrecondition,
            "NoChildrenForEphemerals",
        ),
        (ErrorCode::InvalidPath, Code::InvalidArgument, "InvalidPath"),
        (ErrorCode::TooLarge, Code::ResourceExhausted, "TooLarge"),
        (
            ErrorCode::BadArguments,
            Code::InvalidArgument,
            "BadArguments",
        ),
        (ErrorCode::NotLeader, Code::Unavailable, "NotLeader"),
        (ErrorCode::Unavailable, Code::Unavailable, "Unavailable"),
        (ErrorCode::Timeout, Code::DeadlineExceeded, "Timeout"),
        (ErrorCode::LeaseNotFound, Code::NotFound, "LeaseNotFound"),
        (
            ErrorCode::TooManyWatches,
            Code::ResourceExhausted,
            "TooManyWatches",
        ),
        (ErrorCode::Internal, Code::Internal, "Internal"),
    ];
    for (code, grpc, name) in cases {
        let err = Error::from_status(&status(grpc, detail(code, "m", "/a", -1)), "e:1");
        assert_eq!(err.name(), name);
        assert_eq!(err.path(), Some("/a"));
        assert_eq!(err.op_index(), None);
        assert_eq!(err.to_string(), "m");
    }
}

#[test]
fn detail_fields_are_kept() {
    let mut d = detail(ErrorCode::BadVersion, "bad version for /x", "/x", 2);
    d.leader = 3;
    let err = Error::from_status(&status(Code::FailedPrecondition, d), "e:1");
    let expected = ErrorInfo {
        message: "bad version for /x".into(),
        path: Some("/x".into()),
        op_index: Some(2),
        leader: Some(3),
    };
    assert_eq!(err, Error::BadVersion(expected));
    assert!(!err.is_retryable());
}

#[test]
fn empty_message_falls_back_to_status_message_then_name() {
    let err = Error::from_status(
        &status(Code::NotFound, detail(ErrorCode::NoNode, "", "/a", -1)),
        "e",
    );
    assert_eq!(err.to_string(), "status message");
    let err = Error::NoNode(ErrorInfo {
        path: Some("/a".into()),
        ..ErrorInfo::default()
    });
    assert_eq!(err.to_string(), "no node: /a");
}

#[test]
fn retryable_codes() {
    for code in [
        ErrorCode::NotLeader,
        ErrorCode::Unavailable,
        ErrorCode::Timeout,
    ] {
        let err = Error::from_status(&status(Code::Unavailable, detail(code, "m", "", -1)), "e");
        assert!(err.is_retryable(), "{code:?}");
        assert_eq!(err.path(), None);
    }
}

#[test]
fn statuses_without_detail_are_classified_by_code() {
    let refused = tonic::Status::unavailable("tcp connect error");
    let err = Error::from_status(&refused, "127.0.0.1:1");
    assert_eq!(
        err,
        Error::Transport {
            endpoint: "127.0.0.1:1".into(),
            message: "tcp connect error".into()
        }
    );
    assert!(err.is_retryable());
    assert_eq!(err.to_string(), "127.0.0.1:1: tcp connect error");
    let reset = tonic::Status::unknown("transport error");
    assert_eq!(Error::from_status(&reset, "e").name(), "Transport");
    let expired = tonic::Status::cancelled("Timeout expired");
    assert_eq!(Error::from_status(&expired, "e").name(), "Timeout");
    let deadline = tonic::Status::deadline_exceeded("late");
    assert!(Error::from_status(&deadline, "e").is_retryable());
    let unimplemented = tonic::Status::unimplemented("no such method");
    let err = Error::from_status(&unimplemented, "e");
    assert_eq!(err.name(), "Internal");
    assert!(!err.is_retryable());
    assert_eq!(err.to_string(), "Unimplemented: no such method");
}

#[test]
fn undecodable_or_unspecified_detail_falls_back_to_code() {
    let garbage =
        tonic::Status::with_details(Code::NotFound, "gone", Bytes::from_static(b"\xff\xff"));
    assert_eq!(Error::from_status(&garbage, "e").name(), "NoNode");
    let unspecified = status(
        Code::AlreadyExists,
        detail(ErrorCode::Unspecified, "m", "", -1),
    );
    assert_eq!(Error::from_status(&unspecified, "e").name(), "NodeExists");
}
