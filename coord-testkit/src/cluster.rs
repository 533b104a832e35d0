//! A cluster of `coord-server` processes on loopback.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use coord_proto::v1::coord_client::CoordClient;
use coord_proto::v1::{Role, StatusRequest, StatusResponse};

use crate::member::Member;

/// Options of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    args: Vec<String>,
    binary: Option<PathBuf>,
}

impl ClusterBuilder {
    /// Extra `coord-server` flags given to every member.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.args.extend(args.into_iter().map(Into::into));
        self
    }

    /// The server binary to run (default: [`crate::server_binary`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts every member and waits until they agree on a leader.
    pub async fn start(self) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = self.binary.unwrap_or_else(crate::server_binary);
        let ports = crate::free_ports(2 * self.nodes);
        let peers: Vec<String> = (0..self.nodes)
            .map(|i| format!("{}=127.0.0.1:{}", i + 1, ports[2 * i + 1]))
            .collect();
        let peers = peers.join(",");
        let members = (0..self.nodes)
            .map(|i| {
                let id = i as u64 + 1;
                let client_addr = format!("127.0.0.1:{}", ports[2 * i]);
                let peer_addr = format!("127.0.0.1:{}", ports[2 * i + 1]);
                let data_dir = dir.path().join(format!("member-{id}"));
                let mut args = vec![
                    "--id".to_owned(),
                    id.to_string(),
                    "--data-dir".to_owned(),
                    data_dir.display().to_string(),
                    "--client-addr".to_owned(),
                    client_addr.clone(),
                    "--peer-addr".to_owned(),
                    peer_addr.clone(),
                    "--peers".to_owned(),
                    peers.clone(),
                ];
                if !self.args.iter().any(|a| a == "--tick-ms") {
                    // Faster elections than production defaults keep tests short.
                    args.extend(["--tick-ms".to_owned(), "50".to_owned()]);
                }
                args.extend(self.args.iter().cloned());
                Member {
                    id,
                    client_addr,
                    peer_addr,
                    data_dir,
                    log: dir.path().join(format!("member-{id}.log")),
                    args,
                    child: None,
                    binary: binary.clone(),
                }
            })
            .collect();
        let mut cluster = Cluster { members, _dir: dir };
        for m in &mut cluster.members {
            m.spawn();
        }
        cluster.wait_for_leader(Duration::from_secs(30)).await;
        cluster
    }
}

/// Running `coord-server` processes; all are killed when this is dropped.
#[derive(Debug)]
pub struct Cluster {
    members: Vec<Member>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A cluster of `nodes` members with default test flags.
    pub fn builder(nodes: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes,
            args: Vec::new(),
            binary: None,
        }
    }

    /// Starts a cluster of `nodes` members and waits for a leader.
    pub async fn start(nodes: usize) -> Cluster {
        Self::builder(nodes).start().await
    }

    /// Client addresses of every member, in id order.
    pub fn endpoints(&self) -> Vec<String> {
        self.members.iter().map(|m| m.client_addr.clone()).collect()
    }

    /// The member with this id.
    pub fn member(&self, id: u64) -> &Member {
        &self.members[index(id)]
    }

    /// The member with this id, mutably (to kill, signal or restart it).
    pub fn member_mut(&mut self, id: u64) -> &mut Member {
        &mut self.members[index(id)]
    }

    /// Ids of every member.
    pub fn ids(&self) -> Vec<u64> {
        self.members.iter().map(|m| m.id).collect()
    }

    /// `kill -9` of one member.
    pub fn kill(&mut self, id: u64) {
        self.member_mut(id).kill();
    }

    /// Restarts a killed member with its data dir.
    pub fn restart(&mut self, id: u64) {
        self.member_mut(id).spawn();
    }

    /// Status of one member, if it answers within a second.
    pub async fn status(&self, id: u64) -> Option<StatusResponse> {
        status_of(&self.member(id).client_addr).await
    }

    /// Waits until every running member that answers names the same leader, and
    /// that leader says it leads. Returns the leader id; panics on timeout.
    pub async fn wait_for_leader(&self, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.agreed_leader().await {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no agreed leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits until a leader other than `old` is agreed on.
    pub async fn wait_for_new_leader(&self, old: u64, timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.agreed_leader().await.filter(|l| *l != old) {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no new leader within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader named by a majority of members that answer (members that do
    /// not answer, such as stopped ones, are skipped), if it says it leads.
    async fn agreed_leader(&self) -> Option<u64> {
        let mut leader = None;
        let mut answered = 0;
        for m in self.members.iter().filter(|m| m.is_running()) {
            let Some(status) = status_of(&m.client_addr).await else {
                continue;
            };
            let named = status.header.map(|h| h.leader).unwrap_or(0);
            if named == 0 || leader.is_some_and(|l| l != named) {
                return None;
            }
            leader = Some(named);
            answered += 1;
        }
        let leader = leader?;
        let leads = status_of(&self.member(leader).client_addr)
            .await
            .is_some_and(|s| s.role() == Role::Leader);
        (answered > self.members.len() / 2 && leads).then_some(leader)
    }

    /// Waits until every running member has applied at least `index`.
    pub async fn wait_applied(&self, index: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for m in self.members.iter().filter(|m| m.is_running()) {
            loop {
                let applied = status_of(&m.client_addr).await.map(|s| s.applied_index);
                if applied.is_some_and(|a| a >= index) {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "member {} did not apply {index} within {timeout:?} (at {applied:?})",
                    m.id
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        for m in &mut self.members {
            m.kill();
        }
        if std::thread::panicking() {
            for m in &self.members {
                let log = m.log();
                let tail: Vec<&str> = log.lines().rev().take(60).collect();
                eprintln!(
                    "----- member {} log (last {} lines) -----",
                    m.id,
                    tail.len()
                );
                for line in tail.into_iter().rev() {
                    eprintln!("{line}");
                }
            }
        }
    }
}

fn index(id: u64) -> usize {
    usize::try_from(id).expect("member id fits in usize") - 1
}

/// Status of the member at `addr`, if it answers within a second.
pub async fn status_of(addr: &str) -> Option<StatusResponse> {
    let call = async {
        let mut client = CoordClient::connect(format!("http://{addr}")).await.ok()?;
        client
            .status(StatusRequest {})
            .await
            .ok()
            .map(tonic::Response::into_inner)
    };
    tokio::time::timeout(Duration::from_secs(1), call)
        .await
        .ok()
        .flatten()
}
