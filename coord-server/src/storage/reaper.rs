//! Deleting files the store no longer needs, off the Raft thread. On this
//! project's machines (ext4 mounted with `discard`) an unlink costs about
//! 0.7 ms per MB of file (45 ms for 64 MB): the log segments and the old
//! snapshot data a snapshot makes obsolete took the Raft thread 100 ms and
//! more to delete at a million znodes, long enough to miss heartbeats.
//!
//! A deletion lost in a crash is done again later: an old snapshot data
//! file at the next snapshot, a fully compacted log segment at the next
//! compaction (both are found when the store opens).

use std::path::PathBuf;
use std::thread::JoinHandle;

/// Deletes files on threads of its own; waits for them when dropped, so no
/// thread still deletes in a directory whose store was closed.
#[derive(Debug, Default)]
pub struct Reaper {
    threads: Vec<JoinHandle<()>>,
}

impl Reaper {
    /// Deletes `paths` in the background (inline if no thread can be
    /// started). A file already gone is not an error; other failures are
    /// logged (the file is only wasted space).
    pub fn remove(&mut self, paths: Vec<PathBuf>) {
        if paths.is_empty() {
            return;
        }
        self.threads.retain(|thread| !thread.is_finished());
        let work = paths.clone();
        match std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || remove_all(&work))
        {
            Ok(thread) => self.threads.push(thread),
            Err(err) => {
                tracing::warn!(%err, "no thread to delete old files; deleting them inline");
                remove_all(&paths);
            }
        }
    }

    /// Waits until every deletion handed out so far is done.
    pub fn wait(&mut self) {
        for thread in self.threads.drain(..) {
            if thread.join().is_err() {
                tracing::warn!("a file deletion thread panicked");
            }
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        self.wait();
    }
}

fn remove_all(paths: &[PathBuf]) {
    for path in paths {
        match std::fs::remove_file(path) {
            Err(err) if err.kind() != std::io::ErrorKind::NotFound => {
                tracing::warn!(file = %path.display(), %err, "old file not removed");
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_are_deleted_by_the_time_it_is_waited_for() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths: Vec<PathBuf> = (0..3).map(|i| dir.path().join(format!("f{i}"))).collect();
        for path in &paths {
            std::fs::write(path, b"old").expect("write");
        }
        let kept = dir.path().join("kept");
        std::fs::write(&kept, b"new").expect("write");
        let mut reaper = Reaper::default();
        // One of them already gone: no error, the others still go.
        std::fs::remove_file(&paths[1]).expect("remove");
        reaper.remove(paths.clone());
        reaper.wait();
        assert!(paths.iter().all(|p| !p.exists()), "all deleted");
        assert!(kept.exists(), "nothing else touched");
    }

    #[test]
    fn dropping_waits_for_the_deletions() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("old");
        std::fs::write(&path, vec![0u8; 1 << 20]).expect("write");
        let mut reaper = Reaper::default();
        reaper.remove(vec![path.clone()]);
        drop(reaper);
        assert!(!path.exists());
    }
}
