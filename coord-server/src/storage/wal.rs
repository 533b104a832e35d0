//! The Raft log's write-ahead log: numbered segment files of checksummed
//! records, appended with one `write` and one `fdatasync` per flush.
//!
//! sled kept the log before (a B-tree insert per entry, its own I/O threads
//! and page cache); it took about 40% of a member's CPU per replicated write
//! (docs/benchmarks.md). A Raft log is only ever appended, truncated at the
//! tail and dropped at the head, which a sequence of files does with no index.
//!
//! # Format
//! `<dir>/<seq:020>.wal`, each a run of records
//! `[length u32 LE][crc32 u32 LE][kind u8][payload]` where `length` counts the
//! kind and the payload and the CRC covers both. Kinds: an entry (protobuf),
//! the hard state (protobuf), a reset (the log was replaced by a snapshot at
//! an index: u64 LE) and a compaction (entries before an index are dropped:
//! u64 LE). Replaying the records in order rebuilds the log: an entry at an
//! index the log already holds replaces that entry and everything after it
//! (a new leader's suffix), as in etcd's WAL.
//!
//! # Crash safety
//! Records reach the disk in file order; a crash can leave the last segment
//! with a torn or half-written tail, which opening cuts off (everything after
//! the first record that is short or fails its CRC was never flushed, so never
//! acknowledged). Any other segment was flushed whole before the next one was
//! started, so a bad record there is corruption and opening fails rather than
//! silently dropping acknowledged entries. Every segment starts with the hard
//! state, written and flushed before the segment is used, so segments that
//! hold only entries below the compaction point can be deleted without
//! losing the term and vote. Opening always starts a fresh segment, so
//! nothing is ever written over bytes a crash may have left behind.

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::os::unix::fs::FileExt as _;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::thread::JoinHandle;

use protobuf::Message;
use raft::eraftpb::{Entry, HardState};

use super::StoreError;
use super::entries::{Location, LogEntries};
use super::reaper::Reaper;

/// Bytes of a record before its kind: length and CRC.
const HEADER: usize = 8;
const ENTRY: u8 = 1;
const HARD_STATE: u8 = 2;
const RESET: u8 = 3;
const COMPACT: u8 = 4;

/// A segment is closed and a new one started once it holds this many bytes.
pub const SEGMENT_BYTES: u64 = 16 << 20;

/// One segment file: its number and the highest entry index it holds.
#[derive(Debug)]
struct Segment {
    seq: u64,
    max_index: u64,
}

/// The log as replaying the segments rebuilt it.
#[derive(Debug)]
pub struct Replayed {
    /// The entries, the newest with their bodies.
    pub entries: LogEntries,
    /// A record fixed where the log starts (any entry may start it before).
    started: bool,
    /// The newest hard state recorded.
    pub hard_state: Option<HardState>,
}

impl Replayed {
    fn entry(&mut self, entry: Entry, at: Location) -> Result<(), StoreError> {
        let (first, last) = (self.entries.first(), self.entries.last());
        if self.entries.is_empty() && !self.started {
            self.entries.reset(entry.index);
        } else if entry.index < first || entry.index > last + 1 {
            return Err(StoreError::Invariant(format!(
                "write-ahead log: entry {} after entries [{first}, {last}]",
                entry.index
            )));
        }
        self.started = true;
        self.entries.truncate_from(entry.index);
        self.entries.push(entry, at);
        Ok(())
    }

    fn reset(&mut self, index: u64) {
        self.entries.reset(index + 1);
        self.started = true;
    }

    fn compact(&mut self, first: u64) {
        self.entries.compact(first);
        self.started = true;
    }
}

/// The open write-ahead log: the active segment and the records buffered
/// for the next [`Wal::sync`].
#[derive(Debug)]
pub struct Wal {
    dir: PathBuf,
    file: File,
    written: u64,
    /// The active segment was zero-filled to its full size in advance.
    preallocated: bool,
    /// The thread zero-filling the next segment, if one was started.
    spare: Option<JoinHandle<std::io::Result<File>>>,
    segments: VecDeque<Segment>,
    buf: Vec<u8>,
    hard_state: HardState,
    hard_state_dirty: bool,
    segment_bytes: u64,
    /// The segment [`Wal::read`] last read from, kept open: a follower that
    /// catches up reads thousands of entries, mostly from one segment.
    reader: Mutex<Option<(u64, File)>>,
    /// Deletes the segments compaction made obsolete.
    reaper: Reaper,
}

