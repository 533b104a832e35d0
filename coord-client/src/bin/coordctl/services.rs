//! `coordctl services ls|watch|register`: the service discovery recipe
//! (`coord_client::recipes::discovery`) from the command line.

use std::time::Duration;

use clap::{Args, Subcommand};
use coord_client::recipes::discovery::{
    DiscoveryError, Instance, MembershipChange, ServiceDiscovery,
};
use coord_client::shutdown::interrupted;
use coord_client::{Client, Error, ErrorInfo};
use serde_json::{Value, json};

use crate::args::parse_duration;
use crate::commands::CliError;
use crate::live::{emit, hold};
use crate::output::Outcome;

/// The `services` subcommands.
#[derive(Debug, Subcommand)]
pub enum ServicesCommand {
    /// List a service's instances, one `ID ADDRESS [METADATA]` line each.
    Ls {
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Print a service's instances as `added` lines, then one line per
    /// membership change (`added`, `removed`, `updated`), until Ctrl-C.
    Watch {
        #[command(flatten)]
        service: ServiceArgs,
    },
    /// Register an instance (an ephemeral node holding its JSON) and keep it
    /// registered until Ctrl-C/SIGTERM; exit code 4 if the session is lost.
    Register {
        #[command(flatten)]
        service: ServiceArgs,
        /// Instance id, unique within the service (one path segment).
        id: String,
        /// Where clients reach the instance, e.g. `10.0.0.7:8080`.
        address: String,
        /// Metadata as a JSON value, e.g. `{"zone": "eu-1"}`.
        #[arg(long, value_name = "JSON", value_parser = parse_json)]
        metadata: Option<Value>,
        /// TTL of the session that owns the registration.
        #[arg(long, value_name = "TTL", default_value = "10s", value_parser = parse_duration)]
        session_ttl: Duration,
    },
}

/// The service a command is about.
#[derive(Debug, Args)]
pub struct ServiceArgs {
    /// Service name (one path segment).
    pub name: String,
    /// Node under which services are registered.
    #[arg(long, value_name = "PATH", default_value = coord_client::recipes::discovery::DEFAULT_ROOT)]
    pub root: String,
}

impl ServicesCommand {
    /// True for the commands that run until interrupted.
    pub fn is_live(&self) -> bool {
        !matches!(self, Self::Ls { .. })
    }
}

fn parse_json(text: &str) -> Result<Value, String> {
    serde_json::from_str(text).map_err(|e| format!("invalid JSON: {e}"))
}

/// Runs a `services` subcommand.
pub async fn run(
    client: &Client,
    command: &ServicesCommand,
    json: bool,
) -> Result<Outcome, CliError> {
    match command {
        ServicesCommand::Ls { service } => {
            let discovery = ServiceDiscovery::with_root(client.clone(), &service.root);
            let instances = discovery.instances(&service.name).await?;
            Ok(Outcome::Rendered {
                text: instances
                    .iter()
                    .map(instance_line)
                    .collect::<String>()
                    .into(),
                json: json!({"service": service.name, "instances": instances}),
            })
        }
        ServicesCommand::Watch { service } => watch(client, service, json).await,
        ServicesCommand::Register {
            service,
            id,
            address,
            metadata,
            session_ttl,
        } => {
            let instance =
                Instance::new(id, address).with_metadata(metadata.clone().unwrap_or(Value::Null));
            register(client, service, &instance, *session_ttl, json).await
        }
    }
}

/// `ID ADDRESS [METADATA]` and a newline.
fn instance_line(instance: &Instance) -> String {
    match &instance.metadata {
        Value::Null => format!("{} {}\n", instance.id, instance.address),
        meta => format!("{} {} {meta}\n", instance.id, instance.address),
    }
}

/// The line of one membership change: `added ID ADDRESS [METADATA]`.
pub fn change_line(change: &MembershipChange, json: bool) -> String {
    let (kind, instance, old) = match change {
        MembershipChange::Added(i) => ("added", i, None),
        MembershipChange::Removed(i) => ("removed", i, None),
        MembershipChange::Updated { old, new } => ("updated", new, Some(old)),
    };
    if json {
        let mut doc = json!({"change": kind, "instance": instance});
        if let Some(old) = old {
            doc["old"] = json!(old);
        }
        doc.to_string()
    } else {
        format!("{kind} {}", instance_line(instance).trim_end())
    }
}

async fn watch(client: &Client, service: &ServiceArgs, json: bool) -> Result<Outcome, CliError> {
    let discovery = ServiceDiscovery::with_root(client.clone(), &service.root);
    let mut cache = discovery.cache(&service.name).await?;
    let interrupted = interrupted();
    tokio::pin!(interrupted);
    for instance in cache.take_snapshot() {
        if !emit(&change_line(&MembershipChange::Added(instance), json)) {
            return Ok(Outcome::Nothing);
        }
    }
    loop {
        let change = tokio::select! {
            () = &mut interrupted => return Ok(Outcome::Nothing),
            change = cache.next() => change,
        };
        let Some(change) = change else {
            return Ok(Outcome::Nothing);
        };
        if !emit(&change_line(&change?, json)) {
            return Ok(Outcome::Nothing);
        }
    }
}

async fn register(
    client: &Client,
    service: &ServiceArgs,
    instance: &Instance,
    ttl: Duration,
    json: bool,
) -> Result<Outcome, CliError> {
    let discovery = ServiceDiscovery::with_root(client.clone(), &service.root);
    let session = client.session(ttl).await?;
    let registration = match discovery.register(&service.name, instance, &session).await {
        Ok(registration) => registration,
        Err(err) => {
            let _ = session.close().await;
            return Err(match err {
                DiscoveryError::Coord(err) => err.into(),
                other => Error::BadArguments(ErrorInfo::from_message(other.to_string())).into(),
            });
        }
    };
    let line = if json {
        json!({"service": service.name, "path": registration.path(), "instance": instance})
            .to_string()
    } else {
        registration.path().to_owned()
    };
    hold(&session, &line).await?;
    registration.unregister().await?;
    session.close().await?;
    Ok(Outcome::Nothing)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn change_lines() {
        let web = Instance::new("web-1", "10.0.0.7:8080");
        let added = MembershipChange::Added(web.clone());
        assert_eq!(change_line(&added, false), "added web-1 10.0.0.7:8080");
        let zoned = web.clone().with_metadata(json!({"zone": "eu"}));
        let updated = MembershipChange::Updated {
            old: web.clone(),
            new: zoned,
        };
        assert_eq!(
            change_line(&updated, false),
            r#"updated web-1 10.0.0.7:8080 {"zone":"eu"}"#
        );
        let doc: Value = serde_json::from_str(&change_line(&updated, true)).expect("json");
        assert_eq!(doc["change"], "updated");
        assert_eq!(doc["instance"]["metadata"]["zone"], "eu");
        assert_eq!(doc["old"]["metadata"], Value::Null);
        let removed = MembershipChange::Removed(web);
        let doc: Value = serde_json::from_str(&change_line(&removed, true)).expect("json");
        assert_eq!(
            doc,
            json!({"change": "removed", "instance": {"id": "web-1", "address": "10.0.0.7:8080", "metadata": null}})
        );
    }
}
