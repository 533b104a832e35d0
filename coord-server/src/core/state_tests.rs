//! Property tests of the state machine: multi atomicity, stat bookkeeping,
//! determinism, snapshot round trips and exactly-once retries.

use bytes::Bytes;
use coord_proto::raftlog::{
    Command, CommandResult, ExpireTtl, LeaseGrant, LeaseRevoke, SnapshotNode, StateSnapshot,
    command, command_result::Outcome,
};
use coord_proto::v1::{
    CheckOp, CreateMode, CreateOp, DeleteOp, ErrorCode, Op, SetOp, WriteMeta, op,
};
use proptest::prelude::*;
use prost::Message;

use super::error::ZnodeError;
use super::kind::NodeKind;
use super::path;
use super::snapshot::SnapshotError;
use super::state::StateMachine;
use super::tree::Tree;

const PATHS: &[&str] = &["/a", "/b", "/a/x", "/a/y", "/b/z", "/a/x/deep", "/c"];

fn op_strategy() -> impl Strategy<Value = Op> {
    let path = prop::sample::select(PATHS).prop_map(str::to_owned);
    let version = -1i32..3;
    let data = prop::collection::vec(any::<u8>(), 0..4).prop_map(Bytes::from);
    let mode = prop::sample::select(
        &[
            CreateMode::Persistent,
            CreateMode::PersistentSequential,
            CreateMode::Ephemeral,
            CreateMode::EphemeralSequential,
            CreateMode::Container,
            CreateMode::PersistentWithTtl,
        ][..],
    );
    prop_oneof![
        (path.clone(), data.clone(), mode, 1u64..8).prop_map(|(path, data, mode, lease)| Op {
            op: Some(op::Op::Create(CreateOp {
                path,
                data,
                mode: mode as i32,
                lease,
                ttl_ms: 50,
            })),
        }),
        (path.clone(), data, version.clone()).prop_map(|(path, data, version)| Op {
            op: Some(op::Op::Set(SetOp {
                path,
                data,
                version
            }))
        }),
        (path.clone(), version.clone()).prop_map(|(path, version)| Op {
            op: Some(op::Op::Delete(DeleteOp { path, version }))
        }),
        (path, version).prop_map(|(path, version)| Op {
            op: Some(op::Op::Check(CheckOp { path, version }))
        }),
    ]
}

/// A lease grant, a revoke of a (maybe) granted lease, a TTL expiry, or ops.
fn command_kind() -> impl Strategy<Value = (Option<command::Lease>, Vec<Op>)> {
    prop_oneof![
        1 => Just((Some(command::Lease::LeaseGrant(LeaseGrant { ttl_ms: 1000 })), Vec::new())),
        1 => (1u64..8).prop_map(|id| (Some(command::Lease::LeaseRevoke(LeaseRevoke { id, expired: true })), Vec::new())),
        1 => Just((
            Some(command::Lease::ExpireTtl(ExpireTtl {
                paths: PATHS.iter().map(|p| p.to_string()).collect(),
            })),
            Vec::new()
        )),
        6 => prop::collection::vec(op_strategy(), 1..4).prop_map(|ops| (None, ops)),
    ]
}

fn commands() -> impl Strategy<Value = Vec<Command>> {
    prop::collection::vec(command_kind(), 1..40).prop_map(|batches| {
        batches
            .into_iter()
            .enumerate()
            .map(|(i, (lease, ops))| Command {
                meta: Some(WriteMeta {
                    client_id: 1 + (i as u64 % 3),
                    seq: i as u64 + 1,
                    first_incomplete_seq: 0,
                }),
                time_ms: 10 * i as i64,
                ops,
                lease,
            })
            .collect()
    })
}

fn is_ok(result: &CommandResult) -> bool {
    matches!(result.outcome, Some(Outcome::Ok(_)))
}

