//! The inbound side of Raft connections: accepted on the peer port, checked
//! and handed to the driver thread, which reads them itself.

use coord_proto::frame::FrameError;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio_stream::wrappers::ReceiverStream;
use tracing::debug;

use super::wire::{self, WireError};
use crate::driver::DriverHandle;
use crate::listener::split_by_protocol;

/// Accepts peer connections until `stopped` turns true: Raft connections are
/// handed to the driver thread, which reads them (`driver::inbox`); the rest
/// are returned for the gRPC peer server.
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
                Ok(()) => debug!(?peer, "raft connection handed to the driver"),
                Err(err) => debug!(?peer, %err, "raft connection dropped"),
            }
        }
    })
}

/// Checks a Raft connection's magic and hands the connection to the driver
/// thread, which reads its frames and writes its keep-alives from then on.
pub async fn serve_raft(mut stream: TcpStream, driver: &DriverHandle) -> Result<(), WireError> {
    wire::read_magic(&mut stream).await?;
    let stream = stream.into_std().map_err(FrameError::Io)?;
    // A stopped driver drops the connection, which closes it.
    let _ = driver.add_peer_connection(stream);
    Ok(())
}
