//! jepsen-lite: the fault-injection harness that checks coord's consistency
//! promises under real faults (issue #5). This crate is an empty placeholder in
//! the workspace until then; the fault-injecting peer proxy it will use already
//! lives in `coord-testkit`.
