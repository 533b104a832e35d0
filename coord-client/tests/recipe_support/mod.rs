//! Helpers of the recipe tests: clusters with short lease TTLs, clients that
//! start at a given member, and coordctl processes killed when dropped.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Output, Stdio};
use std::time::Duration;

use coord_client::Client;
use coord_testkit::Cluster;

#[path = "../common/mod.rs"]
mod common;
#[allow(unused_imports)] // Each test binary uses some of them.
pub use common::{coordctl, eventually, next_line};

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