/// Structural invariants every tree must keep.
fn assert_consistent(tree: &Tree) {
    let mut counted = 0;
    for (path, node) in tree.sorted_nodes() {
        let children = tree.children(path);
        counted += children.len();
        assert_eq!(node.stat.num_children as usize, children.len(), "{path}");
        assert!(
            node.children_created() >= node.stat.num_children as u64,
            "{path} has more children than it created"
        );
        assert!(node.stat.pzxid >= node.stat.czxid, "{path}");
        assert!(node.stat.mzxid >= node.stat.czxid, "{path}");
        for child in children {
            assert!(
                tree.get(&path::join(path, child)).is_some(),
                "{path}/{child} missing"
            );
        }
        if path != "/" {
            let (parent, name) = path::split(path);
            assert!(
                tree.children(parent).contains(&name),
                "{path} not listed in its parent"
            );
        }
    }
    assert_eq!(
        counted + 1,
        tree.len(),
        "every node but the root is a child"
    );
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn failed_commands_leave_no_trace(cmds in commands()) {
        let mut sm = StateMachine::default();
        for (i, cmd) in cmds.iter().enumerate() {
            let before = sm.tree().clone();
            let (result, events) = sm.apply(i as u64 + 1, cmd);
            if !is_ok(&result) {
                prop_assert_eq!(sm.tree(), &before);
                prop_assert!(events.is_empty(), "a failed command reports no events");
            }
            assert_consistent(sm.tree());
            for (path, node) in sm.tree().sorted_nodes() {
                if let NodeKind::Ephemeral(lease) = node.kind() {
                    prop_assert!(sm.leases().contains_key(&lease), "{} outlived lease {}", path, lease);
                }
                if node.kind() == NodeKind::Container && node.stat.cversion > 0 {
                    prop_assert!(node.has_children(), "emptied container {} survived", path);
                }
            }
        }
    }

    #[test]
    fn apply_is_deterministic_and_snapshots_round_trip(cmds in commands()) {
        let mut one = StateMachine::default();
        let mut two = StateMachine::default();
        for (i, cmd) in cmds.iter().enumerate() {
            let index = 2 * i as u64 + 1;
            prop_assert_eq!(one.apply(index, cmd), two.apply(index, cmd));
            one.apply_empty(index + 1);
            two.apply_empty(index + 1);
        }
        prop_assert_eq!(&one, &two);
        let bytes = one.snapshot();
        let message = StateSnapshot::decode(&bytes[..]).expect("decode");
        prop_assert_eq!(message.encode_to_vec(), bytes.clone(), "nodes are streamed as prost encodes them");
        let mut written = Vec::new();
        one.write_snapshot(&mut written).expect("write to a Vec");
        prop_assert_eq!(&written, &bytes, "written as it is encoded, the same bytes");
        let restored = StateMachine::restore(&bytes, super::dedup::DEFAULT_MAX_CLIENTS)
            .expect("restore");
        prop_assert_eq!(restored.tree().digest(), one.tree().digest());
        prop_assert_eq!(&restored, &one);
        prop_assert_eq!(restored.snapshot(), one.snapshot());
        // Read through a 3-byte buffer, every varint and field straddles reads.
        let mut reader = std::io::BufReader::with_capacity(3, &bytes[..]);
        let streamed = StateMachine::restore_from(&mut reader, super::dedup::DEFAULT_MAX_CLIENTS)
            .expect("restore from a reader");
        prop_assert_eq!(&streamed, &one);
    }
}

fn create_cmd(path: &str, mode: CreateMode, client_id: u64, seq: u64) -> Command {
    Command {
        meta: Some(WriteMeta {
            client_id,
            seq,
            first_incomplete_seq: seq,
        }),
        time_ms: 0,
        ops: vec![Op {
            op: Some(op::Op::Create(CreateOp {
                path: path.into(),
                data: Bytes::new(),
                mode: mode as i32,
                ..CreateOp::default()
            })),
        }],
        lease: None,
    }
}

#[test]
fn retried_sequential_create_makes_one_node() {
    let mut sm = StateMachine::default();
    sm.apply(1, &create_cmd("/q", CreateMode::Persistent, 9, 1));
    let cmd = create_cmd("/q/job-", CreateMode::PersistentSequential, 9, 2);
    let (first, events) = sm.apply(2, &cmd);
    let (retry, replayed) = sm.apply(3, &cmd);
    assert_eq!(events.len(), 2, "created + children changed");
    assert!(
        replayed.is_empty(),
        "a retry changes nothing, so reports nothing"
    );
    assert!(is_ok(&first));
    assert_eq!(first, retry);
    assert_eq!(sm.tree().children("/q").len(), 1);
    assert_eq!(sm.applied(), 3);
}

