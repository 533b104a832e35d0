//! CI's share of the deterministic simulation: 2000 seeds of 3000 steps on 3
//! members, 300 on 5, and 100 on a lone member (whose linearizable reads skip
//! ReadIndex). A failure prints each failing seed with the command that
//! reproduces it.

use std::process::Command;

fn sim(count: &str, nodes: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_jepsen-lite"))
        .args([
            "sim", "--seed", "0", "--count", count, "--steps", "3000", "--nodes", nodes,
        ])
        .output()
        .expect("run jepsen-lite sim");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains(", 0 failed"), "{stdout}");
}

#[test]
fn two_thousand_seeds_on_three_members() {
    sim("2000", "3");
}

#[test]
fn three_hundred_seeds_on_five_members() {
    sim("300", "5");
}

#[test]
fn a_hundred_seeds_on_one_member() {
    sim("100", "1");
}
