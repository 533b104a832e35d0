//! Running one assignment and completing it **exactly once**.
//!
//! The completion is one `multi`:
//!
//! 1. `check /scheduler/workers/ID` — this worker is still registered: a
//!    worker whose session expired (so the scheduler may be taking its tasks
//!    back) completes nothing;
//! 2. `set TASK done(...) at the version read` — the task is still assigned
//!    to this worker by the very assignment it ran: a task taken back and
//!    reassigned has a higher version, so the old assignee's completion
//!    fails with `BadVersion`, and a task done already can never be done
//!    again;
//! 3. `delete /scheduler/assign/ID/JOB.t-NNNN` — the queue entry goes with it.
//!
//! All or nothing, in one Raft entry: of all the workers that ever ran a
//! task, exactly one completion is applied.

use std::sync::Arc;
use std::time::Duration;

use coord_client::{Client, Error, Op, OpResult};
use tokio::sync::{Semaphore, watch};

use crate::layout::{assign_path, parse_assignment, task_name, task_path, worker_path};
use crate::model::{Task, TaskState, compute};
use crate::output::{Event, Output};

/// Pause before reading or completing again after the client's own retry
/// budget was spent (the cluster was unreachable for that long).
const RETRY_PAUSE: Duration = Duration::from_millis(500);

/// What every assignment of one worker shares.
#[derive(Debug)]
pub struct Worker {
    /// The cluster.
    pub client: Client,
    /// Worker id.
    pub id: String,
    /// One permit per task run at once; closed when the worker stops.
    pub slots: Semaphore,
    /// Tasks running now (the load the worker reports).
    pub loads: watch::Sender<u32>,
    /// How long one task's simulated work takes.
    pub work: Duration,
    /// Where events go.
    pub out: Output,
}

/// How an attempt to complete ended.
enum Completion {
    /// Applied: the task is done, by us.
    Done(i32),
    /// Refused by the fence: someone else owns the task now.
    Refused(String),
}

/// Runs the assignment `name` (`JOB.t-NNNN`) if it is still ours.
pub async fn execute(worker: Arc<Worker>, name: String) {
    let Some((job, index)) = parse_assignment(&name) else {
        tracing::warn!(name, "not an assignment; ignored");
        return;
    };
    let path = task_path(job, index);
    let label = format!("{job}/{}", task_name(index));
    let Ok(_slot) = worker.slots.acquire().await else {
        return; // Stopping: the scheduler takes it back.
    };
    let Some((task, version)) = read_if_ours(&worker, &path).await else {
        return;
    };
    worker.loads.send_modify(|load| *load += 1);
    worker.out.emit(&Event::Started {
        worker: worker.id.clone(),
        task: label.clone(),
        fence: version,
    });
    tokio::time::sleep(worker.work).await;
    let result = compute(task.input);
    let completion = complete(&worker, &path, &task, version, result).await;
    worker
        .loads
        .send_modify(|load| *load = load.saturating_sub(1));
    let (id, task) = (worker.id.clone(), label);
    worker.out.emit(&match completion {
        Completion::Done(fence) => Event::Completed {
            worker: id,
            task,
            result,
            fence,
        },
        Completion::Refused(reason) => Event::Refused {
            worker: id,
            task,
            reason,
        },
    });
}

/// The task and its version if it is assigned to this worker; `None` if it
/// was taken back meanwhile (its queue entry is going too). A failed read is
/// retried while the worker runs: dropping an assignment that is still ours
/// would leave the task stuck on a live worker.
async fn read_if_ours(worker: &Worker, path: &str) -> Option<(Task, i32)> {
    let (data, stat) = loop {
        match worker.client.get(path).await {
            Ok(read) => break read,
            Err(Error::NoNode(_)) => return None,
            Err(err) => {
                tracing::warn!(path, error = %err, "cannot read an assigned task; retrying");
                if worker.slots.is_closed() {
                    return None;
                }
                tokio::time::sleep(RETRY_PAUSE).await;
            }
        }
    };
    let task: Task = serde_json::from_slice(&data).ok()?;
    if task.assignee() == Some(worker.id.as_str()) {
        Some((task, stat.version))
    } else {
        tracing::debug!(path, "assignment withdrawn before it started");
        None
    }
}

/// Completes the task with the fenced multi (module docs), trying again
/// while its outcome is unknown (a retry with the task's version is safe:
/// at most one of the tries can be applied).
async fn complete(
    worker: &Worker,
    path: &str,
    task: &Task,
    version: i32,
    result: u64,
) -> Completion {
    let token = match task.state {
        TaskState::Assigned { token, .. } => token,
        _ => 0,
    };
    let mut done = task.clone();
    done.state = TaskState::Done {
        worker: worker.id.clone(),
        token,
        result,
    };
    let ops = vec![
        Op::check(worker_path(&worker.id), -1),
        Op::set(path, done.to_json(), version),
        Op::delete(assign_path(&worker.id, &task.job, task.index), -1),
    ];
    // Set once a try's outcome was unknown: that try may still be applied
    // after a later one was sent, so a later refusal must be checked.
    let mut uncertain = false;
    loop {
        let err = match worker.client.multi(ops.clone()).await {
            Ok(results) => {
                let fence = match results.get(1) {
                    Some(OpResult::Set(stat)) => stat.version,
                    _ => version + 1,
                };
                return Completion::Done(fence);
            }
            Err(err) => err,
        };
        if let Some(op) = err.op_index() {
            if uncertain
                && let Some(Completion::Done(fence)) =
                    settled(&worker.client, path, &worker.id, version).await
            {
                return Completion::Done(fence);
            }
            return Completion::Refused(if op == 0 {
                "this worker's registration is gone".into()
            } else {
                format!(
                    "the task is no longer assigned to this worker ({})",
                    err.name()
                )
            });
        }
        tracing::warn!(path, error = %err, "completion outcome unknown; checking");
        uncertain = true;
        if let Some(known) = settled(&worker.client, path, &worker.id, version).await {
            return known;
        }
        if worker.slots.is_closed() {
            // Stopping: whoever gets the task next completes it.
            return Completion::Refused("stopped before the cluster answered".into());
        }
        tokio::time::sleep(RETRY_PAUSE).await;
    }
}

/// After a completion with an unknown outcome: `Done` if it was applied,
/// `Refused` if the task moved on, `None` if it is still ours to complete.
async fn settled(client: &Client, path: &str, id: &str, version: i32) -> Option<Completion> {
    let (data, stat) = match client.get(path).await {
        Ok(read) => read,
        Err(Error::NoNode(_)) => return Some(Completion::Refused("the task is gone".into())),
        Err(_) => return None,
    };
    let task: Task = serde_json::from_slice(&data).ok()?;
    match task.state {
        TaskState::Done { worker, .. } if worker == id && stat.version == version + 1 => {
            Some(Completion::Done(stat.version))
        }
        _ if stat.version == version => None,
        _ => Some(Completion::Refused("the task moved on".into())),
    }
}
