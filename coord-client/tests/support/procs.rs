//! Client processes for the multi-process recipe tests: `coordctl` and
//! `coord-recipe-worker`, each with its stdout lines on a channel and its
//! stderr kept for failure messages. A [`Proc`] is killed by its pid when
//! dropped, so a failing test leaves no process behind.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// The coordctl binary under test.
pub const COORDCTL: &str = env!("CARGO_BIN_EXE_coordctl");
/// The test helper binary (tests/support/recipe_worker.rs).
pub const WORKER: &str = env!("CARGO_BIN_EXE_coord-recipe-worker");

/// A running client process.
#[derive(Debug)]
pub struct Proc {
    pub name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `program` with `args`.
    pub fn spawn(name: &str, program: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .args(args)
            .env_remove("COORD_ENDPOINTS")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        std::thread::spawn(move || {
            for line in stdout.lines().map_while(Result::ok) {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let mut pipe = child.stderr.take().unwrap();
        let kept = Arc::clone(&stderr);
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                kept.lock()
                    .unwrap()
                    .push_str(&String::from_utf8_lossy(&buf[..n]));
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            stderr,
        }
    }

    /// `coordctl --endpoints EPS ARGS...`.
    pub fn coordctl(name: &str, endpoints: &str, args: &[&str]) -> Proc {
        let mut all = vec!["--endpoints", endpoints];
        all.extend_from_slice(args);
        Proc::spawn(name, COORDCTL, &all)
    }

    /// `coord-recipe-worker --endpoints EPS ARGS...`.
    pub fn worker(name: &str, endpoints: &str, args: &[&str]) -> Proc {
        let mut all = vec!["--endpoints", endpoints];
        all.extend_from_slice(args);
        Proc::spawn(name, WORKER, &all)
    }

    /// The next stdout line (and when it was read), or `None` after `timeout`
    /// or once stdout closed.
    pub async fn line(&mut self, timeout: Duration) -> Option<(Instant, String)> {
        tokio::time::timeout(timeout, self.lines.recv())
            .await
            .ok()
            .flatten()
    }

    /// A stdout line already read, if any, without waiting.
    pub fn try_line(&mut self) -> Option<String> {
        self.lines.try_recv().ok().map(|(_, line)| line)
    }

    /// The next stdout line as JSON, failing the test after `timeout`.
    pub async fn json(&mut self, timeout: Duration) -> (Instant, Value) {
        let Some((at, line)) = self.line(timeout).await else {
            panic!(
                "{}: no line within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
        };
        let doc = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.name));
        (at, doc)
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).unwrap();
        kill(Pid::from_raw(pid), signal).unwrap();
    }

    /// `kill -9`, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit.
    pub async fn exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not exit within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        // SIGKILL by pid (also ends a SIGSTOPped process), then reap.
        self.kill();
    }
}
