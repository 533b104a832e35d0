//! Progress as `status` and `watch` report it: a [`Snapshot`] summarized
//! from the jobs, the tasks and the live workers, and its text form.

use std::collections::BTreeMap;

use coord_client::recipes::discovery::{Instance, ServiceDiscovery};
use coord_client::recipes::election;
use coord_client::{Client, Error, Stat};
use serde::Serialize;

use crate::layout::{JOBS, LEADER, ROOT, TASKS, WORKERS_SERVICE};
use crate::mirror::read_all;
use crate::model::{Job, JobState, Load, Task, TaskState};

/// Width of the text progress bar, in characters.
const BAR_WIDTH: usize = 40;

/// Everything `status` shows.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The active scheduler, if any.
    pub leader: Option<String>,
    /// Progress per job.
    pub jobs: Vec<JobProgress>,
    /// Per-worker counts: live workers, and lost ones that still own tasks
    /// or completed some.
    pub workers: Vec<WorkerRow>,
    /// Reassignments of all tasks.
    pub reassigned: u32,
}

/// One job's progress.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct JobProgress {
    /// Job name.
    pub job: String,
    /// Submitted, decomposed or done.
    pub state: JobState,
    /// Tasks in the job.
    pub tasks: u32,
    /// Tasks waiting for a worker.
    pub pending: u32,
    /// Tasks assigned and not done.
    pub assigned: u32,
    /// Tasks done.
    pub done: u32,
    /// Reassignments its tasks went through.
    pub reassigned: u32,
}

/// One worker's counts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WorkerRow {
    /// Worker id.
    pub worker: String,
    /// Registered now.
    pub live: bool,
    /// Registered capacity (0 if lost).
    pub capacity: u32,
    /// Registered load (0 if lost).
    pub load: u32,
    /// Tasks assigned to it and not done.
    pub assigned: u32,
    /// Tasks it completed.
    pub done: u32,
}

/// Reads everything a snapshot needs (linearizable reads).
pub async fn read(client: &Client) -> Result<Snapshot, Error> {
    let jobs: BTreeMap<String, (Job, Stat)> = read_all(client, JOBS, 1).await?;
    let tasks: BTreeMap<String, (Task, Stat)> = read_all(client, TASKS, 2).await?;
    let live = ServiceDiscovery::with_root(client.clone(), ROOT)
        .instances(WORKERS_SERVICE)
        .await?;
    let leader = election::leader(client, LEADER).await?;
    let leader = leader.map(|l| String::from_utf8_lossy(&l.value).into_owned());
    Ok(summarize(&jobs, &tasks, &live, leader))
}

/// Summarizes jobs and tasks (by path) and the live workers.
pub fn summarize(
    jobs: &BTreeMap<String, (Job, Stat)>,
    tasks: &BTreeMap<String, (Task, Stat)>,
    live: &[Instance],
    leader: Option<String>,
) -> Snapshot {
    let mut progress: BTreeMap<String, JobProgress> = jobs
        .iter()
        .map(|(path, (job, _))| {
            let name = path.rsplit('/').next().unwrap_or(path).to_owned();
            let row = JobProgress {
                job: name.clone(),
                state: job.state,
                tasks: job.tasks,
                pending: 0,
                assigned: 0,
                done: 0,
                reassigned: 0,
            };
            (name, row)
        })
        .collect();
    let mut workers: BTreeMap<String, WorkerRow> = live
        .iter()
        .map(|i| (i.id.clone(), worker_row(&i.id, Some(Load::of(i)))))
        .collect();
    let mut reassigned = 0;
    for (task, _) in tasks.values() {
        reassigned += task.reassignments;
        let Some(job) = progress.get_mut(&task.job) else {
            continue;
        };
        job.reassigned += task.reassignments;
        match &task.state {
            TaskState::Pending => job.pending += 1,
            TaskState::Assigned { worker, .. } => {
                job.assigned += 1;
                let row = workers
                    .entry(worker.clone())
                    .or_insert_with(|| worker_row(worker, None));
                row.assigned += 1;
            }
            TaskState::Done { worker, .. } => {
                job.done += 1;
                let row = workers
                    .entry(worker.clone())
                    .or_insert_with(|| worker_row(worker, None));
                row.done += 1;
            }
        }
    }
    Snapshot {
        leader,
        jobs: progress.into_values().collect(),
        workers: workers.into_values().collect(),
        reassigned,
    }
}

