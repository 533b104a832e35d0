//! The end of a run: the checks that need the whole history (linearizability of
//! each register, exactly-once and durability of the sequential creates, the
//! lease and ephemeral checks, the watchers' events), and the [`SimReport`]
//! that says what happened and what broke.

use std::collections::BTreeMap;

use serde::Serialize;

use super::leases::{self, LeaseCounts};
use super::net::MessageCounts;
use super::ops;
use super::record::OpCounts;
use super::watch::WatchCounts;
use super::world::World;
use super::{FaultCounts, SimConfig};
use crate::checker::linear::{self, Verdict};
use crate::checker::register::{Register, RegisterModel};
use crate::checker::set::{self, AddStatus};

/// States the linearizability search may explore per register before it gives
/// up undecided (a few hundred operations per register need far fewer).
const LINEARIZABILITY_STATES_MAX: usize = 200_000;

/// What Raft did during the run.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RaftCounts {
    /// Terms that had a leader (leader changes + 1).
    pub leader_terms: u64,
    /// Highest index seen committed.
    pub max_committed: u64,
    /// Snapshots members received from leaders.
    pub snapshots_installed: u64,
}

/// What the final checks looked at.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CheckCounts {
    /// Register operations in the checked histories.
    pub register_ops: u64,
    /// Registers whose linearizability search hit its limit undecided.
    pub undecided_registers: u64,
    /// Sequential children found at the end.
    pub set_present: u64,
}

/// Everything a run did and every violation it found; serializable for CI.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimReport {
    /// The settings, seed included: all it takes to reproduce the run.
    pub config: SimConfig,
    /// Steps run, quiet phase included.
    pub steps_run: u64,
    /// Fingerprint of every choice the scheduler made: equal for equal runs.
    pub trace: u64,
    /// Client operations.
    pub ops: OpCounts,
    /// Injected faults.
    pub faults: FaultCounts,
    /// Network activity.
    pub messages: MessageCounts,
    /// Raft activity.
    pub raft: RaftCounts,
    /// What the final checks examined.
    pub checks: CheckCounts,
    /// Leases and ephemeral nodes.
    pub leases: LeaseCounts,
    /// Watchers.
    pub watches: WatchCounts,
    /// Broken invariants, each naming the invariant; empty when the run passed.
    pub violations: Vec<String>,
}

impl SimReport {
    /// True when no invariant was broken.
    pub fn passed(&self) -> bool {
        self.violations.is_empty()
    }

    /// The command line that reruns exactly this run.
    pub fn reproduce(&self) -> String {
        let c = &self.config;
        format!(
            "jepsen-lite sim --seed {} --steps {} --nodes {}",
            c.seed, c.steps, c.nodes
        )
    }

    /// A report for a run that could not even start.
    pub(super) fn broken(config: &SimConfig, violation: String) -> Self {
        Self {
            config: config.clone(),
            steps_run: 0,
            trace: 0,
            ops: OpCounts::default(),
            faults: FaultCounts::default(),
            messages: MessageCounts::default(),
            raft: RaftCounts::default(),
            checks: CheckCounts::default(),
            leases: LeaseCounts::default(),
            watches: WatchCounts::default(),
            violations: vec![violation],
        }
    }
}

