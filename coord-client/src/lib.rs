//! Async Rust client of coord, a Raft-replicated ZooKeeper-like coordination
//! service, and (as the `coordctl` binary) its command line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use coord_client::{Client, CreateMode, Op};
//!
//! let client = Client::connect(["127.0.0.1:2390", "127.0.0.1:2490"]).await?;
//! client.create("/app", "v1", CreateMode::Persistent).await?;
//! let (data, stat) = client.get("/app").await?;
//! client.multi(vec![Op::check("/app", stat.version), Op::set("/app", "v2", -1)]).await?;
//! // A stale-but-fast read from whichever member the client talks to:
//! let stale = client.serializable().get("/app").await?;
//! # let _ = (data, stale);
//! # Ok(())
//! # }
//! ```
//!
//! Any member serves any request, so the client needs no leader discovery: it
//! fails over between the given endpoints on retryable errors, and tags every
//! write with `(client id, sequence)` so a retried write is applied once.
//!
//! # Layout
//! - `client`: [`Client`] and [`ClientBuilder`]: endpoints, timeouts, status.
//! - `znode`: the znode operations (create, get, set, delete, exists,
//!   children, multi, sync), each also in a `_with_header` form.
//! - `retry`: the failover loop with exponential backoff every call goes through.
//! - `writes`: client id and per-write sequence numbers for exactly-once retries.
//! - `endpoint`: endpoint parsing and lazily connecting channels.
//! - `types`: [`Created`], [`WithHeader`], the multi [`Op`]s and [`OpResult`]s.
//! - `error`: [`Error`] and the one mapping from gRPC statuses to it.
//! - `bin/coordctl/`: the command line, built on this crate.

mod client;
mod endpoint;
mod error;
mod retry;
mod types;
mod writes;
mod znode;

pub use client::{Client, ClientBuilder};
pub use error::{Error, ErrorInfo};
pub use types::{Created, Op, OpResult, WithHeader};

/// The protocol types the API exposes, re-exported so users need not depend
/// on `coord-proto` themselves.
pub use coord_proto::v1::{CreateMode, ErrorCode, Header, Member, Role, Stat, StatusResponse};

/// The generated protobuf module, for callers that need a type not re-exported
/// above.
pub use coord_proto::v1 as proto;

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
