//! Coordination recipes built on the client's primitives (sequential and
//! ephemeral nodes, sessions, watches, conditional writes), as ZooKeeper's
//! recipes and Curator describe them. docs/recipes.md gives each recipe's
//! protocol and guarantees.
//!
//! # Layout
//! - `mutex`: an exclusive lock with a fencing token.
//! - `rwlock`: a shared/exclusive lock.
//! - `semaphore`: at most N holders.
//! - `election`: leader election: campaign, observe, resign.
//! - `discovery`: service registration and a live cache of instances.
//! - `queue`: a FIFO queue whose items are taken exactly once.
//! - `barrier`: a barrier and a double barrier.
//! - `config`: a typed JSON value with a live-updating handle.
//! - `support`: helpers of the discovery, queue, barrier and config recipes.
//! - `contend`: the sequential-ephemeral queue behind mutex, rwlock,
//!   semaphore and election (create once, wait for one predecessor, clean up).
//! - `guard`: [`LockGuard`] and [`HoldState`]: fencing token, fenced writes,
//!   and a task that reports a lost session or node at once.
//! - `lock_nodes`: their node operations: a create resent with one sequence
//!   number until its outcome is known, removal, persistent directories.

mod contend;
mod guard;
mod lock_nodes;

pub use guard::{HoldState, LockGuard};

pub mod barrier;
pub mod config;
pub mod discovery;
pub mod election;
pub mod mutex;
pub mod queue;
pub mod rwlock;
pub mod semaphore;
mod support;
