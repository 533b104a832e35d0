//! One member of a test cluster: its process, addresses and files.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// A `coord-server` process of a test cluster.
#[derive(Debug)]
pub struct Member {
    /// Raft member id.
    pub id: u64,
    /// Client gRPC address (`127.0.0.1:PORT`).
    pub client_addr: String,
    /// Peer address.
    pub peer_addr: String,
    /// Data directory (kept across restarts).
    pub data_dir: PathBuf,
    pub(crate) log: PathBuf,
    pub(crate) args: Vec<String>,
    pub(crate) child: Option<Child>,
    pub(crate) binary: PathBuf,
    pub(crate) skew_file: Option<PathBuf>,
}

impl Member {
    /// Starts (or restarts) the process; its output is appended to the log file.
    pub fn spawn(&mut self) {
        assert!(
            self.child.is_none(),
            "member {} is already running",
            self.id
        );
        let log = File::options()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("open member log");
        let err = log.try_clone().expect("clone log handle");
        let child = Command::new(&self.binary)
            .args(&self.args)
            .env(
                "RUST_LOG",
                std::env::var("COORD_TEST_LOG").unwrap_or_else(|_| "info".into()),
            )
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("spawn {}: {e}", self.binary.display()));
        self.child = Some(child);
    }

    /// The process id, while running.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// True while the process has been spawned and not killed by the test.
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// `kill -9` and reap the process.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Sends a signal (SIGSTOP, SIGCONT, SIGTERM...) to the running process.
    pub fn signal(&self, signal: Signal) {
        let pid = self
            .pid()
            .unwrap_or_else(|| panic!("member {} is not running", self.id));
        let pid = i32::try_from(pid).expect("pid fits in i32");
        kill(Pid::from_raw(pid), signal).expect("send signal");
    }

    /// Waits for the process to exit by itself (after SIGTERM), up to `timeout`.
    pub fn wait_exit(&mut self, timeout: std::time::Duration) -> Option<std::process::ExitStatus> {
        let deadline = std::time::Instant::now() + timeout;
        let child = self.child.as_mut()?;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                self.child = None;
                return Some(status);
            }
            if std::time::Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Skews the member's wall clock by `ms` (the cluster must have been built
    /// with `clock_skew(true)`); the server picks it up within 100 ms.
    pub fn set_clock_skew(&self, ms: i64) {
        let file = self
            .skew_file
            .as_ref()
            .unwrap_or_else(|| panic!("member {} has no clock-skew file", self.id));
        std::fs::write(file, ms.to_string()).expect("write clock skew file");
    }

    /// The member's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Where the member's log is written.
    pub fn log_path(&self) -> &Path {
        &self.log
    }
}

impl Drop for Member {
    fn drop(&mut self) {
        self.kill();
    }
}
