//! The [`Client`] handle, its builder and the per-member channels it owns.
//!
//! The znode methods live in `znode.rs` and the retry loop in `retry.rs`; this
//! file only assembles the shared state they use.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use coord_proto::v1::{StatusRequest, StatusResponse};

use crate::Error;
use crate::endpoint::{self, ChannelConfig, Member};
use crate::watch::Watches;
use crate::writes::{Writes, random_client_id};

/// Timeouts of a client: how long one attempt and one whole call may take.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timeouts {
    pub(crate) channel: ChannelConfig,
    /// Bound on one attempt against one member.
    pub(crate) request: Duration,
    /// No new attempt starts after this much time since the call began.
    pub(crate) retry: Duration,
    /// Silence after which the watch stream is probed, then given up.
    pub(crate) watch_idle: Duration,
}

/// State shared by every clone of a [`Client`].
#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) members: Vec<Member>,
    /// Index of the member calls go to; moves on after a retryable failure.
    pub(crate) current: AtomicUsize,
    pub(crate) writes: Writes,
    pub(crate) timeouts: Timeouts,
    /// The watch stream's task, started by the first watch.
    pub(crate) watches: OnceLock<Watches>,
}

impl Inner {
    /// Index of the member calls go to first.
    pub(crate) fn current_index(&self) -> usize {
        self.current.load(Ordering::Relaxed) % self.members.len()
    }
}

/// A connection to a coord cluster. Cheap to clone (clones share channels,
/// the client id and the write sequence) and safe to use from many tasks.
///
/// Any member serves any request, so the client talks to one "current" member
/// and moves to the next one when a call fails in a retryable way (see
/// [`Error::is_retryable`]), retrying with backoff until the retry budget of
/// the call is spent. Writes are retried with the same sequence number, which
/// the server de-duplicates: a retried write is applied at most once.
///
/// Reads are linearizable unless the handle comes from
/// [`Client::serializable`].
#[derive(Debug, Clone)]
pub struct Client {
    pub(crate) inner: Arc<Inner>,
    pub(crate) serializable: bool,
}

/// Options of a [`Client`], from [`Client::builder`].
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build().await"]
pub struct ClientBuilder {
    endpoints: Vec<String>,
    timeouts: Timeouts,
}

impl ClientBuilder {
    /// Bound on establishing a TCP/HTTP2 connection to one member (default 2 s).
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.channel.connect_timeout = timeout;
        self
    }

    /// Bound on one attempt of a call against one member (default 5 s).
    pub fn request_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.request = timeout;
        self
    }

    /// Budget for retrying one call across members (default 15 s): no new
    /// attempt starts once it is spent, and the last error is returned.
    pub fn retry_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.retry = timeout;
        self
    }

    /// Silence on the watch stream after which the client asks the member for
    /// progress; after twice this much it moves the stream to the next member
    /// (default 3 s). Members send progress about once a second, so this is how
    /// fast a stopped or partitioned member is given up.
    pub fn watch_idle_timeout(mut self, timeout: Duration) -> Self {
        self.timeouts.watch_idle = timeout;
        self
    }

    /// Builds the client. Channels connect lazily, so this succeeds while
    /// members are down; it fails only on an empty list or a malformed endpoint.
    /// Must be called inside a tokio runtime.
    pub async fn build(self) -> Result<Client, Error> {
        if self.endpoints.is_empty() {
            return Err(Error::NoEndpoints);
        }
        let members = self
            .endpoints
            .iter()
            .map(|e| endpoint::member(e, self.timeouts.channel))
            .collect::<Result<Vec<_>, _>>()?;
        let client_id = random_client_id();
        tracing::debug!(client_id, endpoints = ?self.endpoints, "coord client built");
        Ok(Client {
            inner: Arc::new(Inner {
                members,
                current: AtomicUsize::new(0),
                writes: Writes::new(client_id),
                timeouts: self.timeouts,
                watches: OnceLock::new(),
            }),
            serializable: false,
        })
    }
}

impl Client {
    /// A client of the cluster reachable at `endpoints` (`host:port` each),
    /// with default timeouts.
    pub async fn connect(
        endpoints: impl IntoIterator<Item = impl Into<String>>,
    ) -> Result<Client, Error> {
        Self::builder(endpoints).build().await
    }

    /// A builder to set timeouts before connecting.
    pub fn builder(endpoints: impl IntoIterator<Item = impl Into<String>>) -> ClientBuilder {
        ClientBuilder {
            endpoints: endpoints.into_iter().map(Into::into).collect(),
            timeouts: Timeouts {
                channel: ChannelConfig {
                    connect_timeout: Duration::from_secs(2),
                },
                request: Duration::from_secs(5),
                retry: Duration::from_secs(15),
                watch_idle: Duration::from_secs(3),
            },
        }
    }

    /// A handle on the same connection whose reads (`get`, `exists`,
    /// `children`) are *serializable*: served from the contacted member's local
    /// state without a consensus round, so fast but possibly stale. Writes
    /// through it are unaffected.
    pub fn serializable(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            serializable: true,
        }
    }

    /// A handle on the same connection whose reads are linearizable (the default).
    pub fn linearizable(&self) -> Client {
        Client {
            inner: Arc::clone(&self.inner),
            serializable: false,
        }
    }

    /// True if this handle's reads are serializable.
    pub fn is_serializable(&self) -> bool {
        self.serializable
    }

    /// The random id that tags this client's writes for de-duplication (shared
    /// by all clones); history checkers use it to name the client.
    pub fn client_id(&self) -> u64 {
        self.inner.writes.client_id()
    }

    /// The endpoints, as given, in order.
    pub fn endpoints(&self) -> Vec<String> {
        self.inner.members.iter().map(|m| m.name.clone()).collect()
    }

    /// The endpoint the next call goes to first.
    pub fn current_endpoint(&self) -> String {
        self.inner.members[self.inner.current_index()].name.clone()
    }

    /// Status of whichever member answers (with failover).
    pub async fn status(&self) -> Result<StatusResponse, Error> {
        self.inner.call(StatusRequest {}).await
    }

    /// Status of exactly the member at `endpoint`: one attempt, no failover.
    /// The endpoint need not be one of the client's; if it is, its channel is
    /// reused.
    pub async fn status_of(&self, endpoint: &str) -> Result<StatusResponse, Error> {
        let wanted = endpoint.trim();
        let member = match self.inner.members.iter().find(|m| m.name == wanted) {
            Some(member) => member.clone(),
            None => endpoint::member(endpoint, self.inner.timeouts.channel)?,
        };
        self.inner.attempt(&member, &StatusRequest {}).await
    }
}
