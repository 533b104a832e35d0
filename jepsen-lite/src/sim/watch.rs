//! Simulated watchers: each holds a persistent-recursive watch on `/` in one
//! member's watch hub, drains it at its turns, and moves to another member
//! when its stream ends (the member crashed, or the hub cut the stream off as
//! too slow) or at random, resuming with `after_zxid` = the last zxid it fully
//! received. A `compacted_zxid` answer is a resync: the events up to it are
//! legitimately missed, and the watch resumes from there.
//!
//! Checked as responses arrive: zxids strictly increase (no duplicate, no
//! reordering). Checked at the end: over every range of zxids a watch covered
//! without a resync, the events received are exactly the reference events of
//! that range that the watch matches.

use std::collections::BTreeMap;

use coord_proto::v1::{EventType, WatchCreate, WatchKind, WatchResponse};
use coord_server::watch::StreamId;
use coord_server::watch::coalesce::Queued;
use coord_server::watch::filter::matches;
use serde::Serialize;
use tokio::sync::mpsc::Receiver;
use tokio::sync::mpsc::error::TryRecvError;

use super::events::Reference;
use super::member::Member;
use crate::rng::Rng;

/// Chance, per mille, that a watcher moves to another member at its turn.
const MOVE_PER_MILLE: u64 = 60;
/// Chance, per mille, that a watcher that moves first goes offline for a
/// while (up to [`OFFLINE_STEPS_MAX`]), so that it resumes from far behind.
const OFFLINE_PER_MILLE: u64 = 400;
/// Longest time offline, in steps.
const OFFLINE_STEPS_MAX: u64 = 1000;
/// Chance, per mille, that a watcher asks for progress at its turn.
const PROGRESS_PER_MILLE: u64 = 300;
/// What every watcher watches.
const ROOT: &str = "/";
/// Violations kept per run; a broken hub usually repeats itself.
const MAX_VIOLATIONS: usize = 20;

/// Watch activity, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WatchCounts {
    /// Events delivered to watchers.
    pub events: u64,
    /// Watches re-created with the last zxid received, after the first.
    pub resumes: u64,
    /// Watches ended by `compacted_zxid` (their zxid left the history, or the
    /// member installed a snapshot): the events up to it were missed.
    pub resyncs: u64,
    /// Streams a hub cut off as too slow.
    pub streams_cut: u64,
    /// Streams ended by their member's crash.
    pub streams_lost: u64,
    /// Moves to another member by choice.
    pub moves: u64,
    /// Times the reference skipped entries nobody was seen committing.
    pub reference_jumps: u64,
}

/// The watch registered on a stream: its id and the zxid range `(lo, hi]` it
/// has delivered completely so far (`None` until it is created).
type Registered = Option<(u64, Option<(u64, u64)>)>;

/// A watcher's stream on one member's hub.
struct Stream {
    member: usize,
    incarnation: u64,
    id: StreamId,
    rx: Receiver<Queued>,
    watch: Registered,
}

/// What a watcher received.
#[derive(Default)]
struct Log {
    /// Last zxid whose events were all received.
    cursor: u64,
    /// Ranges `(lo, hi]` whose every event was received, one per watch.
    covered: Vec<(u64, u64)>,
    /// Events received, by zxid: (type, path).
    seen: BTreeMap<u64, Vec<(i32, String)>>,
}

#[derive(Default)]
struct Watcher {
    stream: Option<Stream>,
    log: Log,
    watches_created: u64,
    /// The step before which it stays disconnected.
    offline_until: u64,
}

/// The watchers, their counters and what they found wrong along the way.
#[derive(Default)]
pub struct Watchers {
    watchers: Vec<Watcher>,
    /// Counters.
    pub counts: WatchCounts,
    /// Broken promises seen as responses arrived.
    pub violations: Vec<String>,
}

impl Watchers {
    /// `count` watchers, not connected yet.
    pub fn new(count: usize) -> Self {
        Self {
            watchers: (0..count).map(|_| Watcher::default()).collect(),
            ..Self::default()
        }
    }

    /// Number of watchers.
    pub fn len(&self) -> usize {
        self.watchers.len()
    }

