//! The coord server: a Raft-replicated, ZooKeeper-style znode tree served over
//! gRPC. A deterministic core inside an async shell (see `docs/architecture.md`).
//!
//! # Layout
//! - [`core`]: the znode tree, de-duplication table and `apply`; no I/O, no clock.
//! - [`storage`]: the Raft log and hard state (a write-ahead log), membership
//!   and snapshots (sled and files), or all in memory.
//! - [`driver`]: the thread that owns `raft::RawNode` and runs the Ready loop.
//! - [`transport`]: Raft messages between members over TCP, snapshots to peers.
//! - [`lessor`]: lease deadlines (leader only), keep-alive forwarding, expiry.
//! - [`listener`]: ports shared by gRPC and the plain-TCP protocols.
//! - [`watch`]: the watch hub: registered watches and the event history.
//! - [`service`]: the client (`coord.v1.Coord`) and peer gRPC services, and the
//!   unary-call protocol serving the same client handlers.
//! - [`config`]: the command line, [`server`]: assembling and running a member.
//! - [`logging`]: tracing setup and the raft-rs log bridge; [`clock`]: the
//!   wall clock (skewable for fault injection).

pub mod clock;
pub mod config;
pub mod core;
pub mod driver;
pub mod lessor;
pub mod listener;
pub mod logging;
pub mod server;
pub mod service;
pub mod storage;
pub mod transport;
pub mod watch;
