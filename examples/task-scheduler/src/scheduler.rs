//! `task-scheduler scheduler`: several of these run; one is active.
//!
//! Each process campaigns in the election at `/scheduler/leader` (the
//! election recipe). The winner becomes [`Active`]: it follows the jobs and
//! tasks (two [`Mirror`]s) and the live workers (the discovery recipe's
//! cache of `/scheduler/workers`), and after every change runs one pass of
//! `assign::schedule`. Every write it makes is fenced by its leadership node,
//! so once it has lost leadership (its session expired while it was paused,
//! say) nothing it sends is applied: two schedulers can never both assign.
//! When leadership is lost it stops at once and campaigns again; when asked
//! to stop it resigns, so a standby takes over without waiting for a TTL.

use std::time::Duration;

use clap::Args;
use coord_client::recipes::discovery::{MembershipChange, ServiceCache, ServiceDiscovery};
use coord_client::recipes::election::{Election, Leadership};
use coord_client::{Client, Error, Session};

use crate::layout::{JOBS, LEADER, ROOT, TASKS, WORKERS_SERVICE, check_name, ensure_base};
use crate::mirror::Mirror;
use crate::model::{Job, Load, Task};
use crate::output::{Event, Output};
use example_support::interrupted;

/// How long a stopping scheduler (or worker) tries to hand over cleanly
/// before it gives up and lets its session expire instead (the cluster may
/// be unreachable).
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);
/// Time between two passes when nothing happens (retries failed reads).
const IDLE_PASS: Duration = Duration::from_secs(1);

/// `task-scheduler scheduler`.
#[derive(Debug, Args)]
pub struct SchedulerArgs {
    /// This scheduler's id (default: scheduler-PID).
    #[arg(long)]
    pub id: Option<String>,
    /// TTL of the session that holds leadership: a killed active scheduler
    /// is replaced about this long after its last keep-alive.
    #[arg(long, default_value_t = 2000)]
    pub session_ttl_ms: u64,
}

/// How a term as the active scheduler ended.
enum Ended {
    /// Asked to stop: resign and exit.
    Shutdown,
    /// Leadership lost (or a write fenced out): campaign again.
    Lost,
}

/// What one step of the event loop did.
enum Step {
    /// The term ended.
    Ended(Ended),
    /// A change was applied.
    Applied,
    /// Nothing arrived (or the idle tick passed).
    Nothing,
}

/// The fence refused a write: this scheduler is no longer the active one.
#[derive(Debug)]
pub struct Fenced;

/// Campaigns, schedules while active, and campaigns again, until stopped.
pub async fn run(client: &Client, args: &SchedulerArgs, out: Output) -> anyhow::Result<()> {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("scheduler-{}", std::process::id()));
    check_name("scheduler id", &id)?;
    ensure_base(client).await?;
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    loop {
        let session = client
            .session(Duration::from_millis(args.session_ttl_ms))
            .await?;
        let election = Election::new(client.clone(), &session, LEADER);
        out.emit(&Event::Standby {
            scheduler: id.clone(),
        });
        let campaign = tokio::select! {
            campaign = election.campaign(id.clone()) => campaign,
            () = &mut shutdown => {
                let _ = session.close().await;
                return Ok(());
            }
        };
        let leadership = match campaign {
            Ok(leadership) => leadership,
            Err(Error::LeaseNotFound(_)) => continue,
            Err(err) => return Err(err.into()),
        };
        let token = leadership.token();
        out.emit(&Event::Leading {
            scheduler: id.clone(),
            token,
        });
        let ended = match Active::start(client, &leadership, out).await {
            Ok(mut active) => active.run(&mut shutdown).await,
            Err(err) => Err(err),
        };
        match ended {
            Ok(Ended::Shutdown) => return resign(leadership, session, id, out).await,
            Ok(Ended::Lost) => {
                out.emit(&Event::LostLeadership {
                    scheduler: id.clone(),
                    token,
                });
            }
            Err(err) => {
                tracing::warn!(error = %err, "the active scheduler failed; stepping down");
                tokio::time::sleep(IDLE_PASS).await;
            }
        }
        drop(leadership);
        let _ = session.close().await;
    }
}

/// Steps down when asked to stop, so a standby takes over at once; if the
/// cluster does not answer within [`SHUTDOWN_GRACE`], leadership ends when
/// the session expires instead.
async fn resign(
    leadership: Leadership,
    session: Session,
    id: String,
    out: Output,
) -> anyhow::Result<()> {
    let stop = async {
        let resigned = leadership.resign().await;
        let _ = session.close().await;
        resigned
    };
    match tokio::time::timeout(SHUTDOWN_GRACE, stop).await {
        Ok(Ok(())) => {
            out.emit(&Event::Resigned { scheduler: id });
        }
        Ok(Err(err)) => return Err(err.into()),
        Err(_) => tracing::warn!("cluster unreachable: leadership ends when the session expires"),
    }
    Ok(())
}

