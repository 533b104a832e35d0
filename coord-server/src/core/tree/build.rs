//! [`TreeBuilder`]: a tree rebuilt from nodes given one at a time in path
//! order, as a snapshot lists them.

use std::collections::HashMap;

use coord_proto::v1::Stat;

use super::{Tree, Znode};
use crate::core::error::ZnodeError;
use crate::core::path;

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
    /// The last path added (its buffer reused): each path must sort after
    /// it. Empty until a node is added (no path is empty).
    last: String,
    /// Whether the nodes began with the root; otherwise it is added at the end.
    root_given: bool,
    /// Children counted for each parent path, but those of `parent`.
    children: HashMap<Box<str>, i32>,
    /// The parent of the last node added: siblings mostly come one after
    /// another, so most nodes need no lookup of their parent.
    parent: String,
    /// Children of `parent` counted since it became the last parent.
    run: i32,
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
            last: String::new(),
            root_given: false,
            children: HashMap::new(),
            parent: String::new(),
            run: 0,
        }
    }

    /// Adds the node at `path`, which must sort after every path added before
    /// and whose parent must be among them (or be the implied root).
    pub fn push(&mut self, path: String, node: Znode) -> Result<(), ZnodeError> {
        if self.last.is_empty() && path == "/" {
            self.root_given = true;
            self.last.push('/');
            self.tree.insert_new(path, node);
            return Ok(());
        }
        if !self.last.is_empty() && *self.last >= *path {
            return Err(ZnodeError::BadArguments {
                reason: format!("snapshot nodes out of order at {path}"),
            });
        }
        path::validate(&path, false)?;
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
        self.last.clear();
        self.last.push_str(&path);
        self.tree.insert_new(path, node);
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
    /// children it was given.
    pub fn finish(mut self) -> Result<Tree, ZnodeError> {
        self.store_run();
        if !self.root_given {
            let mut root = Znode::restored(Box::default(), &Stat::default());
            root.stat.num_children = self.children.get("/").copied().unwrap_or(0);
            self.tree.insert_new("/".to_owned(), root);
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
