//! The set workload: clients add unique elements, half as plain creates
//! (`/jepsen/set/e-N`), half as sequential creates (`/jepsen/set/s-`) whose data
//! names the element. After healing, a final read lists every node; the set
//! checker compares it with what was acknowledged.

use std::collections::BTreeMap;

use coord_client::{Client, CreateMode, Error};
use serde_json::json;

use super::{CheckResult, Completion, Invocation, ensure};
use crate::checker::set::{AddStatus, Found, check as check_set};
use crate::history::{EventType, Operation};
use crate::rng::Rng;

const PARENT: &str = "/jepsen/set";

/// Creates `/jepsen/set`.
pub async fn setup(client: &Client) -> Result<(), Error> {
    ensure(client, "/jepsen", "").await?;
    ensure(client, PARENT, "").await
}

/// An add of a unique element, plain or sequential.
pub fn next(rng: &mut Rng, process: u64, counter: u64) -> Invocation {
    let element = process * 1_000_000 + counter % 1_000_000;
    let sequential = rng.chance(500);
    Invocation {
        f: "add",
        key: PARENT.to_owned(),
        value: json!({"element": element, "sequential": sequential}),
    }
}

/// The final read of the whole set.
pub fn final_reads() -> Vec<Invocation> {
    vec![Invocation {
        f: "final-read",
        key: PARENT.to_owned(),
        value: serde_json::Value::Null,
    }]
}

/// Runs an add or the final read.
pub async fn invoke(client: &Client, op: &Invocation) -> Completion {
    if op.f == "final-read" {
        return read_all(client).await;
    }
    let element = op.value["element"].as_u64().unwrap_or(0);
    let (path, mode) = if op.value["sequential"].as_bool().unwrap_or(false) {
        (format!("{PARENT}/s-"), CreateMode::PersistentSequential)
    } else {
        (format!("{PARENT}/e-{element}"), CreateMode::Persistent)
    };
    match client
        .create_with_header(&path, element.to_string(), mode)
        .await
    {
        Ok(r) => Completion::ok(
            json!({"path": r.value.path, "czxid": r.value.stat.czxid}),
            r.header.member,
        ),
        Err(err) => Completion::failed(&err),
    }
}

async fn read_all(client: &Client) -> Completion {
    let listed = match client.children_with_header(PARENT).await {
        Ok(r) => r,
        Err(err) => return Completion::failed(&err),
    };
    let mut nodes = Vec::new();
    for name in listed.value.0 {
        match client.get(&format!("{PARENT}/{name}")).await {
            Ok((data, stat)) => {
                let element = std::str::from_utf8(&data)
                    .ok()
                    .and_then(|s| s.parse::<u64>().ok());
                nodes.push(json!({"name": name, "element": element, "czxid": stat.czxid}));
            }
            Err(err) => return Completion::failed(&err),
        }
    }
    Completion::ok(serde_json::Value::Array(nodes), listed.header.member)
}

/// Checks the adds against the final read.
pub fn check(ops: &[Operation]) -> CheckResult {
    let mut adds = BTreeMap::new();
    let mut found = Vec::new();
    let mut read = false;
    for op in ops {
        match (op.done.f.as_str(), op.done.kind) {
            ("add", kind) => {
                let status = match kind {
                    EventType::Ok => AddStatus::Ok,
                    EventType::Fail => AddStatus::Failed,
                    _ => AddStatus::Unknown,
                };
                adds.insert(op.input["element"].as_u64().unwrap_or(0), status);
            }
            ("final-read", EventType::Ok) => {
                read = true;
                for n in op.done.value.as_array().into_iter().flatten() {
                    let name = n["name"].as_str().unwrap_or_default().to_owned();
                    found.push(Found {
                        element: n["element"].as_u64().unwrap_or(u64::MAX),
                        sequential: name.starts_with("s-"),
                        name,
                        czxid: n["czxid"].as_u64().unwrap_or(0),
                    });
                }
            }
            _ => {}
        }
    }
    if !read {
        return CheckResult {
            valid: None,
            anomalies: vec!["the final read did not succeed".into()],
            culprits: Vec::new(),
            details: json!({}),
        };
    }
    let report = check_set(&adds, &found);
    let mut anomalies = Vec::new();
    let named = [
        ("acknowledged but lost", &report.lost),
        ("present but never attempted", &report.unexpected),
        ("present more than once", &report.duplicated),
        (
            "present although the add failed",
            &report.failed_but_present,
        ),
    ];
    for (what, elements) in named {
        if !elements.is_empty() {
            anomalies.push(format!(
                "{} elements {what}: {:?}",
                elements.len(),
                elements
            ));
        }
    }
    if !report.misordered.is_empty() {
        anomalies.push(format!(
            "sequential suffixes out of zxid order: {:?}",
            report.misordered
        ));
    }
    let culprits = ops
        .iter()
        .enumerate()
        .filter(|(_, o)| {
            let e = o.input["element"].as_u64();
            e.is_some_and(|e| {
                report.lost.contains(&e)
                    || report.duplicated.contains(&e)
                    || report.failed_but_present.contains(&e)
            })
        })
        .map(|(i, _)| i)
        .collect();
    CheckResult {
        valid: Some(report.valid()),
        anomalies,
        culprits,
        details: serde_json::to_value(&report).unwrap_or_default(),
    }
}
