//! `tree`: loads a large tree (by default 1,000,000 znodes of 128 bytes, 1,000
//! per parent) through atomic batches, then reports
//!
//! * resident memory (RSS) per znode: each member's RSS growth over the load,
//!   divided by the znodes;
//! * the size and duration of a snapshot holding the tree (coord: its last
//!   automatic snapshot, from the member's log; etcd: `etcdctl snapshot save`;
//!   ZooKeeper: the newest snapshot file, written when the restarted member
//!   syncs; ZooKeeper does not log how long it took);
//! * recovery: 15 s after the load, a follower is killed (`kill -9`) and
//!   restarted; the time from its restart until it serves the last key created
//!   from its own state.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Serialize;
use tokio::task::JoinSet;

use crate::cli::TreeArgs;
use crate::failover::{member_pid, signal, wait_for_leader, wait_until_up};
use crate::record::unix_now;
use crate::runner::connect_all;
use crate::target::{Coord, Etcd, Target, TargetKind, Zk};

/// Znodes per parent.
const PER_PARENT: usize = 1000;
/// Creates per atomic request (etcd allows 128 operations per txn).
const BATCH: usize = 100;
/// Seconds in a row the RSS of every member must hold still to count as settled.
const SETTLED_FOR: u32 = 3;

/// Wait before killing a member for the recovery measurement.
const SETTLE: Duration = Duration::from_secs(15);
/// Root of the loaded tree.
const ROOT: &str = "/bench/tree";

/// The JSON line of a `tree` run.
#[derive(Debug, Serialize)]
struct TreeRecord {
    target: &'static str,
    members: usize,
    znodes: usize,
    value_size: usize,
    /// Seconds the load took (and znodes/s).
    load_s: f64,
    load_per_s: f64,
    /// Each member's RSS before and after the load, bytes.
    rss_before: Vec<u64>,
    rss_after: Vec<u64>,
    /// Mean RSS growth per znode over the members, bytes.
    rss_bytes_per_znode: f64,
    snapshot_bytes: Option<u64>,
    snapshot_ms: Option<u64>,
    /// From the restart of a killed follower to its first local read of the
    /// last key.
    recovery_ms: u64,
    unix_time: u64,
}

/// `coord-bench tree`.
pub async fn run(args: &TreeArgs) -> Result<()> {
    let endpoints = args.target.default_endpoints(args.members.max(1));
    let record = match args.target {
        TargetKind::Coord => measure::<Coord>(args, &endpoints).await?,
        TargetKind::Etcd => measure::<Etcd>(args, &endpoints).await?,
        TargetKind::Zookeeper => measure::<Zk>(args, &endpoints).await?,
    };
    let line = serde_json::to_string(&record)?;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&args.out)
        .with_context(|| format!("opening {}", args.out.display()))?;
    std::io::Write::write_all(&mut file, format!("{line}\n").as_bytes())?;
    emit(&line);
    Ok(())
}

#[allow(clippy::print_stdout, reason = "the JSON line is the command's output")]
fn emit(line: &str) {
    println!("{line}");
}

