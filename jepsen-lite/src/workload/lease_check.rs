//! The lease workload's checker: folds the history into one life per lease and
//! holds each to both promises (never gone before a deadline the client was
//! promised; an abandoned lease gone in time).

use std::collections::BTreeMap;

use serde_json::json;

use super::CheckResult;
use super::lease::{GRACE, PARENT, TTL};
use crate::fault::FaultRecord;
use crate::history::{EventType, Operation};

#[derive(Debug, Default)]
struct LeaseLife {
    /// Keep-alive send times (ns) that were acknowledged, and the grant's start.
    alive_sends: Vec<u64>,
    /// When the client stopped keeping it alive.
    abandoned: Option<u64>,
    /// The node, once created (with the creation's end).
    node: Option<(String, u64)>,
    /// Earliest end of an observation that the lease or node was gone.
    gone_seen: Option<(u64, usize)>,
    /// Latest start of an observation that the node or lease was still there.
    there_seen: Option<(u64, usize)>,
}

fn lease_of(op: &Operation) -> Option<u64> {
    op.input.get("lease").and_then(serde_json::Value::as_u64)
}

/// Folds the history into one [`LeaseLife`] per lease. The final read counts
/// as an observation of every node, there or gone.
fn lives(ops: &[Operation]) -> BTreeMap<u64, LeaseLife> {
    let mut lives: BTreeMap<u64, LeaseLife> = BTreeMap::new();
    for (i, op) in ops.iter().enumerate() {
        let d = &op.done;
        let end = d.end_ns.unwrap_or(u64::MAX);
        let gone = |life: &mut LeaseLife| {
            life.gone_seen = Some(life.gone_seen.map_or((end, i), |g| g.min((end, i))))
        };
        let there =
            |life: &mut LeaseLife, at: u64| life.there_seen = life.there_seen.max(Some((at, i)));
        match (d.f.as_str(), d.kind) {
            ("grant", EventType::Ok) => {
                if let Some(id) = d.value.get("lease").and_then(serde_json::Value::as_u64) {
                    lives.entry(id).or_default().alive_sends.push(d.start_ns);
                }
            }
            ("create", EventType::Ok) => {
                if let Some(id) = lease_of(op) {
                    lives.entry(id).or_default().node = Some((d.key.clone(), end));
                }
            }
            ("keepalive", EventType::Ok) => {
                if let Some(life) = lease_of(op).map(|id| lives.entry(id).or_default()) {
                    life.alive_sends.push(d.start_ns);
                    there(life, d.start_ns);
                }
            }
            ("keepalive", EventType::Fail)
                if d.error
                    .as_deref()
                    .is_some_and(|e| e.starts_with("LeaseNotFound")) =>
            {
                if let Some(life) = lease_of(op).map(|id| lives.entry(id).or_default()) {
                    gone(life);
                }
            }
            ("abandon", _) => {
                if let Some(life) = lease_of(op).map(|id| lives.entry(id).or_default()) {
                    life.abandoned = Some(d.start_ns);
                }
            }
            ("check", EventType::Ok) => {
                let present = d.value.get("present").and_then(serde_json::Value::as_bool);
                if let (Some(life), Some(present)) =
                    (lease_of(op).map(|id| lives.entry(id).or_default()), present)
                {
                    if present {
                        there(life, d.start_ns);
                    } else {
                        gone(life);
                    }
                }
            }
            ("final-read", EventType::Ok) => {
                let names: Vec<String> =
                    serde_json::from_value(d.value.clone()).unwrap_or_default();
                for life in lives.values_mut() {
                    let Some((path, _)) = &life.node else {
                        continue;
                    };
                    let name = path.trim_start_matches(PARENT).trim_start_matches('/');
                    if names.iter().any(|n| n == name) {
                        there(life, d.start_ns);
                    } else {
                        gone(life);
                    }
                }
            }
            _ => {}
        }
    }
    lives
}

/// When an abandoned lease must be gone: its deadline plus the grace, pushed
/// past the end of any fault overlapping the wait (a new leader may then give
/// it a full TTL again).
fn expiry_bound(deadline: u64, faults: &[FaultRecord]) -> u64 {
    let grace = u64::try_from(GRACE.as_nanos()).unwrap_or(u64::MAX);
    let ttl = u64::try_from(TTL.as_nanos()).unwrap_or(u64::MAX);
    let mut bound = deadline.saturating_add(grace);
    loop {
        let extended = faults
            .iter()
            .filter(|f| f.start_ns <= bound && f.end_ns >= deadline)
            .map(|f| f.end_ns.saturating_add(ttl).saturating_add(grace))
            .fold(bound, u64::max);
        if extended == bound {
            return bound;
        }
        bound = extended;
    }
}

/// Checks every lease against both promises.
pub fn check(ops: &[Operation], faults: &[FaultRecord]) -> CheckResult {
    let ttl = u64::try_from(TTL.as_nanos()).unwrap_or(u64::MAX);
    let mut anomalies = Vec::new();
    let mut culprits = Vec::new();
    let final_read = ops
        .iter()
        .any(|o| o.done.f == "final-read" && o.done.kind == EventType::Ok);
    let lives = lives(ops);
    let (mut kept, mut abandoned) = (0, 0);
    for (id, life) in &lives {
        let Some(until) = life.alive_sends.iter().max().map(|s| s + ttl) else {
            continue;
        };
        if let Some((gone_at, i)) = life.gone_seen.filter(|(g, _)| *g < until) {
            anomalies.push(format!(
                "lease {id} was gone {} ms before its deadline",
                (until - gone_at) / 1_000_000
            ));
            culprits.push(i);
        }
        if life.abandoned.is_some() {
            abandoned += 1;
            let bound = expiry_bound(until, faults);
            if let Some((seen, i)) = life.there_seen.filter(|(s, _)| *s > bound) {
                anomalies.push(format!(
                    "abandoned lease {id} still there {} ms after it had to be gone",
                    (seen - bound) / 1_000_000
                ));
                culprits.push(i);
            }
        } else {
            kept += 1;
        }
    }
    if !final_read {
        anomalies.push("the final read did not succeed".into());
    }
    let valid = match (anomalies.is_empty(), final_read) {
        (false, true) => Some(false),
        (true, true) => Some(true),
        (_, false) => None,
    };
    CheckResult {
        valid,
        anomalies,
        culprits,
        details: json!({"leases": lives.len(), "kept_alive": kept, "abandoned": abandoned}),
    }
}
