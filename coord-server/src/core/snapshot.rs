//! Snapshot and restore of the state machine. The format is the
//! `coord.raftlog.StateSnapshot` protobuf: nodes sorted by path (so parents
//! come before their children), clients sorted by id, so equal states encode to
//! equal bytes.

use std::convert::Infallible;
use std::io::{BufRead, Read, Write};
use std::sync::mpsc::{self, SyncSender};

use prost::Message;
use prost::encoding::{self, WireType};

use coord_proto::raftlog::{SnapshotLease, SnapshotNode, StateSnapshot};

use super::dedup::DedupTable;
use super::error::ZnodeError;
use super::state::StateMachine;
use super::tree::{CheckedNode, NodeChecker, TreeBuilder, Znode};

/// Version of the snapshot format written by this build.
pub const FORMAT: u32 = 1;

/// `StateSnapshot.nodes`.
const NODES_TAG: u32 = 3;

/// Encoded bytes gathered before they are handed on (to a file's buffer).
const EMIT_BYTES: usize = 64 << 10;

/// Nodes a restore's decoding thread hands to the building one at a time.
const BATCH_NODES: usize = 1024;

/// Batches in flight between the two at most: bounds what a restore holds
/// beyond the tree when decoding runs ahead.
const BATCHES_IN_FLIGHT: usize = 8;

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

/// Reads one varint; `None` at the end of the input before its first byte.
fn read_varint(reader: &mut impl BufRead) -> Result<Option<u64>, SnapshotError> {
    let mut value = 0_u64;
    for shift in (0..64).step_by(7) {
        let byte = match reader.fill_buf()?.first() {
            Some(&byte) => byte,
            None if shift == 0 => return Ok(None),
            None => return Err(SnapshotError::Truncated),
        };
        reader.consume(1);
        value |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Ok(Some(value));
        }
    }
    Err(SnapshotError::Malformed("a varint longer than 64 bits"))
}

/// Reads exactly `len` bytes into `buf` (replacing what it held), growing it
/// only as bytes arrive: a corrupt length fails as truncated instead of
/// allocating what it claims.
fn read_field(reader: &mut impl BufRead, len: u64, buf: &mut Vec<u8>) -> Result<(), SnapshotError> {
    buf.clear();
    let read = reader.take(len).read_to_end(buf)?;
    if read as u64 == len {
        Ok(())
    } else {
        Err(SnapshotError::Truncated)
    }
}

/// Decodes a `StateSnapshot` from `reader` into `tree`, on two threads: a
/// scoped thread reads, decodes and checks the nodes ([`decode_nodes`]) and
/// hands them over in batches while this one inserts them into the tree
/// (inserting, a third of a restore's time, no longer waits for decoding; the
/// tree is the same as one thread builds). Returns every field but the
/// nodes. A failure on either side stops both.
fn decode_into(
    reader: &mut (impl BufRead + Send),
    tree: &mut TreeBuilder,
) -> Result<StateSnapshot, SnapshotError> {
    let (batches, received) = mpsc::sync_channel(BATCHES_IN_FLIGHT);
    std::thread::scope(|scope| {
        let decoder = std::thread::Builder::new()
            .name("snapshot-decode".to_owned())
            .spawn_scoped(scope, move || decode_nodes(reader, &batches))?;
        let mut built = Ok(());
        // Leaving the loop drops the receiver, which stops the decoder.
        'batches: for batch in received {
            for node in batch {
                if let Err(err) = tree.push_checked(node) {
                    built = Err(err);
                    break 'batches;
                }
            }
        }
        let decoded = decoder
            .join()
            .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        built?;
        decoded
    })
}

