//! Snapshot and restore of the state machine. The format is the
//! `coord.raftlog.StateSnapshot` protobuf: nodes sorted by path (so parents
//! come before their children), clients sorted by id, so equal states encode to
//! equal bytes.

use prost::Message;
use prost::encoding::{self, DecodeContext, WireType};

use coord_proto::raftlog::{SnapshotLease, SnapshotNode, StateSnapshot};

use super::dedup::DedupTable;
use super::error::ZnodeError;
use super::state::StateMachine;
use super::tree::{Tree, Znode};

/// Version of the snapshot format written by this build.
pub const FORMAT: u32 = 1;

/// `StateSnapshot.nodes`.
const NODES_TAG: u32 = 3;

/// Encoded length of the `SnapshotNode` of `node` at `path` (without its key
/// and length prefix); [`encode_node`] writes exactly this many bytes.
fn node_len(path: &str, node: &Znode) -> usize {
    let mut len = bytes_field_len(1, path.as_bytes())
        + bytes_field_len(2, &node.data)
        + encoding::message::encoded_len(3, &node.full_stat());
    let created = node.children_created();
    if created != 0 {
        len += encoding::uint64::encoded_len(4, &created);
    }
    len
}

/// Writes the fields of `SnapshotNode { path, data, stat, child_seq }` as
/// prost would, without building one. `child_seq` is derived from the stat
/// (and ignored when restoring) but still written, so that a member of the
/// previous version that receives this snapshot numbers sequential nodes as
/// the others do.
fn encode_node(path: &str, node: &Znode, buf: &mut Vec<u8>) {
    encode_bytes_field(1, path.as_bytes(), buf);
    encode_bytes_field(2, &node.data, buf);
    encoding::message::encode(3, &node.full_stat(), buf);
    let created = node.children_created();
    if created != 0 {
        encoding::uint64::encode(4, &created, buf);
    }
}

/// Encoded length of a proto3 `string` or `bytes` field (absent when empty).
fn bytes_field_len(tag: u32, value: &[u8]) -> usize {
    if value.is_empty() {
        return 0;
    }
    encoding::key_len(tag) + encoding::encoded_len_varint(value.len() as u64) + value.len()
}

/// Writes a proto3 `string` or `bytes` field (nothing when empty).
fn encode_bytes_field(tag: u32, value: &[u8], buf: &mut Vec<u8>) {
    if value.is_empty() {
        return;
    }
    encoding::encode_key(tag, WireType::LengthDelimited, buf);
    encoding::encode_varint(value.len() as u64, buf);
    buf.extend_from_slice(value);
}

/// Decodes a `StateSnapshot`, its nodes straight into the list the tree is
/// built from and every other field into the returned message. Decoding the
/// whole message would grow a list of a million decoded nodes by doubling
/// (copying it each time) and then build a second list from it.
fn decode_nodes_apart(
    bytes: &[u8],
) -> Result<(StateSnapshot, Vec<(String, Znode)>), prost::DecodeError> {
    // First pass: count the nodes, gather the other fields' bytes.
    let mut count = 0;
    let mut others = Vec::new();
    let mut buf = bytes;
    while !buf.is_empty() {
        let field = buf;
        let (tag, wire_type) = encoding::decode_key(&mut buf)?;
        encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
        if tag == NODES_TAG {
            count += 1;
        } else {
            others.extend_from_slice(&field[..field.len() - buf.len()]);
        }
    }
    // Second pass: the nodes, in order.
    let mut nodes = Vec::with_capacity(count);
    let mut buf = bytes;
    while !buf.is_empty() {
        let (tag, wire_type) = encoding::decode_key(&mut buf)?;
        if tag != NODES_TAG {
            encoding::skip_field(wire_type, tag, &mut buf, DecodeContext::default())?;
            continue;
        }
        let mut node = SnapshotNode::default();
        encoding::message::merge(wire_type, &mut node, &mut buf, DecodeContext::default())?;
        // Decoded from a slice, the data owns an allocation of its exact
        // size, which the boxed slice takes over without a copy.
        let data = Vec::from(node.data).into_boxed_slice();
        let restored = Znode::restored(data, &node.stat.unwrap_or_default());
        nodes.push((node.path, restored));
    }
    Ok((StateSnapshot::decode(&others[..])?, nodes))
}

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
    /// Encodes the whole state at its applied index, byte for byte what
    /// prost encodes for the equivalent [`StateSnapshot`]. The nodes are
    /// written straight from the tree into a buffer of the exact size: building
    /// the message first would copy every path (a million small allocations
    /// the allocator keeps after they are freed) and double the memory held
    /// while the snapshot is written.
    pub fn snapshot(&self) -> Vec<u8> {
        let rest = StateSnapshot {
            format: FORMAT,
            applied_index: self.applied,
            nodes: Vec::new(),
            clients: self.dedup.to_snapshot(),
            leases: self
                .leases
                .iter()
                .map(|(&id, &ttl_ms)| SnapshotLease { id, ttl_ms })
                .collect(),
        };
        let nodes_len: usize = self
            .tree
            .sorted_nodes()
            .map(|(path, node)| {
                let len = node_len(path, node);
                encoding::key_len(NODES_TAG) + encoding::encoded_len_varint(len as u64) + len
            })
            .sum();
        let mut buf = Vec::with_capacity(rest.encoded_len() + nodes_len);
        // Fields in tag order, as prost writes them: format and applied index,
        // the nodes, then clients and leases.
        if rest.format != 0 {
            encoding::uint32::encode(1, &rest.format, &mut buf);
        }
        if rest.applied_index != 0 {
            encoding::uint64::encode(2, &rest.applied_index, &mut buf);
        }
        for (path, node) in self.tree.sorted_nodes() {
            encoding::encode_key(NODES_TAG, WireType::LengthDelimited, &mut buf);
            encoding::encode_varint(node_len(path, node) as u64, &mut buf);
            encode_node(path, node, &mut buf);
        }
        encoding::message::encode_repeated(4, &rest.clients, &mut buf);
        encoding::message::encode_repeated(5, &rest.leases, &mut buf);
        buf
    }

    /// Rebuilds the state encoded by [`StateMachine::snapshot`].
    pub fn restore(bytes: &[u8], max_clients: usize) -> Result<Self, SnapshotError> {
        Self::from_decoded(decode_nodes_apart(bytes)?, max_clients)
    }

    /// [`StateMachine::restore`] for a caller that gives the snapshot up: its
    /// bytes are freed once decoded, before the tree is built, so that a
    /// restarting member never holds the encoded snapshot, its decoded nodes
    /// and the tree all at once.
    pub fn restore_owned<B: AsRef<[u8]>>(
        bytes: B,
        max_clients: usize,
    ) -> Result<Self, SnapshotError> {
        let decoded = decode_nodes_apart(bytes.as_ref())?;
        drop(bytes);
        Self::from_decoded(decoded, max_clients)
    }

    fn from_decoded(
        (snap, nodes): (StateSnapshot, Vec<(String, Znode)>),
        max_clients: usize,
    ) -> Result<Self, SnapshotError> {
        if snap.format != FORMAT {
            return Err(SnapshotError::Format { found: snap.format });
        }
        let tree = Tree::from_sorted(nodes)?;
        Ok(Self {
            tree,
            leases: snap.leases.into_iter().map(|l| (l.id, l.ttl_ms)).collect(),
            dedup: DedupTable::from_snapshot(snap.clients, max_clients),
            applied: snap.applied_index,
        })
    }
}
