//! Helpers shared by the session and watch tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Lines, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

use coord_client::{Client, EventType, WatchEvent, WatchItem, WatchStream};
use coord_testkit::Cluster;

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

/// Starts coordctl in the background with its stdout piped.
pub fn spawn_coordctl(endpoints: &str, args: &[&str]) -> Child {
    Command::new(env!("CARGO_BIN_EXE_coordctl"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("COORD_ENDPOINTS")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// The next line a background coordctl prints, within 10 s.
pub async fn next_line(lines: &mut Option<Lines<BufReader<ChildStdout>>>) -> String {
    let mut taken = lines.take().unwrap();
    let (line, taken) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio::task::spawn_blocking(move || (taken.next(), taken)),
    )
    .await
    .expect("no line within 10 s")
    .unwrap();
    *lines = Some(taken);
    line.expect("stdout closed").unwrap()
}

pub fn lines_of(child: &mut Child) -> Option<Lines<BufReader<ChildStdout>>> {
    Some(BufReader::new(child.stdout.take().unwrap()).lines())
}

/// Waits up to 10 s for a background coordctl to exit; returns its code and stderr.
pub async fn exit_of(mut child: Child) -> (i32, String) {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut stderr = String::new();
            child
                .stderr
                .take()
                .unwrap()
                .read_to_string(&mut stderr)
                .unwrap();
            return (status.code().unwrap_or(-1), stderr);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    child.kill().unwrap();
    panic!("coordctl did not exit");
}
