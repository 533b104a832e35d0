//! The scheduler: one seeded random choice per step — deliver a message, tick a
//! member (whose lessor may expire a lease if it leads), let a client or a
//! watcher act, crash or restart a member, cut or heal links — and the Ready of
//! every member touched, whose messages go back into the network.
//! After the chaos, a quiet phase heals everything so that pending operations
//! can finish and the members converge before the final checks.

use coord_server::driver::{DriverFatal, Readied};
use raft::eraftpb::Message;

use super::client::Clients;
use super::events::Reference;
use super::invariants::Invariants;
use super::lessor::Lessor;
use super::member::Member;
use super::net::{Feedback, Network};
use super::watch::Watchers;
use super::{FaultCounts, SimConfig};
use crate::rng::Rng;

/// Steps between two log-matching checks (the other checks run every step).
const LOG_CHECK_INTERVAL_STEPS: u64 = 64;

/// Fastest clock rate relative to the slowest: ticks are drawn in proportion.
const CLOCK_RATE_MAX: u64 = 3;

/// Weight of delivering, per deliverable message.
const WEIGHT_DELIVER_PER_MESSAGE: u64 = 250;
/// Deliverable messages counted at most in the delivery weight.
const DELIVER_WEIGHT_MESSAGES_MAX: usize = 16;
// Weights of the other actions, when they are possible.
const WEIGHT_TICK: u64 = 200;
const WEIGHT_CLIENT: u64 = 300;
const WEIGHT_WATCHER: u64 = 40;
const WEIGHT_CRASH: u64 = 4;
const WEIGHT_RESTART: u64 = 12;
const WEIGHT_PARTITION: u64 = 4;
const WEIGHT_HEAL: u64 = 15;

#[derive(Debug, Clone, Copy)]
enum Action {
    Deliver,
    Tick,
    Client,
    Watcher,
    Crash,
    Restart,
    Partition,
    Heal,
}

/// The whole simulated system at one step.
pub struct World {
    pub(super) members: Vec<Member>,
    pub(super) clients: Clients,
    pub(super) watchers: Watchers,
    pub(super) reference: Reference,
    lessor: Lessor,
    pub(super) checks: Invariants,
    pub(super) net: Network,
    pub(super) faults: FaultCounts,
    /// Per member: how fast its clock runs (relative tick weight). Members'
    /// clocks drift apart, and a restart draws a new rate.
    clock_rates: Vec<u64>,
    rng: Rng,
    now: u64,
    trace: u64,
}

