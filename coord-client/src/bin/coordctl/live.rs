//! The commands that run until interrupted (Ctrl-C or SIGTERM) and print as
//! they go, one line per thing that happened: `create -e` (holds a session),
//! `lease keep-alive` and `watch`. Session state changes go to stderr.

use std::io::Write;

use coord_client::shutdown::interrupted;
use coord_client::{Client, Session, SessionState, WatchItem, WatchOptions};

use crate::args::Command;
use crate::commands::{CliError, create_data, create_options};
use crate::leases::{renewal_line, watch_line};
use crate::output::{self, Outcome};

/// Prints one line and flushes it; false when stdout is gone (a closed pipe),
/// which ends the command quietly.
pub fn emit(line: &str) -> bool {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
}

/// Prints `line`, then keeps `session` open until interrupted (or until
/// stdout is gone), telling its state changes on stderr. Fails with
/// `Expired` if the session is lost meanwhile; the caller closes it.
pub async fn hold(session: &Session, line: &str) -> Result<(), CliError> {
    let id = session.id();
    let mut states = session.states();
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let mut open = emit(line);
    while open {
        tokio::select! {
            () = &mut interrupted => open = false,
            changed = states.changed() => {
                let state = *states.borrow_and_update();
                if changed.is_err() || state == SessionState::Expired {
                    return Err(CliError::Expired { id });
                }
                eprintln!("coordctl: session {id}: {state:?}");
            }
        }
    }
    Ok(())
}

/// `create -e` without `--lease`: opens a session, creates the node, prints it
/// and keeps the session alive until interrupted, then revokes it. Fails with
/// `Expired` (exit code 4) if the session is lost meanwhile.
pub async fn hold_ephemeral(
    client: &Client,
    command: &Command,
    json: bool,
) -> Result<Outcome, CliError> {
    let Command::Create {
        path,
        data,
        session_ttl,
        ..
    } = command
    else {
        return Ok(Outcome::Nothing);
    };
    let data = create_data(data.as_deref())?;
    let session = client.session(*session_ttl).await?;
    let id = session.id();
    let options = create_options(command, Some(id));
    let created = match client.create(path, data, options).await {
        Ok(created) => created,
        Err(err) => {
            let _ = session.close().await;
            return Err(err.into());
        }
    };
    let line = if json {
        output::to_json(&Outcome::Created(created)).to_string()
    } else {
        created.path
    };
    hold(&session, &line).await?;
    session.close().await?;
    Ok(Outcome::Nothing)
}

/// `lease keep-alive ID`: keeps an existing lease alive (as a session, with
/// failover) and prints each renewal until interrupted; the lease is left to
/// expire by itself afterwards. Fails with `Expired` (exit code 4) if it is lost.
pub async fn keep_alive(client: &Client, id: u64, json: bool) -> Result<Outcome, CliError> {
    let session = client.session_from_lease(id).await?;
    let mut renewals = session.renewals();
    let mut states = session.states();
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    loop {
        tokio::select! {
            () = &mut interrupted => return Ok(Outcome::Nothing),
            changed = renewals.changed() => {
                let renewal = renewals.borrow_and_update().clone();
                if let Some(alive) = renewal.filter(|_| changed.is_ok())
                    && !emit(&renewal_line(id, alive.ttl, json))
                {
                    return Ok(Outcome::Nothing);
                }
            }
            changed = states.changed() => {
                let state = *states.borrow_and_update();
                if changed.is_err() || state == SessionState::Expired {
                    return Err(CliError::Expired { id });
                }
                eprintln!("coordctl: lease {id}: {state:?}");
            }
        }
    }
}

/// `watch PATH`: prints every change until interrupted (or, with `--once`,
/// the first one).
pub async fn watch(
    client: &Client,
    path: &str,
    options: WatchOptions,
    once: bool,
    json: bool,
) -> Result<Outcome, CliError> {
    let mut stream = client.watch(path, options).await?;
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    loop {
        let item = tokio::select! {
            () = &mut interrupted => return Ok(Outcome::Nothing),
            item = stream.next() => item,
        };
        let item = match item {
            Some(item) => item?,
            None => return Ok(Outcome::Nothing),
        };
        if let Some(line) = watch_line(path, &item, json)
            && !emit(&line)
        {
            return Ok(Outcome::Nothing);
        }
        if once && matches!(item, WatchItem::Event(_)) {
            return Ok(Outcome::Nothing);
        }
    }
}
