//! Command-line arguments of coordctl (clap derive).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

use crate::elect::ElectArgs;
use crate::lock::LockArgs;
use crate::queue::QueueCommand;
use crate::services::ServicesCommand;

/// Exit codes, shown after `--help` and documented in docs/coordctl.md.
const AFTER_HELP: &str = "\
Exit codes:
  0  success (for `status`: at least one endpoint answered)
  1  the cluster answered with an error (NoNode, NodeExists, NotEmpty, BadVersion, ...)
     or a local failure such as reading stdin
  2  usage error (bad flags or arguments, invalid endpoint)
  3  the cluster could not be reached or retries were exhausted
     (Unavailable, NotLeader, Timeout, Transport)
  4  a lease or session the command kept alive was lost (`create -e`,
     `lease keep-alive`, `services register`): it expired or was revoked;
     or the lock of `lock` or the leadership of `elect` was lost
  5  `queue take --wait T`: the queue stayed empty for T
     `lock --wait T`: the lock was not acquired within T (or interrupted)

`lock NAME -- COMMAND` exits with COMMAND's status (128 + signal if it was
killed; 126/127 if it could not be run).

Commands that hold something (`create -e`, `lease keep-alive`, `watch`,
`services watch`, `services register`, `lock`, `elect`) run until Ctrl-C or
SIGTERM, then exit 0; for them --timeout bounds each call, not the whole run.
So it does for `queue take`, which waits for an item as long as --wait allows
(default: until one arrives).

