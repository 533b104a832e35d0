//! `coordctl`: the command line of coord. It inspects and changes the znode
//! tree and shows each member's status; see `coordctl --help` and
//! docs/coordctl.md.
//!
//! # Layout
//! - `args`: the clap command line, exit-code help and duration parsing.
//! - `commands`: runs a command with a [`coord_client::Client`]; exit codes.
//! - `live`: the commands that run until interrupted (`create -e`,
//!   `lease keep-alive`, `watch`) and print as they go.
//! - `leases`: renderings of leases and watch events.
//! - `services`, `queue`, `completion`: the recipe commands (`services`,
//!   `queue`) and shell completion scripts.
//! - `lock`, `elect`: the lock and election recipes (`lock NAME -- COMMAND`,
//!   `elect NAME [VALUE]`, `elect --listen`).
//! - `walk`: subtree listing (`tree`) and bottom-up deletion (`rm -r`).
//! - `output`: the [`output::Outcome`] of a command as text or JSON.
//! - `table`: the `tree` and `status` renderings.
//! - `encode`: base64 and UTC time formatting without extra dependencies.

mod args;
mod commands;
mod completion;
mod elect;
mod encode;
mod leases;
mod live;
mod lock;
mod output;
mod queue;
mod services;
mod table;
mod walk;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use coord_client::{Client, Error, ErrorInfo};

use crate::args::Cli;
use crate::commands::CliError;
use crate::output::Outcome;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    // Live commands run until interrupted: --timeout bounds each of their calls.
    let result = if cli.command.is_live() {
        execute(&cli).await
    } else {
        tokio::time::timeout(cli.timeout, execute(&cli))
            .await
            .unwrap_or_else(|_| Err(overall_timeout(cli.timeout)))
    };
    match result {
        Ok(outcome) => print_outcome(&cli, &outcome),
        Err(err) => {
            print_error(&cli, &err);
            ExitCode::from(err.exit_code())
        }
    }
}

async fn execute(cli: &Cli) -> Result<Outcome, CliError> {
    let client = Client::builder(cli.endpoints.iter().map(String::as_str))
        .connect_timeout(cli.timeout.min(Duration::from_secs(2)))
        .request_timeout(cli.timeout.min(Duration::from_secs(5)))
        .retry_timeout(cli.timeout)
        .build()
        .await?;
    commands::run(&client, cli).await
}

fn overall_timeout(timeout: Duration) -> CliError {
    CliError::Coord(Error::Timeout(ErrorInfo::from_message(format!(
        "no result within {timeout:?} (--timeout)"
    ))))
}

fn print_outcome(cli: &Cli, outcome: &Outcome) -> ExitCode {
    if matches!(outcome, Outcome::Nothing) {
        return ExitCode::SUCCESS;
    }
    let stdout = std::io::stdout();
    let terminal = stdout.is_terminal();
    let mut out = stdout.lock();
    let written = if cli.json {
        writeln!(out, "{}", output::to_json(outcome))
    } else {
        output::render_text(outcome, &mut out, terminal)
    }
    .and_then(|()| out.flush());
    if let Err(err) = written
        && err.kind() != std::io::ErrorKind::BrokenPipe
    {
        eprintln!("Error: Stdout: {err}");
        return ExitCode::FAILURE;
    }
    // `status` fails only when no endpoint answered; its rows show each error.
    if let Outcome::Status(rows) = outcome
        && let Some(Err(first)) = rows.first().map(|r| &r.result)
        && rows.iter().all(|r| r.result.is_err())
    {
        eprintln!("Error: {}: no endpoint answered", first.name());
        return ExitCode::from(commands::exit_code(first));
    }
    ExitCode::SUCCESS
}

fn print_error(cli: &Cli, err: &CliError) {
    eprintln!("Error: {}: {err}", err.name());
    if cli.json {
        let doc = output::error_json(err.name(), &err.to_string());
        let _ = writeln!(std::io::stdout().lock(), "{doc}");
    }
}
