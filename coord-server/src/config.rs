//! Server configuration: the `coord-server` command line. With no flags it is a
//! single-member cluster on the default ports with data in `./coord-data`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Why the configuration is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// `--peers` does not parse.
    #[error("--peers: {0} (expected ID=HOST:PORT,ID=HOST:PORT,...)")]
    Peers(String),
    /// This member is not in `--peers`.
    #[error("--id {0} is not one of the members in --peers")]
    NotAMember(u64),
    /// A value is out of range.
    #[error("{0}")]
    Invalid(String),
}

/// `coord-server`: one member of a coord cluster.
#[derive(Debug, Clone, Parser)]
#[command(name = "coord-server", version, about, long_about = None)]
pub struct ServerConfig {
    /// This member's id (a positive integer, unique in the cluster).
    #[arg(long, default_value_t = 1)]
    pub id: u64,
    /// Directory of the Raft log, snapshots and state (created if missing).
    #[arg(long, default_value = "coord-data")]
    pub data_dir: PathBuf,
    /// Address of the client gRPC API.
    #[arg(long, default_value = "127.0.0.1:2390")]
    pub client_addr: SocketAddr,
    /// Address other members use to reach this one.
    #[arg(long, default_value = "127.0.0.1:2391")]
    pub peer_addr: SocketAddr,
    /// Every member with its peer address: `1=HOST:PORT,2=HOST:PORT,3=HOST:PORT`.
    /// Default: this member alone, at --peer-addr. Read on first start only: a
    /// data dir keeps the membership it was created with.
    #[arg(long)]
    pub peers: Option<String>,
    /// Length of a Raft tick in milliseconds. With the default 10 election
    /// ticks a follower campaigns 200–400 ms after its leader went silent,
    /// which is how coord re-elects within 0.4 s (docs/benchmarks.md).
    #[arg(long, default_value_t = 20)]
    pub tick_ms: u64,
    /// Ticks without hearing from a leader before a follower campaigns.
    #[arg(long, default_value_t = 10)]
    pub election_ticks: usize,
    /// Ticks between leader heartbeats.
    #[arg(long, default_value_t = 1)]
    pub heartbeat_ticks: usize,
    /// Applied entries between snapshots (the log is compacted at each).
    #[arg(long, default_value_t = 10_000)]
    pub snapshot_interval: u64,
    /// Entries kept behind each snapshot so slightly lagging followers catch up
    /// from the log rather than by snapshot.
    #[arg(long, default_value_t = 1_000)]
    pub snapshot_catchup_entries: u64,
    /// Largest znode data in bytes.
    #[arg(long, default_value_t = 1 << 20)]
    pub max_data_bytes: usize,
    /// Largest client request in bytes (a multi carries several data payloads).
    #[arg(long, default_value_t = 4 << 20)]
    pub max_request_bytes: usize,
    /// Most ops in one multi.
    #[arg(long, default_value_t = 1_000)]
    pub max_multi_ops: usize,
    /// How long the server works on a request before answering Timeout/Unavailable.
    #[arg(long, default_value_t = 5_000)]
    pub request_timeout_ms: u64,
    /// Clients remembered for exactly-once retries.
    #[arg(long, default_value_t = 65_536)]
    pub max_dedup_clients: usize,
    /// Shortest lease TTL a client may ask for.
    #[arg(long, default_value_t = 2_000)]
    pub min_lease_ttl_ms: i64,
    /// Longest lease TTL a client may ask for.
    #[arg(long, default_value_t = 60_000)]
    pub max_lease_ttl_ms: i64,
    /// Events kept for watches that resume from a zxid (per member, in memory).
    #[arg(long, default_value_t = 100_000)]
    pub watch_history: usize,
    /// Watches one client stream may hold.
    #[arg(long, default_value_t = 10_000)]
    pub max_watches_per_stream: usize,
    /// How often every watch learns the zxid it is up to date with.
    #[arg(long, default_value_t = 1_000)]
    pub watch_progress_ms: u64,
    /// sled page cache in MiB.
    #[arg(long, default_value_t = 64)]
    pub cache_mb: u64,
    /// TESTING ONLY: answer linearizable reads from local state without a
    /// ReadIndex round, which breaks linearizability. jepsen-lite's self-test
    /// runs with it to prove its checker catches real stale reads.
    #[arg(long, hide = true)]
    pub unsafe_stale_reads: bool,
    /// TESTING ONLY: a file holding a wall-clock offset in milliseconds, added
    /// to every wall-clock reading (jepsen-lite's clock nemesis writes it).
    #[arg(long, hide = true)]
    pub clock_skew_file: Option<PathBuf>,
}

