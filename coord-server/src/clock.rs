//! The wall clock of the shell. coord reads it in two places only: to stamp
//! `ctime`/`mtime` into a write when proposing it, and when the leader decides a
//! TTL node has been idle for its TTL. Everything else uses monotonic clocks.
//!
//! For fault injection it can be skewed: with `--clock-skew-file PATH` (hidden,
//! testing only) the offset in milliseconds written in that file (re-read at
//! most every 100 ms) is added to every reading. jepsen-lite's `clock` nemesis
//! uses it to skew members' clocks while a workload runs.

use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// How often a skew file is re-read.
const REREAD_EVERY: Duration = Duration::from_millis(100);

/// The member's wall clock, optionally skewed from a file.
#[derive(Debug)]
pub struct WallClock {
    skew_file: Option<PathBuf>,
    skew_ms: AtomicI64,
    last_read: Mutex<Option<Instant>>,
}

static CLOCK: std::sync::OnceLock<WallClock> = std::sync::OnceLock::new();

/// Installs the process's clock; without a call, the clock is not skewed.
pub fn install(skew_file: Option<PathBuf>) {
    let _ = CLOCK.set(WallClock {
        skew_file,
        skew_ms: AtomicI64::new(0),
        last_read: Mutex::new(None),
    });
}

/// Milliseconds since the Unix epoch, as this member's (possibly skewed)
/// wall clock says.
pub fn now_ms() -> i64 {
    let real = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX));
    real.saturating_add(CLOCK.get().map_or(0, WallClock::skew))
}

impl WallClock {
    fn skew(&self) -> i64 {
        let Some(file) = &self.skew_file else {
            return 0;
        };
        let mut last = self
            .last_read
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if last.is_none_or(|t| t.elapsed() >= REREAD_EVERY) {
            *last = Some(Instant::now());
            let skew = std::fs::read_to_string(file)
                .ok()
                .and_then(|s| s.trim().parse::<i64>().ok())
                .unwrap_or(0);
            self.skew_ms.store(skew, Ordering::Relaxed);
        }
        self.skew_ms.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_skew_file_moves_the_clock() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("skew");
        std::fs::write(&file, "-60000\n").expect("write");
        let clock = WallClock {
            skew_file: Some(file.clone()),
            skew_ms: AtomicI64::new(0),
            last_read: Mutex::new(None),
        };
        assert_eq!(clock.skew(), -60_000);
        std::fs::write(&file, "garbage").expect("write");
        *clock.last_read.lock().expect("lock") = None;
        assert_eq!(clock.skew(), 0, "an unreadable skew is no skew");
    }
}
