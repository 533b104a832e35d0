//! The history of a run: one JSON line per event, as Jepsen records it. Each
//! operation is an `invoke` line followed by one completion line: `ok`, `fail`
//! (definitely not applied) or `info` (unknown: possibly applied). Completion
//! lines repeat the operation and carry its start and end time.

use std::io::{BufRead, Write};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::workload::{Completion, Invocation};

/// Kind of a history line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventType {
    /// The operation was issued.
    Invoke,
    /// It completed successfully.
    Ok,
    /// It definitely did not take effect.
    Fail,
    /// Its outcome is unknown.
    Info,
}

/// One line of `history.jsonl`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Logical client process; a process that saw `info` is retired and
    /// replaced, as in Jepsen, since its operation may still be in flight.
    pub process: u64,
    /// invoke, ok, fail or info.
    #[serde(rename = "type")]
    pub kind: EventType,
    /// Operation name (`read`, `write`, `cas`, `add`, `final-read`).
    pub f: String,
    /// The znode path the operation is about.
    pub key: String,
    /// Input on `invoke`, output on completion.
    pub value: serde_json::Value,
    /// Nanoseconds since the start of the run when the operation was issued.
    pub start_ns: u64,
    /// Nanoseconds since the start of the run when it completed (completions only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end_ns: Option<u64>,
    /// Member that answered (completions that got an answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub member: Option<u64>,
    /// Error name and message, for `fail` and `info`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// A completed operation: its invocation and completion joined.
#[derive(Debug, Clone, PartialEq)]
pub struct Operation {
    /// The completion event (it repeats process, f, key and start time).
    pub done: Event,
    /// The input value from the invoke event.
    pub input: serde_json::Value,
}

/// Writes `events` as JSON lines.
pub fn write(path: &Path, events: &[Event]) -> anyhow::Result<()> {
    let mut out = std::io::BufWriter::new(std::fs::File::create(path)?);
    for e in events {
        serde_json::to_writer(&mut out, e)?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    Ok(())
}

/// Reads a `history.jsonl`.
pub fn read(path: &Path) -> anyhow::Result<Vec<Event>> {
    let file = std::io::BufReader::new(std::fs::File::open(path)?);
    let mut events = Vec::new();
    for (n, line) in file.lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        let event = serde_json::from_str(&line)
            .map_err(|e| anyhow::anyhow!("{}:{}: {e}", path.display(), n + 1))?;
        events.push(event);
    }
    Ok(events)
}

/// Joins invocations with their completions. An invocation without a
/// completion (the run stopped first) becomes an `info` operation.
pub fn operations(events: &[Event]) -> Vec<Operation> {
    let mut open: std::collections::BTreeMap<u64, &Event> = std::collections::BTreeMap::new();
    let mut ops = Vec::new();
    for e in events {
        if e.kind == EventType::Invoke {
            open.insert(e.process, e);
        } else if let Some(invoke) = open.remove(&e.process) {
            ops.push(Operation {
                done: e.clone(),
                input: invoke.value.clone(),
            });
        }
    }
    for invoke in open.into_values() {
        ops.push(Operation {
            done: Event {
                kind: EventType::Info,
                error: Some("no completion recorded".into()),
                ..invoke.clone()
            },
            input: invoke.value.clone(),
        });
    }
    ops
}

/// Appends history events, timestamped from the start of the run. Clones share
/// one history: every client task records into it.
#[derive(Debug, Clone)]
pub struct Recorder {
    start: Instant,
    events: Arc<Mutex<Vec<Event>>>,
}

impl Recorder {
    /// An empty history whose clock starts at `start`.
    pub fn new(start: Instant) -> Self {
        Self {
            start,
            events: Arc::default(),
        }
    }

    /// Nanoseconds since the start of the run.
    pub fn now(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    fn push(&self, event: Event) {
        self.events
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(event);
    }

    /// Records that `process` issues `op`; returns its start time.
    pub fn invoke(&self, process: u64, op: &Invocation) -> u64 {
        let start_ns = self.now();
        self.push(Event {
            process,
            kind: EventType::Invoke,
            f: op.f.to_owned(),
            key: op.key.clone(),
            value: op.value.clone(),
            start_ns,
            end_ns: None,
            member: None,
            error: None,
        });
        start_ns
    }

    /// Records how `op`, issued at `start_ns`, ended.
    pub fn complete(&self, process: u64, op: &Invocation, start_ns: u64, done: &Completion) {
        self.push(Event {
            process,
            kind: done.kind,
            f: op.f.to_owned(),
            key: op.key.clone(),
            value: done.value.clone(),
            start_ns,
            end_ns: Some(self.now()),
            member: done.member,
            error: done.error.clone(),
        });
    }

    /// Records an operation that happened at one instant (an event a watch
    /// delivered, a client abandoning its lease): invoke and completion at once.
    pub fn instant(&self, process: u64, op: &Invocation, done: &Completion) {
        let start_ns = self.invoke(process, op);
        self.complete(process, op, start_ns, done);
    }

    /// The history so far, leaving it empty.
    pub fn take(&self) -> Vec<Event> {
        std::mem::take(
            &mut *self
                .events
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(process: u64, kind: EventType, value: serde_json::Value) -> Event {
        Event {
            process,
            kind,
            f: "write".into(),
            key: "/r0".into(),
            value,
            start_ns: 1,
            end_ns: (kind != EventType::Invoke).then_some(2),
            member: None,
            error: None,
        }
    }

    #[test]
    fn round_trip_and_join() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("history.jsonl");
        let events = vec![
            event(1, EventType::Invoke, serde_json::json!(5)),
            event(2, EventType::Invoke, serde_json::json!(6)),
            event(1, EventType::Ok, serde_json::json!({"version": 1})),
        ];
        write(&path, &events).expect("write");
        let back = read(&path).expect("read");
        assert_eq!(back, events);
        let ops = operations(&back);
        assert_eq!(ops.len(), 2);
        assert_eq!(ops[0].input, serde_json::json!(5));
        assert_eq!(ops[0].done.kind, EventType::Ok);
        assert_eq!(
            ops[1].done.kind,
            EventType::Info,
            "an unfinished op is unknown"
        );
    }
}
