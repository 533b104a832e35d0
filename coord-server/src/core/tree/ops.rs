//! The znode operations: create, set, delete, check. Each validates everything
//! before changing anything, records its [`Undo`] and its events.

use coord_proto::v1::{
    CheckOp, CreateMode, CreateOp, CreateResult, DeleteOp, EventType, SetOp, SetResult,
};

use super::{NodeStat, Stamp, Tree, Undo, Znode, check_version, len_i32};
use crate::core::error::ZnodeError;
use crate::core::event::Event;
use crate::core::kind::NodeKind;
use crate::core::path;

/// True for the modes that append a sequence number to the path.
pub fn is_sequential(mode: CreateMode) -> bool {
    matches!(
        mode,
        CreateMode::PersistentSequential
            | CreateMode::EphemeralSequential
            | CreateMode::PersistentSequentialWithTtl
    )
}

impl Tree {
    /// Creates a node of `kind` (ZooKeeper `create`), returning the path
    /// actually created.
    pub fn create(
        &mut self,
        op: &CreateOp,
        kind: NodeKind,
        at: Stamp,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) -> Result<CreateResult, ZnodeError> {
        let sequential = is_sequential(op.mode());
        path::validate(&op.path, sequential)?;
        if op.path == "/" && !sequential {
            return Err(ZnodeError::NodeExists {
                path: op.path.clone(),
            });
        }
        let (parent_path, _) = path::split(&op.path);
        let parent = self.existing(parent_path)?;
        if parent.kind().is_ephemeral() {
            return Err(ZnodeError::NoChildrenForEphemerals {
                path: parent_path.to_owned(),
            });
        }
        let path = if sequential {
            format!("{}{:010}", op.path, parent.children_created())
        } else {
            op.path.clone()
        };
        let parent_path = path::split(&path).0.to_owned();
        let stat = NodeStat {
            czxid: at.zxid,
            mzxid: at.zxid,
            pzxid: at.zxid,
            ctime: at.time_ms,
            mtime: at.time_ms,
            ephemeral_owner: kind.owner(),
            ..NodeStat::default()
        };
        let node = Znode {
            data: Box::from(&op.data[..]),
            stat,
        };
        if !self.insert_absent(&path, node) {
            return Err(ZnodeError::NodeExists { path });
        }
        // One more in both `cversion` and `num_children`: the parent's count
        // of children ever created (half their sum) goes up by one.
        let parent_stat = self.update(&parent_path, |stat| {
            let before = *stat;
            stat.cversion = stat.cversion.wrapping_add(1);
            stat.pzxid = at.zxid;
            stat.num_children += 1;
            before
        });
        undo.push(Undo::Created {
            path: path.clone(),
            parent_stat,
        });
        events.push(Event::new(EventType::NodeCreated, path.clone()));
        events.push(Event::new(EventType::NodeChildrenChanged, parent_path));
        Ok(CreateResult {
            path,
            stat: Some(stat.with_length(len_i32(&op.data))),
        })
    }

    /// Replaces a node's data if its version matches (ZooKeeper `setData`).
    pub fn set(
        &mut self,
        op: &SetOp,
        at: Stamp,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) -> Result<SetResult, ZnodeError> {
        path::validate(&op.path, false)?;
        let node = self.existing(&op.path)?;
        check_version(&op.path, op.version, node.stat.version)?;
        let data_length = len_i32(&op.data);
        let ((before, after), old) = self.update_data(&op.path, Box::from(&op.data[..]), |stat| {
            let before = *stat;
            stat.version = stat.version.wrapping_add(1);
            stat.mzxid = at.zxid;
            stat.mtime = at.time_ms;
            (before, *stat)
        });
        // The old data moves into the undo record instead of being copied.
        undo.push(Undo::Updated {
            path: op.path.clone(),
            data: old,
            stat: before,
        });
        events.push(Event::new(EventType::NodeDataChanged, op.path.clone()));
        Ok(SetResult {
            stat: Some(after.with_length(data_length)),
        })
    }

    /// Deletes a childless node if its version matches (ZooKeeper `delete`).
    pub fn delete(
        &mut self,
        op: &DeleteOp,
        at: Stamp,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) -> Result<(), ZnodeError> {
        path::validate(&op.path, false)?;
        if op.path == "/" {
            return Err(ZnodeError::BadArguments {
                reason: "the root znode cannot be deleted".to_owned(),
            });
        }
        let node = self.existing(&op.path)?;
        check_version(&op.path, op.version, node.stat.version)?;
        if node.has_children() {
            return Err(ZnodeError::NotEmpty {
                path: op.path.clone(),
            });
        }
        self.delete_node(&op.path, at, undo, events);
        Ok(())
    }

    /// Deletes an existing, childless, non-root node without further checks:
    /// lease revocation, TTL expiry and container cleanup, after their own checks.
    pub fn delete_node(
        &mut self,
        path: &str,
        at: Stamp,
        undo: &mut Vec<Undo>,
        events: &mut Vec<Event>,
    ) {
        let parent_path = path::split(path).0.to_owned();
        let node = self.remove(path);
        assert!(
            !node.has_children(),
            "tree invariant: {path} deleted with children"
        );
        let parent_stat = self.update(&parent_path, |stat| {
            let before = *stat;
            stat.cversion = stat.cversion.wrapping_add(1);
            stat.pzxid = at.zxid;
            stat.num_children -= 1;
            before
        });
        undo.push(Undo::Deleted {
            path: path.to_owned(),
            node: Box::new(node),
            parent_stat,
        });
        events.push(Event::new(EventType::NodeDeleted, path));
        events.push(Event::new(EventType::NodeChildrenChanged, parent_path));
    }

    /// Succeeds if the node exists with the expected version (multi's `check`).
    pub fn check(&self, op: &CheckOp) -> Result<(), ZnodeError> {
        path::validate(&op.path, false)?;
        let node = self.existing(&op.path)?;
        check_version(&op.path, op.version, node.stat.version)
    }
}
