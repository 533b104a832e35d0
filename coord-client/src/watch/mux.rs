//! The one watch stream of a client: a task that opens a watch stream on a
//! member, registers every watch of the [`Registry`] on it, routes responses,
//! and when the stream breaks (or goes silent) opens one on the next member and
//! registers every watch again from its resume point.
//!
//! Silence is detected with the server's progress notifications (about one a
//! second while the stream holds watches): after `idle` without any response
//! the task asks for progress, and after another `idle` it gives the member up.

use std::time::Duration;

use coord_proto::v1::{WatchCancel, WatchProgressRequest, WatchRequest, watch_request::Request};
use tokio::sync::mpsc;
use tokio::time::{Instant, sleep_until};

use futures_util::StreamExt;

use crate::bidi;
use crate::endpoint::Member;
use crate::retry::Backoff;
use crate::watch::registry::{Entry, Registry};
use crate::watch::stream::{self, Opened};
use crate::{Error, ErrorInfo};

/// What watch handles ask of the task.
#[derive(Debug)]
pub(crate) enum Command {
    /// Register a new watch.
    Add(u64, Entry),
    /// Remove a watch (its handle was dropped or canceled).
    Cancel(u64),
}

/// The watch task of one client.
#[derive(Debug)]
pub(crate) struct Mux {
    pub(crate) members: Vec<Member>,
    /// Bound on opening a stream.
    pub(crate) open_timeout: Duration,
    /// Silence after which the stream is probed, and then given up.
    pub(crate) idle: Duration,
    pub(crate) commands: mpsc::UnboundedReceiver<Command>,
    /// Index of the member to use next.
    pub(crate) member: usize,
    pub(crate) registry: Registry,
}

fn request(request: Request) -> WatchRequest {
    WatchRequest {
        request: Some(request),
    }
}

impl Mux {
    /// Serves watches until every client handle and watch handle is gone.
    pub(crate) async fn run(mut self) {
        let mut backoff = Backoff::default();
        loop {
            if self.registry.is_empty() {
                match self.commands.recv().await {
                    Some(command) => {
                        self.apply(command);
                        continue;
                    }
                    None => return,
                }
            }
            while let Ok(command) = self.commands.try_recv() {
                self.apply(command);
            }
            let member = self.members[self.member % self.members.len()].clone();
            let opened = stream::open(&member, self.open_timeout).await;
            let err = match opened {
                Ok(stream) => match self.serve(stream, &mut backoff).await {
                    Some(err) => err,
                    None => return,
                },
                Err(err) => err,
            };
            tracing::debug!(endpoint = %member.name, error = %err, "watch stream lost; moving to the next member");
            self.member += 1;
            tokio::time::sleep(backoff.next_delay()).await;
        }
    }

    /// Applies a command to the registry; returns what to tell the server.
    fn apply(&mut self, command: Command) -> Option<WatchRequest> {
        match command {
            Command::Add(id, entry) => Some(request(Request::Create(self.registry.add(id, entry)))),
            Command::Cancel(id) => self
                .registry
                .remove(id)
                .then(|| request(Request::Cancel(WatchCancel { watch_id: id }))),
        }
    }

    /// Runs one stream until it fails (returns why) or the task is no longer
    /// needed (returns `None`).
    async fn serve(&mut self, stream: Opened, backoff: &mut Backoff) -> Option<Error> {
        let Opened {
            endpoint,
            requests,
            mut responses,
        } = stream;
        let send = |r: WatchRequest| {
            // A failed send means the stream is closing; the read side reports it.
            let _ = requests.send(r);
        };
        for create in self.registry.creates() {
            send(request(Request::Create(create)));
        }
        let mut heard = Instant::now();
        let mut probed = false;
        loop {
            let quiet_until = heard + if probed { self.idle * 2 } else { self.idle };
            tokio::select! {
                command = self.commands.recv() => {
                    let command = command?;
                    if self.registry.is_empty() {
                        heard = Instant::now();
                    }
                    if let Some(r) = self.apply(command) {
                        send(r);
                    }
                }
                message = responses.next() => match message {
                    Some(Ok(response)) => {
                        heard = Instant::now();
                        probed = false;
                        *backoff = Backoff::default();
                        if let Some(create) = self.registry.on_response(response) {
                            send(request(Request::Create(create)));
                        }
                    }
                    None => return Some(bidi::ended(&endpoint)),
                    Some(Err(err)) => return Some(err),
                },
                () = sleep_until(quiet_until), if !self.registry.is_empty() => {
                    if probed {
                        return Some(Error::Timeout(ErrorInfo::from_message(format!(
                            "{endpoint}: watch stream silent for {:?}", self.idle * 2
                        ))));
                    }
                    probed = true;
                    send(request(Request::Progress(WatchProgressRequest {})));
                }
            }
        }
    }
}
