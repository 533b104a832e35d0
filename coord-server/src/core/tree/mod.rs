//! The znode tree: ZooKeeper's `DataTree` without networking, so it can be tested
//! on its own. Every mutation records an [`Undo`] so that a multi whose later op
//! fails leaves no trace of its earlier ops, and an [`Event`] for watchers.
//! Two indexes are kept with the nodes: ephemeral nodes by owning lease (what a
//! revocation deletes) and TTL nodes (what expiry looks at).
//!
//! - `build.rs`: [`TreeBuilder`], a tree rebuilt from a snapshot's nodes, and
//!   [`NodeChecker`], the checks of those nodes that need no tree.
//! - `ops.rs`: create, set, delete, check.
//! - `stat.rs`: [`NodeStat`], the stat a node keeps.
//! - `undo.rs`: [`Undo`] and rollback.

mod build;
mod ops;
mod stat;
mod undo;

pub use build::{CheckedNode, NodeChecker, TreeBuilder};
pub use ops::is_sequential;
pub use stat::NodeStat;
pub use undo::Undo;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use imbl::OrdMap;

use coord_proto::v1::Stat;

use super::digest::PathHash;
use super::error::ZnodeError;
use super::kind::NodeKind;

/// Version value that matches any version in set, delete and check.
pub const ANY_VERSION: i32 = -1;

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Znode {
    /// The node's data, in an allocation of exactly its size. Not `Bytes`:
    /// a `Bytes` handle is twice the size of a boxed slice, and its first
    /// clone allocates a shared header that every node then keeps (together
    /// 48 B of a million-znode tree's RSS per node); readers copy the few
    /// bytes they answer with instead.
    pub data: Box<[u8]>,
    /// ZooKeeper's stat but its data length, maintained by the tree
    /// ([`Znode::full_stat`] is the whole). A node keeps no set of its
    /// children's names: the tree's map, sorted by path, lists them
    /// ([`Tree::children`]); `stat.num_children` counts them.
    pub stat: NodeStat,
}

impl Znode {
    /// A node from its data and the stat a snapshot records (whose
    /// `data_length` the data gives anyway).
    pub fn restored(data: Box<[u8]>, stat: &Stat) -> Self {
        Self {
            data,
            stat: NodeStat::from_stat(stat),
        }
    }

    /// The node's whole stat, as clients and snapshots see it.
    pub fn full_stat(&self) -> Stat {
        self.stat.with_length(len_i32(&self.data))
    }

    /// Children ever created under this node (modulo 2^31): the next
    /// sequential suffix.
    pub fn children_created(&self) -> u64 {
        self.stat.children_created()
    }

    /// The node's kind, from its `ephemeral_owner`.
    pub fn kind(&self) -> NodeKind {
        NodeKind::of(self.stat.ephemeral_owner)
    }

    /// True when the node has children.
    pub fn has_children(&self) -> bool {
        self.stat.num_children != 0
    }
}

/// Where and when a change happens: the zxid and time of the Raft entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    /// Raft index of the entry making the change.
    pub zxid: u64,
    /// Time stamped by the proposer, milliseconds since the Unix epoch.
    pub time_ms: i64,
}

