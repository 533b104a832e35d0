//! watch-fanout: one writer creates nodes `DIR/e0000000000`, `e0000000001`,
//! ... either in a closed loop or, with `--write-rate`, at a fixed rate (each
//! write started on schedule, however long the last one takes); `clients`
//! watchers, each on its own connection, hold a recursive watch on `DIR`.
//!
//! Measured: events delivered per second (all watchers together), the
//! latency from the start of a write to each watcher's receipt of its event,
//! and events missed: every write acknowledged in the measured interval must
//! reach every watcher, so after the writer stops the watchers drain (until
//! all are in or nothing arrived for a while) and each acknowledged write a
//! watcher never saw counts as one missed event.

use std::ops::Range;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc::error::TryRecvError;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;

use crate::runner::{MEASURE, OP_TIMEOUT, RunSpec, STOP, WARMUP, connect_all, note_error, run_dir};
use crate::stats::Stats;
use crate::target::Target;
use crate::workload::Workload;

/// Writes a closed-loop writer may make in one run (its ledger is allocated
/// up front so watchers read it without a lock).
const CLOSED_LOOP_CAPACITY: usize = 2_000_000;
/// Writes in flight at most when writing at a fixed rate.
const MAX_IN_FLIGHT: usize = 1024;
/// After the writer stopped, the watchers drain until every event is in or
/// none arrived for this long.
const DRAIN_QUIET: Duration = Duration::from_secs(2);
/// ... and at most this long.
const DRAIN_MAX: Duration = Duration::from_secs(15);

/// What is known of each write, by sequence number; shared lock-free by the
/// writer and the watchers.
struct Ledger {
    /// When the run started; write times are nanoseconds since then.
    epoch: Instant,
    /// When each write started (ns since `epoch`); 0 until it did.
    started: Vec<AtomicU64>,
    /// Whether each write was acknowledged.
    acked: Vec<AtomicBool>,
    /// Sequence numbers issued so far.
    issued: AtomicUsize,
    /// First sequence number of the measured interval (`usize::MAX` before).
    first_measured: AtomicUsize,
    /// Events of measured writes received by all watchers together.
    delivered: AtomicU64,
}

impl Ledger {
    fn new(capacity: usize) -> Self {
        Ledger {
            epoch: Instant::now(),
            started: (0..capacity).map(|_| AtomicU64::new(0)).collect(),
            acked: (0..capacity).map(|_| AtomicBool::new(false)).collect(),
            issued: AtomicUsize::new(0),
            first_measured: AtomicUsize::new(usize::MAX),
            delivered: AtomicU64::new(0),
        }
    }

    /// Takes the next sequence number and stamps its start; `None` once the
    /// ledger is full.
    fn issue(&self) -> Option<usize> {
        let seq = self.issued.load(Ordering::Relaxed);
        let slot = self.started.get(seq)?;
        let ns = u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX);
        slot.store(ns.max(1), Ordering::Release);
        self.issued.store(seq + 1, Ordering::Release);
        Some(seq)
    }

    /// How long ago write `seq` started, if it did.
    fn since_start(&self, seq: usize, now: Instant) -> Option<Duration> {
        let ns = self.started.get(seq)?.load(Ordering::Acquire);
        (ns != 0).then(|| now.duration_since(self.epoch) - Duration::from_nanos(ns))
    }

    /// The measured writes: from the first issued while measuring to the
    /// last issued.
    fn measured(&self) -> Range<usize> {
        let end = self.issued.load(Ordering::Acquire);
        self.first_measured.load(Ordering::Acquire).min(end)..end
    }
}

/// Runs watch-fanout against `T`; the stats count events, `writes` and
/// `missed`.
pub async fn run<T: Target>(spec: &RunSpec) -> Result<Stats> {
    let writer = connect_all::<T>(&spec.endpoints, 1).await?.remove(0);
    let watchers = connect_all::<T>(&spec.endpoints, spec.clients).await?;
    let dir = run_dir(Workload::WatchFanout);
    writer.ensure_dir(&dir).await?;
    let capacity = match spec.write_rate {
        Some(rate) => {
            let secs = (spec.warmup + spec.duration).as_secs_f64() + 1.0;
            (f64::from(rate) * secs).ceil() as usize + 1
        }
        None => CLOSED_LOOP_CAPACITY,
    };
    let ledger = Arc::new(Ledger::new(capacity));
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let prefix = format!("{dir}/e");
    let mut tasks = JoinSet::new();
    for (id, conn) in watchers.iter().enumerate() {
        let events = conn.watch_creates(&dir).await?;
        let watcher = Watcher {
            id,
            ledger: Arc::clone(&ledger),
            phase: Arc::clone(&phase),
            prefix: prefix.clone(),
        };
        tasks.spawn(watcher.run(events));
    }
    let value = vec![b'v'; spec.value_size];
    let writing = tokio::spawn(write(
        writer,
        prefix,
        value,
        spec.write_rate,
        Arc::clone(&ledger),
        Arc::clone(&phase),
    ));
    tokio::time::sleep(spec.warmup).await;
    ledger
        .first_measured
        .store(ledger.issued.load(Ordering::Acquire), Ordering::Release);
    phase.store(MEASURE, Ordering::SeqCst);
    tokio::time::sleep(spec.duration).await;
    phase.store(STOP, Ordering::SeqCst);
    let mut total = writing.await?;
    // The writer is done: the measured, acknowledged writes are final.
    let measured = ledger.measured();
    let acked: Vec<usize> = measured
        .clone()
        .filter(|&seq| ledger.acked[seq].load(Ordering::Acquire))
        .collect();
    drain(&ledger, acked.len() as u64 * spec.clients as u64).await;
    phase.store(DONE, Ordering::SeqCst);
    while let Some(done) = tasks.join_next().await {
        let (stats, seen) = done?;
        total.merge(&stats);
        total.missed += acked
            .iter()
            .filter(|&&seq| !seen.get(seq - measured.start).copied().unwrap_or(false))
            .count() as u64;
    }
    drop(watchers);
    Ok(total)
}

