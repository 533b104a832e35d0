//! The sled-backed [`LogStore`]. One sled database per member holds two trees:
//! `log` (big-endian index → encoded entry) and `meta` (hard state, membership,
//! newest snapshot). Hard state, membership and the first/last index are cached
//! in memory; entries are read from sled, which keeps recent pages cached.
//! sled is durable only after `flush()`, which [`LogStore::flush`] calls.
//!
//! A snapshot is kept in two parts: its metadata in the `snapshot` record and
//! its data in a file of its own, `snapshot-INDEX.data` beside the database
//! (written to a temporary name, fsynced, renamed, directory fsynced). The
//! data of the member's own snapshots is written by the snapshot thread
//! through a [`SnapshotStager`], so the Raft thread only writes the small
//! metadata record, and a large write never holds up sled's flushes, which
//! every Ready waits for. The metadata is recorded after its data file is
//! durable, and older data files are removed after that, so a crash leaves
//! either snapshot whole. (Data dirs written before this layout hold the data
//! inside the `snapshot` record; they are read as before.)

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use protobuf::Message;
use raft::eraftpb::{ConfState, Entry, HardState, Snapshot, SnapshotMetadata};
use raft::{GetEntriesContext, RaftState, StorageError};

use super::{LogStore, StoreError, limit_size};

const HARD_STATE: &[u8] = b"hard_state";
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

/// Writes `data` durably as the data file of snapshot `index` in `dir`.
fn write_data_file(dir: &Path, index: u64, data: &[u8]) -> Result<(), StoreError> {
    let path = data_file(dir, index);
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::File::create(&tmp)?;
    std::io::Write::write_all(&mut file, data)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    Ok(())
}

/// Writes a snapshot's data into the store from another thread.
#[derive(Debug, Clone)]
pub struct SnapshotStager {
    dir: PathBuf,
    data_indexes: DataIndexes,
}

impl SnapshotStager {
    /// Stores (durably) the data of the snapshot at `index`; the snapshot is
    /// only in effect once [`LogStore::save_snapshot`] records it.
    pub fn stage(&self, index: u64, data: &[u8]) -> Result<(), StoreError> {
        write_data_file(&self.dir, index, data)?;
        lock(&self.data_indexes).insert(index);
        Ok(())
    }
}

/// A [`LogStore`] in a sled database directory.
pub struct SledStore {
    path: PathBuf,
    db: sled::Db,
    log: sled::Tree,
    meta: sled::Tree,
    hard_state: HardState,
    conf_state: ConfState,
    /// The newest snapshot's metadata; its data stays in its file (read
    /// when asked for) unless it is an old-format store's inline data.
    snapshot: Snapshot,
    data_indexes: DataIndexes,
    first: u64,
    last: u64,
}

impl std::fmt::Debug for SledStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.path)
            .field("first", &self.first)
            .field("last", &self.last)
            .finish_non_exhaustive()
    }
}

fn key(index: u64) -> [u8; 8] {
    index.to_be_bytes()
}

fn decode<M: Message>(what: &'static str, bytes: &[u8]) -> Result<M, StoreError> {
    M::parse_from_bytes(bytes).map_err(|source| StoreError::Corrupt { what, source })
}

fn encode<M: Message>(what: &'static str, msg: &M) -> Result<Vec<u8>, StoreError> {
    msg.write_to_bytes()
        .map_err(|source| StoreError::Corrupt { what, source })
}

