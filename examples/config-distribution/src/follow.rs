//! `config-distribution run NAME`: a process that runs with the config.
//!
//! It opens a [`ConfigHandle`] (a persistent watch set after the read of the
//! value, so no change between the two is missed) and prints the version it
//! runs now and after every change. A config that does not exist yet (or
//! does not parse as JSON) is waited for with a one-shot watch.

use coord_client::recipes::config::{ConfigError, ConfigHandle};
use coord_client::{Client, Error, Stat};
use example_support::interrupted;
use serde_json::Value;
use tokio::sync::watch;

use crate::output::{Event, Output};

/// Follows the config at `path` until Ctrl-C or SIGTERM.
pub async fn run(client: &Client, path: &str, name: &str, out: Output) -> anyhow::Result<()> {
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    let handle = tokio::select! {
        handle = open_when_set(client, path, name, out) => handle?,
        () = &mut shutdown => return Ok(()),
    };
    let mut values = handle.subscribe();
    loop {
        let (config, stat) = current(&handle, &mut values);
        tracing::info!(version = stat.version, zxid = stat.mzxid, "running config");
        let running = Event::Running {
            name: name.to_owned(),
            version: stat.version,
            zxid: stat.mzxid,
            config,
        };
        if !out.emit(&running) {
            return Ok(());
        }
        tokio::select! {
            changed = values.changed() => {
                if changed.is_err() {
                    anyhow::bail!("the config watch stopped");
                }
            }
            () = &mut shutdown => return Ok(()),
        }
    }
}

/// The current value with the stat it came with.
///
/// The handle publishes the stat and then the value under one lock, and
/// [`ConfigHandle::stat`] takes that lock, so if no newer value arrived
/// after the stat was read, the two belong together; otherwise read again.
fn current(handle: &ConfigHandle<Value>, values: &mut watch::Receiver<Value>) -> (Value, Stat) {
    loop {
        let value = values.borrow_and_update().clone();
        let stat = handle.stat();
        if !values.has_changed().unwrap_or(false) {
            return (value, stat);
        }
    }
}

/// Opens the config, waiting (without polling) until it exists and parses.
async fn open_when_set(
    client: &Client,
    path: &str,
    name: &str,
    out: Output,
) -> anyhow::Result<ConfigHandle<Value>> {
    let mut announced = false;
    loop {
        let missing = match ConfigHandle::open(client.clone(), path).await {
            Ok(handle) => return Ok(handle),
            Err(ConfigError::Coord(Error::NoNode(_))) => true,
            Err(err @ ConfigError::Decode { .. }) => {
                tracing::warn!(error = %err, "the config is not JSON; waiting for a change");
                false
            }
            Err(err) => return Err(err.into()),
        };
        if !announced {
            out.emit(&Event::Waiting {
                name: name.to_owned(),
                path: path.to_owned(),
            });
            announced = true;
        }
        // A failed watch (compacted history) only means: look again.
        if missing {
            if let (None, created) = client.exists_watch(path).await? {
                let _ = created.await;
            }
        } else if let Ok((_, _, changed)) = client.get_watch(path).await {
            let _ = changed.await;
        }
    }
}
