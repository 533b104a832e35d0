//! One member's deterministic core: the `RawNode`, the state machine it applies
//! to, and the Ready recipe (`ready.rs`). A [`Replica`] reads no clock (but to
//! log how long a snapshot took),
//! starts no thread, owns no channel and draws no random number: request ids and
//! read contexts come from the caller, time comes as calls to [`Replica::tick`]
//! (raft-rs itself randomizes election timeouts unless
//! [`ReplicaConfig::randomized_election`] is off).
//! The threaded [`super::Driver`] wraps it for the server; jepsen-lite's
//! simulation drives several of them in one process from a seed.

use std::sync::Arc;

use coord_proto::raftlog::{Command, Proposal};
use coord_proto::v1::Role;
use prost::Message as _;
use raft::eraftpb::Message;
use raft::{RawNode, ReadOnlyOption, SnapshotStatus, StateRole};

use super::handle::{Applied, MemberStatus, RaftStatus, Shared};
use super::{DriverFatal, Outbox};
use crate::core::StateMachine;
use crate::storage::LogStore;

/// Raft and log-size settings of one replica.
#[derive(Debug, Clone)]
pub struct ReplicaConfig {
    /// This member's id.
    pub id: u64,
    /// Ticks without a leader before an election.
    pub election_ticks: usize,
    /// Whether raft-rs randomizes the election timeout (up to twice
    /// `election_ticks`). raft-rs draws it from `thread_rng`, which nobody can
    /// seed, so a deterministic simulation turns it off and lets its seeded
    /// scheduler decide which member's ticks come first.
    pub randomized_election: bool,
    /// Ticks between leader heartbeats.
    pub heartbeat_ticks: usize,
    /// Applied entries between two snapshots.
    pub snapshot_interval: u64,
    /// Entries kept in the log behind a snapshot, for slightly lagging followers.
    pub snapshot_catchup_entries: u64,
    /// Clients remembered by the de-duplication table.
    pub max_dedup_clients: usize,
}

/// Ticks without a newly applied entry after which a member that applied a
/// sizeable part of an interval since its last snapshot takes one anyway.
const QUIET_SNAPSHOT_TICKS: u32 = 50;

/// That sizeable part: `1/QUIET_SNAPSHOT_PART` of the interval.
const QUIET_SNAPSHOT_PART: u64 = 8;

/// A snapshot waits until the log applied since the last one holds at
/// least `1/SNAPSHOT_LOG_PART` of that snapshot's bytes: serializing a
/// state costs in proportion to its size, so a large tree is snapshotted
/// less often and the cost per applied entry stays bounded, while the log
/// (disk use, replay on restart) stays a fraction of the snapshot.
const SNAPSHOT_LOG_PART: u64 = 2;

/// Bytes an entry adds to the log besides its data (index, term, framing).
pub(super) const ENTRY_OVERHEAD_BYTES: u64 = 32;

/// The log applied since the last snapshot, which decides when the next
/// one is due.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SinceSnapshot {
    /// Entries applied after the snapshot's index.
    pub entries: u64,
    /// Their bytes in the log (data plus [`ENTRY_OVERHEAD_BYTES`] each).
    pub log_bytes: u64,
    /// The snapshot's size (0 when there is none).
    pub snapshot_bytes: u64,
}

impl ReplicaConfig {
    /// Whether a snapshot is due by size: `snapshot_interval` entries, and a
    /// log of at least half the last snapshot's bytes (see
    /// [`SNAPSHOT_LOG_PART`]).
    pub fn snapshot_due(&self, since: SinceSnapshot) -> bool {
        self.reached(since, 1)
    }

    /// Whether a member that applied `since` after its last snapshot and
    /// then nothing for `quiet_ticks` ticks snapshots before
    /// [`snapshot_due`](Self::snapshot_due) says so: after a burst, so that a
    /// restart loads the burst from a snapshot instead of replaying it from
    /// the log (a burst of large entries, such as multis of many creates, is
    /// slow to replay however few entries it has). A burst is an eighth of
    /// what makes a snapshot due, in entries and in bytes: a few thousand
    /// small writes to a large tree do not make it write the whole tree
    /// again after each pause.
    pub fn snapshot_when_quiet(&self, since: SinceSnapshot, quiet_ticks: u32) -> bool {
        quiet_ticks >= QUIET_SNAPSHOT_TICKS && self.reached(since, QUIET_SNAPSHOT_PART)
    }