impl SledStore {
    /// Opens (or creates) the store in `dir`. `cache_bytes` bounds sled's page cache.
    pub fn open(dir: &Path, cache_bytes: u64) -> Result<Self, StoreError> {
        let db = sled::Config::new()
            .path(dir)
            .cache_capacity(cache_bytes)
            .mode(sled::Mode::HighThroughput)
            .open()?;
        let log = db.open_tree("log")?;
        let meta = db.open_tree("meta")?;
        let hard_state = match meta.get(HARD_STATE)? {
            Some(b) => decode("hard state", &b)?,
            None => HardState::default(),
        };
        let conf_state = match meta.get(CONF_STATE)? {
            Some(b) => decode("conf state", &b)?,
            None => ConfState::default(),
        };
        let snapshot: Snapshot = match meta.get(SNAPSHOT)? {
            Some(b) => decode("snapshot", &b)?,
            None => Snapshot::default(),
        };
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
        // A snapshot only holds committed state: its index is committed even if
        // a crash lost the hard-state write that said so.
        let mut hard_state = hard_state;
        hard_state.commit = hard_state.commit.max(snap_index);
        let mut first = match log.first()? {
            Some((k, _)) => index_of(&k)?,
            None => snap_index + 1,
        };
        let mut last = match log.last()? {
            Some((k, _)) => index_of(&k)?,
            None => snap_index,
        };
        if first > snap_index + 1 {
            return Err(StoreError::Invariant(format!(
                "log starts at {first} but the snapshot ends at {snap_index}"
            )));
        }
        if snap_index > 0 && first <= snap_index {
            // An interrupted install_snapshot leaves the old log beside the new
            // snapshot; a log that disagrees with the snapshot is dropped.
            let term_at = match log.get(key(snap_index))? {
                Some(b) => Some(decode::<Entry>("entry", &b)?.term),
                None => None,
            };
            if term_at != Some(snapshot.get_metadata().term) {
                log.clear()?;
                first = snap_index + 1;
                last = snap_index;
            }
        }
        Ok(Self {
            path: dir.to_path_buf(),
            db,
            log,
            meta,
            hard_state,
            conf_state,
            snapshot,
            data_indexes: Arc::new(Mutex::new(data_indexes)),
            first,
            last,
        })
    }

    /// The database directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Bytes sled uses on disk, for status and benchmarks.
    pub fn size_on_disk(&self) -> Result<u64, StoreError> {
        Ok(self.db.size_on_disk()?)
    }

    /// A handle that writes snapshot data from another thread.
    pub fn stager(&self) -> SnapshotStager {
        SnapshotStager {
            dir: self.path.clone(),
            data_indexes: Arc::clone(&self.data_indexes),
        }
    }

    /// Records `snapshot` as the newest: its data (unless staged already),
    /// then its metadata, then drops every other snapshot's data.
    fn put_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let index = snapshot.get_metadata().index;
        // Staged data is whole (a sled insert is atomic) and equal to ours
        // (the state at one index is the same everywhere).
        let staged = lock(&self.data_indexes).contains(&index);
        if !staged {
            write_data_file(&self.path, index, &snapshot.data)?;
            lock(&self.data_indexes).insert(index);
        }
        let mut bare = Snapshot::default();
        bare.set_metadata(snapshot.get_metadata().clone());
        self.meta.insert(SNAPSHOT, encode("snapshot", &bare)?)?;
        // The record must be durable before the old data goes.
        self.db.flush()?;
        let mut indexes = lock(&self.data_indexes);
        for &old in indexes.iter().filter(|&&i| i != index) {
            let _ = std::fs::remove_file(data_file(&self.path, old));
        }
        indexes.clear();
        indexes.insert(index);
        drop(indexes);
        self.snapshot = bare;
        Ok(())
    }

    /// Removes log entries `from..=to_inclusive` on a thread of its own:
    /// thousands of entries take up to a second (sled keeps large values in
    /// files of their own), and nothing reads below the new first index. A
    /// crash before it is done leaves entries below the snapshot, which
    /// reopening keeps as catch-up entries.
    fn compact_in_background(&self, from: u64, to_inclusive: u64) {
        let log = self.log.clone();
        let compact = move || {
            if let Err(err) = remove_range(&log, from, to_inclusive) {
                tracing::error!(from, to_inclusive, %err, "log compaction failed");
            }
        };
        let spawned = std::thread::Builder::new()
            .name("log-compaction".into())
            .spawn(compact.clone());
        if spawned.is_err() {
            compact();
        }
    }

    fn remove_range(&self, from: u64, to_inclusive: u64) -> Result<(), StoreError> {
        remove_range(&self.log, from, to_inclusive)
    }
}

