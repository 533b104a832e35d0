//! [`TreeBuilder`]: a tree rebuilt from nodes given one at a time in path
//! order, as a snapshot lists them; [`NodeChecker`]: the checks of each node
//! that need no tree, which a restore runs on the thread that decodes.

use std::collections::HashMap;

use coord_proto::v1::Stat;

use super::{Tree, Znode};
use crate::core::digest::PathHash;
use crate::core::error::ZnodeError;
use crate::core::path;

/// Checks nodes given in path order one by one: the path's syntax, that it
/// sorts after the path before it, that its count of children is not
/// negative; and computes the node's share of the digest. This is the half of
/// [`TreeBuilder::push`] that needs nothing but the previous path, so a
/// restore runs it on the thread that decodes the snapshot while another
/// builds the tree ([`TreeBuilder::push_checked`]).
#[derive(Debug, Default)]
pub struct NodeChecker {
    /// The last path checked (its buffer reused); empty before the first.
    last: String,
}

/// A node that passed [`NodeChecker::check`], with its share of the digest.
#[derive(Debug)]
pub struct CheckedNode {
    path: String,
    node: Znode,
    digest: u64,
}

impl NodeChecker {
    /// Checks the node at `path`, the next in path order. The root may only
    /// come first (byte order puts it there).
    pub fn check(&mut self, path: String, node: Znode) -> Result<CheckedNode, ZnodeError> {
        let root_first = self.last.is_empty() && path == "/";
        if !root_first {
            if !self.last.is_empty() && *self.last >= *path {
                return Err(ZnodeError::BadArguments {
                    reason: format!("snapshot nodes out of order at {path}"),
                });
            }
            path::validate(&path, false)?;
        }
        if node.stat.num_children < 0 {
            return Err(ZnodeError::BadArguments {
                reason: format!(
                    "snapshot node {path} counts {} children",
                    node.stat.num_children
                ),
            });
        }
        self.last.clear();
        self.last.push_str(&path);
        let digest = PathHash::new(&path).node(&node.data, &node.stat);
        Ok(CheckedNode { path, node, digest })
    }
}

/// Rebuilds a tree from its nodes in path order (byte order puts every parent
/// before its children), checking as it goes that each node's parent came
/// before it and, at [`TreeBuilder::finish`], that every `num_children` counts
/// the node's children. It holds only the tree and a count per parent, so a
/// member restarting from a snapshot file never holds a list of the decoded
/// nodes next to the tree (a million-znode restart peaked at 1.35× the steady
/// state with one). A missing root is implied.
#[derive(Debug)]
pub struct TreeBuilder {
    tree: Tree,
    /// Checks the nodes given to [`TreeBuilder::push`].
    checker: NodeChecker,
    /// Whether the nodes began with the root; otherwise it is added at the end.
    root_given: bool,
    /// Children counted for each parent path, but those of `parent`.
    children: HashMap<Box<str>, i32>,
    /// The parent of the last node added: siblings mostly come one after
    /// another, so most nodes need no lookup of their parent.
    parent: String,
    /// Children of `parent` counted since it became the last parent.
    run: i32,
    /// The sum of every added node's `num_children`.
    claimed: i64,
}

impl Default for TreeBuilder {
    fn default() -> Self {
        Self::new()
    }
}

impl TreeBuilder {
    /// A builder with no node yet.
    pub fn new() -> Self {
        Self {
            tree: Tree::empty(),
            checker: NodeChecker::default(),
            root_given: false,
            children: HashMap::new(),
            parent: String::new(),
            run: 0,
            claimed: 0,
        }
    }

    /// Adds the node at `path`, which must sort after every path added before
    /// and whose parent must be among them (or be the implied root).
    pub fn push(&mut self, path: String, node: Znode) -> Result<(), ZnodeError> {
        let checked = self.checker.check(path, node)?;
        self.push_checked(checked)
    }

    /// Adds a node checked by [`NodeChecker::check`]: every node added must
    /// come from one checker, in the order it checked them (not mixed with
    /// [`TreeBuilder::push`]). Its parent must have been added before (or be
    /// the implied root).
    pub fn push_checked(&mut self, checked: CheckedNode) -> Result<(), ZnodeError> {
        let CheckedNode { path, node, digest } = checked;
        self.claimed += i64::from(node.stat.num_children);
        if path == "/" {
            self.root_given = true;
            self.tree.insert_hashed(path, node, digest);
            return Ok(());
        }
        let (parent, _) = path::split(&path);
        if self.parent != parent {
            let parent_exists =
                (parent == "/" && !self.root_given) || self.tree.get(parent).is_some();
            if !parent_exists {
                return Err(ZnodeError::NoNode {
                    path: parent.to_owned(),
                });
            }
            self.store_run();
            self.parent.push_str(parent);
        }
        self.run += 1;
        self.tree.insert_hashed(path, node, digest);
        Ok(())
    }

    /// Moves the last parent's count into the map and forgets that parent.
    fn store_run(&mut self) {
        if self.run > 0 {
            *self.children.entry(Box::from(&*self.parent)).or_default() += self.run;
        }
        self.parent.clear();
        self.run = 0;
    }

    /// The tree, once every node's `num_children` is checked against the
    /// children it was given: each parent's count is compared, and the sum
    /// of all counts claimed with the sum of children found, which (no count
    /// being negative) leaves every other node with none. Only a mismatch
    /// walks the tree, to name the node.
    pub fn finish(mut self) -> Result<Tree, ZnodeError> {
        self.store_run();
        if !self.root_given {
            let mut root = Znode::restored(Box::default(), &Stat::default());
            root.stat.num_children = self.children.get("/").copied().unwrap_or(0);
            self.claimed += i64::from(root.stat.num_children);
            self.tree.insert_new("/".to_owned(), root);
        }
        let mut found = 0_i64;
        let mut consistent = true;
        for (parent, &count) in &self.children {
            found += i64::from(count);
            consistent &= self
                .tree
                .get(parent)
                .is_some_and(|node| node.stat.num_children == count);
        }
        if consistent && found == self.claimed {
            return Ok(self.tree);
        }
        for (path, node) in self.tree.sorted_nodes() {
            let counted = self.children.get(path).copied().unwrap_or(0);
            if node.stat.num_children != counted {
                return Err(ZnodeError::BadArguments {
                    reason: format!(
                        "snapshot node {path} counts {} children, has {counted}",
                        node.stat.num_children
                    ),
                });
            }
        }
        Ok(self.tree)
    }
}