    /// Whether `since` holds `1/part` of what makes a snapshot due, in
    /// entries (at least one) and in log bytes.
    fn reached(&self, since: SinceSnapshot, part: u64) -> bool {
        since.entries >= (self.snapshot_interval / part).max(1)
            && since.log_bytes >= since.snapshot_bytes / SNAPSHOT_LOG_PART / part
    }
}

/// Why a write was not proposed. Either way it was not appended anywhere, so
/// it will not be applied (unless an earlier attempt with the same client id
/// and sequence number was).
#[derive(Debug, thiserror::Error)]
pub enum ProposeError {
    /// No leader is known to forward the proposal to.
    #[error("no leader is known")]
    NoLeader,
    /// raft-rs refused the proposal (a leader transfer, an election, a full log).
    #[error("proposal dropped: {0}")]
    Dropped(raft::Error),
    /// A proposal bound to a term of this member's leadership arrived after
    /// that term ended (it is never forwarded to another leader).
    #[error("no longer leading in term {0}")]
    NotLeaderInTerm(u64),
}

/// Who leads, as this member sees it after a Ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SoftState {
    /// Leader id (0 = none known).
    pub leader: u64,
    /// Current term.
    pub term: u64,
    /// This member's role.
    pub role: Role,
}

/// What one Ready produced besides the messages it sent: the caller answers its
/// waiting clients from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Readied {
    /// Results of this member's own proposals, by request id, in apply order.
    pub applied: Vec<(u64, Applied)>,
    /// Answered ReadIndex rounds: (context, index safe to read once applied).
    pub read_states: Vec<(Vec<u8>, u64)>,
    /// Leader, term and role after the Ready.
    pub soft_state: SoftState,
}

/// Lets the simulation collect a Ready's messages and route them itself.
impl Outbox for Vec<Message> {
    fn send(&mut self, messages: Vec<Message>) {
        self.extend(messages);
    }
}

/// A member's Raft node and state machine, without I/O of its own.
pub struct Replica<S: LogStore> {
    pub(super) config: ReplicaConfig,
    pub(super) raw: RawNode<S>,
    pub(super) shared: Arc<Shared>,
    pub(super) snapshot_index: u64,
    pub(super) snapshots_installed: u64,
    /// A snapshot job was handed out and not finished yet.
    pub(super) snapshot_pending: bool,
    /// Ticks since the applied index last moved, and the index then.
    pub(super) quiet: (u32, u64),
    /// The caller runs snapshot jobs itself ([`Replica::defer_snapshots`]).
    pub(super) snapshot_deferred: bool,
    /// Log bytes applied since start-up (see [`ENTRY_OVERHEAD_BYTES`]).
    pub(super) log_bytes: u64,
    /// `log_bytes` at the last snapshot's index, and that snapshot's size.
    pub(super) snapshot_mark: (u64, u64),
    /// The state of a leader's snapshot restored off this thread, and the
    /// snapshot's index, until the install it was stepped for takes it.
    pub(super) restored: Option<(u64, StateMachine)>,
}

