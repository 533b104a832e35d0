//! `jepsen-lite`: runs coord under real faults and checks what it promises.
//!
//! ```text
//! jepsen-lite run --workload register --nemesis kill,pause,partition --time 60s --seed 1 --out runs/r1
//! jepsen-lite check runs/r1
//! ```
#![allow(clippy::print_stdout)]

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use jepsen_lite::fault::FaultRecord;
use jepsen_lite::history;
use jepsen_lite::nemesis::parse_kinds;
use jepsen_lite::report::{self, Results};
use jepsen_lite::runner::{self, RunConfig};
use jepsen_lite::sim::SimConfig;
use jepsen_lite::workload::Workload;

#[derive(Debug, Parser)]
#[command(
    name = "jepsen-lite",
    version,
    about = "Runs coord under real faults and checks its promises."
)]
#[command(
    after_help = "Exit status: 0 valid, 1 anomalies found, 2 usage or harness error, 3 undecided."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Start a cluster, run a workload under faults, check the history.
    Run(RunArgs),
    /// Re-check a recorded run directory.
    Check {
        /// The run's output directory.
        dir: PathBuf,
    },
    /// Deterministic simulation: members, network, faults and clients in one
    /// process, driven by a seed.
    Sim(SimArgs),
}

#[derive(Debug, clap::Args)]
struct SimArgs {
    /// Seed of the (first) run.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Steps with faults and new operations per run.
    #[arg(long, default_value_t = 3000)]
    steps: u64,
    /// Members.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Runs, with seeds seed, seed+1, ... (spread over the cores).
    #[arg(long, default_value_t = 1)]
    count: u64,
    /// Print the report of every run as a JSON line.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
struct RunArgs {
    /// register or set.
    #[arg(long, default_value = "register")]
    workload: Workload,
    /// Comma-separated fault kinds: kill, pause, partition; or none.
    #[arg(long, default_value = "kill,pause,partition")]
    nemesis: String,
    /// Cluster size.
    #[arg(long, default_value_t = 3)]
    nodes: usize,
    /// Length of the workload phase: 60s, 500ms, 2m.
    #[arg(long, default_value = "60s", value_parser = parse_duration)]
    time: Duration,
    /// Concurrent clients.
    #[arg(long, default_value_t = 10)]
    concurrency: u64,
    /// Seed of every random choice (operations, fault schedule, targets).
    #[arg(long, conflicts_with = "reproduce")]
    seed: Option<u64>,
    /// Replay the run of this seed (same as --seed).
    #[arg(long)]
    reproduce: Option<u64>,
    /// Where history, results, report and logs go.
    #[arg(long)]
    out: PathBuf,
    /// The coord-server binary (default: next to this binary).
    #[arg(long)]
    server_bin: Option<PathBuf>,
    /// An extra flag for every server (repeatable), e.g. --server-arg=--tick-ms=50.
    #[arg(long = "server-arg", allow_hyphen_values = true)]
    server_args: Vec<String>,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = s
        .find(|c: char| !c.is_ascii_digit())
        .map_or((s, "s"), |i| s.split_at(i));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 60s"))?;
    match unit {
        "ms" => Ok(Duration::from_millis(n)),
        "s" => Ok(Duration::from_secs(n)),
        "m" => Ok(Duration::from_secs(60 * n)),
        _ => Err(format!("{s:?}: unit must be ms, s or m")),
    }
}

fn summarize(results: &Results) -> ExitCode {
    let counts: Vec<String> = results
        .counts
        .iter()
        .map(|(k, v)| format!("{k} {v}"))
        .collect();
    println!("operations: {}", counts.join(", "));
    println!("faults: {}", results.faults.len());
    for a in &results.checker.anomalies {
        println!("anomaly: {a}");
    }
    match results.valid {
        Some(true) => {
            println!("valid: no anomalies");
            ExitCode::SUCCESS
        }
        Some(false) => {
            println!(
                "INVALID (seed {}); reproduce with:\n  {}",
                results.config.seed, results.reproduce
            );
            ExitCode::from(1)
        }
        None => {
            println!(
                "undecided (seed {}); reproduce with:\n  {}",
                results.config.seed, results.reproduce
            );
            ExitCode::from(3)
        }
    }
}

fn check_dir(dir: &Path, recovered: bool) -> anyhow::Result<Results> {
    let config: RunConfig = serde_json::from_slice(
        &std::fs::read(dir.join("config.json")).context("reading config.json")?,
    )?;
    let faults: Vec<FaultRecord> = serde_json::from_slice(
        &std::fs::read(dir.join("faults.json")).context("reading faults.json")?,
    )?;
    let events = history::read(&dir.join("history.jsonl"))?;
    let ops = history::operations(&events);
    let results = report::analyze(&config, &ops, faults, recovered, dir);
    report::write(&results, &ops, dir)?;
    Ok(results)
}

async fn run(args: RunArgs) -> anyhow::Result<Results> {
    let nemesis = parse_kinds(&args.nemesis).map_err(anyhow::Error::msg)?;
    let seed = args.seed.or(args.reproduce).unwrap_or_else(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    });
    let config = RunConfig {
        workload: args.workload,
        nemesis,
        nodes: args.nodes,
        time_ms: u64::try_from(args.time.as_millis()).unwrap_or(u64::MAX),
        concurrency: args.concurrency.max(1),
        seed,
        server_bin: args.server_bin.unwrap_or_else(coord_testkit::server_binary),
        server_args: args.server_args,
    };
    println!(
        "seed {seed}: {:?} workload, nemesis {}, {} nodes, {:?}",
        config.workload, args.nemesis, config.nodes, args.time
    );
    let recovered = runner::run(&config, &args.out).await?;
    check_dir(&args.out, recovered)
}

