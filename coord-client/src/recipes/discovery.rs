//! Service discovery: each running instance of a service registers an
//! ephemeral node `/services/NAME/ID` holding its [`Instance`] as JSON, owned
//! by its [`Session`], so it vanishes when the process dies (after the
//! session's TTL) or unregisters. Clients list a service's instances, or keep
//! a [`ServiceCache`] that a persistent watch keeps current and that reports
//! every membership change as a [`Stream`](tokio_stream::Stream).
//!
//! ```no_run
//! # async fn demo() -> Result<(), coord_client::recipes::discovery::DiscoveryError> {
//! use std::time::Duration;
//! use coord_client::Client;
//! use coord_client::recipes::discovery::{Instance, ServiceDiscovery};
//!
//! let client = Client::connect(["127.0.0.1:2390"]).await?;
//! let discovery = ServiceDiscovery::new(client.clone());
//! let session = client.session(Duration::from_secs(10)).await?;
//! let me = Instance::new("web-1", "10.0.0.7:8080")
//!     .with_metadata(serde_json::json!({"zone": "eu-1"}));
//! let registration = discovery.register("web", &me, &session).await?;
//!
//! let mut cache = discovery.cache("web").await?;
//! println!("{} instances", cache.instances().len());
//! while let Some(change) = cache.next().await {
//!     println!("{:?}", change?);
//! }
//! registration.unregister().await?;
//! # Ok(())
//! # }
//! ```

mod cache;
mod refresher;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::support::{DeleteOnDrop, check_segment, child_path, ensure_path};
use crate::{Client, CreateOptions, Error, Session};
pub use cache::{MAX_PENDING, MembershipChange, ServiceCache};

/// Where services are registered unless [`ServiceDiscovery::with_root`]
/// says otherwise.
pub const DEFAULT_ROOT: &str = "/services";

/// Why a discovery call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DiscoveryError {
    /// The cluster (or the client) reported an error.
    #[error(transparent)]
    Coord(#[from] Error),
    /// An instance could not be encoded as JSON (its metadata, say).
    #[error("cannot encode instance {id}: {reason}")]
    Encode {
        /// The instance id.
        id: String,
        /// What serde_json reported.
        reason: String,
    },
}

/// One instance of a service, stored as the JSON data of its node:
/// `{"id": ..., "address": ..., "metadata": ...}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    /// Unique within the service; the name of the instance's node, so one
    /// path segment (no `/`).
    pub id: String,
    /// Where to reach the instance (`host:port`, a URL: up to the service).
    pub address: String,
    /// Anything else clients choose instances by (zone, version, weight).
    #[serde(default)]
    pub metadata: serde_json::Value,
}

impl Instance {
    /// An instance with no metadata (`null`).
    pub fn new(id: impl Into<String>, address: impl Into<String>) -> Instance {
        Instance {
            id: id.into(),
            address: address.into(),
            metadata: serde_json::Value::Null,
        }
    }

    /// The same instance with `metadata`.
    #[must_use]
    pub fn with_metadata(mut self, metadata: serde_json::Value) -> Instance {
        self.metadata = metadata;
        self
    }

    fn to_json(&self) -> Result<Vec<u8>, DiscoveryError> {
        serde_json::to_vec(self).map_err(|e| DiscoveryError::Encode {
            id: self.id.clone(),
            reason: e.to_string(),
        })
    }
}

/// Registers and finds the instances of services under one root node.
#[derive(Debug, Clone)]
pub struct ServiceDiscovery {
    client: Client,
    root: String,
}

/// An instance's registration: its ephemeral node, deleted by
/// [`unregister`](Self::unregister), or in the background when dropped (and
/// by the server anyway when the owning session ends).
#[derive(Debug)]
pub struct Registration {
    node: DeleteOnDrop,
}

impl ServiceDiscovery {
    /// Discovery under [`DEFAULT_ROOT`] (`/services`).
    pub fn new(client: Client) -> ServiceDiscovery {
        Self::with_root(client, DEFAULT_ROOT)
    }