impl<S: LogStore> Replica<S> {
    /// A replica over `store`, whose state machine in `shared` was restored from
    /// the store's snapshot. A member alone in its cluster campaigns at once.
    pub fn new(
        config: ReplicaConfig,
        store: S,
        shared: Arc<Shared>,
        logger: &slog::Logger,
    ) -> Result<Self, DriverFatal> {
        let snapshot_index = store.snapshot_metadata().index;
        let snapshot_bytes = store.snapshot_bytes();
        let max_election_tick = if config.randomized_election {
            0
        } else {
            config.election_ticks + 1
        };
        let raft_config = raft::Config {
            id: config.id,
            election_tick: config.election_ticks,
            max_election_tick,
            heartbeat_tick: config.heartbeat_ticks,
            applied: snapshot_index,
            max_size_per_msg: 1 << 20,
            max_inflight_msgs: 256,
            // Proposals stepped between two Readies go to each follower as
            // one append, not one append (and one reply) per proposal.
            batch_append: true,
            check_quorum: true,
            pre_vote: true,
            read_only_option: ReadOnlyOption::Safe,
            max_uncommitted_size: 256 << 20,
            ..raft::Config::default()
        };
        let voters = store.initial_state()?.conf_state.voters;
        let alone = voters == [config.id];
        if alone {
            shared.allow_local_reads_from(raft::Storage::last_index(&store)?);
        }
        let mut raw = RawNode::new(&raft_config, store, logger)?;
        if alone {
            // Alone: no reason to wait an election timeout before serving.
            raw.campaign()?;
        }
        Ok(Self {
            config,
            raw,
            shared,
            snapshot_index,
            snapshots_installed: 0,
            snapshot_pending: false,
            quiet: (0, snapshot_index),
            snapshot_deferred: false,
            log_bytes: 0,
            snapshot_mark: (0, snapshot_bytes),
            restored: None,
        })
    }

