//! The systems under test, behind one trait so that the same workload code
//! drives all three. One value of a [`Target`] is one connection: a coord
//! [`Client`](coord_client::Client), an etcd gRPC channel, or a ZooKeeper
//! session.
//!
//! Keys are paths (`/bench/kv/k00000042`) for all three: coord and ZooKeeper
//! store them as znodes under their parent, etcd as flat keys with the same
//! bytes, so values, key counts and sizes are identical.

mod coord;
mod etcd;
mod zk;
mod zk_lock;

use std::future::Future;

use anyhow::Result;
use tokio::sync::mpsc;

pub use coord::Coord;
pub use etcd::Etcd;
pub use zk::Zk;

/// Which system a run drives; the names are the ones on the command line and
/// in the JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum TargetKind {
    /// coord, through coord-client.
    Coord,
    /// etcd v3, through the etcd-client crate (gRPC).
    Etcd,
    /// ZooKeeper, through the zookeeper-client crate.
    Zookeeper,
}

impl TargetKind {
    /// Every target, in report order.
    pub const ALL: [TargetKind; 3] = [TargetKind::Coord, TargetKind::Etcd, TargetKind::Zookeeper];

    /// The name used in JSON lines and tables.
    pub fn name(self) -> &'static str {
        match self {
            TargetKind::Coord => "coord",
            TargetKind::Etcd => "etcd",
            TargetKind::Zookeeper => "zookeeper",
        }
    }

    /// The client endpoints of an `n`-member cluster started by
    /// `bench/clusters/<target>.sh`: member I listens at I*10000 + the
    /// product's default port.
    pub fn default_endpoints(self, n: usize) -> Vec<String> {
        let base = match self {
            TargetKind::Coord => 2390,
            TargetKind::Etcd => 2379,
            TargetKind::Zookeeper => 2181,
        };
        (1..=n)
            .map(|i| format!("127.0.0.1:{}", i * 10_000 + base))
            .collect()
    }

    /// Parses a name as written in JSON lines.
    pub fn from_name(name: &str) -> Option<TargetKind> {
        TargetKind::ALL.into_iter().find(|k| k.name() == name)
    }
}

/// A connection to one system under test, with the operations the workloads
/// need. Every method is one request (or one recipe) and fails with the
/// system's error; the runner counts failures and keeps going.
pub trait Target: Send + Sync + Sized + 'static {
    /// The target's name, as [`TargetKind::name`] gives it.
    const NAME: &'static str;

    /// Per-worker state of the lock workload (a session and the lock handle).
    type Locker: Send + Sync + 'static;

    /// Opens a connection to the cluster at `endpoints` (`host:port` each),
    /// preferring the first one where the client lets us choose.
    fn connect(endpoints: &[String]) -> impl Future<Output = Result<Self>> + Send;

    /// Whether the member at `endpoint` is its cluster's leader now (a
    /// single-member cluster's only member counts as leading).
    fn leads(endpoint: &str) -> impl Future<Output = Result<bool>> + Send;

    /// Makes `dir` and its ancestors exist (nothing to do for etcd's flat keys).
    fn ensure_dir(&self, dir: &str) -> impl Future<Output = Result<()>> + Send;

    /// Creates `key` with `value`, or overwrites it if it exists (set-up of
    /// the keys that the read and write workloads use).
    fn upsert(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Creates every key of `keys` (all new, parents existing) with `value`
    /// in one atomic request (coord multi, ZooKeeper multi, etcd txn).
    fn create_many(&self, keys: &[String], value: &[u8])
    -> impl Future<Output = Result<()>> + Send;

    /// Overwrites the existing `key` (coord `set`, ZooKeeper `setData`, etcd `put`).
    fn put(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;

    /// Creates a new node under `dir` that did not exist: a sequential node
    /// `dir/c-` for coord and ZooKeeper; for etcd, the key `dir/c-unique`
    /// created by a transaction that requires it to be absent.
    fn create(
        &self,
        dir: &str,
        unique: &str,
        value: &[u8],
    ) -> impl Future<Output = Result<()>> + Send;

    /// Reads `key`: linearizable (coord and etcd default) unless
    /// `serializable`; ZooKeeper's read is always its plain local read.
    /// Returns the value's length.
    fn get(&self, key: &str, serializable: bool) -> impl Future<Output = Result<usize>> + Send;

    /// Watches every node created under `dir` (persistent recursive watch,
    /// etcd prefix watch) and sends the created keys' paths to the returned
    /// channel, from a task; returns once the watch is registered.
    fn watch_creates(
        &self,
        dir: &str,
    ) -> impl Future<Output = Result<mpsc::UnboundedReceiver<String>>> + Send;

    /// Prepares a contender for the lock at `dir`: a session (lease) of its own.
    fn locker(&self, dir: &str) -> impl Future<Output = Result<Self::Locker>> + Send;

    /// One acquire and release of the lock (waiting while others hold it).
    fn lock_cycle(&self, locker: &Self::Locker) -> impl Future<Output = Result<()>> + Send;

    /// One session lifetime: open a session (lease), create the ephemeral
    /// `key` owned by it, close the session (which deletes `key`).
    fn session_cycle(&self, key: &str, value: &[u8]) -> impl Future<Output = Result<()>> + Send;
}
