//! Applying the nemesis's faults to a real cluster and undoing them: `kill -9`
//! and restart, SIGSTOP and SIGCONT, cutting and healing peer links, skewing
//! and resetting wall clocks.

use std::time::{Duration, Instant};

use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tracing::info;

use crate::history::Recorder;
use crate::nemesis::{Fault, Planned, Split, Target};
use crate::rng::Rng;

/// A fault as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// When it began (ns since the start of the run).
    pub start_ns: u64,
    /// When it was healed.
    pub end_ns: u64,
    /// What it was.
    pub fault: String,
    /// Members it hit.
    pub members: Vec<u64>,
}

/// What a fault changed, to undo when it ends.
enum Undo {
    Restart(Vec<u64>),
    Resume(Vec<u64>),
    Heal,
    Unskew(Vec<u64>),
}

async fn targets(cluster: &Cluster, target: Target, rng: &mut Rng) -> Vec<u64> {
    let mut ids = cluster.ids();
    rng.shuffle(&mut ids);
    match target {
        Target::Random => ids.truncate(1),
        Target::Majority => ids.truncate(ids.len() / 2 + 1),
        Target::Leader => {
            if let Some(leader) = cluster.agreed_leader().await {
                ids = vec![leader];
            } else {
                ids.truncate(1);
            }
        }
    }
    ids
}

async fn partition(cluster: &Cluster, split: Split, rng: &mut Rng) -> Vec<u64> {
    let mut ids = cluster.ids();
    rng.shuffle(&mut ids);
    let leader = cluster.agreed_leader().await.unwrap_or(ids[0]);
    match split {
        Split::Halves => {
            let minority: Vec<u64> = ids[..ids.len() / 2].to_vec();
            let majority: Vec<u64> = ids[ids.len() / 2..].to_vec();
            cluster.partition(&[&minority, &majority]);
            minority
        }
        Split::IsolateLeader => {
            cluster.isolate(leader);
            vec![leader]
        }
        Split::Bridge => {
            let bridge = ids[0];
            let half: Vec<u64> = ids[1..].iter().copied().step_by(2).collect();
            let side = |id: u64| half.contains(&id);
            cluster.cut_where(|a, b| a != bridge && b != bridge && side(a) != side(b));
            vec![bridge]
        }
        Split::LeaderCannotSend => {
            cluster.cut_where(|from, _| from == leader);
            vec![leader]
        }
    }
}

async fn apply(cluster: &mut Cluster, fault: Fault, rng: &mut Rng) -> (Undo, Vec<u64>) {
    match fault {
        Fault::Kill(target) => {
            let ids = targets(cluster, target, rng).await;
            for id in &ids {
                cluster.kill(*id);
            }
            (Undo::Restart(ids.clone()), ids)
        }
        Fault::Pause(target) => {
            let ids = targets(cluster, target, rng).await;
            for id in &ids {
                cluster.member(*id).signal(Signal::SIGSTOP);
            }
            (Undo::Resume(ids.clone()), ids)
        }
        Fault::Partition(split) => (Undo::Heal, partition(cluster, split, rng).await),
        Fault::Clock(target, ms) => {
            let ids = targets(cluster, target, rng).await;
            for id in &ids {
                cluster.member(*id).set_clock_skew(ms);
            }
            (Undo::Unskew(ids.clone()), ids)
        }
    }
}

fn undo(cluster: &mut Cluster, undo: Undo) {
    match undo {
        Undo::Restart(ids) => ids.into_iter().for_each(|id| cluster.restart(id)),
        Undo::Resume(ids) => ids
            .into_iter()
            .for_each(|id| cluster.member(id).signal(Signal::SIGCONT)),
        Undo::Heal => cluster.heal(),
        Undo::Unskew(ids) => ids
            .into_iter()
            .for_each(|id| cluster.member(id).set_clock_skew(0)),
    }
}

/// Runs the fault schedule against `cluster`; every fault is undone when it ends.
pub async fn run(
    cluster: &mut Cluster,
    plan: &[Planned],
    mut rng: Rng,
    recorder: &Recorder,
    begin: Instant,
) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    for p in plan {
        tokio::time::sleep_until((begin + Duration::from_millis(p.at_ms)).into()).await;
        let start_ns = recorder.now();
        let (to_undo, members) = apply(cluster, p.fault, &mut rng).await;
        info!(fault = %p.fault, ?members, "fault");
        tokio::time::sleep(Duration::from_millis(p.duration_ms)).await;
        undo(cluster, to_undo);
        records.push(FaultRecord {
            start_ns,
            end_ns: recorder.now(),
            fault: p.fault.to_string(),
            members,
        });
    }
    records
}