/// Removes log entries `from..=to_inclusive` from `log`.
fn remove_range(log: &sled::Tree, from: u64, to_inclusive: u64) -> Result<(), StoreError> {
    if from > to_inclusive {
        return Ok(());
    }
    // The log holds every index from `first` to `last`: the keys are known,
    // so nothing is read (reading would page in every entry's value). One
    // remove at a time, lowest first: a crash midway leaves a contiguous log,
    // and no exclusive lock is taken (a sled batch locks out every other
    // writer, the Raft thread's appends included, for as long as it runs:
    // 40-100 ms for 10,000 entries, the p99.9 of writes).
    for index in from..=to_inclusive {
        log.remove(key(index))?;
    }
    Ok(())
}

fn index_of(k: &[u8]) -> Result<u64, StoreError> {
    let bytes: [u8; 8] = k
        .try_into()
        .map_err(|_| StoreError::Invariant(format!("log key of {} bytes", k.len())))?;
    Ok(u64::from_be_bytes(bytes))
}

impl raft::Storage for SledStore {
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
        if low < self.first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        assert!(
            high <= self.last + 1,
            "entries({low}, {high}) past last index {}",
            self.last
        );
        let max_size = max_size.into();
        let mut out = Vec::with_capacity(usize::try_from(high - low).unwrap_or(0));
        let mut size = 0u64;
        let mut full = false;
        for item in self.log.range(key(low)..key(high)) {
            let (_, v) = item.map_err(StoreError::from)?;
            let entry: Entry = decode("entry", &v)?;
            size += u64::from(entry.compute_size());
            out.push(entry);
            if max_size.is_some_and(|m| size > m) {
                full = true;
                break;
            }
        }
        if !full && out.len() as u64 != high - low {
            let found = out.len();
            return Err(StoreError::Invariant(format!(
                "entries [{low}, {high}): only {found} stored"
            ))
            .into());
        }
        limit_size(&mut out, max_size);
        Ok(out)
    }

    fn term(&self, idx: u64) -> raft::Result<u64> {
        let snap = self.snapshot.get_metadata();
        if idx == snap.index {
            return Ok(snap.term);
        }
        if idx < self.first {
            return Err(raft::Error::Store(StorageError::Compacted));
        }
        if idx > self.last {
            return Err(raft::Error::Store(StorageError::Unavailable));
        }
        let bytes = self
            .log
            .get(key(idx))
            .map_err(StoreError::from)?
            .ok_or_else(|| StoreError::Invariant(format!("entry {idx} missing")))?;
        let entry: Entry = decode("entry", &bytes)?;
        Ok(entry.term)
    }

    fn first_index(&self) -> raft::Result<u64> {
        Ok(self.first)
    }

    fn last_index(&self) -> raft::Result<u64> {
        Ok(self.last)
    }

    /// Reads the data from its file: a follower that needs a snapshot is
    /// rare, and keeping the bytes in memory for it cost ~190 bytes per znode.
    fn snapshot(&self, request_index: u64, _to: u64) -> raft::Result<Snapshot> {
        if self.snapshot.get_metadata().index < request_index {
            return Err(raft::Error::Store(
                StorageError::SnapshotTemporarilyUnavailable,
            ));
        }
        Ok(self.latest_snapshot()?)
    }
}

impl LogStore for SledStore {
    fn is_initialized(&self) -> bool {
        self.conf_state != ConfState::default()
    }

