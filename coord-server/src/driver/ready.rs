//! The Ready recipe of raft-rs, in one place and in its documented order:
//! send messages (and those of a follower's that promise nothing durable) →
//! install snapshot → apply committed entries (answering their clients at
//! once) → append entries → persist hard state → one flush (unless only the
//! commit index moved) → send persisted messages → advance → handle the
//! light ready → advance apply.
//! Then, when a snapshot is due (every `snapshot_interval` applied entries
//! once the log since the last one is half its size, or after a burst once
//! the member is quiet), snapshot the state machine
//! and compact the log: inline, or, when the driver defers snapshots,
//! serialized on its own thread from an O(1) copy of the state and stored
//! when done ([`Replica::finish_snapshot`]).

use std::time::{Duration, Instant};

use coord_proto::raftlog::Proposal;
use prost::Message as _;
use raft::eraftpb::{Entry, EntryType, Message, MessageType, Snapshot};
use tracing::{debug_span, error, info};

use super::handle::Applied;
use super::replica::{ENTRY_OVERHEAD_BYTES, Readied, Replica, SinceSnapshot, SoftState};
use super::{DriverFatal, Outbox};
use crate::core::{Event, StateMachine};
use crate::storage::{LogStore, SnapshotStager};

/// Where a Ready's answers go as soon as they are known, so that they need
/// not wait for the flush of the entries appended in the same Ready: a
/// committed entry is already durable on a quorum (raft-rs applies only
/// entries this member has persisted too), and a read index only waits for
/// its entry to be applied.
pub trait Answers {
    /// This member's own proposal `request_id` was applied.
    fn applied(&mut self, request_id: u64, applied: Applied);
    /// The ReadIndex round `ctx` may be read once `index` is applied.
    fn read_index(&mut self, ctx: Vec<u8>, index: u64);
}

/// Collects the answers, for callers that route them themselves.
impl Answers for Readied {
    fn applied(&mut self, request_id: u64, applied: Applied) {
        self.applied.push((request_id, applied));
    }

    fn read_index(&mut self, ctx: Vec<u8>, index: u64) {
        self.read_states.push((ctx, index));
    }
}

/// Whether a message of a member that does not lead may leave before this
/// Ready's flush. raft-rs holds all such messages until the flush; only
/// those that vouch for state must wait: an append's acknowledgement (its
/// entries count towards a commit) and a vote (it must not be cast twice in
/// a term). A heartbeat's answer only says "I know no later term than
/// yours" (all a ReadIndex round needs of it), and a forwarded proposal or
/// read request asks for something; holding them would make every read
/// and every write forwarded by a busy follower wait for that follower's
/// disk. etcd's raft goes further when its storage writes are
/// asynchronous: it holds back only append and vote responses.
fn promises_nothing_durable(msg: &Message) -> bool {
    matches!(
        msg.get_msg_type(),
        MessageType::MsgHeartbeatResponse | MessageType::MsgReadIndex | MessageType::MsgPropose
    )
}

impl<S: LogStore> Replica<S> {
    /// Handles one Ready, if raft-rs has one, collecting its answers (see
    /// [`Replica::on_ready_answering`]).
    pub fn on_ready(&mut self, outbox: &mut impl Outbox) -> Result<Readied, DriverFatal> {
        let mut readied = Readied {
            applied: Vec::new(),
            read_states: Vec::new(),
            soft_state: self.soft_state(),
        };
        readied.soft_state = self.on_ready_answering(outbox, &mut readied)?;
        Ok(readied)
    }

    /// Handles one Ready, if raft-rs has one: messages go to `outbox` at the
    /// points of the recipe where they may be sent, answers to `answers` as
    /// soon as they are known (entries committed before this Ready are
    /// answered before its flush). Returns the soft state after it.
    pub fn on_ready_answering(
        &mut self,
        outbox: &mut impl Outbox,
        answers: &mut impl Answers,
    ) -> Result<SoftState, DriverFatal> {
        if !self.raw.has_ready() {
            return Ok(self.soft_state());
        }
        let mut ready = self.raw.ready();
        if !ready.messages().is_empty() {
            outbox.send(ready.take_messages());
        }
        let (unpromised, persisted): (Vec<_>, Vec<_>) = ready
            .take_persisted_messages()
            .into_iter()
            .partition(promises_nothing_durable);
        if !unpromised.is_empty() {
            outbox.send(unpromised);
        }
        if !ready.snapshot().is_empty() {
            self.install_snapshot(ready.snapshot())?;
        }
        for state in ready.take_read_states() {
            answers.read_index(state.request_ctx, state.index);
        }
        self.apply(ready.take_committed_entries(), answers);
        if !ready.entries().is_empty() {
            self.raw.mut_store().append(ready.entries())?;
        }
        if let Some(hs) = ready.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        // Entries, a snapshot, a new term or vote must be durable before the
        // messages that depend on them go out. A hard state whose commit
        // alone moved need not be: the commit is known to a quorum, is
        // relearned from the leader after a crash, and is made durable by
        // the next flush (a snapshot flushes before it counts, so none is
        // ahead of the durable commit). etcd's WAL skips the same fsync.
        if ready.must_sync() {
            self.raw.mut_store().flush()?;
        }
        if !persisted.is_empty() {
            outbox.send(persisted);
        }
        let mut light = self.raw.advance(ready);
        if let Some(commit) = light.commit_index() {
            // Written now, made durable by the next flush; a snapshot is only
            // taken after such a flush, so no snapshot is ahead of the commit.
            let mut hs = self.raw.store().hard_state();
            hs.commit = commit;
            self.raw.mut_store().set_hard_state(&hs)?;
        }
        if !light.messages().is_empty() {
            outbox.send(light.take_messages());
        }
        self.apply(light.take_committed_entries(), answers);
        self.raw.advance_apply();
        let soft = self.soft_state();
        self.shared
            .publish_soft_state(soft.leader, soft.term, soft.role);
        self.maybe_snapshot()?;
        Ok(soft)
    }

