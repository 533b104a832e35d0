//! Protocol buffers of coord, compiled by `build.rs` with a vendored `protoc`.
//!
//! # Layout
//! - [`v1`]: the client API (`coord.v1.Coord` service, znode messages, error codes).
//! - [`peer`]: the member-to-member transport (Raft message batches, streamed snapshots).
//! - [`raftlog`]: the Raft log payload and snapshot formats; on-disk, so only ever extended.

/// The client API: what `coord-client` and any other gRPC client speaks.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("coord.v1");
}

/// The peer transport between members of one cluster.
#[allow(missing_docs, clippy::all)]
pub mod peer {
    tonic::include_proto!("coord.peer");
}

/// Formats of Raft log entries and snapshots.
#[allow(missing_docs, clippy::all)]
pub mod raftlog {
    tonic::include_proto!("coord.raftlog");
}
