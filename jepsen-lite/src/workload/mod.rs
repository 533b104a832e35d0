//! Workloads: what the clients do, and how their history is checked.
//!
//! - [`register`]: read / write / compare-and-set on a handful of znodes,
//!   checked for linearizability.
//! - [`set`]: unique plain and sequential creates, checked by a final read.
//! - [`lease`]: sessions with ephemeral nodes, kept alive or abandoned;
//!   checked against TTL bounds.
//! - [`watch`]: recursive watches across failovers, checked against the writes
//!   and against each other.
//! - [`lock`]: a fenced mutex guarding a log, checked for interleaving.
//! - [`queue`]: competing consumers, checked for items taken twice or lost.

pub mod lease;
mod lease_check;
pub mod lock;
pub mod queue;
pub mod register;
pub mod set;
pub mod watch;

use std::collections::BTreeMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_client::{Client, Error};
use serde::{Deserialize, Serialize};

use crate::fault::FaultRecord;
use crate::history::{EventType, Operation, Recorder};
use crate::rng::Rng;

/// A workload, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Linearizable registers.
    Register,
    /// A grow-only set.
    Set,
    /// Sessions and ephemeral nodes.
    Lease,
    /// Recursive watches.
    Watch,
    /// A fenced mutex.
    Lock,
    /// A distributed queue.
    Queue,
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(Self::Register),
            "set" => Ok(Self::Set),
            "lease" => Ok(Self::Lease),
            "watch" => Ok(Self::Watch),
            "lock" => Ok(Self::Lock),
            "queue" => Ok(Self::Queue),
            other => Err(format!(
                "unknown workload {other:?} (register, set, lease, watch, lock, queue)"
            )),
        }
    }
}

/// An operation a client is about to issue.
#[derive(Debug, Clone, PartialEq)]
pub struct Invocation {
    /// Operation name.
    pub f: &'static str,
    /// The znode path.
    pub key: String,
    /// Its input, as recorded.
    pub value: serde_json::Value,
}

/// How an operation ended.
#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    /// ok, fail or info.
    pub kind: EventType,
    /// Its output, as recorded.
    pub value: serde_json::Value,
    /// Member that answered, when known.
    pub member: Option<u64>,
    /// The error, for fail and info.
    pub error: Option<String>,
}

impl Completion {
    /// A successful completion answered by `member`.
    pub fn ok(value: serde_json::Value, member: u64) -> Self {
        Self {
            kind: EventType::Ok,
            value,
            member: Some(member),
            error: None,
        }
    }

    /// A failed completion: `fail` when the error is definite, `info` when the
    /// operation may still have taken effect (every retryable error, since the
    /// client may have given up while an attempt was in flight).
    pub fn failed(err: &Error) -> Self {
        Self {
            kind: if err.is_retryable() {
                EventType::Info
            } else {
                EventType::Fail
            },
            value: serde_json::Value::Null,
            member: None,
            error: Some(format!("{}: {err}", err.name())),
        }
    }
}

/// What a checker concluded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CheckResult {
    /// `true` when no anomaly was found, `false` when one was, `null` when the
    /// checker could not decide.
    pub valid: Option<bool>,
    /// Human-readable anomalies.
    pub anomalies: Vec<String>,
    /// Histories' indexes of operations involved in anomalies (for the report).
    #[serde(skip)]
    pub culprits: Vec<usize>,
    /// Checker-specific details.
    pub details: serde_json::Value,
}

/// What setup created, shared by every client of a run.
#[derive(Debug, Default)]
pub struct Setup {
    /// A zxid applied after setup: watches start after it.
    pub start_zxid: u64,
    /// Nodes clients created that others check (the lease workload's
    /// ephemeral nodes, with their lease).
    pub nodes: Mutex<Vec<(String, u64)>>,
}

/// Everything one client task needs.
#[derive(Debug)]
pub struct ClientCtx {
    /// Its own coord client (failing over, starting at its own member).
    pub client: Client,
    /// Its index among the clients: its first process id.
    pub index: u64,
    /// Number of clients (process ids advance by it after an `info`).
    pub concurrency: u64,
    /// Its random source.
    pub rng: Rng,
    /// Where it records.
    pub recorder: Recorder,
    /// No new operations after this instant.
    pub deadline: Instant,
    /// Background work (keep-alives, watches) ends when this turns true,
    /// after the final reads.
    pub stop: tokio::sync::watch::Receiver<bool>,
    /// What setup created.
    pub setup: Arc<Setup>,
}

