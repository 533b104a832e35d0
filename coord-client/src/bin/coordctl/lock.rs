//! `coordctl lock NAME [-- COMMAND ...]`: the mutex recipe
//! (`coord_client::recipes::mutex`) from the command line, like `etcdctl
//! lock`: acquire, then run COMMAND with the fencing token in its environment
//! (or hold until Ctrl-C/SIGTERM), then release.

use std::os::unix::process::ExitStatusExt;
use std::process::ExitStatus;
use std::time::Duration;

use clap::Args;
use coord_client::recipes::mutex::Mutex;
use coord_client::recipes::{HoldState, LockGuard};
use coord_client::shutdown::interrupted;
use coord_client::{Client, Session};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::json;
use tokio::process::Child;
use tokio::sync::watch;

use crate::args::parse_duration;
use crate::commands::{CliError, seconds};
use crate::live::emit;
use crate::output::Outcome;

/// How long a command gets to exit after SIGTERM before it is killed.
const TERMINATE_GRACE: Duration = Duration::from_secs(5);

/// `coordctl lock`.
#[derive(Debug, Args)]
pub struct LockArgs {
    /// The lock: a path (`/locks/db`), or a plain name, placed under `/locks/`.
    pub name: String,
    /// TTL of the session owning the lock node: if this process dies, the
    /// lock passes on after about this long.
    #[arg(long, value_name = "TTL", default_value = "10s", value_parser = parse_duration)]
    pub session_ttl: Duration,
    /// Give up (exit code 5) unless the lock is acquired within this long
    /// (default: wait until it is).
    #[arg(long, value_name = "T", value_parser = parse_duration)]
    pub wait: Option<Duration>,
    /// Run this while holding the lock, with COORD_LOCK_TOKEN, COORD_LOCK_NODE
    /// and COORD_ENDPOINTS set; coordctl exits with its status. Without it,
    /// hold the lock until Ctrl-C or SIGTERM.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// Why a lock or election command ended without success.
#[derive(Debug, thiserror::Error)]
pub enum HoldError {
    /// The lock was lost while held (session expired, node deleted).
    #[error("lost the lock {node}")]
    LockLost {
        /// The lock node.
        node: String,
    },
    /// Leadership was lost (session expired, node deleted).
    #[error("lost leadership {node}")]
    LeadershipLost {
        /// The candidate node.
        node: String,
    },
    /// The lock was not acquired (`--wait` elapsed, or interrupted).
    #[error("lock {path} not acquired: {why}")]
    NotAcquired {
        /// The lock.
        path: String,
        /// What stopped the wait.
        why: String,
    },
    /// COMMAND could not be started.
    #[error("could not run {program}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// COMMAND ran and failed; coordctl exits with its code.
    #[error("the command {status}")]
    CommandFailed {
        /// How it ended.
        status: ExitStatus,
    },
}

impl HoldError {
    /// The name printed in `Error: <Name>: <message>`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::LockLost { .. } => "LockLost",
            Self::LeadershipLost { .. } => "LeadershipLost",
            Self::NotAcquired { .. } => "NotAcquired",
            Self::Spawn { .. } => "Spawn",
            Self::CommandFailed { .. } => "CommandFailed",
        }
    }

    /// The exit code: 4 lost, 5 not acquired, 126/127 not runnable (as
    /// shells), else the command's own code (128 + signal if killed).
    pub fn exit_code(&self) -> u8 {
        match self {
            Self::LockLost { .. } | Self::LeadershipLost { .. } => 4,
            Self::NotAcquired { .. } => 5,
            Self::Spawn { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 127,
            Self::Spawn { .. } => 126,
            Self::CommandFailed { status } => {
                let code = status.code().or_else(|| status.signal().map(|s| 128 + s));
                code.and_then(|c| u8::try_from(c).ok()).unwrap_or(1)
            }
        }
    }
}

/// NAME as a path: itself if absolute, else under `root`.
pub fn place(name: &str, root: &str) -> String {
    if name.starts_with('/') {
        name.to_owned()
    } else {
        format!("{root}/{name}")
    }
}

/// Runs `coordctl lock`; the session is revoked at the end, whatever happens.
pub async fn run(client: &Client, args: &LockArgs, json: bool) -> Result<Outcome, CliError> {
    let path = place(&args.name, "/locks");
    let session = client.session(args.session_ttl).await?;
    let result = hold(client, &session, &path, args, json).await;
    if let Err(err) = session.close().await {
        tracing::warn!(error = %err, "could not revoke the lock's session");
    }
    result
}

