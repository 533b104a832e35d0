//! The lock workload: clients contend for one [`Mutex`] (sessions with a 3 s
//! TTL); a holder appends one to three entries `{token, holder}` to a guarded
//! log — sequential nodes under `/jepsen/lock-log`, each created through a
//! `multi` fenced by the lock node — then releases. Faults pause and partition
//! holders past their TTL, so some keep believing they hold the lock after
//! losing it: fencing must refuse their appends. Checked on the final log:
//! tokens never decrease (each holding's entries are contiguous, so no two
//! holders' critical sections interleave in the accepted writes), every token
//! belongs to one holder, every acknowledged append is present once, nothing
//! appears that was not attempted.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use coord_client::recipes::mutex::Mutex;
use coord_client::{Client, CreateMode, Error, Op, Session};
use serde_json::json;

use super::{CheckResult, ClientCtx, Completion, Invocation, ensure};
use crate::history::{EventType, Operation};

const LOCK: &str = "/jepsen/lock";
const LOG: &str = "/jepsen/lock-log";
/// Session TTL of every contender.
const TTL: Duration = Duration::from_secs(3);
/// How long the healed cluster settles before the final read.
pub const SETTLE: Duration = Duration::from_secs(2);

/// Creates the lock and log directories.
pub async fn setup(client: &Client) -> Result<(), Error> {
    ensure(client, "/jepsen", "").await?;
    ensure(client, LOCK, "").await?;
    ensure(client, LOG, "").await
}

/// The final read: every log entry with its data.
pub fn final_reads() -> Vec<Invocation> {
    vec![Invocation {
        f: "final-read",
        key: LOG.to_owned(),
        value: serde_json::Value::Null,
    }]
}

/// Reads the whole log, in sequence order.
pub async fn invoke(client: &Client, _op: &Invocation) -> Completion {
    let listed = match client.children_with_header(LOG).await {
        Ok(r) => r,
        Err(err) => return Completion::failed(&err),
    };
    let mut names = listed.value.0;
    names.sort();
    let mut entries = Vec::new();
    for name in names {
        match client.get(&format!("{LOG}/{name}")).await {
            Ok((data, _)) => {
                entries.push(serde_json::from_slice::<serde_json::Value>(&data).unwrap_or_default())
            }
            Err(err) => return Completion::failed(&err),
        }
    }
    Completion::ok(serde_json::Value::Array(entries), listed.header.member)
}

