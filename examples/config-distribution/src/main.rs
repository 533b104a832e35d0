//! `config-distribution`: an operator sets a JSON config at a path (with this
//! program or `coordctl set`); every running process follows it through a
//! watch and prints the version it runs, so a fleet converges on each change
//! without polling or restarting.
//!
//! Built on `coord_client::recipes::config::ConfigHandle`: the persistent
//! watch, the re-read on each change and the value that only moves forward
//! are the recipe's; this program adds the command line.
//!
//! ```text
//! config-distribution run app-1                      # in a few terminals
//! config-distribution set '{"workers": 4, "mode": "fast"}'
//! config-distribution edit workers 8                 # compare-and-set
//! ```
//!
//! # Layout
//! - `main`: the command line and its dispatch.
//! - `follow`: `run`: wait for the config, then report every version.
//! - `operator`: `set`, `edit` and `get`: writing and reading the config.
//! - `output`: the lines the commands print, as text or JSON.

mod follow;
mod operator;
mod output;

use anyhow::Context;
use clap::{Parser, Subcommand};
use example_support::Connection;

/// Distribute a JSON config to running processes.
#[derive(Debug, Parser)]
#[command(name = "config-distribution", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    /// The config's node.
    #[arg(long, global = true, default_value = "/config/app")]
    path: String,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run as process NAME: print the config version now and at every
    /// change, until Ctrl-C or SIGTERM. Waits for the config if it is not
    /// set yet.
    Run {
        /// This process's name, in its output.
        name: String,
    },
    /// Replace the whole config with a JSON document (creating it if needed).
    Set {
        /// The config, as JSON text.
        #[arg(required_unless_present = "file", conflicts_with = "file")]
        config: Option<String>,
        /// Read the config from this JSON file instead.
        #[arg(long)]
        file: Option<std::path::PathBuf>,
    },
    /// Set one top-level key with compare-and-set: a concurrent writer's
    /// change is never lost (the edit is re-applied on top of it).
    Edit {
        /// The key.
        key: String,
        /// Its new value, as JSON (a bare word is taken as a string).
        value: String,
    },
    /// Print the config and its version.
    Get,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    example_support::init_tracing(env!("CARGO_CRATE_NAME"));
    let cli = Cli::parse();
    let client = cli.conn.connect().await?;
    let out = cli.conn.output();
    match cli.command {
        Command::Run { name } => follow::run(&client, &cli.path, &name, out).await,
        Command::Set { config, file } => {
            let text = match (config, file) {
                (Some(text), _) => text,
                (None, Some(file)) => std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?,
                (None, None) => anyhow::bail!("give the config or --file"),
            };
            operator::set(&client, &cli.path, &text, out).await
        }
        Command::Edit { key, value } => operator::edit(&client, &cli.path, &key, &value, out).await,
        Command::Get => operator::get(&client, &cli.path, out).await,
    }
}
