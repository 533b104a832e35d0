//! The register model: a znode's data and version under read, write (set with
//! version -1) and compare-and-set (set with an expected version).

use super::linear::Model;

/// A register's value and version (the znode's data and stat.version).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Register {
    /// The value written last.
    pub value: i64,
    /// How many writes have been applied.
    pub version: i32,
}

/// What a compare-and-set was observed to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CasOutcome {
    /// Applied, producing this version.
    Applied(i32),
    /// Refused with BadVersion: the version differed.
    Refused,
    /// Unknown (timeout, connection lost).
    Unknown,
}

/// A register operation with its observed outcome.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterOp {
    /// A read that returned this value and version.
    Read {
        /// Observed value.
        value: i64,
        /// Observed version.
        version: i32,
    },
    /// An unconditional write; `version` is the version it returned, if known.
    Write {
        /// Written value (unique per write).
        value: i64,
        /// Version after the write, when acknowledged.
        version: Option<i32>,
    },
    /// Set `value` if the version is `expected`.
    Cas {
        /// Expected version.
        expected: i32,
        /// Value to write.
        value: i64,
        /// What happened.
        outcome: CasOutcome,
    },
}

/// A register that starts at `initial` (the value created at setup).
#[derive(Debug, Clone, Copy)]
pub struct RegisterModel {
    /// The state before the history.
    pub initial: Register,
}

impl Model for RegisterModel {
    type State = Register;
    type Op = RegisterOp;

    fn init(&self) -> Register {
        self.initial
    }

    fn step(&self, s: &Register, op: &RegisterOp) -> Option<Register> {
        let written = |value| Register {
            value,
            version: s.version + 1,
        };
        match *op {
            RegisterOp::Read { value, version } => {
                (s.value == value && s.version == version).then_some(*s)
            }
            RegisterOp::Write { value, version } => {
                let next = written(value);
                version.is_none_or(|v| v == next.version).then_some(next)
            }
            RegisterOp::Cas {
                expected,
                value,
                outcome,
            } => match outcome {
                CasOutcome::Applied(v) => {
                    (s.version == expected && v == expected + 1).then(|| written(value))
                }
                CasOutcome::Refused => (s.version != expected).then_some(*s),
                CasOutcome::Unknown if s.version == expected => Some(written(value)),
                CasOutcome::Unknown => Some(*s),
            },
        }
    }
}