async fn hold(
    client: &Client,
    session: &Session,
    path: &str,
    args: &LockArgs,
    json: bool,
) -> Result<Outcome, CliError> {
    let mutex = Mutex::new(client.clone(), session, path);
    let not_acquired = |why: String| HoldError::NotAcquired {
        path: path.to_owned(),
        why,
    };
    let acquired = async {
        match args.wait {
            Some(wait) => mutex.lock_timeout(wait).await,
            None => mutex.lock().await.map(Some),
        }
    };
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    let guard = tokio::select! {
        guard = acquired => guard?,
        () = &mut interrupted => return Err(not_acquired("interrupted".into()).into()),
    };
    let Some(guard) = guard else {
        let waited = seconds(args.wait.unwrap_or_default());
        return Err(not_acquired(format!("not within {waited}")).into());
    };
    let line = acquired_line(path, &guard, json);
    if let Some((program, rest)) = args.command.split_first() {
        eprintln!("coordctl: {line}");
        let status = run_command(client, &guard, path, program, rest, interrupted).await?;
        guard.unlock().await?;
        if !status.success() {
            return Err(HoldError::CommandFailed { status }.into());
        }
    } else {
        emit(&line);
        tokio::select! {
            () = follow(guard.states(), path) => return Err(lost(&guard)),
            () = interrupted => {}
        }
        guard.unlock().await?;
    }
    Ok(Outcome::Nothing)
}

/// The line printed once the lock is held.
fn acquired_line(path: &str, guard: &LockGuard, json: bool) -> String {
    if json {
        json!({"event": "acquired", "lock": path, "node": guard.node(), "token": guard.token()})
            .to_string()
    } else {
        format!("acquired node={} token={}", guard.node(), guard.token())
    }
}

fn lost(guard: &LockGuard) -> CliError {
    HoldError::LockLost {
        node: guard.node().to_owned(),
    }
    .into()
}

/// Reports `Suspended`/`Held` changes on stderr; returns once `Lost`.
pub async fn follow(mut states: watch::Receiver<HoldState>, what: &str) {
    loop {
        let state = *states.borrow_and_update();
        if state == HoldState::Lost {
            return;
        }
        if states.changed().await.is_err() {
            return;
        }
        let now = *states.borrow();
        if now != HoldState::Lost {
            eprintln!("coordctl: {what}: {now:?}");
        }
    }
}

/// Runs COMMAND while the lock is held. If the lock is lost or coordctl is
/// interrupted, the command gets SIGTERM (then SIGKILL after a grace period).
async fn run_command(
    client: &Client,
    guard: &LockGuard,
    path: &str,
    program: &str,
    rest: &[String],
    interrupted: impl Future<Output = ()>,
) -> Result<ExitStatus, CliError> {
    let mut child = tokio::process::Command::new(program)
        .args(rest)
        .env("COORD_LOCK_TOKEN", guard.token().to_string())
        .env("COORD_LOCK_NODE", guard.node())
        .env("COORD_ENDPOINTS", client.endpoints().join(","))
        .kill_on_drop(true)
        .spawn()
        .map_err(|source| spawn_error(program, source))?;
    tokio::select! {
        status = child.wait() => Ok(status.map_err(|e| spawn_error(program, e))?),
        () = follow(guard.states(), path) => {
            if let Err(err) = terminate(&mut child).await {
                tracing::warn!(error = %err, "could not stop the command");
            }
            Err(lost(guard))
        }
        () = interrupted => Ok(terminate(&mut child).await.map_err(|e| spawn_error(program, e))?),
    }
}

fn spawn_error(program: &str, source: std::io::Error) -> HoldError {
    HoldError::Spawn {
        program: program.to_owned(),
        source,
    }
}

/// SIGTERM, then SIGKILL if the child has not exited after the grace period.
async fn terminate(child: &mut Child) -> std::io::Result<ExitStatus> {
    if let Some(pid) = child.id().and_then(|id| i32::try_from(id).ok()) {
        let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    }
    match tokio::time::timeout(TERMINATE_GRACE, child.wait()).await {
        Ok(status) => status,
        Err(_) => {
            child.start_kill()?;
            child.wait().await
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::args::{Cli, Command};
    use clap::Parser;

    #[test]
    fn lock_arguments_and_exit_codes() {
        let cli = Cli::try_parse_from(["coordctl", "lock", "db", "--wait", "2s", "--", "ls", "-l"])
            .expect("parses");
        let Command::Lock(args) = cli.command else {
            panic!("not a lock: {:?}", cli.command);
        };
        assert_eq!(args.command, ["ls", "-l"]);
        assert_eq!(args.wait, Some(Duration::from_secs(2)));
        assert_eq!(place(&args.name, "/locks"), "/locks/db");
        let lost = HoldError::LockLost {
            node: "/l/lock-1".into(),
        };
        assert_eq!((lost.name(), lost.exit_code()), ("LockLost", 4));
        let missing = HoldError::Spawn {
            program: "nope".into(),
            source: std::io::ErrorKind::NotFound.into(),
        };
        assert_eq!(missing.exit_code(), 127);
        let failed = HoldError::CommandFailed {
            status: ExitStatus::from_raw(3 << 8),
        };
        assert_eq!(failed.exit_code(), 3);
        let killed = HoldError::CommandFailed {
            status: ExitStatus::from_raw(9),
        };
        assert_eq!(killed.exit_code(), 137);
    }
}
