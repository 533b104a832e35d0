//! Whole-run tests: determinism, and a batch of seeds without violations; and
//! the watchers' resume logic against one member.

use coord_proto::v1::WriteMeta;

use super::events::Reference;
use super::invariants::Invariants;
use super::member::Member;
use super::ops::{self, OpKind};
use super::watch::Watchers;
use super::*;

/// Short runs: enough for every fault to happen a few times.
fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        steps: 2000,
        ..SimConfig::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(&config(7)).expect("runs");
    let b = run(&config(7)).expect("runs");
    assert_eq!(a, b);
    let json = |r: &SimReport| serde_json::to_string(r).expect("serializes");
    assert_eq!(json(&a), json(&b));
    let c = run(&config(8)).expect("runs");
    assert_ne!(a.trace, c.trace, "another seed, another run");
}

#[test]
fn fifty_seeds_keep_every_invariant() {
    let reports = run_many(&config(1000), 50).expect("runs");
    assert_eq!(reports.len(), 50);
    for r in &reports {
        assert!(r.passed(), "{}: {:?}", r.reproduce(), r.violations);
    }
    let ok: u64 = reports.iter().map(|r| r.ops.ok).sum();
    let crashes: u64 = reports.iter().map(|r| r.faults.crashes).sum();
    assert!(ok > 50 * 20, "too few operations completed: {ok}");
    assert!(crashes > 0, "no member ever crashed");
    let sum = |f: fn(&SimReport) -> u64| reports.iter().map(f).sum::<u64>();
    assert!(sum(|r| r.leases.ephemerals) > 50, "too few ephemerals");
    assert!(sum(|r| r.leases.grants_retried) > 0, "no grant was retried");
    assert!(sum(|r| r.leases.expired) > 0, "no lease expired");
    assert!(sum(|r| r.leases.revoked) > 0, "no lease was revoked");
    assert!(sum(|r| r.watches.events) > 50 * 50, "too few watch events");
    assert!(sum(|r| r.watches.resumes) > 0, "no watch resumed");
    assert!(sum(|r| r.watches.resyncs) > 0, "no watch resynced");
}

#[test]
fn settings_are_validated() {
    let mut c = config(1);
    c.nodes = 0;
    assert_eq!(run(&c), Err(SimError::Nodes(0)));
    c.nodes = 3;
    c.clients = 0;
    assert_eq!(run(&c), Err(SimError::NoClients));
}

/// One member alone, leading, with the checks and the reference the
/// scheduler keeps.
struct Solo {
    members: Vec<Member>,
    checks: Invariants,
    reference: Reference,
    seq: u64,
}

impl Solo {
    fn new() -> Self {
        let mut solo = Self {
            members: vec![Member::bootstrap(1, &[1]).expect("starts")],
            checks: Invariants::default(),
            reference: Reference::new(1),
            seq: 0,
        };
        solo.ready();
        solo
    }

    /// Runs Readies as the scheduler does, until there is nothing left.
    fn ready(&mut self) {
        for _ in 0..4 {
            self.checks.observe_log(&self.members[0], 0);
            let mut outbox = Vec::new();
            let readied = self.members[0].on_ready(&mut outbox);
            readied.expect("up").expect("no fatal error");
            self.checks.observe(&self.members[0], 0);
            self.reference.advance(&self.checks, &self.members);
        }
        let member = &self.members[0];
        assert_eq!(self.reference.check_member(0, member), None);
    }

    /// Applies `n` writes (the first one creates the registers).
    fn write(&mut self, n: u64) {
        for _ in 0..n {
            self.propose();
            self.ready();
        }
    }

    /// Proposes the next write.
    fn propose(&mut self) {
        self.seq += 1;
        let seq = self.seq;
        let meta = WriteMeta {
            client_id: 7,
            seq,
            first_incomplete_seq: seq,
        };
        let value = i64::try_from(seq).expect("small");
        let kind = match seq {
            1 => OpKind::Setup,
            _ => OpKind::Write { reg: 0, value },
        };
        let command = ops::command(kind, meta, seq).expect("a write");
        let replica = self.members[0].replica_mut().expect("up");
        replica.propose(seq, command).expect("leads");
    }

    fn crash_and_restart(&mut self) {
        self.members[0].crash();
        self.members[0].restart().expect("restarts");
        self.checks.restarted(1);
        self.reference.restarted(0);
        self.ready();
    }
}

