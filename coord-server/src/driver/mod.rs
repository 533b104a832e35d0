//! The Raft driver: one thread owns `raft::RawNode` and is the only writer of the
//! state machine. It turns [`Input`]s (client writes and reads, peer messages,
//! ticks) into Raft steps, and runs the Ready recipe of raft-rs in one place
//! ([`ready`]): send, apply, append, persist with one flush, send persisted
//! messages, advance. Everything that arrived while the previous Ready was being
//! flushed goes into the next one, which is where group commit comes from.
//!
//! It runs on a plain thread, not a tokio task, because sled's flush blocks.
//!
//! # Layout
//! - [`handle`]: what request handlers hold ([`DriverHandle`], [`Shared`]).
//! - [`waiters`]: writes waiting for their entry, by request id.
//! - [`reads`]: batched ReadIndex rounds.
//! - [`ready`]: the Ready recipe, apply, snapshots.

pub mod handle;
pub mod reads;
mod ready;
pub mod waiters;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use coord_proto::raftlog::Proposal;
use coord_proto::v1::Role;
use prost::Message as _;
use raft::eraftpb::Message;
use raft::{RawNode, ReadOnlyOption, SnapshotStatus, StateRole};
use tracing::{debug, info};

pub use handle::{Applied, DriverError, DriverHandle, Input, MemberStatus, RaftStatus, Shared};

use crate::storage::{LogStore, StoreError};
use reads::ReadQueue;
use waiters::Waiters;

/// Where the driver sends Raft messages; the peer transport implements it.
pub trait Outbox: Send + 'static {
    /// Sends messages to their `to` members, best effort (Raft tolerates loss).
    fn send(&mut self, messages: Vec<Message>);
}

/// Timing and log-size settings of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// This member's id.
    pub id: u64,
    /// Raft tick length.
    pub tick: Duration,
    /// Ticks without a leader before an election.
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries between two snapshots.
    pub snapshot_interval: u64,
    /// Entries kept in the log behind a snapshot, for slightly lagging followers.
    pub snapshot_catchup_entries: u64,
    /// How long a write or read may wait before the client is told to retry.
    pub request_timeout: Duration,
    /// Clients remembered by the de-duplication table.
    pub max_dedup_clients: usize,
}

