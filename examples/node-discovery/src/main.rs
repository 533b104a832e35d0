//! `node-discovery`: a service registry and client-side load balancing.
//!
//! Instances of a service (`serve`) run a tiny TCP echo server and register
//! an ephemeral node `/services/NAME/ID` with their address, port, version
//! and metadata; they stay registered while alive and vanish when they die
//! (at once when stopped politely, one session TTL after a `kill -9`).
//! Callers (`call`) keep a live view of the instances through a watch and
//! send each request to the next live instance, round-robin, so traffic
//! moves as instances come and go; `resolve` shows the view.
//!
//! Built on `coord_client::recipes::discovery`: registration, the live
//! `ServiceCache` and its change stream are the recipe's; this program adds
//! the echo service, the round-robin [`resolver`] and the command line.
//!
//! ```text
//! node-discovery serve web --port 7001     # and 7002, 7003 in other terminals
//! node-discovery resolve web --watch
//! node-discovery call web --count 0        # steady traffic; kill an instance
//! ```
//!
//! # Layout
//! - `main`: the command line and its dispatch.
//! - `echo`: the demo service's protocol: a server answering each line with
//!   its instance id, and one request from the caller's side.
//! - `serve`: `serve`: bind, register, answer until stopped, unregister.
//! - `resolver`: the live view and the round-robin choice of an instance.
//! - `call`: `call` and `resolve`: traffic over the resolver, and the view.
//! - `output`: the lines the commands print, as text or JSON.

mod call;
mod echo;
mod output;
mod resolver;
mod serve;

use clap::{Parser, Subcommand};
use example_support::Connection;

/// Register service instances and balance calls over them.
#[derive(Debug, Parser)]
#[command(name = "node-discovery", version, about)]
struct Cli {
    #[command(flatten)]
    conn: Connection,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an instance of service NAME (a TCP echo server) and keep it
    /// registered until Ctrl-C or SIGTERM.
    Serve(serve::ServeArgs),
    /// Print the live instances of service NAME.
    Resolve {
        /// The service.
        name: String,
        /// Keep printing every change of membership, until Ctrl-C.
        #[arg(long)]
        watch: bool,
    },
    /// Send requests to service NAME, round-robin over its live instances,
    /// printing which instance answered each.
    Call(call::CallArgs),
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    example_support::init_tracing(env!("CARGO_CRATE_NAME"));
    let cli = Cli::parse();
    let client = cli.conn.connect().await?;
    let out = cli.conn.output();
    match &cli.command {
        Command::Serve(args) => serve::run(&client, args, out).await,
        Command::Resolve { name, watch } => call::resolve(&client, name, *watch, out).await,
        Command::Call(args) => call::run(&client, args, out).await,
    }
}
