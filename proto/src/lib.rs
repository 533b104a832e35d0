//! Protocol buffers of coord, compiled by `build.rs` with a vendored `protoc`.
//!
//! # Layout
//! - [`v1`]: the client API (`coord.v1.Coord` service, znode messages, error
//!   codes, the unary-call protocol's envelopes); [`Unary`] ties each unary
//!   request to its method and response.
//! - [`peer`]: the member-to-member transport (Raft message batches, streamed snapshots).
//! - [`frame`]: length-prefixed frames for the connections that are not gRPC.
//! - [`raftlog`]: the Raft log payload and snapshot formats; on-disk, so only ever extended.

pub mod frame;

/// The client API: what `coord-client` and any other gRPC client speaks.
#[allow(missing_docs, clippy::all)]
pub mod v1 {
    tonic::include_proto!("coord.v1");
}

/// A unary RPC of the `Coord` service as the unary-call protocol names it:
/// lets the client send, and the server answer, every unary call through one
/// generic path instead of one hand-written path per method.
pub trait Unary: prost::Message + Default + Clone + Send + 'static {
    /// The method's number on the wire.
    const METHOD: v1::UnaryMethod;
    /// The method's name, for logs and errors.
    const NAME: &'static str;
    /// What the method answers.
    type Response: prost::Message + Default + Send + 'static;
}

macro_rules! unary {
    ($($request:ident => $response:ident, $method:ident, $name:literal;)*) => {
        $(impl Unary for v1::$request {
            const METHOD: v1::UnaryMethod = v1::UnaryMethod::$method;
            const NAME: &'static str = $name;
            type Response = v1::$response;
        })*
    };
}

unary! {
    CreateRequest => CreateResponse, Create, "create";
    GetRequest => GetResponse, Get, "get";
    SetRequest => SetResponse, Set, "set";
    DeleteRequest => DeleteResponse, Delete, "delete";
    ExistsRequest => ExistsResponse, Exists, "exists";
    ChildrenRequest => ChildrenResponse, Children, "children";
    MultiRequest => MultiResponse, Multi, "multi";
    SyncRequest => SyncResponse, Sync, "sync";
    StatusRequest => StatusResponse, Status, "status";
    LeaseGrantRequest => LeaseGrantResponse, LeaseGrant, "lease_grant";
    LeaseRevokeRequest => LeaseRevokeResponse, LeaseRevoke, "lease_revoke";
    LeaseTimeToLiveRequest => LeaseTimeToLiveResponse, LeaseTimeToLive, "lease_time_to_live";
    LeaseListRequest => LeaseListResponse, LeaseList, "lease_list";
}

/// First bytes of a unary-call protocol connection. Its first byte is zero,
/// which no HTTP/2 client sends first (the preface starts with `P`), so the
/// protocol shares the client port with gRPC.
pub const UNARY_MAGIC: &[u8; 8] = b"\0coordU1";

/// Largest frame of the unary-call protocol accepted or sent.
pub const UNARY_MAX_FRAME_BYTES: usize = 64 << 20;

/// First bytes of a watch stream over coord's framing (`WatchRequest` frames
/// one way, `WatchResponse` frames the other, on the client port); the
/// member answers with the same bytes before its first response.
pub const WATCH_MAGIC: &[u8; 8] = b"\0coordW1";

/// Largest frame of a framed watch stream accepted or sent (a response
/// merges at most 256 events and 256 KiB of paths, plus their data).
pub const WATCH_MAX_FRAME_BYTES: usize = 64 << 20;

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
