//! coord's plain-TCP protocols on the client port, told apart by their
//! 8-byte magic: the unary-call protocol ([`super::unary`]) and the watch
//! stream over coord's framing ([`super::watch::serve_framed_watch`]).
//! gRPC connections never get here ([`crate::listener`] routes them by their
//! first byte).

use std::sync::Arc;

use coord_proto::frame::FrameError;
use coord_proto::{UNARY_MAGIC, WATCH_MAGIC};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::client::CoordService;
use super::unary::serve_unary;
use super::watch::serve_framed_watch;

/// Reads a plain-TCP connection's magic and serves the protocol it names; an
/// unknown magic ends the connection.
pub async fn serve_plain(
    mut stream: TcpStream,
    service: CoordService,
    max_request: usize,
) -> Result<(), FrameError> {
    let mut magic = [0u8; 8];
    stream.read_exact(&mut magic).await?;
    if &magic == UNARY_MAGIC {
        serve_unary(stream, service, max_request).await
    } else if &magic == WATCH_MAGIC {
        let shared = Arc::clone(service.driver.shared());
        serve_framed_watch(stream, shared, service.limits.watch_progress).await
    } else {
        Err(FrameError::BadMagic)
    }
}
