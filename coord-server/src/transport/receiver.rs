//! The inbound side of Raft connections: frames read into the driver while
//! keep-alive bytes go back to the sender.

use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::wire::{self, KEEPALIVE, KEEPALIVE_EVERY, WireError};
use crate::driver::{DriverHandle, Input};
use crate::listener::split_by_protocol;

/// Bytes read from a Raft connection at a time.
const READ_BUFFER_BYTES: usize = 256 << 10;

/// Accepts peer connections until `stopped` turns true: Raft connections are
/// served here, the rest are returned for the gRPC peer server.
pub fn accept_peers(
    listener: TcpListener,
    driver: DriverHandle,
    stopped: watch::Receiver<bool>,
) -> ReceiverStream<std::io::Result<TcpStream>> {
    split_by_protocol(listener, stopped, move |stream| {
        let driver = driver.clone();
        async move {
            let peer = stream.peer_addr().ok();
            match serve_raft(stream, &driver).await {
                Ok(()) => debug!(?peer, "raft connection closed"),
                Err(err) => debug!(?peer, %err, "raft connection dropped"),
            }
        }
    })
}

/// Reads frames from one Raft connection into the driver until the sender
/// closes it, writing keep-alive bytes meanwhile.
pub async fn serve_raft(stream: TcpStream, driver: &DriverHandle) -> Result<(), WireError> {
    let (reader, mut writer) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, reader);
    wire::read_magic(&mut reader).await?;
    let keepalive = tokio::spawn(async move {
        let mut every = tokio::time::interval(KEEPALIVE_EVERY);
        loop {
            every.tick().await;
            if writer.write_all(&[KEEPALIVE]).await.is_err() {
                return;
            }
        }
    });
    let read = async {
        while let Some(msgs) = wire::read_frame(&mut reader).await? {
            for msg in msgs {
                if driver.send(Input::Peer(Box::new(msg))).is_err() {
                    return Ok(());
                }
            }
        }
        Ok(())
    };
    let result = read.await;
    keepalive.abort();
    result
}
