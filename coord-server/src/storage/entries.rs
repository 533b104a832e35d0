//! The log's entries since the compaction point, as [`super::DiskStore`] keeps
//! them in memory: every entry's term and place in the write-ahead log, and
//! the bodies of the newest ones up to a byte budget. raft-rs reads terms all
//! the time and the newest entries right after they are written (to apply
//! them, to send them to followers); an older body is read back from its
//! segment when a lagging follower needs it. Keeping every body would hold
//! the whole uncompacted log in memory: 130 MB after loading a million znodes
//! in batches of 100.

use std::collections::VecDeque;

use raft::eraftpb::Entry;

/// Where a record lies in the write-ahead log: its segment and byte range.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Location {
    /// The segment's number.
    pub seq: u64,
    /// The record's first byte in the segment.
    pub offset: u64,
    /// The record's length, header included.
    pub len: u32,
}

#[derive(Debug)]
struct Slot {
    term: u64,
    at: Location,
    body: Option<Entry>,
}

/// Bytes a cached entry is charged: its payloads and the struct.
fn charge(entry: &Entry) -> u64 {
    (entry.data.len() + entry.context.len() + std::mem::size_of::<Entry>()) as u64
}

/// The entries `first..=last` of the log, each with its term and location,
/// the newest with their bodies.
#[derive(Debug)]
pub struct LogEntries {
    slots: VecDeque<Slot>,
    /// The index of `slots[0]`; when there are none, the next index.
    first: u64,
    /// Every slot before this index has no body.
    cached_from: u64,
    cached_bytes: u64,
    budget: u64,
}

impl LogEntries {
    /// An empty log whose next entry is `first`; bodies are kept up to
    /// `budget` bytes (exceeded only until the next [`LogEntries::evict`]).
    pub fn new(first: u64, budget: u64) -> Self {
        Self {
            slots: VecDeque::new(),
            first,
            cached_from: first,
            cached_bytes: 0,
            budget,
        }
    }

    /// The first index held (the next index when empty).
    pub fn first(&self) -> u64 {
        self.first
    }

    /// The last index held (`first - 1` when empty).
    pub fn last(&self) -> u64 {
        self.first + self.slots.len() as u64 - 1
    }

    /// True when no entry is held.
    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    fn slot(&self, index: u64) -> Option<&Slot> {
        let offset = index.checked_sub(self.first)?;
        self.slots.get(usize::try_from(offset).ok()?)
    }

    /// The term of the entry at `index`, if held.
    pub fn term(&self, index: u64) -> Option<u64> {
        self.slot(index).map(|s| s.term)
    }

    /// The entry at `index`: its body when cached, else where to read it.
    pub fn get(&self, index: u64) -> Option<Result<&Entry, Location>> {
        self.slot(index).map(|s| s.body.as_ref().ok_or(s.at))
    }

    /// Appends `entry` with its body cached. Its index must be `last + 1`;
    /// into an empty log any index goes, and becomes the first.
    pub fn push(&mut self, entry: Entry, at: Location) {
        if self.slots.is_empty() {
            self.first = entry.index;
            self.cached_from = self.cached_from.min(entry.index);
        }
        debug_assert_eq!(entry.index, self.last() + 1);
        self.cached_bytes += charge(&entry);
        self.slots.push_back(Slot {
            term: entry.term,
            at,
            body: Some(entry),
        });
    }

    /// Removes the entries at `index` and after.
    pub fn truncate_from(&mut self, index: u64) {
        let keep = usize::try_from(index.saturating_sub(self.first)).unwrap_or(usize::MAX);
        while self.slots.len() > keep {
            if let Some(body) = self.slots.pop_back().and_then(|s| s.body) {
                self.cached_bytes -= charge(&body);
            }
        }
        self.cached_from = self.cached_from.min(self.last() + 1);
    }

    /// Drops the entries before `first`.
    pub fn compact(&mut self, first: u64) {
        while self.first < first {
            let Some(slot) = self.slots.pop_front() else {
                break;
            };
            if let Some(body) = slot.body {
                self.cached_bytes -= charge(&body);
            }
            self.first += 1;
        }
        if self.slots.is_empty() {
            self.first = self.first.max(first);
        }
        self.cached_from = self.cached_from.max(self.first);
    }

    /// Empties the log; the next entry is `next`.
    pub fn reset(&mut self, next: u64) {
        self.slots.clear();
        self.first = next;
        self.cached_from = next;
        self.cached_bytes = 0;
    }

    /// Drops the oldest bodies until the cached ones fit the budget. Call it
    /// only once every entry is written out, so a dropped body can be read.
    pub fn evict(&mut self) {
        while self.cached_bytes > self.budget {
            let Some(offset) = self
                .cached_from
                .checked_sub(self.first)
                .and_then(|o| usize::try_from(o).ok())
            else {
                break;
            };
            let Some(slot) = self.slots.get_mut(offset) else {
                break;
            };
            if let Some(body) = slot.body.take() {
                self.cached_bytes -= charge(&body);
            }
            self.cached_from += 1;
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
            data: vec![1; 1000].into(),
            ..Entry::default()
        }
    }

    fn at(index: u64) -> Location {
        Location {
            seq: 1,
            offset: index * 10,
            len: 10,
        }
    }

    fn cached(log: &LogEntries) -> Vec<u64> {
        (log.first()..=log.last())
            .filter(|&i| matches!(log.get(i), Some(Ok(_))))
            .collect()
    }

    #[test]
    fn the_newest_bodies_stay_within_the_budget_and_the_rest_have_locations() {
        let one = charge(&entry(1, 1));
        let mut log = LogEntries::new(1, 3 * one);
        for i in 1..=10 {
            log.push(entry(i, 1), at(i));
        }
        log.evict();
        assert_eq!(cached(&log), vec![8, 9, 10]);
        assert_eq!(log.get(2).map(|r| r.err()), Some(Some(at(2))));
        assert_eq!(log.term(2), Some(1));
        // A new leader's suffix replaces 9 and 10; the new entries are cached.
        log.truncate_from(9);
        log.push(entry(9, 2), at(11));
        log.evict();
        assert_eq!(cached(&log), vec![8, 9]);
        assert_eq!(log.term(9), Some(2));
        log.truncate_from(5);
        for i in 5..=6 {
            log.push(entry(i, 3), at(20 + i));
        }
        assert_eq!(
            cached(&log),
            vec![5, 6],
            "bodies after a truncation below the cache"
        );
        log.compact(6);
        assert_eq!((log.first(), log.last()), (6, 6));
        assert_eq!(log.get(5).map(|r| r.is_ok()), None);
        log.compact(7);
        assert!(log.is_empty());
        assert_eq!((log.first(), log.last()), (7, 6));
        log.reset(100);
        log.push(entry(100, 4), at(100));
        assert_eq!(cached(&log), vec![100]);
        assert_eq!(log.cached_bytes, one);
    }
}