/// Folds the words describing one action into the run's fingerprint (an
/// FNV-style multiply-xor per word: cheap even in debug builds).
fn fold(hash: u64, words: &[u64]) -> u64 {
    words.iter().fold(hash, |h, &w| {
        (h.rotate_left(5) ^ w).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// A member's clock rate: up to [`CLOCK_RATE_MAX`] times another's.
fn clock_rate(rng: &mut Rng) -> u64 {
    1 + rng.below(CLOCK_RATE_MAX)
}

impl World {
    /// A cluster of `config.nodes` fresh members (ids 1..=nodes) and idle clients.
    pub fn new(config: &SimConfig) -> Result<Self, DriverFatal> {
        let voters: Vec<u64> = (1..=config.nodes as u64).collect();
        let members = voters
            .iter()
            .map(|&id| Member::bootstrap(id, &voters))
            .collect::<Result<_, _>>()?;
        let mut rng = Rng::new(config.seed);
        let clock_rates = voters.iter().map(|_| clock_rate(&mut rng)).collect();
        Ok(Self {
            clock_rates,
            members,
            clients: Clients::new(config.clients),
            watchers: Watchers::new(config.watchers),
            reference: Reference::new(config.nodes),
            lessor: Lessor::default(),
            checks: Invariants::default(),
            net: Network::new(true),
            faults: FaultCounts::default(),
            rng,
            now: 0,
            trace: 0xcbf2_9ce4_8422_2325,
        })
    }

    /// The step being run (the run's clock).
    pub fn now(&self) -> u64 {
        self.now
    }

    /// The fingerprint of every choice made so far.
    pub fn trace(&self) -> u64 {
        self.trace
    }

    /// Runs `steps` steps of faults and client operations, then up to
    /// `quiet_steps` without faults or new operations.
    pub fn run(&mut self, steps: u64, quiet_steps: u64) {
        for _ in 0..steps {
            self.step(true);
        }
        self.net.heal();
        self.net.set_faults(false);
        for m in 0..self.members.len() {
            self.restart(m);
        }
        for _ in 0..quiet_steps {
            if self.clients.idle() && self.converged() {
                break;
            }
            self.step(false);
        }
        self.clients.finish();
        self.watchers.finish(&self.members);
        self.checks.check_log_matching(&self.members, self.now);
        self.checks.check_ephemerals(&self.members, self.now);
    }

    /// True when every member runs and has applied the same index.
    fn converged(&self) -> bool {
        let mut applied = self
            .members
            .iter()
            .map(|m| m.replica().map(|r| r.shared().applied()));
        let first = applied.next().flatten();
        first.is_some() && applied.all(|a| a == first)
    }

    fn step(&mut self, chaos: bool) {
        self.now += 1;
        let action = self.choose(chaos);
        match action {
            Action::Deliver => self.deliver(),
            Action::Tick => {
                let m = self.pick_ticking();
                self.trace = fold(self.trace, &[self.now, 1, m as u64]);
                if let Some(r) = self.members[m].replica_mut() {
                    r.tick();
                }
                self.ready(m);
                let (members, clients) = (&mut self.members, &mut self.clients);
                if self.lessor.on_tick(m, members, clients, self.now) {
                    self.ready(m);
                }
            }
            Action::Client => {
                let c = self.rng.index(self.clients.len());
                self.trace = fold(self.trace, &[self.now, 2, c as u64]);
                let touched =
                    self.clients
                        .act(c, &mut self.members, self.now, &mut self.rng, chaos);
                if let Some(m) = touched {
                    self.ready(m);
                }
            }
            Action::Watcher => {
                let w = self.rng.index(self.watchers.len());
                self.trace = fold(self.trace, &[self.now, 7, w as u64]);
                self.watchers.act(w, &self.members, &mut self.rng, self.now);
            }
            Action::Crash => {
                let m = self.pick(|m| m.is_up());
                self.trace = fold(self.trace, &[self.now, 3, m as u64]);
                self.crash(m);
                self.faults.crashes += 1;
            }
            Action::Restart => {
                let m = self.pick(|m| !m.is_up());
                self.restart(m);
            }
            Action::Partition => {
                let ids: Vec<u64> = self.members.iter().map(Member::id).collect();
                self.net.partition(&ids, &mut self.rng);
                self.trace = fold(self.trace, &[self.now, 5]);
                self.faults.partitions += 1;
            }
            Action::Heal => {
                self.net.heal();
                self.trace = fold(self.trace, &[self.now, 6]);
            }
        }
        self.clients.expire(self.now);
        if self.now.is_multiple_of(LOG_CHECK_INTERVAL_STEPS) {
            self.checks.check_log_matching(&self.members, self.now);
            self.checks.check_ephemerals(&self.members, self.now);
        }
    }

    fn choose(&mut self, chaos: bool) -> Action {
        let up = self.members.iter().filter(|m| m.is_up()).count();
        let down = self.members.len() - up;
        let partitioned = self.net.is_partitioned();
        // Each message in flight may arrive next, so a busy network delivers
        // faster instead of queueing messages behind the clocks.
        let deliverable = self
            .net
            .deliverable(self.now)
            .min(DELIVER_WEIGHT_MESSAGES_MAX);
        let options = [
            (
                Action::Deliver,
                deliverable > 0,
                WEIGHT_DELIVER_PER_MESSAGE * deliverable as u64,
            ),
            (Action::Tick, up > 0, WEIGHT_TICK),
            (Action::Client, !self.clients.is_empty(), WEIGHT_CLIENT),
            (Action::Watcher, self.watchers.len() > 0, WEIGHT_WATCHER),
            (Action::Crash, chaos && up > 0, WEIGHT_CRASH),
            (Action::Restart, down > 0, WEIGHT_RESTART),
            (Action::Partition, chaos && !partitioned, WEIGHT_PARTITION),
            (Action::Heal, chaos && partitioned, WEIGHT_HEAL),
        ];
        let total: u64 = options.iter().filter(|o| o.1).map(|o| o.2).sum();
        let mut draw = self.rng.below(total);
        for (action, possible, weight) in options {
            if !possible {
                continue;
            }
            if draw < weight {
                return action;
            }
            draw -= weight;
        }
        Action::Tick
    }

    /// A running member, drawn in proportion to its clock rate.
    fn pick_ticking(&mut self) -> usize {
        let up: Vec<usize> = (0..self.members.len())
            .filter(|&m| self.members[m].is_up())
            .collect();
        let total = up.iter().map(|&m| self.clock_rates[m]).sum();
        let mut draw = self.rng.below(total);
        for m in up {
            if draw < self.clock_rates[m] {
                return m;
            }
            draw -= self.clock_rates[m];
        }
        0
    }

    /// A random member satisfying `pred` (the first member when none does).
    fn pick(&mut self, pred: impl Fn(&Member) -> bool) -> usize {
        let candidates: Vec<usize> = (0..self.members.len())
            .filter(|&m| pred(&self.members[m]))
            .collect();
        candidates
            .get(self.rng.index(candidates.len()))
            .copied()
            .unwrap_or(0)
    }

    fn deliver(&mut self) {
        let Some(msg) = self.net.take(self.now, &mut self.rng) else {
            return;
        };
        let to = usize::try_from(msg.to)
            .unwrap_or(usize::MAX)
            .wrapping_sub(1);
        let up = self.members.get(to).is_some_and(Member::is_up);
        self.trace = fold(
            self.trace,
            &[self.now, 0, msg.from, msg.to, msg.get_msg_type() as u64],
        );
        let (step, feedback) = self.net.arrive(&msg, up);
        self.feedback(feedback.into_iter().collect());
        if step {
            if let Some(r) = self.members[to].replica_mut() {
                // Stale or duplicate messages are refused; Raft tolerates that.
                let _ = r.step(msg);
            }
            self.ready(to);
        }
    }

    fn restart(&mut self, m: usize) {
        if self.members[m].is_up() {
            return;
        }
        self.trace = fold(self.trace, &[self.now, 4, m as u64]);
        if let Err(err) = self.members[m].restart() {
            let id = self.members[m].id();
            self.checks
                .violation(self.now, format!("member {id} does not restart: {err}"));
            return;
        }
        self.faults.restarts += 1;
        self.clock_rates[m] = clock_rate(&mut self.rng);
        self.checks.restarted(self.members[m].id());
        self.reference.restarted(m);
        self.checks.observe(&self.members[m], self.now);
    }

    /// Runs member `m`'s Ready and routes what it produced.
    fn ready(&mut self, m: usize) {
        let mut outbox: Vec<Message> = Vec::new();
        self.checks.observe_log(&self.members[m], self.now);
        let readied: Readied = match self.members[m].on_ready(&mut outbox) {
            None => return,
            Some(Ok(readied)) => readied,
            Some(Err(err)) => {
                let id = self.members[m].id();
                self.checks
                    .violation(self.now, format!("member {id} stopped: {err}"));
                self.crash(m);
                return;
            }
        };
        let feedback = self.net.send(outbox, self.now, &mut self.rng);
        self.feedback(feedback);
        self.clients
            .on_readied(m, &readied, &self.members[m], self.now);
        let leases = &mut self.clients.record_mut().leases;
        self.lessor.on_readied(m, &readied, leases);
        self.checks.observe(&self.members[m], self.now);
        self.reference.advance(&self.checks, &self.members);
        if let Some(violation) = self.reference.check_member(m, &self.members[m]) {
            self.checks.violation(self.now, violation);
        }
    }

    /// Member `m` stops; whoever waited on it gives up its attempt.
    fn crash(&mut self, m: usize) {
        self.members[m].crash();
        self.clients.on_crash(m);
        self.lessor.on_crash(m);
    }

    /// Hands the transport's reports to the senders that are still running.
    fn feedback(&mut self, feedback: Vec<Feedback>) {
        for fb in feedback {
            let (member, peer) = match fb {
                Feedback::Unreachable { member, peer }
                | Feedback::Snapshot { member, peer, .. } => (member, peer),
            };
            let index = usize::try_from(member)
                .unwrap_or(usize::MAX)
                .wrapping_sub(1);
            let Some(replica) = self.members.get_mut(index).and_then(Member::replica_mut) else {
                continue;
            };
            match fb {
                Feedback::Unreachable { .. } => replica.report_unreachable(peer),
                Feedback::Snapshot { ok, .. } => replica.report_snapshot(peer, ok),
            }
        }
    }
}
