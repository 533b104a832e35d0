//! The live cache of one service's instances: the [`ServiceCache`] handle,
//! the [`MembershipChange`]s it reports, and the state it shares with its
//! task (`refresher`).
//!
//! The task records each change in a queue and publishes the map of
//! instances it leads to, both under one lock, so the handle always sees a
//! queue consistent with the map. The queue is bounded: if the handle's
//! stream is not read and more than [`MAX_PENDING`] changes pile up, the
//! queue is dropped and the stream reports the difference between what it
//! last reported and the current map instead (changes coalesced, end state
//! exact), so a cache used only through `instances()` costs no memory.

use std::collections::{BTreeMap, VecDeque};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_stream::Stream;
use tokio_stream::wrappers::WatchStream as Wakeups;

use super::refresher::Refresher;
use super::{Instance, read_all};
use crate::{Client, Error, WatchOptions};

/// Changes kept for a stream that is not read before they are coalesced.
pub const MAX_PENDING: usize = 4096;

/// A change of a service's membership, as a [`ServiceCache`] reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MembershipChange {
    /// An instance registered.
    Added(Instance),
    /// An instance is gone (unregistered, or its session ended); the value
    /// is what it last held.
    Removed(Instance),
    /// A registered instance's data changed.
    Updated {
        /// What it held before.
        old: Instance,
        /// What it holds now.
        new: Instance,
    },
}

type Instances = Arc<BTreeMap<String, Instance>>;

/// Changes not yet taken by the stream.
#[derive(Debug, Default)]
struct Log {
    changes: VecDeque<MembershipChange>,
    /// More than [`MAX_PENDING`] piled up: the stream must diff instead.
    overflowed: bool,
    /// The error that stopped the task.
    failed: Option<Error>,
}

/// What a cache and its task share.
#[derive(Debug)]
pub(super) struct Shared {
    log: Mutex<Log>,
    instances: watch::Sender<Instances>,
}

impl Shared {
    fn log(&self) -> MutexGuard<'_, Log> {
        // Every update leaves the log consistent: a panic cannot tear it.
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `changes` and publishes the map they lead to.
    pub(super) fn record(&self, changes: Vec<MembershipChange>, instances: Instances) {
        let mut log = self.log();
        if log.overflowed || log.changes.len() + changes.len() > MAX_PENDING {
            log.changes.clear();
            log.overflowed = true;
        } else {
            log.changes.extend(changes);
        }
        self.instances.send_replace(instances);
    }

    /// Records the error that stopped the task, and wakes the stream.
    pub(super) fn fail(&self, err: Error) {
        self.log().failed = Some(err);
        self.instances.send_modify(|_| {});
    }
}

/// The instances of one service, kept current by a persistent watch, and a
/// [`Stream`] of every [`MembershipChange`] since the cache was made, in the
/// order the changes were made (the initial instances are not reported: read
/// them with [`instances`](Self::instances) or
/// [`take_snapshot`](Self::take_snapshot)). The stream ends only after
/// yielding an error that stopped the watch (e.g. `TooManyWatches` after a
/// failover); failed reads are retried. Dropping the cache stops its task and
/// its watch.
#[derive(Debug)]
pub struct ServiceCache {
    shared: Arc<Shared>,
    instances: watch::Receiver<Instances>,
    wakeups: Wakeups<Instances>,
    /// The instances as of the last change the stream took.
    seen: BTreeMap<String, Instance>,
    ready: VecDeque<Result<MembershipChange, Error>>,
    /// The task is gone (its last words are in the log).
    closed: bool,
    finished: bool,
    task: JoinHandle<()>,
}

impl ServiceCache {
    /// Sets the watch, then reads the instances (a change after the watch's
    /// start is re-read from its event, so none is missed), then starts the
    /// task.
    pub(super) async fn start(client: Client, dir: String) -> Result<ServiceCache, Error> {
        let options = WatchOptions {
            recursive: true,
            after_zxid: None,
        };
        let watch = client.watch(&dir, options).await?;
        let current = read_all(&client, &dir).await?;
        let (tx, instances) = watch::channel(Arc::new(current.clone()));
        let shared = Arc::new(Shared {
            log: Mutex::default(),
            instances: tx,
        });
        let refresher = Refresher {
            client,
            dir,
            watch,
            current: current.clone(),
            shared: Arc::clone(&shared),
        };
        Ok(ServiceCache {
            shared,
            wakeups: Wakeups::from_changes(instances.clone()),
            instances,
            seen: current,
            ready: VecDeque::new(),
            closed: false,
            finished: false,
            task: tokio::spawn(refresher.run()),
        })
    }

    /// The instances now, ordered by id.
    pub fn instances(&self) -> Vec<Instance> {
        self.instances.borrow().values().cloned().collect()
    }

    /// The instances now, made the point from which the stream reports
    /// changes: for a consumer that shows the membership and then follows it
    /// without seeing a change twice.
    pub fn take_snapshot(&mut self) -> Vec<Instance> {
        let mut log = self.shared.log();
        log.changes.clear();
        log.overflowed = false;
        self.seen = (**self.instances.borrow()).clone();
        self.ready.retain(Result::is_err);
        self.seen.values().cloned().collect()
    }

    /// The instance with this id, if registered.
    pub fn get(&self, id: &str) -> Option<Instance> {
        self.instances.borrow().get(id).cloned()
    }

