//! The format of a Raft connection between members: plain TCP instead of an
//! HTTP/2 stream, because per batch HTTP/2 cost CPU for nothing a one-way
//! stream of batches needs (docs/benchmarks.md).
//!
//! The sender opens the connection with [`MAGIC`], then writes frames
//! (`coord_proto::frame`) of one `RaftBatch` each. The receiver writes one
//! [`KEEPALIVE`] byte every [`KEEPALIVE_EVERY`] and nothing else, so a sender
//! that hears nothing for [`DEAD_AFTER`] knows the connection or the peer is
//! gone even when TCP does not say so (a partition, a stopped process). The
//! magic's first byte is zero, which no HTTP/2 client sends first, so Raft
//! connections share the peer port with the gRPC peer service.

use std::time::Duration;

use bytes::{Bytes, BytesMut};
use coord_proto::frame::{self, FrameError};
use coord_proto::peer::RaftBatch;
use prost::Message as _;
use raft::eraftpb::Message;
use tokio::io::AsyncRead;

use super::MAX_PEER_MESSAGE_BYTES;

/// First bytes of every Raft connection.
pub const MAGIC: &[u8; 8] = b"\0coordR1";
/// The byte a receiver writes to show it is alive.
pub const KEEPALIVE: u8 = 0;
/// How often a receiver writes [`KEEPALIVE`].
pub const KEEPALIVE_EVERY: Duration = Duration::from_millis(500);
/// Silence after which a sender gives the connection up. The same bound the
/// HTTP/2 transport had (1 s pings, 2 s timeout) and well under an election.
pub const DEAD_AFTER: Duration = Duration::from_secs(2);

/// Why a Raft connection could not be read.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The connection failed, or a frame was cut, oversized or undecodable.
    #[error("{0}")]
    Frame(#[from] FrameError),
    /// A batch entry that is not a raft-rs message.
    #[error("undecodable raft message: {0}")]
    Message(#[from] protobuf::ProtobufError),
}

/// Reads and checks [`MAGIC`].
pub async fn read_magic(reader: &mut (impl AsyncRead + Unpin)) -> Result<(), WireError> {
    Ok(frame::read_magic(reader, MAGIC).await?)
}

/// Reads the next frame's messages; `None` when the sender closed the
/// connection between frames. The driver gathers its connections' bytes
/// itself ([`take_frames`]); tests read what a sender wrote with this.
#[cfg(test)]
pub async fn read_frame(
    reader: &mut (impl AsyncRead + Unpin),
) -> Result<Option<Vec<Message>>, WireError> {
    let Some(batch) = frame::read_frame::<RaftBatch>(reader, MAX_PEER_MESSAGE_BYTES).await? else {
        return Ok(None);
    };
    let mut msgs = Vec::with_capacity(batch.msgs.len());
    decode_batch(&batch, &mut msgs)?;
    Ok(Some(msgs))
}

/// Decodes every frame complete in `buf` (bytes gathered from a Raft
/// connection after its magic) into `out`, leaving a partial one in `buf`.
pub fn take_frames(buf: &mut BytesMut, out: &mut Vec<Message>) -> Result<(), WireError> {
    while let Some(body) = frame::split_frame(buf, MAX_PEER_MESSAGE_BYTES)? {
        let batch = RaftBatch::decode(body).map_err(FrameError::from)?;
        decode_batch(&batch, out)?;
    }
    Ok(())
}

/// Decodes a batch's messages into `out`.
fn decode_batch(batch: &RaftBatch, out: &mut Vec<Message>) -> Result<(), WireError> {
    for bytes in &batch.msgs {
        out.push(decode_message(bytes)?);
    }
    Ok(())
}

/// Decodes one raft-rs message without copying its entries' data.
pub fn decode_message(bytes: &Bytes) -> Result<Message, protobuf::ProtobufError> {
    protobuf::Message::parse_from_carllerche_bytes(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::BytesMut;
    use coord_proto::frame::encode_frame;
    use raft::eraftpb::{Entry, MessageType};

    fn batch(payloads: &[&[u8]]) -> (RaftBatch, Vec<Message>) {
        let msgs: Vec<Message> = payloads
            .iter()
            .map(|p| {
                let mut msg = Message::default();
                msg.set_msg_type(MessageType::MsgAppend);
                msg.from = 1;
                msg.to = 2;
                msg.set_entries(
                    vec![Entry {
                        data: Bytes::copy_from_slice(p),
                        ..Entry::default()
                    }]
                    .into(),
                );
                msg
            })
            .collect();
        let encoded = msgs
            .iter()
            .map(|m| Bytes::from(protobuf::Message::write_to_bytes(m).expect("encodes")))
            .collect();
        (
            RaftBatch {
                from: 1,
                msgs: encoded,
            },
            msgs,
        )
    }

    #[tokio::test]
    async fn batches_read_back_as_their_messages() {
        let (first, first_msgs) = batch(&[b"a", b"bb"]);
        let (second, second_msgs) = batch(&[b"ccc"]);
        let mut wire = BytesMut::from(&MAGIC[..]);
        encode_frame(&first, &mut wire);
        encode_frame(&second, &mut wire);
        let mut reader = &wire[..];
        read_magic(&mut reader).await.expect("magic");
        assert_eq!(
            read_frame(&mut reader).await.expect("frame"),
            Some(first_msgs)
        );
        assert_eq!(
            read_frame(&mut reader).await.expect("frame"),
            Some(second_msgs)
        );
        assert_eq!(read_frame(&mut reader).await.expect("end"), None);
    }

    #[tokio::test]
    async fn a_batch_of_something_else_than_raft_messages_is_an_error() {
        let junk = RaftBatch {
            from: 1,
            msgs: vec![Bytes::from_static(&[0xff, 0xff, 0xff])],
        };
        let mut wire = BytesMut::new();
        encode_frame(&junk, &mut wire);
        assert!(matches!(
            read_frame(&mut &wire[..]).await,
            Err(WireError::Message(_))
        ));
    }
}
