//! `failover`: how soon writes succeed again after the leader is killed
//! (`kill -9`) or silently stopped (SIGSTOP: its sockets stay open, as when a
//! machine hangs). Each round finds the leader, takes it down, and times from
//! the signal to the first write acknowledged by the surviving members; then
//! it restarts (or continues) the member and waits for the cluster to be
//! whole again. The writer talks to the surviving members only, so the figure
//! is the cluster's recovery, not a client library's endpoint failover.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::task::JoinSet;

use crate::cli::{FailoverArgs, FaultMode};
use crate::record::{self, RunRecord, unix_now};
use crate::target::{Coord, Etcd, Target, TargetKind, Zk};

/// A new write attempt starts this often while none has succeeded; earlier
/// ones keep going, so the first success is timed to within this interval
/// whether attempts fail fast or hang until the new leader takes them.
const STAGGER: Duration = Duration::from_millis(20);
/// Bound on one write attempt.
const ATTEMPT: Duration = Duration::from_secs(2);
/// Attempts in flight at most.
const MAX_ATTEMPTS: usize = 100;
/// Give up on a round after this long without a successful write.
const GIVE_UP: Duration = Duration::from_secs(60);
/// Pause after the cluster is whole again, so the restarted member catches up
/// before the next round.
const SETTLE: Duration = Duration::from_secs(3);

/// `coord-bench failover`.
pub async fn run(args: &FailoverArgs) -> Result<()> {
    let endpoints = args.target.default_endpoints(args.nodes.max(1));
    let times = match args.target {
        TargetKind::Coord => rounds::<Coord>(args, &endpoints).await?,
        TargetKind::Etcd => rounds::<Etcd>(args, &endpoints).await?,
        TargetKind::Zookeeper => rounds::<Zk>(args, &endpoints).await?,
    };
    let record = to_record(args, &times);
    record::append(&args.out, &record)?;
    emit(&record)
}

#[allow(clippy::print_stdout, reason = "the JSON line is the command's output")]
fn emit(record: &RunRecord) -> Result<()> {
    println!("{}", serde_json::to_string(record)?);
    eprintln!(
        "{} {} nodes={}: median {} ms, max {} ms over {} rounds",
        record.target,
        record.workload,
        record.nodes,
        record.p50_us / 1000,
        record.max_us / 1000,
        record.ops
    );
    Ok(())
}

async fn rounds<T: Target>(args: &FailoverArgs, endpoints: &[String]) -> Result<Vec<Duration>> {
    if endpoints.len() < 3 {
        bail!("failover needs a cluster of at least 3 members");
    }
    let mut times = Vec::with_capacity(args.rounds);
    for round in 1..=args.rounds {
        let leader = wait_for_leader::<T>(endpoints).await?;
        let survivors: Vec<String> = endpoints
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != leader)
            .map(|(_, e)| e.clone())
            .collect();
        let writer = Arc::new(T::connect(&survivors).await?);
        writer.ensure_dir("/bench/failover").await?;
        let key = "/bench/failover/k";
        writer.upsert(key, b"before").await?;
        let pid = member_pid(&args.cluster_dir, leader + 1)?;
        signal(pid, args.mode.signal())?;
        let down = Instant::now();
        let took = first_write(&writer, key, down).await?;
        eprintln!(
            "round {round}: member {} ({}) was leader; writes back after {} ms",
            leader + 1,
            endpoints[leader],
            took.as_millis()
        );
        times.push(took);
        drop(writer);
        restore(args, leader + 1, pid)?;
        wait_until_up(&endpoints[leader]).await?;
        tokio::time::sleep(SETTLE).await;
    }
    Ok(times)
}