#[test]
fn a_watcher_resumes_after_its_last_zxid_and_resyncs_when_compacted() {
    let mut solo = Solo::new();
    let mut watchers = Watchers::new(1);
    watchers.connect(0, 0, &solo.members);
    solo.write(5);
    watchers.drain(0, &solo.members);
    // Setup: 4 creates and the root's children; 4 sets.
    assert_eq!(watchers.counts.events, 8);
    // Away briefly: the resume catches up from the history.
    watchers.disconnect(0, &solo.members);
    solo.write(4);
    watchers.connect(0, 0, &solo.members);
    watchers.drain(0, &solo.members);
    assert_eq!((watchers.counts.events, watchers.counts.resyncs), (12, 0));
    // Away while more changed than the history holds: a resync.
    watchers.disconnect(0, &solo.members);
    solo.write(40);
    watchers.connect(0, 0, &solo.members);
    watchers.drain(0, &solo.members);
    assert_eq!(watchers.counts.resyncs, 1);
    // The member restarts: the stream ends, and the new hub's history starts
    // at the member's snapshot, after the watcher's last zxid.
    solo.write(2);
    solo.crash_and_restart();
    watchers.drain(0, &solo.members);
    assert_eq!(watchers.counts.streams_lost, 1);
    watchers.connect(0, 0, &solo.members);
    solo.write(3);
    watchers.finish(&solo.members);
    assert_eq!(watchers.counts.resumes, 4, "{:?}", watchers.counts);
    assert!(watchers.violations.is_empty(), "{:?}", watchers.violations);
    assert_eq!(watchers.check(&solo.reference), Vec::<String>::new());
}

#[test]
fn the_reference_restores_a_snapshot_over_entries_nobody_saw_committed() {
    let mut solo = Solo::new();
    for _ in 0..24 {
        solo.propose();
    }
    // One Ready applies them all, snapshots and compacts before any check
    // sees them committed.
    let mut outbox = Vec::new();
    let readied = solo.members[0].on_ready(&mut outbox);
    readied.expect("up").expect("no fatal error");
    solo.ready();
    assert_eq!(solo.reference.jumps(), 1);
    let applied = solo.members[0].replica().map(|r| r.shared().applied());
    assert_eq!(Some(solo.reference.applied()), applied);
    solo.write(3);
    assert_eq!(solo.reference.jumps(), 1);
}

/// Delivers every message the members' Readies send until none is left.
fn settle(members: &mut [Member]) {
    for _ in 0..50 {
        let mut outbox = Vec::new();
        for member in members.iter_mut() {
            member
                .on_ready(&mut outbox)
                .expect("up")
                .expect("no fatal error");
        }
        if outbox.is_empty() {
            return;
        }
        for message in outbox {
            let to = usize::try_from(message.to).expect("small id") - 1;
            let replica = members[to].replica_mut().expect("up");
            let _ = replica.step(message);
        }
    }
    panic!("the members never went quiet");
}

/// Three fresh members, the first ticked until it leads, every message
/// delivered.
fn three_members_led_by_the_first() -> Vec<Member> {
    let mut members: Vec<Member> = (1..=3)
        .map(|id| Member::bootstrap(id, &[1, 2, 3]).expect("starts"))
        .collect();
    while members[0].replica().expect("up").raw().raft.state != raft::StateRole::Leader {
        members[0].replica_mut().expect("up").tick();
        settle(&mut members);
    }
    members
}

/// A lease expiry is a decision of one leader, in one term: a member that no
/// longer leads in that term refuses it instead of forwarding it to the new
/// leader (which made keep-alive promises of its own), while an ordinary
/// write on a follower is still forwarded.
#[test]
fn a_term_bound_proposal_is_never_forwarded() {
    let mut members = three_members_led_by_the_first();
    let term = members[0].replica().expect("up").raw().raft.term;
    let expire = |id| ops::expire(id, 0);
    let follower = members[1].replica_mut().expect("up");
    assert_eq!(follower.raw().raft.leader_id, 1);
    assert!(matches!(
        follower.propose_in_term(100, expire(7), term),
        Err(coord_server::driver::ProposeError::NotLeaderInTerm(t)) if t == term
    ));
    assert_eq!(follower.propose(101, expire(7)).ok(), Some(term));
    let leader = members[0].replica_mut().expect("up");
    assert!(leader.propose_in_term(102, expire(8), term + 1).is_err());
    assert_eq!(
        leader.propose_in_term(103, expire(8), term).ok(),
        Some(term)
    );
}

