//! The lease workload: each client holds a lease (TTL 3 s) with one ephemeral
//! node, keeps it alive every second through any member that can reach the
//! leader, checks other clients' nodes, and now and then *abandons* its lease —
//! stops keeping it alive without revoking it, as a crashed client would — and
//! starts a new one. The checker holds the server to two promises:
//!
//! * a lease is never gone before every acknowledged keep-alive's send time
//!   plus the TTL (nodes of live clients never vanish);
//! * an abandoned lease's node is gone once the TTL plus an election timeout
//!   has passed since its last keep-alive, counted from the end of any fault
//!   that kept the cluster from acting (nodes of dead clients vanish).

use std::time::{Duration, Instant};

use coord_client::{Client, Error, LeaseKeepAlive};
use serde_json::json;

use super::{ClientCtx, Completion, Invocation, ensure};
use crate::history::EventType;

/// Parent of every lease node.
pub(super) const PARENT: &str = "/jepsen/lease";
/// TTL of every lease.
pub const TTL: Duration = Duration::from_secs(3);
/// Keep-alive period.
const KEEP_ALIVE_EVERY: Duration = Duration::from_secs(1);
/// Leader election (up to 2 s at the default tick), the leader's 100 ms check
/// period and a read: what may pass after a deadline before the node is gone.
pub(super) const GRACE: Duration = Duration::from_secs(3);
/// How long the healed cluster settles before the final read.
pub const SETTLE: Duration = Duration::from_secs(7);
/// Process ids of keep-alive tasks start here (they run beside their client).
const KEEPER_PROCESS: u64 = 500_000_000;

/// Creates `/jepsen/lease`.
pub async fn setup(client: &Client) -> Result<(), Error> {
    ensure(client, "/jepsen", "").await?;
    ensure(client, PARENT, "").await
}

/// The lease workload's clients run their own loop ([`client`]); this only
/// names the check they issue.
pub fn next() -> Invocation {
    Invocation {
        f: "check",
        key: PARENT.to_owned(),
        value: serde_json::Value::Null,
    }
}

/// The final read: every node still under `/jepsen/lease`.
pub fn final_reads() -> Vec<Invocation> {
    vec![Invocation {
        f: "final-read",
        key: PARENT.to_owned(),
        value: serde_json::Value::Null,
    }]
}

/// Runs a check (does a node exist?) or the final read.
pub async fn invoke(client: &Client, op: &Invocation) -> Completion {
    if op.f == "final-read" {
        return match client.children_with_header(PARENT).await {
            Ok(r) => Completion::ok(json!(r.value.0), r.header.member),
            Err(err) => Completion::failed(&err),
        };
    }
    match client.exists_with_header(&op.key).await {
        Ok(r) => Completion::ok(json!({"present": r.value.is_some()}), r.header.member),
        Err(err) => Completion::failed(&err),
    }
}

/// Keeps `lease` alive every second, rotating over `members` (one pinned
/// client each) when one cannot answer, until `abandon` or the run stops.
async fn keep_alive(
    members: Vec<Client>,
    lease: u64,
    path: String,
    process: u64,
    ctx_recorder: crate::history::Recorder,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let op = Invocation {
        f: "keepalive",
        key: path,
        value: json!({"lease": lease}),
    };
    let mut current = 0;
    let mut stream: Option<LeaseKeepAlive> = None;
    loop {
        // Abandoned, or the run is over (the switch was dropped).
        tokio::select! {
            () = super::stopped(&mut stop) => return,
            () = tokio::time::sleep(KEEP_ALIVE_EVERY) => {}
        }
        let start_ns = ctx_recorder.invoke(process, &op);
        let answer = async {
            if stream.is_none() {
                stream = Some(members[current % members.len()].lease_keep_alive().await?);
            }
            match stream.as_mut() {
                Some(s) => s.keep_alive(lease).await,
                None => Err(Error::NoEndpoints),
            }
        };
        let done = match tokio::time::timeout(Duration::from_secs(1), answer).await {
            Ok(Ok(k)) => Completion::ok(json!({"ttl_ms": k.ttl.as_millis()}), 0),
            Ok(Err(err)) => Completion::failed(&err),
            Err(_) => Completion::failed(&Error::Timeout(coord_client::ErrorInfo::from_message(
                "keep-alive timed out",
            ))),
        };
        ctx_recorder.complete(process, &op, start_ns, &done);
        match done.kind {
            EventType::Ok => {}
            EventType::Fail => return,
            _ => {
                stream = None;
                current += 1;
            }
        }
    }
}

