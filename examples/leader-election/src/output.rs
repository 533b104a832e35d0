//! What `leader-election` prints: one line per [`Event`], as text for people
//! or as a JSON object (`{"event": "elected", ...}`) for scripts and tests.

use std::fmt;

use coord_client::recipes::election::Leader;
use serde::Serialize;
use serde_json::Value;

pub use example_support::Output;

/// Something that happened, worth a line of output.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event {
    /// The process became a candidate.
    Campaigning {
        /// Candidate name.
        id: String,
    },
    /// The process leads, with this fencing token.
    Elected {
        /// Candidate name.
        id: String,
        /// Fencing token (the candidate node's czxid).
        token: u64,
        /// The candidate node.
        node: String,
    },
    /// A fenced write was accepted.
    Work {
        /// Candidate name.
        id: String,
        /// Fencing token it was written under.
        token: u64,
        /// Tick number within this term.
        tick: u64,
        /// zxid of the write.
        zxid: u64,
    },
    /// A fenced write was refused: leadership was already gone.
    Fenced {
        /// Candidate name.
        id: String,
        /// The stale token.
        token: u64,
        /// The refused tick.
        tick: u64,
    },
    /// The session is suspended: work pauses.
    Suspended {
        /// Candidate name.
        id: String,
    },
    /// The session answers again: work resumes.
    Resumed {
        /// Candidate name.
        id: String,
    },
    /// Leadership was lost (session expired or node deleted).
    Lost {
        /// Candidate name.
        id: String,
        /// The token of the lost term.
        token: u64,
    },
    /// The leader resigned (asked to stop).
    Resigned {
        /// Candidate name.
        id: String,
        /// The token of the ended term.
        token: u64,
    },
    /// `leader`: who leads (and the last work written).
    Leader {
        /// The leader, if any.
        leader: Option<LeaderInfo>,
        /// The work node's JSON, if asked for and present.
        #[serde(skip_serializing_if = "Option::is_none")]
        work: Option<Value>,
    },
}

/// The leader as `leader` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct LeaderInfo {
    /// The value it campaigned with: its name.
    pub id: String,
    /// Its fencing token.
    pub token: u64,
    /// Its candidate node.
    pub node: String,
}

impl From<&Leader> for LeaderInfo {
    fn from(leader: &Leader) -> Self {
        LeaderInfo {
            id: String::from_utf8_lossy(&leader.value).into_owned(),
            token: leader.token,
            node: leader.node.clone(),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Event::Campaigning { id } => write!(f, "{id}: campaigning"),
            Event::Elected { id, token, node } => {
                write!(f, "{id}: elected, token {token} ({node})")
            }
            Event::Work {
                id,
                token,
                tick,
                zxid,
            } => write!(
                f,
                "{id}: work #{tick} accepted at zxid {zxid} (token {token})"
            ),
            Event::Fenced { id, token, tick } => write!(
                f,
                "{id}: work #{tick} REFUSED by the fence: token {token} no longer leads"
            ),
            Event::Suspended { id } => write!(f, "{id}: session suspended, pausing work"),
            Event::Resumed { id } => write!(f, "{id}: session back, resuming work"),
            Event::Lost { id, token } => write!(f, "{id}: lost leadership (token {token})"),
            Event::Resigned { id, token } => write!(f, "{id}: resigned (token {token})"),
            Event::Leader { leader, work } => {
                match leader {
                    Some(l) => write!(f, "leader: {} (token {}, {})", l.id, l.token, l.node)?,
                    None => write!(f, "no leader")?,
                }
                match work {
                    Some(work) => write!(f, "; last work: {work}"),
                    None => Ok(()),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn events_render_as_text_and_json() {
        let work = Event::Work {
            id: "a".into(),
            token: 7,
            tick: 3,
            zxid: 42,
        };
        assert_eq!(work.to_string(), "a: work #3 accepted at zxid 42 (token 7)");
        let doc = serde_json::to_value(&work).expect("json");
        assert_eq!(doc["event"], "work");
        assert_eq!(doc["zxid"], 42);
        let none = Event::Leader {
            leader: None,
            work: None,
        };
        assert_eq!(none.to_string(), "no leader");
        assert_eq!(
            serde_json::to_string(&none).expect("json"),
            r#"{"event":"leader","leader":null}"#
        );
    }
}
