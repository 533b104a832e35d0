//! The workloads: what one worker does in one operation. The same code runs
//! against every [`Target`]; only the trait's implementations differ.

use std::sync::Arc;

use anyhow::Result;

use crate::target::Target;

/// A workload, as named on the command line and in the JSON lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, clap::ValueEnum)]
pub enum Workload {
    /// Overwrite pre-created keys (coord set, etcd put, ZooKeeper setData).
    Write,
    /// Create new nodes (sequential nodes; unique keys for etcd).
    Create,
    /// Linearizable reads of pre-created keys (ZooKeeper: its plain read).
    Read,
    /// Serializable (member-local) reads of pre-created keys.
    ReadSerializable,
    /// 90% linearizable reads, 10% writes, on pre-created keys.
    Mixed,
    /// One writer creates nodes; `clients` watchers each watch them all.
    WatchFanout,
    /// `clients` contenders acquire and release one lock.
    Lock,
    /// Open a session, create an ephemeral node, close the session.
    SessionChurn,
}

impl Workload {
    /// Every workload, in report order.
    pub const ALL: [Workload; 8] = [
        Workload::Write,
        Workload::Create,
        Workload::Read,
        Workload::ReadSerializable,
        Workload::Mixed,
        Workload::WatchFanout,
        Workload::Lock,
        Workload::SessionChurn,
    ];

    /// The name used on the command line and in JSON lines.
    pub fn name(self) -> &'static str {
        match self {
            Workload::Write => "write",
            Workload::Create => "create",
            Workload::Read => "read",
            Workload::ReadSerializable => "read-serializable",
            Workload::Mixed => "mixed",
            Workload::WatchFanout => "watch-fanout",
            Workload::Lock => "lock",
            Workload::SessionChurn => "session-churn",
        }
    }

    /// Whether the workload reads the pre-created keys.
    pub fn uses_keys(self) -> bool {
        matches!(
            self,
            Workload::Write | Workload::Read | Workload::ReadSerializable | Workload::Mixed
        )
    }
}

/// What every worker of one run shares: the paths and the value.
#[derive(Debug)]
pub struct Shared {
    /// The workload.
    pub workload: Workload,
    /// Pre-created keys (read, write, mixed).
    pub keys: Vec<String>,
    /// Directory of this run's new nodes (create, lock, session-churn).
    pub dir: String,
    /// The value every write writes.
    pub value: Vec<u8>,
}

/// One worker's state: its id, its random source and its lock contender.
pub struct Worker<T: Target> {
    /// Worker index, unique in the run.
    pub id: usize,
    /// Operations started so far (makes unique names).
    pub seq: u64,
    /// xorshift state: picks keys and the read/write mix.
    pub rng: u64,
    /// The worker's lock contender (lock workload only).
    pub locker: Option<T::Locker>,
}

impl<T: Target> Worker<T> {
    /// A worker with a random source seeded from its id.
    pub fn new(id: usize, locker: Option<T::Locker>) -> Self {
        let seed = (id as u64)
            .wrapping_add(1)
            .wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Worker {
            id,
            seq: 0,
            rng: seed | 1,
            locker,
        }
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: enough to spread keys; no dependency needed.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn random_key<'a>(&mut self, shared: &'a Shared) -> &'a str {
        let len = shared.keys.len().max(1) as u64;
        let index = usize::try_from(self.next_random() % len).unwrap_or(0);
        shared.keys.get(index).map_or("/", String::as_str)
    }

    /// Runs one operation of the workload on `target`.
    pub async fn op(&mut self, target: &Arc<T>, shared: &Shared) -> Result<()> {
        self.seq += 1;
        match shared.workload {
            Workload::Write => target.put(self.random_key(shared), &shared.value).await,
            Workload::Create => {
                let unique = format!("{}-{}", self.id, self.seq);
                target.create(&shared.dir, &unique, &shared.value).await
            }
            Workload::Read => target.get(self.random_key(shared), false).await.map(drop),
            Workload::ReadSerializable => target.get(self.random_key(shared), true).await.map(drop),
            Workload::Mixed => {
                if self.next_random().is_multiple_of(10) {
                    target.put(self.random_key(shared), &shared.value).await
                } else {
                    target.get(self.random_key(shared), false).await.map(drop)
                }
            }
            Workload::Lock => match &self.locker {
                Some(locker) => target.lock_cycle(locker).await,
                None => anyhow::bail!("lock workload without a contender"),
            },
            Workload::SessionChurn => {
                let key = format!("{}/s-{}-{}", shared.dir, self.id, self.seq);
                target.session_cycle(&key, &shared.value).await
            }
            Workload::WatchFanout => anyhow::bail!("watch-fanout has its own runner"),
        }
    }
}
