//! Runs one parsed command against the cluster and returns its [`Outcome`];
//! rendering is left to `output`.

use std::io::Read;

use std::time::Duration;

use bytes::Bytes;
use coord_client::{Client, CreateMode, CreateOptions, Error, ErrorInfo, WatchOptions};

use crate::args::{Cli, Command, LeaseCommand, ReadArgs};
use crate::live;
use crate::output::{Outcome, StatusRow};
use crate::walk;
use crate::{completion, queue, services};
use crate::{elect, lock};

/// Why a command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The client or the cluster reported an error.
    #[error(transparent)]
    Coord(#[from] Error),
    /// DATA was `-` and stdin could not be read.
    #[error("reading data from stdin: {0}")]
    Stdin(#[source] std::io::Error),
    /// A lease (or session) the command kept alive is gone.
    #[error("lease {id} expired or was revoked")]
    Expired {
        /// The lease id.
        id: u64,
    },
    /// `lock` or `elect` ended without success (see [`lock::HoldError`]).
    #[error(transparent)]
    Hold(#[from] lock::HoldError),
    /// `queue take --wait`: no item arrived in time.
    #[error("queue {path} stayed empty")]
    Empty {
        /// The queue's directory node.
        path: String,
    },
}

impl CliError {
    /// The name printed in `Error: <Name>: <message>`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Coord(err) => err.name(),
            Self::Stdin(_) => "Stdin",
            Self::Expired { .. } => "Expired",
            Self::Empty { .. } => "Empty",
            Self::Hold(err) => err.name(),
        }
    }

    /// The process exit code (see the after-help text in `args`).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::Coord(err) => exit_code(err),
            Self::Stdin(_) => 1,
            Self::Expired { .. } => 4,
            Self::Empty { .. } => 5,
            Self::Hold(err) => err.exit_code(),
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

/// Runs the command and returns what it produced. Live commands print as
/// they go and return [`Outcome::Nothing`].
pub async fn run(client: &Client, cli: &Cli) -> Result<Outcome, CliError> {
    let command = &cli.command;
    let outcome = match command {
        Command::Create { .. } if command.is_live() => {
            live::hold_ephemeral(client, command, cli.json).await?
        }
        Command::Create {
            path, data, lease, ..
        } => {
            let options = create_options(command, *lease);
            Outcome::Created(
                client
                    .create(path, create_data(data.as_deref())?, options)
                    .await?,
            )
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
        Command::Lease(LeaseCommand::KeepAlive { id }) => {
            live::keep_alive(client, *id, cli.json).await?
        }
        Command::Lease(lease) => run_lease(client, lease).await?,
        Command::Watch {
            path,
            recursive,
            from,
            once,
        } => {
            let options = WatchOptions {
                recursive: *recursive,
                after_zxid: *from,
            };
            live::watch(client, path, options, *once, cli.json).await?
        }
        Command::Services(services) => services::run(client, services, cli.json).await?,
        Command::Queue(queue) => queue::run(client, queue).await?,
        Command::Completion { shell } => completion::run(*shell),
        Command::Lock(args) => lock::run(client, args, cli.json).await?,
        Command::Elect(args) => elect::run(client, args, cli.json).await?,
    };
    Ok(outcome)
}

async fn run_lease(client: &Client, command: &LeaseCommand) -> Result<Outcome, Error> {
    Ok(match command {
        LeaseCommand::Grant { ttl } => Outcome::LeaseGranted(client.lease_grant(*ttl).await?),
        LeaseCommand::Revoke { id } => {
            client.lease_revoke(*id).await?;
            Outcome::LeaseRevoked(*id)
        }
        LeaseCommand::Ttl { id } => Outcome::LeaseTtl(client.lease_time_to_live(*id).await?),
        LeaseCommand::List => Outcome::Leases(client.lease_list().await?),
        LeaseCommand::KeepAlive { .. } => Outcome::Nothing,
    })
}

/// The options of a `create` command; `lease` owns an ephemeral node.
pub fn create_options(command: &Command, lease: Option<u64>) -> CreateOptions {
    let Command::Create {
        sequential,
        container,
        ttl,
        ephemeral,
        ..
    } = command
    else {
        return CreateOptions::new(CreateMode::Persistent);
    };
    match (*container, *ttl, *ephemeral, *sequential) {
        (true, ..) => CreateOptions::container(),
        (_, Some(ttl), _, false) => CreateOptions::ttl(ttl),
        (_, Some(ttl), _, true) => CreateOptions::ttl_sequential(ttl),
        (_, None, true, false) => CreateOptions::ephemeral(lease.unwrap_or(0)),
        (_, None, true, true) => CreateOptions::ephemeral_sequential(lease.unwrap_or(0)),
        (_, None, false, false) => CreateMode::Persistent.into(),
        (_, None, false, true) => CreateMode::PersistentSequential.into(),
    }
}

/// The data of a `create`: DATA, stdin for `-`, empty if absent.
pub fn create_data(data: Option<&str>) -> Result<Bytes, CliError> {
    data.map_or(Ok(Bytes::new()), read_data)
}

/// A duration as seconds with millisecond precision (`9.998s`).
pub fn seconds(d: Duration) -> String {
    format!("{}.{:03}s", d.as_secs(), d.subsec_millis())
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
        assert_eq!(CliError::Expired { id: 3 }.exit_code(), 4);
        assert_eq!(CliError::Expired { id: 3 }.name(), "Expired");
    }

    #[test]
    fn create_flags_map_to_options() {
        use clap::Parser;
        let options = |args: &[&str], lease| {
            let cli = crate::args::Cli::try_parse_from(
                ["coordctl", "create"].iter().chain(args).copied(),
            )
            .expect("parses");
            create_options(&cli.command, lease)
        };
        assert_eq!(options(&["/a"], None), CreateMode::Persistent.into());
        assert_eq!(
            options(&["-s", "/a"], None),
            CreateMode::PersistentSequential.into()
        );
        assert_eq!(options(&["-c", "/a"], None), CreateOptions::container());
        assert_eq!(options(&["-e", "/a"], Some(9)), CreateOptions::ephemeral(9));
        assert_eq!(
            options(&["-e", "-s", "/a"], Some(9)),
            CreateOptions::ephemeral_sequential(9)
        );
        let ttl = Duration::from_millis(700);
        assert_eq!(
            options(&["--ttl", "700", "/a"], None),
            CreateOptions::ttl(ttl)
        );
        assert_eq!(
            options(&["--ttl", "700", "-s", "/a"], None),
            CreateOptions::ttl_sequential(ttl)
        );
    }

    #[test]
    fn seconds_have_millis() {
        assert_eq!(seconds(Duration::from_millis(9998)), "9.998s");
        assert_eq!(seconds(Duration::from_secs(10)), "10.000s");
    }
}
