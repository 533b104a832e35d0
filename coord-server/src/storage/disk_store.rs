//! The [`LogStore`] the server runs on, in one directory: the Raft log and
//! hard state in a write-ahead log of segment files (`wal/`, [`super::wal`]),
//! the membership and the newest snapshot's metadata in a sled database, and
//! each snapshot's data in a file of its own. The terms and places of the
//! entries since the compaction point, and the newest entries themselves
//! (up to [`ENTRY_CACHE_BYTES`]), are kept in memory ([`LogEntries`]), so
//! raft-rs reads terms and the entries it is about to apply or send without
//! touching the disk.
//!
//! A snapshot is kept in two parts: its metadata in the sled `snapshot` record and
//! its data in a file of its own, `snapshot-INDEX.data` beside the database
//! (written to a temporary name, fsynced, renamed, directory fsynced). The
//! data of the member's own snapshots is written by the snapshot thread
//! through a [`SnapshotStager`], so the Raft thread only writes the small
//! metadata record, and a large write never holds up the log's flushes, which
//! every Ready waits for. The metadata is recorded after its data file is
//! durable, and older data files are removed after that, so a crash leaves
//! either snapshot whole. (Data dirs written before this layout hold the data
//! inside the `snapshot` record; they are read as before.)
//!
//! Data dirs written before the write-ahead log kept the log in a sled tree
//! `log` and the hard state in `meta`; opening one moves both into the
//! write-ahead log first (see [`migrate`]).

use std::collections::BTreeSet;
use std::fs::File;
use std::io::{BufReader, BufWriter, Cursor, Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protobuf::Message;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::entries::LogEntries;
use super::reaper::Reaper;
use super::wal::{SEGMENT_BYTES, Wal};
use super::{LogStore, SnapshotReader, StoreError, take_within_size};

/// Bytes of entry bodies kept in memory: the newest entries, which raft-rs
/// applies and sends to followers right after writing them (thousands of
/// entries of ordinary writes, a few hundred of 100-create batches).
pub const ENTRY_CACHE_BYTES: u64 = 4 << 20;

/// The hard state's record in data dirs written before the write-ahead log.
/// Buffer of a snapshot file being read or received: large enough that it
/// costs few system calls, small beside the tree it holds.
const IO_BUFFER: usize = 1 << 20;

const HARD_STATE: &[u8] = b"hard_state";
/// The sled tree of the log in data dirs written before the write-ahead log.
const OLD_LOG: &[u8] = b"log";
/// Marks a store whose log is in the write-ahead log.
const LOG_FORMAT: &[u8] = b"log_format";
const WAL_V1: &[u8] = b"wal-v1";
const CONF_STATE: &[u8] = b"conf_state";
const SNAPSHOT: &[u8] = b"snapshot";
/// Indexes whose snapshot data file exists, so that recording a snapshot
/// never has to look at the (possibly huge) files.
type DataIndexes = Arc<Mutex<BTreeSet<u64>>>;

fn lock(indexes: &DataIndexes) -> MutexGuard<'_, BTreeSet<u64>> {
    indexes.lock().unwrap_or_else(PoisonError::into_inner)
}

fn data_file(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("snapshot-{index:020}.data"))
}

/// The index of a snapshot data file's name, if it is one.
fn data_file_index(name: &str) -> Option<u64> {
    name.strip_prefix("snapshot-")?
        .strip_suffix(".data")?
        .parse()
        .ok()
}

/// Opens the file of snapshot `index` at `path`, which must exist.
fn open_existing(path: &Path, index: u64) -> Result<File, StoreError> {
    File::open(path)
        .map_err(|e| StoreError::Invariant(format!("snapshot {index}: {}: {e}", path.display())))
}

/// Opens the data file of snapshot `index` in `dir`, which must exist.
fn open_data_file(dir: &Path, index: u64) -> Result<File, StoreError> {
    open_existing(&data_file(dir, index), index)
}

/// Makes what `out` wrote to `tmp` durable under the name `path` in `dir`;
/// returns its size.
fn persist(out: BufWriter<File>, tmp: &Path, path: &Path, dir: &Path) -> Result<u64, StoreError> {
    let file = out.into_inner().map_err(|e| e.into_error())?;
    let bytes = file.metadata()?.len();
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    File::open(dir)?.sync_all()?;
    Ok(bytes)
}

