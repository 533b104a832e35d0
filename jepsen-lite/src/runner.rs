//! One run: start a cluster, run the clients and the nemesis for the configured
//! time, heal everything, let the cluster settle, do the final reads, record the
//! history and check it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use coord_client::Client;
use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde::{Deserialize, Serialize};
use tracing::{info, warn};

use crate::history::{Event, EventType};
use crate::nemesis::{self, Fault, Kind, Split, Target};
use crate::rng::Rng;
use crate::workload::{Completion, Invocation, Workload};

/// Everything that determines a run; saved as `config.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RunConfig {
    /// What the clients do.
    pub workload: Workload,
    /// Fault kinds to draw from (empty: no faults).
    pub nemesis: Vec<Kind>,
    /// Cluster size.
    pub nodes: usize,
    /// Length of the workload phase (ms).
    pub time_ms: u64,
    /// Concurrent clients.
    pub concurrency: u64,
    /// Seed of every random choice.
    pub seed: u64,
    /// The `coord-server` binary.
    pub server_bin: PathBuf,
    /// Extra flags for every server.
    pub server_args: Vec<String>,
}

/// A fault as it happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FaultRecord {
    /// When it began (ns since the start of the run).
    pub start_ns: u64,
    /// When it was healed.
    pub end_ns: u64,
    /// What it was.
    pub fault: String,
    /// Members it hit.
    pub members: Vec<u64>,
}

/// Appends history events, timestamped from the start of the run.
#[derive(Debug, Clone)]
struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    fn invoke(&self, process: u64, op: &Invocation) -> u64 {
        let start_ns = self.now();
        self.push(Event {
            process,
            kind: EventType::Invoke,
            f: op.f.to_owned(),
            key: op.key.clone(),
            value: op.value.clone(),
            start_ns,
            end_ns: None,
            member: None,
            error: None,
        });
        start_ns
    }

    fn complete(&self, process: u64, op: &Invocation, start_ns: u64, done: &Completion) {
        self.push(Event {
            process,
            kind: done.kind,
            f: op.f.to_owned(),
            key: op.key.clone(),
            value: done.value.clone(),
            start_ns,
            end_ns: Some(self.now()),
            member: done.member,
            error: done.error.clone(),
        });
    }
}

async fn client_for(endpoints: &[String], first: usize, retry: Duration) -> anyhow::Result<Client> {
    let mut rotated = endpoints.to_vec();
    rotated.rotate_left(first % endpoints.len().max(1));
    Ok(Client::builder(rotated)
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(1))
        .retry_timeout(retry)
        .build()
        .await?)
}

/// One client: operations until the deadline; after an `info` the process id
/// changes, since the unknown operation may still be in flight.
async fn client_loop(
    workload: Workload,
    client: Client,
    index: u64,
    concurrency: u64,
    mut rng: Rng,
    recorder: Recorder,
    deadline: Instant,
) {
    let mut process = index;
    let mut seen = BTreeMap::new();
    let mut counter = 0;
    while Instant::now() < deadline {
        let op = workload.next(&mut rng, process, counter, &seen);
        counter += 1;
        let start_ns = recorder.invoke(process, &op);
        let done = workload.invoke(&client, &op).await;
        recorder.complete(process, &op, start_ns, &done);
        if let Some(v) = done
            .value
            .get("version")
            .and_then(serde_json::Value::as_i64)
        {
            seen.insert(op.key.clone(), v);
        }
        if done.kind == EventType::Info {
            process += concurrency;
        }
        tokio::time::sleep(Duration::from_millis(rng.range(0, 10))).await;
    }
}

/// What a fault changed, to undo when it ends.
enum Undo {
    Restart(Vec<u64>),
    Resume(Vec<u64>),
    Heal,
}

async fn targets(cluster: &Cluster, target: Target, rng: &mut Rng) -> Vec<u64> {
    let mut ids = cluster.ids();
    rng.shuffle(&mut ids);
    match target {
        Target::Random => ids.truncate(1),
        Target::Majority => ids.truncate(ids.len() / 2 + 1),
        Target::Leader => {
            if let Some(leader) = cluster.agreed_leader().await {
                ids = vec![leader];
            } else {
                ids.truncate(1);
            }
        }
    }
    ids
}

