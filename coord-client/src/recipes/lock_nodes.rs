//! Node operations of the lock-like recipes: a create that is never left
//! with an unknown outcome, a delete retried until the node is gone, and the
//! order of sequential names.

use bytes::Bytes;
use coord_proto::v1::CreateRequest;

use crate::retry::Backoff;
use crate::types::required;
use crate::{Client, CreateOptions, Created, Error, ErrorInfo, Session};

/// Creates a node with **one** sequence number, resent until the server
/// gives a definite answer or the session ends: the server's de-duplication
/// answers a resend of an applied create with its recorded result, so a
/// create whose first attempts timed out still makes exactly one node, and
/// its path is known. (A plain `create` gives up when its retry budget is
/// spent, leaving the outcome unknown.)
pub(super) async fn create_once(
    client: &Client,
    session: &Session,
    path: &str,
    data: &Bytes,
    options: CreateOptions,
) -> Result<Created, Error> {
    let inner = &client.inner;
    let ticket = inner.writes.begin().await;
    let mut backoff = Backoff::default();
    loop {
        let request = CreateRequest {
            meta: Some(ticket.meta()),
            path: path.to_owned(),
            data: data.clone(),
            mode: options.mode.into(),
            lease: options.lease_id(),
            ttl_ms: options.ttl_ms(),
        };
        let sent = inner.call(request).await;
        match sent {
            Ok(response) => {
                let stat = required(response.stat, "CreateResponse.stat")?;
                return Ok(Created {
                    path: response.path,
                    stat,
                });
            }
            Err(err) if err.is_retryable() && !session.is_expired() => {
                tracing::warn!(path, error = %err, "lock node create outcome unknown; resending it");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// Deletes `node` (any version) until it is gone: a missing node is fine,
/// and retryable failures are retried while the session lives (once it is
/// lost, the server deletes the node with the lease).
pub(super) async fn remove(client: &Client, session: &Session, node: &str) -> Result<(), Error> {
    let mut backoff = Backoff::default();
    loop {
        match client.delete(node, -1).await {
            Ok(()) | Err(Error::NoNode(_)) => return Ok(()),
            Err(err) if err.is_retryable() && session.is_expired() => return Ok(()),
            Err(err) if err.is_retryable() => {
                tracing::warn!(node, error = %err, "could not delete a lock node yet; retrying");
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(err) => return Err(err),
        }
    }
}

/// The names among `names` that are one of `prefixes` followed by a
/// sequence number, lowest number first (the sequence counter is the
/// parent's, so numbers are unique across prefixes).
pub(super) fn in_sequence<'a>(names: &'a [String], prefixes: &[&str]) -> Vec<&'a str> {
    let mut numbered: Vec<(u64, &str)> = names
        .iter()
        .filter_map(|name| {
            let rest = prefixes.iter().find_map(|p| name.strip_prefix(p))?;
            Some((rest.parse().ok()?, name.as_str()))
        })
        .collect();
    numbered.sort_unstable();
    numbered.into_iter().map(|(_, name)| name).collect()
}

/// An error for a broken invariant of the client itself.
pub(super) fn internal(message: &str) -> Error {
    Error::Internal(ErrorInfo::from_message(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(list: &[&str]) -> Vec<String> {
        list.iter().map(|n| (*n).to_owned()).collect()
    }

    #[test]
    fn contenders_sort_by_number_across_prefixes() {
        let all = names(&[
            "write-0000000012",
            "read-0000000003",
            "other",
            "read-x",
            "read-10000000000",
            "write-0000000007",
        ]);
        assert_eq!(
            in_sequence(&all, &["read-", "write-"]),
            [
                "read-0000000003",
                "write-0000000007",
                "write-0000000012",
                "read-10000000000"
            ]
        );
        assert_eq!(in_sequence(&all, &["write-"]).len(), 2);
    }
}