/// Reads a `StateSnapshot` from `reader` field by field: each node is checked
/// ([`NodeChecker`]) and sent on `batches`; every other field is gathered, as
/// encoded, into the returned message. Stops early, returning nothing, once
/// the receiving side is gone (it failed and reports why).
fn decode_nodes(
    reader: &mut impl BufRead,
    batches: &SyncSender<Vec<CheckedNode>>,
) -> Result<StateSnapshot, SnapshotError> {
    let mut checker = NodeChecker::default();
    let mut batch = Vec::with_capacity(BATCH_NODES);
    let mut others = Vec::new();
    let mut field = Vec::new();
    while let Some(key) = read_varint(reader)? {
        let (tag, wire_type) = (key >> 3, key & 7);
        let wire_type = WireType::try_from(wire_type)?;
        match wire_type {
            WireType::LengthDelimited => {
                let len = read_varint(reader)?.ok_or(SnapshotError::Truncated)?;
                read_field(reader, len, &mut field)?;
                if tag == u64::from(NODES_TAG) {
                    let node = SnapshotNode::decode(&field[..])?;
                    // Decoded from a slice, the data owns an allocation of
                    // its exact size, which the boxed slice takes over.
                    let data = Vec::from(node.data).into_boxed_slice();
                    batch.push(checker.check(
                        node.path,
                        Znode::restored(data, &node.stat.unwrap_or_default()),
                    )?);
                    if batch.len() == BATCH_NODES {
                        let full = std::mem::replace(&mut batch, Vec::with_capacity(BATCH_NODES));
                        if batches.send(full).is_err() {
                            return Ok(StateSnapshot::default());
                        }
                    }
                    continue;
                }
                encoding::encode_varint(key, &mut others);
                encoding::encode_varint(len, &mut others);
                others.extend_from_slice(&field);
            }
            WireType::Varint => {
                let value = read_varint(reader)?.ok_or(SnapshotError::Truncated)?;
                encoding::encode_varint(key, &mut others);
                encoding::encode_varint(value, &mut others);
            }
            WireType::SixtyFourBit | WireType::ThirtyTwoBit => {
                let len = if wire_type == WireType::SixtyFourBit {
                    8
                } else {
                    4
                };
                read_field(reader, len, &mut field)?;
                encoding::encode_varint(key, &mut others);
                others.extend_from_slice(&field);
            }
            WireType::StartGroup | WireType::EndGroup => {
                return Err(SnapshotError::Malformed("a group field"));
            }
        }
    }
    if !batch.is_empty() && batches.send(batch).is_err() {
        return Ok(StateSnapshot::default());
    }
    Ok(StateSnapshot::decode(&others[..])?)
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
    /// Wire data no snapshot holds.
    #[error("snapshot is malformed: {0}")]
    Malformed(&'static str),
    /// The input ends in the middle of a field.
    #[error("snapshot is truncated")]
    Truncated,
    /// The snapshot's file could not be read.
    #[error("snapshot could not be read: {0}")]
    Read(#[from] std::io::Error),
}

impl StateMachine {
    /// Encodes the whole state at its applied index, byte for byte what
    /// prost encodes for the equivalent [`StateSnapshot`], into a buffer of
    /// the exact size. The nodes are written straight from the tree: building
    /// the message first would copy every path (a million small allocations
    /// the allocator keeps after they are freed) and double the memory held
    /// while the snapshot is written.
    pub fn snapshot(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.snapshot_len());
        let Ok(()) = self.encode_snapshot(|bytes| {
            out.extend_from_slice(bytes);
            Ok::<(), Infallible>(())
        });
        out
    }

    /// [`StateMachine::snapshot`] written to `out` as it is encoded, a node
    /// at a time, so that a snapshot written to a file is never held whole in
    /// memory.
    pub fn write_snapshot(&self, out: &mut impl Write) -> std::io::Result<()> {
        self.encode_snapshot(|bytes| out.write_all(bytes))
    }

    /// The encoded snapshot's size.
    fn snapshot_len(&self) -> usize {
        let nodes_len: usize = self
            .tree
            .sorted_nodes()
            .map(|(path, node)| {
                let len = node_len(path, node);
                encoding::key_len(NODES_TAG) + encoding::encoded_len_varint(len as u64) + len
            })
            .sum();
        self.snapshot_rest().encoded_len() + nodes_len
    }

    /// The snapshot's fields but the nodes.
    fn snapshot_rest(&self) -> StateSnapshot {
        StateSnapshot {
            format: FORMAT,
            applied_index: self.applied,
            nodes: Vec::new(),
            clients: self.dedup.to_snapshot(),
            leases: self
                .leases
                .iter()
                .map(|(&id, &ttl_ms)| SnapshotLease { id, ttl_ms })
                .collect(),
        }
    }

    /// Hands the encoded snapshot to `emit` in pieces, in order: the fields in
    /// tag order, as prost writes them (format and applied index, the nodes one
    /// by one, then clients and leases).
    fn encode_snapshot<E>(&self, mut emit: impl FnMut(&[u8]) -> Result<(), E>) -> Result<(), E> {
        let rest = self.snapshot_rest();
        let mut buf = Vec::new();
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
            if buf.len() >= EMIT_BYTES {
                emit(&buf)?;
                buf.clear();
            }
        }
        encoding::message::encode_repeated(4, &rest.clients, &mut buf);
        encoding::message::encode_repeated(5, &rest.leases, &mut buf);
        emit(&buf)
    }

    /// Rebuilds the state encoded by [`StateMachine::snapshot`].
    pub fn restore(bytes: &[u8], max_clients: usize) -> Result<Self, SnapshotError> {
        Self::restore_from(&mut &bytes[..], max_clients)
    }

    /// [`StateMachine::restore`] from a reader of the snapshot (its file): the
    /// nodes go into the tree as they are read, so a restarting member holds
    /// the tree and a few batches of nodes, never the whole snapshot or a
    /// list of its nodes. Decoding runs on a thread of its own
    /// ([`decode_into`]).
    pub fn restore_from(
        reader: &mut (impl BufRead + Send),
        max_clients: usize,
    ) -> Result<Self, SnapshotError> {
        let mut tree = TreeBuilder::new();
        let snap = decode_into(reader, &mut tree)?;
        if snap.format != FORMAT {
            return Err(SnapshotError::Format { found: snap.format });
        }
        let tree = tree.finish()?;
        Ok(Self {
            tree,
            leases: snap.leases.into_iter().map(|l| (l.id, l.ttl_ms)).collect(),
            dedup: DedupTable::from_snapshot(snap.clients, max_clients),
            applied: snap.applied_index,
        })
    }
}
