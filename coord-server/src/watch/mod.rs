//! Watches: each member serves the watches of the clients connected to it,
//! from events its own apply path produces.
//!
//! - [`hub`]: [`WatchHub`], registered watches and the bounded event history.
//! - [`filter`]: which events each kind of watch reports.

pub mod filter;
pub mod hub;

#[cfg(test)]
mod hub_tests;

pub use hub::{StreamId, WatchConfig, WatchHub};
