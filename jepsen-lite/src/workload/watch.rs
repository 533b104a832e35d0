//! The watch workload: a few clients hold a recursive watch on `/jepsen/watch`
//! from the zxid setup ended at, across member failures (coord-client resumes
//! on another member from the last zxid it delivered); the others create, set
//! and delete nodes under it. Checked: each watcher's events come in zxid order
//! with no duplicate; every acknowledged create and set inside a watcher's
//! covered range appears in its events at the write's zxid (no gaps); and any
//! two watchers report identical events for every zxid both covered. A
//! `Resynced` (compaction) ends a covered range explicitly.

use std::collections::BTreeMap;
use std::time::Duration;

use coord_client::{Client, CreateMode, Error, WatchItem, WatchOptions};
use serde_json::json;

use super::{CheckResult, ClientCtx, Completion, Invocation, ensure};
use crate::history::{EventType, Operation};
use crate::rng::Rng;

const PARENT: &str = "/jepsen/watch";
/// Clients that watch (the rest write).
pub const WATCHERS: u64 = 3;
/// Nodes written.
const KEYS: u64 = 6;
/// Time for watchers to receive the last events after healing.
pub const SETTLE: Duration = Duration::from_secs(4);

/// Creates `/jepsen/watch`.
pub async fn setup(client: &Client) -> Result<(), Error> {
    ensure(client, "/jepsen", "").await?;
    ensure(client, PARENT, "").await
}

/// A write: create, set or delete of one of a few nodes.
pub fn next(rng: &mut Rng, counter: u64) -> Invocation {
    let key = format!("{PARENT}/k{}", rng.range(0, KEYS));
    let f = match rng.range(0, 10) {
        0..=3 => "set",
        4..=6 => "create",
        _ => "delete",
    };
    Invocation {
        f,
        key,
        value: json!(counter),
    }
}

/// Runs a write; the recorded zxid is the one the change carries (the
/// created or modified node's czxid / mzxid, right even for a retry answered
/// from the de-duplication table).
pub async fn invoke(client: &Client, op: &Invocation) -> Completion {
    let data = op.value.to_string();
    let outcome = match op.f {
        "create" => client
            .create_with_header(&op.key, data, CreateMode::Persistent)
            .await
            .map(|r| (json!({"zxid": r.value.stat.czxid}), r.header.member)),
        "set" => client
            .set_with_header(&op.key, data, -1)
            .await
            .map(|r| (json!({"zxid": r.value.mzxid}), r.header.member)),
        _ => client
            .delete_with_header(&op.key, -1)
            .await
            .map(|r| (json!({"at_most": r.header.zxid}), r.header.member)),
    };
    match outcome {
        Ok((value, member)) => Completion::ok(value, member),
        Err(err) => Completion::failed(&err),
    }
}

fn record(ctx: &ClientCtx, f: &'static str, key: &str, value: serde_json::Value) {
    let op = Invocation {
        f,
        key: key.to_owned(),
        value: value.clone(),
    };
    ctx.recorder
        .instant(ctx.index, &op, &Completion::ok(value, 0));
}

/// One watcher: a recursive watch from setup's zxid until the run stops,
/// recording every event, progress and resync.
pub async fn watcher(ctx: ClientCtx) {
    let mut stop = ctx.stop.clone();
    let mut after = ctx.setup.start_zxid;
    record(&ctx, "watch-start", PARENT, json!({"after": after}));
    loop {
        let options = WatchOptions {
            recursive: true,
            after_zxid: Some(after),
        };
        let mut stream = tokio::select! {
            created = ctx.client.watch(PARENT, options) => match created {
                Ok(s) => s,
                Err(err) => {
                    record(&ctx, "watch-error", PARENT, json!(err.to_string()));
                    tokio::time::sleep(Duration::from_millis(200)).await;
                    continue;
                }
            },
            () = super::stopped(&mut stop) => return,
        };
        loop {
            let item = tokio::select! {
                item = stream.next() => item,
                () = super::stopped(&mut stop) => return,
            };
            match item {
                Some(Ok(WatchItem::Event(e))) => {
                    let kind = format!("{:?}", e.kind);
                    record(
                        &ctx,
                        "event",
                        &e.path,
                        json!({"zxid": e.zxid, "type": kind}),
                    );
                }
                Some(Ok(WatchItem::Progress(z))) => {
                    record(&ctx, "progress", PARENT, json!({"zxid": z}))
                }
                Some(Ok(WatchItem::Resynced { from, to })) => {
                    record(&ctx, "resync", PARENT, json!({"from": from, "to": to}));
                }
                Some(Err(err)) => {
                    record(&ctx, "watch-error", PARENT, json!(err.to_string()));
                    break;
                }
                None => break,
            }
            after = stream.last_zxid();
        }
        after = after.max(stream.last_zxid());
    }
}

