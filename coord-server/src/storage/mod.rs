//! Durable Raft state behind a small trait: the log, the hard state, the
//! membership and the newest snapshot. raft-rs only reads through
//! [`raft::Storage`]; the driver writes through [`LogStore`] while handling a
//! Ready and calls [`LogStore::flush`] once per Ready, before it sends persisted
//! messages or answers anyone.
//!
//! # Layout
//! - [`mem`]: [`MemStore`], in memory, for tests of the layers above.
//! - [`disk_store`]: [`DiskStore`], the store the server runs on (write-ahead
//!   log, sled metadata, snapshot files).
//! - [`wal`]: the write-ahead log's segment files.
//! - [`entries`]: the log's entries in memory: terms, places, newest bodies.
//! - [`reaper`]: deletes obsolete files off the Raft thread.
//! - `conformance` (tests only): one suite both stores must pass.

pub mod disk_store;
pub mod entries;
pub mod mem;
pub mod reaper;
pub mod wal;

#[cfg(test)]
mod conformance;

pub use disk_store::{DiskStore, ReceivedSnapshot, SnapshotStager};
pub use mem::MemStore;

use std::io::{BufRead, Cursor};

use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};

/// A snapshot's data, read as it is decoded ([`LogStore::snapshot_reader`]).
pub type SnapshotReader = Box<dyn BufRead + Send>;

/// Why the store could not read or write.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The underlying database failed.
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    /// A snapshot data file could not be written or read.
    #[error("snapshot file: {0}")]
    Io(#[from] std::io::Error),
    /// Stored bytes do not decode.
    #[error("corrupt {what}: {source}")]
    Corrupt {
        /// Which record.
        what: &'static str,
        /// The decode error.
        source: protobuf::ProtobufError,
    },
    /// Refusing an operation that would lose or skip log entries.
    #[error("log invariant: {0}")]
    Invariant(String),
}

impl From<StoreError> for raft::Error {
    fn from(err: StoreError) -> Self {
        raft::Error::Store(raft::StorageError::Other(Box::new(err)))
    }
}

/// The write side of a Raft store. Writes may be buffered until [`LogStore::flush`].
pub trait LogStore: raft::Storage + Send + 'static {
    /// True once the store holds a membership (it was bootstrapped or restored).
    fn is_initialized(&self) -> bool;

    /// Appends entries, first removing any stored entries at or after the first
    /// new index (a new leader may overwrite an uncommitted suffix).
    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError>;

    /// Saves the term, vote and commit index.
    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError>;

    /// The saved hard state.
    fn hard_state(&self) -> HardState;

    /// Saves the membership.
    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError>;

    /// Replaces the log with a snapshot received from the leader: the log is
    /// emptied, and the commit index and membership come from the snapshot.
    /// A snapshot without data takes over the data received into the store
    /// ([`LogStore::received_snapshot`]).
    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError>;

    /// Keeps a snapshot this member took of its own state machine, then drops the
    /// log entries before `compact_to` (which must not exceed the snapshot index + 1).
    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), StoreError>;

    /// The newest snapshot held, with its data (index 0 when there is none).
    /// A store may keep the data on disk only and read it here.
    fn latest_snapshot(&self) -> Result<Snapshot, StoreError>;

    /// The newest snapshot's data as a reader (`None` when there is none), so
    /// that a restart restores from it without holding the whole of it.
    fn snapshot_reader(&self) -> Result<Option<SnapshotReader>, StoreError> {
        let snapshot = self.latest_snapshot()?;
        let index = snapshot.get_metadata().index;
        Ok((index > 0).then(|| Box::new(Cursor::new(snapshot.data)) as SnapshotReader))
    }

    /// The data of the leader's snapshot at `index`, received into the
    /// store's files ([`SnapshotStager::receive`]) and not installed yet: a
    /// snapshot whose data is empty is installed from there.
    fn received_snapshot(&self, index: u64) -> Result<SnapshotReader, StoreError> {
        Err(StoreError::Invariant(format!(
            "snapshot {index} arrived without its data"
        )))
    }

    /// Index and term of the newest snapshot held, without its data.
    fn snapshot_metadata(&self) -> SnapshotMetadata;

    /// Size of the newest snapshot's data in bytes (0 when there is none),
    /// without reading it: when the next snapshot is due depends on it.
    fn snapshot_bytes(&self) -> u64;

    /// A handle that writes a snapshot's data from another thread before
    /// [`LogStore::save_snapshot`] records it, when the store has slow writes
    /// worth taking off the Raft thread (files); `None` for the memory store.
    fn snapshot_stager(&self) -> Option<SnapshotStager> {
        None
    }

    /// Makes every write so far durable.
    fn flush(&mut self) -> Result<(), StoreError>;
}

/// Takes entries while they add up to at most `max_size` bytes, but always
/// at least one, as [`raft::Storage::entries`] requires; stops at the first
/// entry past the limit, so later ones are never fetched.
fn take_within_size(
    entries: impl Iterator<Item = Result<Entry, StoreError>>,
    max_size: Option<u64>,
) -> Result<Vec<Entry>, StoreError> {
    use protobuf::Message;
    let mut out = Vec::with_capacity(entries.size_hint().0);
    let mut size = 0u64;
    for entry in entries {
        let entry = entry?;
        if let Some(max) = max_size {
            size += u64::from(entry.compute_size());
            if size > max && !out.is_empty() {
                break;
            }
        }
        out.push(entry);
    }
    Ok(out)
}
