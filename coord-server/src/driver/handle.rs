//! The async side of the driver: what the gRPC services hold. Requests travel to
//! the driver thread as [`Input`]s over a channel and come back on oneshots;
//! committed state is read directly from [`Shared`].

use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use coord_proto::raftlog::{Command, CommandResult};
use coord_proto::v1::{Header, Role};
use tokio::sync::{oneshot, watch};

use super::inbox::Mailbox;
use crate::core::StateMachine;
use crate::watch::{WatchConfig, WatchHub};

/// Why the driver could not serve a request. All are retryable by the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DriverError {
    /// No leader is known, or the request was dropped during an election.
    #[error("unavailable: {0}")]
    Unavailable(String),
    /// The request may or may not have been applied (retry with the same
    /// client id and sequence number to find out).
    #[error("timed out: {0}")]
    Timeout(String),
    /// The server is shutting down.
    #[error("the server is stopping")]
    Stopped,
}

/// A write that was committed and applied.
#[derive(Debug, Clone, PartialEq)]
pub struct Applied {
    /// Raft index of the entry (the write's zxid).
    pub index: u64,
    /// What the state machine answered.
    pub result: CommandResult,
}

/// One member as the driver sees it, for `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MemberStatus {
    /// Member id.
    pub id: u64,
    /// Role as known here.
    pub role: Role,
    /// Replicated index (known on the leader only).
    pub match_index: u64,
}

/// The driver's view of Raft, for `Status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RaftStatus {
    /// This member's role.
    pub role: Role,
    /// Commit index.
    pub commit: u64,
    /// First index in the log.
    pub first_index: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Index of the newest snapshot held.
    pub snapshot_index: u64,
    /// Snapshots received from a leader since start.
    pub snapshots_installed: u64,
    /// Every voter.
    pub members: Vec<MemberStatus>,
}

/// Messages to the driver thread.
#[derive(Debug)]
pub enum Input {
    /// Replicate and apply a write.
    Propose {
        /// The write.
        command: Command,
        /// Propose only while leading in this term, never forwarded.
        term: Option<u64>,
        /// Answered once applied here, or with why not.
        reply: oneshot::Sender<Result<Applied, DriverError>>,
    },
    /// Ask for a linearizable read index (batched ReadIndex).
    ReadIndex {
        /// Answered with an index safe to read at once applied.
        reply: oneshot::Sender<Result<u64, DriverError>>,
    },
    /// A leader's MsgSnapshot, with the state already restored from its data
    /// (so that the Raft thread does not spend the restore's seconds).
    Restored {
        /// The MsgSnapshot, without its data.
        msg: Box<raft::eraftpb::Message>,
        /// The state machine the snapshot holds.
        state: Box<StateMachine>,
    },
    /// A peer could not be reached.
    Unreachable(u64),
    /// The outcome of streaming a snapshot to a peer.
    SnapshotSent {
        /// The peer.
        to: u64,
        /// Whether the peer acknowledged the whole snapshot.
        ok: bool,
    },
    /// Describe the Raft state.
    Status {
        /// The answer.
        reply: oneshot::Sender<RaftStatus>,
    },
    /// Flush and stop the thread.
    Shutdown,
}

/// State the driver publishes for request handlers.
#[derive(Debug)]
pub struct Shared {
    /// This member's id.
    pub id: u64,
    /// The state machine; only the driver thread writes it.
    pub state: RwLock<StateMachine>,
    /// Watches of this member's clients, fed by the apply path.
    pub watches: WatchHub,
    applied: watch::Sender<u64>,
    local_reads_from: AtomicU64,
    leader: AtomicU64,
    term: AtomicU64,
    role: AtomicU8,
}

impl Shared {
    /// Shared state around a restored state machine.
    pub fn new(id: u64, state: StateMachine, watches: WatchConfig) -> Self {
        let applied = state.applied();
        Self {
            id,
            state: RwLock::new(state),
            watches: WatchHub::new(watches, applied),
            applied: watch::Sender::new(applied),
            local_reads_from: AtomicU64::new(u64::MAX),
            leader: AtomicU64::new(0),
            term: AtomicU64::new(0),
            role: AtomicU8::new(Role::Follower as u8),
        }
    }

