//! Snapshot and restore of the state machine. The format is the
//! `coord.raftlog.StateSnapshot` protobuf: nodes sorted by path (so parents
//! come before their children), clients sorted by id, so equal states encode to
//! equal bytes.

use prost::Message;

use coord_proto::raftlog::{SnapshotLease, SnapshotNode, StateSnapshot};

use super::dedup::DedupTable;
use super::error::ZnodeError;
use super::state::StateMachine;
use super::tree::{Tree, Znode};

/// Version of the snapshot format written by this build.
pub const FORMAT: u32 = 1;

/// Why a snapshot could not be restored.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    /// The bytes are not a `StateSnapshot`.
    #[error("snapshot does not decode: {0}")]
    Decode(#[from] prost::DecodeError),
    /// Written by an incompatible version.
    #[error("snapshot format {found} is not supported (this build reads {FORMAT})")]
    Format {
        /// The format found.
        found: u32,
    },
    /// The node list does not form a tree.
    #[error("snapshot holds an invalid tree: {0}")]
    Tree(#[from] ZnodeError),
}

impl StateMachine {
    /// Encodes the whole state at its applied index.
    pub fn snapshot(&self) -> Vec<u8> {
        let nodes = self
            .tree
            .sorted_nodes()
            .map(|(path, node)| SnapshotNode {
                path: path.clone(),
                data: node.data.clone(),
                stat: Some(node.stat),
                child_seq: node.child_seq,
            })
            .collect();
        StateSnapshot {
            format: FORMAT,
            applied_index: self.applied,
            nodes,
            clients: self.dedup.to_snapshot(),
            leases: self
                .leases
                .iter()
                .map(|(&id, &ttl_ms)| SnapshotLease { id, ttl_ms })
                .collect(),
        }
        .encode_to_vec()
    }

    /// Rebuilds the state encoded by [`StateMachine::snapshot`].
    pub fn restore(bytes: &[u8], max_clients: usize) -> Result<Self, SnapshotError> {
        let snap = StateSnapshot::decode(bytes)?;
        if snap.format != FORMAT {
            return Err(SnapshotError::Format { found: snap.format });
        }
        let nodes = snap
            .nodes
            .into_iter()
            .map(|node| {
                let restored =
                    Znode::restored(node.data, node.stat.unwrap_or_default(), node.child_seq);
                (node.path, restored)
            })
            .collect();
        let tree = Tree::from_sorted(nodes)?;
        Ok(Self {
            tree,
            leases: snap.leases.into_iter().map(|l| (l.id, l.ttl_ms)).collect(),
            dedup: DedupTable::from_snapshot(snap.clients, max_clients),
            applied: snap.applied_index,
        })
    }
}