    /// Watcher `w` takes its turn: drains its stream, then maybe moves (or
    /// goes offline) or asks for progress, connects if it has no stream, and
    /// drains again.
    pub fn act(&mut self, w: usize, members: &[Member], rng: &mut Rng, now: u64) {
        self.drain(w, members);
        if self.watchers[w].stream.is_some() && rng.chance(MOVE_PER_MILLE) {
            self.disconnect(w, members);
            self.counts.moves += 1;
            if rng.chance(OFFLINE_PER_MILLE) {
                self.watchers[w].offline_until = now + rng.below(OFFLINE_STEPS_MAX);
            }
        }
        let watcher = &self.watchers[w];
        if watcher.stream.is_none() && now >= watcher.offline_until {
            let up: Vec<usize> = (0..members.len()).filter(|&m| members[m].is_up()).collect();
            if let Some(&m) = rng.pick(&up) {
                self.connect(w, m, members);
            }
        } else if rng.chance(PROGRESS_PER_MILLE) {
            watcher.progress(members);
        }
        self.drain(w, members);
    }

    /// Watcher `w` opens a stream on member `m` and creates its watch there,
    /// from the last zxid it fully received.
    pub fn connect(&mut self, w: usize, m: usize, members: &[Member]) {
        self.watchers[w].connect(m, &members[m], &mut self.counts);
    }

    /// Watcher `w` closes its stream.
    pub fn disconnect(&mut self, w: usize, members: &[Member]) {
        let watcher = &mut self.watchers[w];
        if let Some(s) = watcher.stream.take() {
            watcher.log.end(s.watch);
            if let Some(r) = members[s.member].replica() {
                r.shared().watches.close_stream(s.id);
            }
        }
    }

    /// Watcher `w` handles every response queued on its stream.
    pub fn drain(&mut self, w: usize, members: &[Member]) {
        self.watchers[w].drain(members, &mut self.counts, &mut self.violations);
        self.violations.truncate(MAX_VIOLATIONS);
    }

    /// The run is over: every connected watcher asks for progress and drains.
    pub fn finish(&mut self, members: &[Member]) {
        for w in 0..self.watchers.len() {
            self.drain(w, members);
            self.watchers[w].progress(members);
            self.drain(w, members);
            self.disconnect(w, members);
        }
    }

    /// Over every range a watch covered, the events received are exactly the
    /// reference's events the watch matches.
    pub fn check(&self, reference: &Reference) -> Vec<String> {
        let mut violations = Vec::new();
        for (w, watcher) in self.watchers.iter().enumerate() {
            for &(lo, hi) in &watcher.log.covered {
                let want = reference
                    .events_in(lo, hi)
                    .filter(|(_, e)| matches(WatchKind::PersistentRecursive, ROOT, e.kind, &e.path))
                    .map(|(z, e)| (z, e.kind as i32, e.path.as_str()));
                let got = watcher
                    .log
                    .seen
                    .range(lo + 1..=hi.min(reference.applied()))
                    .filter(|(z, _)| reference.known(**z))
                    .flat_map(|(z, evs)| evs.iter().map(move |(t, p)| (*z, *t, p.as_str())));
                if let Some(diff) = first_difference(got, want) {
                    violations.push(format!(
                        "watch: watcher {w} covered zxids {lo}..={hi} (exclusive of {lo}) and {diff}"
                    ));
                }
            }
        }
        violations
    }
}

type Seen<'a> = (u64, i32, &'a str);

fn first_difference<'a>(
    mut got: impl Iterator<Item = Seen<'a>>,
    mut want: impl Iterator<Item = Seen<'a>>,
) -> Option<String> {
    loop {
        match (got.next(), want.next()) {
            (None, None) => return None,
            (g, w) if g == w => {}
            (g, w) => {
                let name = |e: Option<Seen<'_>>| {
                    e.map_or("nothing".to_owned(), |(z, t, p)| {
                        let kind = EventType::try_from(t).map_or("?", |k| k.as_str_name());
                        format!("{kind} {p} at zxid {z}")
                    })
                };
                return Some(format!(
                    "received {} where the committed log gives {}",
                    name(g),
                    name(w)
                ));
            }
        }
    }
}

