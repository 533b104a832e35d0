//! The reference events: a state machine of the simulation's own applies every
//! committed entry in order and keeps the events each produced, per zxid.
//! After every Ready, the member's watch hub history is compared with it (the
//! events a member publishes are the events of the committed entries, on
//! every member alike), and at the end every watcher's events are.

use std::collections::BTreeMap;

use bytes::Bytes;
use coord_proto::raftlog::Proposal;
use coord_server::core::{Event, StateMachine};
use coord_server::storage::LogStore as _;
use prost::Message as _;

use super::invariants::Invariants;
use super::member::{MAX_DEDUP_CLIENTS, Member};

/// The events of every committed entry, as far as the committed log is known.
#[derive(Debug)]
pub struct Reference {
    oracle: StateMachine,
    /// zxid → the events of its entry (zxids without events are absent).
    events: BTreeMap<u64, Vec<Event>>,
    /// Ranges `(lo, hi]` the reference jumped over by snapshot: unknown.
    unknown: Vec<(u64, u64)>,
    /// Per member: zxid up to which its hub's events were compared, this
    /// incarnation.
    compared: Vec<u64>,
}

impl Reference {
    /// A reference for `members` fresh members.
    pub fn new(members: usize) -> Self {
        Self {
            oracle: StateMachine::new(MAX_DEDUP_CLIENTS),
            events: BTreeMap::new(),
            unknown: Vec::new(),
            compared: vec![0; members],
        }
    }

    /// The last zxid the reference knows.
    pub fn applied(&self) -> u64 {
        self.oracle.applied()
    }

    /// Times the reference jumped over entries nobody was seen committing.
    pub fn jumps(&self) -> u64 {
        self.unknown.len() as u64
    }

    /// Member `m` restarted with a new, empty hub.
    pub fn restarted(&mut self, m: usize) {
        self.compared[m] = 0;
    }

    /// False for zxids the reference jumped over.
    pub fn known(&self, zxid: u64) -> bool {
        !self.unknown.iter().any(|&(lo, hi)| zxid > lo && zxid <= hi)
    }

    /// Every reference event with a zxid in `(lo, hi]`, skipping unknown zxids.
    pub fn events_in(&self, lo: u64, hi: u64) -> impl Iterator<Item = (u64, &Event)> {
        let hi = hi.min(self.applied());
        self.events
            .range(lo.saturating_add(1)..=hi.max(lo))
            .filter(|(z, _)| self.known(**z))
            .flat_map(|(z, events)| events.iter().map(move |e| (*z, e)))
    }

    /// Applies the entries seen committed since the last call, in order; over
    /// a gap (entries compacted before anyone was seen committing them) it
    /// restores the smallest snapshot a running member holds past the gap.
    pub fn advance(&mut self, checks: &Invariants, members: &[Member]) {
        while checks.max_committed() > self.applied() {
            let next = self.applied() + 1;
            if let Some(data) = checks.committed_data(next) {
                self.apply(next, data);
            } else if !self.jump(next, members) {
                return;
            }
        }
    }

    fn apply(&mut self, index: u64, data: &Bytes) {
        let proposal = (!data.is_empty())
            .then(|| Proposal::decode(data.as_ref()).ok())
            .flatten();
        let Some(proposal) = proposal else {
            self.oracle.apply_empty(index);
            return;
        };
        let command = proposal.command.unwrap_or_default();
        let (_, events) = self.oracle.apply(index, &command);
        if !events.is_empty() {
            self.events.insert(index, events);
        }
    }

    fn jump(&mut self, next: u64, members: &[Member]) -> bool {
        let snapshot = members
            .iter()
            .filter_map(|m| m.replica().and_then(|r| r.store().latest_snapshot().ok()))
            .filter(|s| s.get_metadata().index >= next)
            .min_by_key(|s| s.get_metadata().index);
        let Some(snapshot) = snapshot else {
            return false;
        };
        let Ok(restored) = StateMachine::restore(&snapshot.data, MAX_DEDUP_CLIENTS) else {
            return false;
        };
        self.unknown.push((self.applied(), restored.applied()));
        self.oracle = restored;
        true
    }

    /// Compares the events member `m` published since the last comparison
    /// with the reference; returns the first difference.
    pub fn check_member(&mut self, m: usize, member: &Member) -> Option<String> {
        let replica = member.replica()?;
        let after = self.compared[m];
        if replica.shared().applied().min(self.applied()) <= after {
            return None;
        }
        let (covered, applied, published) = replica.shared().watches.history_after(after);
        let lo = after.max(covered);
        let hi = applied.min(self.applied());
        if hi <= lo {
            return None;
        }
        self.compared[m] = hi;
        let mut got = published
            .iter()
            .filter(|(z, _)| *z > lo && *z <= hi && self.known(*z))
            .map(|(z, e)| (*z, e));
        let mut want = self.events_in(lo, hi);
        loop {
            match (got.next(), want.next()) {
                (None, None) => return None,
                (g, w) if g == w => {}
                (g, w) => {
                    return Some(format!(
                        "events are deterministic: member {} published {g:?} where the committed log gives {w:?} (zxids {lo}..={hi})",
                        member.id()
                    ));
                }
            }
        }
    }
}
