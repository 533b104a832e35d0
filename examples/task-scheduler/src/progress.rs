//! `status` and `watch`: progress drawn with indicatif bars on a terminal,
//! and as text (or JSON) lines otherwise.
//!
//! `status` reads everything once. `watch` keeps the same live copies the
//! scheduler decides from (jobs and tasks [`Mirror`]s, the workers' cache,
//! the election's leader) and redraws when something changed, so it costs
//! one read per change rather than a full re-read.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::time::Duration;

use coord_client::Client;
use coord_client::recipes::discovery::ServiceDiscovery;
use coord_client::recipes::election;
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use tokio::time::Instant;

use crate::layout::{JOBS, LEADER, ROOT, TASKS, WORKERS_SERVICE, ensure_base};
use crate::mirror::Mirror;
use crate::model::{Job, JobState, Task};
use crate::output::{Event, Output};
use crate::status::{self, Snapshot, job_counts, worker_counts};
use example_support::interrupted;

/// How often `watch` redraws bars at most.
const BAR_REFRESH: Duration = Duration::from_millis(100);
/// How often `watch` prints a new text or JSON snapshot at most.
const LINE_REFRESH: Duration = Duration::from_secs(1);

/// `status`: the progress now.
pub async fn status(client: &Client, out: Output) -> anyhow::Result<()> {
    let snapshot = status::read(client).await?;
    if use_bars(out) {
        let mut bars = Bars::new();
        bars.show(&snapshot);
        bars.finish();
    } else {
        out.emit(&Event::Status(snapshot));
    }
    Ok(())
}

/// `watch`: the progress at every change, until interrupted, or with
/// `until_done` until every job is done.
pub async fn watch(client: &Client, out: Output, until_done: bool) -> anyhow::Result<()> {
    ensure_base(client).await?;
    let mut jobs: Mirror<Job> = Mirror::start(client, JOBS, 1).await?;
    let mut tasks: Mirror<Task> = Mirror::start(client, TASKS, 2).await?;
    let mut workers = ServiceDiscovery::with_root(client.clone(), ROOT)
        .cache(WORKERS_SERVICE)
        .await?;
    let mut leaders = election::observe(client, LEADER);
    let mut leader = None;
    let mut bars = use_bars(out).then(Bars::new);
    let refresh = if bars.is_some() {
        BAR_REFRESH
    } else {
        LINE_REFRESH
    };
    let mut shown: Option<(Snapshot, Instant)> = None;
    let mut tick = tokio::time::interval(BAR_REFRESH);
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            item = jobs.next_item() => {
                jobs.apply(item.ok_or_else(|| anyhow::anyhow!("jobs watch ended"))??).await;
            }
            item = tasks.next_item() => {
                tasks.apply(item.ok_or_else(|| anyhow::anyhow!("tasks watch ended"))??).await;
            }
            change = workers.next() => {
                change.ok_or_else(|| anyhow::anyhow!("workers' cache stopped"))??;
            }
            next = leaders.next() => {
                let next = next.ok_or_else(|| anyhow::anyhow!("leader watch ended"))??;
                leader = next.map(|l| String::from_utf8_lossy(&l.value).into_owned());
            }
            _ = tick.tick() => {
                jobs.heal().await;
                tasks.heal().await;
                let snapshot = status::summarize(jobs.nodes(), tasks.nodes(), &workers.instances(), leader.clone());
                let complete = until_done && all_done(&snapshot);
                let due = shown.as_ref().is_none_or(|(last, at)| *last != snapshot && at.elapsed() >= refresh);
                if due || complete {
                    match &mut bars {
                        Some(bars) => bars.show(&snapshot),
                        None => {
                            out.emit(&Event::Status(snapshot.clone()));
                        }
                    }
                    shown = Some((snapshot, Instant::now()));
                }
                if complete {
                    break;
                }
            }
        }
    }
    if let Some(bars) = bars {
        bars.finish();
    }
    Ok(())
}

/// True if there is a job and every job is done.
fn all_done(snapshot: &Snapshot) -> bool {
    !snapshot.jobs.is_empty() && snapshot.jobs.iter().all(|j| j.state == JobState::Done)
}

/// Bars only for people: on a terminal, without `--json`.
fn use_bars(out: Output) -> bool {
    !out.json && std::io::stdout().is_terminal()
}

/// The bars on the terminal: a header line, a bar per job, a line per
/// worker.
struct Bars {
    multi: MultiProgress,
    header: ProgressBar,
    workers_title: ProgressBar,
    jobs: BTreeMap<String, ProgressBar>,
    workers: BTreeMap<String, ProgressBar>,
}

impl Bars {
    fn new() -> Bars {
        let multi = MultiProgress::with_draw_target(ProgressDrawTarget::stdout());
        let header = multi.add(line());
        let workers_title = multi.add(line());
        workers_title.set_message("workers:");
        Bars {
            multi,
            header,
            workers_title,
            jobs: BTreeMap::new(),
            workers: BTreeMap::new(),
        }
    }

    fn show(&mut self, snapshot: &Snapshot) {
        self.header.set_message(format!(
            "scheduler: {}   reassigned tasks: {}",
            snapshot.leader.as_deref().unwrap_or("none active"),
            snapshot.reassigned
        ));
        for job in &snapshot.jobs {
            let bar = self.jobs.entry(job.job.clone()).or_insert_with(|| {
                let bar = self.multi.insert_before(&self.workers_title, job_bar());
                bar.set_prefix(job.job.clone());
                bar
            });
            bar.set_length(u64::from(job.tasks));
            bar.set_position(u64::from(job.done));
            bar.set_message(job_counts(job));
        }
        for row in &snapshot.workers {
            let bar = self
                .workers
                .entry(row.worker.clone())
                .or_insert_with(|| self.multi.add(line()));
            bar.set_message(format!("  {}", worker_counts(row)));
        }
    }

    /// Leaves the last state on the terminal, and the cursor below it
    /// (indicatif leaves it at the end of the last line).
    fn finish(self) {
        let bars = [&self.header, &self.workers_title];
        for bar in bars
            .into_iter()
            .chain(self.jobs.values())
            .chain(self.workers.values())
        {
            bar.abandon();
        }
        let mut stdout = std::io::stdout();
        let _ = stdout.write_all(b"\n").and_then(|()| stdout.flush());
    }
}

/// A bar that is only its message.
fn line() -> ProgressBar {
    let style =
        ProgressStyle::with_template("{msg}").unwrap_or_else(|_| ProgressStyle::default_bar());
    ProgressBar::new(0).with_style(style)
}

/// A job's bar.
fn job_bar() -> ProgressBar {
    let style = ProgressStyle::with_template("{prefix:<12} [{bar:40}] {msg}")
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("#>-");
    ProgressBar::new(0).with_style(style)
}
