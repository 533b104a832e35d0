//! Unit tests of the znode tree's ZooKeeper semantics.

use bytes::Bytes;
use coord_proto::v1::{CheckOp, CreateMode, CreateOp, DeleteOp, SetOp};

use super::error::ZnodeError;
use super::event::Event;
use super::kind::NodeKind;
use super::tree::{ANY_VERSION, Stamp, Tree, TreeBuilder, Znode};

fn at(zxid: u64) -> Stamp {
    Stamp {
        zxid,
        time_ms: 1_000 + zxid as i64,
    }
}

fn create(tree: &mut Tree, zxid: u64, path: &str, mode: CreateMode) -> Result<String, ZnodeError> {
    let op = CreateOp {
        path: path.into(),
        data: Bytes::from_static(b"d"),
        mode: mode as i32,
        ..CreateOp::default()
    };
    tree.create(
        &op,
        NodeKind::Persistent,
        at(zxid),
        &mut Vec::new(),
        &mut Vec::new(),
    )
    .map(|r| r.path)
}

fn mk(tree: &mut Tree, zxid: u64, path: &str) {
    create(tree, zxid, path, CreateMode::Persistent).expect("create");
}

fn delete(tree: &mut Tree, zxid: u64, path: &str, version: i32) -> Result<(), ZnodeError> {
    let op = DeleteOp {
        path: path.into(),
        version,
    };
    tree.delete(&op, at(zxid), &mut Vec::new(), &mut Vec::new())
}

fn set(tree: &mut Tree, zxid: u64, path: &str, version: i32) -> Result<i32, ZnodeError> {
    let op = SetOp {
        path: path.into(),
        data: Bytes::from_static(b"new data"),
        version,
    };
    tree.set(&op, at(zxid), &mut Vec::new(), &mut Vec::new())
        .map(|r| r.stat.unwrap_or_default().version)
}

#[test]
fn root_exists_and_cannot_be_deleted_or_recreated() {
    let mut tree = Tree::new();
    assert!(tree.get("/").is_some());
    assert!(matches!(
        delete(&mut tree, 1, "/", -1),
        Err(ZnodeError::BadArguments { .. })
    ));
    assert_eq!(
        create(&mut tree, 1, "/", CreateMode::Persistent),
        Err(ZnodeError::NodeExists { path: "/".into() })
    );
}

#[test]
fn create_fills_the_stat_and_updates_the_parent() {
    let mut tree = Tree::new();
    mk(&mut tree, 5, "/a");
    mk(&mut tree, 7, "/a/b");
    let a = tree.get("/a").expect("a");
    assert_eq!(a.stat.czxid, 5);
    assert_eq!(a.stat.mzxid, 5);
    assert_eq!(a.stat.pzxid, 7);
    assert_eq!(a.stat.ctime, 1_005);
    assert_eq!(a.stat.mtime, 1_005);
    assert_eq!(a.stat.version, 0);
    assert_eq!(a.stat.cversion, 1);
    assert_eq!(a.stat.num_children, 1);
    assert_eq!(a.full_stat().data_length, 1);
    assert_eq!(a.stat.ephemeral_owner, 0);
    let b = tree.get("/a/b").expect("b");
    assert_eq!((b.stat.czxid, b.stat.pzxid, b.stat.cversion), (7, 7, 0));
    let root = tree.get("/").expect("root");
    assert_eq!(
        (root.stat.cversion, root.stat.pzxid, root.stat.num_children),
        (1, 5, 1)
    );
}

#[test]
fn create_errors() {
    let mut tree = Tree::new();
    assert_eq!(
        create(&mut tree, 1, "/a/b", CreateMode::Persistent),
        Err(ZnodeError::NoNode { path: "/a".into() })
    );
    mk(&mut tree, 2, "/a");
    assert_eq!(
        create(&mut tree, 3, "/a", CreateMode::Persistent),
        Err(ZnodeError::NodeExists { path: "/a".into() })
    );
    assert!(matches!(
        create(&mut tree, 4, "/a/", CreateMode::Persistent),
        Err(ZnodeError::InvalidPath { .. })
    ));
    assert_eq!(tree.len(), 2);
}

