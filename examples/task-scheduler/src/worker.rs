//! `task-scheduler worker`: registers, takes the tasks assigned to it, runs
//! them (at most `capacity` at once) and completes each with a fenced multi
//! (`execute`).
//!
//! Registration is the discovery recipe's: an ephemeral
//! `/scheduler/workers/ID` owned by the worker's session, holding
//! `{"capacity": C, "load": L}`; the load is updated (coalesced) as tasks
//! start and finish. Assignments arrive as children of
//! `/scheduler/assign/ID`, followed by a persistent recursive watch set
//! before the directory is listed, so none is missed. If the session expires
//! (the process was paused, or cut off) the worker stops: its registration
//! is gone, the scheduler takes its tasks back, and anything it would still
//! complete is refused by the fence.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use coord_client::recipes::discovery::{DiscoveryError, Instance, Registration, ServiceDiscovery};
use coord_client::{Client, Error, EventType, Session, WatchItem, WatchOptions};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use crate::execute::{Worker, execute};
use crate::layout::{ROOT, WORKERS_SERVICE, assign_dir, check_name, ensure, ensure_base};
use crate::model::Load;
use crate::output::{Event, Output};
use crate::scheduler::SHUTDOWN_GRACE;
use example_support::interrupted;

/// `task-scheduler worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    /// This worker's id (default: worker-PID).
    #[arg(long)]
    pub id: Option<String>,
    /// Tasks run at once.
    #[arg(long, default_value_t = 2)]
    pub capacity: u32,
    /// How long the simulated work of one task takes.
    #[arg(long, default_value_t = 100)]
    pub work_ms: u64,
    /// TTL of the session that keeps the registration: a killed worker's
    /// tasks are taken back about this long after its last keep-alive.
    #[arg(long, default_value_t = 2000)]
    pub session_ttl_ms: u64,
}

/// Registers and works until stopped or the session is lost.
pub async fn run(client: &Client, args: &WorkerArgs, out: Output) -> anyhow::Result<()> {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("worker-{}", std::process::id()));
    check_name("worker id", &id)?;
    anyhow::ensure!(args.capacity > 0, "--capacity must be at least 1");
    ensure_base(client).await?;
    let dir = assign_dir(&id);
    ensure(client, &dir).await?;
    let session = client
        .session(Duration::from_millis(args.session_ttl_ms))
        .await?;
    let load = Load {
        capacity: args.capacity,
        load: 0,
    };
    let instance =
        Instance::new(&id, format!("pid {}", std::process::id())).with_metadata(load.metadata());
    let registration = register(client, &instance, &session).await?;
    out.emit(&Event::Registered {
        worker: id.clone(),
        capacity: args.capacity,
    });
    let (loads, load_changes) = watch::channel(0);
    let reporter = tokio::spawn(report_load(
        registration,
        instance,
        args.capacity,
        load_changes,
    ));
    let worker = Arc::new(Worker {
        client: client.clone(),
        id: id.clone(),
        slots: Semaphore::new(usize::try_from(args.capacity).unwrap_or(1)),
        loads,
        work: Duration::from_millis(args.work_ms),
        out,
    });
    let result = take_assignments(&worker, &dir, &session).await;
    // Stop: let running tasks finish (queued ones stay for the scheduler to
    // take back), then unregister.
    worker.slots.close();
    drop(worker);
    let unregister = async {
        let _ = reporter.await;
        let _ = session.close().await;
    };
    if tokio::time::timeout(SHUTDOWN_GRACE, unregister)
        .await
        .is_err()
    {
        tracing::warn!("cluster unreachable: the registration ends when the session expires");
    }
    out.emit(&Event::Stopped { worker: id });
    result
}

/// Starts a task per assignment until interrupted (Ok) or the session is
/// lost (Err); then waits for the running ones.
async fn take_assignments(
    worker: &Arc<Worker>,
    dir: &str,
    session: &Session,
) -> anyhow::Result<()> {
    let options = WatchOptions {
        recursive: true,
        after_zxid: None,
    };
    let mut queue = worker.client.watch(dir, options).await?;
    let mut known = BTreeSet::new();
    let mut running = JoinSet::new();
    let (names, _) = worker.client.children(dir).await?;
    for name in names {
        if known.insert(name.clone()) {
            running.spawn(execute(Arc::clone(worker), name));
        }
    }
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    let result = loop {
        tokio::select! {
            () = &mut shutdown => break Ok(()),
            () = session.expired() => {
                worker.out.emit(&Event::SessionLost { worker: worker.id.clone() });
                break Err(anyhow::anyhow!("session lost; this worker's tasks are being reassigned"));
            }
            item = queue.next() => match item {
                Some(Ok(WatchItem::Event(event))) => {
                    let Some(name) = event.path.strip_prefix(dir).and_then(|n| n.strip_prefix('/')) else {
                        continue;
                    };
                    match event.kind {
                        EventType::NodeCreated if known.insert(name.to_owned()) => {
                            running.spawn(execute(Arc::clone(worker), name.to_owned()));
                        }
                        EventType::NodeDeleted => {
                            known.remove(name);
                        }
                        _ => {}
                    }
                }
                Some(Ok(WatchItem::Resynced { .. })) => {
                    let (names, _) = worker.client.children(dir).await?;
                    for name in names.into_iter().filter(|n| known.insert(n.clone())) {
                        running.spawn(execute(Arc::clone(worker), name));
                    }
                }
                Some(Ok(WatchItem::Progress(_))) => {}
                Some(Err(err)) => break Err(err.into()),
                None => break Err(anyhow::anyhow!("the assignment watch ended")),
            },
            Some(_) = running.join_next(), if !running.is_empty() => {}
        }
    };
    worker.slots.close();
    let finish = async { while running.join_next().await.is_some() {} };
    let grace = worker.work + SHUTDOWN_GRACE;
    if tokio::time::timeout(grace, finish).await.is_err() {
        tracing::warn!("running tasks did not finish in time; they will be reassigned");
    }
    result
}

/// Registers, waiting while the id is still taken (by a previous run whose
/// session has not expired yet).
async fn register(
    client: &Client,
    instance: &Instance,
    session: &Session,
) -> anyhow::Result<Registration> {
    let discovery = ServiceDiscovery::with_root(client.clone(), ROOT);
    let mut warned = false;
    loop {
        match discovery.register(WORKERS_SERVICE, instance, session).await {
            Ok(registration) => return Ok(registration),
            Err(DiscoveryError::Coord(Error::NodeExists(_))) => {
                if !warned {
                    tracing::warn!(
                        id = instance.id,
                        "worker id still registered; waiting for it to expire"
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Writes the load into the registration whenever it changes (a burst of
/// changes is one write), and unregisters once the worker is gone.
async fn report_load(
    registration: Registration,
    mut instance: Instance,
    capacity: u32,
    mut loads: watch::Receiver<u32>,
) {
    while loads.changed().await.is_ok() {
        let load = *loads.borrow_and_update();
        instance.metadata = Load { capacity, load }.metadata();
        if let Err(err) = registration.update(&instance).await {
            tracing::warn!(error = %err, "could not report the load");
        }
    }
    if let Err(err) = registration.unregister().await {
        tracing::warn!(error = %err, "could not unregister");
    }
}