/// The tree of znodes, keyed by path. The nodes live in a persistent
/// (structurally shared) map, so cloning the tree is O(1): a snapshot clones
/// the state and serializes it on another thread while the Raft loop goes on.
/// The map is a B-tree (`OrdMap`), not a hash trie: its dense leaves hold a
/// million znodes in about half the memory, it iterates in path order (what
/// a snapshot writes) and it is built from sorted input in order. Its values
/// are shared pointers, so a leaf slot is a pointer rather than a whole node
/// and copying a leaf for a snapshot in progress copies pointers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    /// Keys are boxed strings, not `String`s: a million B-tree slots are 8 B
    /// smaller each, without spare capacity.
    nodes: OrdMap<Box<str>, Arc<Znode>>,
    digest: u64,
    ephemerals: BTreeMap<u64, BTreeSet<String>>,
    ttl_nodes: BTreeSet<String>,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root `/`.
    pub fn new() -> Self {
        let mut tree = Self::empty();
        tree.insert_new(
            "/".to_owned(),
            Znode::restored(Box::default(), &Stat::default()),
        );
        tree
    }

    /// A tree without even the root, for [`TreeBuilder`] to fill.
    fn empty() -> Self {
        Self {
            nodes: OrdMap::new(),
            digest: 0,
            ephemerals: BTreeMap::new(),
            ttl_nodes: BTreeSet::new(),
        }
    }

    /// The node at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path).map(|node| &**node)
    }

    /// Number of znodes, root included.
    pub fn len(&self) -> usize {
        self.nodes.len()
    }

    /// Always false: the root always exists.
    pub fn is_empty(&self) -> bool {
        self.nodes.is_empty()
    }

    /// Order-independent digest of every node's path, data and stat.
    pub fn digest(&self) -> u64 {
        self.digest
    }

    /// Names of the children of `path`, sorted. They are read from the map
    /// itself: byte order keeps the paths below `path` together, each child
    /// before its own subtree, which is skipped with one seek per child that
    /// has children. So no node holds a set of its children's names (a
    /// million znodes would hold a million more strings).
    pub fn children(&self, path: &str) -> Vec<&str> {
        let prefix = if path == "/" {
            "/".to_owned()
        } else {
            format!("{path}/")
        };
        // '0' follows '/': every path below `path` sorts before `end`.
        let end = format!("{}0", &prefix[..prefix.len() - 1]);
        let mut names = Vec::new();
        let mut resume: Option<String> = None;
        'scan: loop {
            let lower = resume
                .as_deref()
                .map_or(Bound::Excluded(prefix.as_str()), Bound::Included);
            for (key, _) in self
                .nodes
                .range::<_, str>((lower, Bound::Excluded(end.as_str())))
            {
                let rest = &key[prefix.len()..];
                match rest.find('/') {
                    None => names.push(rest),
                    Some(slash) => {
                        resume = Some(format!("{prefix}{}0", &rest[..slash]));
                        continue 'scan;
                    }
                }
            }
            return names;
        }
    }

    /// Paths of the ephemeral nodes `lease` owns, sorted.
    pub fn ephemerals_of(&self, lease: u64) -> Vec<String> {
        self.ephemerals
            .get(&lease)
            .map(|paths| paths.iter().cloned().collect())
            .unwrap_or_default()
    }

    /// Number of ephemeral nodes `lease` owns.
    pub fn ephemeral_count(&self, lease: u64) -> usize {
        self.ephemerals.get(&lease).map_or(0, BTreeSet::len)
    }

    /// Paths of every TTL node, sorted.
    pub fn ttl_nodes(&self) -> impl Iterator<Item = &String> {
        self.ttl_nodes.iter()
    }

    /// All nodes sorted by path: the map's own order. Byte order puts every
    /// parent before its children (a parent's path is a proper prefix of
    /// theirs), which is what restoring needs.
    pub fn sorted_nodes(&self) -> impl Iterator<Item = (&str, &Znode)> {
        self.nodes.iter().map(|(path, node)| (&**path, &**node))
    }

    fn existing(&self, path: &str) -> Result<&Znode, ZnodeError> {
        self.get(path).ok_or_else(|| ZnodeError::NoNode {
            path: path.to_owned(),
        })
    }

    /// Adds a node known not to exist, keeping digest and indexes current.
    fn insert_new(&mut self, path: String, node: Znode) {
        let digest = PathHash::new(&path).node(&node.data, &node.stat);
        self.insert_hashed(path, node, digest);
    }

    /// [`Tree::insert_new`] of a node whose share of the digest is known.
    fn insert_hashed(&mut self, path: String, node: Znode, digest: u64) {
        self.index_hashed(&path, &node, digest);
        self.nodes.insert(path.into_boxed_str(), Arc::new(node));
    }

    /// Adds a node unless `path` exists, keeping digest and indexes current;
    /// false (and nothing changed) when it exists. One walk down the map on
    /// success, where a lookup and then an insert take two: loading a large
    /// tree spends much of its apply time comparing paths in those walks.
    fn insert_absent(&mut self, path: &str, node: Znode) -> bool {
        let node = Arc::new(node);
        if let Some(existing) = self.nodes.insert(Box::from(path), Arc::clone(&node)) {
            self.nodes.insert(Box::from(path), existing);
            return false;
        }
        self.index_new(path, &node);
        true
    }

    /// Digest and indexes for a node being added.
    fn index_new(&mut self, path: &str, node: &Znode) {
        self.index_hashed(path, node, PathHash::new(path).node(&node.data, &node.stat));
    }

    /// [`Tree::index_new`] with the node's share of the digest known.
    fn index_hashed(&mut self, path: &str, node: &Znode, digest: u64) {
        self.digest = self.digest.wrapping_add(digest);
        match node.kind() {
            NodeKind::Ephemeral(lease) => {
                self.ephemerals
                    .entry(lease)
                    .or_default()
                    .insert(path.to_owned());
            }
            NodeKind::Ttl(_) => {
                self.ttl_nodes.insert(path.to_owned());
            }
            NodeKind::Persistent | NodeKind::Container => {}
        }
    }

    /// Removes a node, keeping digest and indexes current.
    fn remove(&mut self, path: &str) -> Znode {
        let node = self
            .nodes
            .remove(path)
            .unwrap_or_else(|| panic!("tree invariant: {path} checked to exist before removal"));
        self.digest = self
            .digest
            .wrapping_sub(PathHash::new(path).node(&node.data, &node.stat));
        match node.kind() {
            NodeKind::Ephemeral(lease) => {
                if let Some(paths) = self.ephemerals.get_mut(&lease) {
                    paths.remove(path);
                    if paths.is_empty() {
                        self.ephemerals.remove(&lease);
                    }
                }
            }
            NodeKind::Ttl(_) => {
                self.ttl_nodes.remove(path);
            }
            NodeKind::Persistent | NodeKind::Container => {}
        }
        Arc::unwrap_or_clone(node)
    }

    /// The node at `path`, writable (copied first if a snapshot shares it).
    fn node_mut(&mut self, path: &str) -> &mut Znode {
        Arc::make_mut(
            self.nodes
                .get_mut(path)
                .unwrap_or_else(|| panic!("tree invariant: {path} checked to exist before update")),
        )
    }

    /// Changes one node's stat in place, keeping the digest current without
    /// hashing its data (the kind of a node never changes, so the indexes
    /// stay valid).
    fn update<R>(&mut self, path: &str, change: impl FnOnce(&mut NodeStat) -> R) -> R {
        let hash = PathHash::new(path);
        let node = self.node_mut(path);
        let length = len_i32(&node.data);
        let old_hash = hash.stat(&node.stat, length);
        let out = change(&mut node.stat);
        let new_hash = hash.stat(&node.stat, length);
        self.digest = self.digest.wrapping_sub(old_hash).wrapping_add(new_hash);
        out
    }

    /// Replaces one node's data and changes its stat; returns what `change`
    /// returned and the old data.
    fn update_data<R>(
        &mut self,
        path: &str,
        data: Box<[u8]>,
        change: impl FnOnce(&mut NodeStat) -> R,
    ) -> (R, Box<[u8]>) {
        let hash = PathHash::new(path);
        let node = self.node_mut(path);
        let old_hash = hash.node(&node.data, &node.stat);
        let out = change(&mut node.stat);
        let old = std::mem::replace(&mut node.data, data);
        let new_hash = hash.node(&node.data, &node.stat);
        self.digest = self.digest.wrapping_sub(old_hash).wrapping_add(new_hash);
        (out, old)
    }
}

fn check_version(path: &str, expected: i32, actual: i32) -> Result<(), ZnodeError> {
    if expected == ANY_VERSION || expected == actual {
        Ok(())
    } else {
        Err(ZnodeError::BadVersion {
            path: path.to_owned(),
            expected,
            actual,
        })
    }
}

/// A node's `data_length`. Data is bounded far below 2 GiB by the request
/// size limits; saturate anyway.
pub(crate) fn len_i32(data: &[u8]) -> i32 {
    i32::try_from(data.len()).unwrap_or(i32::MAX)
}