Errors are printed to stderr as `Error: <Name>: <message>`; with --json the same
error is also printed to stdout as {\"error\": \"<Name>\", \"message\": \"...\"}.";

/// coordctl: inspect and change a coord cluster's znode tree.
#[derive(Debug, Parser)]
#[command(name = "coordctl", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Client endpoints of the cluster members, `host:port`, comma-separated.
    #[arg(
        long,
        global = true,
        env = "COORD_ENDPOINTS",
        default_value = "127.0.0.1:2390",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,

    /// Print machine-readable JSON instead of text: one document, or one per
    /// line for the live commands (`create -e`, `lease keep-alive`, `watch`).
    #[arg(long, global = true)]
    pub json: bool,

    /// Overall time limit of the command, retries included: `10s`, `1.5s`,
    /// `500ms`, or plain seconds.
    #[arg(long, global = true, default_value = "10s", value_parser = parse_duration)]
    pub timeout: Duration,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Create a node; prints the path actually created.
    ///
    /// With -e (and no --lease) the node lives as long as this command: it
    /// keeps a session alive until Ctrl-C or SIGTERM, then revokes it.
    Create {
        /// Sequential: append a 10-digit, per-parent increasing suffix to PATH
        /// (combines with -e and --ttl).
        #[arg(short = 's', long)]
        sequential: bool,
        /// Ephemeral: owned by a session this command keeps alive until
        /// Ctrl-C/SIGTERM, or by the lease given with --lease.
        #[arg(short = 'e', long, conflicts_with_all = ["container", "ttl"])]
        ephemeral: bool,
        /// Container: deleted by the server once its last child is deleted.
        #[arg(short = 'c', long, conflicts_with_all = ["sequential", "ttl"])]
        container: bool,
        /// TTL node: deleted after this long without a change while it has no
        /// children. Plain numbers are milliseconds; `2s`, `500ms` work too.
        #[arg(long, value_name = "MS", value_parser = parse_millis)]
        ttl: Option<Duration>,
        /// With -e: attach the node to this existing lease and exit (whoever
        /// holds the lease keeps it alive).
        #[arg(long, value_name = "ID", requires = "ephemeral")]
        lease: Option<u64>,
        /// With -e: TTL of the session this command opens.
        #[arg(long, value_name = "TTL", default_value = "10s", value_parser = parse_duration)]
        session_ttl: Duration,
        /// Path of the node (the prefix, with -s).
        path: String,
        /// Initial data (`-` reads stdin; default empty).
        data: Option<String>,
    },
    /// Print a node's data.
    Get {
        /// Path of the node.
        path: String,
        /// Also print the node's stat.
        #[arg(long)]
        stat: bool,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Replace a node's data.
    Set {
        /// Path of the node.
        path: String,
        /// New data (`-` reads stdin).
        data: String,
        /// Expected version (-1: any).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        version: i32,
    },
    /// Delete a node.
    Rm {
        /// Path of the node.
        path: String,
        /// Expected version of PATH itself (-1: any).
        #[arg(long, default_value_t = -1, allow_negative_numbers = true)]
        version: i32,
        /// Delete the node's descendants first, depth-first.
        #[arg(short = 'r', long)]
        recursive: bool,
    },
    /// List a node's children, one name per line.
    Ls {
        /// Path of the node.
        path: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Print a node's stat.
    Stat {
        /// Path of the node.
        path: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Print the subtree under PATH, indented.
    Tree {
        /// Root of the subtree.
        #[arg(default_value = "/")]
        path: String,
        #[command(flatten)]
        read: ReadArgs,
    },
    /// Query every endpoint and print one row per member.
    Status,
    /// Grant, keep alive, inspect and revoke leases.
    #[command(subcommand)]
    Lease(LeaseCommand),
    /// Print the changes of a node (or, with -r, a subtree), one line each,
    /// until Ctrl-C.
    Watch {
        /// Node (or subtree root) to watch.
        path: String,
        /// Watch the whole subtree (created, deleted and data-changed events).
        #[arg(short = 'r', long)]
        recursive: bool,
        /// Print the changes after this zxid (default: from now).
        #[arg(long, value_name = "ZXID")]
        from: Option<u64>,
        /// Exit after the first change.
        #[arg(long)]
        once: bool,
    },
    /// Service discovery: list, watch and register a service's instances.
    #[command(subcommand)]
    Services(ServicesCommand),
    /// A distributed FIFO queue: put items, take each exactly once.
    #[command(subcommand)]
    Queue(QueueCommand),
    /// Acquire a lock, run COMMAND with its fencing token (or hold until
    /// Ctrl-C), release; like `etcdctl lock`.
    Lock(LockArgs),
    /// Campaign for leadership and hold it until Ctrl-C, or (--listen) print
    /// the leader at every change.
    Elect(ElectArgs),
    /// Print a shell completion script (e.g. `source <(coordctl completion bash)`).
    Completion {
        /// The shell to complete for.
        shell: clap_complete::Shell,
    },
}

/// The `lease` subcommands.
#[derive(Debug, Subcommand)]
pub enum LeaseCommand {
    /// Grant a lease; prints its id.
    Grant {
        /// Time to live: `10s`, `2500ms`, or plain seconds.
        #[arg(value_parser = parse_duration)]
        ttl: Duration,
    },
    /// Keep a lease alive until Ctrl-C/SIGTERM, printing each renewal; fails
    /// (exit code 4) if the lease expires or is revoked meanwhile.
    KeepAlive {
        /// The lease id.
        id: u64,
    },
    /// Revoke a lease, deleting its ephemeral nodes.
    Revoke {
        /// The lease id.
        id: u64,
    },
    /// Print a lease's granted and remaining TTL and its ephemeral nodes.
    Ttl {
        /// The lease id.
        id: u64,
    },
    /// List every lease with its TTL and number of ephemeral nodes.
    List,
}

impl Command {
    /// True for the commands that run until interrupted (or until what they
    /// hold is lost) and print as they go.
    pub fn is_live(&self) -> bool {
        match self {
            Self::Create {
                ephemeral, lease, ..
            } => *ephemeral && lease.is_none(),
            Self::Lease(LeaseCommand::KeepAlive { .. }) | Self::Watch { .. } => true,
            Self::Services(services) => services.is_live(),
            Self::Queue(queue) => queue.is_live(),
            Self::Lock(_) | Self::Elect(_) => true,
            _ => false,
        }
    }
}

/// Options of the read commands.
#[derive(Debug, Args, Clone, Copy)]
pub struct ReadArgs {
    /// Read the contacted member's local state (fast, possibly stale) instead
    /// of a linearizable read.
    #[arg(long)]
    pub serializable: bool,
}

/// Parses `10s`, `1.5s`, `500ms` or `10` (seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let (number, millis) = if let Some(n) = text.strip_suffix("ms") {
        (n, true)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, false)
    } else {
        (text, false)
    };
    let value: f64 = number
        .trim()
        .parse()
        .map_err(|_| format!("invalid duration {text:?} (expected e.g. 10s, 1.5s, 500ms)"))?;
    let seconds = if millis { value / 1000.0 } else { value };
    Duration::try_from_secs_f64(seconds).map_err(|e| format!("invalid duration {text:?}: {e}"))
}