    /// Applies committed entries; hands the results of this member's own
    /// proposals to `answers` as each is applied.
    fn apply(&mut self, entries: Vec<Entry>, answers: &mut impl Answers) {
        let Some(last) = entries.last().map(|e| e.index) else {
            return;
        };
        {
            let mut state = self
                .shared
                .state
                .write()
                .unwrap_or_else(|_| panic!("state machine lock poisoned"));
            for entry in entries {
                let _span = debug_span!("apply", index = entry.index, term = entry.term).entered();
                self.log_bytes += entry.data.len() as u64 + ENTRY_OVERHEAD_BYTES;
                let (answer, events) = self.apply_entry(&mut state, &entry);
                // Under the state lock: a watcher's event is queued before any
                // read can see the change.
                self.shared.watches.publish(entry.index, events);
                if let Some((request_id, applied)) = answer {
                    answers.applied(request_id, applied);
                }
            }
        }
        self.shared.publish_applied(last);
    }

    /// Applies one entry; returns this member's answer, if the entry was its
    /// proposal, and the events for watchers.
    fn apply_entry(
        &self,
        state: &mut StateMachine,
        entry: &Entry,
    ) -> (Option<(u64, Applied)>, Vec<Event>) {
        if entry.get_entry_type() != EntryType::EntryNormal {
            error!(
                index = entry.index,
                "membership change entries are not supported; skipped"
            );
            state.apply_empty(entry.index);
            return (None, Vec::new());
        }
        if entry.data.is_empty() {
            state.apply_empty(entry.index);
            return (None, Vec::new());
        }
        let proposal = match Proposal::decode(entry.data.as_ref()) {
            Ok(p) => p,
            Err(err) => {
                // Every replica fails the same way, so skipping keeps them equal.
                error!(index = entry.index, %err, "undecodable entry skipped");
                state.apply_empty(entry.index);
                return (None, Vec::new());
            }
        };
        let command = proposal.command.unwrap_or_default();
        let (result, events) = state.apply(entry.index, &command);
        let answer = (proposal.origin == self.config.id).then_some((
            proposal.request_id,
            Applied {
                index: entry.index,
                result,
            },
        ));
        (answer, events)
    }

