//! The demo service: a TCP server that answers each line it reads with its
//! instance id and the line (`web-7001 hello #3`), and the caller's side of
//! one request. One line per request keeps the demo's traffic real (a TCP
//! connection per request, to the instance the balancer chose) and its
//! answers self-describing (who answered).

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;

/// Connections served at once; more wait in the accept queue (a limit on
/// everything, as mini-redis does).
const MAX_CONNECTIONS: usize = 256;
/// Longest line a request may be.
const MAX_LINE: usize = 4096;

/// Answers connections on `listener` as instance `id` until `shutdown`
/// resolves.
pub async fn serve(listener: TcpListener, id: String, shutdown: impl Future<Output = ()>) {
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    tokio::pin!(shutdown);
    loop {
        let Ok(permit) = Arc::clone(&permits).acquire_owned().await else {
            return;
        };
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let id = id.clone();
                tokio::spawn(async move {
                    if let Err(err) = answer(stream, &id).await {
                        tracing::debug!(%peer, error = %err, "connection ended with an error");
                    }
                    drop(permit);
                });
            }
            Err(err) => {
                // Out of file descriptors, say: back off instead of spinning.
                tracing::warn!(error = %err, "accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

/// Answers every line of one connection; closes it on a line longer than
/// [`MAX_LINE`] bytes.
async fn answer(stream: TcpStream, id: &str) -> std::io::Result<()> {
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::new(read);
    loop {
        let mut line = String::new();
        let n = (&mut reader)
            .take(MAX_LINE as u64)
            .read_line(&mut line)
            .await?;
        if n == 0 {
            return Ok(());
        }
        let Some(line) = line.strip_suffix('\n') else {
            return Ok(()); // Too long, or cut short: nothing sensible to answer.
        };
        write.write_all(format!("{id} {line}\n").as_bytes()).await?;
    }
}

/// Sends `message` to the instance at `address` and returns the id of the
/// instance that answered and its reply, within `timeout`.
pub async fn request(
    address: &str,
    message: &str,
    timeout: Duration,
) -> Result<(String, String), String> {
    let exchange = async {
        let mut stream = TcpStream::connect(address).await?;
        stream.write_all(format!("{message}\n").as_bytes()).await?;
        let mut reply = String::new();
        BufReader::new(&mut stream).read_line(&mut reply).await?;
        Ok::<_, std::io::Error>(reply)
    };
    let reply = match tokio::time::timeout(timeout, exchange).await {
        Ok(Ok(reply)) => reply,
        Ok(Err(err)) => return Err(err.to_string()),
        Err(_) => return Err(format!("no answer within {timeout:?}")),
    };
    match reply.trim_end().split_once(' ') {
        Some((id, rest)) => Ok((id.to_owned(), rest.to_owned())),
        None => Err(format!("malformed reply {reply:?}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn answers_each_line_with_the_instance_id() {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let address = listener.local_addr().expect("address").to_string();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = tokio::spawn(serve(listener, "web-1".into(), async {
            let _ = stopped.await;
        }));
        let reply = request(&address, "hello #1", Duration::from_secs(5)).await;
        assert_eq!(reply, Ok(("web-1".into(), "hello #1".into())));
        let _ = stop.send(());
        server.await.expect("server task");
        assert!(
            request(&address, "x", Duration::from_secs(5))
                .await
                .is_err()
        );
    }
}