    fn append(&mut self, entries: &[Entry]) -> Result<(), StoreError> {
        let (Some(first), Some(last)) = (entries.first(), entries.last()) else {
            return Ok(());
        };
        if first.index < self.first || first.index > self.last + 1 {
            return Err(StoreError::Invariant(format!(
                "append at {} outside [{}, {}]",
                first.index,
                self.first,
                self.last + 1
            )));
        }
        let mut batch = sled::Batch::default();
        for stale in last.index + 1..=self.last {
            batch.remove(&key(stale));
        }
        for e in entries {
            batch.insert(&key(e.index), encode("entry", e)?);
        }
        self.log.apply_batch(batch)?;
        self.last = last.index;
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: &HardState) -> Result<(), StoreError> {
        self.meta
            .insert(HARD_STATE, encode("hard state", hard_state)?)?;
        self.hard_state = hard_state.clone();
        Ok(())
    }

    fn hard_state(&self) -> HardState {
        self.hard_state.clone()
    }

    fn set_conf_state(&mut self, conf_state: &ConfState) -> Result<(), StoreError> {
        self.meta
            .insert(CONF_STATE, encode("conf state", conf_state)?)?;
        self.conf_state = conf_state.clone();
        Ok(())
    }

    fn install_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), StoreError> {
        let meta = snapshot.get_metadata();
        let mut hard_state = self.hard_state.clone();
        hard_state.term = hard_state.term.max(meta.term);
        hard_state.commit = meta.index;
        // The snapshot goes in first: a crash in between leaves an old log next
        // to a newer snapshot, which reopening handles.
        self.put_snapshot(snapshot)?;
        self.remove_range(self.first, self.last)?;
        self.first = meta.index + 1;
        self.last = meta.index;
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
        if compact_to > self.first {
            self.compact_in_background(self.first, compact_to - 1);
            self.first = compact_to;
            self.last = self.last.max(compact_to - 1);
        }
        Ok(())
    }

    fn latest_snapshot(&self) -> Result<Snapshot, StoreError> {
        let mut snapshot = self.snapshot.clone();
        let index = snapshot.get_metadata().index;
        if index > 0 && snapshot.data.is_empty() {
            let path = data_file(&self.path, index);
            snapshot.data = std::fs::read(&path)
                .map_err(|e| {
                    StoreError::Invariant(format!(
                        "snapshot {index}: data file {}: {e}",
                        path.display()
                    ))
                })?
                .into();
        }
        Ok(snapshot)
    }

    fn snapshot_metadata(&self) -> SnapshotMetadata {
        self.snapshot.get_metadata().clone()
    }

    fn snapshot_stager(&self) -> Option<SnapshotStager> {
        Some(self.stager())
    }

    fn flush(&mut self) -> Result<(), StoreError> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens `path` again once the dropped store's background flusher has
    /// let go of sled's file lock (it may hold it a moment after the drop).
    fn reopen_path(path: &Path) -> SledStore {
        for _ in 0..100 {
            match SledStore::open(path, 8 << 20) {
                Ok(store) => return store,
                Err(_) => std::thread::sleep(std::time::Duration::from_millis(20)),
            }
        }
        SledStore::open(path, 8 << 20).expect("reopen")
    }

    #[test]
    fn conformance() {
        let mut dirs = Vec::new();
        let mut open = || {
            let dir = tempfile::tempdir().expect("temp dir");
            let store = SledStore::open(dir.path(), 8 << 20).expect("open");
            dirs.push(dir);
            store
        };
        let reopen = |store: SledStore| {
            let path = store.path().to_path_buf();
            drop(store);
            reopen_path(&path)
        };
        super::super::conformance::run(&mut open, Some(reopen));
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

    #[test]
    fn staged_snapshots_survive_reopening_and_replace_older_data() {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut store = SledStore::open(dir.path(), 1 << 20).expect("open");
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
        store
            .save_snapshot(&snapshot_at(8, b"eight"), 7)
            .expect("save 8");
        store.flush().expect("flush");
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
        assert_eq!(store.first, 7);
    }

    #[test]
    fn one_process_per_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        let _first = SledStore::open(dir.path(), 1 << 20).expect("open");
        assert!(SledStore::open(dir.path(), 1 << 20).is_err());
    }
}