/// One holding: appends one to three fenced entries. One holding in ten
/// plays a holder paused past its TTL: after its first append it ends its
/// own session (as an expiry would), lets a successor in, and goes on
/// appending as if it still held the lock — fencing must refuse those.
async fn hold(
    ctx: &mut ClientCtx,
    guard: &coord_client::recipes::LockGuard,
    session: &Session,
    process: u64,
) {
    let token = guard.token();
    let paused = ctx.rng.chance(100);
    for n in 0..ctx.rng.range(if paused { 2 } else { 1 }, 4) {
        if paused && n == 1 {
            let _ = session.clone().close().await;
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
        let entry = json!({"token": token, "holder": process, "n": n});
        let op = Invocation {
            f: "append",
            key: LOG.to_owned(),
            value: entry.clone(),
        };
        let start_ns = ctx.recorder.invoke(process, &op);
        let create = Op::create(
            format!("{LOG}/e-"),
            entry.to_string(),
            CreateMode::PersistentSequential,
        );
        let done = match ctx.client.multi_with_header(guard.fenced([create])).await {
            Ok(r) => Completion::ok(json!({"token": token}), r.header.member),
            Err(err) => Completion::failed(&err),
        };
        ctx.recorder.complete(process, &op, start_ns, &done);
        tokio::time::sleep(Duration::from_millis(ctx.rng.range(0, 50))).await;
    }
}

/// One contender: lock, append, unlock, until the deadline; a new session
/// whenever the old one expires.
pub async fn client(mut ctx: ClientCtx) {
    let mut process = ctx.index;
    while Instant::now() < ctx.deadline {
        let Ok(session) = ctx.client.session(TTL).await else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        let mutex = Mutex::new(ctx.client.clone(), &session, LOCK);
        while Instant::now() < ctx.deadline && !session.is_expired() {
            let op = Invocation {
                f: "acquire",
                key: LOCK.to_owned(),
                value: serde_json::Value::Null,
            };
            let start_ns = ctx.recorder.invoke(process, &op);
            match mutex.lock_timeout(Duration::from_secs(5)).await {
                Ok(Some(guard)) => {
                    ctx.recorder.complete(
                        process,
                        &op,
                        start_ns,
                        &Completion::ok(json!({"token": guard.token()}), 0),
                    );
                    hold(&mut ctx, &guard, &session, process).await;
                    let _ = guard.unlock().await;
                }
                Ok(None) => ctx.recorder.complete(
                    process,
                    &op,
                    start_ns,
                    &Completion::ok(json!({"token": null}), 0),
                ),
                Err(err) => {
                    let done = Completion::failed(&err);
                    ctx.recorder.complete(process, &op, start_ns, &done);
                    if done.kind == EventType::Info {
                        process += ctx.concurrency;
                    }
                }
            }
        }
        let _ = session.close().await;
    }
}

/// Checks the final log.
pub fn check(ops: &[Operation]) -> CheckResult {
    let mut anomalies = Vec::new();
    let Some(log) = ops
        .iter()
        .find(|o| o.done.f == "final-read" && o.done.kind == EventType::Ok)
        .and_then(|o| o.done.value.as_array().cloned())
    else {
        return CheckResult {
            valid: None,
            anomalies: vec!["the final read did not succeed".into()],
            culprits: Vec::new(),
            details: json!({}),
        };
    };
    let key = |e: &serde_json::Value| {
        (
            e["token"].as_u64().unwrap_or(0),
            e["holder"].as_u64().unwrap_or(0),
            e["n"].as_u64().unwrap_or(0),
        )
    };
    let mut last_token = 0;
    let mut finished_tokens = BTreeSet::new();
    let mut holder_of: BTreeMap<u64, u64> = BTreeMap::new();
    let mut present: BTreeMap<(u64, u64, u64), usize> = BTreeMap::new();
    for e in &log {
        let (token, holder, n) = key(e);
        if token < last_token || finished_tokens.contains(&token) {
            anomalies.push(format!("holder {holder}'s entry with token {token} comes after token {last_token}: critical sections interleave"));
        }
        if token != last_token {
            finished_tokens.insert(last_token);
        }
        last_token = token;
        if holder_of.insert(token, holder).is_some_and(|h| h != holder) {
            anomalies.push(format!("token {token} used by two holders"));
        }
        *present.entry((token, holder, n)).or_default() += 1;
    }
    let mut attempted = BTreeSet::new();
    let mut culprits = Vec::new();
    for (i, op) in ops.iter().enumerate().filter(|(_, o)| o.done.f == "append") {
        let k = key(&op.input);
        attempted.insert(k);
        let count = present.get(&k).copied().unwrap_or(0);
        match op.done.kind {
            EventType::Ok if count != 1 => {
                anomalies.push(format!(
                    "acknowledged append {k:?} is in the log {count} times"
                ));
                culprits.push(i);
            }
            EventType::Fail if count > 0 => {
                anomalies.push(format!("refused append {k:?} is in the log"));
                culprits.push(i);
            }
            _ => {}
        }
    }
    for k in present.keys().filter(|k| !attempted.contains(*k)) {
        anomalies.push(format!("log entry {k:?} was never attempted"));
    }
    let fenced_off = ops
        .iter()
        .filter(|o| {
            o.done.f == "append"
                && o.done
                    .error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("NoNode"))
        })
        .count();
    CheckResult {
        valid: Some(anomalies.is_empty()),
        anomalies,
        culprits,
        details: json!({"log_entries": log.len(), "holdings": holder_of.len(), "fenced_off_appends": fenced_off}),
    }
}
