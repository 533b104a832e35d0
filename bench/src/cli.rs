//! The command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::target::TargetKind;
use crate::workload::Workload;

/// Benchmark coord against etcd and ZooKeeper on one machine.
#[derive(Debug, Parser)]
#[command(name = "coord-bench", version, about)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run one workload against one target and append its JSON line.
    Run(RunArgs),
    /// Run every workload against every target whose cluster is up.
    Suite(SuiteArgs),
    /// Write the markdown table and one SVG chart per workload.
    Report(ReportArgs),
    /// Print coord/etcd and coord/zookeeper ratios of one run.
    Compare(CompareArgs),
    /// Measure how soon writes succeed again after the leader dies or stops.
    Failover(FailoverArgs),
    /// Load a large tree; report memory per znode, snapshot size and time,
    /// and how long a restarted member takes to serve it again.
    Tree(TreeArgs),
    /// Time `fdatasync` with several writers at once, as the members of a
    /// cluster sharing one disk: flush latency and the device's stalls.
    Disk(DiskArgs),
}

/// Flags every workload run takes.
#[derive(Debug, Clone, Args)]
pub struct LoadArgs {
    /// Measured interval (`10s`, `500ms`, `2m`).
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Unmeasured warm-up before it.
    #[arg(long, default_value = "2s", value_parser = parse_duration)]
    pub warmup: Duration,
    /// Concurrent workers (watchers for watch-fanout, contenders for lock).
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Connections the workers share (default: one per worker).
    #[arg(long)]
    pub conns: Option<usize>,
    /// Bytes per value.
    #[arg(long, default_value_t = 128)]
    pub value_size: usize,
    /// Pre-created keys for read, write and mixed.
    #[arg(long, default_value_t = 1000)]
    pub keys: usize,
    /// watch-fanout: writes per second, each started on schedule (default:
    /// one writer's closed loop, as fast as it goes).
    #[arg(long)]
    pub write_rate: Option<u32>,
    /// Members in the clusters (also picks the default endpoints).
    #[arg(long, default_value_t = 1)]
    pub nodes: usize,
    /// JSON lines file the results are appended to.
    #[arg(long, default_value = "bench-results.jsonl")]
    pub out: PathBuf,
    /// Id grouping these runs for `compare` (default: the start time).
    #[arg(long)]
    pub run_id: Option<String>,
}

/// `coord-bench run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// System under test.
    #[arg(long, value_enum)]
    pub target: TargetKind,
    /// Workload.
    #[arg(long, value_enum)]
    pub workload: Workload,
    /// Client endpoints, comma-separated (default: the cluster scripts' ports).
    #[arg(long, value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Shared flags.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `coord-bench suite`.
#[derive(Debug, Args)]
pub struct SuiteArgs {
    /// Targets to try (skipped when nothing listens at their first endpoint).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = TargetKind::ALL)]
    pub targets: Vec<TargetKind>,
    /// Workloads to run (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_values_t = Workload::ALL)]
    pub workloads: Vec<Workload>,
    /// coord endpoints (default: bench/clusters/coord.sh's ports).
    #[arg(long, value_delimiter = ',')]
    pub coord_endpoints: Vec<String>,
    /// etcd endpoints (default: bench/clusters/etcd.sh's ports).
    #[arg(long, value_delimiter = ',')]
    pub etcd_endpoints: Vec<String>,
    /// ZooKeeper endpoints (default: bench/clusters/zookeeper.sh's ports).
    #[arg(long, value_delimiter = ',')]
    pub zookeeper_endpoints: Vec<String>,
    /// Rounds of each workload: every round runs every target once, in an
    /// order rotated from round to round, seconds apart; `compare` reports
    /// the median of the rounds' ratios.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..))]
    pub rounds: u32,
    /// Shared flags.
    #[command(flatten)]
    pub load: LoadArgs,
}