/// The proposals a leader steps between two Readies reach each follower as
/// one append (raft-rs's `batch_append`), not one append and one reply per
/// proposal (docs/benchmarks.md, "one append per follower per Ready").
#[test]
fn proposals_between_two_readies_reach_a_follower_as_one_append() {
    let mut members = three_members_led_by_the_first();
    let leader = members[0].replica_mut().expect("up");
    for id in 0..5 {
        leader.propose(200 + id, ops::expire(id, 0)).expect("leads");
    }
    let mut outbox = Vec::new();
    members[0]
        .on_ready(&mut outbox)
        .expect("up")
        .expect("no fatal error");
    for follower in [2, 3] {
        let appends: Vec<usize> = outbox
            .iter()
            .filter(|m| {
                m.to == follower && m.get_msg_type() == raft::eraftpb::MessageType::MsgAppend
            })
            .map(|m| m.entries.len())
            .collect();
        assert_eq!(appends, vec![5], "appends to member {follower}");
    }
    settle(&mut members);
    let applied = |m: &Member| m.replica().expect("up").raw().raft.raft_log.applied;
    assert!(members.iter().all(|m| applied(m) == applied(&members[0])));
}

/// Each `send` of a Ready as one batch, in the order the recipe sends them.
#[derive(Default)]
struct Batches(Vec<Vec<raft::eraftpb::Message>>);

impl coord_server::driver::Outbox for Batches {
    fn send(&mut self, messages: Vec<raft::eraftpb::Message>) {
        self.0.push(messages);
    }
}

/// A follower's Ready that appends entries (and so flushes) sends what
/// promises nothing durable (its answer to a ReadIndex heartbeat, a
/// forwarded proposal and read request) before the flush, and its
/// acknowledgement of the entries only after it (docs/architecture.md,
/// "what waits for the flush").
#[test]
fn a_follower_sends_what_promises_nothing_before_its_flush() {
    use raft::eraftpb::MessageType::{
        MsgAppend, MsgAppendResponse, MsgHeartbeat, MsgHeartbeatResponse, MsgPropose, MsgReadIndex,
    };
    let mut members = three_members_led_by_the_first();
    let leader = members[0].replica_mut().expect("up");
    leader.propose(300, ops::expire(1, 0)).expect("leads");
    leader.read_index(b"round".to_vec());
    let mut outbox = Vec::new();
    members[0]
        .on_ready(&mut outbox)
        .expect("up")
        .expect("no fatal error");
    let to_second: Vec<_> = outbox.into_iter().filter(|m| m.to == 2).collect();
    let kinds: Vec<_> = to_second.iter().map(|m| m.get_msg_type()).collect();
    assert!(
        kinds.contains(&MsgAppend) && kinds.contains(&MsgHeartbeat),
        "{kinds:?}"
    );
    let follower = members[1].replica_mut().expect("up");
    for message in to_second {
        follower.step(message).expect("stepped");
    }
    follower.propose(301, ops::expire(2, 0)).expect("forwarded");
    follower.read_index(b"forwarded".to_vec());
    let mut batches = Batches::default();
    follower.on_ready(&mut batches).expect("no fatal error");
    let sent: Vec<Vec<_>> = batches
        .0
        .iter()
        .map(|batch| batch.iter().map(|m| m.get_msg_type()).collect())
        .collect();
    assert_eq!(sent.len(), 2, "before and after the flush: {sent:?}");
    let mut early = sent[0].clone();
    early.sort_by_key(|kind| *kind as i32);
    assert_eq!(
        early,
        vec![MsgPropose, MsgHeartbeatResponse, MsgReadIndex],
        "{sent:?}"
    );
    assert_eq!(sent[1], vec![MsgAppendResponse], "{sent:?}");
    let answer = &batches.0[0]
        .iter()
        .find(|m| m.get_msg_type() == MsgHeartbeatResponse)
        .expect("answered")
        .context;
    assert_eq!(&answer[..], &b"round"[..]);
}
