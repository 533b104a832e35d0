//! How a multi's applied ops are taken back when a later op fails.

use super::{NodeStat, Tree, Znode};
use crate::core::path;

/// How to take back one applied op.
#[derive(Debug)]
pub enum Undo {
    /// A node was created: remove it and restore its parent.
    Created {
        /// The created path.
        path: String,
        /// The parent's stat before the create.
        parent_stat: NodeStat,
    },
    /// A node's data changed: restore data and stat.
    Updated {
        /// The changed path.
        path: String,
        /// Data before the change.
        data: Box<[u8]>,
        /// Stat before the change.
        stat: NodeStat,
    },
    /// A node was deleted: put it back and restore its parent.
    Deleted {
        /// The deleted path.
        path: String,
        /// The node as it was.
        node: Box<Znode>,
        /// The parent's stat before the delete.
        parent_stat: NodeStat,
    },
}

impl Tree {
    /// Takes back applied ops, newest first.
    pub fn rollback(&mut self, undo: Vec<Undo>) {
        for step in undo.into_iter().rev() {
            match step {
                Undo::Created { path, parent_stat } => {
                    self.remove(&path);
                    self.update(path::split(&path).0, |stat| *stat = parent_stat);
                }
                Undo::Updated { path, data, stat } => {
                    self.update_data(&path, data, |s| *s = stat);
                }
                Undo::Deleted {
                    path,
                    node,
                    parent_stat,
                } => {
                    self.update(path::split(&path).0, |stat| *stat = parent_stat);
                    // The node was deleted by this multi, so its path is free.
                    self.insert_new(path, *node);
                }
            }
        }
    }
}
