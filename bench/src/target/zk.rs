//! ZooKeeper through the `zookeeper-client` crate (one session per value).

use std::time::Duration;

use anyhow::{Context, Result};
use tokio::sync::mpsc;
use zookeeper_client::{
    Acls, AddWatchMode, Client, CreateMode, CreateOptions, Error, EventType, SessionState,
};

use super::{Target, zk_lock};

/// ZooKeeper session timeout of every connection the bench opens.
const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// One ZooKeeper session (one TCP connection to one member). ZooKeeper's
/// reads are served by that member from its local state: they are never
/// linearizable (`sync` + read is not either, see ZOOKEEPER-1675).
#[derive(Clone)]
pub struct Zk {
    client: Client,
    connect_string: String,
}

/// A lock contender: the lock's parent path. The contender's ephemeral nodes
/// belong to the worker's own session.
pub struct ZkLocker {
    dir: String,
}

/// Persistent nodes, open to anyone (the bench uses no ACLs).
pub(super) fn persistent() -> CreateOptions<'static> {
    CreateMode::Persistent.with_acls(Acls::anyone_all())
}

async fn open(connect_string: &str) -> Result<Client> {
    let client = Client::connector()
        .with_session_timeout(SESSION_TIMEOUT)
        .with_connection_timeout(Duration::from_secs(2))
        .connect(connect_string)
        .await
        .with_context(|| format!("connecting to ZooKeeper at {connect_string}"))?;
    Ok(client)
}

/// Sends a four-letter-word command (`srvr`, `mntr`) and returns the answer.
async fn four_letter_word(endpoint: &str, word: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(endpoint).await?;
        stream.write_all(word.as_bytes()).await?;
        let mut answer = String::new();
        stream.read_to_string(&mut answer).await?;
        anyhow::Ok(answer)
    };
    tokio::time::timeout(Duration::from_secs(1), exchange)
        .await
        .with_context(|| format!("{word} to {endpoint} timed out"))?
}

impl Target for Zk {
    const NAME: &'static str = "zookeeper";

    type Locker = ZkLocker;

    async fn connect(endpoints: &[String]) -> Result<Self> {
        let connect_string = endpoints.join(",");
        let client = open(&connect_string).await?;
        Ok(Zk {
            client,
            connect_string,
        })
    }

    async fn leads(endpoint: &str) -> Result<bool> {
        let mode = four_letter_word(endpoint, "srvr").await?;
        Ok(mode
            .lines()
            .any(|l| l == "Mode: leader" || l == "Mode: standalone"))
    }

    async fn ensure_dir(&self, dir: &str) -> Result<()> {
        let mut path = String::new();
        for part in dir.split('/').filter(|p| !p.is_empty()) {
            path.push('/');
            path.push_str(part);
            match self.client.create(&path, b"", &persistent()).await {
                Ok(_) | Err(Error::NodeExists) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(())
    }

    async fn upsert(&self, key: &str, value: &[u8]) -> Result<()> {
        match self.client.create(key, value, &persistent()).await {
            Ok(_) => Ok(()),
            Err(Error::NodeExists) => self.put(key, value).await,
            Err(e) => Err(e.into()),
        }
    }

    async fn create_many(&self, keys: &[String], value: &[u8]) -> Result<()> {
        let mut multi = self.client.new_multi_writer();
        for key in keys {
            multi.add_create(key, value, &persistent())?;
        }
        multi
            .commit()
            .await
            .map_err(|e| anyhow::anyhow!("multi create: {e}"))?;
        Ok(())
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<()> {
        self.client.set_data(key, value, None).await?;
        Ok(())
    }

    async fn create(&self, dir: &str, _unique: &str, value: &[u8]) -> Result<()> {
        let prefix = format!("{dir}/c-");
        let options = CreateMode::PersistentSequential.with_acls(Acls::anyone_all());
        self.client.create(&prefix, value, &options).await?;
        Ok(())
    }

    async fn get(&self, key: &str, _serializable: bool) -> Result<usize> {
        let (data, _) = self.client.get_data(key).await?;
        Ok(data.len())
    }

    async fn watch_creates(&self, dir: &str) -> Result<mpsc::UnboundedReceiver<String>> {
        let mut watcher = self
            .client
            .watch(dir, AddWatchMode::PersistentRecursive)
            .await?;
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                let event = tokio::select! {
                    () = tx.closed() => return,
                    event = watcher.changed() => event,
                };
                match event.event_type {
                    EventType::NodeCreated if tx.send(event.path).is_err() => return,
                    EventType::Session if event.session_state.is_terminated() => {
                        eprintln!("zookeeper watch ended: {}", event.session_state);
                        return;
                    }
                    _ => {}
                }
            }
        });
        Ok(rx)
    }

    async fn locker(&self, dir: &str) -> Result<ZkLocker> {
        Ok(ZkLocker {
            dir: dir.to_owned(),
        })
    }

    async fn lock_cycle(&self, locker: &ZkLocker) -> Result<()> {
        let node = zk_lock::lock(&self.client, &locker.dir).await?;
        self.client.delete(&node, None).await?;
        Ok(())
    }

    async fn session_cycle(&self, key: &str, value: &[u8]) -> Result<()> {
        let client = open(&self.connect_string).await?;
        let options = CreateMode::Ephemeral.with_acls(Acls::anyone_all());
        client.create(key, value, &options).await?;
        // Dropping the last handle sends closeSession; wait for its answer.
        let mut states = client.state_watcher();
        drop(client);
        while !states.changed().await.is_terminated() {}
        if states.peek_state() != SessionState::Closed {
            anyhow::bail!("session ended as {}", states.peek_state());
        }
        Ok(())
    }
}
