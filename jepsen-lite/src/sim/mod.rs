//! Deterministic simulation: several members of coord's deterministic core
//! (`coord_server::driver::Replica` — RawNode, state machine, in-memory
//! storage) in one process, driven by a seeded scheduler over a simulated
//! network that drops, delays, duplicates and reorders messages and cuts links,
//! while members crash (losing whatever their store had not flushed) and
//! restart, and simulated clients read, write, compare-and-set and create,
//! grant, revoke and abandon leases and create ephemeral nodes with them, while
//! a simulated lessor expires abandoned leases through the leader, and
//! simulated watchers follow every change through members' watch hubs.
//! No wall clock, no threads, no unseeded randomness: a seed is a run, bit for
//! bit, so `jepsen-lite sim --seed S` reproduces any failure.
//!
//! Checked after every step: one leader per term, committed entries never
//! change, log matching, equal tree digests at equal applied index, no
//! ephemeral node whose lease is gone, and every member's watch hub publishes
//! exactly the events the committed entries produce (as a reference state
//! machine applying the committed log computes them). Checked at the end: the
//! register histories are linearizable; no sequential create was applied twice
//! (exactly-once) or lost after being acknowledged; an acknowledged ephemeral
//! create is present exactly while its lease lives; a retried lease grant
//! created one lease, the one answered; each watcher saw strictly increasing
//! zxids and, over every range it covered without a resync, exactly the
//! reference's events it matches. Every choice comes from the seeded
//! generator in `crate::rng`.
//!
//! # Layout
//! - `net.rs`: the simulated network and partitions.
//! - `member.rs`: a member's replica, crash and restart.
//! - `ops.rs`: the clients' commands and how results and the tree are read.
//! - `client.rs`: the clients and their retries.
//! - `record.rs`: what the clients observed, as the checkers take it.
//! - `leases.rs`: what happened to leases, and the final lease checks.
//! - `lessor.rs`: the leader's lease expiry.
//! - `events.rs`: the reference events, compared with every hub's.
//! - `watch.rs`: the watchers, their resumes and their check.
//! - `invariants.rs`: the per-step checks.
//! - `world.rs`: the scheduler.
//! - `verdict.rs`: the final checks and the [`SimReport`].

mod client;
mod events;
mod invariants;
mod leases;
mod lessor;
mod member;
mod net;
mod ops;
mod record;
mod verdict;
mod watch;
mod world;

#[cfg(test)]
mod tests;

use std::panic::{AssertUnwindSafe, catch_unwind};

use serde::Serialize;

pub use leases::LeaseCounts;
pub use net::MessageCounts;
pub use record::OpCounts;
pub use verdict::{CheckCounts, RaftCounts, SimReport};
pub use watch::WatchCounts;

/// Largest cluster simulated (raft-rs has no limit; runs just get slower).
pub const MAX_NODES: usize = 7;

/// One simulation run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SimConfig {
    /// The seed: the same seed and settings give the same run.
    pub seed: u64,
    /// Steps with faults and new client operations.
    pub steps: u64,
    /// Members in the cluster.
    pub nodes: usize,
    /// Simulated clients.
    pub clients: usize,
    /// Simulated watchers.
    pub watchers: usize,
    /// Steps at most, after `steps`, with every fault healed and no new
    /// operation, so pending operations finish and members converge.
    pub quiet_steps: u64,
}

impl Default for SimConfig {
    /// The settings CI runs thousands of seeds with.
    fn default() -> Self {
        Self {
            seed: 0,
            steps: 3000,
            nodes: 3,
            clients: 4,
            watchers: 2,
            quiet_steps: 400,
        }
    }
}

/// Why a simulation cannot run with these settings.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SimError {
    /// The cluster size is out of range.
    #[error("nodes must be between 1 and {MAX_NODES}, not {0}")]
    Nodes(usize),
    /// Nobody would issue operations.
    #[error("at least one client is needed")]
    NoClients,
}

impl SimConfig {
    /// Refuses settings a run cannot use.
    pub fn validate(&self) -> Result<(), SimError> {
        if !(1..=MAX_NODES).contains(&self.nodes) {
            return Err(SimError::Nodes(self.nodes));
        }
        if self.clients == 0 {
            return Err(SimError::NoClients);
        }
        Ok(())
    }
}

/// Counts of injected faults, for the report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct FaultCounts {
    /// Members crashed.
    pub crashes: u64,
    /// Members restarted.
    pub restarts: u64,
    /// Partitions cut.
    pub partitions: u64,
}

/// Runs one simulation. A panic inside the cluster (a raft-rs or state machine
/// assertion) is caught and reported as a violation, so a run always reports.
pub fn run(config: &SimConfig) -> Result<SimReport, SimError> {
    config.validate()?;
    let mut world = match world::World::new(config) {
        Ok(world) => world,
        Err(err) => {
            return Ok(SimReport::broken(
                config,
                format!("cluster does not start: {err}"),
            ));
        }
    };
    let outcome = catch_unwind(AssertUnwindSafe(|| {
        world.run(config.steps, config.quiet_steps);
    }));
    let panic = outcome.err().map(|payload| {
        payload
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| payload.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "a panic without a message".to_owned())
    });
    Ok(verdict::report(config, &world, panic))
}

/// Runs `count` seeds from `base.seed` on, with `base`'s other settings, on
/// every core (each run stays single-threaded and deterministic); reports come
/// back in seed order.
pub fn run_many(base: &SimConfig, count: u64) -> Result<Vec<SimReport>, SimError> {
    base.validate()?;
    let workers = std::thread::available_parallelism()
        .map_or(1, usize::from)
        .min(usize::try_from(count).unwrap_or(usize::MAX))
        .max(1) as u64;
    let mut reports: Vec<SimReport> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|worker| {
                scope.spawn(move || {
                    (worker..count)
                        .step_by(usize::try_from(workers).unwrap_or(1))
                        .filter_map(|i| {
                            let config = SimConfig {
                                seed: base.seed.wrapping_add(i),
                                ..base.clone()
                            };
                            run(&config).ok()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
            })
            .collect()
    });
    reports.sort_by_key(|r| r.config.seed);
    Ok(reports)
}
