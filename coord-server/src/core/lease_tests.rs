//! Leases, ephemeral nodes, containers and TTL nodes in the state machine.

use bytes::Bytes;
use coord_proto::raftlog::{
    Command, CommandResult, ExpireTtl, LeaseGrant, LeaseRevoke, command, command_result::Outcome,
};
use coord_proto::v1::{CreateMode, CreateOp, DeleteOp, ErrorCode, EventType, Op, SetOp, op};

use super::event::Event;
use super::kind::NodeKind;
use super::state::StateMachine;

fn lease_cmd(lease: command::Lease, time_ms: i64) -> Command {
    Command {
        meta: None,
        time_ms,
        ops: Vec::new(),
        lease: Some(lease),
    }
}

fn ops_cmd(ops: Vec<op::Op>, time_ms: i64) -> Command {
    Command {
        meta: None,
        time_ms,
        ops: ops.into_iter().map(|o| Op { op: Some(o) }).collect(),
        lease: None,
    }
}

fn create(path: &str, mode: CreateMode, lease: u64, ttl_ms: i64) -> op::Op {
    op::Op::Create(CreateOp {
        path: path.into(),
        data: Bytes::new(),
        mode: mode as i32,
        lease,
        ttl_ms,
    })
}

fn delete(path: &str) -> op::Op {
    op::Op::Delete(DeleteOp {
        path: path.into(),
        version: -1,
    })
}

fn error_code(result: &CommandResult) -> Option<ErrorCode> {
    match &result.outcome {
        Some(Outcome::Error(e)) => ErrorCode::try_from(e.code).ok(),
        _ => None,
    }
}

fn kinds(events: &[Event]) -> Vec<(EventType, &str)> {
    events.iter().map(|e| (e.kind, e.path.as_str())).collect()
}

#[test]
fn revoking_a_lease_deletes_its_ephemerals_in_the_same_entry() {
    let mut sm = StateMachine::default();
    let (granted, _) = sm.apply(
        1,
        &lease_cmd(command::Lease::LeaseGrant(LeaseGrant { ttl_ms: 3000 }), 0),
    );
    let Some(Outcome::Lease(lease)) = granted.outcome else {
        panic!("granted: {granted:?}");
    };
    assert_eq!(
        (lease.id, lease.ttl_ms),
        (1, 3000),
        "the id is the granting entry's index"
    );
    sm.apply(
        2,
        &ops_cmd(vec![create("/app", CreateMode::Persistent, 0, 0)], 0),
    );
    sm.apply(
        3,
        &ops_cmd(
            vec![
                create("/app/e1", CreateMode::Ephemeral, 1, 0),
                create("/app/e-", CreateMode::EphemeralSequential, 1, 0),
            ],
            0,
        ),
    );
    assert_eq!(sm.tree().ephemerals_of(1), ["/app/e-0000000001", "/app/e1"]);
    assert_eq!(
        sm.tree().get("/app/e1").expect("e1").kind(),
        NodeKind::Ephemeral(1)
    );
    let (_, events) = sm.apply(
        4,
        &lease_cmd(
            command::Lease::LeaseRevoke(LeaseRevoke {
                id: 1,
                expired: true,
            }),
            0,
        ),
    );
    assert!(sm.tree().get("/app/e1").is_none());
    assert!(sm.leases().is_empty());
    let app = sm.tree().get("/app").expect("app");
    assert_eq!((app.stat.num_children, app.stat.pzxid), (0, 4));
    assert_eq!(
        kinds(&events),
        [
            (EventType::NodeDeleted, "/app/e-0000000001"),
            (EventType::NodeChildrenChanged, "/app"),
            (EventType::NodeDeleted, "/app/e1"),
            (EventType::NodeChildrenChanged, "/app")
        ]
    );
    let (again, _) = sm.apply(
        5,
        &lease_cmd(
            command::Lease::LeaseRevoke(LeaseRevoke {
                id: 1,
                expired: false,
            }),
            0,
        ),
    );
    assert_eq!(error_code(&again), Some(ErrorCode::LeaseNotFound));
}

#[test]
fn ephemeral_needs_a_live_lease() {
    let mut sm = StateMachine::default();
    let (result, events) = sm.apply(
        1,
        &ops_cmd(vec![create("/e", CreateMode::Ephemeral, 77, 0)], 0),
    );
    assert_eq!(error_code(&result), Some(ErrorCode::LeaseNotFound));
    assert!(events.is_empty());
}