/// The report of a finished run; `panic` is the message of a panic that
/// stopped it, in which case the final checks are skipped (the state they
/// would read may be half-updated).
pub(super) fn report(config: &SimConfig, world: &World, panic: Option<String>) -> SimReport {
    let mut violations = world.checks.violations().to_vec();
    violations.extend(world.clients.record().violations.iter().cloned());
    violations.extend(world.watchers.violations.iter().cloned());
    let mut checks = CheckCounts::default();
    let mut lease_counts = world.clients.record().leases.counts.clone();
    match panic {
        Some(message) => violations.push(format!("step {}: panic: {message}", world.now())),
        None => {
            final_checks(world, &mut violations, &mut checks);
            final_lease_checks(world, &mut violations, &mut lease_counts);
            violations.extend(world.watchers.check(&world.reference));
        }
    }
    let mut watches = world.watchers.counts.clone();
    watches.reference_jumps = world.reference.jumps();
    SimReport {
        config: config.clone(),
        steps_run: world.now(),
        trace: world.trace(),
        ops: world.clients.record().counts.clone(),
        faults: world.faults.clone(),
        messages: world.net.counts().clone(),
        raft: RaftCounts {
            leader_terms: world.checks.leader_terms(),
            max_committed: world.checks.max_committed(),
            snapshots_installed: world.members.iter().map(|m| m.snapshots_installed()).sum(),
        },
        checks,
        leases: lease_counts,
        watches,
        violations,
    }
}

/// The lease checks on the most advanced replica, and no ephemeral node of a
/// gone lease on any.
fn final_lease_checks(world: &World, violations: &mut Vec<String>, counts: &mut LeaseCounts) {
    for member in &world.members {
        let Some(replica) = member.replica() else {
            continue;
        };
        let orphans = leases::orphans(&replica.shared().read());
        if !orphans.is_empty() {
            violations.push(format!(
                "ephemeral outlives its lease: member {} at the end has {orphans:?}",
                member.id()
            ));
        }
    }
    let Some(latest) = world
        .members
        .iter()
        .filter_map(|m| m.replica())
        .max_by_key(|r| r.shared().applied())
    else {
        return;
    };
    let record = &world.clients.record().leases;
    let state = latest.shared().read();
    let seen = world.checks.leases_seen();
    let entry = |index| world.checks.committed_data(index).cloned();
    violations.extend(leases::check(record, &state, seen, entry, counts));
}

fn final_checks(world: &World, violations: &mut Vec<String>, checks: &mut CheckCounts) {
    let record = world.clients.record();
    let model = RegisterModel {
        initial: Register {
            value: 0,
            version: 0,
        },
    };
    for (reg, history) in record.registers.iter().enumerate() {
        checks.register_ops += history.len() as u64;
        match linear::check(&model, history, LINEARIZABILITY_STATES_MAX) {
            Verdict::Linearizable => {}
            Verdict::Unknown { .. } => checks.undecided_registers += 1,
            Verdict::Violation(v) => violations.push(format!(
                "linearizability: register {}: {:?} (called at step {}) fits no order after {} earlier operations, register then {:?}",
                ops::REGISTERS[reg],
                history[v.op].op,
                history[v.op].call,
                v.linearized.len(),
                v.state,
            )),
        }
    }
    let Some(latest) = world
        .members
        .iter()
        .filter_map(|m| m.replica())
        .max_by_key(|r| r.shared().applied())
    else {
        violations.push("no member runs at the end".to_owned());
        return;
    };
    let state = latest.shared().read();
    // An acknowledged create past the most advanced replica cannot be looked
    // for yet: count it as unknown rather than lost.
    let adds: BTreeMap<u64, AddStatus> = record
        .adds
        .iter()
        .map(|(&element, &(status, index))| {
            let visible = index.is_none_or(|i| i <= state.applied());
            (element, if visible { status } else { AddStatus::Unknown })
        })
        .collect();
    let found = ops::queue_contents(&state);
    checks.set_present = found.len() as u64;
    let set = set::check(&adds, &found);
    let anomalies = [
        ("exactly-once: created more than once", &set.duplicated),
        ("durability: acknowledged but missing", &set.lost),
        (
            "set: present although every attempt was refused",
            &set.failed_but_present,
        ),
        ("set: present but never attempted", &set.unexpected),
    ];
    for (what, elements) in anomalies {
        if !elements.is_empty() {
            violations.push(format!("{what}: elements {elements:?}"));
        }
    }
    if !set.misordered.is_empty() {
        violations.push(format!(
            "set: sequential suffixes out of zxid order: {:?}",
            set.misordered
        ));
    }
}
