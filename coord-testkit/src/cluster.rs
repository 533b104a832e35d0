//! A cluster of `coord-server` processes on loopback.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coord_proto::v1::coord_client::CoordClient;
use coord_proto::v1::{Role, StatusRequest, StatusResponse};

use crate::member::Member;
use crate::proxy::Proxy;

/// Options of a test cluster.
#[derive(Debug, Clone)]
pub struct ClusterBuilder {
    nodes: usize,
    args: Vec<String>,
    binary: Option<PathBuf>,
    clock_skew: bool,
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

    /// Gives every member a clock-skew file, so tests can skew its wall clock
    /// ([`Member::set_clock_skew`]).
    pub fn clock_skew(mut self, on: bool) -> Self {
        self.clock_skew = on;
        self
    }

    /// The server binary to run (default: [`crate::server_binary`]).
    pub fn binary(mut self, path: impl Into<PathBuf>) -> Self {
        self.binary = Some(path.into());
        self
    }

    /// Starts every member and waits until they agree on a leader.
    pub async fn start(self) -> Cluster {
        let cluster = self.spawn().await;
        cluster.wait_for_leader(Duration::from_secs(30)).await;
        cluster
    }

    /// Starts every member without waiting for a leader.
    pub async fn spawn(self) -> Cluster {
        let dir = tempfile::tempdir().expect("temp dir");
        let binary = self.binary.clone().unwrap_or_else(crate::server_binary);
        let n = self.nodes;
        let ports = crate::free_ports(2 * n);
        let client = |i: usize| format!("127.0.0.1:{}", ports[2 * i]);
        let listen = |i: usize| format!("127.0.0.1:{}", ports[2 * i + 1]);
        // One proxy per directed link: member i dials member j through links[(i, j)].
        let mut links = HashMap::new();
        for i in 0..n {
            for j in (0..n).filter(|j| *j != i) {
                links.insert((i as u64 + 1, j as u64 + 1), Proxy::start(listen(j)).await);
            }
        }
        let members = (0..n)
            .map(|i| {
                let id = i as u64 + 1;
                let peers: Vec<String> = (0..n)
                    .map(|j| {
                        let to = j as u64 + 1;
                        let addr = if j == i {
                            listen(j)
                        } else {
                            links[&(id, to)].addr().to_owned()
                        };
                        format!("{to}={addr}")
                    })
                    .collect();
                self.member(
                    id,
                    &binary,
                    dir.path(),
                    client(i),
                    listen(i),
                    peers.join(","),
                )
            })
            .collect();
        let mut cluster = Cluster {
            members,
            links,
            _dir: dir,
        };
        for m in &mut cluster.members {
            m.spawn();
        }
        cluster
    }

    fn member(
        &self,
        id: u64,
        binary: &Path,
        dir: &Path,
        client_addr: String,
        peer_addr: String,
        peers: String,
    ) -> Member {
        let data_dir = dir.join(format!("member-{id}"));
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
            peers,
        ];
        let skew_file = self
            .clock_skew
            .then(|| dir.join(format!("member-{id}.skew")));
        if let Some(file) = &skew_file {
            std::fs::write(file, "0").expect("write clock skew file");
            args.extend(["--clock-skew-file".to_owned(), file.display().to_string()]);
        }
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
            log: dir.join(format!("member-{id}.log")),
            args,
            child: None,
            binary: binary.to_path_buf(),
            skew_file,
        }
    }
}

/// Running `coord-server` processes; all are killed when this is dropped.
#[derive(Debug)]
pub struct Cluster {
    members: Vec<Member>,
    links: HashMap<(u64, u64), Proxy>,
    _dir: tempfile::TempDir,
}

impl Cluster {
    /// A cluster of `nodes` members with default test flags.
    pub fn builder(nodes: usize) -> ClusterBuilder {
        ClusterBuilder {
            nodes,
            args: Vec::new(),
            binary: None,
            clock_skew: false,
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

    /// Cuts the directed link `from` → `to` (one-way partition).
    pub fn cut(&self, from: u64, to: u64) {
        self.links[&(from, to)].cut();
    }

    /// Cuts every link between members of different groups, in both
    /// directions, and heals every link within a group. Members in no group
    /// are cut off from everyone.
    pub fn partition(&self, groups: &[&[u64]]) {
        let group_of = |id: u64| groups.iter().position(|g| g.contains(&id));
        for (&(from, to), proxy) in &self.links {
            match (group_of(from), group_of(to)) {
                (Some(a), Some(b)) if a == b => proxy.heal(),
                _ => proxy.cut(),
            }
        }
    }

    /// Cuts exactly the directed links for which `cut(from, to)` is true and
    /// heals every other link (bridges and one-way partitions).
    pub fn cut_where(&self, cut: impl Fn(u64, u64) -> bool) {
        for (&(from, to), proxy) in &self.links {
            if cut(from, to) {
                proxy.cut();
            } else {
                proxy.heal();
            }
        }
    }

    /// Cuts `id` off from every other member, both ways.
    pub fn isolate(&self, id: u64) {
        let rest: Vec<u64> = self.ids().into_iter().filter(|m| *m != id).collect();
        self.partition(&[&[id], &rest]);
    }

    /// Heals every link.
    pub fn heal(&self) {
        for proxy in self.links.values() {
            proxy.heal();
        }
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

    /// Waits until a majority of the cluster, all among `ids`, names one leader
    /// from `ids` that says it leads (members outside `ids` are ignored: use it
    /// while others are partitioned away). Returns the leader id.
    pub async fn wait_for_leader_among(&self, ids: &[u64], timeout: Duration) -> u64 {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(leader) = self.leader_among(ids).await {
                return leader;
            }
            assert!(
                Instant::now() < deadline,
                "no leader among {ids:?} within {timeout:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The leader a majority of the answering members agree on right now, if
    /// it says it leads.
    pub async fn agreed_leader(&self) -> Option<u64> {
        self.leader_among(&self.ids()).await
    }

    /// The leader named by a majority of members of `ids` that answer (members
    /// that do not answer, such as stopped ones, are skipped), if it says it leads.
    pub async fn leader_among(&self, ids: &[u64]) -> Option<u64> {
        let mut leader = None;
        let mut answered = 0;
        for m in self
            .members
            .iter()
            .filter(|m| m.is_running() && ids.contains(&m.id))
        {
            let Some(status) = status_of(&m.client_addr).await else {
                continue;
            };
            let named = status.header.map(|h| h.leader).unwrap_or(0);
            if named == 0 || !ids.contains(&named) || leader.is_some_and(|l| l != named) {
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
