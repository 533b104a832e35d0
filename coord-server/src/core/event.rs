//! Changes as watchers see them. `apply` returns the events of each entry it
//! applies; they all carry that entry's index as their zxid. Every member
//! computes the same events, so any member can serve any watch.

use coord_proto::v1::EventType;

/// One change to one path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// What happened.
    pub kind: EventType,
    /// To which node.
    pub path: String,
}

impl Event {
    /// An event of `kind` on `path`.
    pub fn new(kind: EventType, path: impl Into<String>) -> Self {
        Self {
            kind,
            path: path.into(),
        }
    }
}
