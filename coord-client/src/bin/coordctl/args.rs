//! Command-line arguments of coordctl (clap derive).

use std::time::Duration;

use clap::{Args, Parser, Subcommand};

/// Exit codes, shown after `--help` and documented in docs/coordctl.md.
const AFTER_HELP: &str = "\
Exit codes:
  0  success (for `status`: at least one endpoint answered)
  1  the cluster answered with an error (NoNode, NodeExists, NotEmpty, BadVersion, ...)
     or a local failure such as reading stdin
  2  usage error (bad flags or arguments, invalid endpoint)
  3  the cluster could not be reached or retries were exhausted
     (Unavailable, NotLeader, Timeout, Transport)

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

    /// Print one machine-readable JSON document instead of text.
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
    Create {
        /// Sequential: append a 10-digit, per-parent increasing suffix to PATH.
        #[arg(short = 's', long)]
        sequential: bool,
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
