//! Where the scheduler's state lives in the znode tree, and the names in it.
//!
//! ```text
//! /scheduler/leader/candidate-N        election of the active scheduler (ephemeral)
//! /scheduler/workers/WORKER            live workers: {"capacity", "load"} (ephemeral)
//! /scheduler/jobs/JOB                  {"tasks": N, "state": submitted|decomposed|done}
//! /scheduler/tasks/JOB/t-NNNN          the task's state (see `model::Task`)
//! /scheduler/assign/WORKER/JOB.t-NNNN  a worker's assignment queue (persistent)
//! ```
//!
//! Invariant, kept by doing both in one `multi`: a task is assigned to
//! `WORKER` exactly while `/scheduler/assign/WORKER/JOB.t-NNNN` exists.

use coord_client::{Client, CreateMode, Error, ErrorInfo};

/// The root of everything the scheduler keeps.
pub const ROOT: &str = "/scheduler";
/// The election among scheduler processes.
pub const LEADER: &str = "/scheduler/leader";
/// The discovery service name of workers (under [`ROOT`]), hence
/// `/scheduler/workers/WORKER`.
pub const WORKERS_SERVICE: &str = "workers";
/// Submitted jobs.
pub const JOBS: &str = "/scheduler/jobs";
/// Task states, one directory per job.
pub const TASKS: &str = "/scheduler/tasks";
/// Assignment queues, one directory per worker.
pub const ASSIGN: &str = "/scheduler/assign";

/// `/scheduler/jobs/JOB`.
pub fn job_path(job: &str) -> String {
    format!("{JOBS}/{job}")
}

/// `/scheduler/tasks/JOB`.
pub fn task_dir(job: &str) -> String {
    format!("{TASKS}/{job}")
}

/// `t-NNNN`: the name of task `index` (zero-padded so names sort by index).
pub fn task_name(index: u32) -> String {
    format!("t-{index:04}")
}

/// `/scheduler/tasks/JOB/t-NNNN`.
pub fn task_path(job: &str, index: u32) -> String {
    format!("{TASKS}/{job}/{}", task_name(index))
}

/// `/scheduler/workers/WORKER`: the worker's registration.
pub fn worker_path(worker: &str) -> String {
    format!("{ROOT}/{WORKERS_SERVICE}/{worker}")
}

/// `/scheduler/assign/WORKER`.
pub fn assign_dir(worker: &str) -> String {
    format!("{ASSIGN}/{worker}")
}

/// `/scheduler/assign/WORKER/JOB.t-NNNN`.
pub fn assign_path(worker: &str, job: &str, index: u32) -> String {
    format!("{ASSIGN}/{worker}/{job}.{}", task_name(index))
}

/// The task an assignment node names: `JOB.t-NNNN` → (`JOB`, N).
pub fn parse_assignment(name: &str) -> Option<(&str, u32)> {
    let (job, task) = name.split_once('.')?;
    let index = task.strip_prefix("t-")?.parse().ok()?;
    Some((job, index))
}

/// Job names and worker ids: letters, digits, `-` and `_` (so `.` can
/// separate job and task in assignment names), at most 64 characters.
pub fn check_name(what: &str, name: &str) -> Result<(), Error> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::InvalidPath(ErrorInfo::from_message(format!(
            "{what} {name:?}: use 1-64 letters, digits, '-' or '_'"
        ))))
    }
}

/// Creates the persistent directories every role relies on (existing ones
/// are fine), so no role depends on another having started first.
pub async fn ensure_base(client: &Client) -> Result<(), Error> {
    let workers = format!("{ROOT}/{WORKERS_SERVICE}");
    for path in [ROOT, JOBS, TASKS, ASSIGN, LEADER, workers.as_str()] {
        ensure(client, path).await?;
    }
    Ok(())
}

/// Creates one persistent node with no data, if it does not exist.
pub async fn ensure(client: &Client, path: &str) -> Result<(), Error> {
    match client.create(path, "", CreateMode::Persistent).await {
        Ok(_) | Err(Error::NodeExists(_)) => Ok(()),
        Err(err) => Err(err),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        assert_eq!(task_path("job-1", 7), "/scheduler/tasks/job-1/t-0007");
        let assigned = assign_path("w1", "job-1", 12);
        assert_eq!(assigned, "/scheduler/assign/w1/job-1.t-0012");
        assert_eq!(parse_assignment("job-1.t-0012"), Some(("job-1", 12)));
        assert_eq!(parse_assignment("junk"), None);
        assert!(check_name("job", "job_1-a").is_ok());
        assert!(check_name("job", "a.b").is_err());
        assert!(check_name("job", "").is_err());
    }
}
