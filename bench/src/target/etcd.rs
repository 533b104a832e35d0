//! etcd through the `etcd-client` crate (the v3 gRPC API).

use std::time::Duration;

use anyhow::{Context, Result, bail};
use etcd_client::{
    Client, Compare, CompareOp, EventType, GetOptions, LockOptions, PutOptions, Txn, TxnOp,
    WatchOptions,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Target;

/// TTL of the leases the lock and session-churn workloads grant, in seconds.
const LEASE_TTL_S: i64 = 10;

/// One etcd client: one balanced gRPC channel over the endpoints. Its methods
/// take `&mut self`, so each request works on a clone (a handle on the same
/// channel).
#[derive(Clone)]
pub struct Etcd {
    client: Client,
}

/// A lock contender: a lease kept alive by a task, as etcd's
/// `concurrency.Session` does.
pub struct EtcdLocker {
    name: String,
    lease: i64,
    keeper: JoinHandle<()>,
}

impl Drop for EtcdLocker {
    fn drop(&mut self) {
        self.keeper.abort();
    }
}

impl Target for Etcd {
    const NAME: &'static str = "etcd";

    type Locker = EtcdLocker;

    async fn connect(endpoints: &[String]) -> Result<Self> {
        let urls: Vec<String> = endpoints.iter().map(|e| format!("http://{e}")).collect();
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(10));
        let client = Client::connect(urls, Some(options)).await?;
        Ok(Etcd { client })
    }

    async fn leads(endpoint: &str) -> Result<bool> {
        let options = etcd_client::ConnectOptions::new()
            .with_connect_timeout(Duration::from_millis(500))
            .with_timeout(Duration::from_millis(500));
        let mut client = Client::connect([format!("http://{endpoint}")], Some(options)).await?;
        let status = client.status().await?;
        let member = status
            .header()
            .context("status without header")?
            .member_id();
        Ok(status.leader() == member)
    }

    async fn ensure_dir(&self, _dir: &str) -> Result<()> {
        Ok(())
    }

    async fn upsert(&self, key: &str, value: &[u8]) -> Result<()> {
        self.put(key, value).await
    }

    async fn create_many(&self, keys: &[String], value: &[u8]) -> Result<()> {
        let txn = Txn::new()
            .when(
                keys.iter()
                    .map(|k| Compare::version(k.as_str(), CompareOp::Equal, 0))
                    .collect::<Vec<_>>(),
            )
            .and_then(
                keys.iter()
                    .map(|k| TxnOp::put(k.as_str(), value, None))
                    .collect::<Vec<_>>(),
            );
        if !self.client.clone().txn(txn).await?.succeeded() {
            bail!("a key of the batch exists");
        }
        Ok(())
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.client.clone().put(key, value, None).await?;
        Ok(())
    }

    async fn create(&self, dir: &str, unique: &str, value: &[u8]) -> Result<()> {
        let key = format!("{dir}/c-{unique}");
        let txn = Txn::new()
            .when([Compare::version(key.as_str(), CompareOp::Equal, 0)])
            .and_then([TxnOp::put(key.as_str(), value, None)]);
        let response = self.client.clone().txn(txn).await?;
        if !response.succeeded() {
            bail!("key {key} exists");
        }
        Ok(())
    }

    async fn get(&self, key: &str, serializable: bool) -> Result<usize> {
        let options = serializable.then(|| GetOptions::new().with_serializable());
        let response = self.client.clone().get(key, options).await?;
        let kv = response.kvs().first().context("no such key")?;
        Ok(kv.value().len())
    }

    async fn watch_creates(&self, dir: &str) -> Result<mpsc::UnboundedReceiver<String>> {
        let prefix = format!("{dir}/");
        let options = WatchOptions::new().with_prefix();
        let mut stream = self.client.clone().watch(prefix, Some(options)).await?;
        // The first response confirms the watch was created.
        stream.message().await?.context("watch stream closed")?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let message = tokio::select! {
                    () = tx.closed() => return,
                    message = stream.message() => message,
                };
                let response = match message {
                    Ok(Some(r)) => r,
                    Ok(None) => return,
                    Err(e) => {
                        eprintln!("etcd watch ended: {e}");
                        return;
                    }
                };
                for event in response.events() {
                    let Some(kv) = event.kv() else { continue };
                    if event.event_type() != EventType::Put || kv.version() != 1 {
                        continue;
                    }
                    let key = String::from_utf8_lossy(kv.key()).into_owned();
                    if tx.send(key).is_err() {
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn locker(&self, dir: &str) -> Result<EtcdLocker> {
        let mut client = self.client.clone();
        let lease = client.lease_grant(LEASE_TTL_S, None).await?.id();
        let (mut keeper, mut responses) = client.lease_keep_alive(lease).await?;
        let keeper = tokio::spawn(async move {
            let period = Duration::from_secs(u64::try_from(LEASE_TTL_S / 3).unwrap_or(1));
            loop {
                if keeper.keep_alive().await.is_err() || responses.message().await.is_err() {
                    return;
                }
                tokio::time::sleep(period).await;
            }
        });
        Ok(EtcdLocker {
            name: dir.to_owned(),
            lease,
            keeper,
        })
    }

    async fn lock_cycle(&self, locker: &EtcdLocker) -> Result<()> {
        let mut client = self.client.clone();
        let options = LockOptions::new().with_lease(locker.lease);
        let held = client.lock(locker.name.as_str(), Some(options)).await?;
        client.unlock(held.key()).await?;
        Ok(())
    }

    async fn session_cycle(&self, key: &str, value: &[u8]) -> Result<()> {
        let mut client = self.client.clone();
        let lease = client.lease_grant(LEASE_TTL_S, None).await?.id();
        let options = PutOptions::new().with_lease(lease);
        client.put(key, value, Some(options)).await?;
        client.lease_revoke(lease).await?;
        Ok(())
    }
}
