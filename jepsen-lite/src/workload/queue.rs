//! The queue workload: a quarter of the clients put unique items into a
//! [`Queue`], the others take them competitively. After healing, the queue is read
//! out. Checked: no item is taken twice; every taken item was put; no taken
//! item is still queued; and acknowledged items missing from both the takes
//! and the final read number at most the takes whose outcome is unknown (such a
//! take may have removed an item without telling anyone).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use coord_client::recipes::queue::Queue;
use coord_client::{Client, Error};
use serde_json::json;

use super::{CheckResult, Completion, Invocation, ensure};
use crate::history::{EventType, Operation};

const DIR: &str = "/jepsen/queue";
/// How long the healed cluster settles before the final read.
pub const SETTLE: Duration = Duration::from_secs(1);

/// Creates the queue directory.
pub async fn setup(client: &Client) -> Result<(), Error> {
    ensure(client, "/jepsen", "").await?;
    ensure(client, DIR, "").await
}

/// Producers (every fourth process) put, consumers take.
pub fn next(process: u64, counter: u64) -> Invocation {
    if process.is_multiple_of(4) {
        Invocation {
            f: "put",
            key: DIR.to_owned(),
            value: json!(process * 1_000_000 + counter % 1_000_000),
        }
    } else {
        Invocation {
            f: "take",
            key: DIR.to_owned(),
            value: serde_json::Value::Null,
        }
    }
}

/// The final read of what is left.
pub fn final_reads() -> Vec<Invocation> {
    vec![Invocation {
        f: "final-read",
        key: DIR.to_owned(),
        value: serde_json::Value::Null,
    }]
}

fn item(data: &[u8]) -> Option<u64> {
    std::str::from_utf8(data).ok()?.parse().ok()
}

/// Runs a put, a take (waiting at most a second) or the final read.
pub async fn invoke(client: &Client, op: &Invocation) -> Completion {
    let queue = Queue::existing(client.clone(), DIR);
    match op.f {
        "put" => match queue.put(op.value.to_string()).await {
            Ok(path) => Completion::ok(json!({"path": path}), 0),
            Err(err) => Completion::failed(&err),
        },
        "take" => match queue.take_timeout(Duration::from_secs(1)).await {
            Ok(Some(taken)) => Completion::ok(json!({"item": item(&taken.data)}), 0),
            Ok(None) => Completion::ok(json!({"item": null}), 0),
            Err(err) => Completion::failed(&err),
        },
        _ => read_all(client).await,
    }
}

/// Everything still queued: the directory's children and their data, read
/// (not taken) 32 at a time.
async fn read_all(client: &Client) -> Completion {
    let names = match client.children(DIR).await {
        Ok((names, _)) => names,
        Err(err) => return Completion::failed(&err),
    };
    let mut left = Vec::new();
    for chunk in names.chunks(32) {
        let mut reads = tokio::task::JoinSet::new();
        for name in chunk {
            let (client, path) = (client.clone(), format!("{DIR}/{name}"));
            reads.spawn(async move { client.get(&path).await });
        }
        while let Some(joined) = reads.join_next().await {
            match joined {
                Ok(Ok((data, _))) => left.push(item(&data)),
                // Deleted between the listing and the read: not queued.
                Ok(Err(Error::NoNode(_))) => {}
                Ok(Err(err)) => return Completion::failed(&err),
                Err(_) => {
                    return Completion::failed(&Error::Internal(
                        coord_client::ErrorInfo::from_message("a read task panicked"),
                    ));
                }
            }
        }
    }
    Completion::ok(json!(left), 0)
}

/// Checks takes against puts and the final contents.
pub fn check(ops: &[Operation]) -> CheckResult {
    let mut anomalies = Vec::new();
    let mut culprits = Vec::new();
    let mut put: BTreeMap<u64, EventType> = BTreeMap::new();
    let mut taken: BTreeMap<u64, usize> = BTreeMap::new();
    let mut unknown_takes = 0;
    let mut left: Option<BTreeSet<u64>> = None;
    for (i, op) in ops.iter().enumerate() {
        let d = &op.done;
        match (d.f.as_str(), d.kind) {
            ("put", kind) => {
                put.insert(op.input.as_u64().unwrap_or(0), kind);
            }
            ("take", EventType::Ok) => {
                if let Some(x) = d.value["item"].as_u64()
                    && taken.insert(x, i).is_some()
                {
                    anomalies.push(format!("item {x} taken twice"));
                    culprits.push(i);
                }
            }
            ("take", EventType::Info) => unknown_takes += 1,
            ("final-read", EventType::Ok) => {
                left = Some(
                    d.value
                        .as_array()
                        .into_iter()
                        .flatten()
                        .filter_map(serde_json::Value::as_u64)
                        .collect(),
                );
            }
            _ => {}
        }
    }
    let Some(left) = left else {
        return CheckResult {
            valid: None,
            anomalies: vec!["the final read did not succeed".into()],
            culprits,
            details: json!({}),
        };
    };
    for (x, i) in &taken {
        if !put.contains_key(x) || put.get(x) == Some(&EventType::Fail) {
            anomalies.push(format!("item {x} was taken but never put"));
            culprits.push(*i);
        }
        if left.contains(x) {
            anomalies.push(format!("item {x} was taken and is still queued"));
            culprits.push(*i);
        }
    }
    let missing: Vec<u64> = put
        .iter()
        .filter(|(x, k)| **k == EventType::Ok && !taken.contains_key(x) && !left.contains(x))
        .map(|(x, _)| *x)
        .collect();
    if missing.len() > unknown_takes {
        anomalies.push(format!(
            "{} acknowledged items vanished (only {unknown_takes} takes had unknown outcomes): {:?}",
            missing.len(),
            &missing[..missing.len().min(20)]
        ));
    }
    CheckResult {
        valid: Some(anomalies.is_empty()),
        anomalies,
        culprits,
        details: json!({"put": put.len(), "taken": taken.len(), "left": left.len(), "unknown_takes": unknown_takes, "missing": missing.len()}),
    }
}