impl Workload {
    /// Creates the znodes the workload uses.
    pub async fn setup(self, client: &Client) -> Result<Setup, Error> {
        match self {
            Self::Register => register::setup(client).await?,
            Self::Set => set::setup(client).await?,
            Self::Lease => lease::setup(client).await?,
            Self::Watch => watch::setup(client).await?,
            Self::Lock => lock::setup(client).await?,
            Self::Queue => queue::setup(client).await?,
        }
        let start_zxid = client.sync("/").await?.zxid;
        Ok(Setup {
            start_zxid,
            nodes: Mutex::default(),
        })
    }

    /// One client's whole run.
    pub async fn run_client(self, ctx: ClientCtx) {
        match self {
            Self::Register | Self::Set | Self::Queue => ops_loop(self, ctx).await,
            Self::Lock => lock::client(ctx).await,
            Self::Lease => lease::client(ctx).await,
            Self::Watch if ctx.index < watch::WATCHERS => watch::watcher(ctx).await,
            Self::Watch => ops_loop(self, ctx).await,
        }
    }

    /// The next operation of a client; `seen` holds the last version the
    /// client observed per key (compare-and-set expects it).
    pub fn next(
        self,
        rng: &mut Rng,
        process: u64,
        counter: u64,
        seen: &BTreeMap<String, i64>,
    ) -> Invocation {
        match self {
            Self::Register => register::next(rng, process, counter, seen),
            Self::Set => set::next(rng, process, counter),
            Self::Lease | Self::Lock => lease::next(),
            Self::Watch => watch::next(rng, counter),
            Self::Queue => queue::next(process, counter),
        }
    }

    /// Runs one operation.
    pub async fn invoke(self, client: &Client, op: &Invocation) -> Completion {
        match self {
            Self::Register => register::invoke(client, op).await,
            Self::Set => set::invoke(client, op).await,
            Self::Lease => lease::invoke(client, op).await,
            Self::Watch => watch::invoke(client, op).await,
            Self::Lock => lock::invoke(client, op).await,
            Self::Queue => queue::invoke(client, op).await,
        }
    }

    /// How long to let the healed cluster settle before the final reads.
    pub fn settle(self) -> Duration {
        match self {
            Self::Register | Self::Set => Duration::from_secs(1),
            Self::Lease => lease::SETTLE,
            Self::Watch => watch::SETTLE,
            Self::Lock => lock::SETTLE,
            Self::Queue => queue::SETTLE,
        }
    }

    /// The reads done after healing, as operations to record.
    pub fn final_reads(self) -> Vec<Invocation> {
        match self {
            Self::Register => register::final_reads(),
            Self::Set => set::final_reads(),
            Self::Lease => lease::final_reads(),
            Self::Watch => Vec::new(),
            Self::Lock => lock::final_reads(),
            Self::Queue => queue::final_reads(),
        }
    }

    /// Checks a history.
    pub fn check(self, ops: &[Operation], faults: &[FaultRecord]) -> CheckResult {
        match self {
            Self::Register => register::check(ops),
            Self::Set => set::check(ops),
            Self::Lease => lease_check::check(ops, faults),
            Self::Watch => watch::check(ops),
            Self::Lock => lock::check(ops),
            Self::Queue => queue::check(ops),
        }
    }
}

/// Resolves once `stop` turns true (or its sender is gone).
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

/// The operations loop of the register, set and watch-writer clients: one
/// operation at a time until the deadline; after an `info` the process id
/// changes, since the unknown operation may still be in flight.
async fn ops_loop(workload: Workload, mut ctx: ClientCtx) {
    let mut process = ctx.index;
    let mut seen = BTreeMap::new();
    let mut counter = 0;
    while Instant::now() < ctx.deadline {
        let op = workload.next(&mut ctx.rng, process, counter, &seen);
        counter += 1;
        let start_ns = ctx.recorder.invoke(process, &op);
        let done = workload.invoke(&ctx.client, &op).await;
        ctx.recorder.complete(process, &op, start_ns, &done);
        if let Some(v) = done
            .value
            .get("version")
            .and_then(serde_json::Value::as_i64)
        {
            seen.insert(op.key.clone(), v);
        }
        if done.kind == EventType::Info {
            process += ctx.concurrency;
        }
        tokio::time::sleep(Duration::from_millis(ctx.rng.range(0, 10))).await;
    }
}

/// Creates `path`, tolerating a node left by an earlier setup attempt.
async fn ensure(client: &Client, path: &str, data: &str) -> Result<(), Error> {
    match client
        .create(path, data.to_owned(), coord_client::CreateMode::Persistent)
        .await
    {
        Ok(_) | Err(Error::NodeExists(_)) => Ok(()),
        Err(err) => Err(err),
    }
}
