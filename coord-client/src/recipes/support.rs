//! Helpers shared by the recipes: making a node's ancestors, joining names
//! onto paths, a delete retried with one sequence number until its outcome
//! is known, and a guard that removes a node when its owner is dropped
//! without cleaning up.

use std::time::Duration;

use coord_proto::v1::DeleteRequest;

use crate::retry::Backoff;
use crate::{Client, CreateMode, Error, ErrorInfo};

/// Creates `path` and each missing ancestor as persistent, empty nodes,
/// unless `path` exists already (one read in the common case). Nodes made
/// meanwhile by a concurrent caller are fine.
pub(super) async fn ensure_path(client: &Client, path: &str) -> Result<(), Error> {
    if path == "/" || client.exists(path).await?.is_some() {
        return Ok(());
    }
    make_path(client, path).await
}

/// Creates `path` and its missing ancestors as persistent nodes, from the
/// top down. Never containers: the server would delete an empty container,
/// and a re-created lock directory starts its sequence counter again, so a
/// new node could get the name of an old one; a lost holder's `check` and
/// `unlock` would then hit its successor's node. A persistent directory's
/// names are never reused.
pub(super) async fn make_path(client: &Client, path: &str) -> Result<(), Error> {
    let mut prefix = String::new();
    for segment in path.split('/').skip(1) {
        prefix.push('/');
        prefix.push_str(segment);
        match client.create(&prefix, "", CreateMode::Persistent).await {
            Ok(_) | Err(Error::NodeExists(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}

/// `parent/name`, also when `parent` is `/`.
pub(super) fn child_path(parent: &str, name: &str) -> String {
    if parent == "/" {
        format!("/{name}")
    } else {
        format!("{parent}/{name}")
    }
}

/// The last segment of `path`.
pub(super) fn last_segment(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// The names among `names` that are `prefix` followed by a sequential
/// suffix, lowest first: by the number (not the name, so the order survives
/// counters wider than 10 digits). Other names are left out.
pub(super) fn by_sequence(names: &[String], prefix: &str) -> Vec<String> {
    let mut numbered: Vec<(u64, &String)> = names
        .iter()
        .filter_map(|name| Some((name.strip_prefix(prefix)?.parse().ok()?, name)))
        .collect();
    numbered.sort_unstable();
    numbered.into_iter().map(|(_, name)| name.clone()).collect()
}

/// Rejects names that are not a single, non-empty path segment, so a name
/// cannot reach outside the recipe's directory.
pub(super) fn check_segment(what: &str, name: &str) -> Result<(), Error> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err(Error::InvalidPath(ErrorInfo::from_message(format!(
            "{what} {name:?} must be one non-empty path segment"
        ))));
    }
    Ok(())
}

/// Deletes `path` (any version) with **one** sequence number, resent until the
/// server gives a definite answer. A plain `delete` gives up when its retry
/// budget is spent, leaving the outcome unknown; a recipe that must know
/// whether *it* deleted a node (a queue consumer) keeps asking, and the
/// server's de-duplication answers a resend of an applied delete with its
/// recorded success instead of `NoNode`. Dropping the future gives up
/// without knowing.
pub(super) async fn delete_definitely(client: &Client, path: &str) -> Result<(), Error> {
    let inner = &client.inner;
    let ticket = inner.writes.begin().await;
    let mut backoff = Backoff::default();
    loop {
        let request = DeleteRequest {
            meta: Some(ticket.meta()),
            path: path.to_owned(),
            version: -1,
        };
        let sent = inner.call(request).await;
        match sent {
            Ok(_) => return Ok(()),
            Err(err) if err.is_retryable() => {
                tracing::warn!(path, error = %err, "delete outcome unknown; resending it");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Deletes a node its owner no longer needs when the owner is dropped without
/// an explicit, awaited cleanup (`unregister`, `leave`): a task deletes it in
/// the background, so others need not wait for the session to expire.
#[derive(Debug)]
pub(super) struct DeleteOnDrop {
    client: Client,
    path: String,
    armed: bool,
}

impl DeleteOnDrop {
    /// Arms the guard for `path`.
    pub(super) fn new(client: Client, path: String) -> Self {
        Self {
            client,
            path,
            armed: true,
        }
    }

    /// The guarded node.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The client the node was made with.
    pub(super) fn client(&self) -> &Client {
        &self.client
    }

    /// Deletes the node now (a missing node is fine) and disarms the guard.
    pub(super) async fn delete(mut self) -> Result<(), Error> {
        self.armed = false;
        match self.client.delete(&self.path, -1).await {
            Ok(()) | Err(Error::NoNode(_)) => Ok(()),
            Err(err) => Err(err),
        }
    }
}

impl Drop for DeleteOnDrop {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return; // No runtime: the session's end removes an ephemeral node.
        };
        let client = self.client.clone();
        let path = std::mem::take(&mut self.path);
        runtime.spawn(async move {
            if let Err(err) = client.delete(&path, -1).await
                && !matches!(err, Error::NoNode(_))
            {
                tracing::warn!(path, error = %err, "could not delete a dropped recipe node");
            }
        });
    }
}

/// Pause between attempts of a background task whose call failed.
pub(super) const RETRY_PAUSE: Duration = Duration::from_millis(500);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_segments() {
        assert_eq!(child_path("/", "a"), "/a");
        assert_eq!(child_path("/q", "qn-1"), "/q/qn-1");
        assert_eq!(last_segment("/q/qn-0000000001"), "qn-0000000001");
        assert!(check_segment("id", "web-1").is_ok());
        for bad in ["", "a/b", ".", ".."] {
            assert!(check_segment("id", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn sequence_order_ignores_other_names() {
        let names = [
            "qn-0000000010",
            "ready",
            "qn-0000000002",
            "qn-x",
            "qn-10000000000",
        ];
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        assert_eq!(
            by_sequence(&names, "qn-"),
            ["qn-0000000002", "qn-0000000010", "qn-10000000000"]
        );
    }
}
