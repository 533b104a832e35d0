//! Workloads: what the clients do, and how their history is checked.
//!
//! - [`register`]: read / write / compare-and-set on a handful of znodes,
//!   checked for linearizability.
//! - [`set`]: unique plain and sequential creates, checked by a final read.

pub mod register;
pub mod set;

use std::collections::BTreeMap;
use std::str::FromStr;

use coord_client::{Client, Error};
use serde::{Deserialize, Serialize};

use crate::history::{EventType, Operation};
use crate::rng::Rng;

/// A workload, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Workload {
    /// Linearizable registers.
    Register,
    /// A grow-only set.
    Set,
}

impl FromStr for Workload {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "register" => Ok(Self::Register),
            "set" => Ok(Self::Set),
            other => Err(format!("unknown workload {other:?} (register, set)")),
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

impl Workload {
    /// Creates the znodes the workload uses.
    pub async fn setup(self, client: &Client) -> Result<(), Error> {
        match self {
            Self::Register => register::setup(client).await,
            Self::Set => set::setup(client).await,
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
        }
    }

    /// Runs one operation.
    pub async fn invoke(self, client: &Client, op: &Invocation) -> Completion {
        match self {
            Self::Register => register::invoke(client, op).await,
            Self::Set => set::invoke(client, op).await,
        }
    }

    /// The reads done after healing, as operations to record.
    pub fn final_reads(self) -> Vec<Invocation> {
        match self {
            Self::Register => register::final_reads(),
            Self::Set => set::final_reads(),
        }
    }

    /// Checks a history.
    pub fn check(self, ops: &[Operation]) -> CheckResult {
        match self {
            Self::Register => register::check(ops),
            Self::Set => set::check(ops),
        }
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
