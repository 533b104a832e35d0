//! Whole-run tests: determinism, and a batch of seeds without violations.

use super::*;

/// Short runs: enough for every fault to happen a few times.
fn config(seed: u64) -> SimConfig {
    SimConfig {
        seed,
        steps: 2000,
        ..SimConfig::default()
    }
}

#[test]
fn the_same_seed_gives_the_same_run() {
    let a = run(&config(7)).expect("runs");
    let b = run(&config(7)).expect("runs");
    assert_eq!(a, b);
    let c = run(&config(8)).expect("runs");
    assert_ne!(a.trace, c.trace, "another seed, another run");
}

#[test]
fn fifty_seeds_keep_every_invariant() {
    let reports = run_many(&config(1000), 50).expect("runs");
    assert_eq!(reports.len(), 50);
    for r in &reports {
        assert!(r.passed(), "{}: {:?}", r.reproduce(), r.violations);
    }
    let ok: u64 = reports.iter().map(|r| r.ops.ok).sum();
    let crashes: u64 = reports.iter().map(|r| r.faults.crashes).sum();
    assert!(ok > 50 * 20, "too few operations completed: {ok}");
    assert!(crashes > 0, "no member ever crashed");
}

#[test]
fn settings_are_validated() {
    let mut c = config(1);
    c.nodes = 0;
    assert_eq!(run(&c), Err(SimError::Nodes(0)));
    c.nodes = 3;
    c.clients = 0;
    assert_eq!(run(&c), Err(SimError::NoClients));
}
