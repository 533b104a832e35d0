//! An in-memory [`LogStore`], for tests of the layers above storage and for the
//! deterministic simulation. It keeps two copies of the state: what the Raft
//! node sees (every write so far) and what a crash would leave (every write up
//! to the last [`LogStore::flush`]), so a simulated crash can lose exactly what
//! a real one could.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::{LogStore, StoreError, take_within_size};

/// One state of the store: the live one, or the durable one.
#[derive(Debug, Clone)]
struct Log {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// `entries[i]` has index `offset + i`.
    entries: Vec<Entry>,
    offset: u64,
}

/// A write not yet flushed, replayed onto the durable copy by `flush`.
#[derive(Debug, Clone)]
enum Write {
    Append(Vec<Entry>),
    HardState(HardState),
    ConfState(ConfState),
    InstallSnapshot(Snapshot),
    SaveSnapshot(Snapshot, u64),
}

impl Log {
    fn new() -> Self {
        Self {
            hard_state: HardState::default(),
            conf_state: ConfState::default(),
            snapshot: Snapshot::default(),
            entries: Vec::new(),
            offset: 1,
        }
    }

    fn last(&self) -> u64 {
        self.offset + self.entries.len() as u64 - 1
    }

    fn write(&mut self, write: &Write) -> Result<(), StoreError> {
        match write {
            Write::Append(entries) => self.append(entries),
            Write::HardState(hs) => {
                self.hard_state = hs.clone();
                Ok(())
            }
            Write::ConfState(cs) => {
                self.conf_state = cs.clone();
                Ok(())
            }
            Write::InstallSnapshot(snapshot) => {
                self.install_snapshot(snapshot);
                Ok(())
            }
            Write::SaveSnapshot(snapshot, compact_to) => self.save_snapshot(snapshot, *compact_to),
        }
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.offset || first.index > self.last() + 1 {
            return Err(StoreError::Invariant(format!(
                "append at {} outside [{}, {}]",
                first.index,
                self.offset,
                self.last() + 1
            )));
        }
        self.entries
            .truncate(usize::try_from(first.index - self.offset).unwrap_or(usize::MAX));
        self.entries.extend_from_slice(entries);
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) {
        let meta = snapshot.get_metadata();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.offset = meta.index + 1;
        self.snapshot = snapshot.clone();
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), StoreError> {
        let index = snapshot.get_metadata().index;
        if compact_to > index + 1 {
            return Err(StoreError::Invariant(format!(
                "compacting to {compact_to} past snapshot {index}"
            )));
        }
        self.snapshot = snapshot.clone();
        if compact_to > self.offset {
            let drop = usize::try_from(compact_to - self.offset)
                .unwrap_or(usize::MAX)
                .min(self.entries.len());
            self.entries.drain(..drop);
            self.offset = compact_to;
        }
        Ok(())
    }
}

/// A [`LogStore`] that keeps everything in memory; [`MemStore::crashed`] gives
/// back only what was flushed.
#[derive(Debug, Clone)]
pub struct MemStore {
    live: Log,
    durable: Log,
    unflushed: Vec<Write>,
}

impl Default for MemStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemStore {
    /// An empty, uninitialized store.
    pub fn new() -> Self {
        Self {
            live: Log::new(),
            durable: Log::new(),
            unflushed: Vec::new(),
        }
    }

    /// The store a restart after a crash would find: every write up to the last
    /// flush, none after it.
    pub fn crashed(&self) -> Self {
        Self {
            live: self.durable.clone(),
            durable: self.durable.clone(),
            unflushed: Vec::new(),
        }
    }

    /// Applies a write to the live state and queues it for the next flush.
    fn write(&mut self, write: Write) -> Result<(), StoreError> {
        self.live.write(&write)?;
        self.unflushed.push(write);
        Ok(())
    }

    fn last(&self) -> u64 {
        self.live.last()
    }
}

impl raft::Storage for MemStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.live.hard_state.clone(),
            self.live.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.live.offset {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last() + 1,
            "entries({low}, {high}) past last index {}",
            self.last()
        );
        let lo = usize::try_from(low - self.live.offset).unwrap_or(usize::MAX);
        let hi = usize::try_from(high - self.live.offset).unwrap_or(usize::MAX);
        let entries = self.live.entries[lo..hi].iter().cloned().map(Ok);
        Ok(take_within_size(entries, max_size.into())?)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.live.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < self.live.offset {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.live.entries[usize::try_from(idx - self.live.offset).unwrap_or(usize::MAX)].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.live.offset)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.live.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.live.snapshot.clone())
    }
}

impl LogStore for MemStore {
    fn is_initialized(&self) -> bool {
        self.live.conf_state != ConfState::default()
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        if entries.is_empty() {
            return Ok(());
        }
        self.write(Write::Append(entries.to_vec()))
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.write(Write::HardState(hard_state.clone()))
    }

    fn hard_state(&self) -> HardState {
        self.live.hard_state.clone()
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        self.write(Write::ConfState(conf_state.clone()))
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        self.write(Write::InstallSnapshot(snapshot.clone()))
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), StoreError> {
        self.write(Write::SaveSnapshot(snapshot.clone(), compact_to))
    }

    fn latest_snapshot(&self) -> Result<Snapshot, StoreError> {
        Ok(self.live.snapshot.clone())
    }

    fn snapshot_metadata(&self) -> SnapshotMetadata {
        self.live.snapshot.get_metadata().clone()
    }

    fn snapshot_bytes(&self) -> u64 {
        self.live.snapshot.data.len() as u64
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        for write in self.unflushed.drain(..) {
            self.durable.write(&write)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use raft::Storage as _;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            ..Entry::default()
        }
    }

    fn hard_state(term: u64, commit: u64) -> HardState {
        HardState {
            term,
            commit,
            ..HardState::default()
        }
    }

    #[test]
    fn conformance() {
        super::super::conformance::run(&mut MemStore::new, Some(|s: MemStore| s.crashed()));
    }

    #[test]
    fn a_crash_loses_exactly_the_unflushed_writes() {
        let mut s = MemStore::new();
        s.set_conf_state(&ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        })
        .expect("conf state");
        s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
            .expect("append");
        s.set_hard_state(&hard_state(1, 2)).expect("hard state");
        s.flush().expect("flush");
        // Unflushed: a new leader's suffix overwriting entry 3, a commit, a snapshot.
        s.append(&[entry(3, 2), entry(4, 2)]).expect("overwrite");
        s.set_hard_state(&hard_state(2, 4)).expect("hard state");
        let mut snap = Snapshot::default();
        snap.mut_metadata().index = 3;
        snap.mut_metadata().term = 2;
        s.save_snapshot(&snap, 3).expect("snapshot");
        assert_eq!(s.last_index().expect("last"), 4);

        let c = s.crashed();
        assert!(c.is_initialized());
        assert_eq!(c.hard_state(), hard_state(1, 2));
        assert_eq!(
            (c.first_index().expect("f"), c.last_index().expect("l")),
            (1, 3)
        );
        assert_eq!(c.term(3).expect("term"), 1, "the overwrite was not flushed");
        assert_eq!(c.snapshot_metadata().index, 0);
        // The live store is untouched, and once flushed, a crash keeps everything.
        assert_eq!(s.term(3).expect("term"), 2);
        s.flush().expect("flush");
        let c = s.crashed();
        assert_eq!(c.hard_state(), hard_state(2, 4));
        assert_eq!(
            (c.first_index().expect("f"), c.last_index().expect("l")),
            (3, 4)
        );
        assert_eq!(c.latest_snapshot().expect("snapshot"), snap);
    }
}