/// Why the driver stopped before being asked to.
#[derive(Debug, thiserror::Error)]
pub enum DriverFatal {
    /// Raft state could not be persisted: continuing could lose acknowledged writes.
    #[error("storage failed: {0}")]
    Store(#[from] StoreError),
    /// raft-rs refused an operation on its own state.
    #[error("raft: {0}")]
    Raft(#[from] raft::Error),
    /// A snapshot received from the leader does not restore.
    #[error("snapshot from the leader does not restore: {0}")]
    Snapshot(#[from] crate::core::SnapshotError),
}

/// The driver: owns the `RawNode`, runs on its own thread.
pub struct Driver<S: LogStore, O: Outbox> {
    config: DriverConfig,
    raw: RawNode<S>,
    shared: Arc<Shared>,
    inputs: Receiver<Input>,
    outbox: O,
    waiters: Waiters,
    reads: ReadQueue,
    next_request_id: u64,
    term: u64,
    snapshot_index: u64,
    snapshots_installed: u64,
}

/// A random u64 without a dependency: `RandomState` is seeded per process.
pub fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.finish()
}

impl<S: LogStore, O: Outbox> Driver<S, O> {
    /// A driver over `store`, whose state machine in `shared` was restored from
    /// the store's snapshot.
    pub fn new(
        config: DriverConfig,
        store: S,
        shared: Arc<Shared>,
        inputs: Receiver<Input>,
        outbox: O,
        logger: &slog::Logger,
    ) -> Result<Self, DriverFatal> {
        let snapshot_index = store.latest_snapshot().get_metadata().index;
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            heartbeat_tick: config.heartbeat_ticks,
            applied: snapshot_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            max_uncommitted_size: 256 << 20,
            ..raft::Config::default()
        };
        let voters = store.initial_state()?.conf_state.voters;
        let mut raw = RawNode::new(&raft_config, store, logger)?;
        if voters == [config.id] {
            // Alone: no reason to wait an election timeout before serving.
            raw.campaign()?;
        }
        Ok(Self {
            next_request_id: random_u64(),
            reads: ReadQueue::new(random_u64()),
            config,
            raw,
            shared,
            inputs,
            outbox,
            waiters: Waiters::default(),
            term: 0,
            snapshot_index,
            snapshots_installed: 0,
        })
    }

    /// Runs until [`Input::Shutdown`] or until every handle is dropped.
    pub fn run(mut self) -> Result<(), DriverFatal> {
        let span = tracing::info_span!("node", id = self.config.id);
        let _entered = span.enter();
        info!("raft driver started");
        let mut next_tick = Instant::now() + self.config.tick;
        let result = loop {
            let wait = next_tick.saturating_duration_since(Instant::now());
            match self.inputs.recv_timeout(wait) {
                Ok(input) => {
                    if !self.handle(input) {
                        break Ok(());
                    }
                    if !self.drain() {
                        break Ok(());
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => break Ok(()),
            }
            let now = Instant::now();
            if now >= next_tick {
                self.raw.tick();
                next_tick = now + self.config.tick;
                self.on_tick(now);
            }
            if let Some(ctx) = self.reads.start_round(now) {
                self.raw.read_index(ctx);
            }
            if let Err(err) = self.on_ready() {
                break Err(err);
            }
        };
        self.waiters.fail_all(DriverError::Stopped);
        self.reads.fail_all(&DriverError::Stopped);
        self.raw.mut_store().flush()?;
        info!("raft driver stopped");
        result
    }

    /// Handles everything already queued (bounded, so ticks keep their pace).
    fn drain(&mut self) -> bool {
        for _ in 0..4096 {
            match self.inputs.try_recv() {
                Ok(input) => {
                    if !self.handle(input) {
                        return false;
                    }
                }
                Err(_) => break,
            }
        }
        true
    }

    /// Returns false when the driver must stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Propose { command, reply } => self.propose(command, reply),
            Input::ReadIndex { reply } => {
                self.reads
                    .push(reply, Instant::now() + self.config.request_timeout);
            }
            Input::Peer(msg) => {
                if let Err(err) = self.raw.step(*msg) {
                    debug!(%err, "peer message not stepped");
                }
            }
            Input::Unreachable(id) => self.raw.report_unreachable(id),
            Input::SnapshotSent { to, ok } => {
                let status = if ok {
                    SnapshotStatus::Finish
                } else {
                    SnapshotStatus::Failure
                };
                self.raw.report_snapshot(to, status);
            }
            Input::Status { reply } => {
                let _ = reply.send(self.status());
            }
            Input::Shutdown => return false,
        }
        true
    }

    fn propose(
        &mut self,
        command: coord_proto::raftlog::Command,
        reply: tokio::sync::oneshot::Sender<Result<Applied, DriverError>>,
    ) {
        if self.raw.raft.leader_id == raft::INVALID_ID {
            let _ = reply.send(Err(DriverError::Unavailable("no leader is known".into())));
            return;
        }
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let proposal = Proposal {
            origin: self.config.id,
            request_id,
            command: Some(command),
        };
        match self.raw.propose(Vec::new(), proposal.encode_to_vec()) {
            Ok(()) => {
                let deadline = Instant::now() + self.config.request_timeout;
                self.waiters
                    .insert(request_id, reply, deadline, self.raw.raft.term);
            }
            Err(err) => {
                let _ = reply.send(Err(DriverError::Unavailable(format!(
                    "proposal dropped: {err}"
                ))));
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.waiters.expire(now);
        let retry_after =
            self.config.tick * u32::try_from(2 * self.config.heartbeat_ticks + 1).unwrap_or(3);
        for ctx in self.reads.retry(now, retry_after) {
            self.raw.read_index(ctx);
        }
    }

    /// Publishes leader, term and role, and fails writes of older terms.
    fn publish_soft_state(&mut self) {
        let raft = &self.raw.raft;
        let role = role_of(raft.state);
        if raft.term != self.term {
            if self.term != 0 {
                info!(
                    term = raft.term,
                    leader = raft.leader_id,
                    ?role,
                    "term changed"
                );
            }
            self.term = raft.term;
            self.waiters.leader_changed(raft.term);
        }
        self.shared
            .publish_soft_state(raft.leader_id, raft.term, role);
    }

    fn status(&self) -> RaftStatus {
        let status = self.raw.status();
        let role = role_of(status.ss.raft_state);
        let leader = status.ss.leader_id;
        let store = self.raw.store();
        let mut members: Vec<MemberStatus> = self
            .raw
            .raft
            .prs()
            .conf()
            .to_conf_state()
            .voters
            .iter()
            .map(|&id| {
                let role = if id == self.config.id {
                    role
                } else if id == leader {
                    Role::Leader
                } else if leader != raft::INVALID_ID {
                    Role::Follower
                } else {
                    Role::Unknown
                };
                let match_index = status
                    .progress
                    .and_then(|p| p.get(id))
                    .map_or(0, |p| p.matched);
                MemberStatus {
                    id,
                    role,
                    match_index,
                }
            })
            .collect();
        members.sort_by_key(|m| m.id);
        RaftStatus {
            role,
            commit: status.hs.commit,
            first_index: store.first_index().unwrap_or(0),
            last_index: self.raw.raft.raft_log.last_index(),
            snapshot_index: self.snapshot_index,
            snapshots_installed: self.snapshots_installed,
            members,
        }
    }
}

fn role_of(state: StateRole) -> Role {
    match state {
        StateRole::Follower => Role::Follower,
        StateRole::Candidate => Role::Candidate,
        StateRole::PreCandidate => Role::PreCandidate,
        StateRole::Leader => Role::Leader,
    }
}