async fn measure<T: Target>(args: &TreeArgs, endpoints: &[String]) -> Result<TreeRecord> {
    let pids: Vec<u32> = (1..=endpoints.len())
        .map(|i| member_pid(&args.cluster_dir, i))
        .collect::<Result<_>>()?;
    let rss_before: Vec<u64> = pids.iter().map(|&p| rss(p)).collect::<Result<_>>()?;
    let conns = connect_all::<T>(endpoints, args.clients.max(1)).await?;
    let parents: Vec<String> = (0..args.nodes.div_ceil(PER_PARENT))
        .map(|p| format!("{ROOT}/d{p:05}"))
        .collect();
    conns[0].ensure_dir(ROOT).await?;
    for chunk in parents.chunks(BATCH) {
        conns[0].create_many(chunk, b"").await?;
    }
    let key = |i: usize| format!("{ROOT}/d{:05}/k{:05}", i / PER_PARENT, i % PER_PARENT);
    let batches: Vec<Vec<String>> = (0..args.nodes)
        .collect::<Vec<_>>()
        .chunks(BATCH)
        .map(|c| c.iter().map(|&i| key(i)).collect())
        .collect();
    let batches = Arc::new(batches);
    let value = Arc::new(vec![b'v'; args.value_size]);
    eprintln!(
        "{}: loading {} znodes in {} batches",
        T::NAME,
        args.nodes,
        batches.len()
    );
    let started = Instant::now();
    let mut tasks = JoinSet::new();
    for (c, conn) in conns.iter().enumerate() {
        let (conn, batches, value) = (Arc::clone(conn), Arc::clone(&batches), Arc::clone(&value));
        let stride = conns.len();
        tasks.spawn(async move {
            for batch in batches.iter().skip(c).step_by(stride) {
                conn.create_many(batch, &value).await?;
            }
            anyhow::Ok(())
        });
    }
    while let Some(done) = tasks.join_next().await {
        done??;
    }
    let load = started.elapsed();
    let last = key(args.nodes.saturating_sub(1));
    eprintln!("{}: loaded in {:.1} s", T::NAME, load.as_secs_f64());
    drop(conns);
    let rss_after = settled_rss(&pids).await?;
    let growth: f64 = rss_before
        .iter()
        .zip(&rss_after)
        .map(|(b, a)| a.saturating_sub(*b) as f64)
        .sum::<f64>()
        / rss_after.len().max(1) as f64;
    let etcd_snapshot = if T::NAME == "etcd" {
        Some(etcd_snapshot(&endpoints[0], &args.cluster_dir)?)
    } else {
        None
    };
    let recovery = recover::<T>(args, endpoints, &last).await?;
    let (snapshot_bytes, snapshot_ms) = match T::NAME {
        "etcd" => etcd_snapshot.map_or((None, None), |(b, t)| (Some(b), Some(t))),
        "coord" => coord_snapshot(&args.cluster_dir, endpoints.len()),
        _ => (zk_snapshot_bytes(&args.cluster_dir, endpoints.len()), None),
    };
    Ok(TreeRecord {
        target: T::NAME,
        members: endpoints.len(),
        znodes: args.nodes,
        value_size: args.value_size,
        load_s: load.as_secs_f64(),
        load_per_s: args.nodes as f64 / load.as_secs_f64().max(1e-9),
        rss_before,
        rss_after,
        rss_bytes_per_znode: growth / args.nodes.max(1) as f64,
        snapshot_bytes,
        snapshot_ms,
        recovery_ms: u64::try_from(recovery.as_millis()).unwrap_or(u64::MAX),
        unix_time: unix_now(),
    })
}

