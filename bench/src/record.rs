//! The result of one run: one JSON object per line in the results file, so
//! runs of several targets (and several invocations) can be appended to one
//! file and compared later.

use std::fs::OpenOptions;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

/// One run of one workload against one target.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunRecord {
    /// Groups the runs of one `suite` (or of `run`s given the same `--run-id`);
    /// `compare` only compares runs with the same id.
    pub run_id: String,
    /// `coord`, `etcd` or `zookeeper`.
    pub target: String,
    /// Members in the cluster.
    pub nodes: usize,
    /// Workload name (`write`, `read`, ...).
    pub workload: String,
    /// Concurrent workers (watchers, for watch-fanout; contenders, for lock).
    pub clients: usize,
    /// Connections (sessions) the workers share.
    pub conns: usize,
    /// Bytes per value written.
    pub value_size: usize,
    /// Length of the measured interval, seconds.
    pub duration_s: f64,
    /// Length of the unmeasured warm-up before it, seconds.
    pub warmup_s: f64,
    /// Operations completed in the measured interval (events delivered, for
    /// watch-fanout; acquire+release cycles, for lock).
    pub ops: u64,
    /// `ops / duration_s`.
    pub ops_per_s: f64,
    /// Median latency, µs (write-to-event latency, for watch-fanout).
    pub p50_us: u64,
    /// 99th percentile latency, µs.
    pub p99_us: u64,
    /// 99.9th percentile latency, µs.
    pub p999_us: u64,
    /// Largest latency, µs.
    pub max_us: u64,
    /// Mean latency, µs.
    pub mean_us: f64,
    /// Operations that failed (or timed out) in the measured interval.
    pub errors: u64,
    /// watch-fanout: writes acknowledged in the measured interval.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub writes: Option<u64>,
    /// watch-fanout: events of acknowledged measured writes that some watcher
    /// never received (0 when every event was delivered).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// watch-fanout: the writer's fixed rate, writes/s (absent: closed loop).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub write_rate: Option<u32>,
    /// A caveat that belongs with the figure (e.g. ZooKeeper's reads are not
    /// linearizable).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
    /// Which round of a `suite --rounds N` this run was (1-based; absent for
    /// a single round): `compare` pairs each round's runs of the targets,
    /// made seconds apart, and reports the median of their ratios.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub round: Option<u32>,
    /// When the run ended, seconds since the Unix epoch.
    pub unix_time: u64,
}

/// Appends `record` as one line to `path` (created if missing).
pub fn append(path: &Path, record: &RunRecord) -> Result<()> {
    let mut file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("opening {}", path.display()))?;
    let line = serde_json::to_string(record)?;
    writeln!(file, "{line}").with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

/// Every record in `path`, in file order; blank lines are skipped.
pub fn load(path: &Path) -> Result<Vec<RunRecord>> {
    let file = std::fs::File::open(path).with_context(|| format!("opening {}", path.display()))?;
    let mut records = Vec::new();
    for (n, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let record = serde_json::from_str(&line)
            .with_context(|| format!("{}:{}: not a run record", path.display(), n + 1))?;
        records.push(record);
    }
    Ok(records)
}

/// The records of run `run_id`, or of the last run in the file if `None`.
pub fn of_run(records: Vec<RunRecord>, run_id: Option<&str>) -> Vec<RunRecord> {
    let Some(id) = run_id
        .map(str::to_owned)
        .or_else(|| records.last().map(|r| r.run_id.clone()))
    else {
        return Vec::new();
    };
    records.into_iter().filter(|r| r.run_id == id).collect()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}
