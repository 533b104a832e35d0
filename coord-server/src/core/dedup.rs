//! The de-duplication table behind exactly-once writes (Raft dissertation §6.3):
//! per client, the results of its recent writes by sequence number, so a retried
//! write is answered from here instead of being applied twice.
//!
//! The client tells the server, with every write, the lowest sequence number it
//! still waits for; results below it are forgotten. Tables are bounded: at most
//! [`MAX_RESULTS_PER_CLIENT`] results per client and `max_clients` clients, the
//! least recently active client being evicted first. Eviction is decided by Raft
//! index, never by a clock, so every replica evicts the same clients.
//!
//! A result dropped for space is remembered as a dropped sequence number (in
//! ranges), not by raising the client's floor: writes below it may still be in
//! flight, not yet applied, and raising the floor would refuse them although
//! they never took effect (found by `coord-bench`'s watch-fanout at a fixed
//! write rate, with a thousand writes of one client in flight).

use std::collections::{BTreeMap, BTreeSet, HashMap};

use coord_proto::raftlog::{CommandResult, DedupClient, DedupResult, SeqRange};
use coord_proto::v1::WriteMeta;

/// Results kept per client beyond its first incomplete sequence number: the
/// write window clients keep to, so a client inside it never loses a result.
pub const MAX_RESULTS_PER_CLIENT: usize = coord_proto::WRITE_WINDOW as usize;

/// Ranges of dropped results kept per client; beyond it the lowest range and
/// everything below it are forgotten (a write still in flight below it would
/// be refused, never applied twice).
pub const MAX_DROPPED_RANGES: usize = 1024;

/// Default bound on the number of clients remembered.
pub const DEFAULT_MAX_CLIENTS: usize = 65_536;

/// What the table says about an incoming write.
#[derive(Debug, Clone, PartialEq)]
pub enum Lookup {
    /// Not seen before (or not de-duplicated): apply it.
    New,
    /// A retry: answer with this recorded result.
    Duplicate(CommandResult),
    /// A retry whose result the client already declared received, so it was
    /// forgotten: it must not be applied again.
    Forgotten,
}

#[derive(Debug, Clone, PartialEq, Default)]
struct ClientRecord {
    last_index: u64,
    first_incomplete_seq: u64,
    results: BTreeMap<u64, CommandResult>,
    /// Applied seqs whose results were dropped for space: start -> end
    /// (exclusive), disjoint, not adjacent, all above `first_incomplete_seq`.
    dropped: BTreeMap<u64, u64>,
}

impl ClientRecord {
    fn is_dropped(&self, seq: u64) -> bool {
        self.dropped
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, &end)| seq < end)
    }

    /// Adds `seq` to the dropped ranges, merging with its neighbours.
    fn drop_result(&mut self, seq: u64) {
        let mut start = seq;
        let mut end = seq + 1;
        if let Some((&s, &e)) = self.dropped.range(..=seq).next_back()
            && e >= seq
        {
            start = s;
            end = end.max(e);
            self.dropped.remove(&s);
        }
        if let Some(e) = self.dropped.remove(&end) {
            end = e;
        }
        self.dropped.insert(start, end);
        while self.dropped.len() > MAX_DROPPED_RANGES {
            if let Some((_, end)) = self.dropped.pop_first() {
                self.raise_floor(end);
            }
        }
    }

    /// Forgets everything below `floor`.
    fn raise_floor(&mut self, floor: u64) {
        if floor <= self.first_incomplete_seq {
            return;
        }
        self.first_incomplete_seq = floor;
        self.results.retain(|seq, _| *seq >= floor);
        let straddling = self
            .dropped
            .range(..floor)
            .next_back()
            .map(|(_, &end)| end)
            .filter(|&end| end > floor);
        self.dropped.retain(|&start, _| start >= floor);
        if let Some(end) = straddling {
            self.dropped.insert(floor, end);
        }
    }
}

/// Per-client results of recent writes.
#[derive(Debug, Clone, PartialEq)]
pub struct DedupTable {
    clients: HashMap<u64, ClientRecord>,
    by_activity: BTreeSet<(u64, u64)>,
    max_clients: usize,
}

impl Default for DedupTable {
    fn default() -> Self {
        Self::new(DEFAULT_MAX_CLIENTS)
    }
}

impl DedupTable {
    /// An empty table remembering at most `max_clients` clients.
    pub fn new(max_clients: usize) -> Self {
        Self {
            clients: HashMap::new(),
            by_activity: BTreeSet::new(),
            max_clients: max_clients.max(1),
        }
    }

    /// Number of clients remembered.
    pub fn len(&self) -> usize {
        self.clients.len()
    }

    /// True when no client is remembered.
    pub fn is_empty(&self) -> bool {
        self.clients.is_empty()
    }