/// Writes `data` durably as the data file of snapshot `index` in `dir`.
fn write_data_file(dir: &Path, index: u64, data: &[u8]) -> Result<(), StoreError> {
    write_data_file_with(dir, index, |out| out.write_all(data)).map(|_| ())
}

/// Writes durably, as the data file of snapshot `index` in `dir`, what
/// `write` writes; returns its size.
fn write_data_file_with(
    dir: &Path,
    index: u64,
    write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> Result<u64, StoreError> {
    let path = data_file(dir, index);
    let tmp = path.with_extension("tmp");
    let mut out = BufWriter::with_capacity(IO_BUFFER, File::create(&tmp)?);
    write(&mut out)?;
    persist(out, &tmp, &path, dir)
}

/// Where the data of a snapshot received from the leader waits to be
/// installed. Not a data file: this member's own snapshots never delete it.
fn received_file(dir: &Path, index: u64) -> PathBuf {
    dir.join(format!("received-{index:020}.data"))
}

/// The index of a received snapshot's file (whole or being written), if the
/// name is one.
fn received_file_index(name: &str) -> Option<u64> {
    name.strip_prefix("received-")?.get(..20)?.parse().ok()
}

/// A reader of the received snapshot at `index` in `dir`, which must exist.
fn open_received(dir: &Path, index: u64) -> Result<SnapshotReader, StoreError> {
    let file = open_existing(&received_file(dir, index), index)?;
    Ok(Box::new(BufReader::with_capacity(IO_BUFFER, file)))
}

/// Removes the files of received snapshots up to index `through` (all of
/// them when `None`): obsolete once one is installed, void after a restart.
fn remove_received_files(dir: &Path, through: Option<u64>) -> Result<(), StoreError> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        let index = path
            .file_name()
            .and_then(|name| received_file_index(&name.to_string_lossy()));
        if index.is_some_and(|index| through.is_none_or(|through| index <= through)) {
            std::fs::remove_file(&path)?;
        }
    }
    Ok(())
}

/// Writes a snapshot's data into the store from another thread.
#[derive(Debug, Clone)]
pub struct SnapshotStager {
    dir: PathBuf,
    data_indexes: DataIndexes,
    /// Receptions started, naming each one's temporary file: a reception
    /// abandoned by its sender may still be writing when the next starts.
    receptions: Arc<AtomicU64>,
}

impl SnapshotStager {
    /// Stores (durably) the data of the snapshot at `index`; the snapshot is
    /// only in effect once [`LogStore::save_snapshot`] records it.
    pub fn stage(&self, index: u64, data: &[u8]) -> Result<(), StoreError> {
        self.stage_with(index, |out| out.write_all(data))
            .map(|_| ())
    }

    /// [`SnapshotStager::stage`] of what `write` writes, as it writes it (a
    /// snapshot encoded straight into its file is never whole in memory);
    /// returns its size.
    pub fn stage_with(
        &self,
        index: u64,
        write: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
    ) -> Result<u64, StoreError> {
        let bytes = write_data_file_with(&self.dir, index, write)?;
        lock(&self.data_indexes).insert(index);
        Ok(bytes)
    }

    /// The data file of the snapshot at `index` and its size, for sending it
    /// to a follower without reading it into memory. An open file stays
    /// readable when a newer snapshot makes it obsolete meanwhile.
    pub fn open(&self, index: u64) -> Result<(File, u64), StoreError> {
        let file = open_data_file(&self.dir, index)?;
        let bytes = file.metadata()?.len();
        Ok((file, bytes))
    }

    /// A reader of the leader's snapshot at `index` once
    /// [`ReceivedSnapshot::finish`] made it whole.
    pub fn received(&self, index: u64) -> Result<SnapshotReader, StoreError> {
        open_received(&self.dir, index)
    }