impl ServerConfig {
    /// Every member id with its peer address, this member included.
    pub fn members(&self) -> Result<HashMap<u64, String>, ConfigError> {
        let Some(spec) = &self.peers else {
            return Ok(HashMap::from([(self.id, self.peer_addr.to_string())]));
        };
        let mut members = HashMap::new();
        for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (id, addr) = part
                .split_once('=')
                .ok_or_else(|| ConfigError::Peers(format!("{part:?} has no '='")))?;
            let id: u64 = id
                .trim()
                .parse()
                .map_err(|_| ConfigError::Peers(format!("{id:?} is not a member id")))?;
            if id == 0 {
                return Err(ConfigError::Peers("member id 0 is reserved".into()));
            }
            let addr = addr.trim();
            if !addr.contains(':') {
                return Err(ConfigError::Peers(format!("{addr:?} is not HOST:PORT")));
            }
            if members.insert(id, addr.to_owned()).is_some() {
                return Err(ConfigError::Peers(format!("member {id} listed twice")));
            }
        }
        if !members.contains_key(&self.id) {
            return Err(ConfigError::NotAMember(self.id));
        }
        Ok(members)
    }

    /// Checks ranges that would otherwise fail later or silently misbehave.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if self.id == 0 {
            return Err(ConfigError::Invalid("--id must be positive".into()));
        }
        if self.tick_ms == 0
            || self.heartbeat_ticks == 0
            || self.election_ticks <= self.heartbeat_ticks
        {
            return Err(ConfigError::Invalid(
                "need --tick-ms > 0 and --election-ticks > --heartbeat-ticks > 0".into(),
            ));
        }
        if self.snapshot_interval == 0 {
            return Err(ConfigError::Invalid(
                "--snapshot-interval must be positive".into(),
            ));
        }
        if self.min_lease_ttl_ms <= 0 || self.max_lease_ttl_ms < self.min_lease_ttl_ms {
            return Err(ConfigError::Invalid(
                "need 0 < --min-lease-ttl-ms <= --max-lease-ttl-ms".into(),
            ));
        }
        if self.watch_history == 0 || self.watch_progress_ms == 0 {
            return Err(ConfigError::Invalid(
                "--watch-history and --watch-progress-ms must be positive".into(),
            ));
        }
        if self.max_request_bytes <= self.max_data_bytes {
            return Err(ConfigError::Invalid(
                "--max-request-bytes must exceed --max-data-bytes".into(),
            ));
        }
        self.members().map(|_| ())
    }

    /// The Raft tick.
    pub fn tick(&self) -> Duration {
        Duration::from_millis(self.tick_ms)
    }

    /// The request timeout.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_millis(self.request_timeout_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> ServerConfig {
        ServerConfig::try_parse_from(std::iter::once("coord-server").chain(args.iter().copied()))
            .expect("parse")
    }

    #[test]
    fn defaults_are_a_single_member() {
        let c = parse(&[]);
        assert_eq!(c.client_addr.to_string(), "127.0.0.1:2390");
        assert_eq!(c.data_dir, PathBuf::from("coord-data"));
        assert_eq!(
            c.members(),
            Ok(HashMap::from([(1, "127.0.0.1:2391".to_owned())]))
        );
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn peers_parse() {
        let c = parse(&["--id", "2", "--peers", "1=a:1, 2=b:2,3=c:3"]);
        let m = c.members().expect("members");
        assert_eq!(m.len(), 3);
        assert_eq!(m[&2], "b:2");
    }

    #[test]
    fn bad_peers_are_explained() {
        for (peers, id) in [
            ("1=a:1,1=b:2", "1"),
            ("x=a:1", "1"),
            ("1=a", "1"),
            ("1=a:1", "2"),
            ("0=a:1", "1"),
        ] {
            let c = parse(&["--id", id, "--peers", peers]);
            assert!(c.validate().is_err(), "{peers} for {id}");
        }
    }
}