    /// Classifies a write before it is applied.
    pub fn lookup(&self, meta: &WriteMeta) -> Lookup {
        if meta.client_id == 0 {
            return Lookup::New;
        }
        let Some(record) = self.clients.get(&meta.client_id) else {
            return Lookup::New;
        };
        if let Some(result) = record.results.get(&meta.seq) {
            return Lookup::Duplicate(result.clone());
        }
        if meta.seq < record.first_incomplete_seq || record.is_dropped(meta.seq) {
            return Lookup::Forgotten;
        }
        Lookup::New
    }

    /// Remembers the result of a write applied at `index`.
    pub fn record(&mut self, index: u64, meta: &WriteMeta, result: &CommandResult) {
        if meta.client_id == 0 {
            return;
        }
        let record = self.clients.entry(meta.client_id).or_default();
        self.by_activity
            .remove(&(record.last_index, meta.client_id));
        record.last_index = index;
        self.by_activity.insert((index, meta.client_id));
        record.raise_floor(meta.first_incomplete_seq);
        if meta.seq >= record.first_incomplete_seq {
            record.results.insert(meta.seq, result.clone());
        }
        while record.results.len() > MAX_RESULTS_PER_CLIENT {
            // A result dropped for space is forgotten, never mistaken for new.
            if let Some((seq, _)) = record.results.pop_first() {
                record.drop_result(seq);
            }
        }
        while self.clients.len() > self.max_clients {
            let Some((_, oldest)) = self.by_activity.pop_first() else {
                break;
            };
            self.clients.remove(&oldest);
        }
    }

    /// The table in snapshot form, sorted by client id.
    pub fn to_snapshot(&self) -> Vec<DedupClient> {
        let mut clients: Vec<DedupClient> = self
            .clients
            .iter()
            .map(|(id, r)| DedupClient {
                client_id: *id,
                last_index: r.last_index,
                first_incomplete_seq: r.first_incomplete_seq,
                results: r
                    .results
                    .iter()
                    .map(|(seq, result)| DedupResult {
                        seq: *seq,
                        result: Some(result.clone()),
                    })
                    .collect(),
                dropped: r
                    .dropped
                    .iter()
                    .map(|(&start, &end)| SeqRange { start, end })
                    .collect(),
            })
            .collect();
        clients.sort_by_key(|c| c.client_id);
        clients
    }