/// The next segment's file while it is being zero-filled.
const SPARE: &str = "spare.tmp";

/// Zero-fills the next segment in `dir` to `bytes`. An `fdatasync` after a
/// write into blocks that already hold data only writes the data (about 1.5×
/// the syncs per second here), where one after a write that grows the file
/// also commits the file system's journal for the new size and blocks.
fn prepare_spare(dir: &Path, bytes: u64) -> std::io::Result<File> {
    let mut file = OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .open(dir.join(SPARE))?;
    let zeros = vec![0u8; 1 << 20];
    let mut left = bytes;
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(usize::MAX).min(zeros.len());
        file.write_all(&zeros[..n])?;
        left -= n as u64;
    }
    file.sync_all()?;
    Ok(file)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

fn segment_seq(name: &str) -> Option<u64> {
    name.strip_suffix(".wal")?.parse().ok()
}

fn corrupt(what: &'static str) -> impl FnOnce(protobuf::ProtobufError) -> StoreError {
    move |source| StoreError::Corrupt { what, source }
}

fn u64_payload(payload: &[u8]) -> Option<u64> {
    Some(u64::from_le_bytes(payload.try_into().ok()?))
}

/// The record starting at byte `at` of `bytes`: its kind, its payload and
/// the byte after it; `None` where no whole record with a matching CRC starts
/// (zeros, a torn write, the end).
fn record_at(bytes: &[u8], at: usize) -> Option<(u8, &[u8], usize)> {
    let header = bytes.get(at..at.checked_add(HEADER)?)?;
    let len = u32::from_le_bytes(header[..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().ok()?);
    let end = at.checked_add(HEADER)?.checked_add(len)?;
    let body = bytes.get(at + HEADER..end)?;
    let (&kind, payload) = body.split_first()?;
    (crc32fast::hash(body) == crc).then_some((kind, payload, end))
}

/// Replays the records of one segment into `log`; returns the length of its
/// valid prefix and the highest entry index it holds.
fn replay_segment(bytes: &[u8], seq: u64, log: &mut Replayed) -> Result<(usize, u64), StoreError> {
    let mut at = 0;
    let mut max_index = 0;
    while let Some((kind, payload, end)) = record_at(bytes, at) {
        match kind {
            ENTRY => {
                let entry = Entry::parse_from_bytes(payload).map_err(corrupt("log entry"))?;
                max_index = max_index.max(entry.index);
                let at = Location {
                    seq,
                    offset: at as u64,
                    len: (end - at) as u32,
                };
                log.entry(entry, at)?;
            }
            HARD_STATE => {
                log.hard_state =
                    Some(HardState::parse_from_bytes(payload).map_err(corrupt("hard state"))?);
            }
            kind @ (RESET | COMPACT) => {
                let index = u64_payload(payload).ok_or_else(|| {
                    StoreError::Invariant(format!("segment {seq}: bad record of kind {kind}"))
                })?;
                if kind == RESET {
                    log.reset(index);
                } else {
                    log.compact(index);
                }
            }
            kind => {
                return Err(StoreError::Invariant(format!(
                    "segment {seq}: unknown record kind {kind} at byte {at}"
                )));
            }
        }
        at = end;
    }
    Ok((at, max_index))
}

/// Creates segment `seq` and makes its directory entry durable.
fn create_segment(dir: &Path, seq: u64) -> Result<File, StoreError> {
    let file = OpenOptions::new()
        .create_new(true)
        .write(true)
        .open(segment_path(dir, seq))?;
    File::open(dir)?.sync_all()?;
    Ok(file)
}

impl Wal {
    /// Opens the log in `dir` (created if missing), replays it, cuts off a
    /// torn tail of the last segment and starts a new segment.
    /// Entry bodies are kept up to `cache_bytes` (see [`LogEntries`]).
    pub fn open(
        dir: &Path,
        segment_bytes: u64,
        cache_bytes: u64,
    ) -> Result<(Self, Replayed), StoreError> {
        std::fs::create_dir_all(dir)?;
        match std::fs::remove_file(dir.join(SPARE)) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(err.into()),
            _ => {}
        }
        let mut seqs = Vec::new();
        for item in std::fs::read_dir(dir)? {
            if let Some(seq) = segment_seq(&item?.file_name().to_string_lossy()) {
                seqs.push(seq);
            }
        }
        seqs.sort_unstable();
        let mut log = Replayed {
            entries: LogEntries::new(1, cache_bytes),
            started: false,
            hard_state: None,
        };
        let mut segments = VecDeque::with_capacity(seqs.len() + 1);
        for (i, &seq) in seqs.iter().enumerate() {
            let path = segment_path(dir, seq);
            let bytes = std::fs::read(&path)?;
            let (valid, max_index) = replay_segment(&bytes, seq, &mut log)?;
            if bytes[valid..].iter().any(|&b| b != 0) {
                if i + 1 < seqs.len() {
                    return Err(StoreError::Invariant(format!(
                        "write-ahead log segment {} is corrupt at byte {valid} of {}",
                        path.display(),
                        bytes.len()
                    )));
                }
                tracing::warn!(
                    segment = %path.display(),
                    kept = valid,
                    dropped = bytes.len() - valid,
                    "cut off the torn tail of the write-ahead log (never flushed)"
                );
                let file = OpenOptions::new().write(true).open(&path)?;
                file.set_len(valid as u64)?;
                file.sync_all()?;
            }
            segments.push_back(Segment { seq, max_index });
            log.entries.evict();
        }
        let seq = segments.back().map_or(1, |s| s.seq + 1);
        let mut wal = Self {
            dir: dir.to_path_buf(),
            file: create_segment(dir, seq)?,
            written: 0,
            preallocated: false,
            spare: None,
            segments,
            buf: Vec::new(),
            hard_state: log.hard_state.clone().unwrap_or_default(),
            hard_state_dirty: true,
            segment_bytes,
            reader: Mutex::new(None),
            reaper: Reaper::default(),
        };
        wal.segments.push_back(Segment { seq, max_index: 0 });
        wal.write_out()?;
        Ok((wal, log))
    }

    /// Buffers one record; `write` appends its payload.
    fn push(
        &mut self,
        kind: u8,
        write: impl FnOnce(&mut Vec<u8>) -> Result<(), StoreError>,
    ) -> Result<(), StoreError> {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0; HEADER]);
        self.buf.push(kind);
        if let Err(err) = write(&mut self.buf) {
            self.buf.truncate(start);
            return Err(err);
        }
        let body = &self.buf[start + HEADER..];
        let Ok(len) = u32::try_from(body.len()) else {
            self.buf.truncate(start);
            return Err(StoreError::Invariant("a log record over 4 GiB".into()));
        };
        let crc = crc32fast::hash(body);
        self.buf[start..start + 4].copy_from_slice(&len.to_le_bytes());
        self.buf[start + 4..start + HEADER].copy_from_slice(&crc.to_le_bytes());
        Ok(())
    }

    /// Buffers an entry (replacing any entry at its index and after it);
    /// returns where it will be once written.
    pub fn append(&mut self, entry: &Entry) -> Result<Location, StoreError> {
        let start = self.buf.len();
        self.push(ENTRY, |buf| {
            entry.write_to_vec(buf).map_err(corrupt("log entry"))
        })?;
        let Some(active) = self.segments.back_mut() else {
            return Err(StoreError::Invariant(
                "write-ahead log without a segment".into(),
            ));
        };
        active.max_index = active.max_index.max(entry.index);
        Ok(Location {
            seq: active.seq,
            offset: self.written + start as u64,
            len: (self.buf.len() - start) as u32,
        })
    }

    /// Reads back the entry written at `at`.
    pub fn read(&self, at: Location) -> Result<Entry, StoreError> {
        let mut reader = self.reader.lock().unwrap_or_else(PoisonError::into_inner);
        let (_, file) = match reader.take() {
            Some((seq, file)) if seq == at.seq => reader.insert((seq, file)),
            _ => reader.insert((at.seq, File::open(segment_path(&self.dir, at.seq))?)),
        };
        let mut record = vec![0; at.len as usize];
        file.read_exact_at(&mut record, at.offset)?;
        match record_at(&record, 0) {
            Some((ENTRY, payload, end)) if end == record.len() => {
                Entry::parse_from_bytes(payload).map_err(corrupt("log entry"))
            }
            _ => Err(StoreError::Invariant(format!(
                "write-ahead log segment {}: no entry at byte {}",
                at.seq, at.offset
            ))),
        }
    }

    /// Records the hard state; buffered, written after every record before
    /// it at the next [`Wal::sync`].
    pub fn set_hard_state(&mut self, hard_state: &HardState) {
        self.hard_state = hard_state.clone();
        self.hard_state_dirty = true;
    }

    /// The newest hard state set.
    pub fn hard_state(&self) -> &HardState {
        &self.hard_state
    }

    /// Buffers a reset: the log was replaced by a snapshot at `index`.
    pub fn reset(&mut self, index: u64) -> Result<(), StoreError> {
        self.push(RESET, |buf| {
            buf.extend_from_slice(&index.to_le_bytes());
            Ok(())
        })
    }

    /// Buffers a compaction to `first` and deletes the segments whose entries
    /// are all below it (never the active one).
    pub fn compact(&mut self, first: u64) -> Result<(), StoreError> {
        self.push(COMPACT, |buf| {
            buf.extend_from_slice(&first.to_le_bytes());
            Ok(())
        })?;
        let mut old = Vec::new();
        while self.segments.len() > 1 && self.segments[0].max_index < first {
            let Some(segment) = self.segments.pop_front() else {
                break;
            };
            old.push(segment_path(&self.dir, segment.seq));
        }
        // A deleted segment's blocks are freed once no handle holds it open.
        let reader = self
            .reader
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        if reader
            .as_ref()
            .is_some_and(|(seq, _)| self.segments.front().is_some_and(|s| *seq < s.seq))
        {
            *reader = None;
        }
        self.reaper.remove(old);
        Ok(())
    }

    /// True when records are buffered that [`Wal::sync`] would write.
    pub fn is_dirty(&self) -> bool {
        self.hard_state_dirty || !self.buf.is_empty()
    }

    /// Writes the buffered records (the hard state last) in one write and
    /// makes them durable; then starts a new segment if this one is full, or
    /// if it was not preallocated and a preallocated one is ready.
    pub fn sync(&mut self) -> Result<(), StoreError> {
        if !self.is_dirty() {
            return Ok(());
        }
        self.write_out()?;
        let spare_ready = self.spare.as_ref().is_some_and(JoinHandle::is_finished);
        if self.written >= self.segment_bytes || (!self.preallocated && spare_ready) {
            self.roll_over()?;
        }
        if self.spare.is_none() && self.written >= self.segment_bytes / 16 {
            let (dir, bytes) = (self.dir.clone(), self.segment_bytes);
            match std::thread::Builder::new()
                .name("wal-prealloc".into())
                .spawn(move || prepare_spare(&dir, bytes))
            {
                Ok(thread) => self.spare = Some(thread),
                Err(err) => tracing::warn!(%err, "no thread to preallocate a log segment"),
            }
        }
        Ok(())
    }

    /// Closes the active segment and starts the next: the preallocated
    /// spare when there is one, else a new empty file.
    fn roll_over(&mut self) -> Result<(), StoreError> {
        let seq = self.segments.back().map_or(1, |s| s.seq + 1);
        let spare = match self.spare.take().map(JoinHandle::join) {
            Some(Ok(Ok(file))) => Some(file),
            Some(Ok(Err(err))) => {
                tracing::warn!(%err, "preallocating a log segment failed; using a new file");
                None
            }
            Some(Err(_)) => {
                tracing::warn!("the log preallocation thread panicked; using a new file");
                None
            }
            None => None,
        };
        self.preallocated = spare.is_some();
        self.file = match spare {
            Some(file) => {
                std::fs::rename(self.dir.join(SPARE), segment_path(&self.dir, seq))?;
                File::open(&self.dir)?.sync_all()?;
                file
            }
            None => create_segment(&self.dir, seq)?,
        };
        self.written = 0;
        self.segments.push_back(Segment { seq, max_index: 0 });
        // The new segment starts with the hard state, durable before
        // anything else goes into it.
        self.hard_state_dirty = true;
        self.write_out()
    }

    fn write_out(&mut self) -> Result<(), StoreError> {
        if self.hard_state_dirty {
            let hard_state = self.hard_state.clone();
            self.push(HARD_STATE, |buf| {
                hard_state.write_to_vec(buf).map_err(corrupt("hard state"))
            })?;
            self.hard_state_dirty = false;
        }
        self.file.write_all_at(&self.buf, self.written)?;
        self.file.sync_data()?;
        self.written += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }
}

