//! Async Rust client of coord, a Raft-replicated ZooKeeper-like coordination
//! service, and (as the `coordctl` binary) its command line.
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::Error> {
//! use std::time::Duration;
//! use coord_client::{Client, CreateMode, Op, WatchItem, WatchOptions};
//!
//! let client = Client::connect(["127.0.0.1:2390", "127.0.0.1:2490"]).await?;
//! client.create("/app", "v1", CreateMode::Persistent).await?;
//! let (data, stat) = client.get("/app").await?;
//! client.multi(vec![Op::check("/app", stat.version), Op::set("/app", "v2", -1)]).await?;
//! // A stale-but-fast read from whichever member the client talks to:
//! let stale = client.serializable().get("/app").await?;
//!
//! // A session: a lease kept alive in the background; its ephemeral nodes
//! // vanish when it ends.
//! let session = client.session(Duration::from_secs(10)).await?;
//! client.create_ephemeral("/app/worker-1", "", &session).await?;
//!
//! // A one-shot watch set by a read, and a persistent recursive watch.
//! let (_data, _stat, changed) = client.get_watch("/app").await?;
//! let mut changes = client.watch("/app", WatchOptions { recursive: true, ..Default::default() }).await?;
//! while let Some(item) = changes.next().await {
//!     match item? {
//!         WatchItem::Event(e) => tracing::info!(kind = ?e.kind, path = e.path, zxid = e.zxid, "changed"),
//!         WatchItem::Resynced { .. } => { /* events were lost: re-read /app */ }
//!         WatchItem::Progress(_) => {}
//!     }
//! }
//! # let _ = (data, stale, changed);
//! # Ok(())
//! # }
//! ```
//!
//! Any member serves any request, so the client needs no leader discovery: it
//! fails over between the given endpoints on retryable errors, and tags every
//! write with `(client id, sequence)` so a retried write is applied once.
//! Sessions and watches run on streams that move to another member when
//! theirs fails; docs/client.md describes their guarantees.
//!
//! # Layout
//! - `client`: [`Client`] and [`ClientBuilder`]: endpoints, timeouts, status.
//! - `znode`: the znode operations (create, get, set, delete, exists,
//!   children, multi, sync), each also in a `_with_header` form.
//! - `lease`: lease grant, revoke, time-to-live, list, and the low-level
//!   [`LeaseKeepAlive`] stream.
//! - `session/`: [`Session`]: a lease kept alive by a task, with its
//!   [`SessionState`] (`tracker` is the pure state machine, `keeper` the task).
//! - `watch/`: one-shot and persistent watches over one stream per client
//!   (`registry`: resume points and de-duplication, pure; `mux`: the stream
//!   task and its failover; `handles`: [`OneShot`] and [`WatchStream`]).
//! - `recipes/`: coordination recipes (locks, election, discovery, queue,
//!   barriers, config), one module each.
//! - `shutdown`: [`shutdown::interrupted`], Ctrl-C or SIGTERM, for programs
//!   that must give back what they hold when told to stop.
//! - `bidi`: opening a gRPC bidirectional stream on one member, with a
//!   timeout (lease keep-alives; watches on a member without framed streams).
//! - `retry`: the failover loop with exponential backoff every call goes through.
//! - `unary`: the unary-call protocol's connection to one member, which every
//!   unary call uses (the watch stream uses the same framing, `watch::stream`;
//!   lease keep-alives use gRPC).
//! - `writes`: client id and per-write sequence numbers for exactly-once retries.
//! - `endpoint`: endpoint parsing and the lazily connecting gRPC channel and
//!   unary-protocol connection of each member.
//! - `types`: [`CreateOptions`], [`Created`], [`WithHeader`], the multi
//!   [`Op`]s and [`OpResult`]s.
//! - `error`: [`Error`] and the one mapping from gRPC statuses to it.
//! - `bin/coordctl/`: the command line, built on this crate.

mod bidi;
mod client;
mod endpoint;
mod error;
mod lease;
pub mod recipes;
mod retry;
mod session;
pub mod shutdown;
mod types;
mod unary;
mod watch;
mod writes;
mod znode;

pub use client::{Client, ClientBuilder};
pub use error::{Error, ErrorInfo};
pub use lease::{KeepAlive, Lease, LeaseInfo, LeaseKeepAlive, LeaseTimeToLive};
pub use session::{Session, SessionState};
pub use types::{CreateOptions, Created, Op, OpResult, WithHeader};
pub use watch::{OneShot, WatchEvent, WatchItem, WatchOptions, WatchStream};

/// The protocol types the API exposes, re-exported so users need not depend
/// on `coord-proto` themselves.
pub use coord_proto::v1::{
    CreateMode, ErrorCode, EventType, Header, Member, Role, Stat, StatusResponse,
};

/// The generated protobuf module, for callers that need a type not re-exported
/// above.
pub use coord_proto::v1 as proto;

/// Result of a client call.
pub type Result<T, E = Error> = std::result::Result<T, E>;