    /// Starts writing the data of the leader's snapshot at `index` as it
    /// arrives, so that no member holds a whole snapshot in memory to receive
    /// it; [`LogStore::install_snapshot`] of that snapshot without its data
    /// then takes the file over.
    pub fn receive(&self, index: u64) -> Result<ReceivedSnapshot, StoreError> {
        let path = received_file(&self.dir, index);
        let reception = self.receptions.fetch_add(1, Ordering::Relaxed);
        let tmp = path.with_extension(format!("{reception}.tmp"));
        let file = File::create(&tmp)?;
        Ok(ReceivedSnapshot {
            file: BufWriter::with_capacity(IO_BUFFER, file),
            tmp,
            path,
            dir: self.dir.clone(),
            bytes: 0,
        })
    }
}

/// A leader's snapshot being written to its file as it arrives
/// ([`SnapshotStager::receive`]). Dropped unfinished, it leaves a temporary
/// file, removed by the next install of a snapshot at least as new or the
/// next start (as is a received snapshot that Raft turned down).
#[derive(Debug)]
pub struct ReceivedSnapshot {
    file: BufWriter<File>,
    tmp: PathBuf,
    path: PathBuf,
    dir: PathBuf,
    bytes: u64,
}

impl ReceivedSnapshot {
    /// Appends the next piece of the data.
    pub fn write(&mut self, piece: &[u8]) -> Result<(), StoreError> {
        self.file.write_all(piece)?;
        self.bytes += piece.len() as u64;
        Ok(())
    }

    /// Makes the whole data durable under its final name and returns its
    /// size, unless the sender announced another size (`expected`): a stream
    /// that ended short is never kept.
    pub fn finish(self, expected: Option<u64>) -> Result<u64, StoreError> {
        if let Some(expected) = expected.filter(|&e| e != self.bytes) {
            return Err(StoreError::Invariant(format!(
                "snapshot received with {} of its {expected} bytes",
                self.bytes
            )));
        }
        persist(self.file, &self.tmp, &self.path, &self.dir)
    }
}

/// A [`LogStore`] in a data directory: write-ahead log, sled metadata and
/// snapshot data files.
pub struct DiskStore {
    path: PathBuf,
    db: sled::Db,
    meta: sled::Tree,
    wal: Wal,
    entries: LogEntries,
    conf_state: ConfState,
    /// The newest snapshot's metadata; its data stays in its file (read
    /// when asked for) unless it is an old-format store's inline data.
    snapshot: Snapshot,
    data_indexes: DataIndexes,
    /// Shared by the store's stagers ([`SnapshotStager::receive`]).
    receptions: Arc<AtomicU64>,
    /// sled holds writes not yet flushed (membership).
    meta_dirty: bool,
    /// Deletes snapshot data files a newer snapshot made obsolete.
    reaper: Reaper,
}

impl std::fmt::Debug for DiskStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DiskStore")
            .field("path", &self.path)
            .field("first", &self.entries.first())
            .field("last", &self.last())
            .finish_non_exhaustive()
    }
}

