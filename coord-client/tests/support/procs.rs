//! Client processes for the multi-process recipe tests: `coordctl` and
//! `coord-recipe-worker`, run as [`coord_testkit::Proc`]s (stdout lines on a
//! channel, stderr kept, killed by pid when dropped).
#![allow(dead_code)]

#[path = "../common/mod.rs"]
pub mod common;

pub use common::coordctl;
pub use coord_testkit::Proc;

/// The test helper binary (tests/support/recipe_worker.rs).
pub const WORKER: &str = env!("CARGO_BIN_EXE_coord-recipe-worker");

/// `coord-recipe-worker --endpoints EPS ARGS...`.
pub fn worker(name: &str, endpoints: &str, args: &[&str]) -> Proc {
    common::client_process(name, WORKER, endpoints, args)
}