fn worker_row(id: &str, live: Option<Load>) -> WorkerRow {
    let load = live.unwrap_or(Load {
        capacity: 0,
        load: 0,
    });
    WorkerRow {
        worker: id.to_owned(),
        live: live.is_some(),
        capacity: load.capacity,
        load: load.load,
        assigned: 0,
        done: 0,
    }
}

/// `[#####-----]`, `width` characters between the brackets.
pub fn bar(done: u32, total: u32, width: usize) -> String {
    let filled = if total == 0 {
        0
    } else {
        let ratio = u64::from(done.min(total)) * width as u64 / u64::from(total);
        usize::try_from(ratio).unwrap_or(width)
    };
    format!("[{}{}]", "#".repeat(filled), "-".repeat(width - filled))
}

/// The counts after a job's bar.
pub fn job_counts(job: &JobProgress) -> String {
    format!(
        "{}/{} done, {} running, {} pending, {} reassigned",
        job.done, job.tasks, job.assigned, job.pending, job.reassigned
    )
}

/// One worker's counts.
pub fn worker_counts(row: &WorkerRow) -> String {
    if row.live {
        format!(
            "{}: {} done, {} assigned, load {}/{}",
            row.worker, row.done, row.assigned, row.load, row.capacity
        )
    } else {
        format!(
            "{}: {} done, {} assigned, LOST",
            row.worker, row.done, row.assigned
        )
    }
}

/// The text form of a snapshot: leader, a bar per job, a line per worker.
pub fn render_text(snapshot: &Snapshot) -> String {
    let mut lines = vec![format!(
        "scheduler: {}",
        snapshot.leader.as_deref().unwrap_or("none active")
    )];
    for job in &snapshot.jobs {
        lines.push(format!(
            "{:<12} {} {}",
            job.job,
            bar(job.done, job.tasks, BAR_WIDTH),
            job_counts(job)
        ));
    }
    if snapshot.jobs.is_empty() {
        lines.push("no jobs".to_owned());
    }
    for row in &snapshot.workers {
        lines.push(format!("  {}", worker_counts(row)));
    }
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_snapshot_counts_per_job_and_per_worker() {
        let jobs = BTreeMap::from([(
            "/scheduler/jobs/j".to_owned(),
            (
                Job {
                    tasks: 3,
                    state: JobState::Decomposed,
                },
                Stat::default(),
            ),
        )]);
        let mut tasks = BTreeMap::new();
        let states = [
            TaskState::Pending,
            TaskState::Assigned {
                worker: "w1".into(),
                token: 5,
            },
            TaskState::Done {
                worker: "w2".into(),
                token: 5,
                result: 3,
            },
        ];
        for (i, state) in states.into_iter().enumerate() {
            let index = u32::try_from(i).expect("small");
            let mut task = Task::new("j", index);
            task.state = state;
            task.reassignments = index;
            tasks.insert(format!("/scheduler/tasks/j/t-{i}"), (task, Stat::default()));
        }
        let live = [Instance::new("w1", "pid 1").with_metadata(
            Load {
                capacity: 2,
                load: 1,
            }
            .metadata(),
        )];
        let snapshot = summarize(&jobs, &tasks, &live, Some("s1".into()));
        let job = &snapshot.jobs[0];
        assert_eq!(
            (job.pending, job.assigned, job.done, job.reassigned),
            (1, 1, 1, 3)
        );
        assert_eq!(snapshot.reassigned, 3);
        assert_eq!(snapshot.workers.len(), 2);
        assert!(snapshot.workers[0].live && !snapshot.workers[1].live);
        let text = render_text(&snapshot);
        assert!(
            text.contains("1/3 done, 1 running, 1 pending, 3 reassigned"),
            "{text}"
        );
        assert!(text.contains("w2: 1 done, 0 assigned, LOST"), "{text}");
        assert_eq!(bar(1, 4, 8), "[##------]");
        assert_eq!(bar(0, 0, 2), "[--]");
    }
}
