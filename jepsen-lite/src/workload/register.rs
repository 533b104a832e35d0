//! The register workload: clients read, write (set with version -1) and
//! compare-and-set (set with the version they last saw) a handful of znodes
//! whose data is a number; every write's value is unique. Each key's history is
//! checked for linearizability against [`RegisterModel`].

use std::collections::BTreeMap;

use coord_client::{Client, Error};
use serde_json::json;

use super::{CheckResult, Completion, Invocation, ensure};
use crate::checker::linear::{Entry, Verdict, check as check_linear};
use crate::checker::register::{CasOutcome, Register, RegisterModel, RegisterOp};
use crate::history::{EventType, Operation};
use crate::rng::Rng;

/// Registers used.
pub const KEYS: usize = 5;
/// States the search may explore per key before giving up.
const SEARCH_LIMIT: usize = 20_000_000;

fn key(i: u64) -> String {
    format!("/jepsen/r{i}")
}

/// Creates `/jepsen` and the registers, each holding 0.
pub async fn setup(client: &Client) -> Result<(), Error> {
    ensure(client, "/jepsen", "").await?;
    for i in 0..KEYS as u64 {
        ensure(client, &key(i), "0").await?;
    }
    Ok(())
}

/// 40% linearizable reads, 10% serializable reads, 25% writes, 25%
/// compare-and-sets (expecting the version the client saw last, so many
/// succeed). Written values are unique: process and counter are packed into them.
pub fn next(rng: &mut Rng, process: u64, counter: u64, seen: &BTreeMap<String, i64>) -> Invocation {
    let key = key(rng.range(0, KEYS as u64));
    let value = i64::try_from(process * 1_000_000 + counter % 1_000_000).unwrap_or(i64::MAX);
    match rng.range(0, 20) {
        0..=7 => Invocation {
            f: "read",
            key,
            value: serde_json::Value::Null,
        },
        8 | 9 => Invocation {
            f: "read-serializable",
            key,
            value: serde_json::Value::Null,
        },
        10..=14 => Invocation {
            f: "write",
            key,
            value: json!(value),
        },
        _ => {
            let expected = seen.get(&key).copied().unwrap_or(0);
            Invocation {
                f: "cas",
                key,
                value: json!({"expected": expected, "value": value}),
            }
        }
    }
}

/// One final linearizable read per register.
pub fn final_reads() -> Vec<Invocation> {
    (0..KEYS as u64)
        .map(|i| Invocation {
            f: "read",
            key: key(i),
            value: serde_json::Value::Null,
        })
        .collect()
}

/// Runs a read (linearizable or serializable), write or cas.
pub async fn invoke(client: &Client, op: &Invocation) -> Completion {
    match op.f {
        "read" => read(client, &op.key).await,
        "read-serializable" => read(&client.serializable(), &op.key).await,
        _ => write(client, op).await,
    }
}

async fn read(client: &Client, key: &str) -> Completion {
    match client.get_with_header(key).await {
        Ok(r) => {
            let value = std::str::from_utf8(&r.value.0)
                .ok()
                .and_then(|s| s.parse::<i64>().ok());
            Completion::ok(
                json!({"value": value, "version": r.value.1.version}),
                r.header.member,
            )
        }
        Err(err) => Completion::failed(&err),
    }
}

async fn write(client: &Client, op: &Invocation) -> Completion {
    let value = op
        .value
        .get("value")
        .unwrap_or(&op.value)
        .as_i64()
        .unwrap_or(0);
    let expected = op
        .value
        .get("expected")
        .and_then(serde_json::Value::as_i64)
        .map_or(-1, |v| i32::try_from(v).unwrap_or(-1));
    match client
        .set_with_header(&op.key, value.to_string(), expected)
        .await
    {
        Ok(r) => Completion::ok(json!({"version": r.value.version}), r.header.member),
        Err(err) => Completion::failed(&err),
    }
}

