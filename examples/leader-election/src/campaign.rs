//! Campaigning and leading: the loop every `leader-election run` process
//! goes through.
//!
//! 1. open a session and campaign (`Election::campaign`), which waits until
//!    this candidate's node is the lowest;
//! 2. lead: every interval write the work node with a fenced `multi`
//!    (`[check(candidate node), set(work)]`), so a write is applied only while
//!    this process still leads — a leader that was paused past its TTL and
//!    resumes cannot overwrite its successor's work, whatever it believes;
//! 3. on `Lost` (session expired or node deleted) or a refused write, stop
//!    working at once and campaign again with a new session; on Ctrl-C or
//!    SIGTERM resign (delete the node) so the next candidate leads at once.

use example_support::interrupted;
use std::time::Duration;

use clap::Args;
use coord_client::recipes::HoldState;
use coord_client::recipes::election::{Election, Leadership};
use coord_client::{Client, CreateMode, Error, Op, OpResult};
use serde_json::json;
use tokio::time::MissedTickBehavior;

use crate::output::{Event, Output};
use crate::{ELECTION, WORK};

/// How long a stopping leader tries to resign before it gives up and lets
/// its session expire instead (the cluster may be unreachable).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `leader-election run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// This candidate's name, shown to observers while it leads.
    pub id: String,
    /// Time between two pieces of fenced work while leading.
    #[arg(long, default_value_t = 500)]
    pub interval_ms: u64,
    /// TTL of the session that owns the candidate node: a leader that dies
    /// is replaced about this long after its last keep-alive.
    #[arg(long, default_value_t = 2000)]
    pub session_ttl_ms: u64,
}

/// How a term of leadership ended.
enum Ended {
    /// Ctrl-C or SIGTERM: resign and exit.
    Shutdown,
    /// Leadership was lost (or a fenced write refused): campaign again.
    Lost,
}

/// Campaigns, leads, and campaigns again, until interrupted.
pub async fn run(client: &Client, args: &RunArgs, out: Output) -> anyhow::Result<()> {
    ensure_work_node(client).await?;
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    loop {
        let session = client
            .session(Duration::from_millis(args.session_ttl_ms))
            .await?;
        let election = Election::new(client.clone(), &session, ELECTION);
        out.emit(&Event::Campaigning {
            id: args.id.clone(),
        });
        let campaign = tokio::select! {
            campaign = election.campaign(args.id.clone()) => campaign,
            () = &mut shutdown => {
                let _ = session.close().await;
                return Ok(());
            }
        };
        let leadership = match campaign {
            Ok(leadership) => leadership,
            Err(Error::LeaseNotFound(_)) => {
                tracing::warn!("session expired while campaigning; campaigning again");
                continue;
            }
            Err(err) => return Err(err.into()),
        };
        let ended = lead(client, &leadership, args, out, &mut shutdown).await;
        let token = leadership.token();
        match ended {
            Ended::Shutdown => {
                let stop = async {
                    let resigned = leadership.resign().await;
                    let _ = session.close().await;
                    resigned
                };
                match tokio::time::timeout(SHUTDOWN_GRACE, stop).await {
                    Ok(Ok(())) => {
                        out.emit(&Event::Resigned {
                            id: args.id.clone(),
                            token,
                        });
                    }
                    Ok(Err(err)) => return Err(err.into()),
                    Err(_) => tracing::warn!(
                        "cluster unreachable: leadership ends when the session expires"
                    ),
                }
                return Ok(());
            }
            Ended::Lost => {
                drop(leadership);
                // Whether the session expired or only the node went, a fresh
                // session makes the next campaign independent of the old one.
                let _ = session.close().await;
            }
        }
    }
}

/// Leads until leadership is lost or the process is asked to stop.
async fn lead(
    client: &Client,
    leadership: &Leadership,
    args: &RunArgs,
    out: Output,
    shutdown: &mut (impl Future<Output = ()> + Unpin),
) -> Ended {
    let (id, token) = (args.id.clone(), leadership.token());
    out.emit(&Event::Elected {
        id: id.clone(),
        token,
        node: leadership.node().to_owned(),
    });
    let mut states = leadership.states();
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut tick = 0u64;
    loop {
        tokio::select! {
            // Hearing that leadership is lost beats doing more work.
            biased;
            () = &mut *shutdown => return Ended::Shutdown,
            changed = states.changed() => {
                let state = *states.borrow_and_update();
                if changed.is_err() || state == HoldState::Lost {
                    out.emit(&Event::Lost { id, token });
                    return Ended::Lost;
                }
                let id = id.clone();
                out.emit(&match state {
                    HoldState::Suspended => Event::Suspended { id },
                    _ => Event::Resumed { id },
                });
            }
            _ = ticker.tick() => {
                if leadership.state() != HoldState::Held {
                    continue; // Suspended: pause the work until we know.
                }
                tick += 1;
                match work(client, leadership, &id, tick).await {
                    Ok(zxid) => {
                        out.emit(&Event::Work { id: id.clone(), token, tick, zxid });
                    }
                    Err(err) if leadership.fence_failed(&err) => {
                        out.emit(&Event::Fenced { id, token, tick });
                        return Ended::Lost;
                    }
                    Err(err) => tracing::warn!(error = %err, tick, "work failed; next tick"),
                }
            }
        }
    }
}

/// One piece of fenced work: writes who did it, with which token, as tick
/// `tick`. Returns the zxid of the write (the work node's new `mzxid`).
async fn work(client: &Client, leadership: &Leadership, id: &str, tick: u64) -> Result<u64, Error> {
    let data = json!({"leader": id, "token": leadership.token(), "tick": tick}).to_string();
    let results = client
        .multi(leadership.fenced([Op::set(WORK, data, -1)]))
        .await?;
    match results.get(1) {
        Some(OpResult::Set(stat)) => Ok(stat.mzxid),
        _ => Ok(0),
    }
}

/// Creates the work node (and its parent) if missing.
async fn ensure_work_node(client: &Client) -> Result<(), Error> {
    let parent = WORK.rsplit_once('/').map_or("/", |(p, _)| p);
    for (path, data) in [(parent, ""), (WORK, "{}")] {
        match client.create(path, data, CreateMode::Persistent).await {
            Ok(_) | Err(Error::NodeExists(_)) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(())
}
