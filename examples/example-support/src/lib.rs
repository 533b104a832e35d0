//! What every example app's command line shares, so each example's code is
//! about its recipe and not about plumbing: the `--endpoints` and `--json`
//! flags and connecting with them ([`Connection`]), logs to stderr
//! ([`init_tracing`]), one text or JSON line per event ([`Output`]), and
//! waiting for Ctrl-C or SIGTERM ([`interrupted`]).

use std::fmt::Display;
use std::io::Write;

use anyhow::Context;
use coord_client::Client;
/// Ctrl-C or SIGTERM, with its handlers in place from the call on (see
/// [`coord_client::shutdown::interrupted`]).
pub use coord_client::shutdown::interrupted;
use serde::Serialize;
use tracing_subscriber::EnvFilter;

/// The flags every example takes: flatten into the app's clap parser with
/// `#[command(flatten)]`.
#[derive(Debug, Clone, clap::Args)]
pub struct Connection {
    /// Cluster members, `host:port` separated by commas.
    #[arg(
        long,
        global = true,
        env = "COORD_ENDPOINTS",
        default_value = "127.0.0.1:2390",
        value_delimiter = ','
    )]
    pub endpoints: Vec<String>,
    /// Print one JSON document per line instead of text.
    #[arg(long, global = true)]
    pub json: bool,
}

impl Connection {
    /// A client of the cluster the flags name.
    pub async fn connect(&self) -> anyhow::Result<Client> {
        Client::connect(self.endpoints.clone())
            .await
            .context("connecting to the cluster")
    }

    /// Where the app's lines go, as the flags say.
    pub fn output(&self) -> Output {
        Output::new(self.json)
    }
}

/// Logs go to stderr (stdout is the program's output); `RUST_LOG` overrides
/// the default of `crate_name`'s info and everything else's warnings.
pub fn init_tracing(crate_name: &str) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new(format!("{crate_name}=info,warn")));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .init();
}

/// Where lines go: stdout, as text or JSON.
#[derive(Debug, Clone, Copy)]
pub struct Output {
    /// JSON lines instead of text.
    pub json: bool,
}

impl Output {
    /// Text lines, or JSON lines if `json`.
    pub fn new(json: bool) -> Self {
        Output { json }
    }

    /// Prints `event` and flushes; false if stdout is gone (closed pipe).
    pub fn emit<E: Serialize + Display>(&self, event: &E) -> bool {
        let line = self.render(event);
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    }

    /// The line [`Output::emit`] prints for `event`.
    pub fn render<E: Serialize + Display>(&self, event: &E) -> String {
        if self.json {
            serde_json::to_string(event).unwrap_or_default()
        } else {
            event.to_string()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        conn: Connection,
    }

    #[derive(Serialize)]
    struct Event {
        n: u32,
    }

    impl Display for Event {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "event {}", self.n)
        }
    }

    #[test]
    fn flags_and_lines() {
        let cli = Cli::parse_from(["app", "--endpoints", "a:1,b:2", "--json"]);
        assert_eq!(cli.conn.endpoints, ["a:1", "b:2"]);
        assert_eq!(cli.conn.output().render(&Event { n: 3 }), r#"{"n":3}"#);
        assert_eq!(Output::new(false).render(&Event { n: 3 }), "event 3");
    }
}