/// The register op an operation stands for, or `None` when it constrains
/// nothing (a read that failed, a write that definitely did not happen).
fn to_register_op(op: &Operation) -> Option<Entry<RegisterOp>> {
    let done = &op.done;
    let version = done
        .value
        .get("version")
        .and_then(serde_json::Value::as_i64)
        .and_then(|v| i32::try_from(v).ok());
    let known = done.kind == EventType::Ok || done.kind == EventType::Fail;
    let ret = known.then_some(done.end_ns.unwrap_or(done.start_ns));
    let value = op
        .input
        .get("value")
        .unwrap_or(&op.input)
        .as_i64()
        .unwrap_or(0);
    let register_op = match (done.f.as_str(), done.kind) {
        ("read", EventType::Ok) => RegisterOp::Read {
            value: done.value.get("value")?.as_i64()?,
            version: version?,
        },
        ("write", EventType::Ok | EventType::Info) => RegisterOp::Write { value, version },
        ("cas", kind) => {
            let expected = i32::try_from(op.input.get("expected")?.as_i64()?).ok()?;
            let outcome = match kind {
                EventType::Ok => CasOutcome::Applied(version?),
                EventType::Fail
                    if done
                        .error
                        .as_deref()
                        .is_some_and(|e| e.starts_with("BadVersion")) =>
                {
                    CasOutcome::Refused
                }
                EventType::Info => CasOutcome::Unknown,
                _ => return None,
            };
            RegisterOp::Cas {
                expected,
                value,
                outcome,
            }
        }
        _ => return None,
    };
    Some(Entry {
        call: done.start_ns,
        ret,
        op: register_op,
    })
}

/// Serializable reads may be stale but must show committed data: each must
/// return the initial state or a (value, version) some write produced.
/// Returns anomalies and the culprits' history indexes.
fn check_serializable(ops: &[Operation]) -> (Vec<String>, Vec<usize>) {
    let mut written: BTreeMap<(String, i64), Option<i64>> = BTreeMap::new();
    for op in ops {
        let applied_or_maybe = matches!(op.done.kind, EventType::Ok | EventType::Info);
        if (op.done.f == "write" || op.done.f == "cas") && applied_or_maybe {
            let value = op
                .input
                .get("value")
                .unwrap_or(&op.input)
                .as_i64()
                .unwrap_or(0);
            let version = op
                .done
                .value
                .get("version")
                .and_then(serde_json::Value::as_i64);
            written.insert((op.done.key.clone(), value), version);
        }
    }
    let mut anomalies = Vec::new();
    let mut culprits = Vec::new();
    for (i, op) in ops.iter().enumerate() {
        if op.done.f != "read-serializable" || op.done.kind != EventType::Ok {
            continue;
        }
        let value = op
            .done
            .value
            .get("value")
            .and_then(serde_json::Value::as_i64);
        let version = op
            .done
            .value
            .get("version")
            .and_then(serde_json::Value::as_i64);
        let committed = match (value, version) {
            (Some(0), Some(0)) => true,
            (Some(v), Some(ver)) => written
                .get(&(op.done.key.clone(), v))
                .is_some_and(|known| known.is_none_or(|k| k == ver)),
            _ => false,
        };
        if !committed {
            anomalies.push(format!(
                "{}: serializable read by process {} returned {} which no write produced",
                op.done.key, op.done.process, op.done.value
            ));
            culprits.push(i);
        }
    }
    (anomalies, culprits)
}

/// Checks every register's history for linearizability.
pub fn check(ops: &[Operation]) -> CheckResult {
    let model = RegisterModel {
        initial: Register {
            value: 0,
            version: 0,
        },
    };
    let mut anomalies = Vec::new();
    let mut culprits = Vec::new();
    let mut per_key = serde_json::Map::new();
    let mut undecided = false;
    for i in 0..KEYS as u64 {
        let k = key(i);
        let (index, entries): (Vec<usize>, Vec<Entry<RegisterOp>>) = ops
            .iter()
            .enumerate()
            .filter(|(_, o)| o.done.key == k)
            .filter_map(|(n, o)| to_register_op(o).map(|e| (n, e)))
            .unzip();
        let verdict = check_linear(&model, &entries, SEARCH_LIMIT);
        let summary = match &verdict {
            Verdict::Linearizable => json!({"valid": true, "ops": entries.len()}),
            Verdict::Violation(v) => {
                let op = &ops[index[v.op]];
                anomalies.push(format!(
                    "{k}: not linearizable: no order places process {} {} {} -> {} (after {} ops linearized, state {:?})",
                    op.done.process,
                    op.done.f,
                    op.input,
                    op.done.value,
                    v.linearized.len(),
                    v.state
                ));
                culprits.push(index[v.op]);
                json!({"valid": false, "ops": entries.len(), "op": index[v.op], "state": format!("{:?}", v.state)})
            }
            Verdict::Unknown { explored } => {
                undecided = true;
                json!({"valid": null, "ops": entries.len(), "explored": explored})
            }
        };
        per_key.insert(k, summary);
    }
    let (stale, stale_ops) = check_serializable(ops);
    anomalies.extend(stale);
    culprits.extend(stale_ops);
    let valid = if !anomalies.is_empty() {
        Some(false)
    } else if undecided {
        None
    } else {
        Some(true)
    };
    CheckResult {
        valid,
        anomalies,
        culprits,
        details: serde_json::Value::Object(per_key),
    }
}
