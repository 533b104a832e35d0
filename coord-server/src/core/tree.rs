//! The znode tree: ZooKeeper's `DataTree` without networking, so it can be tested
//! on its own. Every mutation records an [`Undo`] so that a multi whose later op
//! fails leaves no trace of its earlier ops.

use std::collections::{BTreeSet, HashMap};

use bytes::Bytes;
use coord_proto::v1::{
    CheckOp, CreateMode, CreateOp, CreateResult, DeleteOp, SetOp, SetResult, Stat,
};

use super::digest;
use super::error::ZnodeError;
use super::path;

/// Version value that matches any version in set, delete and check.
pub const ANY_VERSION: i32 = -1;

/// One node of the tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Znode {
    /// The node's data.
    pub data: Bytes,
    /// ZooKeeper's stat, maintained by the tree.
    pub stat: Stat,
    /// Names of the children, sorted.
    pub children: BTreeSet<String>,
    /// Children ever created under this node: the next sequential suffix.
    pub child_seq: u64,
    data_hash: u64,
}

impl Znode {
    /// A node as restored from a snapshot; `children` is filled in by the tree.
    pub fn restored(data: Bytes, stat: Stat, child_seq: u64) -> Self {
        let data_hash = digest::hash_bytes(&data);
        Self {
            data,
            stat,
            children: BTreeSet::new(),
            child_seq,
            data_hash,
        }
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

/// How to take back one applied op.
#[derive(Debug)]
pub enum Undo {
    /// A node was created: remove it and restore its parent.
    Created {
        /// The created path.
        path: String,
        /// The parent's stat before the create.
        parent_stat: Stat,
        /// The parent's sequential counter before the create.
        parent_seq: u64,
    },
    /// A node's data changed: restore data and stat.
    Updated {
        /// The changed path.
        path: String,
        /// Data before the change.
        data: Bytes,
        /// Stat before the change.
        stat: Stat,
    },
    /// A node was deleted: put it back and restore its parent.
    Deleted {
        /// The deleted path.
        path: String,
        /// The node as it was.
        node: Box<Znode>,
        /// The parent's stat before the delete.
        parent_stat: Stat,
    },
}

/// The tree of znodes, keyed by path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tree {
    nodes: HashMap<String, Znode>,
    digest: u64,
}

impl Default for Tree {
    fn default() -> Self {
        Self::new()
    }
}

impl Tree {
    /// A tree holding only the root `/`.
    pub fn new() -> Self {
        let mut tree = Self {
            nodes: HashMap::new(),
            digest: 0,
        };
        tree.insert(
            "/".to_owned(),
            Znode::restored(Bytes::new(), Stat::default(), 0),
        );
        tree
    }

