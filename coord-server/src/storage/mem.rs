//! An in-memory [`LogStore`], for tests of the layers above storage.

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::{LogStore, StoreError, limit_size};

/// A [`LogStore`] that keeps everything in memory; `flush` is a no-op.
#[derive(Debug, Default, Clone)]
pub struct MemStore {
    hard_state: HardState,
    conf_state: ConfState,
    snapshot: Snapshot,
    /// `entries[i]` has index `offset + i`.
    entries: Vec<Entry>,
    offset: u64,
}

impl MemStore {
    /// An empty, uninitialized store.
    pub fn new() -> Self {
        Self {
            offset: 1,
            ..Self::default()
        }
    }

    fn last(&self) -> u64 {
        self.offset + self.entries.len() as u64 - 1
    }
}

impl raft::Storage for MemStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.hard_state.clone(),
            self.conf_state.clone(),
        ))
    }

    fn entries(
        &self,
        low: u64,
        high: u64,
        max_size: impl Into<Option<u64>>,
        _context: GetEntriesContext,
    ) -> raft::Result<Vec<Entry>> {
        if low < self.offset {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last() + 1,
            "entries({low}, {high}) past last index {}",
            self.last()
        );
        let lo = usize::try_from(low - self.offset).unwrap_or(usize::MAX);
        let hi = usize::try_from(high - self.offset).unwrap_or(usize::MAX);
        let mut out = self.entries[lo..hi].to_vec();
        limit_size(&mut out, max_size.into());
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < self.offset {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last() {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        Ok(self.entries[usize::try_from(idx - self.offset).unwrap_or(usize::MAX)].term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.offset)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

impl LogStore for MemStore {
    fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
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

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.hard_state = hard_state.clone();
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state.clone()
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        self.conf_state = conf_state.clone();
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        self.hard_state.term = self.hard_state.term.max(meta.term);
        self.hard_state.commit = meta.index;
        self.conf_state = meta.get_conf_state().clone();
        self.entries.clear();
        self.offset = meta.index + 1;
        self.snapshot = snapshot.clone();
        Ok(())
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

    fn latest_snapshot(&self) -> Snapshot {
        self.snapshot.clone()
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conformance() {
        super::super::conformance::run(&mut || MemStore::new(), Some(|store: MemStore| store));
    }
}