/// Opens a lease with an ephemeral node and starts keeping it alive; returns
/// the lease and the switch that abandons it.
async fn open(
    ctx: &mut ClientCtx,
    members: &[Client],
    process: u64,
    n: u64,
) -> Option<(u64, tokio::sync::watch::Sender<bool>)> {
    let grant = Invocation {
        f: "grant",
        key: PARENT.to_owned(),
        value: json!({"ttl_ms": TTL.as_millis()}),
    };
    let start_ns = ctx.recorder.invoke(process, &grant);
    let lease = ctx.client.lease_grant(TTL).await;
    let done = match &lease {
        Ok(l) => Completion::ok(json!({"lease": l.id}), 0),
        Err(err) => Completion::failed(err),
    };
    ctx.recorder.complete(process, &grant, start_ns, &done);
    let id = lease.ok()?.id;
    let path = format!("{PARENT}/c{}-{n}", ctx.index);
    let create = Invocation {
        f: "create",
        key: path.clone(),
        value: json!({"lease": id}),
    };
    let start_ns = ctx.recorder.invoke(process, &create);
    let created = ctx
        .client
        .create(
            &path,
            Vec::new(),
            coord_client::CreateOptions::ephemeral(id),
        )
        .await;
    let done = match &created {
        Ok(c) => Completion::ok(json!({"czxid": c.stat.czxid}), 0),
        Err(err) => Completion::failed(err),
    };
    ctx.recorder.complete(process, &create, start_ns, &done);
    let (abandon, abandoned) = tokio::sync::watch::channel(false);
    let keeper = KEEPER_PROCESS + ctx.index * 1000 + n;
    tokio::spawn(keep_alive(
        members.to_vec(),
        id,
        path.clone(),
        keeper,
        ctx.recorder.clone(),
        abandoned,
    ));
    if created.is_ok() {
        ctx.setup
            .nodes
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push((path, id));
    }
    Some((id, abandon))
}

/// One client: a lease at a time, checks of everyone's nodes, abandoning now and then.
pub async fn client(mut ctx: ClientCtx) {
    let members: Vec<Client> = {
        let mut pinned = Vec::new();
        for endpoint in ctx.client.endpoints() {
            if let Ok(c) = Client::builder([endpoint])
                .request_timeout(Duration::from_secs(1))
                .build()
                .await
            {
                pinned.push(c);
            }
        }
        pinned
    };
    let mut process = ctx.index;
    let mut current: Option<(u64, tokio::sync::watch::Sender<bool>)> = None;
    let mut n = 0;
    while Instant::now() < ctx.deadline {
        if current.is_none() {
            n += 1;
            current = open(&mut ctx, &members, process, n).await;
        } else if ctx.rng.chance(25) {
            if let Some((lease, switch)) = current.take() {
                let _ = switch.send(true);
                let op = Invocation {
                    f: "abandon",
                    key: PARENT.to_owned(),
                    value: json!({"lease": lease}),
                };
                ctx.recorder
                    .instant(process, &op, &Completion::ok(json!({"lease": lease}), 0));
            }
        } else {
            let target = {
                let nodes = ctx
                    .setup
                    .nodes
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                ctx.rng.pick(&nodes).cloned()
            };
            if let Some((path, lease)) = target {
                let op = Invocation {
                    f: "check",
                    key: path,
                    value: json!({"lease": lease}),
                };
                let start_ns = ctx.recorder.invoke(process, &op);
                let done = invoke(&ctx.client, &op).await;
                ctx.recorder.complete(process, &op, start_ns, &done);
                if done.kind == EventType::Info {
                    process += ctx.concurrency;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(ctx.rng.range(50, 150))).await;
    }
    // A live lease stays alive through healing and the final read (its
    // keep-alive task watches the same stop signal).
    super::stopped(&mut ctx.stop).await;
    drop(current);
}
