//! `disk`: what the machine's disk does with several synchronous writers at
//! once, as the members of a cluster sharing it are. Each writer is a thread
//! overwriting a small preallocated file of its own in place and calling
//! `fdatasync` after every write, as a member's log does after every Ready.
//! It reports the flush latency over all writers and the stalls: flushes
//! above [`STALL`], grouped when they start together (one stall of the
//! device seen by several writers), and the median gap between stalls. On
//! the project's VM it shows the device pausing for ~20 ms every 100 ms
//! while three or more writers flush at once, and not with two
//! (docs/benchmarks.md, "the disk's pauses"): the 3-member clusters' p99.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::FileExt;
use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use crate::cli::DiskArgs;
use crate::stats::Stats;

/// A flush at least this long counts as a stall of the device.
const STALL: Duration = Duration::from_millis(5);
/// Stalls that start within this of each other are one stall.
const SAME_STALL: Duration = Duration::from_millis(5);
/// Each writer's file: written in place, never grown, so a flush carries
/// data and no file-size metadata (as the log's preallocated segments).
const FILE_BYTES: u64 = 1 << 20;

/// One writer's flushes: latencies, and when each stall started.
struct Flushes {
    stats: Stats,
    stalls: Vec<Instant>,
}

/// What the writers saw together.
struct Summary {
    flushes: Stats,
    stall_starts: Vec<Instant>,
    elapsed: Duration,
}

/// `coord-bench disk`.
pub fn run(args: &DiskArgs) -> Result<()> {
    let summary = measure(args)?;
    report(args, &summary);
    Ok(())
}

/// Runs the writers and removes their files, whether they succeeded or not.
fn measure(args: &DiskArgs) -> Result<Summary> {
    let dir = work_dir(&args.dir)?;
    let summary = write_in(&dir, args);
    let removed =
        std::fs::remove_dir_all(&dir).with_context(|| format!("removing {}", dir.display()));
    let summary = summary?;
    removed?;
    Ok(summary)
}

/// Runs the writers, each on a file of its own in `dir`.
fn write_in(dir: &Path, args: &DiskArgs) -> Result<Summary> {
    let files = (0..args.writers)
        .map(|i| prepare(&dir.join(format!("writer-{i}"))))
        .collect::<Result<Vec<_>>>()?;
    let start = Instant::now();
    let deadline = start + args.duration;
    let record_bytes = usize::from(args.record_bytes);
    let handles: Vec<_> = files
        .into_iter()
        .map(|file| std::thread::spawn(move || write_until(&file, record_bytes, deadline)))
        .collect();
    let mut all = Stats::new();
    let mut stalls = Vec::new();
    for handle in handles {
        let flushes = handle
            .join()
            .map_err(|_| anyhow::anyhow!("a writer thread panicked"))??;
        all.merge(&flushes.stats);
        stalls.extend(flushes.stalls);
    }
    Ok(Summary {
        flushes: all,
        stall_starts: group(stalls),
        elapsed: start.elapsed(),
    })
}

/// A fresh directory for the writers' files under `parent`.
fn work_dir(parent: &Path) -> Result<std::path::PathBuf> {
    let dir = parent.join(format!("coord-bench-disk-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Creates a writer's file, written out and flushed in full.
fn prepare(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    let zeros = vec![0u8; usize::try_from(FILE_BYTES)?];
    file.write_all_at(&zeros, 0)?;
    file.sync_all()?;
    Ok(file)
}

/// Writes `record_bytes` at the next offset and flushes, until `deadline`.
fn write_until(file: &File, record_bytes: usize, deadline: Instant) -> Result<Flushes> {
    let record = vec![b'x'; record_bytes];
    let mut flushes = Flushes {
        stats: Stats::new(),
        stalls: Vec::new(),
    };
    let mut offset = 0u64;
    while Instant::now() < deadline {
        if offset + record.len() as u64 > FILE_BYTES {
            offset = 0;
        }
        file.write_all_at(&record, offset)?;
        offset += record.len() as u64;
        let started = Instant::now();
        file.sync_data()?;
        let took = started.elapsed();
        flushes.stats.record(took);
        if took >= STALL {
            flushes.stalls.push(started);
        }
    }
    Ok(flushes)
}

/// The starts of the device's stalls: the writers' stalled flushes, those
/// starting within [`SAME_STALL`] of the previous one merged.
fn group(mut stalls: Vec<Instant>) -> Vec<Instant> {
    stalls.sort();
    let mut starts: Vec<Instant> = Vec::new();
    for stall in stalls {
        match starts.last() {
            Some(last) if stall.duration_since(*last) < SAME_STALL => {}
            _ => starts.push(stall),
        }
    }
    starts
}

/// The median gap between consecutive stall starts, if there are two.
fn median_gap(starts: &[Instant]) -> Option<Duration> {
    let mut gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    gaps.sort();
    gaps.get(gaps.len() / 2).copied()
}

fn report(args: &DiskArgs, summary: &Summary) {
    let secs = summary.elapsed.as_secs_f64();
    let all = &summary.flushes;
    let starts = &summary.stall_starts;
    let gap =
        median_gap(starts).map_or_else(|| "-".to_owned(), |g| format!("{} ms", g.as_millis()));
    eprintln!(
        "disk writers={} record={} B: {:.0} flushes/s, p50 {} µs, p99 {} µs, p99.9 {} µs, max {} µs; \
         {} stalls >= {} ms ({:.1}/s), median gap {}",
        args.writers,
        args.record_bytes,
        all.ops as f64 / secs,
        all.latency.value_at_quantile(0.5),
        all.latency.value_at_quantile(0.99),
        all.latency.value_at_quantile(0.999),
        all.latency.max(),
        starts.len(),
        STALL.as_millis(),
        starts.len() as f64 / secs,
        gap,
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stalls_starting_together_are_one_and_gaps_are_between_starts() {
        let t = Instant::now();
        let ms = |n| t + Duration::from_millis(n);
        let starts = group(vec![ms(201), ms(100), ms(102), ms(300), ms(204), ms(103)]);
        assert_eq!(starts, vec![ms(100), ms(201), ms(300)]);
        assert_eq!(median_gap(&starts), Some(Duration::from_millis(101)));
        assert_eq!(median_gap(&starts[..1]), None);
    }

    #[test]
    fn a_short_run_flushes_and_cleans_up() {
        let parent = tempfile::tempdir().expect("temp dir");
        let args = DiskArgs {
            writers: 2,
            duration: Duration::from_millis(200),
            record_bytes: 512,
            dir: parent.path().to_path_buf(),
        };
        let summary = measure(&args).expect("runs");
        assert!(summary.flushes.ops > 0, "every writer flushed");
        assert!(summary.elapsed >= args.duration);
        assert_eq!(
            std::fs::read_dir(parent.path()).expect("listed").count(),
            0,
            "the writers' files are removed"
        );
    }
}
