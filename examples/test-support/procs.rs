//! Example processes for the examples' multi-process tests (included by each
//! example's tests with `#[path]`, so the example crates stay independent):
//! a [`Proc`] runs an example binary with its stdout lines on a channel, each
//! stamped with when it was read, and its stderr kept for failure messages.
//! A `Proc` is killed by its pid when dropped, so a failing test leaves no
//! process behind; [`Procs`] does the same for a group.
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

/// A running example process.
#[derive(Debug)]
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
    /// Every JSON line read so far, with when it was read.
    pub seen: Vec<(Instant, Value)>,
}

impl Proc {
    /// Starts `program --endpoints ENDPOINTS --json ARGS...`.
    pub fn start(name: &str, program: &str, endpoints: &str, args: &[&str]) -> Proc {
        let mut child = Command::new(program)
            .arg("--endpoints")
            .arg(endpoints)
            .arg("--json")
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
                let text = String::from_utf8_lossy(&buf[..n]);
                kept.lock().unwrap().push_str(&text);
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            stderr,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The next stdout line as JSON (also kept in `seen`), or `None` after
    /// `timeout` or once stdout closed.
    pub async fn next(&mut self, timeout: Duration) -> Option<(Instant, Value)> {
        let (at, line) = tokio::time::timeout(timeout, self.lines.recv())
            .await
            .ok()
            .flatten()?;
        let doc: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.name));
        self.seen.push((at, doc.clone()));
        Some((at, doc))
    }

    /// Reads lines until one whose `event` is `event`, failing the test
    /// after `timeout`.
    pub async fn wait_for(&mut self, event: &str, timeout: Duration) -> (Instant, Value) {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.next(left).await {
                Some((at, doc)) if doc["event"] == event => return (at, doc),
                Some(_) => {}
                None => panic!(
                    "{}: no {event:?} line within {timeout:?}; stderr:\n{}",
                    self.name,
                    self.stderr()
                ),
            }
        }
    }

    /// Reads every line already printed, without waiting.
    pub fn drain(&mut self) {
        while let Ok((at, line)) = self.lines.try_recv() {
            let doc: Value = serde_json::from_str(&line)
                .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.name));
            self.seen.push((at, doc));
        }
    }

    /// The lines seen so far whose `event` is `event`.
    pub fn events(&self, event: &str) -> Vec<&Value> {
        self.seen
            .iter()
            .map(|(_, doc)| doc)
            .filter(|doc| doc["event"] == event)
            .collect()
    }

    /// Everything the process wrote to stderr so far.
    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, SIGTERM...).
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).unwrap();
        kill(Pid::from_raw(pid), signal).unwrap();
    }

    /// `kill -9` by pid, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit by itself.
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
        if std::thread::panicking() {
            eprintln!("----- {} stderr -----\n{}", self.name, self.stderr());
        }
    }
}

/// Runs `program --endpoints ENDPOINTS --json ARGS...` to completion and
/// returns its stdout parsed as JSON lines, failing the test if it fails.
pub fn run_json(program: &str, endpoints: &str, args: &[&str]) -> Vec<Value> {
    let out = Command::new(program)
        .arg("--endpoints")
        .arg(endpoints)
        .arg("--json")
        .args(args)
        .env_remove("COORD_ENDPOINTS")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{program} {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// Endpoints rotated so that the client of process `i` starts at member
/// `i mod n`: processes spread over the cluster.
pub fn endpoints_from(endpoints: &[String], i: usize) -> String {
    let mut rotated = endpoints.to_vec();
    let first = i % rotated.len().max(1);
    rotated.rotate_left(first);
    rotated.join(",")
}
