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

/// Writes one client may number ahead of its oldest write still in flight. A
/// member keeps the results of at most this many of a client's writes above
/// the oldest one the client still waits for, so a client that stays inside
/// the window can always learn the outcome of a write it retries (docs/api.md,
/// "Exactly-once writes"); `coord-client` makes new writes wait at its edge.
pub const WRITE_WINDOW: u64 = 1024;