    /// The node at `path`, if any.
    pub fn get(&self, path: &str) -> Option<&Znode> {
        self.nodes.get(path)
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

    /// All nodes, parents before children (sorted by path depth, then path).
    pub fn sorted_nodes(&self) -> Vec<(&String, &Znode)> {
        let mut nodes: Vec<_> = self.nodes.iter().collect();
        nodes.sort_by(|a, b| {
            let depth = |p: &str| p.bytes().filter(|c| *c == b'/').count();
            (depth(a.0), a.0).cmp(&(depth(b.0), b.0))
        });
        nodes
    }

    /// Puts a restored node back; its parent must already be restored.
    pub fn restore_node(&mut self, path: String, node: Znode) -> Result<(), ZnodeError> {
        if path == "/" {
            self.insert(path, node);
            return Ok(());
        }
        path::validate(&path, false)?;
        let (parent, name) = path::split(&path);
        let name = name.to_owned();
        let parent = parent.to_owned();
        let parent_node = self
            .nodes
            .get_mut(&parent)
            .ok_or(ZnodeError::NoNode { path: parent })?;
        parent_node.children.insert(name);
        self.insert(path, node);
        Ok(())
    }

    /// Creates a node (ZooKeeper `create`), returning the path actually created.
    pub fn create(
        &mut self,
        op: &CreateOp,
        at: Stamp,
        undo: &mut Vec<Undo>,
    ) -> Result<CreateResult, ZnodeError> {
        let sequential = op.mode() == CreateMode::PersistentSequential;
        path::validate(&op.path, sequential)?;
        if op.path == "/" && !sequential {
            return Err(ZnodeError::NodeExists {
                path: op.path.clone(),
            });
        }
        let (parent_path, _) = path::split(&op.path);
        let parent = self
            .nodes
            .get(parent_path)
            .ok_or_else(|| ZnodeError::NoNode {
                path: parent_path.to_owned(),
            })?;
        if parent.stat.ephemeral_owner != 0 {
            return Err(ZnodeError::NoChildrenForEphemerals {
                path: parent_path.to_owned(),
            });
        }
        let path = if sequential {
            format!("{}{:010}", op.path, parent.child_seq)
        } else {
            op.path.clone()
        };
        if self.nodes.contains_key(&path) {
            return Err(ZnodeError::NodeExists { path });
        }
        let (parent_path, name) = path::split(&path);
        let (parent_path, name) = (parent_path.to_owned(), name.to_owned());
        let stat = Stat {
            czxid: at.zxid,
            mzxid: at.zxid,
            pzxid: at.zxid,
            ctime: at.time_ms,
            mtime: at.time_ms,
            data_length: len_i32(&op.data),
            ..Stat::default()
        };
        let (parent_stat, parent_seq) = self.update(&parent_path, |p| {
            let before = (p.stat, p.child_seq);
            p.children.insert(name);
            p.child_seq += 1;
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = at.zxid;
            p.stat.num_children += 1;
            before
        });
        undo.push(Undo::Created {
            path: path.clone(),
            parent_stat,
            parent_seq,
        });
        self.insert(path.clone(), Znode::restored(op.data.clone(), stat, 0));
        Ok(CreateResult {
            path,
            stat: Some(stat),
        })
    }

    /// Replaces a node's data if its version matches (ZooKeeper `setData`).
    pub fn set(
        &mut self,
        op: &SetOp,
        at: Stamp,
        undo: &mut Vec<Undo>,
    ) -> Result<SetResult, ZnodeError> {
        path::validate(&op.path, false)?;
        let node = self.existing(&op.path)?;
        check_version(&op.path, op.version, node.stat.version)?;
        undo.push(Undo::Updated {
            path: op.path.clone(),
            data: node.data.clone(),
            stat: node.stat,
        });
        let data = op.data.clone();
        let data_hash = digest::hash_bytes(&data);
        let stat = self.update(&op.path, |n| {
            n.stat.version = n.stat.version.wrapping_add(1);
            n.stat.mzxid = at.zxid;
            n.stat.mtime = at.time_ms;
            n.stat.data_length = len_i32(&data);
            n.data = data;
            n.data_hash = data_hash;
            n.stat
        });
        Ok(SetResult { stat: Some(stat) })
    }

    /// Deletes a childless node if its version matches (ZooKeeper `delete`).
    pub fn delete(
        &mut self,
        op: &DeleteOp,
        at: Stamp,
        undo: &mut Vec<Undo>,
    ) -> Result<(), ZnodeError> {
        path::validate(&op.path, false)?;
        if op.path == "/" {
            return Err(ZnodeError::BadArguments {
                reason: "the root znode cannot be deleted".to_owned(),
            });
        }
        let node = self.existing(&op.path)?;
        check_version(&op.path, op.version, node.stat.version)?;
        if !node.children.is_empty() {
            return Err(ZnodeError::NotEmpty {
                path: op.path.clone(),
            });
        }
        let (parent_path, name) = path::split(&op.path);
        let (parent_path, name) = (parent_path.to_owned(), name.to_owned());
        let node = self.remove(&op.path);
        let parent_stat = self.update(&parent_path, |p| {
            let before = p.stat;
            p.children.remove(&name);
            p.stat.cversion = p.stat.cversion.wrapping_add(1);
            p.stat.pzxid = at.zxid;
            p.stat.num_children -= 1;
            before
        });
        undo.push(Undo::Deleted {
            path: op.path.clone(),
            node: Box::new(node),
            parent_stat,
        });
        Ok(())
    }

    /// Succeeds if the node exists with the expected version (multi's `check`).
    pub fn check(&self, op: &CheckOp) -> Result<(), ZnodeError> {
        path::validate(&op.path, false)?;
        let node = self.existing(&op.path)?;
        check_version(&op.path, op.version, node.stat.version)
    }

    /// Takes back applied ops, newest first.
    pub fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Created {
                    path,
                    parent_stat,
                    parent_seq,
                } => {
                    self.remove(&path);
                    let (parent, name) = path::split(&path);
                    let name = name.to_owned();
                    self.update(parent, |p| {
                        p.children.remove(&name);
                        p.stat = parent_stat;
                        p.child_seq = parent_seq;
                    });
                }
                Undo::Updated { path, data, stat } => {
                    let data_hash = digest::hash_bytes(&data);
                    self.update(&path, |n| {
                        n.data = data;
                        n.data_hash = data_hash;
                        n.stat = stat;
                    });
                }
                Undo::Deleted {
                    path,
                    node,
                    parent_stat,
                } => {
                    let (parent, name) = path::split(&path);
                    let name = name.to_owned();
                    self.update(parent, |p| {
                        p.children.insert(name);
                        p.stat = parent_stat;
                    });
                    self.insert(path, *node);
                }
            }
        }
    }

    fn existing(&self, path: &str) -> Result<&Znode, ZnodeError> {
        self.nodes.get(path).ok_or_else(|| ZnodeError::NoNode {
            path: path.to_owned(),
        })
    }

    fn insert(&mut self, path: String, node: Znode) {
        if let Some(old) = self.nodes.get(&path) {
            let old_hash = digest::hash_node(&path, old.data_hash, &old.stat);
            self.digest = self.digest.wrapping_sub(old_hash);
        }
        let new_hash = digest::hash_node(&path, node.data_hash, &node.stat);
        self.digest = self.digest.wrapping_add(new_hash);
        self.nodes.insert(path, node);
    }

    fn remove(&mut self, path: &str) -> Znode {
        let node = self
            .nodes
            .remove(path)
            .unwrap_or_else(|| panic!("tree invariant: {path} checked to exist before removal"));
        self.digest = self
            .digest
            .wrapping_sub(digest::hash_node(path, node.data_hash, &node.stat));
        node
    }

    /// Mutates one node in place, keeping the digest current.
    fn update<R>(&mut self, path: &str, change: impl FnOnce(&mut Znode) -> R) -> R {
        let node = self
            .nodes
            .get_mut(path)
            .unwrap_or_else(|| panic!("tree invariant: {path} checked to exist before update"));
        let old_hash = digest::hash_node(path, node.data_hash, &node.stat);
        let out = change(node);
        let new_hash = digest::hash_node(path, node.data_hash, &node.stat);
        self.digest = self.digest.wrapping_sub(old_hash).wrapping_add(new_hash);
        out
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

/// Data is bounded far below 2 GiB by the request size limits; saturate anyway.
fn len_i32(data: &[u8]) -> i32 {
    i32::try_from(data.len()).unwrap_or(i32::MAX)
}
