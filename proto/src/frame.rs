//! Length-prefixed prost frames over a byte stream: the framing of coord's
//! connections that do not speak gRPC (members' Raft connections, the
//! unary-call protocol, framed watch streams). A connection starts with an 8-byte magic naming the
//! protocol; each frame is a 4-byte big-endian length and one prost message.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};

/// Why a frame could not be read.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    /// The socket failed or closed in the middle of a frame.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
    /// The connection did not start with the expected magic.
    #[error("not a connection of this protocol (bad magic)")]
    BadMagic,
    /// A frame over the reader's limit.
    #[error("frame of {0} bytes is over the limit")]
    TooLarge(usize),
    /// A frame that does not decode as the expected message.
    #[error("undecodable frame: {0}")]
    Decode(#[from] prost::DecodeError),
}

/// Appends one frame holding `msg` to `out`.
pub fn encode_frame(msg: &impl prost::Message, out: &mut BytesMut) {
    let len = msg.encoded_len();
    out.reserve(4 + len);
    out.put_u32(len as u32);
    msg.encode_raw(out);
}

/// Takes the body of the first frame out of `buf` when `buf` holds all of it,
/// for readers that gather a connection's bytes themselves; `None` leaves a
/// partial frame where it is.
pub fn split_frame(buf: &mut BytesMut, max: usize) -> Result<Option<Bytes>, FrameError> {
    let Some(header) = buf.get(..4) else {
        return Ok(None);
    };
    let len = u32::from_be_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    if buf.len() < 4 + len {
        buf.reserve(4 + len - buf.len());
        return Ok(None);
    }
    buf.advance(4);
    Ok(Some(buf.split_to(len).freeze()))
}

/// Reads the connection's first bytes and checks them against `magic`.
pub async fn read_magic(
    reader: &mut (impl AsyncRead + Unpin),
    magic: &[u8; 8],
) -> Result<(), FrameError> {
    let mut first = [0u8; 8];
    reader.read_exact(&mut first).await?;
    if &first == magic {
        Ok(())
    } else {
        Err(FrameError::BadMagic)
    }
}

/// Reads the next frame, at most `max` bytes; `None` when the other side
/// closed the connection between frames.
pub async fn read_frame<M: prost::Message + Default>(
    reader: &mut (impl AsyncRead + Unpin),
    max: usize,
) -> Result<Option<M>, FrameError> {
    let len = match reader.read_u32().await {
        Ok(len) => len as usize,
        Err(err) if err.kind() == std::io::ErrorKind::UnexpectedEof => return Ok(None),
        Err(err) => return Err(err.into()),
    };
    if len > max {
        return Err(FrameError::TooLarge(len));
    }
    let mut body = BytesMut::zeroed(len);
    reader.read_exact(&mut body).await?;
    Ok(Some(M::decode(body.freeze())?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::v1::{UnaryCall, UnaryMethod};
    use prost::Message as _;

    fn call(id: u64, body: &'static [u8]) -> UnaryCall {
        UnaryCall {
            id,
            method: UnaryMethod::Get as i32,
            body: bytes::Bytes::from_static(body),
        }
    }

    #[tokio::test]
    async fn frames_read_back_as_written_and_end_cleanly() {
        let mut wire = BytesMut::from(&b"magic-01"[..]);
        encode_frame(&call(1, b"a"), &mut wire);
        encode_frame(&call(2, b""), &mut wire);
        let mut reader = &wire[..];
        read_magic(&mut reader, b"magic-01").await.expect("magic");
        for expected in [call(1, b"a"), call(2, b"")] {
            let got: Option<UnaryCall> = read_frame(&mut reader, 1 << 10).await.expect("frame");
            assert_eq!(got, Some(expected));
        }
        let end: Option<UnaryCall> = read_frame(&mut reader, 1 << 10).await.expect("end");
        assert_eq!(end, None);
    }

    #[tokio::test]
    async fn a_cut_frame_an_oversized_frame_and_a_foreign_connection_are_errors() {
        let mut wire = BytesMut::new();
        encode_frame(&call(1, b"abcdef"), &mut wire);
        let cut = &wire[..wire.len() - 1];
        let read: Result<Option<UnaryCall>, _> = read_frame(&mut &cut[..], 1 << 10).await;
        assert!(matches!(read, Err(FrameError::Io(_))));
        let read: Result<Option<UnaryCall>, _> = read_frame(&mut &wire[..], 4).await;
        assert!(matches!(read, Err(FrameError::TooLarge(_))));
        let preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
        assert!(matches!(
            read_magic(&mut &preface[..], b"magic-01").await,
            Err(FrameError::BadMagic)
        ));
    }

    #[test]
    fn frames_split_out_of_bytes_gathered_piece_by_piece() {
        let mut wire = BytesMut::new();
        encode_frame(&call(1, b"abc"), &mut wire);
        encode_frame(&call(2, b""), &mut wire);
        let mut gathered = BytesMut::new();
        let mut bodies = Vec::new();
        for byte in wire.iter() {
            gathered.put_u8(*byte);
            while let Some(body) = split_frame(&mut gathered, 1 << 10).expect("fits") {
                bodies.push(UnaryCall::decode(body).expect("decodes"));
            }
        }
        assert_eq!(bodies, vec![call(1, b"abc"), call(2, b"")]);
        assert!(gathered.is_empty());
        let mut oversized = BytesMut::new();
        encode_frame(&call(3, b"abcdef"), &mut oversized);
        assert!(matches!(
            split_frame(&mut oversized, 4),
            Err(FrameError::TooLarge(_))
        ));
    }
}