/// Phase after STOP: the watchers return what they saw.
const DONE: u8 = STOP + 1;

/// Waits until `expected` events of measured writes were delivered (every
/// watcher got every acknowledged one), or nothing arrived for `DRAIN_QUIET`,
/// or `DRAIN_MAX` passed.
async fn drain(ledger: &Ledger, expected: u64) {
    let started = Instant::now();
    let mut last = ledger.delivered.load(Ordering::Acquire);
    let mut last_change = Instant::now();
    while started.elapsed() < DRAIN_MAX && last_change.elapsed() < DRAIN_QUIET {
        if last >= expected {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = ledger.delivered.load(Ordering::Acquire);
        if now != last {
            last = now;
            last_change = Instant::now();
        }
    }
}

/// The writer; its stats count acknowledged writes (not ops) and errors of
/// the measured interval.
async fn write<T: Target>(
    conn: Arc<T>,
    prefix: String,
    value: Vec<u8>,
    rate: Option<u32>,
    ledger: Arc<Ledger>,
    phase: Arc<AtomicU8>,
) -> Stats {
    let Some(rate) = rate.filter(|&r| r > 0) else {
        let mut stats = Stats::new();
        while phase.load(Ordering::Relaxed) != STOP {
            let Some(seq) = ledger.issue() else { break };
            let outcome = write_one(&*conn, &prefix, seq, &value, &ledger).await;
            if phase.load(Ordering::Relaxed) == MEASURE {
                count(&mut stats, outcome);
            }
        }
        return stats;
    };
    let mut ticks = tokio::time::interval(Duration::from_secs(1) / rate);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let slots = Arc::new(Semaphore::new(MAX_IN_FLIGHT));
    let mut writes = JoinSet::new();
    let mut stats = Stats::new();
    while phase.load(Ordering::Relaxed) != STOP {
        ticks.tick().await;
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            break;
        };
        let Some(seq) = ledger.issue() else { break };
        let measured = phase.load(Ordering::Relaxed) == MEASURE;
        let (conn, prefix, value, ledger) = (
            Arc::clone(&conn),
            prefix.clone(),
            value.clone(),
            Arc::clone(&ledger),
        );
        writes.spawn(async move {
            let outcome = write_one(&*conn, &prefix, seq, &value, &ledger).await;
            drop(slot);
            measured.then_some(outcome)
        });
        while let Some(Ok(Some(outcome))) = writes.try_join_next() {
            count(&mut stats, outcome);
        }
    }
    while let Some(done) = writes.join_next().await {
        if let Ok(Some(outcome)) = done {
            count(&mut stats, outcome);
        }
    }
    stats
}

/// Makes write `seq`; marks it acknowledged in the ledger on success.
async fn write_one<T: Target>(
    conn: &T,
    prefix: &str,
    seq: usize,
    value: &[u8],
    ledger: &Ledger,
) -> Result<(), String> {
    let key = format!("{prefix}{seq:010}");
    match tokio::time::timeout(OP_TIMEOUT, conn.upsert(&key, value)).await {
        Ok(Ok(())) => {
            ledger.acked[seq].store(true, Ordering::Release);
            Ok(())
        }
        Ok(Err(e)) => Err(format!("writer: {e:#}")),
        Err(_) => Err("writer: timed out".to_owned()),
    }
}

fn count(stats: &mut Stats, outcome: Result<(), String>) {
    match outcome {
        Ok(()) => stats.writes += 1,
        Err(e) => note_error(stats, 0, &e),
    }
}

/// One watcher's view of the run.
struct Watcher {
    id: usize,
    ledger: Arc<Ledger>,
    phase: Arc<AtomicU8>,
    prefix: String,
}

impl Watcher {
    /// Records the latency of every event of a measured write, until DONE;
    /// returns the stats and which measured writes it saw (indexed from the
    /// first measured one).
    async fn run(self, mut events: mpsc::UnboundedReceiver<String>) -> (Stats, Vec<bool>) {
        let mut stats = Stats::new();
        let mut seen = Vec::new();
        while self.phase.load(Ordering::Relaxed) != DONE {
            // A queued event is taken without arming a timer: half a million
            // timers a second would cost the shared cores more than the events.
            let next = match events.try_recv() {
                Ok(path) => Some(path),
                Err(TryRecvError::Disconnected) => None,
                Err(TryRecvError::Empty) => {
                    match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
                        Ok(next) => next,
                        Err(_) => continue,
                    }
                }
            };
            let Some(path) = next else {
                note_error(&mut stats, self.id, "watch ended");
                break;
            };
            let now = Instant::now();
            let Some(seq) = path
                .strip_prefix(&self.prefix)
                .and_then(|s| s.parse::<usize>().ok())
            else {
                note_error(&mut stats, self.id, &format!("unexpected event for {path}"));
                continue;
            };
            let first = self.ledger.first_measured.load(Ordering::Acquire);
            if seq < first {
                continue;
            }
            let Some(latency) = self.ledger.since_start(seq, now) else {
                note_error(
                    &mut stats,
                    self.id,
                    &format!("event before its write: {path}"),
                );
                continue;
            };
            let index = seq - first;
            if seen.len() <= index {
                seen.resize(index + 1, false);
            }
            if !seen[index] {
                seen[index] = true;
                stats.record(latency);
                self.ledger.delivered.fetch_add(1, Ordering::AcqRel);
            }
        }
        (stats, seen)
    }
}
