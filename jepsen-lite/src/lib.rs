//! jepsen-lite: checks coord's consistency promises under real faults (real
//! server processes, real kills, pauses and partitions) and, in deterministic
//! simulation, under faults no real run reaches in reasonable time.
//!
//! # Layout
//! - [`checker`]: linearizability (WGL) and set checkers.
//! - [`sim`]: the deterministic simulation of several members in one process.

pub mod checker;
pub mod sim;
