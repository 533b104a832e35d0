//! The simulated network: every message sent waits in one pool until the
//! scheduler delivers it. Messages are dropped, delayed, duplicated and
//! reordered at random, and links can be cut one way or both (partitions).
//! Like the real transport, the network tells a sender when a peer was
//! unreachable and whether a snapshot arrived, which raft-rs needs to make
//! progress after a loss.

use std::collections::BTreeSet;

use raft::eraftpb::{Message, MessageType};
use serde::Serialize;

use crate::rng::Rng;

/// Messages lost at random, per mille.
const DROP_PER_MILLE: u64 = 20;
/// Messages held back for a while, per mille.
const DELAY_PER_MILLE: u64 = 50;
/// Longest hold-back, in steps.
const DELAY_STEPS_MAX: u64 = 120;
/// Deliveries that leave a copy behind, per mille.
const DUPLICATE_PER_MILLE: u64 = 20;
/// A delivery picks among this many of the oldest deliverable messages, so
/// messages overtake each other.
const REORDER_WINDOW: usize = 4;

/// What the network did, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct MessageCounts {
    /// Messages handed to the network.
    pub sent: u64,
    /// Messages stepped into their destination.
    pub delivered: u64,
    /// Messages lost (at random, on a cut link, or to a crashed member).
    pub dropped: u64,
    /// Extra copies made.
    pub duplicated: u64,
    /// Messages held back.
    pub delayed: u64,
}

/// What a sender learns about a message it sent (the transport's reports).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Feedback {
    /// `peer` could not be reached from `member`.
    Unreachable {
        /// The sender.
        member: u64,
        /// The destination.
        peer: u64,
    },
    /// A snapshot from `member` to `peer` arrived whole (`ok`) or not.
    Snapshot {
        /// The sender.
        member: u64,
        /// The destination.
        peer: u64,
        /// Whether it arrived.
        ok: bool,
    },
}

struct InFlight {
    msg: Message,
    ready_at: u64,
}

/// The pool of messages in flight and the state of every link.
#[derive(Default)]
pub struct Network {
    pool: Vec<InFlight>,
    cut: BTreeSet<(u64, u64)>,
    faults: bool,
    counts: MessageCounts,
}

fn lost(msg: &Message, cut_link: bool) -> Option<Feedback> {
    if msg.get_msg_type() == MessageType::MsgSnapshot {
        return Some(Feedback::Snapshot {
            member: msg.from,
            peer: msg.to,
            ok: false,
        });
    }
    cut_link.then_some(Feedback::Unreachable {
        member: msg.from,
        peer: msg.to,
    })
}

impl Network {
    /// A network that injects random faults (`faults`) or only delivers.
    pub fn new(faults: bool) -> Self {
        Self {
            faults,
            ..Self::default()
        }
    }

    /// Turns random loss, delay and duplication on or off (cuts stay).
    pub fn set_faults(&mut self, faults: bool) {
        self.faults = faults;
    }

    /// What happened so far.
    pub fn counts(&self) -> &MessageCounts {
        &self.counts
    }

    /// How many messages may be delivered at step `now`.
    pub fn deliverable(&self, now: u64) -> usize {
        self.pool.iter().filter(|m| m.ready_at <= now).count()
    }

    /// Takes messages a member sent at step `now`.
    pub fn send(&mut self, msgs: Vec<Message>, now: u64, rng: &mut Rng) -> Vec<Feedback> {
        let mut feedback = Vec::new();
        for msg in msgs {
            self.counts.sent += 1;
            let cut_link = self.is_cut(msg.from, msg.to);
            if cut_link || (self.faults && rng.chance(DROP_PER_MILLE)) {
                self.counts.dropped += 1;
                feedback.extend(lost(&msg, cut_link));
                continue;
            }
            let mut ready_at = now;
            if self.faults && rng.chance(DELAY_PER_MILLE) {
                self.counts.delayed += 1;
                ready_at += 1 + rng.below(DELAY_STEPS_MAX);
            }
            self.pool.push(InFlight { msg, ready_at });
        }
        feedback
    }

    /// Takes one deliverable message out of the pool (leaving a copy behind
    /// when duplicating). `None` when nothing is deliverable.
    pub fn take(&mut self, now: u64, rng: &mut Rng) -> Option<Message> {
        let window: Vec<usize> = (0..self.pool.len())
            .filter(|&i| self.pool[i].ready_at <= now)
            .take(REORDER_WINDOW)
            .collect();
        if window.is_empty() {
            return None;
        }
        let picked = self.pool.remove(window[rng.index(window.len())]);
        if self.faults && rng.chance(DUPLICATE_PER_MILLE) {
            self.counts.duplicated += 1;
            self.pool.push(InFlight {
                msg: picked.msg.clone(),
                ready_at: now + rng.below(DELAY_STEPS_MAX),
            });
        }
        Some(picked.msg)
    }

    /// Decides the fate of a taken message whose destination is `up` or not:
    /// returns whether to step it, and what the sender learns.
    pub fn arrive(&mut self, msg: &Message, up: bool) -> (bool, Option<Feedback>) {
        let cut_link = self.is_cut(msg.from, msg.to);
        if cut_link || !up {
            self.counts.dropped += 1;
            return (false, lost(msg, true));
        }
        self.counts.delivered += 1;
        let arrived =
            (msg.get_msg_type() == MessageType::MsgSnapshot).then_some(Feedback::Snapshot {
                member: msg.from,
                peer: msg.to,
                ok: true,
            });
        (true, arrived)
    }

    /// True when messages from `from` to `to` are lost.
    pub fn is_cut(&self, from: u64, to: u64) -> bool {
        self.cut.contains(&(from, to))
    }

    /// True while some link is cut.
    pub fn is_partitioned(&self) -> bool {
        !self.cut.is_empty()
    }

    /// Cuts a random partition among `members`: one member isolated, two
    /// random sides, or a one-way cut between two members.
    pub fn partition(&mut self, members: &[u64], rng: &mut Rng) {
        match rng.below(3) {
            0 => {
                let lone = members[rng.index(members.len())];
                for &m in members.iter().filter(|&&m| m != lone) {
                    self.cut.insert((lone, m));
                    self.cut.insert((m, lone));
                }
            }
            1 => {
                let side: Vec<bool> = members.iter().map(|_| rng.chance(500)).collect();
                for (i, &a) in members.iter().enumerate() {
                    for (j, &b) in members.iter().enumerate() {
                        if side[i] != side[j] {
                            self.cut.insert((a, b));
                        }
                    }
                }
            }
            _ => {
                let a = members[rng.index(members.len())];
                let b = members[rng.index(members.len())];
                if a != b {
                    self.cut.insert((a, b));
                }
            }
        }
    }

    /// Restores every link.
    pub fn heal(&mut self) {
        self.cut.clear();
    }
}
