//! coord through `coord-client`.

use std::time::Duration;

use anyhow::Result;
use coord_client::recipes::mutex::Mutex;
use coord_client::{Client, CreateMode, Error, EventType, Op, Session, WatchItem, WatchOptions};
use tokio::sync::mpsc;

use super::Target;

/// TTL of the sessions the lock and session-churn workloads open (coord's
/// minimum lease TTL is 2 s by default).
const SESSION_TTL: Duration = Duration::from_secs(10);

/// One coord client (its own channels, client id and watch stream).
#[derive(Debug, Clone)]
pub struct Coord {
    client: Client,
}

/// A lock contender: its session and the mutex handle.
#[derive(Debug)]
pub struct CoordLocker {
    _session: Session,
    mutex: Mutex,
}

impl Target for Coord {
    const NAME: &'static str = "coord";

    type Locker = CoordLocker;

    async fn connect(endpoints: &[String]) -> Result<Self> {
        let client = Client::connect(endpoints.iter().cloned()).await?;
        Ok(Coord { client })
    }

    async fn leads(endpoint: &str) -> Result<bool> {
        let client = Client::builder([endpoint])
            .request_timeout(Duration::from_millis(500))
            .build()
            .await?;
        let status = client.status_of(endpoint).await?;
        Ok(status.role == coord_client::proto::Role::Leader as i32)
    }

    async fn ensure_dir(&self, dir: &str) -> Result<()> {
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            path.push('/');
            path.push_str(part);
            match self.client.create(&path, "", CreateMode::Persistent).await {
                Ok(_) | Err(Error::NodeExists(_)) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn upsert(&self, key: &str, value: &[u8]) -> Result<()> {
        let data = bytes::Bytes::copy_from_slice(value);
        match self
            .client
            .create(key, data.clone(), CreateMode::Persistent)
            .await
        {
            Ok(_) => Ok(()),
            Err(Error::NodeExists(_)) => Ok(self.client.set(key, data, -1).await.map(|_| ())?),
            Err(e) => Err(e.into()),
        }
    }

    async fn create_many(&self, keys: &[String], value: &[u8]) -> Result<()> {
        let data = bytes::Bytes::copy_from_slice(value);
        let ops = keys
            .iter()
            .map(|k| Op::create(k.as_str(), data.clone(), CreateMode::Persistent))
            .collect();
        self.client.multi(ops).await?;
        Ok(())
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        let data = bytes::Bytes::copy_from_slice(value);
        self.client.set(key, data, -1).await?;
        Ok(())
    }

    async fn create(&self, dir: &str, _unique: &str, value: &[u8]) -> Result<()> {
        let data = bytes::Bytes::copy_from_slice(value);
        let prefix = format!("{dir}/c-");
        self.client
            .create(&prefix, data, CreateMode::PersistentSequential)
            .await?;
        Ok(())
    }

    async fn get(&self, key: &str, serializable: bool) -> Result<usize> {
        let (data, _) = if serializable {
            self.client.serializable().get(key).await?
        } else {
            self.client.get(key).await?
        };
        Ok(data.len())
    }

    async fn watch_creates(&self, dir: &str) -> Result<mpsc::UnboundedReceiver<String>> {
        let options = WatchOptions {
            recursive: true,
            after_zxid: None,
        };
        let mut stream = self.client.watch(dir, options).await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let item = tokio::select! {
                    () = tx.closed() => return,
                    item = stream.next() => item,
                };
                let Some(item) = item else { return };
                match item {
                    Ok(WatchItem::Event(e)) if e.kind == EventType::NodeCreated => {
                        if tx.send(e.path).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        eprintln!("coord watch ended: {e}");
                        return;
                    }
                }
            }
        });
        Ok(rx)
    }

    async fn locker(&self, dir: &str) -> Result<CoordLocker> {
        let session = self.client.session(SESSION_TTL).await?;
        let mutex = Mutex::new(self.client.clone(), &session, dir);
        Ok(CoordLocker {
            _session: session,
            mutex,
        })
    }

    async fn lock_cycle(&self, locker: &CoordLocker) -> Result<()> {
        let guard = locker.mutex.lock().await?;
        guard.unlock().await?;
        Ok(())
    }

    async fn session_cycle(&self, key: &str, value: &[u8]) -> Result<()> {
        let session = self.client.session(SESSION_TTL).await?;
        let data = bytes::Bytes::copy_from_slice(value);
        self.client.create_ephemeral(key, data, &session).await?;
        session.close().await?;
        Ok(())
    }
}