fn decode<M: Message>(what: &'static str, bytes: &[u8]) -> Result<M, StoreError> {
    M::parse_from_bytes(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

fn encode<M: Message>(what: &'static str, msg: &M) -> Result<Vec<u8>, StoreError> {
    msg.write_to_bytes()
        .map_err(|source| StoreError::Corrupt { what, source })
}

/// Moves the log and hard state of a data dir written before the write-ahead
/// log (sled tree `log`, record `hard_state`) into a new write-ahead log in
/// `wal_dir`, then marks the store as converted. A crash before the mark
/// leaves the old log untouched and the conversion starts over.
fn migrate(db: &sled::Db, meta: &sled::Tree, wal_dir: &Path) -> Result<(), StoreError> {
    if wal_dir.exists() {
        std::fs::remove_dir_all(wal_dir)?;
    }
    let (mut wal, _) = Wal::open(wal_dir, SEGMENT_BYTES, 0)?;
    if let Some(b) = meta.get(HARD_STATE)? {
        wal.set_hard_state(&decode("hard state", &b)?);
    }
    let had_log = db.tree_names().iter().any(|name| name.as_ref() == OLD_LOG);
    let mut moved = 0u64;
    if had_log {
        for item in db.open_tree(OLD_LOG)?.iter() {
            let (_, v) = item?;
            wal.append(&decode("entry", &v)?)?;
            moved += 1;
            if moved.is_multiple_of(4096) {
                wal.sync()?;
            }
        }
    }
    wal.sync()?;
    drop(wal);
    meta.insert(LOG_FORMAT, WAL_V1)?;
    db.flush()?;
    if had_log {
        db.drop_tree(OLD_LOG)?;
        meta.remove(HARD_STATE)?;
        db.flush()?;
        tracing::info!(
            entries = moved,
            "moved the Raft log from sled into the write-ahead log"
        );
    }
    Ok(())
}

impl DiskStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        Self::open_with(dir, cache_bytes, ENTRY_CACHE_BYTES)
    }

    /// [`DiskStore::open`] keeping `entry_cache_bytes` of entry bodies.
    fn open_with(dir: &Path, cache_bytes: u64, entry_cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let meta = db.open_tree("meta")?;
        let conf_state = match meta.get(CONF_STATE)? {
            Some(b) => decode("conf state", &b)?,
            None => ConfState::default(),
        };
        let snapshot: Snapshot = match meta.get(SNAPSHOT)? {
            Some(b) => decode("snapshot", &b)?,
            None => Snapshot::default(),
        };
        // A received snapshot not installed before a restart is void: the
        // leader sends one again if this member still needs it.
        remove_received_files(dir, None)?;
        let mut data_indexes = BTreeSet::new();
        for entry in std::fs::read_dir(dir)? {
            let name = entry?.file_name();
            if let Some(index) = data_file_index(&name.to_string_lossy()) {
                data_indexes.insert(index);
            }
        }
        let snap_index = snapshot.get_metadata().index;
        if snapshot.data.is_empty() && snap_index > 0 && !data_indexes.contains(&snap_index) {
            return Err(StoreError::Invariant(format!(
                "snapshot {snap_index}: data file {} missing",
                data_file(dir, snap_index).display()
            )));
        }
        let wal_dir = dir.join("wal");
        if meta.get(LOG_FORMAT)?.as_deref() != Some(WAL_V1) {
            migrate(&db, &meta, &wal_dir)?;
        }
        let (mut wal, replayed) = Wal::open(&wal_dir, SEGMENT_BYTES, entry_cache_bytes)?;
        let mut entries = replayed.entries;
        let agrees = snap_index < entries.first()
            || entries.term(snap_index) == Some(snapshot.get_metadata().term);
        if entries.last() < snap_index || !agrees {
            // Behind the snapshot, or an interrupted install_snapshot left the
            // old log beside the new snapshot: the snapshot wins, and the
            // write-ahead log records it before anything is appended after it.
            entries.reset(snap_index + 1);
            wal.reset(snap_index)?;
        } else if entries.first() > snap_index + 1 {
            return Err(StoreError::Invariant(format!(
                "log starts at {} but the snapshot ends at {snap_index}",
                entries.first()
            )));
        }
        // A snapshot only holds committed state: its index is committed even if
        // a crash lost the hard-state write that said so.
        let mut hard_state = wal.hard_state().clone();
        if hard_state.commit < snap_index {
            hard_state.commit = snap_index;
            wal.set_hard_state(&hard_state);
        }
        wal.sync()?;
        let store = Self {
            path: dir.to_path_buf(),
            db,
            meta,
            wal,
            entries,
            conf_state,
            snapshot,
            data_indexes: Arc::new(Mutex::new(data_indexes)),
            receptions: Arc::default(),
            meta_dirty: false,
            reaper: Reaper::default(),
        };
        if hard_state.commit > store.last() {
            return Err(StoreError::Invariant(format!(
                "commit index {} past the log's last entry {}",
                hard_state.commit,
                store.last()
            )));
        }
        Ok(store)
    }

    /// The data directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn last(&self) -> u64 {
        self.entries.last()
    }

    /// A handle that writes snapshot data from another thread.
    pub fn stager(&self) -> SnapshotStager {
        SnapshotStager {
            dir: self.path.clone(),
            data_indexes: Arc::clone(&self.data_indexes),
            receptions: Arc::clone(&self.receptions),
        }
    }

    /// Makes the received snapshot at `index` the data file of that index,
    /// staged for [`DiskStore::put_snapshot`].
    fn adopt_received(&mut self, index: u64) -> Result<(), StoreError> {
        std::fs::rename(
            received_file(&self.path, index),
            data_file(&self.path, index),
        )
        .map_err(|e| StoreError::Invariant(format!("snapshot {index} received: {e}")))?;
        File::open(&self.path)?.sync_all()?;
        lock(&self.data_indexes).insert(index);
        remove_received_files(&self.path, Some(index))
    }

    /// Records `snapshot` as the newest: its data (unless staged already),
    /// then its metadata, then drops every other snapshot's data.
    fn put_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let index = snapshot.get_metadata().index;
        // Staged data is whole (written, fsynced, then renamed) and equal to
        // ours (the state at one index is the same everywhere).
        let staged = lock(&self.data_indexes).contains(&index);
        if !staged {
            if snapshot.data.is_empty() {
                return Err(StoreError::Invariant(format!(
                    "snapshot {index} has neither data nor a staged file"
                )));
            }
            write_data_file(&self.path, index, &snapshot.data)?;
            lock(&self.data_indexes).insert(index);
        }
        let mut bare = Snapshot::default();
        bare.set_metadata(snapshot.get_metadata().clone());
        self.meta.insert(SNAPSHOT, encode("snapshot", &bare)?)?;
        // The record must be durable before the old data goes.
        self.db.flush()?;
        self.meta_dirty = false;
        let mut indexes = lock(&self.data_indexes);
        let mut older = Vec::new();
        for &other in indexes.iter().filter(|&&i| i != index) {
            let path = data_file(&self.path, other);
            if other < index {
                older.push(path);
            } else {
                // Staged for a snapshot that this one overtook: removed
                // inline, since a later `put_snapshot` at that index
                // writes the file anew (no deletion may be pending then).
                let _ = std::fs::remove_file(path);
            }
        }
        indexes.clear();
        indexes.insert(index);
        drop(indexes);
        // Indexes only grow, so no snapshot will use these files again.
        self.reaper.remove(older);
        self.snapshot = bare;
        Ok(())
    }
}

