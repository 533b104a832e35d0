//! `coord-bench`: drives coord, etcd and ZooKeeper with the same workloads on
//! the same machine, writes one JSON line per run, and turns the lines into a
//! table, charts and coord/etcd, coord/ZooKeeper ratios.
//!
//! # Layout
//! - `cli`: the command line (clap) and duration parsing.
//! - `target/`: the [`target::Target`] trait and its three implementations
//!   (`coord`, `etcd`, `zk`, plus `zk_lock`, ZooKeeper's lock recipe).
//! - `workload`: what one worker does in one operation, for every workload.
//! - `runner`: connect, set up, warm up, measure, stop (closed loop).
//! - `watch_fanout`: the one-writer, N-watcher workload's own runner.
//! - `stats`: latency histograms (hdrhistogram, µs).
//! - `record`: the JSON line of a run; appending and loading them.
//! - `suite`: every workload against every target whose cluster is up.
//! - `report`: the markdown table and the ratios (`compare`).
//! - `chart`: one SVG chart per workload (plotters).
//! - `failover`: time until writes succeed again after the leader is killed
//!   or stopped.
//! - `disk`: `fdatasync` latency and the device's stalls with several
//!   writers at once (the machine, not a target).
//! - `tree`: memory per znode, snapshot size and time, and restart recovery
//!   of a member holding a large tree.
//!
//! The clusters are started by `bench/clusters/{coord,etcd,zookeeper}.sh`;
//! docs/benchmarks.md has the commands and the latest figures.

/// jemalloc, as in the server: the client side of a run allocates for every
/// response and event (half a million events a second in `watch-fanout`),
/// and glibc's allocator spent a fifth of the process's CPU there, CPU the
/// clusters under test share (docs/benchmarks.md).
#[global_allocator]
static ALLOCATOR: tikv_jemallocator::Jemalloc = tikv_jemallocator::Jemalloc;

mod chart;
mod cli;
mod disk;
mod failover;
mod record;
mod report;
mod runner;
mod stats;
mod suite;
mod target;
mod tree;
mod watch_fanout;
mod workload;

use anyhow::Result;
use clap::Parser;

use crate::cli::{Cli, Command};

#[tokio::main]
async fn main() -> Result<()> {
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => suite::run_one(&args).await,
        Command::Suite(args) => suite::run_suite(&args).await,
        Command::Report(args) => report::report(&args),
        Command::Compare(args) => report::compare(&args),
        Command::Failover(args) => failover::run(&args).await,
        Command::Tree(args) => tree::run(&args).await,
        Command::Disk(args) => disk::run(&args),
    }
}
