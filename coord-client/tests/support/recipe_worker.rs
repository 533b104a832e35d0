//! `coord-recipe-worker`: a client process for the multi-process lock and
//! election tests (`tests/locks.rs`, `tests/election.rs`), which start several
//! of them and kill or stop them. It prints one JSON line per thing it did.
//!
//! - `mutex`: takes the lock again and again and adds one to a counter
//!   (`"<count> <token>"`) with a fenced multi, until the counter reaches
//!   `--target`; prints `{"count", "token"}` per increment.
//! - `elect`: campaigns, then every 100 ms writes `--owner` with a fenced
//!   multi; prints `elected`, every state change and every write's outcome.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};
use coord_client::recipes::election::{Election, Leadership};
use coord_client::recipes::mutex::Mutex;
use coord_client::recipes::{HoldState, LockGuard};
use coord_client::{Client, Error, Op};
use serde_json::{Value, json};

#[derive(Debug, Parser)]
struct Cli {
    /// Client endpoints, comma-separated.
    #[arg(long, value_delimiter = ',')]
    endpoints: Vec<String>,
    /// Session TTL in milliseconds.
    #[arg(long, default_value_t = 2000)]
    session_ttl_ms: u64,
    #[command(subcommand)]
    role: Role,
}

#[derive(Debug, Subcommand)]
enum Role {
    /// Increment `counter` under `lock` until it reaches `target`.
    Mutex {
        lock: String,
        counter: String,
        target: u64,
    },
    /// Campaign in `election` with `value`, then keep writing `owner`.
    Elect {
        election: String,
        value: String,
        owner: String,
    },
}

fn say(doc: &Value) {
    let mut out = std::io::stdout().lock();
    // A closed pipe means the test is gone; nothing to do about it.
    let _ = writeln!(out, "{doc}").and_then(|()| out.flush());
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let run = async {
        let client = Client::connect(cli.endpoints.clone()).await?;
        let session = client
            .session(Duration::from_millis(cli.session_ttl_ms))
            .await?;
        match &cli.role {
            Role::Mutex {
                lock,
                counter,
                target,
            } => {
                let mutex = Mutex::new(client.clone(), &session, lock);
                increment(&client, &mutex, counter, *target).await
            }
            Role::Elect {
                election,
                value,
                owner,
            } => {
                let election = Election::new(client.clone(), &session, election);
                lead(&client, &election, value, owner).await
            }
        }
    };
    match run.await {
        Ok(code) => ExitCode::from(code),
        Err(err) => {
            say(&json!({"error": err.name(), "message": err.to_string()}));
            ExitCode::from(1)
        }
    }
}

/// Adds one to `counter` per acquisition until it holds `target`.
async fn increment(
    client: &Client,
    mutex: &Mutex,
    counter: &str,
    target: u64,
) -> Result<u8, Error> {
    loop {
        let guard = mutex.lock().await?;
        let (data, _) = client.get(counter).await?;
        let text = String::from_utf8_lossy(&data).into_owned();
        let mut fields = text.split(' ').map(|f| f.parse::<u64>().unwrap_or(0));
        let (count, last_token) = (fields.next().unwrap_or(0), fields.next().unwrap_or(0));
        if count >= target {
            guard.unlock().await?;
            return Ok(0);
        }
        if guard.token() <= last_token {
            say(&json!({"violation": "token", "token": guard.token(), "last": last_token}));
        }
        // Any version on purpose: only the lock keeps increments from being lost.
        let next = format!("{} {}", count + 1, guard.token());
        let write = Op::set(counter, next, -1);
        match client.multi(guard.fenced([write])).await {
            Ok(_) => say(&json!({"count": count + 1, "token": guard.token()})),
            Err(err) if guard.fence_failed(&err) => say(&json!({"fenced": guard.token()})),
            Err(err) => return Err(err),
        }
        guard.unlock().await?;
    }
}

/// Campaigns, then writes `owner` every 100 ms until leadership is lost;
/// then tries one more fenced write and exits with 4.
async fn lead(client: &Client, election: &Election, value: &str, owner: &str) -> Result<u8, Error> {
    let leadership = election.campaign(value.to_owned()).await?;
    let (node, token) = (leadership.node(), leadership.token());
    say(&json!({"event": "elected", "node": node, "token": token, "value": value}));
    let mut states = leadership.states();
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    loop {
        tokio::select! {
            _ = states.changed() => {
                let state = *states.borrow_and_update();
                say(&json!({"event": format!("{state:?}")}));
                if state == HoldState::Lost {
                    write(client, &leadership, owner, value).await?;
                    return Ok(4);
                }
            }
            _ = tick.tick() => write(client, &leadership, owner, value).await?,
        }
    }
}

/// One fenced write of `owner`; prints its outcome (and, if applied, its zxid).
async fn write(
    client: &Client,
    leadership: &Leadership,
    owner: &str,
    value: &str,
) -> Result<(), Error> {
    let guard: &LockGuard = leadership.guard();
    let data = format!("{value} {}", guard.token());
    match client
        .multi_with_header(guard.fenced([Op::set(owner, data, -1)]))
        .await
    {
        Ok(done) => say(&json!({"event": "write", "ok": true, "zxid": done.header.zxid})),
        Err(err) if guard.fence_failed(&err) => {
            say(&json!({"event": "write", "ok": false, "error": err.name()}));
        }
        Err(err) => return Err(err),
    }
    Ok(())
}