/// Kills a follower, restarts it, and times until it serves `last` locally.
/// Background work the load started (coord's and ZooKeeper's snapshots) gets
/// [`SETTLE`] to finish first, so every product restarts from its steady state.
async fn recover<T: Target>(args: &TreeArgs, endpoints: &[String], last: &str) -> Result<Duration> {
    tokio::time::sleep(SETTLE).await;
    let leader = wait_for_leader::<T>(endpoints).await?;
    let victim = (leader + 1) % endpoints.len();
    let member = victim + 1;
    signal(member_pid(&args.cluster_dir, member)?, "KILL")?;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let script = args.cluster_dir.join(format!("m{member}.sh"));
    let restarted = Instant::now();
    let status = std::process::Command::new("bash").arg(&script).status()?;
    if !status.success() {
        bail!("{} failed", script.display());
    }
    let endpoint = &endpoints[victim];
    wait_until_up(endpoint).await?;
    let alone = [endpoint.clone()];
    loop {
        if let Ok(conn) = T::connect(&alone).await
            && let Ok(Ok(_)) =
                tokio::time::timeout(Duration::from_secs(1), conn.get(last, true)).await
        {
            return Ok(restarted.elapsed());
        }
        if restarted.elapsed() > Duration::from_secs(600) {
            bail!("member {member} did not serve {last} within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// RSS of every member once it stopped moving: followers apply after the
/// leader acknowledged, a snapshot the load triggered (coord, ZooKeeper)
/// holds a serialization buffer while it runs, and allocators and garbage
/// collectors hand freed memory back over seconds. Read every second from 3 s
/// on, until no member moved more than 0.5% a second for [`SETTLED_FOR`]
/// seconds running, at most 60 s.
async fn settled_rss(pids: &[u32]) -> Result<Vec<u64>> {
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut last: Vec<u64> = pids.iter().map(|&p| rss(p)).collect::<Result<_>>()?;
    let mut still_for = 0;
    for _ in 0..60 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let now: Vec<u64> = pids.iter().map(|&p| rss(p)).collect::<Result<_>>()?;
        let still = now
            .iter()
            .zip(&last)
            .all(|(&a, &b)| a.abs_diff(b) as f64 <= 0.005 * b.max(1) as f64);
        last = now;
        still_for = if still { still_for + 1 } else { 0 };
        if still_for == SETTLED_FOR {
            break;
        }
    }
    Ok(last)
}

/// Resident set size of `pid`, bytes.
fn rss(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("process {pid} is not running"))?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .with_context(|| format!("no VmRSS for process {pid}"))?;
    Ok(kb * 1024)
}

/// `etcdctl snapshot save`: bytes and milliseconds.
fn etcd_snapshot(endpoint: &str, dir: &Path) -> Result<(u64, u64)> {
    let file = dir.join("bench-snapshot.db");
    let _ = std::fs::remove_file(&file);
    let started = Instant::now();
    let status = std::process::Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", endpoint, "snapshot", "save"])
        .arg(&file)
        .stdout(std::process::Stdio::null())
        .status()?;
    let took = started.elapsed();
    if !status.success() {
        bail!("etcdctl snapshot save failed");
    }
    let bytes = std::fs::metadata(&file)?.len();
    Ok((bytes, u64::try_from(took.as_millis()).unwrap_or(u64::MAX)))
}

/// The largest snapshot any member logged (`snapshot taken ... bytes=B ...
/// elapsed_ms=T`), with its duration.
fn coord_snapshot(dir: &Path, members: usize) -> (Option<u64>, Option<u64>) {
    let mut best: Option<(u64, u64)> = None;
    for i in 1..=members {
        let Ok(log) = std::fs::read_to_string(dir.join(format!("m{i}.log"))) else {
            continue;
        };
        for line in log.lines().filter(|l| l.contains("snapshot taken")) {
            let plain = strip_ansi(line);
            let field = |name: &str| {
                plain
                    .split_whitespace()
                    .find_map(|w| w.strip_prefix(name))
                    .and_then(|v| v.parse::<u64>().ok())
            };
            if let (Some(bytes), Some(ms)) = (field("bytes="), field("elapsed_ms="))
                && best.is_none_or(|(b, _)| bytes > b)
            {
                best = Some((bytes, ms));
            }
        }
    }
    best.map_or((None, None), |(b, t)| (Some(b), Some(t)))
}

/// The largest snapshot file of any member (`mI/version-2/snapshot.*`).
fn zk_snapshot_bytes(dir: &Path, members: usize) -> Option<u64> {
    (1..=members)
        .filter_map(|i| std::fs::read_dir(dir.join(format!("m{i}/version-2"))).ok())
        .flatten()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot."))
        .filter_map(|e| e.metadata().ok().map(|m| m.len()))
        .max()
}

/// `line` without terminal colour codes.
fn strip_ansi(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_codes_are_stripped() {
        assert_eq!(
            strip_ansi("\u{1b}[32m INFO\u{1b}[0m snapshot taken \u{1b}[3mbytes\u{1b}[0m=12"),
            " INFO snapshot taken bytes=12"
        );
    }
}