impl Drop for Wal {
    /// Waits for a preallocation in progress, so that no thread still writes
    /// into the directory once the log is closed (a reopen removes the spare).
    fn drop(&mut self) {
        if let Some(thread) = self.spare.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            index,
            term,
            data: vec![7; 100].into(),
            ..Entry::default()
        }
    }

    fn hard_state(term: u64, vote: u64, commit: u64) -> HardState {
        HardState {
            term,
            vote,
            commit,
            ..HardState::default()
        }
    }

    const CACHE: u64 = 1 << 20;

    fn terms(log: &Replayed) -> Vec<(u64, u64)> {
        let entries = &log.entries;
        (entries.first()..=entries.last())
            .map(|i| (i, entries.term(i).expect("held")))
            .collect()
    }

    fn segment_files(dir: &Path) -> Vec<u64> {
        let mut seqs: Vec<u64> = std::fs::read_dir(dir)
            .expect("list")
            .filter_map(|e| segment_seq(&e.expect("entry").file_name().to_string_lossy()))
            .collect();
        seqs.sort_unstable();
        seqs
    }

    #[test]
    fn replay_applies_overwrites_resets_and_compactions_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("open");
        assert!(log.entries.is_empty() && log.hard_state.is_none());
        for i in 1..=5 {
            wal.append(&entry(i, 1)).expect("append");
        }
        wal.sync().expect("sync");
        // A new leader's suffix replaces 4 and 5.
        wal.append(&entry(4, 2)).expect("append");
        wal.set_hard_state(&hard_state(2, 3, 4));
        wal.sync().expect("sync");
        drop(wal);
        let (mut wal, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen");
        assert_eq!(terms(&log), vec![(1, 1), (2, 1), (3, 1), (4, 2)]);
        assert_eq!(log.hard_state, Some(hard_state(2, 3, 4)));
        wal.compact(3).expect("compact");
        wal.sync().expect("sync");
        drop(wal);
        let (mut wal, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen");
        assert_eq!(terms(&log), vec![(3, 1), (4, 2)]);
        wal.reset(10).expect("reset");
        wal.append(&entry(11, 3)).expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let (_, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen");
        assert_eq!(terms(&log), vec![(11, 3)]);
        assert_eq!(
            log.hard_state,
            Some(hard_state(2, 3, 4)),
            "carried into new segments"
        );
    }

    #[test]
    fn unsynced_records_are_not_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("open");
        wal.append(&entry(1, 1)).expect("append");
        wal.sync().expect("sync");
        wal.append(&entry(2, 1)).expect("append");
        wal.set_hard_state(&hard_state(1, 1, 2));
        drop(wal);
        let (_, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen");
        assert_eq!(terms(&log), vec![(1, 1)]);
        assert_eq!(log.hard_state, Some(HardState::default()));
    }

    #[test]
    fn a_torn_tail_is_cut_off_and_never_read_again() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("open");
        for i in 1..=3 {
            wal.append(&entry(i, 1)).expect("append");
        }
        wal.sync().expect("sync");
        drop(wal);
        let last = *segment_files(dir.path()).last().expect("a segment");
        let path = segment_path(dir.path(), last);
        let whole = std::fs::read(&path).expect("read");
        // A crash in the middle of writing entry 3's record: its tail is lost
        // and garbage follows.
        let mut torn = whole[..whole.len() - 20].to_vec();
        torn.extend_from_slice(&[0xAB; 7]);
        std::fs::write(&path, &torn).expect("tear");
        let (mut wal, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen");
        assert_eq!(terms(&log), vec![(1, 1), (2, 1)]);
        assert!(
            std::fs::read(&path).expect("read").len() < whole.len() - 20,
            "the torn record was cut off the file"
        );
        wal.append(&entry(3, 2)).expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let (_, log) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen");
        assert_eq!(terms(&log), vec![(1, 1), (2, 1), (3, 2)]);
    }

    #[test]
    fn a_bad_record_before_the_last_segment_is_corruption() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("open");
        for i in 1..=3 {
            wal.append(&entry(i, 1)).expect("append");
        }
        wal.sync().expect("sync");
        drop(wal);
        // Opening again starts segment 2, which makes segment 1 an older one.
        drop(Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect("reopen"));
        let first = segment_files(dir.path())[0];
        let path = segment_path(dir.path(), first);
        let mut bytes = std::fs::read(&path).expect("read");
        let at = bytes.len() - 50;
        bytes[at] ^= 0xFF;
        std::fs::write(&path, &bytes).expect("flip a bit");
        let err = Wal::open(dir.path(), SEGMENT_BYTES, CACHE).expect_err("corrupt");
        assert!(err.to_string().contains("corrupt"), "{err}");
    }

    #[test]
    fn full_segments_roll_over_and_compaction_deletes_them() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), 1024, CACHE).expect("open");
        wal.set_hard_state(&hard_state(5, 2, 0));
        let mut first = None;
        for i in 1..=100 {
            let at = wal.append(&entry(i, 5)).expect("append");
            first.get_or_insert(at);
            wal.sync().expect("sync");
        }
        let before = segment_files(dir.path());
        assert!(before.len() > 5, "rolled over: {before:?}");
        let first = first.expect("appended");
        assert_eq!(wal.read(first).expect("read back"), entry(1, 5));
        wal.compact(90).expect("compact");
        wal.sync().expect("sync");
        wal.reaper.wait();
        let after = segment_files(dir.path());
        assert!(after.len() < 4, "old segments deleted: {after:?}");
        assert!(
            wal.read(first).is_err(),
            "a deleted segment is not held open and read from"
        );
        drop(wal);
        let (_, log) = Wal::open(dir.path(), 1024, CACHE).expect("reopen");
        assert_eq!(log.entries.first(), 90);
        assert_eq!(log.entries.last(), 100);
        assert_eq!(
            log.hard_state,
            Some(hard_state(5, 2, 0)),
            "term and vote kept"
        );
    }

    #[test]
    fn preallocated_segments_are_used_and_a_torn_tail_in_one_is_cut_off() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), 4096, CACHE).expect("open");
        let mut index = 0;
        // The first segment is a plain file; once a spare is zero-filled
        // (started after 1/16 of a segment) the log moves to it.
        while !wal.preallocated {
            index += 1;
            assert!(index < 10_000, "never moved to a preallocated segment");
            wal.append(&entry(index, 1)).expect("append");
            wal.sync().expect("sync");
        }
        index += 1;
        wal.append(&entry(index, 1)).expect("append");
        wal.sync().expect("sync");
        let active = wal.segments.back().expect("active").seq;
        drop(wal);
        let path = segment_path(dir.path(), active);
        let mut bytes = std::fs::read(&path).expect("read");
        assert_eq!(bytes.len(), 4096, "zero-filled to the segment size");
        let end = bytes.iter().rposition(|&b| b != 0).expect("records");
        assert!(bytes[end + 1..].iter().all(|&b| b == 0));
        // The last record (entry `index`) loses its last byte.
        bytes[end] = 0;
        std::fs::write(&path, &bytes).expect("tear");
        let (mut wal, log) = Wal::open(dir.path(), 4096, CACHE).expect("reopen");
        assert_eq!((log.entries.first(), log.entries.last()), (1, index - 1));
        wal.append(&entry(index, 2)).expect("append");
        wal.sync().expect("sync");
        drop(wal);
        let (_, log) = Wal::open(dir.path(), 4096, CACHE).expect("reopen");
        assert_eq!(log.entries.term(index), Some(2));
    }

    #[test]
    fn entries_whose_bodies_were_dropped_are_read_back() {
        let dir = tempfile::tempdir().expect("temp dir");
        let (mut wal, _) = Wal::open(dir.path(), SEGMENT_BYTES, 0).expect("open");
        let mut written = Vec::new();
        for i in 1..=3 {
            let mut e = entry(i, 1);
            e.data = vec![i as u8; 50].into();
            written.push((wal.append(&e).expect("append"), e));
        }
        wal.sync().expect("sync");
        for (at, e) in &written {
            assert_eq!(&wal.read(*at).expect("read"), e);
        }
        drop(wal);
        let (wal, log) = Wal::open(dir.path(), SEGMENT_BYTES, 0).expect("reopen");
        let at = log
            .entries
            .get(2)
            .expect("held")
            .expect_err("no body cached");
        assert_eq!(at, written[1].0);
        assert_eq!(wal.read(at).expect("read"), written[1].1);
        let wrong = Location {
            offset: at.offset + 1,
            ..at
        };
        assert!(wal.read(wrong).is_err(), "a read at the wrong place fails");
    }
}
