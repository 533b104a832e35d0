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
//! - [`Proc`]: a client-side process (coordctl, an example app) with its
//!   stdout lines on a channel, killed when dropped.
//! - [`server_binary`]: where the `coord-server` binary is found.

mod cluster;
mod member;
mod process;
mod proxy;

pub use cluster::{Cluster, ClusterBuilder, status_of};
pub use member::Member;
pub use process::Proc;
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

/// Picks `n` distinct free loopback ports for servers to bind.
///
/// Ports handed to a process that binds them later must not be ones the kernel
/// hands out meanwhile: `bind(0)` and outgoing connections take their ports from
/// the ephemeral range, and a port released by a probe there can be reused by
/// another test's proxy or connection before the server binds it. So ports come
/// from below the ephemeral range, starting at a random offset per process and
/// never repeating within a process, and each is checked free by binding it.
pub fn free_ports(n: usize) -> Vec<u16> {
    use std::sync::OnceLock;
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: OnceLock<AtomicU32> = OnceLock::new();
    let (low, high) = port_range();
    let span = u32::from(high - low);
    let next = NEXT.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        AtomicU32::new(u32::try_from(h.finish() % u64::from(span)).unwrap_or(0))
    });
    let mut ports = Vec::with_capacity(n);
    for _ in 0..span {
        if ports.len() == n {
            break;
        }
        let offset = next.fetch_add(1, Ordering::Relaxed) % span;
        let port = low + u16::try_from(offset).unwrap_or(0);
        if std::net::TcpListener::bind(("127.0.0.1", port)).is_ok() {
            ports.push(port);
        }
    }
    assert_eq!(ports.len(), n, "no {n} free ports in {low}..{high}");
    ports
}

/// Ports below the kernel's ephemeral range (`ip_local_port_range`).
fn port_range() -> (u16, u16) {
    let ephemeral_start = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .next()
                .and_then(|p| p.parse::<u16>().ok())
        })
        .unwrap_or(32768);
    let high = ephemeral_start.clamp(12_000, 32_768);
    (high - 10_000, high)
}
