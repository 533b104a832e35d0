//! jepsen-lite: checks coord's consistency promises under real faults (real
//! server processes, real kills, pauses and partitions) and, in deterministic
//! simulation, under faults no real run reaches in reasonable time.
//!
//! # Layout
//! - [`runner`]: one run: cluster, clients, nemesis, healing, final reads.
//! - [`workload`]: what clients do (register, set) and how it is checked.
//! - [`nemesis`]: fault kinds and the seeded fault schedule; [`fault`]: applying them.
//! - [`history`]: the JSON-lines history and joining invocations to completions.
//! - [`checker`]: linearizability (WGL) and set checkers.
//! - [`report`]: `results.json` and `report.html`.
//! - [`rng`]: the seeded random source of every choice.
//! - [`sim`]: the deterministic simulation of several members in one process.

pub mod checker;
pub mod fault;
pub mod history;
pub mod nemesis;
pub mod report;
pub mod rng;
pub mod runner;
pub mod sim;
pub mod workload;