/// `coord-bench report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// JSON lines file.
    pub file: PathBuf,
    /// Directory for table.md and the SVG charts.
    #[arg(long, default_value = "bench-report")]
    pub out: PathBuf,
    /// Only this run (default: the last run in the file).
    #[arg(long)]
    pub run_id: Option<String>,
}

/// `coord-bench compare`.
#[derive(Debug, Args)]
pub struct CompareArgs {
    /// JSON lines file.
    pub file: PathBuf,
    /// Only this run (default: the last run in the file).
    #[arg(long)]
    pub run_id: Option<String>,
}

/// How the leader is taken down.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum FaultMode {
    /// `kill -9`, restarted after each round.
    Kill,
    /// SIGSTOP (a silent failure), SIGCONT after each round.
    Stop,
}

/// `coord-bench failover`.
#[derive(Debug, Args)]
pub struct FailoverArgs {
    /// System under test.
    #[arg(long, value_enum)]
    pub target: TargetKind,
    /// The directory its cluster script was started with (pid files,
    /// per-member start scripts).
    #[arg(long)]
    pub cluster_dir: PathBuf,
    /// Members in the cluster.
    #[arg(long, default_value_t = 3)]
    pub nodes: usize,
    /// Fault.
    #[arg(long, value_enum, default_value = "kill")]
    pub mode: FaultMode,
    /// Rounds (the median is reported).
    #[arg(long, default_value_t = 5)]
    pub rounds: usize,
    /// JSON lines file the result is appended to.
    #[arg(long, default_value = "bench-results.jsonl")]
    pub out: PathBuf,
    /// Id grouping this result for `compare`.
    #[arg(long)]
    pub run_id: Option<String>,
}

/// `coord-bench tree`.
#[derive(Debug, Args)]
pub struct TreeArgs {
    /// System under test.
    #[arg(long, value_enum)]
    pub target: TargetKind,
    /// The directory its cluster script was started with (pid files, logs).
    #[arg(long)]
    pub cluster_dir: PathBuf,
    /// Znodes (keys) to create.
    #[arg(long, default_value_t = 1_000_000)]
    pub nodes: usize,
    /// Members in the cluster.
    #[arg(long, default_value_t = 3)]
    pub members: usize,
    /// Bytes per value (100, as in the scale target of the benchmark issue;
    /// the throughput workloads use 128).
    #[arg(long, default_value_t = 100)]
    pub value_size: usize,
    /// Concurrent loaders (one connection each).
    #[arg(long, default_value_t = 16)]
    pub clients: usize,
    /// JSON lines file the result is appended to.
    #[arg(long, default_value = "bench-tree.jsonl")]
    pub out: PathBuf,
}

/// `coord-bench disk`.
#[derive(Debug, Args)]
pub struct DiskArgs {
    /// Threads writing and flushing at once, each to a file of its own.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=256))]
    pub writers: u16,
    /// How long they write (`3s`, `500ms`).
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub duration: Duration,
    /// Bytes written before each flush (1 to 65,535).
    #[arg(long, default_value_t = 512, value_parser = clap::value_parser!(u16).range(1..))]
    pub record_bytes: u16,
    /// Directory on the disk to measure (a scratch directory is made in it
    /// and removed after).
    #[arg(long, default_value = ".")]
    pub dir: PathBuf,
}

/// Parses `10s`, `250ms`, `2m`, `1h` or a bare number of seconds.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let value: f64 = number
        .parse()
        .map_err(|_| format!("bad duration {text:?}"))?;
    let secs = match unit {
        "" | "s" => value,
        "ms" => value / 1000.0,
        "m" => value * 60.0,
        "h" => value * 3600.0,
        _ => return Err(format!("bad duration unit in {text:?} (use ms, s, m or h)")),
    };
    Duration::try_from_secs_f64(secs).map_err(|e| format!("bad duration {text:?}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("1.5"), Ok(Duration::from_millis(1500)));
        assert!(parse_duration("ten").is_err());
        assert!(parse_duration("3d").is_err());
    }
}
