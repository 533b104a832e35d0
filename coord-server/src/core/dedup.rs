//! The de-duplication table behind exactly-once writes (Raft dissertation §6.3):
//! per client, the results of its recent writes by sequence number, so a retried
//! write is answered from here instead of being applied twice.
//!
//! The client tells the server, with every write, the lowest sequence number it
//! still waits for; results below it are forgotten. Tables are bounded: at most
//! [`MAX_RESULTS_PER_CLIENT`] results per client and `max_clients` clients, the
//! least recently active client being evicted first. Eviction is decided by Raft
//! index, never by a clock, so every replica evicts the same clients.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use coord_proto::raftlog::{CommandResult, DedupClient, DedupResult};
use coord_proto::v1::WriteMeta;

/// Results kept per client beyond its first incomplete sequence number.
pub const MAX_RESULTS_PER_CLIENT: usize = 1024;

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
        if meta.seq < record.first_incomplete_seq {
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
        record.first_incomplete_seq = record.first_incomplete_seq.max(meta.first_incomplete_seq);
        let floor = record.first_incomplete_seq;
        record.results.retain(|seq, _| *seq >= floor);
        if meta.seq >= floor {
            record.results.insert(meta.seq, result.clone());
        }
        while record.results.len() > MAX_RESULTS_PER_CLIENT {
            // A result dropped for space is forgotten, never mistaken for new.
            if let Some((seq, _)) = record.results.pop_first() {
                record.first_incomplete_seq = record.first_incomplete_seq.max(seq + 1);
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
    fn snapshot_round_trip() {
        let mut t = DedupTable::new(100);
        t.record(5, &meta(3, 1, 1), &result(1));
        t.record(6, &meta(4, 2, 1), &result(2));
        let restored = DedupTable::from_snapshot(t.to_snapshot(), 100);
        assert_eq!(restored, t);
    }
}