impl Watcher {
    /// Opens a stream on member `m` and creates the watch there.
    fn connect(&mut self, m: usize, member: &Member, counts: &mut WatchCounts) {
        let Some(replica) = member.replica() else {
            return;
        };
        let (id, rx) = replica.shared().watches.open_stream();
        self.stream = Some(Stream {
            member: m,
            incarnation: member.incarnation(),
            id,
            rx,
            watch: None,
        });
        self.create(member, counts);
    }

    /// Creates the watch on the current stream, from the cursor on.
    fn create(&mut self, member: &Member, counts: &mut WatchCounts) {
        let (Some(s), Some(replica)) = (self.stream.as_mut(), member.replica()) else {
            return;
        };
        counts.resumes += u64::from(self.watches_created > 0);
        self.watches_created += 1;
        s.watch = Some((self.watches_created, None));
        let create = WatchCreate {
            watch_id: self.watches_created,
            path: ROOT.to_owned(),
            kind: WatchKind::PersistentRecursive as i32,
            after_zxid: Some(self.log.cursor),
        };
        replica.shared().watches.create(s.id, &create);
    }

    fn progress(&self, members: &[Member]) {
        if let Some(s) = &self.stream
            && let Some(r) = members[s.member].replica()
        {
            r.shared().watches.progress(s.id);
        }
    }

    /// Handles every queued response. A stream that ended is dropped; a
    /// watch that ended (resync) is created again on the same stream.
    fn drain(
        &mut self,
        members: &[Member],
        counts: &mut WatchCounts,
        violations: &mut Vec<String>,
    ) {
        for _ in 0..3 {
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            let member = members[s.member].id();
            let ended = loop {
                match s.rx.try_recv() {
                    Ok(r) => self
                        .log
                        .handle(&mut s.watch, &r.into(), member, counts, violations),
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if s.watch.is_some() && !ended {
                return;
            }
            if ended {
                let m = &members[s.member];
                if m.is_up() && m.incarnation() == s.incarnation {
                    counts.streams_cut += 1;
                } else {
                    counts.streams_lost += 1;
                }
                let watch = s.watch;
                self.stream = None;
                self.log.end(watch);
                return;
            }
            let m = s.member;
            self.create(&members[m], counts);
        }
    }
}

impl Log {
    /// The watch ends: the range it covered is kept.
    fn end(&mut self, watch: Registered) {
        if let Some((_, Some((lo, hi)))) = watch
            && hi > lo
        {
            self.covered.push((lo, hi));
        }
    }

    /// Takes in one response to the stream's watch.
    fn handle(
        &mut self,
        watch: &mut Registered,
        r: &WatchResponse,
        member: u64,
        counts: &mut WatchCounts,
        violations: &mut Vec<String>,
    ) {
        let Some((id, range)) = watch.as_mut() else {
            return;
        };
        if r.watch_id != *id {
            return;
        }
        if r.created {
            *range = Some((self.cursor, self.cursor));
        }
        let mut zxid = None;
        for e in &r.events {
            if zxid != Some(e.zxid) {
                if e.zxid <= self.cursor {
                    violations.push(format!(
                        "watch: member {member} sent zxid {} after zxid {} was received: duplicate or out of order",
                        e.zxid, self.cursor
                    ));
                }
                zxid = Some(e.zxid);
                self.cursor = self.cursor.max(e.zxid);
            }
            self.seen
                .entry(e.zxid)
                .or_default()
                .push((e.r#type, e.path.clone()));
            counts.events += 1;
        }
        self.cursor = self.cursor.max(r.progress_zxid);
        if let Some((_, hi)) = range {
            *hi = self.cursor;
        }
        if let Some(err) = &r.error {
            violations.push(format!(
                "watch: member {member} refused a watch: {}",
                err.message
            ));
        }
        if r.compacted_zxid > 0 {
            counts.resyncs += 1;
            self.cursor = self.cursor.max(r.compacted_zxid - 1);
        }
        if r.canceled {
            let ended = watch.take();
            self.end(ended);
        }
    }
}
