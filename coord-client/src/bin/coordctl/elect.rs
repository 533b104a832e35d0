//! `coordctl elect NAME [VALUE]` and `coordctl elect NAME --listen`: the
//! election recipe (`coord_client::recipes::election`) from the command line,
//! like `etcdctl elect`.

use std::time::Duration;

use clap::Args;
use coord_client::recipes::HoldState;
use coord_client::recipes::election::{self, Election, Leader, Leadership};
use coord_client::shutdown::interrupted;
use coord_client::{Client, Session};
use serde_json::{Value, json};

use crate::args::parse_duration;
use crate::commands::CliError;
use crate::live::emit;
use crate::lock::{HoldError, place};
use crate::output::{Outcome, data_json};

/// `coordctl elect`.
#[derive(Debug, Args)]
pub struct ElectArgs {
    /// The election: a path (`/elections/db`), or a plain name, placed under
    /// `/elections/`.
    pub name: String,
    /// The value to campaign with, e.g. this instance's address (default
    /// empty); observers see it while this candidate leads.
    #[arg(conflicts_with = "listen")]
    pub value: Option<String>,
    /// Do not campaign: print the leader now and at every change, until
    /// Ctrl-C or SIGTERM.
    #[arg(short = 'l', long)]
    pub listen: bool,
    /// TTL of the session owning the candidate node: if this process dies,
    /// leadership passes on after about this long.
    #[arg(long, value_name = "TTL", default_value = "10s", value_parser = parse_duration)]
    pub session_ttl: Duration,
}

/// Runs `coordctl elect`.
pub async fn run(client: &Client, args: &ElectArgs, json: bool) -> Result<Outcome, CliError> {
    let path = place(&args.name, "/elections");
    if args.listen {
        return listen(client, &path, json).await;
    }
    let session = client.session(args.session_ttl).await?;
    let value = args.value.clone().unwrap_or_default();
    let result = campaign(client, &session, &path, value, json).await;
    if let Err(err) = session.close().await {
        tracing::warn!(error = %err, "could not revoke the candidate's session");
    }
    result
}

/// Campaigns, prints the line of leadership, then reports state changes
/// until interrupted (resigns, exit 0) or leadership is lost (exit 4).
async fn campaign(
    client: &Client,
    session: &Session,
    path: &str,
    value: String,
    json: bool,
) -> Result<Outcome, CliError> {
    let election = Election::new(client.clone(), session, path);
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let leadership = tokio::select! {
        leadership = election.campaign(value.clone()) => leadership?,
        () = &mut interrupted => return Ok(Outcome::Nothing),
    };
    emit(&elected_line(&leadership, &value, json));
    let mut states = leadership.states();
    loop {
        tokio::select! {
            () = &mut interrupted => break,
            changed = states.changed() => {
                let state = *states.borrow_and_update();
                if changed.is_err() || state == HoldState::Lost {
                    let node = leadership.node().to_owned();
                    return Err(HoldError::LeadershipLost { node }.into());
                }
                if json {
                    emit(&json!({"event": state_event(state)}).to_string());
                } else {
                    eprintln!("coordctl: leadership {path}: {state:?}");
                }
            }
        }
    }
    leadership.resign().await?;
    Ok(Outcome::Nothing)
}

fn state_event(state: HoldState) -> &'static str {
    match state {
        HoldState::Held => "resumed",
        HoldState::Suspended => "suspended",
        HoldState::Lost => "lost",
    }
}

/// `elected node=... token=...` (text) or an `elected` JSON line.
fn elected_line(leadership: &Leadership, value: &str, json: bool) -> String {
    let (node, token) = (leadership.node(), leadership.token());
    if json {
        json!({"event": "elected", "node": node, "token": token, "value": value}).to_string()
    } else {
        format!("elected node={node} token={token}")
    }
}

/// Prints the leader and every change until interrupted.
async fn listen(client: &Client, path: &str, json: bool) -> Result<Outcome, CliError> {
    let mut leaders = election::observe(client, path);
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    loop {
        let item = tokio::select! {
            () = &mut interrupted => return Ok(Outcome::Nothing),
            item = leaders.next() => item,
        };
        let Some(leader) = item.transpose()? else {
            return Ok(Outcome::Nothing);
        };
        if !emit(&leader_line(leader.as_ref(), json)) {
            return Ok(Outcome::Nothing);
        }
    }
}

/// `leader node=... token=... value=...` or `no leader` (text), or
/// `{"leader": {...}}` / `{"leader": null}`.
fn leader_line(leader: Option<&Leader>, json: bool) -> String {
    match (leader, json) {
        (Some(l), false) => format!(
            "leader node={} token={} value={}",
            l.node,
            l.token,
            String::from_utf8_lossy(&l.value)
        ),
        (None, false) => "no leader".to_owned(),
        (Some(l), true) => json!({"leader": leader_json(l)}).to_string(),
        (None, true) => json!({"leader": Value::Null}).to_string(),
    }
}

fn leader_json(leader: &Leader) -> Value {
    let (value, encoding) = data_json(&leader.value);
    json!({
        "node": leader.node,
        "token": leader.token,
        "lease": leader.lease,
        "value": value,
        "encoding": encoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[test]
    fn leader_lines() {
        let leader = Leader {
            node: "/elections/db/candidate-0000000004".into(),
            value: Bytes::from_static(b"host-a:7000"),
            token: 57,
            lease: 9,
        };
        assert_eq!(
            leader_line(Some(&leader), false),
            "leader node=/elections/db/candidate-0000000004 token=57 value=host-a:7000"
        );
        assert_eq!(leader_line(None, false), "no leader");
        let doc: Value = serde_json::from_str(&leader_line(Some(&leader), true)).expect("json");
        assert_eq!(doc["leader"]["token"], 57);
        assert_eq!(doc["leader"]["value"], "host-a:7000");
        assert_eq!(leader_line(None, true), r#"{"leader":null}"#);
        assert_eq!(place("db", "/elections"), "/elections/db");
        assert_eq!(place("/e/db", "/elections"), "/e/db");
    }
}
