//! Watches: each member serves the watches of the clients connected to it,
//! from events its own apply path produces.
//!
//! - [`hub`]: [`WatchHub`], the hub's operations under its lock.
//! - `registry.rs`: the state behind the lock (watches, indexes, history).
//! - [`filter`]: which events each kind of watch reports.
//! - [`coalesce`]: a stream's queued event responses merged on the way out.

pub mod coalesce;
pub mod filter;
pub mod hub;
mod registry;

#[cfg(test)]
mod hub_tests;

pub use hub::{StreamId, WatchConfig, WatchHub};
