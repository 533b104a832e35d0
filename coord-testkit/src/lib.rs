//! Starts real `coord-server` processes for multi-process tests: free loopback
//! ports, a temp dir per cluster, one data dir and log file per member, and every
//! process killed by its pid when the [`Cluster`] is dropped, even when the test
//! fails (the logs are then printed to stderr to explain the failure).
//!
//! # Layout
//! - [`Cluster`] / [`ClusterBuilder`]: a cluster of members and its lifecycle.
//! - [`Member`]: one member's addresses, data dir and process.
//! - [`Proxy`]: a fault-injecting TCP proxy; every directed peer link of a
//!   cluster goes through one, so tests can partition members for real.
//! - [`server_binary`]: where the `coord-server` binary is found.

mod cluster;
mod member;
mod proxy;

pub use cluster::{Cluster, ClusterBuilder, status_of};
pub use member::Member;
pub use proxy::Proxy;

use std::path::PathBuf;

/// The `coord-server` binary under test: `$COORD_SERVER_BIN` if set, else the one
/// built next to the running test executable (`target/<profile>/coord-server`),
/// which `cargo test --workspace` / `cargo nextest run --workspace` builds.
pub fn server_binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("COORD_SERVER_BIN") {
        return PathBuf::from(bin);
    }
    let exe = std::env::current_exe().expect("current test executable");
    let mut dir = exe
        .parent()
        .expect("test executable has a directory")
        .to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let bin = dir.join("coord-server");
    assert!(
        bin.exists(),
        "{} not found: build it with `cargo build -p coord-server` or set COORD_SERVER_BIN",
        bin.display()
    );
    bin
}

/// Reserves `n` distinct free loopback ports by binding port 0 and releasing it.
pub fn free_ports(n: usize) -> Vec<u16> {
    let listeners: Vec<_> = (0..n)
        .map(|_| std::net::TcpListener::bind("127.0.0.1:0").expect("bind a free port"))
        .collect();
    listeners
        .iter()
        .map(|l| l.local_addr().expect("local addr").port())
        .collect()
}