async fn apply(cluster: &mut Cluster, fault: Fault, rng: &mut Rng) -> (Undo, Vec<u64>) {
    match fault {
        Fault::Kill(target) => {
            let ids = targets(cluster, target, rng).await;
            for id in &ids {
                cluster.kill(*id);
            }
            (Undo::Restart(ids.clone()), ids)
        }
        Fault::Pause(target) => {
            let ids = targets(cluster, target, rng).await;
            for id in &ids {
                cluster.member(*id).signal(Signal::SIGSTOP);
            }
            (Undo::Resume(ids.clone()), ids)
        }
        Fault::Partition(split) => {
            let mut ids = cluster.ids();
            rng.shuffle(&mut ids);
            let leader = cluster.agreed_leader().await.unwrap_or(ids[0]);
            let hit = match split {
                Split::Halves => {
                    let minority: Vec<u64> = ids[..ids.len() / 2].to_vec();
                    let majority: Vec<u64> = ids[ids.len() / 2..].to_vec();
                    cluster.partition(&[&minority, &majority]);
                    minority
                }
                Split::IsolateLeader => {
                    cluster.isolate(leader);
                    vec![leader]
                }
                Split::Bridge => {
                    let bridge = ids[0];
                    let half: Vec<u64> = ids[1..].iter().copied().step_by(2).collect();
                    let side = |id: u64| half.contains(&id);
                    cluster.cut_where(|a, b| a != bridge && b != bridge && side(a) != side(b));
                    vec![bridge]
                }
                Split::LeaderCannotSend => {
                    cluster.cut_where(|from, _| from == leader);
                    vec![leader]
                }
            };
            (Undo::Heal, hit)
        }
    }
}

fn undo(cluster: &mut Cluster, undo: Undo) {
    match undo {
        Undo::Restart(ids) => ids.into_iter().for_each(|id| cluster.restart(id)),
        Undo::Resume(ids) => ids
            .into_iter()
            .for_each(|id| cluster.member(id).signal(Signal::SIGCONT)),
        Undo::Heal => cluster.heal(),
    }
}

async fn run_nemesis(
    cluster: &mut Cluster,
    plan: &[nemesis::Planned],
    mut rng: Rng,
    recorder: &Recorder,
    begin: Instant,
) -> Vec<FaultRecord> {
    let mut records = Vec::new();
    for p in plan {
        tokio::time::sleep_until((begin + Duration::from_millis(p.at_ms)).into()).await;
        let start_ns = recorder.now();
        let (to_undo, members) = apply(cluster, p.fault, &mut rng).await;
        info!(fault = %p.fault, ?members, "fault");
        tokio::time::sleep(Duration::from_millis(p.duration_ms)).await;
        undo(cluster, to_undo);
        records.push(FaultRecord {
            start_ns,
            end_ns: recorder.now(),
            fault: p.fault.to_string(),
            members,
        });
    }
    records
}

async fn wait_leader(cluster: &Cluster, timeout: Duration) -> Option<u64> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(l) = cluster.agreed_leader().await {
            return Some(l);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    None
}

/// Runs the workload with faults; writes `config.json`, `history.jsonl`,
/// `faults.json` and the members' logs into `out`. Returns whether the cluster
/// recovered after healing.
pub async fn run(config: &RunConfig, out: &Path) -> anyhow::Result<bool> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    std::fs::write(out.join("config.json"), serde_json::to_vec_pretty(config)?)?;
    let seed = Rng::new(config.seed);
    let plan = nemesis::schedule(&mut seed.fork(1), &config.nemesis, config.time_ms);
    let mut cluster = Cluster::builder(config.nodes)
        .binary(&config.server_bin)
        .args(config.server_args.iter().cloned())
        .spawn()
        .await;
    wait_leader(&cluster, Duration::from_secs(30))
        .await
        .context("the cluster elected no leader at start")?;
    let endpoints = cluster.endpoints();
    let setup = client_for(&endpoints, 0, Duration::from_secs(30)).await?;
    config
        .workload
        .setup(&setup)
        .await
        .context("workload setup")?;

    let begin = Instant::now();
    let recorder = Recorder {
        start: begin,
        events: Arc::default(),
    };
    let deadline = begin + Duration::from_millis(config.time_ms);
    let mut clients = Vec::new();
    for i in 0..config.concurrency {
        let client = client_for(
            &endpoints,
            usize::try_from(i).unwrap_or(0),
            Duration::from_secs(3),
        )
        .await?;
        let task = client_loop(
            config.workload,
            client,
            i,
            config.concurrency,
            seed.fork(100 + i),
            recorder.clone(),
            deadline,
        );
        clients.push(tokio::spawn(task));
    }
    let faults = run_nemesis(&mut cluster, &plan, seed.fork(2), &recorder, begin).await;
    for c in clients {
        c.await?;
    }
    cluster.heal();
    let recovered = wait_leader(&cluster, Duration::from_secs(30))
        .await
        .is_some();
    if recovered {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let reader = client_for(&endpoints, 0, Duration::from_secs(30)).await?;
        for (i, op) in config.workload.final_reads().into_iter().enumerate() {
            let process = 1_000_000_000 + i as u64;
            let start_ns = recorder.invoke(process, &op);
            let done = config.workload.invoke(&reader, &op).await;
            recorder.complete(process, &op, start_ns, &done);
        }
    } else {
        warn!("no leader within 30 s of healing");
    }
    let events = std::mem::take(
        &mut *recorder
            .events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
    );
    crate::history::write(&out.join("history.jsonl"), &events)?;
    std::fs::write(out.join("faults.json"), serde_json::to_vec_pretty(&faults)?)?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs)?;
    for id in cluster.ids() {
        let src = cluster.member(id).log_path().to_path_buf();
        let _ = std::fs::copy(&src, logs.join(format!("member-{id}.log")));
    }
    Ok(recovered)
}
