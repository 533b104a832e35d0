//! Helpers of the recipe tests: clusters with short lease TTLs, clients that
//! start at a given member, and coordctl processes killed when dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Lines};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::time::Duration;

use coord_client::Client;
use coord_testkit::Cluster;

/// A 3-member cluster that grants leases down to 1 s.
pub async fn cluster() -> Cluster {
    Cluster::builder(3)
        .args(["--min-lease-ttl-ms", "1000"])
        .start()
        .await
}

/// A client whose calls and streams start at the `i`-th member (mod 3), so
/// many clients spread over the cluster.
pub async fn client_at(cluster: &Cluster, i: usize) -> Client {
    let mut endpoints = cluster.endpoints();
    let first = i % endpoints.len();
    endpoints.rotate_left(first);
    Client::builder(endpoints)
        .watch_idle_timeout(Duration::from_millis(500))
        .build()
        .await
        .unwrap()
}

/// Runs coordctl to completion; returns (exit code, stdout, stderr).
pub fn ctl(endpoints: &str, args: &[&str]) -> (i32, String, String) {
    let out: Output = Command::new(env!("CARGO_BIN_EXE_coordctl"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("COORD_ENDPOINTS")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// A background coordctl, killed (by pid) when dropped.
pub struct Proc {
    child: Child,
    lines: Option<Lines<BufReader<ChildStdout>>>,
}

impl Proc {
    /// Starts coordctl with its stdout piped.
    pub fn spawn(endpoints: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(env!("CARGO_BIN_EXE_coordctl"))
            .arg("--endpoints")
            .arg(endpoints)
            .args(args)
            .env_remove("COORD_ENDPOINTS")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let lines = Some(BufReader::new(child.stdout.take().unwrap()).lines());
        Proc { child, lines }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next line it prints, within 10 s.
    pub async fn next_line(&mut self) -> String {
        let mut taken = self.lines.take().unwrap();
        let (line, taken) = tokio::time::timeout(
            Duration::from_secs(10),
            tokio::task::spawn_blocking(move || (taken.next(), taken)),
        )
        .await
        .expect("no line within 10 s")
        .unwrap();
        self.lines = Some(taken);
        line.expect("stdout closed").unwrap()
    }

    /// `kill -9` and reap.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Polls `check` every 20 ms until it holds or `timeout` passes.
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
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