#[test]
fn failing_multi_reports_the_failing_op() {
    let mut sm = StateMachine::default();
    let mut cmd = create_cmd("/a", CreateMode::Persistent, 0, 0);
    cmd.ops.push(Op {
        op: Some(op::Op::Delete(DeleteOp {
            path: "/missing".into(),
            version: -1,
        })),
    });
    let (result, _) = sm.apply(1, &cmd);
    let Some(Outcome::Error(err)) = result.outcome else {
        panic!("multi should fail: {result:?}");
    };
    assert_eq!(err.op_index, 1);
    assert_eq!(err.code, ErrorCode::NoNode as i32);
    assert_eq!(err.path, "/missing");
    assert!(sm.tree().get("/a").is_none());
}

#[test]
fn empty_op_is_bad_arguments() {
    let mut sm = StateMachine::default();
    let cmd = Command {
        meta: None,
        time_ms: 0,
        ops: vec![Op { op: None }],
        lease: None,
    };
    let Some(Outcome::Error(err)) = sm.apply(1, &cmd).0.outcome else {
        panic!("should fail");
    };
    assert_eq!(err.code, ErrorCode::BadArguments as i32);
}

#[test]
fn corrupt_snapshot_is_an_error() {
    assert!(StateMachine::restore(b"\xff\xff\xff", 10).is_err());
}

/// The bytes of a snapshot holding `paths` (each node without data or
/// children), in the order given.
fn snapshot_of(paths: impl IntoIterator<Item = String>) -> Vec<u8> {
    StateSnapshot {
        format: super::snapshot::FORMAT,
        applied_index: 7,
        nodes: paths
            .into_iter()
            .map(|path| SnapshotNode {
                path,
                stat: Some(coord_proto::v1::Stat::default()),
                ..SnapshotNode::default()
            })
            .collect(),
        ..StateSnapshot::default()
    }
    .encode_to_vec()
}

/// A restore decodes on a thread of its own while this one builds the tree:
/// a failure on either side, with many more nodes still to come than the two
/// hand over at once, ends the restore with that failure (neither waits for
/// the other forever) and a snapshot of that size restores whole.
#[test]
fn a_restore_stops_at_a_failure_on_either_thread() {
    let many = (0..30_000).map(|i| format!("/n{i:06}"));
    let whole = snapshot_of(many.clone());
    let restored = StateMachine::restore(&whole, 10).expect("restore");
    assert_eq!(restored.tree().len(), 30_001, "every node and the root");
    assert_eq!(restored.applied(), 7);
    assert!(restored.tree().get("/n029999").is_some());

    // The builder fails (a node whose parent is missing) near the start.
    let orphan = snapshot_of(std::iter::once("/a/orphan".to_owned()).chain(many.clone()));
    assert!(matches!(
        StateMachine::restore(&orphan, 10),
        Err(SnapshotError::Tree(ZnodeError::NoNode { path })) if path == "/a"
    ));
    // The decoder fails (the bytes end in the middle of a node) far in.
    assert!(matches!(
        StateMachine::restore(&whole[..whole.len() * 2 / 3], 10),
        Err(SnapshotError::Truncated)
    ));
    // The checker fails (a path out of order) far in.
    let unsorted = snapshot_of(many.chain(std::iter::once("/a".to_owned())));
    assert!(matches!(
        StateMachine::restore(&unsorted, 10),
        Err(SnapshotError::Tree(ZnodeError::BadArguments { reason })) if reason.contains("out of order at /a")
    ));
}

