//! `task-scheduler`: distributed task scheduling on coord.
//!
//! - **Workers** register themselves (an ephemeral node under
//!   `/scheduler/workers/` with their capacity and current load) and run the
//!   tasks assigned to them.
//! - **Schedulers**: several run, exactly one is active (leader election).
//!   It decomposes submitted jobs into tasks, assigns each to the live worker
//!   with the most room (by reported load), and takes back the tasks of a
//!   worker whose ephemeral node disappears, to assign them again.
//! - **Task state** lives in coord, `/scheduler/tasks/JOB/t-NNNN`:
//!   pending → assigned(worker, fencing token) → done(result). Every
//!   assignment is a `multi` fenced by the scheduler's leadership and the
//!   task's version; every completion a `multi` fenced by the worker's
//!   registration and the task's version, so a worker that lost its
//!   assignment cannot complete it and every task completes exactly once.
//!
//! ```text
//! task-scheduler scheduler        # twice: one active, one standby
//! task-scheduler worker --id w1   # and w2, w3
//! task-scheduler submit job-1 --tasks 200
//! task-scheduler watch            # progress bars, per-worker counts
//! ```
//!
//! The election, the fencing token, the registration and the workers' live
//! cache are coord-client's recipes; this crate adds the scheduling.
//!
//! # Layout
//! - `main`: the command line, `submit`, and the dispatch.
//! - `layout`: the paths in the znode tree and the names in them.
//! - `model`: the JSON of jobs, tasks and worker load; the simulated work.
//! - `mirror`: a live copy of a directory's values, kept by a watch.
//! - `scheduler`: campaigning, and the active scheduler's event loop.
//! - `assign`: one scheduling pass: decompose, take back, assign, finish.
//! - `placement`: which worker gets the next task (pure).
//! - `worker`: registering, the assignment queue, the load reports.
//! - `execute`: running one task and its fenced, exactly-once completion.
//! - `status`: the progress snapshot and its text form.
//! - `progress`: `status` and `watch`, with indicatif bars on a terminal.
//! - `output`: the lines the commands print, as text or JSON.

mod assign;
mod execute;
mod layout;
mod mirror;
mod model;
mod output;
mod placement;
mod progress;
mod scheduler;
mod status;
mod worker;

use clap::{Parser, Subcommand};
use coord_client::{Client, CreateMode, Error};
use example_support::Connection;

use layout::{check_name, ensure_base, job_path};
use model::{Job, JobState};
use output::{Event, Output};

/// Most tasks one job may have.
const MAX_TASKS: u32 = 10_000;

/// Distributed task scheduling on coord.
#[derive(Debug, Parser)]
#[command(name = "task-scheduler", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a scheduler: active while it leads the election, standby
    /// otherwise. Until Ctrl-C or SIGTERM (the active one then resigns).
    Scheduler(scheduler::SchedulerArgs),
    /// Run a worker until Ctrl-C or SIGTERM (it finishes what it runs).
    Worker(worker::WorkerArgs),
    /// Submit job JOB of N tasks.
    Submit {
        /// Job name (letters, digits, `-`, `_`).
        job: String,
        /// How many tasks it is decomposed into.
        #[arg(long)]
        tasks: u32,
    },
    /// Show the progress of every job and the per-worker counts.
    Status,
    /// Show the progress live, until Ctrl-C.
    Watch {
        /// Exit once every job is done.
        #[arg(long)]
        until_done: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    example_support::init_tracing(env!("CARGO_CRATE_NAME"));
    let cli = Cli::parse();
    let client = cli.conn.connect().await?;
    let out = cli.conn.output();
    match &cli.command {
        Command::Scheduler(args) => scheduler::run(&client, args, out).await,
        Command::Worker(args) => worker::run(&client, args, out).await,
        Command::Submit { job, tasks } => submit(&client, job, *tasks, out).await,
        Command::Status => progress::status(&client, out).await,
        Command::Watch { until_done } => progress::watch(&client, out, *until_done).await,
    }
}

/// `submit`: creates `/scheduler/jobs/JOB`; the active scheduler does the rest.
async fn submit(client: &Client, job: &str, tasks: u32, out: Output) -> anyhow::Result<()> {
    check_name("job", job)?;
    anyhow::ensure!(
        (1..=MAX_TASKS).contains(&tasks),
        "--tasks must be 1..={MAX_TASKS}"
    );
    ensure_base(client).await?;
    let submitted = Job {
        tasks,
        state: JobState::Submitted,
    };
    match client
        .create(&job_path(job), submitted.to_json(), CreateMode::Persistent)
        .await
    {
        Ok(_) => {
            out.emit(&Event::Submitted {
                job: job.to_owned(),
                tasks,
            });
            Ok(())
        }
        Err(Error::NodeExists(_)) => anyhow::bail!("job {job} was submitted already"),
        Err(err) => Err(err.into()),
    }
}
