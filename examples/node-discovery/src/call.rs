//! `node-discovery call NAME` and `resolve NAME`: traffic balanced over the
//! live view, and the view itself.
//!
//! `call` prints the membership changes its view goes through in the same
//! stream as its requests, in the order it saw them, so its output shows
//! that no request goes to an instance after the view dropped it. A request
//! whose instance does not answer (it died and its session has not expired
//! yet) is retried on the next instance of the rotation.

use std::time::Duration;

use clap::Args;
use coord_client::Client;
use coord_client::recipes::discovery::{MembershipChange, ServiceDiscovery};
use tokio::time::{Instant, MissedTickBehavior};

use crate::echo;
use crate::output::{Event, Output};
use crate::resolver::Resolver;
use example_support::interrupted;

/// Bound on one request to one instance (connect, send, answer).
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);

/// `node-discovery call`.
#[derive(Debug, Args)]
pub struct CallArgs {
    /// The service to call.
    pub name: String,
    /// Requests to send; 0 sends until Ctrl-C or SIGTERM.
    #[arg(long, default_value_t = 10)]
    pub count: u64,
    /// Time between two requests.
    #[arg(long, default_value_t = 200)]
    pub interval_ms: u64,
    /// What to send (each request appends `#SEQ`).
    #[arg(long, default_value = "hello")]
    pub message: String,
}

/// Sends the requests; fails if some request found no instance to answer.
pub async fn run(client: &Client, args: &CallArgs, out: Output) -> anyhow::Result<()> {
    let mut resolver = Resolver::start(client, &args.name).await?;
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    out.emit(&Event::View {
        service: args.name.clone(),
        instances: resolver.take_snapshot(),
    });
    let mut ticker = tokio::time::interval(Duration::from_millis(args.interval_ms));
    ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (mut seq, mut unanswered) = (0u64, 0u64);
    loop {
        tokio::select! {
            // Apply what the view learned before choosing an instance.
            biased;
            () = &mut shutdown => break,
            change = resolver.next_change() => match change {
                Some(Ok(change)) => {
                    out.emit(&changed(change));
                }
                Some(Err(err)) => return Err(err.into()),
                None => anyhow::bail!("the view of {} stopped", args.name),
            },
            _ = ticker.tick() => {
                seq += 1;
                if !call_once(&mut resolver, seq, &args.message, out).await {
                    unanswered += 1;
                }
                if seq == args.count {
                    break;
                }
            }
        }
    }
    anyhow::ensure!(
        unanswered == 0,
        "{unanswered} of {seq} requests got no answer"
    );
    Ok(())
}

/// Sends request `seq` to the next instance, moving on to the following
/// ones while they do not answer. True if one answered.
async fn call_once(resolver: &mut Resolver, seq: u64, message: &str, out: Output) -> bool {
    let attempts = resolver.instances().len().max(1);
    for _ in 0..attempts {
        let Some(instance) = resolver.pick() else {
            out.emit(&Event::NoInstance { seq });
            return false;
        };
        let started = Instant::now();
        let message = format!("{message} #{seq}");
        match echo::request(&instance.address, &message, REQUEST_TIMEOUT).await {
            Ok((answered_by, reply)) => {
                out.emit(&Event::Response {
                    seq,
                    instance: instance.id,
                    address: instance.address,
                    answered_by,
                    reply,
                    ms: started.elapsed().as_secs_f64() * 1000.0,
                });
                return true;
            }
            Err(error) => {
                out.emit(&Event::Failed {
                    seq,
                    instance: instance.id,
                    address: instance.address,
                    error,
                });
            }
        }
    }
    false
}

/// `resolve NAME [--watch]`: the instances, and with `--watch` every change
/// until interrupted.
pub async fn resolve(
    client: &Client,
    service: &str,
    watch: bool,
    out: Output,
) -> anyhow::Result<()> {
    if !watch {
        let instances = ServiceDiscovery::new(client.clone())
            .instances(service)
            .await?;
        out.emit(&Event::View {
            service: service.to_owned(),
            instances,
        });
        return Ok(());
    }
    let mut resolver = Resolver::start(client, service).await?;
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    out.emit(&Event::View {
        service: service.to_owned(),
        instances: resolver.take_snapshot(),
    });
    loop {
        let change = tokio::select! {
            change = resolver.next_change() => change,
            () = &mut shutdown => return Ok(()),
        };
        match change {
            Some(Ok(change)) => {
                if !out.emit(&changed(change)) {
                    return Ok(());
                }
            }
            Some(Err(err)) => return Err(err.into()),
            None => anyhow::bail!("the view of {service} stopped"),
        }
    }
}

/// The line for a membership change.
fn changed(change: MembershipChange) -> Event {
    match change {
        MembershipChange::Added(instance) => Event::Added { instance },
        MembershipChange::Removed(instance) => Event::Removed { instance },
        MembershipChange::Updated { old, new } => Event::Updated { old, new },
    }
}