/// Time from `down` to the first acknowledged write of `key`: a new attempt
/// every [`STAGGER`], each bounded by [`ATTEMPT`].
async fn first_write<T: Target>(writer: &Arc<T>, key: &str, down: Instant) -> Result<Duration> {
    let mut attempts = JoinSet::new();
    let mut ticks = tokio::time::interval(STAGGER);
    loop {
        tokio::select! {
            _ = ticks.tick() => {
                if down.elapsed() > GIVE_UP {
                    bail!("no write succeeded within {GIVE_UP:?} of the fault");
                }
                if attempts.len() < MAX_ATTEMPTS {
                    let (writer, key) = (Arc::clone(writer), key.to_owned());
                    attempts.spawn(async move {
                        tokio::time::timeout(ATTEMPT, writer.put(&key, b"after")).await
                    });
                }
            }
            Some(done) = attempts.join_next() => {
                if let Ok(Ok(Ok(()))) = done {
                    return Ok(down.elapsed());
                }
            }
        }
    }
}

impl FaultMode {
    fn signal(self) -> &'static str {
        match self {
            FaultMode::Kill => "KILL",
            FaultMode::Stop => "STOP",
        }
    }
}

/// Index (0-based) of the member that leads, once one does (at most 30 s).
pub async fn wait_for_leader<T: Target>(endpoints: &[String]) -> Result<usize> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        for (i, endpoint) in endpoints.iter().enumerate() {
            if matches!(T::leads(endpoint).await, Ok(true)) {
                return Ok(i);
            }
        }
        if Instant::now() > deadline {
            bail!("no member of {endpoints:?} leads");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The pid the cluster script recorded for member `member`.
pub fn member_pid(dir: &Path, member: usize) -> Result<u32> {
    let file = dir.join(format!("m{member}.pid"));
    let text =
        std::fs::read_to_string(&file).with_context(|| format!("reading {}", file.display()))?;
    text.trim()
        .parse()
        .with_context(|| format!("no pid in {}", file.display()))
}

/// Sends signal `name` (`KILL`, `STOP`, `CONT`) to `pid`.
pub fn signal(pid: u32, name: &str) -> Result<()> {
    let status = std::process::Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

/// Brings member `member` back: restarts it with its start script after a
/// kill, continues it after a stop.
fn restore(args: &FailoverArgs, member: usize, pid: u32) -> Result<()> {
    match args.mode {
        FaultMode::Stop => signal(pid, "CONT"),
        FaultMode::Kill => {
            let script = args.cluster_dir.join(format!("m{member}.sh"));
            let status = std::process::Command::new("bash").arg(&script).status()?;
            if !status.success() {
                bail!("{} failed", script.display());
            }
            Ok(())
        }
    }
}

/// Waits until `endpoint` accepts connections again (at most 60 s).
pub async fn wait_until_up(endpoint: &str) -> Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    while tokio::net::TcpStream::connect(endpoint).await.is_err() {
        if Instant::now() > deadline {
            bail!("{endpoint} did not come back");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(())
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// The JSON line: `p50_us` is the median recovery, `max_us` the worst.
fn to_record(args: &FailoverArgs, times: &[Duration]) -> RunRecord {
    let mut sorted = times.to_vec();
    sorted.sort();
    let median = sorted.get(sorted.len() / 2).copied().unwrap_or_default();
    let max = sorted.last().copied().unwrap_or_default();
    let mean = if times.is_empty() {
        0.0
    } else {
        times.iter().map(|t| t.as_secs_f64() * 1e6).sum::<f64>() / times.len() as f64
    };
    let workload = match args.mode {
        FaultMode::Kill => "failover-kill",
        FaultMode::Stop => "failover-stop",
    };
    RunRecord {
        run_id: args
            .run_id
            .clone()
            .unwrap_or_else(|| format!("run-{}", unix_now())),
        target: args.target.name().to_owned(),
        nodes: args.nodes,
        workload: workload.to_owned(),
        clients: 1,
        conns: 1,
        value_size: 5,
        duration_s: 0.0,
        warmup_s: 0.0,
        ops: times.len() as u64,
        ops_per_s: 0.0,
        p50_us: micros(median),
        p99_us: micros(max),
        p999_us: micros(max),
        max_us: micros(max),
        mean_us: mean,
        errors: 0,
        writes: None,
        missed: None,
        write_rate: None,
        note: Some("p50 = median time from the fault to the first acknowledged write".into()),
        round: None,
        unix_time: unix_now(),
    }
}
