//! A fault-injecting TCP proxy for one directed peer link (member A dialing
//! member B). Cutting it makes traffic vanish silently, as in a real network
//! partition: open connections stop forwarding (nothing is closed, so peers
//! notice only through timeouts), new connections are accepted but never
//! forwarded. Healing closes the stalled connections; peers then reconnect.

use std::sync::Arc;

use tokio::io::copy_bidirectional;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// One directed link's proxy, listening on a free loopback port.
#[derive(Debug, Clone)]
pub struct Proxy {
    addr: String,
    cut: Arc<watch::Sender<bool>>,
}

impl Proxy {
    /// Starts forwarding connections on a fresh loopback port to `target`.
    /// Runs on the current tokio runtime.
    pub async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let (cut, _) = watch::channel(false);
        let cut = Arc::new(cut);
        let state = Arc::clone(&cut);
        tokio::spawn(async move {
            while let Ok((conn, _)) = listener.accept().await {
                let _ = conn.set_nodelay(true);
                tokio::spawn(forward(conn, target.clone(), state.subscribe()));
            }
        });
        Proxy { addr, cut }
    }

    /// The address to dial instead of the target.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// Stops forwarding (idempotent).
    pub fn cut(&self) {
        self.cut.send_replace(true);
    }

    /// Forwards again (idempotent).
    pub fn heal(&self) {
        self.cut.send_replace(false);
    }

    /// True while cut.
    pub fn is_cut(&self) -> bool {
        *self.cut.borrow()
    }
}

async fn forward(mut conn: TcpStream, target: String, mut cut: watch::Receiver<bool>) {
    if *cut.borrow() {
        // Accepted but silent until the partition heals, then dropped.
        let _ = cut.wait_for(|c| !*c).await;
        return;
    }
    let Ok(mut upstream) = TcpStream::connect(&target).await else {
        return;
    };
    let _ = upstream.set_nodelay(true);
    let mut watcher = cut.clone();
    let cut_now = async move {
        let _ = watcher.wait_for(|c| *c).await;
    };
    tokio::select! {
        _ = copy_bidirectional(&mut conn, &mut upstream) => {}
        () = cut_now => {
            // Blackholed: hold both sockets, forward nothing, until healed.
            let _ = cut.wait_for(|c| !*c).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    async fn echo_server() -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr").to_string();
        tokio::spawn(async move {
            while let Ok((mut s, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 64];
                    while let Ok(n) = s.read(&mut buf).await {
                        if n == 0 || s.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    async fn echo(stream: &mut TcpStream) -> Option<u8> {
        stream.write_all(b"x").await.ok()?;
        let mut b = [0u8; 1];
        tokio::time::timeout(Duration::from_millis(200), stream.read_exact(&mut b))
            .await
            .ok()?
            .ok()?;
        Some(b[0])
    }

    #[tokio::test]
    async fn forwards_until_cut_and_after_heal() {
        let proxy = Proxy::start(echo_server().await).await;
        let mut s = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(echo(&mut s).await, Some(b'x'));
        proxy.cut();
        assert!(proxy.is_cut());
        assert_eq!(echo(&mut s).await, None, "cut links forward nothing");
        let mut during = TcpStream::connect(proxy.addr())
            .await
            .expect("accepted while cut");
        assert_eq!(echo(&mut during).await, None);
        proxy.heal();
        let mut after = TcpStream::connect(proxy.addr()).await.expect("connect");
        assert_eq!(echo(&mut after).await, Some(b'x'));
    }
}
