//! `run` (one workload, one target) and `suite` (every workload against every
//! target whose cluster is up), both appending JSON lines.

use std::time::Duration;

use anyhow::{Result, bail};

use crate::cli::{LoadArgs, RunArgs, SuiteArgs};
use crate::record::{self, RunRecord};
use crate::runner::{RunSpec, run};
use crate::target::TargetKind;
use crate::workload::Workload;

/// Pause between runs, so one run's tail (compaction, GC) is not the next
/// run's start.
const BETWEEN_RUNS: Duration = Duration::from_secs(1);

/// `coord-bench run`.
pub async fn run_one(args: &RunArgs) -> Result<()> {
    let endpoints = endpoints_or_default(&args.endpoints, args.target, args.load.nodes);
    let run_id = args.load.run_id.clone().unwrap_or_else(new_run_id);
    let spec = spec(args.target, endpoints, args.workload, &args.load, run_id);
    let record = run(&spec).await?;
    emit(&args.load, &record)
}

/// `coord-bench suite`.
pub async fn run_suite(args: &SuiteArgs) -> Result<()> {
    let run_id = args.load.run_id.clone().unwrap_or_else(new_run_id);
    let mut up = Vec::new();
    for &target in &args.targets {
        let given = match target {
            TargetKind::Coord => &args.coord_endpoints,
            TargetKind::Etcd => &args.etcd_endpoints,
            TargetKind::Zookeeper => &args.zookeeper_endpoints,
        };
        let endpoints = endpoints_or_default(given, target, args.load.nodes);
        if is_up(&endpoints[0]).await {
            up.push((target, endpoints));
        } else {
            eprintln!(
                "{}: nothing listens at {}, skipped",
                target.name(),
                endpoints[0]
            );
        }
    }
    // Workload by workload, the targets one after another: the runs a ratio
    // compares are seconds apart, not minutes, on a machine whose speed
    // drifts. Each round starts with another target, so none always runs
    // first (or right after the same neighbour).
    let mut ran = 0;
    for &workload in &args.workloads {
        for round in 0..args.rounds {
            for (target, endpoints) in rotated(&up, round) {
                let spec = spec(
                    *target,
                    endpoints.clone(),
                    workload,
                    &args.load,
                    run_id.clone(),
                );
                eprintln!("{} {} ...", target.name(), workload.name());
                match run(&spec).await {
                    Ok(mut record) => {
                        record.round = (args.rounds > 1).then_some(round + 1);
                        emit(&args.load, &record)?;
                        ran += 1;
                    }
                    Err(e) => eprintln!("{} {}: failed: {e:#}", target.name(), workload.name()),
                }
                tokio::time::sleep(BETWEEN_RUNS).await;
            }
        }
    }
    if ran == 0 {
        bail!("no run completed (are the clusters up? see bench/clusters/)");
    }
    eprintln!(
        "{ran} run(s) of run {run_id} appended to {}",
        args.load.out.display()
    );
    Ok(())
}

/// `items` in order, starting at index `round` (modulo their count).
fn rotated<T>(items: &[T], round: u32) -> impl Iterator<Item = &T> {
    let start = usize::try_from(round).unwrap_or(0) % items.len().max(1);
    items[start..].iter().chain(&items[..start])
}

fn spec(
    target: TargetKind,
    endpoints: Vec<String>,
    workload: Workload,
    load: &LoadArgs,
    run_id: String,
) -> RunSpec {
    RunSpec {
        target,
        endpoints,
        nodes: load.nodes,
        workload,
        clients: load.clients.max(1),
        conns: load.conns.unwrap_or(load.clients).max(1),
        duration: load.duration,
        warmup: load.warmup,
        value_size: load.value_size,
        keys: load.keys.max(1),
        write_rate: load.write_rate,
        run_id,
    }
}

fn endpoints_or_default(given: &[String], target: TargetKind, nodes: usize) -> Vec<String> {
    if given.is_empty() {
        target.default_endpoints(nodes.max(1))
    } else {
        given.to_vec()
    }
}

/// A run id: `run-` and the start time in Unix seconds.
fn new_run_id() -> String {
    format!("run-{}", record::unix_now())
}

/// Whether something accepts connections at `endpoint`.
async fn is_up(endpoint: &str) -> bool {
    let connect = tokio::net::TcpStream::connect(endpoint);
    matches!(
        tokio::time::timeout(Duration::from_secs(1), connect).await,
        Ok(Ok(_))
    )
}

/// Appends the record to the results file and prints it.
#[allow(clippy::print_stdout, reason = "the JSON line is the command's output")]
fn emit(load: &LoadArgs, record: &RunRecord) -> Result<()> {
    record::append(&load.out, record)?;
    println!("{}", serde_json::to_string(record)?);
    eprintln!(
        "{} {} nodes={} clients={}: {:.0} ops/s, p50 {} µs, p99 {} µs, p99.9 {} µs, {} errors",
        record.target,
        record.workload,
        record.nodes,
        record.clients,
        record.ops_per_s,
        record.p50_us,
        record.p99_us,
        record.p999_us,
        record.errors
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_round_starts_with_the_next_target() {
        let order = |round| {
            rotated(&["coord", "etcd", "zookeeper"], round)
                .copied()
                .collect::<Vec<_>>()
        };
        assert_eq!(order(0), ["coord", "etcd", "zookeeper"]);
        assert_eq!(order(1), ["etcd", "zookeeper", "coord"]);
        assert_eq!(order(2), ["zookeeper", "coord", "etcd"]);
        assert_eq!(order(3), order(0));
        assert_eq!(rotated::<u8>(&[], 5).count(), 0);
    }
}
