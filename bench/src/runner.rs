//! The generic runner: connect, set up, warm up, measure, report. Closed
//! loop: each of `clients` workers starts its next operation when the last
//! one finished, so throughput is what `clients` outstanding requests get.

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use tokio::task::JoinSet;

use crate::record::{RunRecord, unix_now};
use crate::stats::Stats;
use crate::target::{Coord, Etcd, Target, TargetKind, Zk};
use crate::watch_fanout;
use crate::workload::{Shared, Worker, Workload};

/// Longest an operation may take before it counts as an error.
pub const OP_TIMEOUT: Duration = Duration::from_secs(10);
/// Errors printed per run (the rest are only counted).
const ERRORS_SHOWN: u64 = 3;

/// Phases of a run, shared by the workers through an `AtomicU8`.
pub const WARMUP: u8 = 0;
/// Operations completing in this phase are measured.
pub const MEASURE: u8 = 1;
/// Workers stop starting operations.
pub const STOP: u8 = 2;

/// Everything that defines one run.
#[derive(Debug, Clone)]
pub struct RunSpec {
    /// System under test.
    pub target: TargetKind,
    /// Its client endpoints.
    pub endpoints: Vec<String>,
    /// Members in its cluster (recorded, not checked).
    pub nodes: usize,
    /// What the workers do.
    pub workload: Workload,
    /// Concurrent workers.
    pub clients: usize,
    /// Connections the workers share round-robin (watch-fanout: one per watcher).
    pub conns: usize,
    /// Measured interval.
    pub duration: Duration,
    /// Unmeasured interval before it.
    pub warmup: Duration,
    /// Bytes per value.
    pub value_size: usize,
    /// Pre-created keys for read/write/mixed.
    pub keys: usize,
    /// watch-fanout: writes per second (`None`: one writer's closed loop).
    pub write_rate: Option<u32>,
    /// Groups runs for `compare`.
    pub run_id: String,
}

/// Runs `spec` against its target and returns the record.
pub async fn run(spec: &RunSpec) -> Result<RunRecord> {
    let stats = match spec.target {
        TargetKind::Coord => run_on::<Coord>(spec).await,
        TargetKind::Etcd => run_on::<Etcd>(spec).await,
        TargetKind::Zookeeper => run_on::<Zk>(spec).await,
    }
    .with_context(|| format!("{} {}", spec.target.name(), spec.workload.name()))?;
    Ok(to_record(spec, &stats))
}

/// Opens `n` connections; connection `i` lists the endpoints starting at
/// member `i % members`, so clients that prefer their first endpoint spread
/// over the members as they would in production.
pub async fn connect_all<T: Target>(endpoints: &[String], n: usize) -> Result<Vec<Arc<T>>> {
    let mut conns = Vec::with_capacity(n);
    for i in 0..n.max(1) {
        let mut rotated = endpoints.to_vec();
        rotated.rotate_left(i % endpoints.len().max(1));
        conns.push(Arc::new(T::connect(&rotated).await?));
    }
    Ok(conns)
}

/// A directory name unique to this run, so sequential counters start afresh
/// and runs never see each other's nodes.
pub fn run_dir(workload: Workload) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    format!("/bench/{}/r{nanos:x}", workload.name())
}

async fn run_on<T: Target>(spec: &RunSpec) -> Result<Stats> {
    if spec.workload == Workload::WatchFanout {
        return watch_fanout::run::<T>(spec).await;
    }
    let conns = connect_all::<T>(&spec.endpoints, spec.conns.min(spec.clients)).await?;
    let shared = Arc::new(setup(spec, &conns).await?);
    let mut workers = Vec::with_capacity(spec.clients);
    for id in 0..spec.clients {
        let conn = Arc::clone(&conns[id % conns.len()]);
        let locker = match spec.workload {
            Workload::Lock => Some(conn.locker(&shared.dir).await?),
            _ => None,
        };
        workers.push((conn, Worker::<T>::new(id, locker)));
    }
    measure(spec, shared, workers).await
}

