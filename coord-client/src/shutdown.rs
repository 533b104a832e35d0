//! Waiting for Ctrl-C or SIGTERM, for programs that hold something in coord
//! (a session, a lock, a leadership) and must give it back when told to stop,
//! so that others need not wait for a TTL: coordctl's long-running commands
//! and the example apps.

use tokio::signal::unix::{Signal, SignalKind, signal};

/// Resolves on Ctrl-C (SIGINT) or SIGTERM. The handlers are installed when
/// this is called, not when the future is first polled: call it before
/// printing the line a supervisor waits for, so that a signal sent right
/// after that line is caught instead of killing the process with the default
/// action (and leaving its session to expire). Must be called inside a tokio
/// runtime.
pub fn interrupted() -> impl Future<Output = ()> + Send {
    let mut int = signal(SignalKind::interrupt()).ok();
    let mut term = signal(SignalKind::terminate()).ok();
    async move {
        tokio::select! {
            () = recv(int.as_mut()) => {}
            () = recv(term.as_mut()) => {}
        }
    }
}

/// Waits for one delivery of a signal; forever if its handler could not be
/// installed.
async fn recv(signal: Option<&mut Signal>) {
    match signal {
        Some(signal) => {
            signal.recv().await;
        }
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nix::sys::signal::{Signal, raise};

    use super::*;

    #[tokio::test]
    async fn a_signal_before_the_first_poll_is_not_lost() {
        let interrupted = interrupted();
        raise(Signal::SIGTERM).expect("raise");
        tokio::time::timeout(Duration::from_secs(5), interrupted)
            .await
            .expect("the SIGTERM raised before the wait ends it");
    }
}
