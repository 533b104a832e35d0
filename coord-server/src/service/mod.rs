//! The gRPC services of the shell.
//!
//! # Layout
//! - [`client`]: the znode RPCs of `coord.v1.Coord`; [`coord`] routes the trait.
//! - [`lease`]: the lease RPCs; [`watch`]: the watch stream.
//! - [`peer`]: `coord.peer.Peer`, Raft messages and snapshots from other members.
//! - [`errors`]: [`ServiceError`] and its mapping to gRPC statuses.
//! - [`status`]: the `Status` response.

pub mod client;
pub mod coord;
pub mod errors;
pub mod lease;
pub mod peer;
pub mod status;
pub mod watch;

pub use client::{CoordService, Limits};
pub use errors::ServiceError;
pub use peer::PeerService;