/// Creates the directories and the pre-created keys the workload needs.
async fn setup<T: Target>(spec: &RunSpec, conns: &[Arc<T>]) -> Result<Shared> {
    let value = vec![b'v'; spec.value_size];
    let dir = run_dir(spec.workload);
    let mut keys = Vec::new();
    if spec.workload.uses_keys() {
        conns[0].ensure_dir("/bench/kv").await?;
        keys = (0..spec.keys)
            .map(|i| format!("/bench/kv/k{i:08}"))
            .collect();
        let mut tasks = JoinSet::new();
        for (c, conn) in conns.iter().enumerate() {
            let mine: Vec<String> = keys.iter().skip(c).step_by(conns.len()).cloned().collect();
            let (conn, value) = (Arc::clone(conn), value.clone());
            tasks.spawn(async move {
                for key in mine {
                    conn.upsert(&key, &value).await?;
                }
                anyhow::Ok(())
            });
        }
        while let Some(done) = tasks.join_next().await {
            done??;
        }
    } else {
        conns[0].ensure_dir(&dir).await?;
    }
    Ok(Shared {
        workload: spec.workload,
        keys,
        dir,
        value,
    })
}

/// Starts the workers, lets them warm up, measures, stops them and merges
/// their stats.
async fn measure<T: Target>(
    spec: &RunSpec,
    shared: Arc<Shared>,
    workers: Vec<(Arc<T>, Worker<T>)>,
) -> Result<Stats> {
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let mut tasks = JoinSet::new();
    for (conn, worker) in workers {
        let (phase, shared) = (Arc::clone(&phase), Arc::clone(&shared));
        tasks.spawn(work(conn, worker, shared, phase));
    }
    tokio::time::sleep(spec.warmup).await;
    phase.store(MEASURE, Ordering::SeqCst);
    tokio::time::sleep(spec.duration).await;
    phase.store(STOP, Ordering::SeqCst);
    let mut total = Stats::new();
    while let Some(done) = tasks.join_next().await {
        total.merge(&done?);
    }
    Ok(total)
}

/// One worker's closed loop.
async fn work<T: Target>(
    conn: Arc<T>,
    mut worker: Worker<T>,
    shared: Arc<Shared>,
    phase: Arc<AtomicU8>,
) -> Stats {
    let mut stats = Stats::new();
    while phase.load(Ordering::Relaxed) != STOP {
        let start = Instant::now();
        let result = tokio::time::timeout(OP_TIMEOUT, worker.op(&conn, &shared)).await;
        if phase.load(Ordering::Relaxed) != MEASURE {
            continue;
        }
        match result {
            Ok(Ok(())) => stats.record(start.elapsed()),
            Ok(Err(e)) => note_error(&mut stats, worker.id, &format!("{e:#}")),
            Err(_) => note_error(&mut stats, worker.id, "timed out"),
        }
    }
    stats
}

/// Counts an error and prints the first few.
pub fn note_error(stats: &mut Stats, worker: usize, message: &str) {
    stats.errors += 1;
    if stats.errors <= ERRORS_SHOWN {
        eprintln!("worker {worker}: {message}");
    }
}

/// The JSON line of a finished run.
fn to_record(spec: &RunSpec, stats: &Stats) -> RunRecord {
    let secs = spec.duration.as_secs_f64();
    let note = match (spec.target, spec.workload) {
        (TargetKind::Zookeeper, Workload::Read | Workload::Mixed) => {
            Some("ZooKeeper reads are member-local, not linearizable".to_owned())
        }
        (TargetKind::Etcd, Workload::Create) => {
            Some("etcd has no sequential keys: txn creating a unique key".to_owned())
        }
        _ => None,
    };
    RunRecord {
        run_id: spec.run_id.clone(),
        target: spec.target.name().to_owned(),
        nodes: spec.nodes,
        workload: spec.workload.name().to_owned(),
        clients: spec.clients,
        conns: spec.conns.min(spec.clients).max(1),
        value_size: spec.value_size,
        duration_s: secs,
        warmup_s: spec.warmup.as_secs_f64(),
        ops: stats.ops,
        ops_per_s: if secs > 0.0 {
            stats.ops as f64 / secs
        } else {
            0.0
        },
        p50_us: stats.quantile_us(0.5),
        p99_us: stats.quantile_us(0.99),
        p999_us: stats.quantile_us(0.999),
        max_us: stats.latency.max(),
        mean_us: stats.latency.mean(),
        errors: stats.errors,
        writes: (spec.workload == Workload::WatchFanout).then_some(stats.writes),
        missed: (spec.workload == Workload::WatchFanout).then_some(stats.missed),
        write_rate: spec
            .write_rate
            .filter(|_| spec.workload == Workload::WatchFanout),
        note,
        round: None,
        unix_time: unix_now(),
    }
}
