//! Reading and following an election's leader: the lowest candidate node.
//! Observers need no session; they watch the leader's node only (its deletion
//! or a new value is a change), or, with no candidate, the children.

use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_stream::Stream;

use super::{Leader, PREFIX};
use crate::recipes::lock_nodes::in_sequence;
use crate::retry::Backoff;
use crate::{Client, Error, OneShot};

/// The current leader of the election at `path`: its lowest candidate, with
/// the value it campaigned with. `None` when there is no candidate (or no
/// such election yet).
pub async fn leader(client: &Client, path: &str) -> Result<Option<Leader>, Error> {
    let client = client.linearizable();
    loop {
        let names = match client.children(path).await {
            Ok((names, _)) => names,
            Err(Error::NoNode(_)) => return Ok(None),
            Err(err) => return Err(err),
        };
        let Some(node) = lowest(path, &names) else {
            return Ok(None);
        };
        match client.get(&node).await {
            Ok((value, stat)) => {
                return Ok(Some(Leader {
                    node,
                    value,
                    token: stat.czxid,
                    lease: stat.ephemeral_owner,
                }));
            }
            Err(Error::NoNode(_)) => {} // It resigned meanwhile: look again.
            Err(err) => return Err(err),
        }
    }
}

/// Follows the election at `path`: yields the current leader (or `None`)
/// first, then each change (a new leader, a new value, or no leader), never
/// the same leader twice in a row. Survives member failures; ends only after
/// yielding an error the cluster answered (e.g. `InvalidPath`). Dropping the
/// stream stops it.
pub fn observe(client: &Client, path: &str) -> LeaderWatch {
    let (items, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(follow(client.linearizable(), path.to_owned(), items));
    LeaderWatch { rx, task }
}

/// The stream of [`observe`]: `Ok(Some(leader))` or `Ok(None)` per change.
#[derive(Debug)]
#[must_use = "a leader watch does nothing unless read"]
pub struct LeaderWatch {
    rx: mpsc::UnboundedReceiver<Result<Option<Leader>, Error>>,
    task: JoinHandle<()>,
}

impl LeaderWatch {
    /// The next change; `None` after an error. The same as
    /// `StreamExt::next`, without importing a stream extension trait.
    pub async fn next(&mut self) -> Option<Result<Option<Leader>, Error>> {
        self.rx.recv().await
    }
}

impl Stream for LeaderWatch {
    type Item = Result<Option<Leader>, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

impl Drop for LeaderWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Items = mpsc::UnboundedSender<Result<Option<Leader>, Error>>;

/// Sends the leader whenever it changes, until the receiver goes.
async fn follow(client: Client, path: String, items: Items) {
    let mut last: Option<Option<Leader>> = None;
    let mut backoff = Backoff::default();
    loop {
        match look(&client, &path).await {
            Ok((leader, changed)) => {
                backoff = Backoff::default();
                if last.as_ref() != Some(&leader) {
                    if items.send(Ok(leader.clone())).is_err() {
                        return;
                    }
                    last = Some(leader);
                }
                // A failed watch (compaction, say) means: look again.
                let _ = changed.await;
            }
            Err(err) if err.is_retryable() => {
                tracing::debug!(path, error = %err, "election read failed; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(err) => {
                let _ = items.send(Err(err));
                return;
            }
        }
    }
}

/// The leader now, and a watch that fires when it may have changed: on the
/// leader's node (deleted, new value), or with no leader on the children
/// (or, with no election node, on its creation).
async fn look(client: &Client, path: &str) -> Result<(Option<Leader>, OneShot), Error> {
    loop {
        let (names, _, children_changed) = match client.children_watch(path).await {
            Ok(listed) => listed,
            Err(Error::NoNode(_)) => match client.exists_watch(path).await? {
                (None, created) => return Ok((None, created)),
                (Some(_), _) => continue,
            },
            Err(err) => return Err(err),
        };
        let Some(node) = lowest(path, &names) else {
            return Ok((None, children_changed));
        };
        match client.get_watch(&node).await {
            Ok((value, stat, changed)) => {
                let leader = Leader {
                    node,
                    value,
                    token: stat.czxid,
                    lease: stat.ephemeral_owner,
                };
                return Ok((Some(leader), changed));
            }
            Err(Error::NoNode(_)) => {} // Gone meanwhile: look again.
            Err(err) => return Err(err),
        }
    }
}

/// The path of the lowest candidate among `names`.
fn lowest(path: &str, names: &[String]) -> Option<String> {
    let first = *in_sequence(names, &[PREFIX]).first()?;
    Some(format!("{}/{first}", path.trim_end_matches('/')))
}