fn sim(args: &SimArgs) -> anyhow::Result<ExitCode> {
    let config = SimConfig {
        seed: args.seed,
        steps: args.steps,
        nodes: args.nodes,
        ..SimConfig::default()
    };
    let reports = jepsen_lite::sim::run_many(&config, args.count)?;
    let mut failed = 0;
    for r in &reports {
        if args.json {
            println!("{}", serde_json::to_string(r)?);
        }
        if !r.passed() {
            failed += 1;
            println!("seed {} FAILED:", r.config.seed);
            for v in &r.violations {
                println!("  {v}");
            }
            println!("  reproduce: {}", r.reproduce());
        }
    }
    let ops: u64 = reports.iter().map(|r| r.ops.ok).sum();
    let crashes: u64 = reports.iter().map(|r| r.faults.crashes).sum();
    println!(
        "{} runs of {} steps on {} members: {ops} operations acknowledged, {crashes} crashes, {failed} failed",
        reports.len(),
        args.steps,
        args.nodes
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // A simulation runs thousands of members: only warnings unless asked.
    let default = if matches!(cli.command, Command::Sim(_)) {
        "warn"
    } else {
        "info"
    };
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| default.into());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
    let outcome = match cli.command {
        Command::Sim(args) => {
            return sim(&args).unwrap_or_else(|err| {
                eprintln!("jepsen-lite: {err:#}");
                ExitCode::from(2)
            });
        }
        Command::Run(args) => match tokio::runtime::Runtime::new() {
            Ok(rt) => rt.block_on(run(args)),
            Err(err) => Err(err.into()),
        },
        Command::Check { dir } => {
            let recovered = std::fs::read(dir.join("results.json"))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .and_then(|v| v["recovered"].as_bool())
                .unwrap_or(true);
            check_dir(&dir, recovered)
        }
    };
    match outcome {
        Ok(results) => summarize(&results),
        Err(err) => {
            eprintln!("jepsen-lite: {err:#}");
            ExitCode::from(2)
        }
    }
}