    /// The next change; `None` once the cache has stopped. The same as
    /// `StreamExt::next`, without importing a stream extension trait.
    pub async fn next(&mut self) -> Option<Result<MembershipChange, Error>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }

    /// Moves what the task recorded into `ready`.
    fn drain(&mut self) {
        let mut log = self.shared.log();
        if log.overflowed {
            log.overflowed = false;
            log.changes.clear();
            let latest = (**self.instances.borrow()).clone();
            self.ready
                .extend(diff(&self.seen, &latest).into_iter().map(Ok));
            self.seen = latest;
        }
        for change in log.changes.drain(..) {
            match &change {
                MembershipChange::Added(new) | MembershipChange::Updated { new, .. } => {
                    self.seen.insert(new.id.clone(), new.clone())
                }
                MembershipChange::Removed(old) => self.seen.remove(&old.id),
            };
            self.ready.push_back(Ok(change));
        }
        if let Some(err) = log.failed.take() {
            self.ready.push_back(Err(err));
            self.finished = true;
        }
    }
}

impl Drop for ServiceCache {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Stream for ServiceCache {
    type Item = Result<MembershipChange, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            if let Some(item) = this.ready.pop_front() {
                return Poll::Ready(Some(item));
            }
            if this.finished {
                return Poll::Ready(None);
            }
            this.drain();
            if !this.ready.is_empty() || this.finished {
                continue;
            }
            if this.closed {
                this.finished = true;
                continue;
            }
            // Every record publishes a new map, which wakes us.
            match Pin::new(&mut this.wakeups).poll_next(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(None) => this.closed = true,
                Poll::Ready(Some(_)) => {}
            }
        }
    }
}

/// The changes that turn `old` into `new`, by id.
pub(super) fn diff(
    old: &BTreeMap<String, Instance>,
    new: &BTreeMap<String, Instance>,
) -> Vec<MembershipChange> {
    let mut changes = Vec::new();
    for (id, was) in old {
        match new.get(id) {
            None => changes.push(MembershipChange::Removed(was.clone())),
            Some(now) if now != was => changes.push(MembershipChange::Updated {
                old: was.clone(),
                new: now.clone(),
            }),
            Some(_) => {}
        }
    }
    for (id, now) in new {
        if !old.contains_key(id) {
            changes.push(MembershipChange::Added(now.clone()));
        }
    }
    changes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(entries: &[(&str, &str)]) -> BTreeMap<String, Instance> {
        entries
            .iter()
            .map(|(id, addr)| ((*id).to_owned(), Instance::new(*id, *addr)))
            .collect()
    }

    /// A cache with no watch behind it, fed by hand through its `Shared`.
    fn detached(initial: BTreeMap<String, Instance>) -> ServiceCache {
        let (tx, instances) = watch::channel(Arc::new(initial.clone()));
        ServiceCache {
            shared: Arc::new(Shared {
                log: Mutex::default(),
                instances: tx,
            }),
            wakeups: Wakeups::from_changes(instances.clone()),
            instances,
            seen: initial,
            ready: VecDeque::new(),
            closed: false,
            finished: false,
            task: tokio::spawn(async {}),
        }
    }

    #[tokio::test]
    async fn the_stream_reports_each_change_then_coalesces_on_overflow() {
        let mut cache = detached(map(&[("a", "1")]));
        let added = MembershipChange::Added(Instance::new("b", "2"));
        let removed = MembershipChange::Removed(Instance::new("b", "2"));
        let shared = Arc::clone(&cache.shared);
        shared.record(
            vec![added.clone()],
            Arc::new(map(&[("a", "1"), ("b", "2")])),
        );
        shared.record(vec![removed.clone()], Arc::new(map(&[("a", "1")])));
        assert_eq!(cache.next().await, Some(Ok(added)));
        assert_eq!(cache.next().await, Some(Ok(removed)));

        // Past MAX_PENDING unread changes the stream reports the difference.
        for i in 0..=MAX_PENDING {
            let change = MembershipChange::Updated {
                old: Instance::new("a", format!("{i}")),
                new: Instance::new("a", format!("{}", i + 1)),
            };
            shared.record(vec![change], Arc::new(map(&[("a", "x"), ("c", "3")])));
        }
        let mut rest = vec![cache.next().await, cache.next().await];
        rest.sort_by_key(|c| format!("{c:?}"));
        assert_eq!(
            rest,
            [
                Some(Ok(MembershipChange::Added(Instance::new("c", "3")))),
                Some(Ok(MembershipChange::Updated {
                    old: Instance::new("a", "1"),
                    new: Instance::new("a", "x"),
                })),
            ]
        );
        assert_eq!(cache.take_snapshot().len(), 2);
        shared.fail(Error::NoEndpoints);
        assert_eq!(cache.next().await, Some(Err(Error::NoEndpoints)));
        assert_eq!(cache.next().await, None);
    }

    #[test]
    fn diff_reports_removed_updated_and_added() {
        let old = map(&[("a", "1"), ("b", "2"), ("c", "3")]);
        let new = map(&[("b", "2"), ("c", "30"), ("d", "4")]);
        assert_eq!(
            diff(&old, &new),
            vec![
                MembershipChange::Removed(Instance::new("a", "1")),
                MembershipChange::Updated {
                    old: Instance::new("c", "3"),
                    new: Instance::new("c", "30"),
                },
                MembershipChange::Added(Instance::new("d", "4")),
            ]
        );
        assert!(diff(&new, &new).is_empty());
    }
}
