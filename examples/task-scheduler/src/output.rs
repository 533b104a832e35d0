//! What `task-scheduler` prints: one line per [`Event`], as text for people
//! or as a JSON object (`{"event": "completed", ...}`) for scripts and tests.
//! (The live progress bars of `watch` are drawn by `progress`.)

use std::fmt;

use serde::Serialize;

use crate::status::Snapshot;

pub use example_support::Output;

/// Something worth a line of output.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// A scheduler campaigns (stands by while another is active).
    Standby {
        /// Scheduler id.
        scheduler: String,
    },
    /// A scheduler became the active one.
    Leading {
        /// Scheduler id.
        scheduler: String,
        /// Its fencing token: every assignment it makes is fenced by it.
        token: u64,
    },
    /// The active scheduler lost leadership (its writes are refused now).
    LostLeadership {
        /// Scheduler id.
        scheduler: String,
        /// The token of the lost term.
        token: u64,
    },
    /// The active scheduler stepped down (asked to stop).
    Resigned {
        /// Scheduler id.
        scheduler: String,
    },
    /// `submit`: a job was submitted.
    Submitted {
        /// Job name.
        job: String,
        /// Its task count.
        tasks: u32,
    },
    /// The active scheduler created a job's tasks.
    Decomposed {
        /// Job name.
        job: String,
        /// Tasks created.
        tasks: u32,
    },
    /// A worker registered.
    WorkerJoined {
        /// Worker id.
        worker: String,
        /// Its capacity.
        capacity: u32,
    },
    /// A worker's registration vanished: its tasks are taken back.
    WorkerLost {
        /// Worker id.
        worker: String,
        /// Tasks assigned to it.
        tasks: u32,
    },
    /// A task was taken back from a lost worker (pending again).
    Released {
        /// `JOB/t-NNNN`.
        task: String,
        /// The lost worker.
        worker: String,
    },
    /// A task taken back from a lost worker was assigned again.
    Reassigned {
        /// `JOB/t-NNNN`.
        task: String,
        /// Its new worker.
        worker: String,
        /// Assignment number.
        attempt: u32,
    },
    /// Every task of a job is done.
    JobDone {
        /// Job name.
        job: String,
        /// Its task count.
        tasks: u32,
        /// Reassignments its tasks went through.
        reassigned: u32,
    },
    /// A worker registered itself.
    Registered {
        /// Worker id.
        worker: String,
        /// Tasks it runs at once.
        capacity: u32,
    },
    /// A worker started a task.
    Started {
        /// Worker id.
        worker: String,
        /// `JOB/t-NNNN`.
        task: String,
        /// The task node's version its completion is fenced by.
        fence: i32,
    },
    /// A worker's completion was accepted: the task is done, exactly once.
    Completed {
        /// Worker id.
        worker: String,
        /// `JOB/t-NNNN`.
        task: String,
        /// What it computed.
        result: u64,
        /// The version the completion was fenced by.
        fence: i32,
    },
    /// A worker's completion was refused by the fence.
    Refused {
        /// Worker id.
        worker: String,
        /// `JOB/t-NNNN`.
        task: String,
        /// Why.
        reason: String,
    },
    /// A worker's session expired: it stops (its tasks are reassigned).
    SessionLost {
        /// Worker id.
        worker: String,
    },
    /// A worker stopped after finishing what it was running.
    Stopped {
        /// Worker id.
        worker: String,
    },
    /// `status` / `watch`: progress.
    Status(Snapshot),
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Standby { scheduler } => write!(f, "{scheduler}: standing by"),
            Event::Leading { scheduler, token } => {
                write!(f, "{scheduler}: ACTIVE scheduler (token {token})")
            }
            Event::LostLeadership { scheduler, token } => {
                write!(f, "{scheduler}: lost leadership (token {token})")
            }
            Event::Resigned { scheduler } => write!(f, "{scheduler}: resigned"),
            Event::Submitted { job, tasks } => write!(f, "submitted {job} ({tasks} tasks)"),
            Event::Decomposed { job, tasks } => write!(f, "decomposed {job} into {tasks} tasks"),
            Event::WorkerJoined { worker, capacity } => {
                write!(f, "worker {worker} joined (capacity {capacity})")
            }
            Event::WorkerLost { worker, tasks } => {
                write!(f, "worker {worker} LOST; taking back its {tasks} task(s)")
            }
            Event::Released { task, worker } => write!(f, "{task}: taken back from {worker}"),
            Event::Reassigned {
                task,
                worker,
                attempt,
            } => write!(f, "{task}: reassigned to {worker} (attempt {attempt})"),
            Event::JobDone {
                job,
                tasks,
                reassigned,
            } => write!(f, "{job}: all {tasks} tasks done ({reassigned} reassigned)"),
            Event::Registered { worker, capacity } => {
                write!(f, "{worker}: registered (capacity {capacity})")
            }
            Event::Started { worker, task, .. } => write!(f, "{worker}: running {task}"),
            Event::Completed {
                worker,
                task,
                result,
                ..
            } => write!(f, "{worker}: {task} done = {result}"),
            Event::Refused {
                worker,
                task,
                reason,
            } => write!(f, "{worker}: {task} completion REFUSED: {reason}"),
            Event::SessionLost { worker } => {
                write!(
                    f,
                    "{worker}: session lost; stopping (tasks will be reassigned)"
                )
            }
            Event::Stopped { worker } => write!(f, "{worker}: stopped"),
            Event::Status(snapshot) => f.write_str(&crate::status::render_text(snapshot)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_as_text_and_json() {
        let done = Event::Completed {
            worker: "w1".into(),
            task: "job-1/t-0003".into(),
            result: 6,
            fence: 1,
        };
        assert_eq!(done.to_string(), "w1: job-1/t-0003 done = 6");
        let doc = serde_json::to_value(&done).expect("json");
        assert_eq!(
            (doc["event"].as_str(), doc["fence"].as_i64()),
            (Some("completed"), Some(1))
        );
    }
}
