//! The task behind a [`ServiceCache`](super::ServiceCache): it applies the
//! events of a persistent recursive watch on the service's node to its map of
//! instances and records each change it makes in the cache's [`Shared`] state.

use std::collections::BTreeMap;
use std::sync::Arc;

use super::cache::{MembershipChange, Shared, diff};
use super::{Instance, read_all, read_one};
use crate::recipes::support::{RETRY_PAUSE, child_path, last_segment};
use crate::{Client, Error, EventType, WatchEvent, WatchItem, WatchStream};

/// The task's state: the map it maintains and where it records changes.
pub(super) struct Refresher {
    pub(super) client: Client,
    pub(super) dir: String,
    pub(super) watch: WatchStream,
    pub(super) current: BTreeMap<String, Instance>,
    pub(super) shared: Arc<Shared>,
}

impl Refresher {
    /// Follows the watch until it fails for good (or the cache aborts it).
    pub(super) async fn run(mut self) {
        while let Some(item) = self.watch.next().await {
            let applied = match item {
                Ok(WatchItem::Event(event)) => self.apply(&event).await,
                // Events were lost: read everything again.
                Ok(WatchItem::Resynced { .. }) => self.reload().await,
                Ok(WatchItem::Progress(_)) => Ok(()),
                Err(err) => {
                    tracing::warn!(dir = self.dir, error = %err, "service cache stopped");
                    self.shared.fail(err);
                    return;
                }
            };
            if let Err(err) = applied {
                self.recover(err).await;
            }
        }
    }

    /// Re-reads the node an event is about (only the service's direct
    /// children are instances). Reading instead of trusting the event makes
    /// applying it idempotent.
    async fn apply(&mut self, event: &WatchEvent) -> Result<(), Error> {
        let name = last_segment(&event.path);
        if event.path != child_path(&self.dir, name) {
            return Ok(());
        }
        let now = match event.kind {
            EventType::NodeCreated | EventType::NodeDataChanged => {
                read_one(&self.client, &event.path).await?
            }
            _ => None,
        };
        let change = match (self.current.get(name), now) {
            (None, Some(new)) => MembershipChange::Added(new),
            (Some(old), None) => MembershipChange::Removed(old.clone()),
            (Some(old), Some(new)) if *old != new => MembershipChange::Updated {
                old: old.clone(),
                new,
            },
            _ => return Ok(()),
        };
        match &change {
            MembershipChange::Added(new) | MembershipChange::Updated { new, .. } => {
                self.current.insert(name.to_owned(), new.clone())
            }
            MembershipChange::Removed(_) => self.current.remove(name),
        };
        self.record(vec![change]);
        Ok(())
    }

    /// Reads every instance again and records the differences.
    async fn reload(&mut self) -> Result<(), Error> {
        let all = read_all(&self.client, &self.dir).await?;
        let changes = diff(&self.current, &all);
        if !changes.is_empty() {
            self.current = all;
            self.record(changes);
        }
        Ok(())
    }

    /// After a failed read (the cluster was unreachable beyond the retry
    /// budget), reloads until a reload succeeds; events queued meanwhile are
    /// re-read after it, which changes nothing they do not need to change.
    async fn recover(&mut self, err: Error) {
        tracing::warn!(dir = self.dir, error = %err, "service cache read failed; reloading");
        loop {
            tokio::time::sleep(RETRY_PAUSE).await;
            match self.reload().await {
                Ok(()) => return,
                Err(err) => tracing::warn!(dir = self.dir, error = %err, "reload failed"),
            }
        }
    }

    fn record(&self, changes: Vec<MembershipChange>) {
        self.shared.record(changes, Arc::new(self.current.clone()));
    }
}