#[test]
fn sequential_suffix_counts_children_ever_created() {
    let mut tree = Tree::new();
    mk(&mut tree, 1, "/q");
    let seq =
        |tree: &mut Tree, zxid| create(tree, zxid, "/q/item-", CreateMode::PersistentSequential);
    assert_eq!(seq(&mut tree, 2).as_deref(), Ok("/q/item-0000000000"));
    mk(&mut tree, 3, "/q/plain");
    assert_eq!(seq(&mut tree, 4).as_deref(), Ok("/q/item-0000000002"));
    delete(&mut tree, 5, "/q/plain", -1).expect("delete");
    delete(&mut tree, 6, "/q/item-0000000000", -1).expect("delete");
    // cversion is now 5 (3 creates + 2 deletes); the counter is 3.
    assert_eq!(tree.get("/q").expect("q").stat.cversion, 5);
    assert_eq!(seq(&mut tree, 7).as_deref(), Ok("/q/item-0000000003"));
    assert_eq!(
        create(&mut tree, 8, "/q/", CreateMode::PersistentSequential).as_deref(),
        Ok("/q/0000000004")
    );
}

#[test]
fn sequential_name_collision_is_node_exists() {
    let mut tree = Tree::new();
    mk(&mut tree, 1, "/q");
    mk(&mut tree, 2, "/q/x0000000001");
    assert_eq!(
        create(&mut tree, 3, "/q/x", CreateMode::PersistentSequential),
        Err(ZnodeError::NodeExists {
            path: "/q/x0000000001".into()
        })
    );
}

#[test]
fn set_checks_the_version() {
    let mut tree = Tree::new();
    mk(&mut tree, 1, "/a");
    assert_eq!(set(&mut tree, 2, "/a", 0), Ok(1));
    assert_eq!(set(&mut tree, 3, "/a", ANY_VERSION), Ok(2));
    assert_eq!(
        set(&mut tree, 4, "/a", 1),
        Err(ZnodeError::BadVersion {
            path: "/a".into(),
            expected: 1,
            actual: 2
        })
    );
    assert_eq!(
        set(&mut tree, 4, "/nope", -1),
        Err(ZnodeError::NoNode {
            path: "/nope".into()
        })
    );
    let a = tree.get("/a").expect("a");
    assert_eq!((a.stat.mzxid, a.stat.mtime, a.stat.czxid), (3, 1_003, 1));
    assert_eq!(a.data.as_ref(), b"new data");
    assert_eq!(a.full_stat().data_length, 8);
}

#[test]
fn delete_checks_existence_version_and_children_in_order() {
    let mut tree = Tree::new();
    assert_eq!(
        delete(&mut tree, 1, "/a", -1),
        Err(ZnodeError::NoNode { path: "/a".into() })
    );
    mk(&mut tree, 2, "/a");
    mk(&mut tree, 3, "/a/b");
    assert!(matches!(
        delete(&mut tree, 4, "/a", 5),
        Err(ZnodeError::BadVersion { .. })
    ));
    assert_eq!(
        delete(&mut tree, 4, "/a", 0),
        Err(ZnodeError::NotEmpty { path: "/a".into() })
    );
    delete(&mut tree, 5, "/a/b", 0).expect("delete child");
    let a = tree.get("/a").expect("a");
    assert_eq!(
        (a.stat.cversion, a.stat.pzxid, a.stat.num_children),
        (2, 5, 0)
    );
    delete(&mut tree, 6, "/a", 0).expect("delete parent");
    assert_eq!(tree.len(), 1);
}

#[test]
fn check_op() {
    let mut tree = Tree::new();
    mk(&mut tree, 1, "/a");
    let check = |tree: &Tree, path: &str, version| {
        tree.check(&CheckOp {
            path: path.into(),
            version,
        })
    };
    assert_eq!(check(&tree, "/a", 0), Ok(()));
    assert_eq!(check(&tree, "/a", -1), Ok(()));
    assert!(matches!(
        check(&tree, "/a", 1),
        Err(ZnodeError::BadVersion { .. })
    ));
    assert_eq!(
        check(&tree, "/b", -1),
        Err(ZnodeError::NoNode { path: "/b".into() })
    );
}

#[test]
fn children_are_sorted() {
    let mut tree = Tree::new();
    for (i, name) in ["/c", "/a", "/b", "/aa"].iter().enumerate() {
        mk(&mut tree, i as u64 + 1, name);
    }
    assert_eq!(tree.children("/"), ["a", "aa", "b", "c"]);
}

