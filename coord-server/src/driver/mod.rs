//! The Raft driver: one thread owns `raft::RawNode` and is the only writer of the
//! state machine. It turns [`Input`]s (client writes and reads, peer messages,
//! ticks) into Raft steps, and runs the Ready recipe of raft-rs in one place
//! (`ready.rs`): send, apply, append, persist with one flush, send persisted
//! messages, advance. Everything that arrived while the previous Ready was being
//! flushed goes into the next one, which is where group commit comes from.
//!
//! The deterministic part (Raft node, apply, snapshots) is a sans-IO
//! [`Replica`]; [`Driver`] is the shell around it: a plain thread (not a tokio
//! task, because the log's fsync blocks), an inbox, a clock for ticks and
//! deadlines, and the registries of waiting requests. It also runs snapshot
//! jobs on threads of their own: serializing a large tree takes seconds, and a
//! Raft loop that stopped that long would miss heartbeats and cause elections.
//!
//! # Layout
//! - [`replica`]: [`Replica`], the sans-IO core; `ready.rs`: its Ready recipe,
//!   apply and snapshots.
//! - [`handle`]: what request handlers hold ([`DriverHandle`], [`Shared`]).
//! - [`inbox`]: where the driver thread waits, for inputs and for the frames
//!   of its peers' Raft connections, which it reads itself.
//! - [`waiters`]: writes waiting for their entry, by request id.
//! - [`reads`]: batched ReadIndex rounds.

pub mod handle;
pub mod inbox;
pub mod reads;
mod ready;

pub use ready::{Answers, BuiltSnapshot, SnapshotJob};
pub mod replica;
pub mod waiters;

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender};
use std::time::{Duration, Instant};

use raft::eraftpb::Message;
use tracing::{debug, error, info};

pub use handle::{Applied, DriverError, DriverHandle, Input, MemberStatus, RaftStatus, Shared};
pub use replica::{ProposeError, Readied, Replica, ReplicaConfig, SoftState};

use crate::storage::{LogStore, StoreError};
use inbox::{Inbox, Received};
use reads::ReadQueue;
use waiters::Waiters;

/// Where the driver sends Raft messages; the peer transport implements it (and
/// `Vec<Message>` collects them, for callers that route messages themselves).
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
    /// The driver thread could not wait for its inputs.
    #[error("waiting for inputs failed: {0}")]
    Inbox(#[from] std::io::Error),
}

/// The driver: a [`Replica`] on its own thread, fed by its [`Inbox`], ticked
/// by the clock, answering requests through [`Waiters`] and [`ReadQueue`].
pub struct Driver<S: LogStore, O: Outbox> {
    config: DriverConfig,
    replica: Replica<S>,
    inbox: Inbox,
    outbox: O,
    waiters: Waiters,
    reads: ReadQueue,
    next_request_id: u64,
    term: u64,
    built_snapshots: (SyncSender<BuiltSnapshot>, Receiver<BuiltSnapshot>),
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

impl DriverConfig {
    /// The settings of the replica inside the driver.
    pub fn replica(&self) -> ReplicaConfig {
        ReplicaConfig {
            id: self.id,
            election_ticks: self.election_ticks,
            randomized_election: true,
            heartbeat_ticks: self.heartbeat_ticks,
            snapshot_interval: self.snapshot_interval,
            snapshot_catchup_entries: self.snapshot_catchup_entries,
            max_dedup_clients: self.max_dedup_clients,
        }
    }
}

impl<S: LogStore, O: Outbox> Driver<S, O> {
    /// A driver over `store`, whose state machine in `shared` was restored from
    /// the store's snapshot.
    pub fn new(
        config: DriverConfig,
        store: S,
        shared: Arc<Shared>,
        inbox: Inbox,
        outbox: O,
        logger: &slog::Logger,
    ) -> Result<Self, DriverFatal> {
        let mut replica = Replica::new(config.replica(), store, shared, logger)?;
        replica.defer_snapshots();
        Ok(Self {
            next_request_id: random_u64(),
            reads: ReadQueue::new(random_u64()),
            config,
            replica,
            inbox,
            outbox,
            waiters: Waiters::default(),
            term: 0,
            built_snapshots: std::sync::mpsc::sync_channel(1),
        })
    }

    /// Runs until [`Input::Shutdown`] or until every handle is dropped.
    pub fn run(mut self) -> Result<(), DriverFatal> {
        let span = tracing::info_span!("node", id = self.config.id);
        let _entered = span.enter();
        info!("raft driver started");
        let mut next_tick = Instant::now() + self.config.tick;
        let mut received = Vec::new();
        let result = loop {
            // A Ready still pending (a lone member's commit comes in the Ready
            // after its own append) must not wait for the next input or tick.
            let wait = if self.replica.has_ready() {
                Duration::ZERO
            } else {
                next_tick.saturating_duration_since(Instant::now())
            };
            let open = match self.inbox.wait(wait, &mut received) {
                Ok(open) => open,
                Err(err) => break Err(err.into()),
            };
            if !self.handle_all(&mut received) || !open {
                break Ok(());
            }
            let now = Instant::now();
            if now >= next_tick {
                self.replica.tick();
                next_tick = now + self.config.tick;
                self.on_tick(now);
            }
            if let Some(ctx) = self.reads.start_round(now) {
                self.replica.read_index(ctx);
            }
            if let Err(err) = self.on_ready().and_then(|()| self.snapshots()) {
                break Err(err);
            }
        };
        self.waiters.fail_all(DriverError::Stopped);
        self.reads.fail_all(&DriverError::Stopped);
        self.replica.raw.mut_store().flush()?;
        info!("raft driver stopped");
        result
    }

