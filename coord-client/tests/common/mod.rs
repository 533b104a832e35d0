//! Helpers shared by the session, watch, coordctl and recipe tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::Command;
use std::time::Duration;

use coord_client::{Client, EventType, WatchEvent, WatchItem, WatchStream};
use coord_testkit::{Cluster, Proc};

/// A client whose first endpoint is member `first`'s, so its streams start there.
pub async fn client_starting_at(cluster: &Cluster, first: u64) -> Client {
    let mut endpoints = vec![cluster.member(first).client_addr.clone()];
    endpoints.extend(
        cluster
            .ids()
            .into_iter()
            .filter(|id| *id != first)
            .map(|id| cluster.member(id).client_addr.clone()),
    );
    Client::builder(endpoints)
        .watch_idle_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap()
}

/// A member that is not the leader.
pub async fn a_follower(cluster: &Cluster) -> u64 {
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    cluster.ids().into_iter().find(|id| *id != leader).unwrap()
}

/// The next item of `stream`, failing the test after `timeout`.
pub async fn next_item(stream: &mut WatchStream, timeout: Duration) -> WatchItem {
    tokio::time::timeout(timeout, stream.next())
        .await
        .unwrap_or_else(|_| panic!("no watch item within {timeout:?}"))
        .expect("the stream ended")
        .expect("a watch error")
}

/// The next `n` events of `stream` (skipping progress), failing after `timeout`.
pub async fn events(stream: &mut WatchStream, n: usize, timeout: Duration) -> Vec<WatchEvent> {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < n {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_item(stream, left).await {
            WatchItem::Event(e) => out.push(e),
            WatchItem::Progress(_) => {}
            other => panic!("unexpected {other:?} after {out:?}"),
        }
    }
    out
}

/// `(zxid, type, path)` of an event, for comparisons.
pub fn key(e: &WatchEvent) -> (u64, EventType, String) {
    (e.zxid, e.kind, e.path.clone())
}

/// Polls `check` every 50 ms until it returns true or `timeout` passes.
pub async fn eventually<F, Fut>(timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// `PROGRAM --endpoints EPS ARGS...` in the background (killed when dropped),
/// with `COORD_ENDPOINTS` unset.
pub fn client_process(name: &str, program: &str, endpoints: &str, args: &[&str]) -> Proc {
    let mut command = Command::new(program);
    command
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("COORD_ENDPOINTS");
    Proc::spawn(name, command)
}

/// `coordctl --endpoints EPS ARGS...` in the background (killed when dropped).
pub fn coordctl(name: &str, endpoints: &str, args: &[&str]) -> Proc {
    client_process(name, env!("CARGO_BIN_EXE_coordctl"), endpoints, args)
}

/// The next line a background coordctl prints, within 10 s.
pub async fn next_line(proc: &mut Proc) -> String {
    match proc.line(Duration::from_secs(10)).await {
        Some((_, line)) => line,
        None => panic!(
            "{}: no line within 10 s; stderr:\n{}",
            proc.name,
            proc.stderr()
        ),
    }
}

/// Waits up to 10 s for a background coordctl to exit; returns its code and stderr.
pub async fn exit_of(proc: &mut Proc) -> (i32, String) {
    let status = proc.exit(Duration::from_secs(10)).await;
    (status.code().unwrap_or(-1), proc.stderr())
}
