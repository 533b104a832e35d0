//! `coordctl queue put|take`: the distributed FIFO queue recipe
//! (`coord_client::recipes::queue`) from the command line.

use std::time::Duration;

use clap::Subcommand;
use coord_client::Client;
use coord_client::recipes::queue::{Queue, QueueItem};
use serde_json::json;

use crate::args::parse_duration;
use crate::commands::{CliError, create_data};
use crate::output::{Outcome, data_json};

/// The `queue` subcommands.
#[derive(Debug, Subcommand)]
pub enum QueueCommand {
    /// Append an item to the queue under PATH (created if missing); prints
    /// the node that holds it.
    Put {
        /// The queue's directory node.
        path: String,
        /// The item's data (`-` reads stdin; default empty).
        data: Option<String>,
    },
    /// Take the oldest item, waiting for one if the queue is empty, and
    /// print its data. Each item is taken by exactly one taker.
    Take {
        /// The queue's directory node.
        path: String,
        /// Wait at most this long for an item (`0` = do not wait); then exit
        /// with code 5. Default: wait until one arrives.
        #[arg(long, value_name = "T", value_parser = parse_duration)]
        wait: Option<Duration>,
    },
}

impl QueueCommand {
    /// `take` is not bounded by --timeout: cutting it off while its delete
    /// is in flight could lose the item, so it waits by `--wait` instead.
    pub fn is_live(&self) -> bool {
        matches!(self, Self::Take { .. })
    }
}

/// Runs a `queue` subcommand.
pub async fn run(client: &Client, command: &QueueCommand) -> Result<Outcome, CliError> {
    match command {
        QueueCommand::Put { path, data } => {
            let data = create_data(data.as_deref())?;
            let queue = Queue::new(client.clone(), path).await?;
            let node = queue.put(data).await?;
            Ok(Outcome::Rendered {
                text: format!("{node}\n").into(),
                json: json!({"path": node}),
            })
        }
        QueueCommand::Take { path, wait } => {
            let queue = Queue::existing(client.clone(), path);
            let item = match wait {
                None => queue.take().await?,
                Some(wait) => queue
                    .take_timeout(*wait)
                    .await?
                    .ok_or_else(|| CliError::Empty { path: path.clone() })?,
            };
            Ok(taken(item))
        }
    }
}

/// The exact bytes as text (like `get`), the data and the node in JSON.
fn taken(item: QueueItem) -> Outcome {
    let (data, encoding) = data_json(&item.data);
    Outcome::Rendered {
        json: json!({"path": item.path, "data": data, "encoding": encoding}),
        text: item.data,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn a_taken_item_renders_its_bytes_and_its_node() {
        let item = QueueItem {
            path: "/q/qn-0000000003".into(),
            data: Bytes::from_static(b"job"),
        };
        let Outcome::Rendered { text, json } = taken(item) else {
            panic!("not rendered");
        };
        assert_eq!(&text[..], b"job");
        assert_eq!(
            json,
            json!({"path": "/q/qn-0000000003", "data": "job", "encoding": "utf-8"})
        );
    }
}