impl raft::Storage for DiskStore {
    fn initial_state(&self) -> raft::Result<RaftState> {
        Ok(RaftState::new(
            self.wal.hard_state().clone(),
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
        if low < self.entries.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last() + 1,
            "entries({low}, {high}) past last index {}",
            self.last()
        );
        let entries = (low..high).map(|index| match self.entries.get(index) {
            Some(Ok(entry)) => Ok(entry.clone()),
            Some(Err(at)) => self.wal.read(at),
            None => Err(StoreError::Invariant(format!("entry {index} not held"))),
        });
        Ok(take_within_size(entries, max_size.into())?)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < self.entries.first() {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        self.entries
            .term(idx)
            .ok_or(raft::Error::Store(StorageError::Unavailable))
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.entries.first())
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last())
    }

    /// Reads the data from its file: a follower that needs a snapshot is
    /// rare, and keeping the bytes in memory for it cost ~190 bytes per znode.
    /// The newest snapshot without its data (but an old-format store's
    /// inline data): the transport streams the data from its file
    /// ([`SnapshotStager::open`]), so that the leader's Raft thread neither
    /// reads a whole snapshot nor holds it while a follower receives it.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.snapshot.clone())
    }
}

impl LogStore for DiskStore {
    fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let Some(first) = entries.first() else {
            return Ok(());
        };
        if first.index < self.entries.first() || first.index > self.last() + 1 {
            return Err(StoreError::Invariant(format!(
                "append at {} outside [{}, {}]",
                first.index,
                self.entries.first(),
                self.last() + 1
            )));
        }
        self.entries.truncate_from(first.index);
        for entry in entries {
            let at = self.wal.append(entry)?;
            self.entries.push(entry.clone(), at);
        }
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.wal.set_hard_state(hard_state);
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.wal.hard_state().clone()
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        self.meta
            .insert(CONF_STATE, encode("conf state", conf_state)?)?;
        self.conf_state = conf_state.clone();
        self.meta_dirty = true;
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let mut hard_state = self.hard_state();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = meta.index;
        if snapshot.data.is_empty() {
            self.adopt_received(meta.index)?;
        }
        // The snapshot goes in first: a crash in between leaves an old log next
        // to a newer snapshot, which reopening handles.
        self.put_snapshot(snapshot)?;
        self.wal.reset(meta.index)?;
        self.entries.reset(meta.index + 1);
        self.set_conf_state(meta.get_conf_state())?;
        self.set_hard_state(&hard_state)
    }

    fn save_snapshot(&mut self, snapshot: &Snapshot, compact_to: u64) -> Result<(), StoreError> {
        let index = snapshot.get_metadata().index;
        if compact_to > index + 1 {
            return Err(StoreError::Invariant(format!(
                "compacting to {compact_to} past snapshot {index}"
            )));
        }
        self.put_snapshot(snapshot)?;
        if compact_to > self.entries.first() {
            self.entries.compact(compact_to);
            self.wal.compact(compact_to)?;
        }
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = self.snapshot.clone();
        let index = snapshot.get_metadata().index;
        if index > 0 && snapshot.data.is_empty() {
            let mut data = Vec::new();
            open_data_file(&self.path, index)?.read_to_end(&mut data)?;
            snapshot.data = data.into();
        }
        Ok(snapshot)
    }

    fn snapshot_reader(&self) -> Result<Option<SnapshotReader>, StoreError> {
        let index = self.snapshot.get_metadata().index;
        if index == 0 || !self.snapshot.data.is_empty() {
            return Ok((index > 0)
                .then(|| Box::new(Cursor::new(self.snapshot.data.clone())) as SnapshotReader));
        }
        let file = open_data_file(&self.path, index)?;
        Ok(Some(Box::new(BufReader::with_capacity(IO_BUFFER, file))))
    }

    fn received_snapshot(&self, index: u64) -> Result<SnapshotReader, StoreError> {
        open_received(&self.path, index)
    }

    fn snapshot_metadata(&self) -> SnapshotMetadata {
        self.snapshot.get_metadata().clone()
    }

    fn snapshot_bytes(&self) -> u64 {
        let index = self.snapshot.get_metadata().index;
        if index == 0 || !self.snapshot.data.is_empty() {
            return self.snapshot.data.len() as u64;
        }
        // Unreadable here means unreadable for `latest_snapshot` too, which
        // reports it; 0 only makes the next snapshot come at the interval.
        std::fs::metadata(data_file(&self.path, index)).map_or(0, |m| m.len())
    }

    fn snapshot_stager(&self) -> Option<SnapshotStager> {
        Some(self.stager())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.wal.sync()?;
        self.entries.evict();
        if self.meta_dirty {
            self.db.flush()?;
            self.meta_dirty = false;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `path` again once the dropped store's background flusher has
    /// let go of sled's file lock (it may hold it a moment after the drop).
    fn reopen_path(path: &Path) -> DiskStore {
        reopen_with(path, ENTRY_CACHE_BYTES)
    }

    fn reopen_with(path: &Path, entry_cache: u64) -> DiskStore {
        for _ in 0..100 {
            match DiskStore::open_with(path, 8 << 20, entry_cache) {
                Ok(store) => return store,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        DiskStore::open_with(path, 8 << 20, entry_cache).expect("reopen")
    }

    #[test]
    fn conformance() {
        // With no entry bodies kept, every entry is read back from its segment.
        for entry_cache in [ENTRY_CACHE_BYTES, 0] {
            let mut dirs = Vec::new();
            let mut open = || {
                let dir = tempfile::tempdir().expect("temp dir");
                let store = DiskStore::open_with(dir.path(), 8 << 20, entry_cache).expect("open");
                dirs.push(dir);
                store
            };
            let reopen = |store: DiskStore| {
                let path = store.path().to_path_buf();
                drop(store);
                reopen_with(&path, entry_cache)
            };
            super::super::conformance::run(&mut open, Some(reopen));
        }
    }

    fn snapshot_at(index: u64, data: &'static [u8]) -> Snapshot {
        let mut snapshot = Snapshot {
            data: data.into(),
            ..Snapshot::default()
        };
        snapshot.mut_metadata().index = index;
        snapshot.mut_metadata().term = 1;
        snapshot
    }

    /// The names of the received snapshots' files in `dir`, sorted.
    fn received_files(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .expect("list")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .filter(|name| received_file_index(name).is_some())
            .collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn a_received_snapshot_is_installed_from_its_file() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = DiskStore::open(dir.path(), 1 << 20).expect("open");
        let stager = store.stager();
        // An abandoned reception leaves its temporary file; an older whole one
        // was never installed (Raft turned it down).
        let mut abandoned = stager.receive(12).expect("receive");
        abandoned.write(b"twel").expect("write");
        drop(abandoned);
        let mut older = stager.receive(11).expect("receive");
        older.write(b"eleven").expect("write");
        older.finish(None).expect("finish");
        let mut received = stager.receive(12).expect("receive");
        for piece in [&b"twe"[..], b"lve"] {
            received.write(piece).expect("write");
        }
        assert!(
            received.finish(Some(7)).is_err(),
            "a stream that ended short is not kept"
        );
        let mut received = stager.receive(12).expect("receive");
        for piece in [&b"twe"[..], b"lve"] {
            received.write(piece).expect("write");
        }
        assert_eq!(received.finish(Some(6)).expect("finish"), 6);
        let mut data = String::new();
        store
            .received_snapshot(12)
            .expect("received")
            .read_to_string(&mut data)
            .expect("read");
        assert_eq!(data, "twelve");
        assert!(
            store.received_snapshot(13).is_err(),
            "nothing received at 13"
        );
        store
            .install_snapshot(&snapshot_at(12, b""))
            .expect("install without data");
        store.flush().expect("flush");
        assert!(
            received_files(dir.path()).is_empty(),
            "{:?}",
            received_files(dir.path())
        );
        assert_eq!(store.snapshot_bytes(), 6);
        drop(store);
        let store = reopen_path(dir.path());
        let snapshot = store.latest_snapshot().expect("read");
        assert_eq!(snapshot.get_metadata().index, 12);
        assert_eq!(snapshot.data.as_ref(), b"twelve");
    }

    #[test]
    fn received_snapshots_not_installed_are_void_after_a_restart() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = DiskStore::open(dir.path(), 1 << 20).expect("open");
        let mut received = store.stager().receive(5).expect("receive");
        received.write(b"five").expect("write");
        received.finish(None).expect("finish");
        let mut partial = store.stager().receive(6).expect("receive");
        partial.write(b"si").expect("write");
        drop(partial);
        assert_eq!(received_files(dir.path()).len(), 2);
        drop(store);
        let store = reopen_path(dir.path());
        assert!(received_files(dir.path()).is_empty());
        assert_eq!(store.snapshot_metadata().index, 0);
    }

    #[test]
    fn staged_snapshots_survive_reopening_and_replace_older_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = DiskStore::open(dir.path(), 1 << 20).expect("open");
        let entries: Vec<Entry> = (1..=10)
            .map(|index| Entry {
                index,
                term: 1,
                ..Entry::default()
            })
            .collect();
        store.append(&entries).expect("append");
        store
            .save_snapshot(&snapshot_at(4, b"four"), 3)
            .expect("save 4");
        store.flush().expect("flush");
        // The snapshot thread stages the data; the Raft thread records it.
        store.stager().stage(8, b"eight").expect("stage");
        // Staged for a snapshot that 8 overtakes (one installed from a
        // leader may): removed at once, not in the background.
        store.stager().stage(9, b"nine").expect("stage");
        store
            .save_snapshot(&snapshot_at(8, b"eight"), 7)
            .expect("save 8");
        assert!(
            !data_file(dir.path(), 9).exists(),
            "overtaken data removed inline"
        );
        store.flush().expect("flush");
        store.reaper.wait();
        let mut files: Vec<u64> = std::fs::read_dir(dir.path())
            .expect("list")
            .filter_map(|e| data_file_index(&e.expect("entry").file_name().to_string_lossy()))
            .collect();
        files.sort_unstable();
        assert_eq!(files, vec![8], "older data removed");
        drop(store);
        let store = reopen_path(dir.path());
        let snapshot = store.latest_snapshot().expect("read");
        assert!(store.snapshot.data.is_empty(), "data not kept in memory");
        assert_eq!(snapshot.get_metadata().index, 8);
        assert_eq!(snapshot.data.as_ref(), b"eight");
        assert_eq!(store.snapshot_bytes(), 5, "the size, from the file");
        assert_eq!(store.entries.first(), 7);
    }

    #[test]
    fn one_process_per_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _first = DiskStore::open(dir.path(), 1 << 20).expect("open");
        assert!(DiskStore::open(dir.path(), 1 << 20).is_err());
    }

    #[test]
    fn a_data_dir_with_the_log_in_sled_is_moved_into_the_write_ahead_log() {
        let dir = tempfile::tempdir().expect("temp dir");
        let hard_state = HardState {
            term: 3,
            vote: 2,
            commit: 4,
            ..HardState::default()
        };
        let conf_state = ConfState {
            voters: vec![1, 2, 3],
            ..ConfState::default()
        };
        {
            // The layout before the write-ahead log: entries in the sled tree
            // `log` by big-endian index, the hard state in `meta`.
            let db = sled::open(dir.path()).expect("sled");
            let log = db.open_tree(OLD_LOG).expect("log tree");
            for index in 1..=5 {
                let entry = Entry {
                    index,
                    term: if index < 5 { 2 } else { 3 },
                    data: vec![index as u8; 10].into(),
                    ..Entry::default()
                };
                log.insert(
                    index.to_be_bytes(),
                    encode("entry", &entry).expect("encode"),
                )
                .expect("insert");
            }
            let meta = db.open_tree("meta").expect("meta tree");
            meta.insert(
                HARD_STATE,
                encode("hard state", &hard_state).expect("encode"),
            )
            .expect("insert");
            meta.insert(
                CONF_STATE,
                encode("conf state", &conf_state).expect("encode"),
            )
            .expect("insert");
            db.flush().expect("flush");
        }
        for round in ["converting", "converted"] {
            let store = reopen_path(dir.path());
            assert!(store.is_initialized(), "{round}");
            assert_eq!(store.hard_state(), hard_state, "{round}");
            assert_eq!((store.entries.first(), store.last()), (1, 5), "{round}");
            assert_eq!(raft::Storage::term(&store, 5).expect("term"), 3, "{round}");
            let entries =
                raft::Storage::entries(&store, 2, 4, None, GetEntriesContext::empty(false));
            let data: Vec<Vec<u8>> = entries
                .expect("entries")
                .iter()
                .map(|e| e.data.to_vec())
                .collect();
            assert_eq!(data, vec![vec![2; 10], vec![3; 10]], "{round}");
            assert!(
                !store.db.tree_names().iter().any(|n| n.as_ref() == OLD_LOG),
                "{round}: the sled log is gone"
            );
        }
    }

    #[test]
    fn a_log_the_snapshot_replaced_stays_replaced_after_more_appends() {
        let ctx = || GetEntriesContext::empty(false);
        let entry = |index, term| Entry {
            index,
            term,
            data: vec![index as u8; 8].into(),
            ..Entry::default()
        };
        // An interrupted install_snapshot: the snapshot (at 10, term 2) was
        // recorded, the log's reset was not. One old log is behind it, one
        // disagrees with it.
        for old_last in [3, 12] {
            let dir = tempfile::tempdir().expect("temp dir");
            let mut store = DiskStore::open(dir.path(), 1 << 20).expect("open");
            let old: Vec<Entry> = (1..=old_last).map(|i| entry(i, 1)).collect();
            store.append(&old).expect("append");
            store.flush().expect("flush");
            let mut snap = snapshot_at(10, b"ten");
            snap.mut_metadata().term = 2;
            store.put_snapshot(&snap).expect("snapshot");
            drop(store);
            let mut store = reopen_path(dir.path());
            assert_eq!(
                (store.entries.first(), store.last()),
                (11, 10),
                "{old_last}"
            );
            store.append(&[entry(11, 2), entry(12, 2)]).expect("append");
            store.flush().expect("flush");
            drop(store);
            let store = reopen_path(dir.path());
            assert_eq!(
                (store.entries.first(), store.last()),
                (11, 12),
                "{old_last}"
            );
            let terms: Vec<u64> = raft::Storage::entries(&store, 11, 13, None, ctx())
                .expect("entries")
                .iter()
                .map(|e| e.term)
                .collect();
            assert_eq!(terms, vec![2, 2], "{old_last}");
        }
    }
}
