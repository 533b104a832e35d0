//! One scheduling pass of the active scheduler: create the tasks of new
//! jobs, take back the tasks of lost workers, assign pending tasks to the
//! workers with room, and mark finished jobs done.
//!
//! Every write is a `multi` behind the leadership check
//! (`Leadership::fenced`), and every change of a task is conditional on the
//! version the scheduler last saw, so a stale view makes a write fail
//! (`BadVersion`: read it again) instead of overwriting a worker's
//! completion. An assignment creates the worker's queue entry
//! `/scheduler/assign/WORKER/JOB.t-NNNN` in the same multi, and taking a task
//! back deletes it in the same multi, so the queue and the task states
//! always agree.

use std::collections::{BTreeMap, BTreeSet};

use coord_client::{CreateMode, Error, Op, OpResult, Stat};
use tokio::task::JoinSet;

use crate::layout::{assign_dir, assign_path, ensure, task_dir, task_name, task_path};
use crate::model::{Job, JobState, Load, Task, TaskState};
use crate::output::Event;
use crate::placement::{Candidate, choose};
use crate::scheduler::{Active, Fenced};

/// Tasks created per multi when a job is decomposed.
const CREATE_BATCH: usize = 50;

impl Active<'_> {
    /// One pass; `Err(Fenced)` once this scheduler is no longer active.
    pub async fn schedule(&mut self) -> Result<(), Fenced> {
        self.decompose_jobs().await?;
        self.release_orphans().await?;
        self.assign_pending().await?;
        self.finish_jobs().await
    }

    /// Sends a fenced multi; a refusal by the fence becomes `Err(Fenced)`,
    /// any other failure `Ok(Err(_))`.
    async fn fenced(&self, ops: Vec<Op>) -> Result<Result<Vec<OpResult>, Error>, Fenced> {
        match self.client.multi(self.leadership.fenced(ops)).await {
            Err(err) if self.leadership.fence_failed(&err) => Err(Fenced),
            result => Ok(result),
        }
    }

    /// Creates the tasks of every submitted job.
    async fn decompose_jobs(&mut self) -> Result<(), Fenced> {
        let submitted: Vec<(String, Job, Stat)> = self
            .jobs
            .nodes()
            .iter()
            .filter(|(_, (job, _))| job.state == JobState::Submitted)
            .map(|(path, (job, stat))| (path.clone(), job.clone(), *stat))
            .collect();
        for (path, job, stat) in submitted {
            let name = path.rsplit('/').next().unwrap_or_default().to_owned();
            if let Err(err) = ensure(&self.client, &task_dir(&name)).await {
                tracing::warn!(job = name, error = %err, "cannot create the task directory");
                continue;
            }
            let missing: Vec<u32> = (0..job.tasks)
                .filter(|i| self.tasks.get(&task_path(&name, *i)).is_none())
                .collect();
            for batch in missing.chunks(CREATE_BATCH) {
                self.create_tasks(&name, batch).await?;
            }
            let decomposed = Job {
                state: JobState::Decomposed,
                ..job
            };
            let set = Op::set(&path, decomposed.to_json(), stat.version);
            match self.fenced(vec![set]).await? {
                Ok(results) => {
                    if let Some(OpResult::Set(stat)) = results.get(1) {
                        self.jobs.record(&path, decomposed, *stat);
                    }
                    self.out.emit(&Event::Decomposed {
                        job: name,
                        tasks: job.tasks,
                    });
                }
                Err(err) => {
                    tracing::warn!(job = name, error = %err, "could not mark the job decomposed");
                    self.jobs.refresh(&path).await;
                }
            }
        }
        Ok(())
    }

    /// Creates tasks `indices` of `job` in one multi; if some exist already
    /// (a previous scheduler got that far), one by one.
    async fn create_tasks(&mut self, job: &str, indices: &[u32]) -> Result<(), Fenced> {
        let create = |i: u32| {
            let task = Task::new(job, i);
            Op::create(task_path(job, i), task.to_json(), CreateMode::Persistent)
        };
        match self
            .fenced(indices.iter().map(|i| create(*i)).collect())
            .await?
        {
            Ok(results) => {
                for (i, result) in indices.iter().zip(results.iter().skip(1)) {
                    if let OpResult::Create(created) = result {
                        self.tasks
                            .record(&created.path, Task::new(job, *i), created.stat);
                    }
                }
            }
            Err(Error::NodeExists(_)) if indices.len() > 1 => {
                for i in indices {
                    Box::pin(self.create_tasks(job, &[*i])).await?;
                }
            }
            Err(Error::NodeExists(_)) => {
                self.tasks.refresh(&task_path(job, indices[0])).await;
            }
            Err(err) => tracing::warn!(job, error = %err, "could not create tasks; next pass"),
        }
        Ok(())
    }

    /// Takes back (to pending) every task assigned to a worker that is not
    /// registered any more.
    async fn release_orphans(&mut self) -> Result<(), Fenced> {
        let live: BTreeSet<String> = self.workers.instances().into_iter().map(|i| i.id).collect();
        let orphans: Vec<(String, Task, Stat)> = self
            .tasks
            .nodes()
            .iter()
            .filter(|(_, (task, _))| task.assignee().is_some_and(|w| !live.contains(w)))
            .map(|(path, (task, stat))| (path.clone(), task.clone(), *stat))
            .collect();
        for (path, task, stat) in orphans {
            self.release(&path, task, stat).await?;
        }
        Ok(())
    }

    /// Sets a lost worker's task back to pending and deletes its queue entry.
    async fn release(&mut self, path: &str, task: Task, stat: Stat) -> Result<(), Fenced> {
        let worker = task.assignee().unwrap_or_default().to_owned();
        let mut pending = task.clone();
        pending.state = TaskState::Pending;
        pending.reassignments += 1;
        let set = Op::set(path, pending.to_json(), stat.version);
        let dequeue = Op::delete(assign_path(&worker, &task.job, task.index), -1);
        let mut result = self.fenced(vec![set.clone(), dequeue]).await?;
        if matches!(&result, Err(Error::NoNode(_))) {
            // The queue entry is gone already (the invariant says it cannot
            // be, but a task must never stay stuck on a lost worker).
            tracing::warn!(path, worker, "no queue entry for an assigned task");
            result = self.fenced(vec![set]).await?;
        }
        match result {
            Ok(results) => {
                if let Some(OpResult::Set(stat)) = results.get(1) {
                    self.tasks.record(path, pending, *stat);
                }
                let task = format!("{}/{}", task.job, task_name(task.index));
                self.out.emit(&Event::Released { task, worker });
            }
            Err(err) => {
                tracing::debug!(path, error = %err, "release failed; re-reading the task");
                self.tasks.refresh(path).await;
            }
        }
        Ok(())
    }

    /// The live workers with their load (reported, and outstanding as far
    /// as the task states show).
    fn candidates(&self) -> Vec<Candidate> {
        let mut outstanding: BTreeMap<&str, u32> = BTreeMap::new();
        for (task, _) in self.tasks.nodes().values() {
            if let Some(worker) = task.assignee() {
                *outstanding.entry(worker).or_default() += 1;
            }
        }
        self.workers
            .instances()
            .iter()
            .map(|instance| {
                let load = Load::of(instance);
                Candidate {
                    id: instance.id.clone(),
                    capacity: load.capacity,
                    reported: load.load,
                    outstanding: outstanding.get(instance.id.as_str()).copied().unwrap_or(0),
                }
            })
            .collect()
    }

    /// Assigns pending tasks, oldest job and lowest index first, while some
    /// worker has room.
    ///
    /// The assignments of a pass are sent at once: each is conditional on
    /// its own task's version only, and the cluster commits concurrent
    /// writes together (one Raft entry batch, one fsync), so a pass costs
    /// about one write's latency instead of one per task.
    async fn assign_pending(&mut self) -> Result<(), Fenced> {
        let mut candidates = self.candidates();
        if !candidates.iter().any(Candidate::has_room) {
            return Ok(());
        }
        let pending: Vec<(String, Task, Stat)> = self
            .tasks
            .nodes()
            .iter()
            .filter(|(_, (task, _))| task.state == TaskState::Pending)
            .map(|(path, (task, stat))| (path.clone(), task.clone(), *stat))
            .collect();
        let mut plan = Vec::new();
        for (path, task, stat) in pending {
            let Some(chosen) = choose(&candidates) else {
                break;
            };
            candidates[chosen].outstanding += 1;
            let worker = &candidates[chosen].id;
            plan.push(Assignment::new(
                path,
                task,
                stat,
                worker,
                self.leadership.token(),
            ));
        }
        let mut sends = JoinSet::new();
        for (i, assignment) in plan.iter().enumerate() {
            let (client, ops) = (
                self.client.clone(),
                self.leadership.fenced(assignment.ops()),
            );
            sends.spawn(async move { (i, client.multi(ops).await) });
        }
        let mut fenced = false;
        while let Some(joined) = sends.join_next().await {
            let Ok((i, result)) = joined else { continue };
            match result {
                Err(err) if self.leadership.fence_failed(&err) => fenced = true,
                result => self.assigned(&plan[i], result).await,
            }
        }
        if fenced { Err(Fenced) } else { Ok(()) }
    }

    /// Records the outcome of one assignment.
    async fn assigned(&mut self, plan: &Assignment, result: Result<Vec<OpResult>, Error>) {
        let task = &plan.assigned;
        match result {
            Ok(results) => {
                if let Some(OpResult::Set(stat)) = results.get(1) {
                    self.tasks.record(&plan.path, task.clone(), *stat);
                }
                tracing::debug!(path = plan.path, worker = plan.worker, "assigned");
                if task.reassignments > 0 {
                    self.out.emit(&Event::Reassigned {
                        task: format!("{}/{}", task.job, task_name(task.index)),
                        worker: plan.worker.clone(),
                        attempt: task.attempts,
                    });
                }
            }
            Err(err) => {
                tracing::debug!(path = plan.path, error = %err, "assignment failed; re-reading the task");
                match err {
                    // The worker's queue directory is missing: make it.
                    Error::NoNode(_) => {
                        let _ = ensure(&self.client, &assign_dir(&plan.worker)).await;
                    }
                    // The task is pending (op 1 passed), so a queue entry
                    // for it is stale: remove it.
                    Error::NodeExists(_) => {
                        let _ = self.client.delete(&plan.queue_entry, -1).await;
                    }
                    _ => {}
                }
                self.tasks.refresh(&plan.path).await;
            }
        }
    }

    /// Marks done every decomposed job whose tasks are all done.
    async fn finish_jobs(&mut self) -> Result<(), Fenced> {
        let finished: Vec<(String, Job, Stat, u32)> = self
            .jobs
            .nodes()
            .iter()
            .filter(|(_, (job, _))| job.state == JobState::Decomposed)
            .filter_map(|(path, (job, stat))| {
                let name = path.rsplit('/').next().unwrap_or_default();
                let (done, reassigned) = self.job_counts(name);
                (done == job.tasks).then(|| (path.clone(), job.clone(), *stat, reassigned))
            })
            .collect();
        for (path, job, stat, reassigned) in finished {
            let done = Job {
                state: JobState::Done,
                ..job
            };
            match self
                .fenced(vec![Op::set(&path, done.to_json(), stat.version)])
                .await?
            {
                Ok(results) => {
                    if let Some(OpResult::Set(stat)) = results.get(1) {
                        self.jobs.record(&path, done, *stat);
                    }
                    let name = path.rsplit('/').next().unwrap_or_default().to_owned();
                    self.out.emit(&Event::JobDone {
                        job: name,
                        tasks: job.tasks,
                        reassigned,
                    });
                }
                Err(_) => {
                    self.jobs.refresh(&path).await;
                }
            }
        }
        Ok(())
    }

    /// (done tasks, reassignments) of `job`.
    fn job_counts(&self, job: &str) -> (u32, u32) {
        let prefix = format!("{}/", task_dir(job));
        self.tasks
            .nodes()
            .range(prefix.clone()..)
            .take_while(|(path, _)| path.starts_with(&prefix))
            .fold((0, 0), |(done, moved), (_, (task, _))| {
                (done + u32::from(task.is_done()), moved + task.reassignments)
            })
    }
}

/// One planned assignment: the task as it will be, and where.
struct Assignment {
    path: String,
    assigned: Task,
    version: i32,
    worker: String,
    queue_entry: String,
}

impl Assignment {
    /// `task` (read at `stat`) assigned to `worker` by leadership `token`.
    fn new(path: String, task: Task, stat: Stat, worker: &str, token: u64) -> Assignment {
        let queue_entry = assign_path(worker, &task.job, task.index);
        let mut assigned = task;
        assigned.state = TaskState::Assigned {
            worker: worker.to_owned(),
            token,
        };
        assigned.attempts += 1;
        Assignment {
            path,
            assigned,
            version: stat.version,
            worker: worker.to_owned(),
            queue_entry,
        }
    }

    /// The task's new state if its version is still the one read, and the
    /// worker's queue entry, in one multi (to be fenced).
    fn ops(&self) -> Vec<Op> {
        vec![
            Op::set(&self.path, self.assigned.to_json(), self.version),
            Op::create(&self.queue_entry, "", CreateMode::Persistent),
        ]
    }
}
