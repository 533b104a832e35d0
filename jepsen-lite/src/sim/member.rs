//! One simulated member: the server's [`Replica`] over a [`MemStore`], or, while
//! crashed, only the store's durable part. A restart rebuilds everything from
//! that durable part, as the real server does after `kill -9`: the state
//! machine from the newest snapshot, the rest by replaying the log.

use std::sync::Arc;

use coord_server::core::StateMachine;
use coord_server::driver::{DriverFatal, Readied, Replica, ReplicaConfig, Shared};
use coord_server::storage::{LogStore, MemStore};
use coord_server::watch::WatchConfig;
use raft::eraftpb::{ConfState, Message};

/// Ticks without a leader before an election (the server's default).
const ELECTION_TICKS: usize = 10;
/// Ticks between heartbeats: every other tick keeps message traffic per step low.
const HEARTBEAT_TICKS: usize = 2;
/// Applied entries between snapshots: small, so runs compact, snapshot and
/// send snapshots to lagging members often.
const SNAPSHOT_INTERVAL: u64 = 16;
/// Entries kept behind a snapshot.
const SNAPSHOT_CATCHUP_ENTRIES: u64 = 4;
/// De-duplication table bound: far above the number of simulated clients.
pub const MAX_DEDUP_CLIENTS: usize = 64;
/// Events a member's watch hub keeps: few, so resumed watches often find
/// their zxid compacted.
const WATCH_HISTORY_EVENTS: usize = 32;
/// Responses a watch stream queues before the hub cuts it off as too slow.
const WATCH_STREAM_BUFFER: usize = 16;

enum State {
    Up(Box<Replica<MemStore>>),
    Down(Box<MemStore>),
}

/// A member of the simulated cluster.
pub struct Member {
    id: u64,
    state: State,
    /// Snapshots installed by earlier incarnations (a replica counts its own).
    snapshots_installed: u64,
    /// Restarts so far: which incarnation runs.
    incarnation: u64,
    logger: slog::Logger,
}

fn replica_config(id: u64) -> ReplicaConfig {
    ReplicaConfig {
        id,
        election_ticks: ELECTION_TICKS,
        randomized_election: false,
        heartbeat_ticks: HEARTBEAT_TICKS,
        snapshot_interval: SNAPSHOT_INTERVAL,
        snapshot_catchup_entries: SNAPSHOT_CATCHUP_ENTRIES,
        max_dedup_clients: MAX_DEDUP_CLIENTS,
    }
}

/// Starts a replica from a store, restoring the state machine from its snapshot.
fn start(
    id: u64,
    store: MemStore,
    logger: &slog::Logger,
) -> Result<Replica<MemStore>, DriverFatal> {
    let snapshot = store.latest_snapshot()?;
    let state = if snapshot.get_metadata().index > 0 {
        StateMachine::restore(&snapshot.data, MAX_DEDUP_CLIENTS)?
    } else {
        StateMachine::new(MAX_DEDUP_CLIENTS)
    };
    let watches = WatchConfig {
        history_events: WATCH_HISTORY_EVENTS,
        max_watches_per_stream: 10,
        stream_buffer: WATCH_STREAM_BUFFER,
    };
    let shared = Arc::new(Shared::new(id, state, watches));
    Replica::new(replica_config(id), store, shared, logger)
}

impl Member {
    /// A fresh member of a cluster of `voters`, bootstrapped like `coord-server`
    /// bootstraps an empty data directory.
    pub fn bootstrap(id: u64, voters: &[u64]) -> Result<Self, DriverFatal> {
        let logger = slog::Logger::root(slog::Discard, slog::o!());
        let mut store = MemStore::new();
        store.set_conf_state(&ConfState {
            voters: voters.to_vec(),
            ..ConfState::default()
        })?;
        store.flush()?;
        let replica = start(id, store, &logger)?;
        Ok(Self {
            id,
            state: State::Up(Box::new(replica)),
            snapshots_installed: 0,
            incarnation: 0,
            logger,
        })
    }

    /// The member's id.
    pub fn id(&self) -> u64 {
        self.id
    }

    /// The running replica, or `None` while crashed.
    pub fn replica(&self) -> Option<&Replica<MemStore>> {
        match &self.state {
            State::Up(replica) => Some(replica),
            State::Down(_) => None,
        }
    }

    /// The running replica, mutably.
    pub fn replica_mut(&mut self) -> Option<&mut Replica<MemStore>> {
        match &mut self.state {
            State::Up(replica) => Some(replica),
            State::Down(_) => None,
        }
    }

    /// Which incarnation runs (restarts so far).
    pub fn incarnation(&self) -> u64 {
        self.incarnation
    }

    /// True unless crashed.
    pub fn is_up(&self) -> bool {
        matches!(self.state, State::Up(_))
    }

    /// Stops the member, keeping only what its store flushed.
    pub fn crash(&mut self) {
        if let State::Up(replica) = &self.state {
            self.snapshots_installed += replica.status().snapshots_installed;
            self.state = State::Down(Box::new(replica.store().crashed()));
        }
    }

    /// Starts a new incarnation from the durable store.
    pub fn restart(&mut self) -> Result<(), DriverFatal> {
        if let State::Down(store) = &self.state {
            let replica = start(self.id, MemStore::clone(store), &self.logger)?;
            self.state = State::Up(Box::new(replica));
            self.incarnation += 1;
        }
        Ok(())
    }

    /// Runs the Ready recipe; the messages it sends are appended to `outbox`.
    /// `None` while crashed.
    pub fn on_ready(&mut self, outbox: &mut Vec<Message>) -> Option<Result<Readied, DriverFatal>> {
        self.replica_mut().map(|r| r.on_ready(outbox))
    }

    /// Snapshots received from leaders over every incarnation.
    pub fn snapshots_installed(&self) -> u64 {
        self.snapshots_installed + self.replica().map_or(0, |r| r.status().snapshots_installed)
    }
}