/// Parses a TTL of `--ttl`: plain numbers are milliseconds (as ZooKeeper's
/// `create -t`); `2s` and `500ms` work too.
pub fn parse_millis(text: &str) -> Result<Duration, String> {
    match text.trim().parse::<u64>() {
        Ok(ms) => Ok(Duration::from_millis(ms)),
        Err(_) => parse_duration(text),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("10s"), Ok(Duration::from_secs(10)));
        assert_eq!(parse_duration("1.5s"), Ok(Duration::from_millis(1500)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("3"), Ok(Duration::from_secs(3)));
        for bad in ["", "s", "ten", "-1s", "5m"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn ttl_millis() {
        assert_eq!(parse_millis("500"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_millis("2s"), Ok(Duration::from_secs(2)));
        assert!(parse_millis("-3").is_err());
    }

    fn parse(args: &[&str]) -> Result<Command, clap::Error> {
        Cli::try_parse_from(std::iter::once("coordctl").chain(args.iter().copied()))
            .map(|c| c.command)
    }

    #[test]
    fn create_modes() {
        let cmd = parse(&["create", "-e", "-s", "/a-", "x"]).expect("parses");
        assert!(cmd.is_live());
        assert!(matches!(
            cmd,
            Command::Create { ephemeral: true, sequential: true, lease: None, session_ttl, .. }
                if session_ttl == Duration::from_secs(10)
        ));
        let cmd = parse(&["create", "-e", "--lease", "42", "/a"]).expect("parses");
        assert!(!cmd.is_live());
        assert!(matches!(
            cmd,
            Command::Create {
                lease: Some(42),
                ..
            }
        ));
        let cmd = parse(&["create", "--ttl", "1500", "-s", "/t-"]).expect("parses");
        assert!(
            matches!(cmd, Command::Create { ttl: Some(t), sequential: true, .. } if t.as_millis() == 1500)
        );
        assert!(parse(&["create", "-c", "/c"]).is_ok());
        for bad in [
            &["create", "-e", "-c", "/a"][..],
            &["create", "-c", "-s", "/a"],
            &["create", "-e", "--ttl", "5", "/a"],
            &["create", "--lease", "1", "/a"],
            &["create", "-c", "--ttl", "5", "/a"],
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn lease_and_watch_commands() {
        let cmd = parse(&["lease", "grant", "10"]).expect("parses");
        assert!(
            matches!(cmd, Command::Lease(LeaseCommand::Grant { ttl }) if ttl == Duration::from_secs(10))
        );
        let cmd = parse(&["lease", "keep-alive", "7"]).expect("parses");
        assert!(cmd.is_live());
        assert!(parse(&["lease", "ttl", "x"]).is_err());
        assert!(matches!(
            parse(&["lease", "list"]),
            Ok(Command::Lease(LeaseCommand::List))
        ));
        let cmd = parse(&["watch", "/a", "-r", "--from", "12", "--once"]).expect("parses");
        assert!(cmd.is_live());
        assert!(matches!(
            cmd,
            Command::Watch {
                recursive: true,
                from: Some(12),
                once: true,
                ..
            }
        ));
    }

    #[test]
    fn the_command_line_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn endpoints_split_on_commas_and_flags_are_global() {
        let cli = Cli::try_parse_from(["coordctl", "ls", "/", "--endpoints", "a:1,b:2", "--json"])
            .expect("parses");
        assert_eq!(cli.endpoints, ["a:1", "b:2"]);
        assert!(cli.json);
        let cli =
            Cli::try_parse_from(["coordctl", "rm", "/a", "-r", "--version", "-1"]).expect("parses");
        assert!(matches!(
            cli.command,
            Command::Rm {
                recursive: true,
                version: -1,
                ..
            }
        ));
    }
}