    /// Read access to the state machine. A poisoned lock means the driver
    /// panicked mid-apply; the process is going down, so reads stop too.
    pub fn read(&self) -> RwLockReadGuard<'_, StateMachine> {
        self.state
            .read()
            .unwrap_or_else(|_| panic!("state machine lock poisoned: the driver panicked"))
    }

    /// Index applied so far.
    pub fn applied(&self) -> u64 {
        *self.applied.borrow()
    }

    /// Waits until `index` is applied here.
    pub async fn wait_applied(&self, index: u64) -> Result<(), DriverError> {
        let mut rx = self.applied.subscribe();
        rx.wait_for(|applied| *applied >= index)
            .await
            .map(|_| ())
            .map_err(|_| DriverError::Stopped)
    }

    /// Lets linearizable reads skip ReadIndex once `index` is applied: only
    /// for the sole voter of its cluster, which acknowledges no write before
    /// applying it, and whose every acknowledged write lies at or below the
    /// last index of its log at start-up (commits made before a crash may not
    /// have reached its durable commit index, so those entries are applied
    /// only once it commits again as leader).
    pub(super) fn allow_local_reads_from(&self, index: u64) {
        self.local_reads_from.store(index, Ordering::Release);
    }

    /// The applied index, when a read of the state machine as it stands is
    /// linearizable without a ReadIndex round (see
    /// [`Shared::allow_local_reads_from`]); `None` otherwise.
    pub fn local_read_index(&self) -> Option<u64> {
        let applied = self.applied();
        (applied >= self.local_reads_from.load(Ordering::Acquire)).then_some(applied)
    }

    pub(super) fn publish_applied(&self, index: u64) {
        self.applied.send_replace(index);
    }

    pub(super) fn publish_soft_state(&self, leader: u64, term: u64, role: Role) {
        self.leader.store(leader, Ordering::Release);
        self.term.store(term, Ordering::Release);
        self.role.store(role as u8, Ordering::Release);
    }

    /// Raft term known here.
    pub fn term(&self) -> u64 {
        self.term.load(Ordering::Acquire)
    }

    /// Leader id known here (0 = none).
    pub fn leader(&self) -> u64 {
        self.leader.load(Ordering::Acquire)
    }

    /// This member's role.
    pub fn role(&self) -> Role {
        Role::try_from(i32::from(self.role.load(Ordering::Acquire))).unwrap_or(Role::Unknown)
    }

    /// The response header, with `zxid` as given.
    pub fn header(&self, zxid: u64) -> Header {
        Header {
            zxid,
            leader: self.leader(),
            term: self.term.load(Ordering::Acquire),
            member: self.id,
        }
    }
}

/// How request handlers talk to the driver.
#[derive(Debug, Clone)]
pub struct DriverHandle {
    mailbox: Mailbox,
    shared: Arc<Shared>,
    request_timeout: Duration,
}

impl DriverHandle {
    /// A handle sending to `mailbox`; calls give up after `request_timeout`.
    pub fn new(mailbox: Mailbox, shared: Arc<Shared>, request_timeout: Duration) -> Self {
        Self {
            mailbox,
            shared,
            request_timeout,
        }
    }

    /// The published state.
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Sends an input without waiting for an answer (reports of the peer
    /// transport).
    pub fn send(&self, input: Input) -> Result<(), DriverError> {
        self.mailbox.send(input).map_err(|_| DriverError::Stopped)
    }

    /// Hands an inbound Raft connection, past its magic, to the driver
    /// thread, which reads its frames from then on (see [`super::inbox`]).
    pub fn add_peer_connection(&self, stream: std::net::TcpStream) -> Result<(), DriverError> {
        self.mailbox
            .add_connection(stream)
            .map_err(|_| DriverError::Stopped)
    }

    async fn call<T>(
        &self,
        make: impl FnOnce(oneshot::Sender<Result<T, DriverError>>) -> Input,
        what: &str,
    ) -> Result<T, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.send(make(tx))?;
        match tokio::time::timeout(self.request_timeout, rx).await {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(DriverError::Stopped),
            Err(_) => Err(DriverError::Timeout(format!(
                "{what} not answered within {:?}",
                self.request_timeout
            ))),
        }
    }

    /// Replicates a write and returns its result once applied on this member.
    pub async fn propose(&self, command: Command) -> Result<Applied, DriverError> {
        self.call(
            |reply| Input::Propose {
                command,
                term: None,
                reply,
            },
            "write",
        )
        .await
    }

    /// Replicates a write only if this member still leads in `term` when the
    /// driver takes it up: the lessor's expiries, decided by this leader's
    /// deadlines, are never forwarded to a later leader.
    pub async fn propose_in_term(
        &self,
        command: Command,
        term: u64,
    ) -> Result<Applied, DriverError> {
        self.call(
            |reply| Input::Propose {
                command,
                term: Some(term),
                reply,
            },
            "write",
        )
        .await
    }

    /// Waits until this member has applied everything committed before the call
    /// (ReadIndex), so a read after it is linearizable.
    pub async fn linearize(&self) -> Result<u64, DriverError> {
        if let Some(index) = self.shared.local_read_index() {
            return Ok(index);
        }
        let index = self
            .call(|reply| Input::ReadIndex { reply }, "read index")
            .await?;
        tokio::time::timeout(self.request_timeout, self.shared.wait_applied(index))
            .await
            .map_err(|_| {
                DriverError::Timeout(format!("apply of index {index} not seen in time"))
            })??;
        Ok(index)
    }

    /// The driver's view of Raft.
    pub async fn status(&self) -> Result<RaftStatus, DriverError> {
        let (tx, rx) = oneshot::channel();
        self.send(Input::Status { reply: tx })?;
        tokio::time::timeout(self.request_timeout, rx)
            .await
            .map_err(|_| DriverError::Timeout("status not answered".to_owned()))?
            .map_err(|_| DriverError::Stopped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shared() -> Shared {
        let watches = WatchConfig {
            history_events: 16,
            max_watches_per_stream: 16,
            stream_buffer: 16,
        };
        Shared::new(1, StateMachine::new(16), watches)
    }

    #[test]
    fn local_reads_only_once_allowed_and_caught_up() {
        let s = shared();
        assert_eq!(s.local_read_index(), None, "not a lone voter");
        s.allow_local_reads_from(5);
        s.publish_applied(4);
        assert_eq!(
            s.local_read_index(),
            None,
            "the log at start-up not applied"
        );
        s.publish_applied(5);
        assert_eq!(s.local_read_index(), Some(5));
        s.publish_applied(9);
        assert_eq!(s.local_read_index(), Some(9), "the state as it stands");
    }
}