#[test]
fn a_container_goes_with_its_last_child() {
    let mut sm = StateMachine::default();
    sm.apply(
        1,
        &ops_cmd(vec![create("/c", CreateMode::Container, 0, 0)], 0),
    );
    sm.apply(
        2,
        &ops_cmd(vec![create("/c/inner", CreateMode::Container, 0, 0)], 0),
    );
    sm.apply(
        3,
        &ops_cmd(vec![create("/c/inner/x", CreateMode::Persistent, 0, 0)], 0),
    );
    assert_eq!(sm.tree().get("/c").expect("c").kind(), NodeKind::Container);
    let (_, events) = sm.apply(4, &ops_cmd(vec![delete("/c/inner/x")], 0));
    assert!(sm.tree().get("/c").is_none(), "nested containers cascade");
    assert!(
        events
            .iter()
            .any(|e| e.kind == EventType::NodeDeleted && e.path == "/c")
    );
    sm.apply(
        5,
        &ops_cmd(vec![create("/fresh", CreateMode::Container, 0, 0)], 0),
    );
    assert!(
        sm.tree().get("/fresh").is_some(),
        "a container that never had children stays"
    );
    // Deleting and re-creating a child in one multi keeps the container.
    sm.apply(
        6,
        &ops_cmd(vec![create("/fresh/a", CreateMode::Persistent, 0, 0)], 0),
    );
    sm.apply(
        7,
        &ops_cmd(
            vec![
                delete("/fresh/a"),
                create("/fresh/b", CreateMode::Persistent, 0, 0),
            ],
            0,
        ),
    );
    assert!(sm.tree().get("/fresh/b").is_some());
}

#[test]
fn ttl_nodes_expire_only_when_idle_and_childless() {
    let mut sm = StateMachine::default();
    sm.apply(
        1,
        &ops_cmd(
            vec![create("/t", CreateMode::PersistentWithTtl, 0, 100)],
            1000,
        ),
    );
    sm.apply(
        2,
        &ops_cmd(
            vec![create("/busy", CreateMode::PersistentWithTtl, 0, 100)],
            1000,
        ),
    );
    sm.apply(
        3,
        &ops_cmd(
            vec![create("/busy/child", CreateMode::Persistent, 0, 0)],
            1000,
        ),
    );
    let expire = |paths: &[&str], time| {
        lease_cmd(
            command::Lease::ExpireTtl(ExpireTtl {
                paths: paths.iter().map(|p| p.to_string()).collect(),
            }),
            time,
        )
    };
    sm.apply(4, &expire(&["/t", "/busy"], 1050));
    assert!(sm.tree().get("/t").is_some(), "not idle for its TTL yet");
    let set = op::Op::Set(SetOp {
        path: "/t".into(),
        data: Bytes::from_static(b"touch"),
        version: -1,
    });
    sm.apply(5, &ops_cmd(vec![set], 1080));
    sm.apply(6, &expire(&["/t", "/busy"], 1100));
    assert!(sm.tree().get("/t").is_some(), "modified at 1080");
    let (_, events) = sm.apply(7, &expire(&["/t", "/busy", "/missing"], 1180));
    assert!(sm.tree().get("/t").is_none());
    assert!(sm.tree().get("/busy").is_some(), "has a child");
    assert_eq!(kinds(&events)[0], (EventType::NodeDeleted, "/t"));
    let (bad, _) = sm.apply(
        8,
        &ops_cmd(vec![create("/x", CreateMode::PersistentWithTtl, 0, 0)], 0),
    );
    assert_eq!(error_code(&bad), Some(ErrorCode::BadArguments));
}

#[test]
fn snapshots_keep_leases_and_indexes() {
    let mut sm = StateMachine::default();
    sm.apply(
        1,
        &lease_cmd(command::Lease::LeaseGrant(LeaseGrant { ttl_ms: 5000 }), 0),
    );
    sm.apply(
        2,
        &ops_cmd(vec![create("/e", CreateMode::Ephemeral, 1, 0)], 0),
    );
    sm.apply(
        3,
        &ops_cmd(vec![create("/t", CreateMode::PersistentWithTtl, 0, 9)], 0),
    );
    let restored = StateMachine::restore(&sm.snapshot(), 100).expect("restore");
    assert_eq!(restored.leases(), sm.leases());
    assert_eq!(restored.tree().ephemerals_of(1), ["/e"]);
    assert_eq!(restored.tree().ttl_nodes().count(), 1);
    assert_eq!(restored.digest(), sm.digest());
}