    /// Handles what a wait brought; false when the driver must stop.
    fn handle_all(&mut self, received: &mut Vec<Received>) -> bool {
        let mut running = true;
        for item in received.drain(..) {
            match item {
                Received::Input(input) if running => running = self.handle(input),
                Received::Input(_) => {}
                Received::Peer(msg) => {
                    if let Err(err) = self.replica.step(msg) {
                        debug!(%err, "peer message not stepped");
                    }
                }
            }
        }
        running
    }

    /// Returns false when the driver must stop.
    fn handle(&mut self, input: Input) -> bool {
        match input {
            Input::Propose {
                command,
                term,
                reply,
            } => self.propose(command, term, reply),
            Input::ReadIndex { reply } => {
                self.reads
                    .push(reply, Instant::now() + self.config.request_timeout);
            }
            Input::Restored { msg, state } => {
                if let Err(err) = self.replica.step_restored(*msg, *state) {
                    debug!(%err, "snapshot not stepped");
                }
            }
            Input::Unreachable(id) => self.replica.report_unreachable(id),
            Input::SnapshotSent { to, ok } => self.replica.report_snapshot(to, ok),
            Input::Status { reply } => {
                let _ = reply.send(self.replica.status());
            }
            Input::Shutdown => return false,
        }
        true
    }

    fn propose(
        &mut self,
        command: coord_proto::raftlog::Command,
        term: Option<u64>,
        reply: tokio::sync::oneshot::Sender<Result<Applied, DriverError>>,
    ) {
        let request_id = self.next_request_id;
        self.next_request_id = self.next_request_id.wrapping_add(1);
        let proposed = match term {
            Some(term) => self.replica.propose_in_term(request_id, command, term),
            None => self.replica.propose(request_id, command),
        };
        match proposed {
            Ok(term) => {
                let deadline = Instant::now() + self.config.request_timeout;
                self.waiters.insert(request_id, reply, deadline, term);
            }
            Err(err) => {
                let _ = reply.send(Err(DriverError::Unavailable(err.to_string())));
            }
        }
    }

    fn on_tick(&mut self, now: Instant) {
        self.waiters.expire(now);
        let retry_after =
            self.config.tick * u32::try_from(2 * self.config.heartbeat_ticks + 1).unwrap_or(3);
        for ctx in self.reads.retry(now, retry_after) {
            debug!("read index round unanswered; re-issued");
            self.replica.read_index(ctx);
        }
    }

    /// Stores a snapshot whose serialization finished, and starts the next
    /// one when it is due (at most one at a time).
    fn snapshots(&mut self) -> Result<(), DriverFatal> {
        if let Ok(built) = self.built_snapshots.1.try_recv() {
            self.replica.finish_snapshot(built)?;
        }
        let Some(job) = self.replica.snapshot_job() else {
            return Ok(());
        };
        let done = self.built_snapshots.0.clone();
        let span = tracing::Span::current();
        let spawned = std::thread::Builder::new()
            .name("snapshot".into())
            .spawn(move || {
                let _entered = span.enter();
                let _ = done.send(job.run());
            });
        if let Err(err) = spawned {
            error!(%err, "no thread for the snapshot; retried at the next Ready");
            self.replica.abandon_snapshot();
        }
        Ok(())
    }

    /// Runs the replica's Ready recipe, answering reads and writes as it
    /// goes, then fails writes of older terms.
    fn on_ready(&mut self) -> Result<(), DriverFatal> {
        if !self.replica.has_ready() {
            return Ok(());
        }
        let mut answering = Answering {
            waiters: &mut self.waiters,
            reads: &mut self.reads,
        };
        let soft = self
            .replica
            .on_ready_answering(&mut self.outbox, &mut answering)?;
        if soft.term != self.term {
            if self.term != 0 {
                info!(
                    term = soft.term,
                    leader = soft.leader,
                    role = ?soft.role,
                    "term changed"
                );
            }
            self.term = soft.term;
            self.waiters.leader_changed(soft.term);
        }
        Ok(())
    }
}

/// The driver's registries as the Ready recipe's [`Answers`]: a write's
/// client hears of its entry, a read of its index, in the middle of the
/// Ready rather than after the flush of newer entries.
struct Answering<'a> {
    waiters: &'a mut Waiters,
    reads: &'a mut ReadQueue,
}

impl Answers for Answering<'_> {
    fn applied(&mut self, request_id: u64, applied: Applied) {
        self.waiters.complete(request_id, applied);
    }

    fn read_index(&mut self, ctx: Vec<u8>, index: u64) {
        self.reads.complete(&ctx, index);
    }
}
