//! The gRPC services of the shell.
//!
//! # Layout
//! - [`client`]: `coord.v1.Coord`, the znode API.
//! - [`peer`]: `coord.peer.Peer`, Raft messages and snapshots from other members.
//! - [`errors`]: [`ServiceError`] and its mapping to gRPC statuses.
//! - [`status`]: the `Status` response.

pub mod client;
pub mod errors;
pub mod peer;
pub mod status;

pub use client::{CoordService, Limits};
pub use errors::ServiceError;
pub use peer::PeerService;
