//! Which events a watch reports (ZooKeeper's semantics for one-shot watches and
//! for 3.6's persistent and persistent-recursive watches).

use coord_proto::v1::{EventType, WatchKind};

/// True when `kind` watching `watched` reports an event of type `event` on `path`.
pub fn matches(kind: WatchKind, watched: &str, event: EventType, path: &str) -> bool {
    use EventType::{NodeChildrenChanged, NodeCreated, NodeDataChanged, NodeDeleted};
    if kind == WatchKind::PersistentRecursive {
        return event != NodeChildrenChanged && is_within(watched, path);
    }
    if path != watched {
        return false;
    }
    match kind {
        WatchKind::Data => matches!(event, NodeDataChanged | NodeDeleted),
        WatchKind::Exists => matches!(event, NodeCreated | NodeDataChanged | NodeDeleted),
        WatchKind::Children => matches!(event, NodeChildrenChanged | NodeDeleted),
        WatchKind::Persistent => event != EventType::EventNone,
        WatchKind::PersistentRecursive => false,
    }
}

/// True when `path` is `root` or below it.
pub fn is_within(root: &str, path: &str) -> bool {
    root == "/"
        || path == root
        || path
            .strip_prefix(root)
            .is_some_and(|rest| rest.starts_with('/'))
}

/// True for watches that fire once and are gone.
pub fn is_one_shot(kind: WatchKind) -> bool {
    matches!(
        kind,
        WatchKind::Data | WatchKind::Exists | WatchKind::Children
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventType::*;

    #[test]
    fn one_shot_watches_follow_zookeeper() {
        assert!(matches(WatchKind::Data, "/a", NodeDataChanged, "/a"));
        assert!(matches(WatchKind::Data, "/a", NodeDeleted, "/a"));
        assert!(!matches(WatchKind::Data, "/a", NodeChildrenChanged, "/a"));
        assert!(matches(WatchKind::Exists, "/a", NodeCreated, "/a"));
        assert!(matches(
            WatchKind::Children,
            "/a",
            NodeChildrenChanged,
            "/a"
        ));
        assert!(!matches(WatchKind::Children, "/a", NodeDataChanged, "/a"));
        assert!(!matches(WatchKind::Data, "/a", NodeDataChanged, "/ab"));
    }

    #[test]
    fn persistent_watches() {
        for e in [
            NodeCreated,
            NodeDeleted,
            NodeDataChanged,
            NodeChildrenChanged,
        ] {
            assert!(matches(WatchKind::Persistent, "/a", e, "/a"));
            assert!(!matches(WatchKind::Persistent, "/a", e, "/a/b"));
        }
        assert!(matches(
            WatchKind::PersistentRecursive,
            "/a",
            NodeCreated,
            "/a/b/c"
        ));
        assert!(matches(
            WatchKind::PersistentRecursive,
            "/a",
            NodeDeleted,
            "/a"
        ));
        assert!(!matches(
            WatchKind::PersistentRecursive,
            "/a",
            NodeChildrenChanged,
            "/a/b"
        ));
        assert!(!matches(
            WatchKind::PersistentRecursive,
            "/a",
            NodeCreated,
            "/ab"
        ));
        assert!(matches(
            WatchKind::PersistentRecursive,
            "/",
            NodeCreated,
            "/x"
        ));
    }
}
