//! watch-fanout: one writer creates nodes `DIR/e0000000000`, `e0000000001`,
//! ... in a closed loop; `clients` watchers, each on its own connection, hold
//! a recursive watch on `DIR`. Measured: events delivered per second (all
//! watchers together) and the latency from the start of a write to each
//! watcher's receipt of its event.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Result;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::runner::{MEASURE, OP_TIMEOUT, RunSpec, STOP, WARMUP, connect_all, note_error, run_dir};
use crate::stats::Stats;
use crate::target::Target;
use crate::workload::Workload;

/// When each write started, indexed by its sequence number.
type Sent = Arc<Mutex<Vec<Instant>>>;

/// Runs watch-fanout against `T`; the stats count events, and `writes`.
pub async fn run<T: Target>(spec: &RunSpec) -> Result<Stats> {
    let writer = connect_all::<T>(&spec.endpoints, 1).await?.remove(0);
    let watchers = connect_all::<T>(&spec.endpoints, spec.clients).await?;
    let dir = run_dir(Workload::WatchFanout);
    writer.ensure_dir(&dir).await?;
    let sent: Sent = Arc::new(Mutex::new(Vec::new()));
    let phase = Arc::new(AtomicU8::new(WARMUP));
    let prefix = format!("{dir}/e");
    let mut tasks = JoinSet::new();
    for (id, conn) in watchers.iter().enumerate() {
        let events = conn.watch_creates(&dir).await?;
        let (sent, phase, prefix) = (Arc::clone(&sent), Arc::clone(&phase), prefix.clone());
        tasks.spawn(watch(id, events, sent, phase, prefix));
    }
    let value = vec![b'v'; spec.value_size];
    let writing = tokio::spawn(write(
        writer,
        prefix,
        value,
        Arc::clone(&sent),
        Arc::clone(&phase),
    ));
    tokio::time::sleep(spec.warmup).await;
    phase.store(MEASURE, Ordering::SeqCst);
    tokio::time::sleep(spec.duration).await;
    phase.store(STOP, Ordering::SeqCst);
    let mut total = writing.await?;
    while let Some(done) = tasks.join_next().await {
        total.merge(&done?);
    }
    drop(watchers);
    Ok(total)
}

/// The writer's closed loop; its stats count writes (not ops) and errors.
async fn write<T: Target>(
    conn: Arc<T>,
    prefix: String,
    value: Vec<u8>,
    sent: Sent,
    phase: Arc<AtomicU8>,
) -> Stats {
    let mut stats = Stats::new();
    let mut seq = 0usize;
    while phase.load(Ordering::Relaxed) != STOP {
        let key = format!("{prefix}{seq:010}");
        if let Ok(mut sent) = sent.lock() {
            sent.push(Instant::now());
        }
        seq += 1;
        let result = tokio::time::timeout(OP_TIMEOUT, conn.upsert(&key, &value)).await;
        if phase.load(Ordering::Relaxed) != MEASURE {
            continue;
        }
        match result {
            Ok(Ok(())) => stats.writes += 1,
            Ok(Err(e)) => note_error(&mut stats, 0, &format!("writer: {e:#}")),
            Err(_) => note_error(&mut stats, 0, "writer: timed out"),
        }
    }
    stats
}

/// One watcher: records the latency of every event received while measuring.
async fn watch(
    id: usize,
    mut events: mpsc::UnboundedReceiver<String>,
    sent: Sent,
    phase: Arc<AtomicU8>,
    prefix: String,
) -> Stats {
    let mut stats = Stats::new();
    while phase.load(Ordering::Relaxed) != STOP {
        let path = match tokio::time::timeout(Duration::from_millis(100), events.recv()).await {
            Ok(Some(path)) => path,
            Ok(None) => {
                note_error(&mut stats, id, "watch ended");
                break;
            }
            Err(_) => continue,
        };
        let now = Instant::now();
        if phase.load(Ordering::Relaxed) != MEASURE {
            continue;
        }
        let seq = path
            .strip_prefix(&prefix)
            .and_then(|s| s.parse::<usize>().ok());
        let started = seq.and_then(|s| sent.lock().ok().and_then(|v| v.get(s).copied()));
        match started {
            Some(started) => stats.record(now.duration_since(started)),
            None => note_error(&mut stats, id, &format!("unexpected event for {path}")),
        }
    }
    stats
}
