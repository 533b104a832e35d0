//! Faults and their schedule. The schedule (when, which kind, which target
//! rule, how long) is drawn from the seed before the run starts, so `--seed S`
//! replays it; which member "the leader" is gets resolved when the fault fires.
//!
//! Partitions are real: every directed peer link goes through a fault-injecting
//! TCP proxy (`coord_testkit::Proxy`) that silently stops forwarding when cut.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::rng::Rng;

/// A family of faults, as named on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    /// `kill -9`, then restart.
    Kill,
    /// SIGSTOP, then SIGCONT.
    Pause,
    /// Network partitions of the peer links.
    Partition,
    /// Wall-clock skew of members.
    Clock,
}

impl FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "kill" => Ok(Self::Kill),
            "pause" => Ok(Self::Pause),
            "partition" => Ok(Self::Partition),
            "clock" => Ok(Self::Clock),
            other => Err(format!(
                "unknown nemesis {other:?} (kill, pause, partition, clock, none)"
            )),
        }
    }
}

/// Parses `kill,pause,partition` (or `none`).
pub fn parse_kinds(s: &str) -> Result<Vec<Kind>, String> {
    if s == "none" {
        return Ok(Vec::new());
    }
    s.split(',').map(|k| k.trim().parse()).collect()
}

/// Which members a kill or pause hits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Target {
    /// One member chosen at random.
    Random,
    /// The current leader.
    Leader,
    /// A majority, chosen at random.
    Majority,
}

/// Which links a partition cuts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Split {
    /// A random minority and majority, cut both ways.
    Halves,
    /// The leader alone against the rest.
    IsolateLeader,
    /// Two halves that cannot talk, and one member that talks to both.
    Bridge,
    /// The leader cannot send to anyone, but still receives.
    LeaderCannotSend,
}

/// One fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(tag = "fault", content = "how", rename_all = "lowercase")]
pub enum Fault {
    /// Kill members, restart them when the fault ends.
    Kill(Target),
    /// Pause members, resume them when the fault ends.
    Pause(Target),
    /// Cut links, heal them when the fault ends.
    Partition(Split),
    /// Skew members' wall clocks by this many ms, reset them when it ends.
    Clock(Target, i64),
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Kill(t) => write!(f, "kill {t:?}"),
            Self::Pause(t) => write!(f, "pause {t:?}"),
            Self::Partition(s) => write!(f, "partition {s:?}"),
            Self::Clock(t, ms) => write!(f, "clock {t:?} {ms:+}ms"),
        }
    }
}

/// A fault with its timing, relative to the start of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Planned {
    /// When it starts (ms).
    pub at_ms: u64,
    /// How long it lasts (ms).
    pub duration_ms: u64,
    /// What it is.
    pub fault: Fault,
}

/// The fault schedule for a run of `time_ms`: healthy gaps of 1–3 s, faults of
/// 2–6 s, the last one healed at least 1 s before the end.
pub fn schedule(rng: &mut Rng, kinds: &[Kind], time_ms: u64) -> Vec<Planned> {
    let mut plan = Vec::new();
    if kinds.is_empty() {
        return plan;
    }
    let mut t = 0;
    loop {
        t += rng.range(1_000, 3_000);
        let room = time_ms.saturating_sub(1_000).saturating_sub(t);
        if room < 1_000 {
            return plan;
        }
        let duration_ms = rng.range(2_000, 6_000).min(room);
        let fault = match kinds[usize::try_from(rng.range(0, kinds.len() as u64)).unwrap_or(0)] {
            Kind::Kill => Fault::Kill(target(rng)),
            Kind::Pause => Fault::Pause(target(rng)),
            Kind::Partition => Fault::Partition(
                *rng.pick(&[
                    Split::Halves,
                    Split::IsolateLeader,
                    Split::Bridge,
                    Split::LeaderCannotSend,
                ])
                .unwrap_or(&Split::Halves),
            ),
            Kind::Clock => {
                let ms = i64::try_from(rng.range(2_000, 60_000)).unwrap_or(0);
                Fault::Clock(target(rng), if rng.chance(500) { ms } else { -ms })
            }
        };
        plan.push(Planned {
            at_ms: t,
            duration_ms,
            fault,
        });
        t += duration_ms;
    }
}

fn target(rng: &mut Rng) -> Target {
    match rng.range(0, 10) {
        0..=3 => Target::Random,
        4..=7 => Target::Leader,
        _ => Target::Majority,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schedules_replay_from_the_seed_and_fit_the_run() {
        let kinds = [Kind::Kill, Kind::Pause, Kind::Partition];
        let a = schedule(&mut Rng::new(9), &kinds, 60_000);
        let b = schedule(&mut Rng::new(9), &kinds, 60_000);
        assert_eq!(a, b);
        assert!(a.len() >= 5, "{a:?}");
        assert!(a.iter().all(|p| p.at_ms + p.duration_ms <= 59_000));
        assert!(
            a.windows(2)
                .all(|w| w[0].at_ms + w[0].duration_ms < w[1].at_ms)
        );
        assert!(schedule(&mut Rng::new(9), &[], 60_000).is_empty());
    }

    #[test]
    fn kinds_parse() {
        assert_eq!(
            parse_kinds("kill,partition"),
            Ok(vec![Kind::Kill, Kind::Partition])
        );
        assert_eq!(parse_kinds("none"), Ok(vec![]));
        assert!(parse_kinds("flood").is_err());
    }
}
