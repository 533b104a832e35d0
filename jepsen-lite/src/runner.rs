//! One run: start a cluster, run the clients and the nemesis for the configured
//! time, heal everything, let the cluster settle, do the final reads, record the
//! history and check it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use coord_client::Client;
use coord_testkit::Cluster;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use tracing::warn;

use crate::fault;
use crate::history::Recorder;
use crate::nemesis::{self, Kind};
use crate::rng::Rng;
use crate::workload::{ClientCtx, Workload};

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

/// A client of the cluster that starts at member `first` and fails over.
pub async fn client_for(
    endpoints: &[String],
    first: usize,
    retry: Duration,
) -> anyhow::Result<Client> {
    let mut rotated = endpoints.to_vec();
    rotated.rotate_left(first % endpoints.len().max(1));
    Ok(Client::builder(rotated)
        .connect_timeout(Duration::from_millis(500))
        .request_timeout(Duration::from_secs(1))
        .retry_timeout(retry)
        .build()
        .await?)
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
        .clock_skew(config.nemesis.contains(&Kind::Clock))
        .binary(&config.server_bin)
        .args(config.server_args.iter().cloned())
        .spawn()
        .await;
    wait_leader(&cluster, Duration::from_secs(30))
        .await
        .context("the cluster elected no leader at start")?;
    let endpoints = cluster.endpoints();
    let setup_client = client_for(&endpoints, 0, Duration::from_secs(30)).await?;
    let setup = Arc::new(
        config
            .workload
            .setup(&setup_client)
            .await
            .context("workload setup")?,
    );

    let begin = Instant::now();
    let recorder = Recorder::new(begin);
    let deadline = begin + Duration::from_millis(config.time_ms);
    let (stop, stopped) = watch::channel(false);
    let mut clients = Vec::new();
    for i in 0..config.concurrency {
        let ctx = ClientCtx {
            client: client_for(
                &endpoints,
                usize::try_from(i).unwrap_or(0),
                Duration::from_secs(3),
            )
            .await?,
            index: i,
            concurrency: config.concurrency,
            rng: seed.fork(100 + i),
            recorder: recorder.clone(),
            deadline,
            stop: stopped.clone(),
            setup: Arc::clone(&setup),
        };
        clients.push(tokio::spawn(config.workload.run_client(ctx)));
    }
    let faults = fault::run(&mut cluster, &plan, seed.fork(2), &recorder, begin).await;
    tokio::time::sleep_until(deadline.into()).await;
    cluster.heal();
    let recovered = wait_leader(&cluster, Duration::from_secs(30))
        .await
        .is_some();
    if recovered {
        tokio::time::sleep(config.workload.settle()).await;
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
    let _ = stop.send(true);
    for c in clients {
        if tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .is_err()
        {
            warn!("a client did not stop within 30 s");
        }
    }
    crate::history::write(&out.join("history.jsonl"), &recorder.take())?;
    std::fs::write(out.join("faults.json"), serde_json::to_vec_pretty(&faults)?)?;
    let logs = out.join("logs");
    std::fs::create_dir_all(&logs)?;
    for id in cluster.ids() {
        let src = cluster.member(id).log_path().to_path_buf();
        let _ = std::fs::copy(&src, logs.join(format!("member-{id}.log")));
    }
    Ok(recovered)
}
