//! The set workload: clients add unique elements as plain creates
//! (`/jepsen/set/e-N`), sequential creates (`/jepsen/set/s-`, data = the
//! element) or pairs (one multi creating `p-N-a` and `p-N-b`). After healing, a
//! final read lists every node; the set checker compares it with what was
//! acknowledged, and a pair must be whole or absent (multi atomicity).

use std::collections::BTreeMap;

use coord_client::{Client, CreateMode, Error, Op, OpResult};
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

/// An add of a unique element: 40% plain creates, 40% sequential creates,
/// 20% pairs (a multi creating `p-N-a` and `p-N-b` atomically).
pub fn next(rng: &mut Rng, process: u64, counter: u64) -> Invocation {
    let element = process * 1_000_000 + counter % 1_000_000;
    let how = match rng.range(0, 5) {
        0 | 1 => "plain",
        2 | 3 => "sequential",
        _ => "pair",
    };
    Invocation {
        f: "add",
        key: PARENT.to_owned(),
        value: json!({"element": element, "how": how}),
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
    let data = element.to_string();
    let created = match op.value["how"].as_str() {
        Some("pair") => {
            let ops = ["a", "b"].map(|half| {
                Op::create(
                    format!("{PARENT}/p-{element}-{half}"),
                    data.clone(),
                    CreateMode::Persistent,
                )
            });
            client.multi_with_header(ops.to_vec()).await.map(|r| {
                let czxid = match r.value.first() {
                    Some(OpResult::Create(c)) => c.stat.czxid,
                    _ => 0,
                };
                (
                    json!({"path": format!("{PARENT}/p-{element}"), "czxid": czxid}),
                    r.header.member,
                )
            })
        }
        Some("sequential") => client
            .create_with_header(
                &format!("{PARENT}/s-"),
                data,
                CreateMode::PersistentSequential,
            )
            .await
            .map(|r| {
                (
                    json!({"path": r.value.path, "czxid": r.value.stat.czxid}),
                    r.header.member,
                )
            }),
        _ => client
            .create_with_header(
                &format!("{PARENT}/e-{element}"),
                data,
                CreateMode::Persistent,
            )
            .await
            .map(|r| {
                (
                    json!({"path": r.value.path, "czxid": r.value.stat.czxid}),
                    r.header.member,
                )
            }),
    };
    match created {
        Ok((value, member)) => Completion::ok(value, member),
        Err(err) => Completion::failed(&err),
    }
}

/// Lists the set and reads every sequential node, 128 reads at a time.
async fn read_all(client: &Client) -> Completion {
    let listed = match client.children_with_header(PARENT).await {
        Ok(r) => r,
        Err(err) => return Completion::failed(&err),
    };
    let mut nodes = Vec::new();
    // Plain and pair nodes name their element; only sequential ones need a read
    // (for their data and czxid).
    let mut sequential = Vec::new();
    for name in listed.value.0 {
        let element = name
            .strip_prefix("e-")
            .or_else(|| {
                name.strip_prefix("p-")
                    .and_then(|r| r.rsplit_once('-').map(|(e, _)| e))
            })
            .and_then(|e| e.parse::<u64>().ok());
        match element {
            Some(element) => nodes.push(json!({"name": name, "element": element, "czxid": 0})),
            None => sequential.push(name),
        }
    }
    for chunk in sequential.chunks(128) {
        let mut reads = tokio::task::JoinSet::new();
        for name in chunk {
            let (client, name) = (client.clone(), name.clone());
            reads.spawn(async move {
                let got = client.get(&format!("{PARENT}/{name}")).await;
                (name, got)
            });
        }
        while let Some(joined) = reads.join_next().await {
            let Ok((name, got)) = joined else {
                return Completion::failed(&Error::Internal(
                    coord_client::ErrorInfo::from_message("a read task panicked"),
                ));
            };
            match got {
                Ok((data, stat)) => {
                    let element = std::str::from_utf8(&data)
                        .ok()
                        .and_then(|s| s.parse::<u64>().ok());
                    nodes.push(json!({"name": name, "element": element, "czxid": stat.czxid}));
                }
                Err(err) => return Completion::failed(&err),
            }
        }
    }
    Completion::ok(serde_json::Value::Array(nodes), listed.header.member)
}

/// Checks the adds against the final read.
pub fn check(ops: &[Operation]) -> CheckResult {
    let mut adds = BTreeMap::new();
    let mut found = Vec::new();
    let mut read = false;
    let mut pairs: BTreeMap<u64, Vec<Found>> = BTreeMap::new();
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
                    let node = Found {
                        element: n["element"].as_u64().unwrap_or(u64::MAX),
                        sequential: name.starts_with("s-"),
                        name,
                        czxid: n["czxid"].as_u64().unwrap_or(0),
                    };
                    if node.name.starts_with("p-") {
                        pairs.entry(node.element).or_default().push(node);
                    } else {
                        found.push(node);
                    }
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
    // Both halves of a pair, or neither: a multi is all or nothing.
    let mut half_applied = Vec::new();
    for (element, mut halves) in pairs {
        if halves.len() == 2 {
            halves.truncate(1);
        } else {
            half_applied.push(element);
        }
        found.extend(halves.into_iter().map(|h| Found {
            name: format!("p-{element}"),
            ..h
        }));
    }
    let report = check_set(&adds, &found);
    let mut anomalies = Vec::new();
    if !half_applied.is_empty() {
        anomalies.push(format!(
            "multi applied in part for elements {half_applied:?}"
        ));
    }
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
        valid: Some(report.valid() && half_applied.is_empty()),
        anomalies,
        culprits,
        details: serde_json::to_value(&report).unwrap_or_default(),
    }
}
