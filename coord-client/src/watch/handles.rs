//! The handles a caller holds for its watches. Both remove their watch from
//! the client (and the server) when dropped.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::{mpsc, oneshot};
use tokio_stream::Stream;

use crate::Error;
use crate::watch::mux::Command;
use crate::watch::registry::closed;
use crate::watch::{WatchEvent, WatchItem};

/// Sends a cancel for its watch when dropped, unless the watch already ended.
#[derive(Debug)]
struct CancelOnDrop {
    id: u64,
    commands: mpsc::UnboundedSender<Command>,
    armed: bool,
}

impl CancelOnDrop {
    /// Armed: dropping it cancels watch `id` through `commands`.
    fn new(id: u64, commands: mpsc::UnboundedSender<Command>) -> Self {
        Self {
            id,
            commands,
            armed: true,
        }
    }
}

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        if self.armed {
            let _ = self.commands.send(Command::Cancel(self.id));
        }
    }
}

/// A one-shot watch: a future resolving to its single event, or to an error
/// (`Compacted` if the member no longer had the events after the read the
/// watch was set by: re-read and watch again). Dropping it removes the watch.
#[derive(Debug)]
#[must_use = "a one-shot watch does nothing unless awaited (dropping it removes it)"]
pub struct OneShot {
    rx: oneshot::Receiver<Result<WatchEvent, Error>>,
    guard: CancelOnDrop,
}

impl OneShot {
    pub(crate) fn new(
        id: u64,
        rx: oneshot::Receiver<Result<WatchEvent, Error>>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self {
            rx,
            guard: CancelOnDrop::new(id, commands),
        }
    }
}

impl Future for OneShot {
    type Output = Result<WatchEvent, Error>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = &mut *self;
        match Pin::new(&mut this.rx).poll(cx) {
            Poll::Ready(result) => {
                this.guard.armed = false;
                Poll::Ready(result.unwrap_or_else(|_| Err(closed())))
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

/// A persistent (or persistent-recursive) watch: a [`Stream`] of
/// [`WatchItem`]s. It ends after yielding an error (a member refused to
/// register it again after a failover, e.g. `TooManyWatches`); it never ends
/// because members fail, it waits for one to answer. Items are buffered in
/// memory until read. Dropping it (or [`cancel`](Self::cancel)) removes the
/// watch.
#[derive(Debug)]
#[must_use = "a watch does nothing unless its stream is read"]
pub struct WatchStream {
    rx: mpsc::UnboundedReceiver<Result<WatchItem, Error>>,
    guard: CancelOnDrop,
    last_zxid: u64,
}

impl WatchStream {
    pub(crate) fn new(
        id: u64,
        after: u64,
        rx: mpsc::UnboundedReceiver<Result<WatchItem, Error>>,
        commands: mpsc::UnboundedSender<Command>,
    ) -> Self {
        Self {
            rx,
            guard: CancelOnDrop::new(id, commands),
            last_zxid: after,
        }
    }

    /// The next item; `None` after an error. The same as `StreamExt::next`,
    /// without importing a stream extension trait.
    pub async fn next(&mut self) -> Option<Result<WatchItem, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// The zxid up to which every event has been yielded: where a later
    /// watch should resume (`WatchOptions::after_zxid`) to miss nothing.
    pub fn last_zxid(&self) -> u64 {
        self.last_zxid
    }

    /// Removes the watch (the same as dropping the stream).
    pub fn cancel(self) {}
}

impl Stream for WatchStream {
    type Item = Result<WatchItem, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let item = match this.rx.poll_recv(cx) {
            Poll::Ready(item) => item,
            Poll::Pending => return Poll::Pending,
        };
        match &item {
            Some(Ok(WatchItem::Event(e))) => this.last_zxid = this.last_zxid.max(e.zxid),
            Some(Ok(WatchItem::Progress(zxid) | WatchItem::Resynced { to: zxid, .. })) => {
                this.last_zxid = this.last_zxid.max(*zxid);
            }
            Some(Err(_)) => {
                this.guard.armed = false;
                this.rx.close();
            }
            None => {}
        }
        Poll::Ready(item)
    }
}
