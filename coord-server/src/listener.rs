//! Ports shared between gRPC and coord's plain-TCP protocols (the members'
//! Raft connections on the peer port, the unary-call protocol and framed
//! watch streams on the client port): each accepted socket is routed by its first byte. The plain-TCP
//! protocols open with a magic whose first byte is zero; an HTTP/2 client's
//! preface starts with `P`. One port per role keeps the command line and
//! firewall rules as they were.

use std::future::Future;
use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};
use tokio_stream::wrappers::ReceiverStream;
use tracing::warn;

/// Accepted gRPC connections waiting for the gRPC server to take them.
const PENDING_GRPC: usize = 64;

/// Accepts connections on `listener` until `stopped` turns true. Sockets
/// that start with a zero byte go to `serve` (which is dropped when `stopped`
/// turns true); the rest are returned for the gRPC server.
pub fn split_by_protocol<F, Fut>(
    listener: TcpListener,
    stopped: watch::Receiver<bool>,
    serve: F,
) -> ReceiverStream<io::Result<TcpStream>>
where
    F: Fn(TcpStream) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let (grpc, incoming) = mpsc::channel(PENDING_GRPC);
    let serve = Arc::new(serve);
    tokio::spawn(async move {
        let mut stop = stopped.clone();
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                _ = stop.wait_for(|s| *s) => return,
            };
            match accepted {
                Ok((stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let task = route(stream, grpc.clone(), Arc::clone(&serve), stopped.clone());
                    tokio::spawn(task);
                }
                Err(err) => {
                    warn!(%err, "cannot accept a connection");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        }
    });
    ReceiverStream::new(incoming)
}

async fn route<F, Fut>(
    stream: TcpStream,
    grpc: mpsc::Sender<io::Result<TcpStream>>,
    serve: Arc<F>,
    mut stopped: watch::Receiver<bool>,
) where
    F: Fn(TcpStream) -> Fut,
    Fut: Future<Output = ()>,
{
    let mut first = [0u8; 1];
    let peeked = tokio::select! {
        peeked = stream.peek(&mut first) => peeked,
        _ = stopped.wait_for(|s| *s) => return,
    };
    match peeked {
        Ok(1) if first[0] == 0 => {
            tokio::select! {
                () = serve(stream) => {}
                _ = stopped.wait_for(|s| *s) => {}
            }
        }
        Ok(1) => {
            let _ = grpc.send(Ok(stream)).await;
        }
        _ => {}
    }
}
