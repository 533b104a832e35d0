//! ZooKeeper's lock recipe, written here on top of the plain client so the
//! bench measures the same algorithm coord's `recipes::mutex` implements:
//! an ephemeral sequential node under the lock's path; the lowest sequence
//! number holds; every other contender watches only its predecessor.

use anyhow::{Context, Result};
use zookeeper_client::{Acls, Client, CreateMode};

/// Waits until this session holds the lock at `dir`; returns the lock node's
/// path (delete it to release).
pub async fn lock(client: &Client, dir: &str) -> Result<String> {
    let prefix = format!("{dir}/lock-");
    let options = CreateMode::EphemeralSequential.with_acls(Acls::anyone_all());
    let (_, sequence) = client.create(&prefix, b"", &options).await?;
    let name = format!("lock-{sequence}");
    loop {
        let mut children = client.list_children(dir).await?;
        // One prefix and fixed-width numbers: name order is sequence order.
        children.sort();
        let position = children
            .iter()
            .position(|c| *c == name)
            .with_context(|| format!("lock node {dir}/{name} vanished"))?;
        if position == 0 {
            return Ok(format!("{dir}/{name}"));
        }
        let predecessor = format!("{dir}/{}", children[position - 1]);
        let (stat, watcher) = client.check_and_watch_stat(&predecessor).await?;
        if stat.is_some() {
            watcher.changed().await;
        }
    }
}
