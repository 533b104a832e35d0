//! `leader-election`: several processes campaign for one election; exactly one
//! leads at a time and does periodic **fenced** work (a `multi` that writes
//! only while its candidate node exists); killing the leader hands leadership
//! to the next candidate within the session TTL plus an election timeout.
//!
//! Built on `coord_client::recipes::election`: the candidate nodes, the
//! fencing token, `Leadership::fenced` and the `HoldState` that turns `Lost`
//! at once are the recipe's; this program adds the campaign–lead–campaign
//! loop and the work.
//!
//! ```text
//! leader-election run a          # in three terminals: a, b, c
//! leader-election leader --watch # who leads, at every change
//! ```
//!
//! # Layout
//! - `main`: the command line and its dispatch.
//! - `campaign`: campaigning, leading (the fenced work loop), and campaigning
//!   again after leadership is lost.
//! - `output`: the lines the commands print, as text or JSON.

mod campaign;
mod output;

use clap::{Parser, Subcommand};
use coord_client::Client;
use coord_client::recipes::election;
use example_support::Connection;

use campaign::RunArgs;
use output::{Event, LeaderInfo, Output};

/// Where the election's candidate nodes live.
pub const ELECTION: &str = "/leader-election/election";
/// The node the leader's fenced work writes: the resource leadership guards.
pub const WORK: &str = "/leader-election/work";

/// Campaign for leadership; the leader does fenced work.
#[derive(Debug, Parser)]
#[command(name = "leader-election", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Campaign as ID; while leading, do fenced work every interval. Runs
    /// until Ctrl-C or SIGTERM (a leader then resigns at once).
    Run(RunArgs),
    /// Print the current leader and the last accepted work.
    Leader {
        /// Keep printing the leader at every change, until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    example_support::init_tracing(env!("CARGO_CRATE_NAME"));
    let cli = Cli::parse();
    let client = cli.conn.connect().await?;
    let out = cli.conn.output();
    match &cli.command {
        Command::Run(args) => campaign::run(&client, args, out).await,
        Command::Leader { watch: false } => show_leader(&client, out).await,
        Command::Leader { watch: true } => watch_leader(&client, out).await,
    }
}

/// `leader`: the leader now and the last work it wrote.
async fn show_leader(client: &Client, out: Output) -> anyhow::Result<()> {
    let leader = election::leader(client, ELECTION).await?;
    let work = match client.get(WORK).await {
        Ok((data, _)) => serde_json::from_slice(&data).ok(),
        Err(coord_client::Error::NoNode(_)) => None,
        Err(err) => return Err(err.into()),
    };
    out.emit(&Event::Leader {
        leader: leader.as_ref().map(LeaderInfo::from),
        work,
    });
    Ok(())
}

/// `leader --watch`: the leader at every change (the recipe's `observe`).
async fn watch_leader(client: &Client, out: Output) -> anyhow::Result<()> {
    let mut leaders = election::observe(client, ELECTION);
    let shutdown = example_support::interrupted();
    tokio::pin!(shutdown);
    loop {
        let next = tokio::select! {
            next = leaders.next() => next,
            () = &mut shutdown => return Ok(()),
        };
        let Some(leader) = next.transpose()? else {
            return Ok(());
        };
        let event = Event::Leader {
            leader: leader.as_ref().map(LeaderInfo::from),
            work: None,
        };
        if !out.emit(&event) {
            return Ok(());
        }
    }
}