    /// Discovery under another root node (e.g. one per environment).
    pub fn with_root(client: Client, root: &str) -> ServiceDiscovery {
        ServiceDiscovery {
            client,
            root: root.to_owned(),
        }
    }

    /// The node under which `service`'s instances are registered.
    pub fn service_path(&self, service: &str) -> Result<String, Error> {
        check_segment("service name", service)?;
        Ok(child_path(&self.root, service))
    }

    /// Registers `instance` of `service` as an ephemeral node owned by
    /// `session` (creating `/services/NAME` if needed). `NodeExists` if an
    /// instance with that id is registered (possibly by a previous run of
    /// this process whose session has not expired yet).
    pub async fn register(
        &self,
        service: &str,
        instance: &Instance,
        session: &Session,
    ) -> Result<Registration, DiscoveryError> {
        let dir = self.service_path(service)?;
        check_segment("instance id", &instance.id)?;
        let data = instance.to_json()?;
        ensure_path(&self.client, &dir).await?;
        let path = child_path(&dir, &instance.id);
        let created = self
            .client
            .create(&path, data, CreateOptions::ephemeral(session.id()))
            .await?;
        tracing::debug!(path = created.path, "instance registered");
        Ok(Registration {
            node: DeleteOnDrop::new(self.client.clone(), created.path),
        })
    }

    /// The instances of `service` now (none if it was never registered),
    /// ordered by id. Nodes whose data is not an instance are skipped.
    pub async fn instances(&self, service: &str) -> Result<Vec<Instance>, Error> {
        let dir = self.service_path(service)?;
        Ok(read_all(&self.client, &dir).await?.into_values().collect())
    }

    /// A live cache of `service`'s instances, filled before this returns and
    /// kept current by a persistent watch.
    pub async fn cache(&self, service: &str) -> Result<ServiceCache, Error> {
        let dir = self.service_path(service)?;
        ServiceCache::start(self.client.clone(), dir).await
    }
}

impl Registration {
    /// The instance's node.
    pub fn path(&self) -> &str {
        self.node.path()
    }

    /// Replaces the registered data (new address or metadata; the id must
    /// stay the same). Caches report it as [`MembershipChange::Updated`].
    pub async fn update(&self, instance: &Instance) -> Result<(), DiscoveryError> {
        let data = instance.to_json()?;
        self.node.client().set(self.node.path(), data, -1).await?;
        Ok(())
    }

    /// Deletes the instance's node now, so caches drop it at once.
    pub async fn unregister(self) -> Result<(), Error> {
        self.node.delete().await
    }
}

/// Reads every instance under `dir` (none if `dir` does not exist), by node
/// name. A node deleted between the listing and its read is left out.
async fn read_all(client: &Client, dir: &str) -> Result<BTreeMap<String, Instance>, Error> {
    let names = match client.children(dir).await {
        Ok((names, _)) => names,
        Err(Error::NoNode(_)) => return Ok(BTreeMap::new()),
        Err(err) => return Err(err),
    };
    let mut instances = BTreeMap::new();
    for name in names {
        if let Some(instance) = read_one(client, &child_path(dir, &name)).await? {
            instances.insert(name, instance);
        }
    }
    Ok(instances)
}

/// The instance at `path`; `None` if the node is gone or does not hold an
/// instance whose id is the node's name.
async fn read_one(client: &Client, path: &str) -> Result<Option<Instance>, Error> {
    let data = match client.get(path).await {
        Ok((data, _)) => data,
        Err(Error::NoNode(_)) => return Ok(None),
        Err(err) => return Err(err),
    };
    match serde_json::from_slice::<Instance>(&data) {
        // The node's name is the id: caches key instances by either.
        Ok(instance) if path.ends_with(&format!("/{}", instance.id)) => Ok(Some(instance)),
        Ok(instance) => {
            tracing::warn!(
                path,
                id = instance.id,
                "instance id differs from its node; skipped"
            );
            Ok(None)
        }
        Err(err) => {
            tracing::warn!(path, error = %err, "not a service instance; skipped");
            Ok(None)
        }
    }
}
