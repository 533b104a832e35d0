//! Example processes for the examples' multi-process tests (included by each
//! example's tests with `#[path]`): example binaries run as
//! [`coord_testkit::Proc`]s (JSON stdout lines on a channel, each stamped with
//! when it was read, stderr kept, killed by pid when dropped), or to completion.
#![allow(dead_code, clippy::unwrap_used)]

use std::process::{Command, Stdio};

use serde_json::Value;

pub use coord_testkit::Proc;

/// Starts `program --endpoints ENDPOINTS --json ARGS...` in the background.
pub fn start(name: &str, program: &str, endpoints: &str, args: &[&str]) -> Proc {
    let mut command = Command::new(program);
    command
        .arg("--endpoints")
        .arg(endpoints)
        .arg("--json")
        .args(args)
        .env_remove("COORD_ENDPOINTS")
        .env("RUST_LOG", "warn");
    Proc::spawn(name, command)
}

/// Runs `program --endpoints ENDPOINTS --json ARGS...` to completion and
/// returns its stdout parsed as JSON lines, failing the test if it fails.
pub fn run_json(program: &str, endpoints: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(program)
        .arg("--endpoints")
        .arg(endpoints)
        .arg("--json")
        .args(args)
        .env_remove("COORD_ENDPOINTS")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Endpoints rotated so that the client of process `i` starts at member
/// `i mod n`: processes spread over the cluster.
pub fn endpoints_from(endpoints: &[String], i: usize) -> String {
    let mut rotated = endpoints.to_vec();
    let first = i % rotated.len().max(1);
    rotated.rotate_left(first);
    rotated.join(",")
}
