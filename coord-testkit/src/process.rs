//! Client-side processes of multi-process tests (`coordctl`, the example apps,
//! test helper binaries): a [`Proc`] runs one with its stdout lines on a
//! channel, each stamped with when it was read, and its stderr kept for failure
//! messages (printed when a test panics with the process still held). A `Proc`
//! is killed by its pid when dropped, so a failing test leaves no process
//! behind.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A running client process.
#[derive(Debug)]
pub struct Proc {
    /// A name for messages.
    pub name: String,
    child: Child,
    lines: mpsc::UnboundedReceiver<(Instant, String)>,
    stderr: Arc<Mutex<String>>,
    stderr_reader: std::thread::JoinHandle<()>,
    /// Every line read as JSON so far ([`Proc::next`]), with when it was read.
    pub seen: Vec<(Instant, Value)>,
}

impl Proc {
    /// Starts `command` with stdin closed and stdout and stderr captured.
    ///
    /// # Panics
    /// If the program cannot be started.
    pub fn spawn(name: &str, mut command: Command) -> Proc {
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("{name}: cannot start {command:?}: {e}"));
        let (tx, lines) = mpsc::unbounded_channel();
        let stdout = child.stdout.take().map(BufReader::new);
        std::thread::spawn(move || {
            for line in stdout
                .into_iter()
                .flat_map(|s| s.lines().map_while(Result::ok))
            {
                if tx.send((Instant::now(), line)).is_err() {
                    return;
                }
            }
        });
        let stderr = Arc::new(Mutex::new(String::new()));
        let pipe = child.stderr.take();
        let kept = Arc::clone(&stderr);
        let stderr_reader = std::thread::spawn(move || {
            let Some(mut pipe) = pipe else { return };
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf) {
                if n == 0 {
                    return;
                }
                let text = String::from_utf8_lossy(&buf[..n]);
                kept.lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .push_str(&text);
            }
        });
        Proc {
            name: name.to_owned(),
            child,
            lines,
            stderr,
            stderr_reader,
            seen: Vec::new(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
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

    fn parse(&self, line: &str) -> Value {
        serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("{}: not JSON ({e}): {line}", self.name))
    }

    /// The next stdout line as JSON (also kept in [`Proc::seen`]), or `None`
    /// after `timeout` or once stdout closed.
    ///
    /// # Panics
    /// If the line is not JSON.
    pub async fn next(&mut self, timeout: Duration) -> Option<(Instant, Value)> {
        let (at, line) = self.line(timeout).await?;
        let doc = self.parse(&line);
        self.seen.push((at, doc.clone()));
        Some((at, doc))
    }

    /// The next stdout line as JSON.
    ///
    /// # Panics
    /// If none comes within `timeout` (the message shows stderr).
    pub async fn json(&mut self, timeout: Duration) -> (Instant, Value) {
        match self.next(timeout).await {
            Some(line) => line,
            None => panic!(
                "{}: no line within {timeout:?}; stderr:\n{}",
                self.name,
                self.stderr()
            ),
        }
    }

    /// Reads JSON lines until one whose `event` is `event`.
    ///
    /// # Panics
    /// If none comes within `timeout`.
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

    /// Reads every line already printed as JSON into [`Proc::seen`], without
    /// waiting.
    pub fn drain(&mut self) {
        while let Ok((at, line)) = self.lines.try_recv() {
            let doc = self.parse(&line);
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
        self.stderr
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Sends `signal` (SIGSTOP, SIGCONT, SIGTERM...) to the process.
    ///
    /// # Panics
    /// If the signal cannot be sent.
    pub fn signal(&self, signal: Signal) {
        let pid = i32::try_from(self.child.id()).expect("pid fits in i32");
        kill(Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("{}: {signal} not sent: {e}", self.name));
    }

    /// `kill -9` by pid, and reaps it.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Waits up to `timeout` for the process to exit by itself; its stderr
    /// is then complete (unless a child of its own still holds the pipe).
    ///
    /// # Panics
    /// If it is still running after `timeout`.
    pub async fn exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                let read_until = Instant::now() + Duration::from_secs(1);
                while !self.stderr_reader.is_finished() && Instant::now() < read_until {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lines_json_stderr_and_exit_are_captured() {
        let mut command = Command::new("sh");
        command.args([
            "-c",
            r#"echo '{"event":"a"}'; echo '{"event":"b","n":2}'; echo oops >&2; exit 3"#,
        ]);
        let mut proc = Proc::spawn("sh", command);
        let (_, doc) = proc.wait_for("b", Duration::from_secs(5)).await;
        assert_eq!(doc["n"], 2);
        assert_eq!(proc.events("a").len(), 1);
        assert_eq!(proc.exit(Duration::from_secs(5)).await.code(), Some(3));
        assert!(proc.line(Duration::from_secs(1)).await.is_none());
        assert_eq!(proc.stderr(), "oops\n");
    }

    #[tokio::test]
    async fn a_dropped_proc_is_killed() {
        let mut command = Command::new("sleep");
        command.arg("60");
        let proc = Proc::spawn("sleep", command);
        let pid = Pid::from_raw(i32::try_from(proc.pid()).expect("pid"));
        drop(proc);
        // Reaped by the drop: the pid no longer names a process of ours.
        assert!(kill(pid, None).is_err());
    }
}