    /// Replaces the state machine with a snapshot received from the leader:
    /// the state the peer service restored from it ([`Replica::step_restored`]),
    /// else one restored here from its data or, when the peer service wrote
    /// that into the store as it arrived (the data is then empty here), from
    /// the store's file. The state is restored before the store records the
    /// snapshot, so a snapshot that does not restore is never made this
    /// member's own.
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), DriverFatal> {
        let index = snapshot.get_metadata().index;
        let max_clients = self.config.max_dedup_clients;
        let restored = match self.restored.take() {
            Some((restored, state)) if restored == index => state,
            _ if snapshot.data.is_empty() => {
                let mut received = self.raw.store().received_snapshot(index)?;
                StateMachine::restore_from(&mut received, max_clients)?
            }
            _ => StateMachine::restore(&snapshot.data, max_clients)?,
        };
        self.raw.mut_store().install_snapshot(snapshot)?;
        let bytes = self.raw.store().snapshot_bytes();
        *self
            .shared
            .state
            .write()
            .unwrap_or_else(|_| panic!("state machine lock poisoned")) = restored;
        self.shared.watches.reset(index);
        self.shared.publish_applied(index);
        self.snapshot_index = index;
        self.snapshot_mark = (self.log_bytes, bytes);
        self.snapshots_installed += 1;
        info!(index, bytes, "installed snapshot from the leader");
        Ok(())
    }

    /// Snapshots the state machine and compacts the log when a snapshot is
    /// due, inline, unless the caller takes the serialization elsewhere (see
    /// [`Replica::defer_snapshots`]).
    fn maybe_snapshot(&mut self) -> Result<(), DriverFatal> {
        if self.snapshot_deferred {
            return Ok(());
        }
        match self.snapshot_job() {
            Some(job) => self.finish_snapshot(job.run()),
            None => Ok(()),
        }
    }

    /// A snapshot to serialize, when one is due (see
    /// [`ReplicaConfig::snapshot_due`] and
    /// [`ReplicaConfig::snapshot_when_quiet`]) and
    /// none is under way: an O(1) copy of the state machine (its maps are
    /// persistent), so serializing it can happen on another thread while
    /// this replica goes on.
    pub fn snapshot_job(&mut self) -> Option<SnapshotJob> {
        if self.snapshot_pending {
            return None;
        }
        let applied = self.shared.applied();
        let since = SinceSnapshot {
            entries: applied.saturating_sub(self.snapshot_index),
            log_bytes: self.log_bytes - self.snapshot_mark.0,
            snapshot_bytes: self.snapshot_mark.1,
        };
        if !self.config.snapshot_due(since) && !self.config.snapshot_when_quiet(since, self.quiet.0)
        {
            return None;
        }
        let state = self.shared.read().clone();
        self.snapshot_pending = true;
        Some(SnapshotJob {
            started: Instant::now(),
            log_bytes: self.log_bytes,
            state,
            stager: self.raw.store().snapshot_stager(),
        })
    }

    /// Forgets a snapshot job that will never finish (its thread did not start).
    pub fn abandon_snapshot(&mut self) {
        self.snapshot_pending = false;
    }

    /// Stores a serialized snapshot and compacts the log behind it. A
    /// snapshot overtaken meanwhile (one installed from the leader covers
    /// more) is dropped.
    pub fn finish_snapshot(&mut self, built: BuiltSnapshot) -> Result<(), DriverFatal> {
        self.snapshot_pending = false;
        let stall = Instant::now();
        let index = built.index;
        if index <= self.snapshot_index {
            return Ok(());
        }
        let Ok(term) = self.raw.raft.raft_log.term(index) else {
            return Ok(());
        };
        let (data, bytes) = match built.data {
            SnapshotData::Staged(bytes) => (Vec::new(), bytes),
            SnapshotData::Memory(data) => {
                let bytes = data.len() as u64;
                (data, bytes)
            }
        };
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        let meta = snapshot.mut_metadata();
        meta.index = index;
        meta.term = term;
        meta.set_conf_state(self.raw.store().initial_state()?.conf_state);
        let first = self.raw.store().first_index()?;
        let compact_to = (index + 1)
            .saturating_sub(self.config.snapshot_catchup_entries)
            .max(first);
        let store = self.raw.mut_store();
        store.save_snapshot(&snapshot, compact_to)?;
        let saved = stall.elapsed();
        store.flush()?;
        self.snapshot_index = index;
        self.snapshot_mark = (built.log_bytes, bytes);
        info!(
            index,
            bytes,
            compacted_to = compact_to,
            elapsed_ms = built.started.elapsed().as_millis(),
            serialize_ms = built.serialize.as_millis(),
            save_ms = saved.as_millis(),
            store_ms = stall.elapsed().as_millis(),
            "snapshot taken"
        );
        Ok(())
    }
}

/// A copy of the state machine to serialize into a snapshot, and where to
/// store the bytes.
#[derive(Debug)]
pub struct SnapshotJob {
    started: Instant,
    /// The replica's applied log bytes at the state's index.
    log_bytes: u64,
    state: StateMachine,
    stager: Option<SnapshotStager>,
}

impl SnapshotJob {
    /// Serializes the state (the slow part: seconds for a million znodes)
    /// straight into the store's file when it has files, else into memory.
    /// A failed staging only means the bytes are built in memory and the
    /// Raft thread writes them itself when it records the snapshot.
    pub fn run(self) -> BuiltSnapshot {
        let serializing = Instant::now();
        let index = self.state.applied();
        let staged = self.stager.as_ref().and_then(|stager| {
            stager
                .stage_with(index, |out| self.state.write_snapshot(out))
                .inspect_err(|err| error!(index, %err, "staging the snapshot failed"))
                .ok()
        });
        let data = match staged {
            Some(bytes) => SnapshotData::Staged(bytes),
            None => SnapshotData::Memory(self.state.snapshot()),
        };
        BuiltSnapshot {
            index,
            data,
            log_bytes: self.log_bytes,
            started: self.started,
            serialize: serializing.elapsed(),
        }
    }
}

/// Where a built snapshot's data is.
#[derive(Debug)]
enum SnapshotData {
    /// In the store's file, this many bytes.
    Staged(u64),
    /// In memory, for the store to write when the snapshot is recorded.
    Memory(Vec<u8>),
}

/// A serialized snapshot, ready for [`Replica::finish_snapshot`].
#[derive(Debug)]
pub struct BuiltSnapshot {
    index: u64,
    data: SnapshotData,
    log_bytes: u64,
    started: Instant,
    serialize: Duration,
}
