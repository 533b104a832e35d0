//! The services of the shell: gRPC, and the unary-call protocol.
//!
//! # Layout
//! - [`client`]: the znode RPCs of `coord.v1.Coord`; [`coord`] routes the trait.
//! - [`lease`]: the lease RPCs; [`watch`]: the watch stream (gRPC and framed).
//! - [`peer`]: `coord.peer.Peer`, snapshots and lease questions from other members.
//! - [`errors`]: [`ServiceError`] and its mapping to gRPC statuses.
//! - [`status`]: the `Status` response.
//! - [`unary`]: the unary-call protocol, serving the same handlers over TCP.
//! - [`plain`]: routes the client port's plain-TCP connections (unary calls,
//!   framed watch streams) by their magic.

pub mod client;
pub mod coord;
pub mod errors;
pub mod lease;
pub mod peer;
pub mod plain;
pub mod status;
pub mod unary;
pub mod watch;

pub use client::{CoordService, Limits};
pub use errors::ServiceError;
pub use peer::{PeerService, Snapshots};
