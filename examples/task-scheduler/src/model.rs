//! The JSON stored in the scheduler's nodes: [`Job`], [`Task`] and the
//! worker load in a registration's metadata, and the (simulated) work.

use coord_client::recipes::discovery::Instance;
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A submitted job: `/scheduler/jobs/JOB`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Job {
    /// How many tasks the job is decomposed into.
    pub tasks: u32,
    /// Where the job is.
    pub state: JobState,
}

/// A job's lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum JobState {
    /// Submitted; the active scheduler has not created its tasks yet.
    Submitted,
    /// Its tasks exist.
    Decomposed,
    /// Every task is done.
    Done,
}

/// A task: `/scheduler/tasks/JOB/t-NNNN`, e.g.
/// `{"job":"j","index":3,"input":3,"state":"assigned","worker":"w1","token":57,"attempts":1,"reassignments":0}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Task {
    /// The job it belongs to.
    pub job: String,
    /// Its number within the job.
    pub index: u32,
    /// What to compute on.
    pub input: u64,
    /// pending → assigned → done (or back to pending if its worker is lost).
    #[serde(flatten)]
    pub state: TaskState,
    /// How many times it was assigned.
    pub attempts: u32,
    /// How many times it was taken back from a lost worker.
    pub reassignments: u32,
}

/// Where a task is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum TaskState {
    /// Waiting for a worker.
    Pending,
    /// Assigned to `worker` by the scheduler holding leadership `token`.
    Assigned {
        /// The worker.
        worker: String,
        /// The assigning scheduler's fencing token.
        token: u64,
    },
    /// Completed by `worker` (exactly once: see `worker::complete`).
    Done {
        /// The worker that completed it.
        worker: String,
        /// The token of the assignment it completed.
        token: u64,
        /// What it computed.
        result: u64,
    },
}

impl Task {
    /// A new pending task.
    pub fn new(job: &str, index: u32) -> Task {
        Task {
            job: job.to_owned(),
            index,
            input: u64::from(index),
            state: TaskState::Pending,
            attempts: 0,
            reassignments: 0,
        }
    }

    /// The worker it is assigned to, if assigned.
    pub fn assignee(&self) -> Option<&str> {
        match &self.state {
            TaskState::Assigned { worker, .. } => Some(worker),
            _ => None,
        }
    }

    /// True once done.
    pub fn is_done(&self) -> bool {
        matches!(self.state, TaskState::Done { .. })
    }

    /// The JSON of the task.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

impl Job {
    /// The JSON of the job.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The simulated work: the sum `1 + 2 + ... + input`, so a result can be
/// checked by anyone.
pub fn compute(input: u64) -> u64 {
    input * (input + 1) / 2
}

/// A worker's capacity and load, as it registers them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Load {
    /// Tasks it runs at once.
    pub capacity: u32,
    /// Tasks it is running now.
    pub load: u32,
}

impl Load {
    /// The registration metadata `{"capacity": C, "load": L}`.
    pub fn metadata(self) -> serde_json::Value {
        json!({"capacity": self.capacity, "load": self.load})
    }

    /// Reads it back from a registered instance (0 for missing fields).
    pub fn of(instance: &Instance) -> Load {
        let field = |name: &str| {
            instance.metadata[name]
                .as_u64()
                .and_then(|v| u32::try_from(v).ok())
                .unwrap_or(0)
        };
        Load {
            capacity: field("capacity"),
            load: field("load"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_are_stored_as_flat_json() {
        let mut task = Task::new("j", 3);
        task.state = TaskState::Assigned {
            worker: "w1".into(),
            token: 57,
        };
        task.attempts = 1;
        let doc: serde_json::Value = serde_json::from_slice(&task.to_json()).expect("json");
        assert_eq!(doc["state"], "assigned");
        assert_eq!(doc["worker"], "w1");
        assert_eq!(doc["token"], 57);
        let back: Task = serde_json::from_value(doc).expect("task");
        assert_eq!(back, task);
        assert_eq!(back.assignee(), Some("w1"));
        assert_eq!(compute(4), 10);
        let instance = Instance::new("w1", "pid 1").with_metadata(
            Load {
                capacity: 3,
                load: 1,
            }
            .metadata(),
        );
        assert_eq!(
            Load::of(&instance),
            Load {
                capacity: 3,
                load: 1
            }
        );
    }
}
