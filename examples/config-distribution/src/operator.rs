//! The operator's commands: `set` replaces the config, `edit` changes one
//! key with compare-and-set, `get` reads it.

use anyhow::Context;
use coord_client::recipes::config::{ConfigError, ConfigHandle};
use coord_client::{Client, CreateMode, Error, Stat};
use serde_json::Value;

use crate::output::{Event, Output};

/// Replaces the config at `path` with the JSON document `text`, creating
/// the node (and its ancestors) if needed.
pub async fn set(client: &Client, path: &str, text: &str, out: Output) -> anyhow::Result<()> {
    let config: Value = serde_json::from_str(text).context("the config is not valid JSON")?;
    let data = serde_json::to_vec(&config)?;
    let stat = loop {
        match client.set(path, data.clone(), -1).await {
            Ok(stat) => break stat,
            Err(Error::NoNode(_)) => {}
            Err(err) => return Err(err.into()),
        }
        create_parents(client, path).await?;
        match client
            .create(path, data.clone(), CreateMode::Persistent)
            .await
        {
            Ok(created) => break created.stat,
            // Created by someone else meanwhile: set it after all.
            Err(Error::NodeExists(_)) => {}
            Err(err) => return Err(err.into()),
        }
    };
    out.emit(&written(path, stat, config));
    Ok(())
}

/// Sets `key` of the config object at `path` to `value` (JSON, or a bare
/// string), re-reading and retrying while other writers get in first.
pub async fn edit(
    client: &Client,
    path: &str,
    key: &str,
    value: &str,
    out: Output,
) -> anyhow::Result<()> {
    let value = serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_owned()));
    let handle: ConfigHandle<Value> = match ConfigHandle::open(client.clone(), path).await {
        Ok(handle) => handle,
        Err(ConfigError::Coord(Error::NoNode(_))) => {
            anyhow::bail!("no config at {path}: set one first")
        }
        Err(err) => return Err(err.into()),
    };
    loop {
        let (data, stat) = client.get(path).await?;
        let mut config: Value = serde_json::from_slice(&data).unwrap_or(Value::Null);
        match config.as_object_mut() {
            Some(object) => {
                object.insert(key.to_owned(), value.clone());
            }
            None => config = serde_json::json!({ key: value.clone() }),
        }
        match handle.compare_and_set(stat.version, &config).await {
            Ok(stat) => {
                out.emit(&written(path, stat, config));
                return Ok(());
            }
            Err(ConfigError::Coord(Error::BadVersion(_))) => {
                tracing::info!(version = stat.version, "someone else wrote first; retrying");
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Prints the config at `path` and its version.
pub async fn get(client: &Client, path: &str, out: Output) -> anyhow::Result<()> {
    let (data, stat) = client.get(path).await?;
    let config = serde_json::from_slice(&data)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&data).into_owned()));
    out.emit(&Event::Config {
        path: path.to_owned(),
        version: stat.version,
        zxid: stat.mzxid,
        config,
    });
    Ok(())
}

fn written(path: &str, stat: Stat, config: Value) -> Event {
    Event::Written {
        path: path.to_owned(),
        version: stat.version,
        zxid: stat.mzxid,
        config,
    }
}

/// Creates the ancestors of `path` that are missing, as persistent nodes.
async fn create_parents(client: &Client, path: &str) -> Result<(), Error> {
    let mut prefix = String::new();
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    for segment in segments.iter().take(segments.len().saturating_sub(1)) {
        prefix.push('/');
        prefix.push_str(segment);
        match client.create(&prefix, "", CreateMode::Persistent).await {
            Ok(_) | Err(Error::NodeExists(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
