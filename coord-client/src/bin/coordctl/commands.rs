//! Runs one parsed command against the cluster and returns its [`Outcome`];
//! rendering is left to `output`.

use std::io::Read;

use bytes::Bytes;
use coord_client::{Client, CreateMode, Error, ErrorInfo};

use crate::args::{Command, ReadArgs};
use crate::output::{Outcome, StatusRow};
use crate::walk;

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The client or the cluster reported an error.
    #[error(transparent)]
    Coord(#[from] Error),
    /// DATA was `-` and stdin could not be read.
    #[error("reading data from stdin: {0}")]
    Stdin(#[source] std::io::Error),
}

impl CliError {
    /// The name printed in `Error: <Name>: <message>`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Coord(err) => err.name(),
            Self::Stdin(_) => "Stdin",
        }
    }

    /// The process exit code (see the after-help text in `args`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Coord(err) => exit_code(err),
            Self::Stdin(_) => 1,
        }
    }
}

/// 3 when the cluster could not be reached, 2 for a bad endpoint (a usage
/// error), 1 when the cluster answered with an error.
pub fn exit_code(err: &Error) -> u8 {
    if err.is_retryable() {
        3
    } else if matches!(err, Error::InvalidEndpoint { .. } | Error::NoEndpoints) {
        2
    } else {
        1
    }
}

/// Runs `command` and returns what it produced.
pub async fn run(client: &Client, command: &Command) -> Result<Outcome, CliError> {
    let outcome = match command {
        Command::Create {
            sequential,
            path,
            data,
        } => {
            let data = match data {
                Some(data) => read_data(data)?,
                None => Bytes::new(),
            };
            let mode = if *sequential {
                CreateMode::PersistentSequential
            } else {
                CreateMode::Persistent
            };
            Outcome::Created(client.create(path, data, mode).await?)
        }
        Command::Get { path, stat, read } => {
            let (data, node) = reader(client, *read).get(path).await?;
            Outcome::Data {
                path: path.clone(),
                data,
                stat: node,
                show_stat: *stat,
            }
        }
        Command::Set {
            path,
            data,
            version,
        } => {
            let stat = client.set(path, read_data(data)?, *version).await?;
            Outcome::Set {
                path: path.clone(),
                stat,
            }
        }
        Command::Rm {
            path,
            version,
            recursive,
        } => remove(client, path, *version, *recursive).await?,
        Command::Ls { path, read } => Outcome::Children {
            path: path.clone(),
            names: reader(client, *read).children(path).await?.0,
        },
        Command::Stat { path, read } => stat(&reader(client, *read), path).await?,
        Command::Tree { path, read } => {
            let client = reader(client, *read);
            Outcome::Tree(walk::fetch(path, async |p: &str| Ok(client.children(p).await?.0)).await?)
        }
        Command::Status => Outcome::Status(status_all(client).await),
    };
    Ok(outcome)
}

fn reader(client: &Client, read: ReadArgs) -> Client {
    if read.serializable {
        client.serializable()
    } else {
        client.clone()
    }
}

/// DATA as given, or stdin's bytes for `-`.
fn read_data(data: &str) -> Result<Bytes, CliError> {
    if data != "-" {
        return Ok(Bytes::copy_from_slice(data.as_bytes()));
    }
    let mut buf = Vec::new();
    std::io::stdin()
        .read_to_end(&mut buf)
        .map_err(CliError::Stdin)?;
    Ok(Bytes::from(buf))
}

async fn remove(
    client: &Client,
    path: &str,
    version: i32,
    recursive: bool,
) -> Result<Outcome, Error> {
    let count = if recursive {
        walk::delete_recursive(client, path, version).await?
    } else {
        client.delete(path, version).await?;
        1
    };
    Ok(Outcome::Deleted {
        path: path.to_owned(),
        count,
    })
}

async fn stat(client: &Client, path: &str) -> Result<Outcome, Error> {
    match client.exists(path).await? {
        Some(stat) => Ok(Outcome::Stat {
            path: path.to_owned(),
            stat,
        }),
        None => Err(Error::NoNode(ErrorInfo {
            message: format!("no node: {path}"),
            path: Some(path.to_owned()),
            ..ErrorInfo::default()
        })),
    }
}

/// Asks every endpoint for its own status, concurrently, without failover.
async fn status_all(client: &Client) -> Vec<StatusRow> {
    let tasks: Vec<_> = client
        .endpoints()
        .into_iter()
        .map(|endpoint| {
            let client = client.clone();
            let ep = endpoint.clone();
            (
                endpoint,
                tokio::spawn(async move { client.status_of(&ep).await }),
            )
        })
        .collect();
    let mut rows = Vec::with_capacity(tasks.len());
    for (endpoint, task) in tasks {
        let result = task.await.unwrap_or_else(|e| {
            Err(Error::Internal(ErrorInfo::from_message(format!(
                "status task failed: {e}"
            ))))
        });
        rows.push(StatusRow { endpoint, result });
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_by_error_class() {
        let info = ErrorInfo::from_message("m");
        assert_eq!(exit_code(&Error::NoNode(info.clone())), 1);
        assert_eq!(exit_code(&Error::BadVersion(info.clone())), 1);
        assert_eq!(exit_code(&Error::Internal(info.clone())), 1);
        assert_eq!(exit_code(&Error::Unavailable(info.clone())), 3);
        assert_eq!(exit_code(&Error::Timeout(info.clone())), 3);
        assert_eq!(exit_code(&Error::NotLeader(info)), 3);
        let transport = Error::Transport {
            endpoint: "e".into(),
            message: "refused".into(),
        };
        assert_eq!(exit_code(&transport), 3);
        assert_eq!(exit_code(&Error::NoEndpoints), 2);
    }
}
