//! Renderings of the lease commands and of watch events, as text and JSON.
//! Durations are shown as seconds with milliseconds in text (`9.998s`) and as
//! milliseconds in JSON (`ttlMs`).

use coord_client::{Lease, LeaseInfo, LeaseTimeToLive, WatchItem};
use serde_json::{Value, json};

use crate::commands::seconds;
use crate::table::push_row;

fn millis(d: std::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// `lease grant`: the id alone, so `ID=$(coordctl lease grant 10s)` works.
pub fn granted_text(lease: &Lease) -> String {
    format!("{}\n", lease.id)
}

/// `lease grant --json`.
pub fn granted_json(lease: &Lease) -> Value {
    json!({"id": lease.id, "ttlMs": millis(lease.ttl)})
}

/// `lease ttl`: `name = value` lines, then one `node = PATH` line per node.
pub fn ttl_text(ttl: &LeaseTimeToLive) -> String {
    let mut out = format!(
        "id = {}\ngranted = {}\nremaining = {}\n",
        ttl.id,
        seconds(ttl.granted_ttl),
        seconds(ttl.remaining_ttl)
    );
    for node in &ttl.nodes {
        out.push_str(&format!("node = {node}\n"));
    }
    out
}

/// `lease ttl --json`.
pub fn ttl_json(ttl: &LeaseTimeToLive) -> Value {
    json!({
        "id": ttl.id,
        "grantedTtlMs": millis(ttl.granted_ttl),
        "remainingTtlMs": millis(ttl.remaining_ttl),
        "nodes": ttl.nodes,
    })
}

/// `lease list`: an aligned table.
pub fn list_text(leases: &[LeaseInfo]) -> String {
    let rows: Vec<Vec<String>> = leases
        .iter()
        .map(|l| {
            vec![
                l.id.to_string(),
                seconds(l.granted_ttl),
                l.nodes.to_string(),
            ]
        })
        .collect();
    let header = vec!["ID".to_owned(), "TTL".to_owned(), "NODES".to_owned()];
    let mut widths = [0; 3];
    for row in std::iter::once(&header).chain(&rows) {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.len());
        }
    }
    let mut out = String::new();
    for row in std::iter::once(&header).chain(&rows) {
        push_row(&mut out, row, &widths);
    }
    out
}

/// `lease list --json`.
pub fn list_json(leases: &[LeaseInfo]) -> Value {
    leases
        .iter()
        .map(|l| json!({"id": l.id, "grantedTtlMs": millis(l.granted_ttl), "nodes": l.nodes}))
        .collect()
}

/// One renewal of `lease keep-alive`.
pub fn renewal_line(id: u64, ttl: std::time::Duration, json: bool) -> String {
    if json {
        json!({"id": id, "ttlMs": millis(ttl)}).to_string()
    } else {
        format!("lease {id} kept alive, TTL {}", seconds(ttl))
    }
}

/// The line of a watch item: `NodeCreated /a 17` (type, path, zxid), or
/// `Resynced /a from=10 to=25` after a compaction. Progress gets no line.
pub fn watch_line(path: &str, item: &WatchItem, json: bool) -> Option<String> {
    Some(match (item, json) {
        (WatchItem::Event(e), false) => format!("{:?} {} {}", e.kind, e.path, e.zxid),
        (WatchItem::Event(e), true) => {
            json!({"type": format!("{:?}", e.kind), "path": e.path, "zxid": e.zxid}).to_string()
        }
        (WatchItem::Resynced { from, to }, false) => {
            format!("Resynced {path} from={from} to={to} (events in between were lost: re-read)")
        }
        (WatchItem::Resynced { from, to }, true) => {
            json!({"type": "Resynced", "path": path, "from": from, "to": to}).to_string()
        }
        (WatchItem::Progress(_), _) => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_client::{EventType, WatchEvent};
    use std::time::Duration;

    #[test]
    fn lease_renderings() {
        let lease = Lease {
            id: 17,
            ttl: Duration::from_secs(10),
        };
        assert_eq!(granted_text(&lease), "17\n");
        assert_eq!(granted_json(&lease), json!({"id": 17, "ttlMs": 10000}));
        let ttl = LeaseTimeToLive {
            id: 17,
            granted_ttl: Duration::from_secs(10),
            remaining_ttl: Duration::from_millis(9412),
            nodes: vec!["/a".into(), "/b".into()],
        };
        assert_eq!(
            ttl_text(&ttl),
            "id = 17\ngranted = 10.000s\nremaining = 9.412s\nnode = /a\nnode = /b\n"
        );
        assert_eq!(ttl_json(&ttl)["nodes"], json!(["/a", "/b"]));
        let list = [LeaseInfo {
            id: 17,
            granted_ttl: Duration::from_secs(10),
            nodes: 2,
        }];
        assert_eq!(list_text(&list), "ID  TTL      NODES\n17  10.000s  2\n");
        assert_eq!(
            list_json(&list),
            json!([{"id": 17, "grantedTtlMs": 10000, "nodes": 2}])
        );
    }

    #[test]
    fn watch_lines() {
        let event = WatchItem::Event(WatchEvent {
            kind: EventType::NodeDataChanged,
            path: "/a/b".into(),
            zxid: 42,
        });
        assert_eq!(
            watch_line("/a", &event, false).as_deref(),
            Some("NodeDataChanged /a/b 42")
        );
        let doc: Value =
            serde_json::from_str(&watch_line("/a", &event, true).expect("a line")).expect("json");
        assert_eq!(
            doc,
            json!({"type": "NodeDataChanged", "path": "/a/b", "zxid": 42})
        );
        let resynced = WatchItem::Resynced { from: 3, to: 9 };
        assert!(
            watch_line("/a", &resynced, false)
                .is_some_and(|l| l.starts_with("Resynced /a from=3 to=9"))
        );
        assert_eq!(watch_line("/a", &WatchItem::Progress(5), false), None);
    }
}
