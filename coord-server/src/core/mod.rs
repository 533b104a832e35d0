//! The deterministic core: the znode tree, the leases, the de-duplication table and the apply
//! function, with snapshot and restore. No I/O, no clock, no randomness: time and
//! zxid arrive inside each command, so every replica computes the same state.
//! This is the part with the most unit and property tests.
//!
//! # Layout
//! - [`path`]: ZooKeeper path validation and splitting.
//! - [`kind`]: [`NodeKind`]: persistent, ephemeral, container, TTL.
//! - [`event`]: [`Event`], the changes watchers are told about.
//! - [`lease`]: the lease table, revocation, TTL expiry, container cleanup.
//! - [`error`]: [`ZnodeError`], the expected failures of znode operations.
//! - [`tree`]: [`Tree`], the znodes with their stats, and undo for multi.
//! - [`dedup`]: [`DedupTable`], results of recent writes for exactly-once retries.
//! - [`state`]: [`StateMachine`], `apply(index, command) -> result`.
//! - [`snapshot`]: encoding and restoring a [`StateMachine`].
//! - [`digest`]: the replica digest exposed in `Status`.

pub mod dedup;
pub mod digest;
pub mod error;
pub mod event;
pub mod kind;
pub mod lease;
pub mod path;
pub mod snapshot;
pub mod state;
pub mod tree;

#[cfg(test)]
mod lease_tests;
#[cfg(test)]
mod state_tests;
#[cfg(test)]
mod tree_tests;

pub use dedup::DedupTable;
pub use error::ZnodeError;
pub use event::Event;
pub use kind::NodeKind;
pub use snapshot::SnapshotError;
pub use state::StateMachine;
pub use tree::{Tree, Znode};
