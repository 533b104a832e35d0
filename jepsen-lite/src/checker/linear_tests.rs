//! The checker against hand-written histories: linearizable ones pass, known
//! violations (stale read, lost write, non-monotonic reads) are caught, and
//! operations with unknown outcomes count as possibly applied.

use super::linear::{Entry, Verdict, check};
use super::register::{CasOutcome, Register, RegisterModel, RegisterOp};

const MODEL: RegisterModel = RegisterModel {
    initial: Register {
        value: 0,
        version: 0,
    },
};

fn op(call: u64, ret: u64, op: RegisterOp) -> Entry<RegisterOp> {
    Entry {
        call,
        ret: Some(ret),
        op,
    }
}

fn unknown(call: u64, op: RegisterOp) -> Entry<RegisterOp> {
    Entry {
        call,
        ret: None,
        op,
    }
}

fn read(value: i64, version: i32) -> RegisterOp {
    RegisterOp::Read { value, version }
}

fn write(value: i64, version: i32) -> RegisterOp {
    RegisterOp::Write {
        value,
        version: Some(version),
    }
}

fn verdict(history: &[Entry<RegisterOp>]) -> Verdict<Register> {
    check(&MODEL, history, 1_000_000)
}

fn is_ok(history: &[Entry<RegisterOp>]) -> bool {
    verdict(history) == Verdict::Linearizable
}

#[test]
fn empty_and_sequential_histories_pass() {
    assert!(is_ok(&[]));
    assert!(is_ok(&[
        op(0, 1, write(5, 1)),
        op(2, 3, read(5, 1)),
        op(4, 5, write(6, 2)),
        op(6, 7, read(6, 2))
    ]));
}

#[test]
fn concurrent_operations_may_take_effect_in_either_order() {
    // The read overlaps the write: it may see the old or the new value.
    assert!(is_ok(&[op(0, 10, write(5, 1)), op(1, 2, read(0, 0))]));
    assert!(is_ok(&[op(0, 10, write(5, 1)), op(1, 2, read(5, 1))]));
    // Two concurrent writes, reads after both see the one linearized last.
    assert!(is_ok(&[
        op(0, 5, write(1, 1)),
        op(0, 5, write(2, 2)),
        op(6, 7, read(2, 2))
    ]));
    assert!(is_ok(&[
        op(0, 5, write(1, 2)),
        op(0, 5, write(2, 1)),
        op(6, 7, read(1, 2))
    ]));
}

#[test]
fn stale_read_is_caught() {
    let history = [op(0, 1, write(5, 1)), op(2, 3, read(0, 0))];
    let Verdict::Violation(v) = verdict(&history) else {
        panic!("a read after an acknowledged write saw the old value");
    };
    assert_eq!(v.op, 1);
}

#[test]
fn lost_write_is_caught() {
    // Both writes acknowledged, yet the final read shows only the first.
    let history = [
        op(0, 1, write(1, 1)),
        op(2, 3, write(2, 2)),
        op(4, 5, read(1, 1)),
    ];
    assert!(matches!(verdict(&history), Verdict::Violation(_)));
}

#[test]
fn non_monotonic_reads_are_caught() {
    // One write overlaps two sequential reads: new then old is impossible.
    let history = [
        op(0, 10, write(7, 1)),
        op(1, 2, read(7, 1)),
        op(3, 4, read(0, 0)),
    ];
    assert!(matches!(verdict(&history), Verdict::Violation(_)));
}

#[test]
fn unknown_writes_may_or_may_not_have_happened() {
    let w = RegisterOp::Write {
        value: 9,
        version: None,
    };
    assert!(
        is_ok(&[unknown(0, w), op(5, 6, read(0, 0))]),
        "never applied"
    );
    assert!(is_ok(&[unknown(0, w), op(5, 6, read(9, 1))]), "applied");
    assert!(
        is_ok(&[unknown(0, w), op(5, 6, read(0, 0)), op(7, 8, read(9, 1))]),
        "applied late"
    );
    // But it cannot take effect before it was called.
    assert!(!is_ok(&[op(0, 1, read(9, 1)), unknown(2, w)]));
    // Nor be seen and then unseen.
    assert!(!is_ok(&[
        unknown(0, w),
        op(5, 6, read(9, 1)),
        op(7, 8, read(0, 0))
    ]));
}

#[test]
fn compare_and_set_outcomes_must_match_the_version() {
    let cas = |expected, value, outcome| RegisterOp::Cas {
        expected,
        value,
        outcome,
    };
    assert!(is_ok(&[
        op(0, 1, cas(0, 4, CasOutcome::Applied(1))),
        op(2, 3, read(4, 1))
    ]));
    assert!(
        !is_ok(&[op(0, 1, cas(0, 4, CasOutcome::Refused))]),
        "refused while the version matched"
    );
    assert!(is_ok(&[
        op(0, 1, write(1, 1)),
        op(2, 3, cas(0, 4, CasOutcome::Refused)),
        op(4, 5, read(1, 1))
    ]));
    assert!(!is_ok(&[
        op(0, 1, write(1, 1)),
        op(2, 3, cas(0, 4, CasOutcome::Applied(1)))
    ]));
    let maybe = cas(0, 4, CasOutcome::Unknown);
    assert!(is_ok(&[unknown(0, maybe), op(2, 3, read(4, 1))]));
    assert!(is_ok(&[unknown(0, maybe), op(2, 3, read(0, 0))]));
}

#[test]
fn the_search_limit_is_reported() {
    let history: Vec<_> = (0..20).map(|i| op(0, 100, write(i, 0))).collect();
    assert!(matches!(
        check(&MODEL, &history, 10),
        Verdict::Unknown { .. }
    ));
}

#[test]
fn long_concurrent_histories_finish() {
    // 10 clients, 800 operations each, heavily overlapping: memoization keeps it fast.
    let mut history = Vec::new();
    let mut version = 0;
    for round in 0..800u64 {
        let t = round * 10;
        for client in 0..10u64 {
            if client == 0 {
                version += 1;
                history.push(op(t, t + 15, write(version as i64, version)));
            } else {
                history.push(op(
                    t + client,
                    t + 12,
                    read(version as i64 - 1, version - 1),
                ));
            }
        }
    }
    // Reads were issued before the concurrent write could be seen; all consistent.
    assert_eq!(check(&MODEL, &history, 10_000_000), Verdict::Linearizable);
}