#[test]
fn children_skip_subtrees_and_keep_siblings_that_sort_between() {
    let mut tree = Tree::new();
    let paths = [
        "/a", "/a/b", "/a/b/c", "/a/b/c/d", "/a/b!x", "/a/b.y", "/a/b0", "/a/c", "/a/c/e", "/a-z",
        "/a0",
    ];
    for (i, path) in paths.iter().enumerate() {
        mk(&mut tree, i as u64 + 1, path);
    }
    assert_eq!(tree.children("/a"), ["b", "b!x", "b.y", "b0", "c"]);
    assert_eq!(tree.children("/"), ["a", "a-z", "a0"]);
    assert_eq!(tree.children("/a/b"), ["c"]);
    assert!(tree.children("/a/b/c/d").is_empty());
    assert!(tree.children("/missing").is_empty());
    delete(&mut tree, 20, "/a/c/e", ANY_VERSION).expect("delete");
    delete(&mut tree, 21, "/a/c", ANY_VERSION).expect("delete");
    assert_eq!(tree.children("/a"), ["b", "b!x", "b.y", "b0"]);
}

#[test]
fn rollback_restores_tree_and_digest() {
    let mut tree = Tree::new();
    mk(&mut tree, 1, "/a");
    mk(&mut tree, 2, "/a/b");
    let before = tree.clone();
    let mut undo = Vec::new();
    let create_op = CreateOp {
        path: "/a/c".into(),
        data: Bytes::new(),
        mode: CreateMode::PersistentSequential as i32,
        ..CreateOp::default()
    };
    let mut events = Vec::new();
    tree.create(
        &create_op,
        NodeKind::Ephemeral(9),
        at(3),
        &mut undo,
        &mut events,
    )
    .expect("create");
    let set_op = SetOp {
        path: "/a".into(),
        data: Bytes::from_static(b"x"),
        version: -1,
    };
    tree.set(&set_op, at(3), &mut undo, &mut events)
        .expect("set");
    let del_op = DeleteOp {
        path: "/a/b".into(),
        version: -1,
    };
    tree.delete(&del_op, at(3), &mut undo, &mut events)
        .expect("delete");
    assert_ne!(tree, before);
    assert_eq!(tree.ephemerals_of(9).len(), 1);
    tree.rollback(undo);
    assert_eq!(tree, before);
    assert_eq!(tree.digest(), before.digest());
    assert!(
        tree.ephemerals_of(9).is_empty(),
        "indexes are rolled back too"
    );
}

#[test]
fn operations_report_zookeeper_events() {
    use coord_proto::v1::EventType::*;
    let mut tree = Tree::new();
    let mut events: Vec<Event> = Vec::new();
    let create_op = |path: &str| CreateOp {
        path: path.into(),
        ..CreateOp::default()
    };
    tree.create(
        &create_op("/a"),
        NodeKind::Persistent,
        at(1),
        &mut Vec::new(),
        &mut events,
    )
    .expect("create");
    let set_op = SetOp {
        path: "/a".into(),
        data: Bytes::new(),
        version: -1,
    };
    tree.set(&set_op, at(2), &mut Vec::new(), &mut events)
        .expect("set");
    let del_op = DeleteOp {
        path: "/a".into(),
        version: -1,
    };
    tree.delete(&del_op, at(3), &mut Vec::new(), &mut events)
        .expect("delete");
    let got: Vec<(coord_proto::v1::EventType, &str)> =
        events.iter().map(|e| (e.kind, e.path.as_str())).collect();
    assert_eq!(
        got,
        [
            (NodeCreated, "/a"),
            (NodeChildrenChanged, "/"),
            (NodeDataChanged, "/a"),
            (NodeDeleted, "/a"),
            (NodeChildrenChanged, "/")
        ]
    );
}

#[test]
fn ephemerals_cannot_have_children_and_kinds_show_in_the_stat() {
    let mut tree = Tree::new();
    let op = |path: &str, mode: CreateMode| CreateOp {
        path: path.into(),
        mode: mode as i32,
        ..CreateOp::default()
    };
    let mut events = Vec::new();
    tree.create(
        &op("/e", CreateMode::Ephemeral),
        NodeKind::Ephemeral(5),
        at(1),
        &mut Vec::new(),
        &mut events,
    )
    .expect("ephemeral");
    assert_eq!(tree.get("/e").expect("e").stat.ephemeral_owner, 5);
    assert_eq!(
        tree.create(
            &op("/e/x", CreateMode::Persistent),
            NodeKind::Persistent,
            at(2),
            &mut Vec::new(),
            &mut events
        ),
        Err(ZnodeError::NoChildrenForEphemerals { path: "/e".into() })
    );
    tree.create(
        &op("/t", CreateMode::PersistentWithTtl),
        NodeKind::Ttl(500),
        at(3),
        &mut Vec::new(),
        &mut events,
    )
    .expect("ttl");
    assert_eq!(tree.ttl_nodes().collect::<Vec<_>>(), ["/t"]);
    assert_eq!(tree.get("/t").expect("t").kind(), NodeKind::Ttl(500));
}