    /// Rebuilds a table from its snapshot form.
    pub fn from_snapshot(clients: Vec<DedupClient>, max_clients: usize) -> Self {
        let mut table = Self::new(max_clients);
        for c in clients {
            table.by_activity.insert((c.last_index, c.client_id));
            let results = c
                .results
                .into_iter()
                .map(|r| (r.seq, r.result.unwrap_or_default()))
                .collect();
            table.clients.insert(
                c.client_id,
                ClientRecord {
                    last_index: c.last_index,
                    first_incomplete_seq: c.first_incomplete_seq,
                    results,
                    dropped: c.dropped.into_iter().map(|r| (r.start, r.end)).collect(),
                },
            );
        }
        table
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_proto::raftlog::{OpResults, command_result::Outcome};

    fn meta(client_id: u64, seq: u64, first_incomplete_seq: u64) -> WriteMeta {
        WriteMeta {
            client_id,
            seq,
            first_incomplete_seq,
        }
    }

    fn result(n: usize) -> CommandResult {
        CommandResult {
            outcome: Some(Outcome::Ok(OpResults {
                results: vec![Default::default(); n],
            })),
        }
    }

    #[test]
    fn retry_is_answered_from_the_record() {
        let mut t = DedupTable::default();
        assert_eq!(t.lookup(&meta(7, 1, 1)), Lookup::New);
        t.record(10, &meta(7, 1, 1), &result(1));
        assert_eq!(t.lookup(&meta(7, 1, 1)), Lookup::Duplicate(result(1)));
        assert_eq!(t.lookup(&meta(7, 2, 1)), Lookup::New);
    }

    #[test]
    fn client_zero_is_never_deduplicated() {
        let mut t = DedupTable::default();
        t.record(10, &meta(0, 1, 1), &result(1));
        assert_eq!(t.lookup(&meta(0, 1, 1)), Lookup::New);
        assert!(t.is_empty());
    }

    #[test]
    fn acknowledged_results_are_forgotten() {
        let mut t = DedupTable::default();
        t.record(10, &meta(7, 1, 1), &result(1));
        t.record(11, &meta(7, 2, 1), &result(2));
        t.record(12, &meta(7, 3, 3), &result(3));
        assert_eq!(t.lookup(&meta(7, 1, 3)), Lookup::Forgotten);
        assert_eq!(t.lookup(&meta(7, 2, 3)), Lookup::Forgotten);
        assert_eq!(t.lookup(&meta(7, 3, 3)), Lookup::Duplicate(result(3)));
    }

    #[test]
    fn concurrent_requests_keep_every_pending_result() {
        let mut t = DedupTable::default();
        t.record(10, &meta(7, 2, 1), &result(2));
        t.record(11, &meta(7, 1, 1), &result(1));
        assert_eq!(t.lookup(&meta(7, 1, 1)), Lookup::Duplicate(result(1)));
        assert_eq!(t.lookup(&meta(7, 2, 1)), Lookup::Duplicate(result(2)));
    }

    #[test]
    fn least_recently_active_client_is_evicted() {
        let mut t = DedupTable::new(2);
        t.record(1, &meta(1, 1, 1), &result(1));
        t.record(2, &meta(2, 1, 1), &result(1));
        t.record(3, &meta(1, 2, 1), &result(1));
        t.record(4, &meta(3, 1, 1), &result(1));
        assert_eq!(t.len(), 2);
        assert_eq!(
            t.lookup(&meta(2, 1, 1)),
            Lookup::New,
            "client 2 was evicted"
        );
        assert_eq!(t.lookup(&meta(1, 2, 1)), Lookup::Duplicate(result(1)));
    }

    #[test]
    fn results_per_client_are_bounded() {
        let mut t = DedupTable::default();
        for seq in 1..=(MAX_RESULTS_PER_CLIENT as u64 + 10) {
            t.record(seq, &meta(9, seq, 1), &result(1));
        }
        assert_eq!(t.lookup(&meta(9, 1, 1)), Lookup::Forgotten);
        assert_eq!(
            t.lookup(&meta(9, MAX_RESULTS_PER_CLIENT as u64 + 10, 1)),
            Lookup::Duplicate(result(1))
        );
    }

    #[test]
    fn a_write_in_flight_below_dropped_results_is_still_applied() {
        let mut t = DedupTable::default();
        let last = MAX_RESULTS_PER_CLIENT as u64 + 100;
        for seq in 2..=last {
            t.record(seq, &meta(9, seq, 1), &result(1));
        }
        assert_eq!(t.lookup(&meta(9, 1, 1)), Lookup::New, "seq 1 never applied");
        assert_eq!(t.lookup(&meta(9, 2, 1)), Lookup::Forgotten, "dropped");
        assert_eq!(t.lookup(&meta(9, 100, 1)), Lookup::Forgotten, "dropped");
        assert_eq!(t.lookup(&meta(9, last, 1)), Lookup::Duplicate(result(1)));
        assert_eq!(t.lookup(&meta(9, last + 1, 1)), Lookup::New);
        t.record(last + 1, &meta(9, 1, 1), &result(2));
        // Its result was the lowest, so it went for space: never applied twice.
        assert_eq!(t.lookup(&meta(9, 1, 1)), Lookup::Forgotten);
        assert_eq!(t.lookup(&meta(9, last, 1)), Lookup::Duplicate(result(1)));
    }

    #[test]
    fn dropped_ranges_are_bounded_and_cleared_by_the_floor() {
        let mut t = DedupTable::default();
        // Odd seqs stay in flight, so every dropped even seq is its own range.
        let last = 2 * (MAX_RESULTS_PER_CLIENT + MAX_DROPPED_RANGES + 10) as u64;
        for seq in (2..=last).step_by(2) {
            t.record(seq, &meta(9, seq, 1), &result(1));
        }
        let record = &t.clients[&9];
        assert_eq!(record.dropped.len(), MAX_DROPPED_RANGES);
        assert_eq!(
            t.lookup(&meta(9, 1, 1)),
            Lookup::Forgotten,
            "below the floor"
        );
        assert_eq!(t.lookup(&meta(9, last - 1, 1)), Lookup::New, "in flight");
        assert_eq!(t.lookup(&meta(9, last - 2500, 1)), Lookup::Forgotten);
        t.record(last + 2, &meta(9, last + 2, last - 1), &result(1));
        let record = &t.clients[&9];
        assert!(
            record.dropped.is_empty(),
            "all dropped seqs are below the floor"
        );
        assert_eq!(record.first_incomplete_seq, last - 1);
    }

    #[test]
    fn snapshot_round_trip() {
        let mut t = DedupTable::new(100);
        t.record(5, &meta(3, 1, 1), &result(1));
        t.record(6, &meta(4, 2, 1), &result(2));
        for seq in 2..=(MAX_RESULTS_PER_CLIENT as u64 + 5) {
            t.record(seq + 10, &meta(5, seq, 1), &result(1));
        }
        assert!(!t.clients[&5].dropped.is_empty());
        let restored = DedupTable::from_snapshot(t.to_snapshot(), 100);
        assert_eq!(restored, t);
    }
}