/// What one watcher saw: events by zxid and the zxid ranges it covered.
#[derive(Debug, Default)]
struct Seen {
    events: BTreeMap<u64, Vec<(String, String)>>,
    /// Covered ranges `(after, up_to]`.
    covered: Vec<(u64, u64)>,
}

impl Seen {
    fn covers(&self, zxid: u64) -> bool {
        self.covered.iter().any(|(a, b)| *a < zxid && zxid <= *b)
    }
}

fn zxid(v: &serde_json::Value, field: &str) -> u64 {
    v.get(field)
        .and_then(serde_json::Value::as_u64)
        .unwrap_or(0)
}

/// Reads each watcher's history; reports order and duplicate anomalies.
fn watchers(
    ops: &[Operation],
    anomalies: &mut Vec<String>,
    culprits: &mut Vec<usize>,
) -> BTreeMap<u64, Seen> {
    let mut seen: BTreeMap<u64, Seen> = BTreeMap::new();
    let mut range: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let d = &op.done;
        if d.process >= WATCHERS || d.kind != EventType::Ok {
            continue;
        }
        let w = seen.entry(d.process).or_default();
        let r = range.entry(d.process).or_insert((0, 0));
        match d.f.as_str() {
            "watch-start" => *r = (zxid(&d.value, "after"), zxid(&d.value, "after")),
            "event" => {
                let z = zxid(&d.value, "zxid");
                let kind = d.value["type"].as_str().unwrap_or_default().to_owned();
                if z < r.1 {
                    anomalies.push(format!("watcher {} got zxid {z} after {}", d.process, r.1));
                    culprits.push(i);
                }
                let batch = w.events.entry(z).or_default();
                if batch.contains(&(kind.clone(), d.key.clone())) {
                    anomalies.push(format!(
                        "watcher {} got {kind} {} at {z} twice",
                        d.process, d.key
                    ));
                    culprits.push(i);
                }
                batch.push((kind, d.key.clone()));
                r.1 = r.1.max(z);
            }
            "progress" => r.1 = r.1.max(zxid(&d.value, "zxid")),
            "resync" => {
                w.covered.push((r.0, zxid(&d.value, "from")));
                *r = (zxid(&d.value, "to"), zxid(&d.value, "to"));
            }
            _ => {}
        }
    }
    for (p, w) in &mut seen {
        if let Some(r) = range.get(p) {
            w.covered.push(*r);
        }
    }
    seen
}

/// Checks the watchers against the writes and against each other.
pub fn check(ops: &[Operation]) -> CheckResult {
    let mut anomalies = Vec::new();
    let mut culprits = Vec::new();
    let seen = watchers(ops, &mut anomalies, &mut culprits);
    let mut checked = 0;
    for (i, op) in ops.iter().enumerate() {
        let d = &op.done;
        let expected = match (d.f.as_str(), d.kind) {
            ("create", EventType::Ok) => "NodeCreated",
            ("set", EventType::Ok) => "NodeDataChanged",
            _ => continue,
        };
        let z = zxid(&d.value, "zxid");
        for (w, s) in seen.iter().filter(|(_, s)| s.covers(z)) {
            checked += 1;
            let found = s
                .events
                .get(&z)
                .is_some_and(|b| b.iter().any(|(k, p)| k == expected && *p == d.key));
            if !found {
                anomalies.push(format!(
                    "watcher {w} missed {expected} {} at zxid {z}",
                    d.key
                ));
                culprits.push(i);
            }
        }
    }
    let ids: Vec<&u64> = seen.keys().collect();
    for (a, b) in ids
        .iter()
        .flat_map(|a| ids.iter().filter(move |b| a < b).map(move |b| (*a, *b)))
    {
        let (sa, sb) = (&seen[a], &seen[b]);
        let zxids: std::collections::BTreeSet<u64> =
            sa.events.keys().chain(sb.events.keys()).copied().collect();
        for z in zxids.into_iter().filter(|z| sa.covers(*z) && sb.covers(*z)) {
            if sa.events.get(&z) != sb.events.get(&z) {
                anomalies.push(format!(
                    "watchers {a} and {b} disagree at zxid {z}: {:?} vs {:?}",
                    sa.events.get(&z),
                    sb.events.get(&z)
                ));
            }
        }
    }
    let events: usize = seen
        .values()
        .map(|s| s.events.values().map(Vec::len).sum::<usize>())
        .sum();
    let resyncs: usize = seen
        .values()
        .map(|s| s.covered.len().saturating_sub(1))
        .sum();
    CheckResult {
        valid: Some(anomalies.is_empty()),
        anomalies,
        culprits,
        details: json!({"watchers": seen.len(), "events": events, "writes_checked": checked, "resyncs": resyncs}),
    }
}