/// A state larger than one piece of the encoding (64 KiB) is written in
/// several pieces, which make the same bytes, and restores.
#[test]
fn a_large_snapshot_is_written_in_pieces_with_the_same_bytes() {
    let mut sm = StateMachine::default();
    sm.apply(1, &create_cmd("/big", CreateMode::Persistent, 9, 1));
    for seq in 2..2_000 {
        let mut cmd = create_cmd("/big/n-", CreateMode::PersistentSequential, 9, seq);
        if let Some(op::Op::Create(create)) = &mut cmd.ops[0].op {
            create.data = Bytes::from(vec![seq as u8; 100]);
        }
        assert!(is_ok(&sm.apply(seq, &cmd).0));
    }
    let bytes = sm.snapshot();
    assert!(bytes.len() > 3 * (64 << 10), "{} bytes", bytes.len());
    let mut pieces = Pieces::default();
    sm.write_snapshot(&mut pieces).expect("write");
    assert!(pieces.writes > 3, "{} writes", pieces.writes);
    assert!(pieces.bytes == bytes, "the same bytes");
    let restored =
        StateMachine::restore(&pieces.bytes, super::dedup::DEFAULT_MAX_CLIENTS).expect("restore");
    assert!(restored == sm, "the same state back");
}

/// A writer that counts the writes it gets.
#[derive(Default)]
struct Pieces {
    bytes: Vec<u8>,
    writes: usize,
}

impl std::io::Write for Pieces {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.writes += 1;
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A damaged snapshot fails with what is wrong with it; a length it claims
/// is not allocated before the bytes arrive.
#[test]
fn a_damaged_snapshot_says_what_is_wrong() {
    // The nodes field (3, length-delimited) claiming 2^40 bytes, holding 2.
    let huge = [0x1a, 0x80, 0x80, 0x80, 0x80, 0x80, 0x20, 0x0a, 0x01];
    assert!(matches!(
        StateMachine::restore(&huge, 10),
        Err(SnapshotError::Truncated)
    ));
    assert!(matches!(
        StateMachine::restore(&[0x1a], 10),
        Err(SnapshotError::Truncated)
    ));
    assert!(matches!(
        StateMachine::restore(&[0x1b], 10),
        Err(SnapshotError::Malformed(_))
    ));
    let later = StateSnapshot {
        format: super::snapshot::FORMAT + 1,
        ..StateSnapshot::default()
    };
    assert!(matches!(
        StateMachine::restore(&later.encode_to_vec(), 10),
        Err(SnapshotError::Format { found }) if found == super::snapshot::FORMAT + 1
    ));
    let mut sm = StateMachine::default();
    sm.apply(1, &create_cmd("/a", CreateMode::Persistent, 9, 1));
    let mut message = StateSnapshot::decode(&sm.snapshot()[..]).expect("decode");
    message.nodes.retain(|node| node.path != "/");
    message.nodes[0].path = "/a/b".into();
    assert!(matches!(
        StateMachine::restore(&message.encode_to_vec(), 10),
        Err(SnapshotError::Tree(_))
    ));
}

/// The count of children ever created is derived from the stat, not kept; a
/// snapshot still records it (a member of the previous version reads it) and
/// a restored member numbers the next sequential node as before.
#[test]
fn a_snapshot_records_children_created_and_restores_the_numbering() {
    let mut sm = StateMachine::default();
    sm.apply(1, &create_cmd("/q", CreateMode::Persistent, 9, 1));
    for seq in 2..=4 {
        let cmd = create_cmd("/q/job-", CreateMode::PersistentSequential, 9, seq);
        assert!(is_ok(&sm.apply(seq, &cmd).0));
    }
    let mut delete = create_cmd("/unused", CreateMode::Persistent, 9, 5);
    delete.ops = vec![Op {
        op: Some(op::Op::Delete(DeleteOp {
            path: "/q/job-0000000001".into(),
            version: -1,
        })),
    }];
    assert!(is_ok(&sm.apply(5, &delete).0));
    let bytes = sm.snapshot();
    let message = StateSnapshot::decode(&bytes[..]).expect("decode");
    let q = message.nodes.iter().find(|n| n.path == "/q").expect("/q");
    assert_eq!(q.child_seq, 3, "three children created, one deleted");
    let mut restored = StateMachine::restore(&bytes, 10).expect("restore");
    let next = create_cmd("/q/job-", CreateMode::PersistentSequential, 9, 6);
    restored.apply(6, &next);
    assert_eq!(
        restored.tree().children("/q"),
        ["job-0000000000", "job-0000000002", "job-0000000003"]
    );
}