/// The active scheduler: what it knows, and its fence.
pub struct Active<'a> {
    /// The cluster.
    pub client: Client,
    /// Its leadership: every write is `leadership.fenced(...)`.
    pub leadership: &'a Leadership,
    /// Where events go.
    pub out: Output,
    /// `/scheduler/jobs/*`.
    pub jobs: Mirror<Job>,
    /// `/scheduler/tasks/*/*`.
    pub tasks: Mirror<Task>,
    /// The live workers.
    pub workers: ServiceCache,
}

impl<'a> Active<'a> {
    /// Loads everything the scheduler decides from (watches first, then reads).
    async fn start(
        client: &Client,
        leadership: &'a Leadership,
        out: Output,
    ) -> anyhow::Result<Active<'a>> {
        let workers = ServiceDiscovery::with_root(client.clone(), ROOT)
            .cache(WORKERS_SERVICE)
            .await?;
        Ok(Active {
            client: client.clone(),
            leadership,
            out,
            jobs: Mirror::start(client, JOBS, 1).await?,
            tasks: Mirror::start(client, TASKS, 2).await?,
            workers,
        })
    }

    /// Schedules after every change until leadership is lost or the process
    /// is asked to stop. Every change already arrived is applied before the
    /// next pass, so a burst of completions costs one pass, not one each.
    async fn run(
        &mut self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
    ) -> anyhow::Result<Ended> {
        let mut idle = tokio::time::interval(IDLE_PASS);
        loop {
            if self.schedule().await.is_err() {
                return Ok(Ended::Lost);
            }
            let mut wait = true;
            loop {
                match self.step(shutdown, &mut idle, wait).await? {
                    Step::Ended(ended) => return Ok(ended),
                    Step::Applied => wait = false,
                    Step::Nothing => break,
                }
            }
        }
    }

    /// Applies one change; with `wait`, waits for it (or for the idle
    /// tick), else returns `Nothing` if none has arrived.
    async fn step(
        &mut self,
        shutdown: &mut (impl Future<Output = ()> + Unpin),
        idle: &mut tokio::time::Interval,
        wait: bool,
    ) -> anyhow::Result<Step> {
        tokio::select! {
            biased;
            () = self.leadership.lost() => return Ok(Step::Ended(Ended::Lost)),
            () = &mut *shutdown => return Ok(Step::Ended(Ended::Shutdown)),
            change = self.workers.next() => self.on_worker_change(change)?,
            item = self.jobs.next_item() => {
                let item = item.ok_or_else(|| anyhow::anyhow!("the jobs watch ended"))??;
                self.jobs.apply(item).await;
            }
            item = self.tasks.next_item() => {
                let item = item.ok_or_else(|| anyhow::anyhow!("the tasks watch ended"))??;
                self.tasks.apply(item).await;
            }
            _ = idle.tick(), if wait => {
                self.jobs.heal().await;
                self.tasks.heal().await;
                return Ok(Step::Nothing);
            }
            () = std::future::ready(()), if !wait => return Ok(Step::Nothing),
        }
        Ok(Step::Applied)
    }

    /// Reports workers joining and leaving (the next pass takes back the
    /// tasks of a worker that left).
    fn on_worker_change(
        &mut self,
        change: Option<Result<MembershipChange, Error>>,
    ) -> anyhow::Result<()> {
        match change {
            Some(Ok(MembershipChange::Added(instance))) => {
                self.out.emit(&Event::WorkerJoined {
                    worker: instance.id.clone(),
                    capacity: Load::of(&instance).capacity,
                });
            }
            Some(Ok(MembershipChange::Removed(instance))) => {
                let tasks = self
                    .tasks
                    .nodes()
                    .values()
                    .filter(|(task, _)| task.assignee() == Some(instance.id.as_str()))
                    .count();
                self.out.emit(&Event::WorkerLost {
                    worker: instance.id,
                    tasks: u32::try_from(tasks).unwrap_or(u32::MAX),
                });
            }
            Some(Ok(MembershipChange::Updated { .. })) => {}
            Some(Err(err)) => return Err(err.into()),
            None => anyhow::bail!("the workers' cache stopped"),
        }
        Ok(())
    }
}
