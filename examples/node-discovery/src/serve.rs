//! `node-discovery serve NAME --port P`: one instance of a service.
//!
//! It binds its echo server first (so it is ready before anyone can find
//! it), registers `/services/NAME/ID` with a session, answers requests, and
//! on Ctrl-C or SIGTERM unregisters before it stops, so callers drop it at
//! once. If it dies instead, the server deletes the node when the session
//! expires. If its session is lost while it runs (a long pause, a partition),
//! it registers again with a new session.

use std::time::Duration;

use anyhow::Context;
use clap::Args;
use coord_client::recipes::discovery::{DiscoveryError, Instance, Registration, ServiceDiscovery};
use coord_client::{Client, Error, Session};
use serde_json::{Map, Value, json};
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::output::{Event, Output};
use example_support::interrupted;

/// How long a stopping instance tries to unregister before it gives up and
/// lets its session expire instead (the cluster may be unreachable).
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// `node-discovery serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The service this is an instance of.
    pub name: String,
    /// Port to listen on (0: any free port).
    #[arg(long, default_value_t = 0)]
    pub port: u16,
    /// Address to listen on, and to register.
    #[arg(long, default_value = "127.0.0.1")]
    pub host: String,
    /// Instance id (default: NAME-PORT).
    #[arg(long)]
    pub id: Option<String>,
    /// The version this instance runs, registered in its metadata.
    #[arg(long = "app-version", default_value = env!("CARGO_PKG_VERSION"))]
    pub app_version: String,
    /// More metadata, `KEY=VALUE` (repeatable), e.g. `--meta zone=eu-1`.
    #[arg(long = "meta", value_parser = key_value)]
    pub meta: Vec<(String, String)>,
    /// TTL of the session that keeps the registration: a killed instance
    /// leaves every view about this long after its last keep-alive.
    #[arg(long, default_value_t = 2000)]
    pub session_ttl_ms: u64,
}

/// Serves and stays registered until interrupted.
pub async fn run(client: &Client, args: &ServeArgs, out: Output) -> anyhow::Result<()> {
    let listener = TcpListener::bind((args.host.as_str(), args.port))
        .await
        .with_context(|| format!("binding {}:{}", args.host, args.port))?;
    let port = listener.local_addr()?.port();
    let instance = instance(args, port);
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(crate::echo::serve(listener, instance.id.clone(), async {
        let _ = stopped.await;
    }));
    let discovery = ServiceDiscovery::new(client.clone());
    let ttl = Duration::from_millis(args.session_ttl_ms);
    let shutdown = interrupted();
    tokio::pin!(shutdown);
    loop {
        let session = client.session(ttl).await?;
        let registration = tokio::select! {
            registration = register(&discovery, &args.name, &instance, &session) => registration?,
            () = &mut shutdown => break,
        };
        out.emit(&Event::Registered {
            service: args.name.clone(),
            path: registration.path().to_owned(),
            instance: instance.clone(),
        });
        tokio::select! {
            () = &mut shutdown => {
                let stop = async {
                    let unregistered = registration.unregister().await;
                    let _ = session.close().await;
                    unregistered
                };
                match tokio::time::timeout(SHUTDOWN_GRACE, stop).await {
                    Ok(Ok(())) => {
                        out.emit(&Event::Unregistered { service: args.name.clone(), id: instance.id.clone() });
                    }
                    Ok(Err(err)) => return Err(err.into()),
                    Err(_) => tracing::warn!("cluster unreachable: the registration ends when the session expires"),
                }
                break;
            }
            () = session.expired() => {
                tracing::warn!("session lost: the registration is gone; registering again");
            }
        }
    }
    let _ = stop.send(());
    let _ = server.await;
    Ok(())
}

/// What this instance registers: its id, address, and metadata holding
/// the port, the version and the `--meta` pairs.
fn instance(args: &ServeArgs, port: u16) -> Instance {
    let id = args
        .id
        .clone()
        .unwrap_or_else(|| format!("{}-{port}", args.name));
    let mut metadata = Map::new();
    metadata.insert("port".into(), json!(port));
    metadata.insert("version".into(), json!(args.app_version));
    for (key, value) in &args.meta {
        metadata.insert(key.clone(), json!(value));
    }
    Instance::new(id, format!("{}:{port}", args.host)).with_metadata(Value::Object(metadata))
}

/// Registers, waiting while the id is still taken: by a previous run of this
/// instance whose session has not expired yet, or by our own lost session
/// whose node the server has not deleted yet.
async fn register(
    discovery: &ServiceDiscovery,
    service: &str,
    instance: &Instance,
    session: &Session,
) -> anyhow::Result<Registration> {
    let mut warned = false;
    loop {
        match discovery.register(service, instance, session).await {
            Ok(registration) => return Ok(registration),
            Err(DiscoveryError::Coord(Error::NodeExists(_))) => {
                if !warned {
                    tracing::warn!(
                        id = instance.id,
                        "instance id still registered (a previous run?); waiting for it to expire"
                    );
                    warned = true;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// Parses `KEY=VALUE`.
fn key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_owned(), value.to_owned())),
        _ => Err(format!("expected KEY=VALUE, got {text:?}")),
    }
}