    /// The state published for readers (state machine, applied index, leader).
    pub fn shared(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The Raft node, for inspection (the simulation's invariant checks).
    pub fn raw(&self) -> &RawNode<S> {
        &self.raw
    }

    /// The store, for inspection (a simulated crash keeps its durable part).
    pub fn store(&self) -> &S {
        self.raw.store()
    }

    /// Advances Raft's logical clock by one tick.
    pub fn tick(&mut self) {
        self.raw.tick();
        let applied = self.shared.applied();
        self.quiet = if applied == self.quiet.1 {
            (self.quiet.0.saturating_add(1), applied)
        } else {
            (0, applied)
        };
    }

    /// Steps a message from a peer.
    pub fn step(&mut self, message: Message) -> Result<(), raft::Error> {
        self.raw.step(message)
    }

    /// Steps a leader's MsgSnapshot whose state was already restored from
    /// its data (by the peer service, off this thread): installing it then
    /// takes `state` instead of restoring. Kept only if raft-rs accepted the
    /// snapshot (it turns down one it no longer needs).
    pub fn step_restored(
        &mut self,
        message: Message,
        state: StateMachine,
    ) -> Result<(), raft::Error> {
        let index = message.get_snapshot().get_metadata().index;
        let stepped = self.raw.step(message);
        let pending = self.raw.raft.raft_log.unstable.snapshot.as_ref();
        if pending.is_some_and(|snapshot| snapshot.get_metadata().index == index) {
            self.restored = Some((index, state));
        }
        stepped
    }

    /// Proposes a write; once applied here, [`Readied::applied`] carries its
    /// result under `request_id`. Returns the term it was proposed in.
    pub fn propose(&mut self, request_id: u64, command: Command) -> Result<u64, ProposeError> {
        if self.raw.raft.leader_id == raft::INVALID_ID {
            return Err(ProposeError::NoLeader);
        }
        let proposal = Proposal {
            origin: self.config.id,
            request_id,
            command: Some(command),
        };
        self.raw
            .propose(Vec::new(), proposal.encode_to_vec())
            .map_err(ProposeError::Dropped)?;
        Ok(self.raw.raft.term)
    }

    /// Proposes a write only if this member leads in `term`, never forwarding
    /// it: a leader's own decisions (a lease expired by *its* deadlines) must
    /// not be carried out by a later leader, which made promises of its own.
    pub fn propose_in_term(
        &mut self,
        request_id: u64,
        command: Command,
        term: u64,
    ) -> Result<u64, ProposeError> {
        if self.raw.raft.state != StateRole::Leader || self.raw.raft.term != term {
            return Err(ProposeError::NotLeaderInTerm(term));
        }
        self.propose(request_id, command)
    }

    /// Starts a ReadIndex round; [`Readied::read_states`] answers it under `ctx`.
    /// raft-rs drops the round silently when no leader can answer it, so the
    /// caller re-issues unanswered rounds.
    pub fn read_index(&mut self, ctx: Vec<u8>) {
        self.raw.read_index(ctx);
    }

    /// Tells Raft that a message to `peer` could not be delivered.
    pub fn report_unreachable(&mut self, peer: u64) {
        self.raw.report_unreachable(peer);
    }

    /// Tells Raft whether a snapshot sent to `peer` arrived whole.
    pub fn report_snapshot(&mut self, peer: u64, ok: bool) {
        let status = if ok {
            SnapshotStatus::Finish
        } else {
            SnapshotStatus::Failure
        };
        self.raw.report_snapshot(peer, status);
    }

    /// From now on [`Replica::on_ready`] leaves snapshots to the caller, who
    /// takes [`Replica::snapshot_job`]s, runs them where it likes (the server:
    /// on a thread of their own, so a large snapshot does not stop heartbeats)
    /// and hands the results to [`Replica::finish_snapshot`].
    pub fn defer_snapshots(&mut self) {
        self.snapshot_deferred = true;
    }

    /// True when Raft has something for [`Replica::on_ready`].
    pub fn has_ready(&self) -> bool {
        self.raw.has_ready()
    }

    /// Leader, term and role as known now.
    pub fn soft_state(&self) -> SoftState {
        let raft = &self.raw.raft;
        SoftState {
            leader: raft.leader_id,
            term: raft.term,
            role: role_of(raft.state),
        }
    }

    /// The Raft view reported by `Status`.
    pub fn status(&self) -> RaftStatus {
        let status = self.raw.status();
        let role = role_of(status.ss.raft_state);
        let leader = status.ss.leader_id;
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
            first_index: self.raw.store().first_index().unwrap_or(0),
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

#[cfg(test)]
mod tests {
    use super::*;

    fn config(id: u64, snapshot_interval: u64) -> ReplicaConfig {
        ReplicaConfig {
            id,
            election_ticks: 10,
            randomized_election: false,
            heartbeat_ticks: 1,
            snapshot_interval,
            snapshot_catchup_entries: 10,
            max_dedup_clients: 16,
        }
    }

    #[test]
    fn a_quiet_member_snapshots_a_burst_but_not_a_trickle() {
        let c = config(1, 10_000);
        let small = |entries| SinceSnapshot {
            entries,
            log_bytes: entries * 100,
            snapshot_bytes: 1_000_000,
        };
        assert!(c.snapshot_when_quiet(small(1_250), QUIET_SNAPSHOT_TICKS));
        assert!(!c.snapshot_when_quiet(small(1_249), QUIET_SNAPSHOT_TICKS));
        assert!(!c.snapshot_when_quiet(small(9_000), QUIET_SNAPSHOT_TICKS - 1));
        let first = SinceSnapshot {
            entries: 1,
            log_bytes: 40,
            snapshot_bytes: 0,
        };
        assert!(config(1, 4).snapshot_when_quiet(first, QUIET_SNAPSHOT_TICKS));
    }

    #[test]
    fn a_burst_small_against_a_large_state_waits_for_the_size_rule() {
        let c = config(1, 10_000);
        let burst = |log_bytes| SinceSnapshot {
            entries: 2_000,
            log_bytes,
            snapshot_bytes: 160_000_000,
        };
        assert!(!c.snapshot_when_quiet(burst(400_000), QUIET_SNAPSHOT_TICKS));
        assert!(!c.snapshot_when_quiet(burst(9_999_999), QUIET_SNAPSHOT_TICKS));
        assert!(c.snapshot_when_quiet(burst(10_000_000), QUIET_SNAPSHOT_TICKS));
    }

    #[test]
    fn a_large_state_waits_for_a_log_of_half_its_size() {
        let c = config(1, 10_000);
        let since = |entries, log_bytes, snapshot_bytes| SinceSnapshot {
            entries,
            log_bytes,
            snapshot_bytes,
        };
        assert!(c.snapshot_due(since(10_000, 2_000_000, 1_000_000)));
        assert!(!c.snapshot_due(since(9_999, 2_000_000, 1_000_000)));
        assert!(c.snapshot_due(since(10_000, 2_000_000, 0)));
        assert!(!c.snapshot_due(since(100_000, 24_999_999, 50_000_000)));
        assert!(c.snapshot_due(since(100_000, 25_000_000, 50_000_000)));
    }
}