fn sorted_copy(tree: &Tree) -> Vec<(String, Znode)> {
    tree.sorted_nodes()
        .map(|(path, node)| (path.to_owned(), node.clone()))
        .collect()
}

/// Rebuilds a tree from `nodes` with a [`TreeBuilder`], as a restore does.
fn rebuild(nodes: Vec<(String, Znode)>) -> Result<Tree, ZnodeError> {
    let mut builder = TreeBuilder::new();
    for (path, node) in nodes {
        builder.push(path, node)?;
    }
    builder.finish()
}

#[test]
fn a_builder_rebuilds_children_and_digest() {
    let mut tree = Tree::new();
    for (zxid, path) in ["/a", "/a/x", "/a-b", "/a/x/y", "/a/z", "/b"]
        .iter()
        .enumerate()
    {
        mk(&mut tree, zxid as u64 + 1, path);
    }
    let rebuilt = rebuild(sorted_copy(&tree)).expect("rebuild");
    assert_eq!(rebuilt.digest(), tree.digest());
    assert_eq!(rebuilt.len(), tree.len());
    for (path, node) in tree.sorted_nodes() {
        assert_eq!(rebuilt.get(path), Some(node), "{path}");
    }
}

#[test]
fn a_builder_refuses_what_is_not_a_sorted_tree() {
    let mut tree = Tree::new();
    mk(&mut tree, 1, "/a");
    mk(&mut tree, 2, "/a/x");
    mk(&mut tree, 3, "/b");
    let nodes = sorted_copy(&tree);
    let mut orphan = nodes.clone();
    orphan.remove(1);
    assert!(matches!(
        rebuild(orphan),
        Err(ZnodeError::NoNode { path }) if path == "/a"
    ));
    let mut swapped = nodes.clone();
    swapped.swap(2, 3);
    assert!(matches!(
        rebuild(swapped),
        Err(ZnodeError::BadArguments { .. })
    ));
    let mut duplicated = nodes.clone();
    duplicated.push(nodes[2].clone());
    assert!(matches!(
        rebuild(duplicated),
        Err(ZnodeError::BadArguments { .. })
    ));
    let mut miscounted = nodes.clone();
    miscounted[1].1.stat.num_children += 1;
    assert!(matches!(
        rebuild(miscounted),
        Err(ZnodeError::BadArguments { reason }) if reason.contains("/a counts 2 children, has 1")
    ));
    let mut childless_parent = nodes.clone();
    childless_parent[3].1.stat.num_children = 1;
    assert!(matches!(
        rebuild(childless_parent),
        Err(ZnodeError::BadArguments { reason }) if reason.contains("/b counts 1 children, has 0")
    ));
    // Counts that add up over the tree but not node by node: a negative
    // count is refused as it is read.
    let mut compensating = nodes.clone();
    compensating[2].1.stat.num_children = 1;
    compensating[3].1.stat.num_children = -1;
    assert!(matches!(
        rebuild(compensating),
        Err(ZnodeError::BadArguments { reason }) if reason.contains("/b counts -1 children")
    ));
    let rootless = nodes[1..].to_vec();
    let rebuilt = rebuild(rootless).expect("a missing root is implied");
    assert!(rebuilt.get("/").is_some());
    assert!(rebuilt.get("/a/x").is_some());
}

/// A member holds every znode in memory, so the node's size is a budget: with
/// its two reference counts it must fit jemalloc's 96-byte size class (the
/// next is 112). Growing the node is a decision to make with the benchmark
/// (`coord-bench tree`), not by accident.
#[test]
fn a_shared_node_fits_96_bytes() {
    let shared = std::mem::size_of::<Znode>() + 2 * std::mem::size_of::<usize>();
    assert!(shared <= 96, "a shared node takes {shared} bytes");
}
