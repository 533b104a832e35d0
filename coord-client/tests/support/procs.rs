//! Client processes for the multi-process recipe tests: `coordctl` and
//! `coord-recipe-worker`, run as [`coord_testkit::Proc`]s (stdout lines on a
//! channel, stderr kept, killed by pid when dropped).
#![allow(dead_code)]

use std::process::Command;

pub use coord_testkit::Proc;

/// The coordctl binary under test.
pub const COORDCTL: &str = env!("CARGO_BIN_EXE_coordctl");
/// The test helper binary (tests/support/recipe_worker.rs).
pub const WORKER: &str = env!("CARGO_BIN_EXE_coord-recipe-worker");

/// `PROGRAM --endpoints EPS ARGS...`, with `COORD_ENDPOINTS` unset.
pub fn spawn(name: &str, program: &str, endpoints: &str, args: &[&str]) -> Proc {
    let mut command = Command::new(program);
    command
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("COORD_ENDPOINTS");
    Proc::spawn(name, command)
}

/// `coordctl --endpoints EPS ARGS...`.
pub fn coordctl(name: &str, endpoints: &str, args: &[&str]) -> Proc {
    spawn(name, COORDCTL, endpoints, args)
}

/// `coord-recipe-worker --endpoints EPS ARGS...`.
pub fn worker(name: &str, endpoints: &str, args: &[&str]) -> Proc {
    spawn(name, WORKER, endpoints, args)
}
