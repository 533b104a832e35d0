//! Multi-line renderings: the `tree` listing and the `status` table, as text
//! and as JSON.

use coord_client::{Role, StatusResponse};
use serde_json::{Value, json};

use crate::output::StatusRow;
use crate::walk::{Listing, child_path};

/// The subtree as indented text: the root's path, then each descendant's name
/// indented two spaces per level, siblings in name order.
pub fn tree_text(listing: &Listing) -> String {
    let mut out = String::new();
    for (depth, path) in listing.preorder() {
        let name = if depth == 0 {
            path.as_str()
        } else {
            path.rsplit('/').next().unwrap_or(&path)
        };
        out.push_str(&"  ".repeat(depth));
        out.push_str(name);
        out.push('\n');
    }
    out
}

/// The subtree under `path` as nested `{"path", "children": [...]}` objects.
pub fn tree_json(listing: &Listing, path: &str) -> Value {
    let children: Vec<Value> = listing
        .children_of(path)
        .iter()
        .map(|name| tree_json(listing, &child_path(path, name)))
        .collect();
    json!({"path": path, "children": children})
}

/// Lower-case role names, as shown by `status`.
pub fn role_name(role: Role) -> &'static str {
    match role {
        Role::Leader => "leader",
        Role::Follower => "follower",
        Role::Candidate => "candidate",
        Role::PreCandidate => "pre-candidate",
        Role::Unknown => "unknown",
    }
}

const STATUS_COLUMNS: [&str; 8] = [
    "ENDPOINT", "MEMBER", "ROLE", "LEADER", "TERM", "COMMIT", "APPLIED", "DIGEST",
];

fn status_cells(endpoint: &str, s: &StatusResponse) -> Vec<String> {
    let header = s.header.unwrap_or_default();
    vec![
        endpoint.to_owned(),
        header.member.to_string(),
        role_name(s.role()).to_owned(),
        header.leader.to_string(),
        header.term.to_string(),
        s.commit_index.to_string(),
        s.applied_index.to_string(),
        format!("{:016x}", s.digest),
    ]
}

/// One aligned row per endpoint; an endpoint that did not answer gets
/// `error: <Name>: <message>` after its endpoint.
pub fn status_table(rows: &[StatusRow]) -> String {
    let cells: Vec<Result<Vec<String>, String>> = rows
        .iter()
        .map(|row| match &row.result {
            Ok(status) => Ok(status_cells(&row.endpoint, status)),
            Err(err) => Err(format!("error: {}: {err}", err.name())),
        })
        .collect();
    let mut widths = STATUS_COLUMNS.map(str::len);
    for (row, cells) in rows.iter().zip(&cells) {
        widths[0] = widths[0].max(row.endpoint.len());
        if let Ok(cells) = cells {
            for (width, cell) in widths.iter_mut().zip(cells) {
                *width = (*width).max(cell.len());
            }
        }
    }
    let mut out = String::new();
    let header: Vec<String> = STATUS_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
    push_row(&mut out, &header, &widths);
    for (row, cells) in rows.iter().zip(cells) {
        match cells {
            Ok(cells) => push_row(&mut out, &cells, &widths),
            Err(error) => push_row(&mut out, &[row.endpoint.clone(), error], &widths),
        }
    }
    out
}

/// Appends one row, each cell but the last padded to its column width.
pub fn push_row(out: &mut String, cells: &[String], widths: &[usize]) {
    let last = cells.len().saturating_sub(1);
    for (i, (cell, width)) in cells.iter().zip(widths).enumerate() {
        if i == last {
            out.push_str(cell);
        } else {
            out.push_str(&format!("{cell:<width$}  "));
        }
    }
    out.push('\n');
}

/// An array with one object per endpoint: the status fields, or
/// `{"endpoint", "error", "message"}` for an endpoint that did not answer.
pub fn status_json(rows: &[StatusRow]) -> Value {
    let rows: Vec<Value> = rows
        .iter()
        .map(|row| match &row.result {
            Ok(s) => {
                let header = s.header.unwrap_or_default();
                json!({
                    "endpoint": row.endpoint,
                    "member": header.member,
                    "role": role_name(s.role()),
                    "leader": header.leader,
                    "term": header.term,
                    "commit": s.commit_index,
                    "applied": s.applied_index,
                    "digest": format!("{:016x}", s.digest),
                    "snapshot": s.snapshot_index,
                    "znodes": s.znode_count,
                    "version": s.version,
                })
            }
            Err(err) => json!({
                "endpoint": row.endpoint,
                "error": err.name(),
                "message": err.to_string(),
            }),
        })
        .collect();
    Value::Array(rows)
}

#[cfg(test)]
mod tests {
    use super::*;
    use coord_client::{Error, Header};
    use std::collections::BTreeMap;

    fn listing() -> Listing {
        let mut children = BTreeMap::new();
        children.insert("/".to_owned(), vec!["a".to_owned(), "b".to_owned()]);
        children.insert("/a".to_owned(), vec!["x".to_owned()]);
        children.insert("/a/x".to_owned(), vec![]);
        children.insert("/b".to_owned(), vec![]);
        Listing {
            root: "/".into(),
            children,
        }
    }

    #[test]
    fn tree_text_is_indented() {
        assert_eq!(tree_text(&listing()), "/\n  a\n    x\n  b\n");
        let sub = Listing {
            root: "/a".into(),
            ..listing()
        };
        assert_eq!(tree_text(&sub), "/a\n  x\n");
    }

    #[test]
    fn tree_json_is_nested() {
        let expected = json!({"path": "/", "children": [
            {"path": "/a", "children": [{"path": "/a/x", "children": []}]},
            {"path": "/b", "children": []},
        ]});
        assert_eq!(tree_json(&listing(), "/"), expected);
    }

    fn rows() -> Vec<StatusRow> {
        let status = StatusResponse {
            header: Some(Header {
                zxid: 12,
                leader: 1,
                term: 3,
                member: 1,
            }),
            role: Role::Leader.into(),
            commit_index: 12,
            applied_index: 12,
            digest: 0xdead_beef,
            ..StatusResponse::default()
        };
        let down = Error::Transport {
            endpoint: "127.0.0.1:9".into(),
            message: "tcp connect error".into(),
        };
        vec![
            StatusRow {
                endpoint: "127.0.0.1:2390".into(),
                result: Ok(status),
            },
            StatusRow {
                endpoint: "127.0.0.1:9".into(),
                result: Err(down),
            },
        ]
    }

    #[test]
    fn status_table_aligns_and_shows_errors() {
        let expected = "\
ENDPOINT        MEMBER  ROLE    LEADER  TERM  COMMIT  APPLIED  DIGEST
127.0.0.1:2390  1       leader  1       3     12      12       00000000deadbeef
127.0.0.1:9     error: Transport: 127.0.0.1:9: tcp connect error
";
        assert_eq!(status_table(&rows()), expected);
    }

    #[test]
    fn status_json_has_one_object_per_endpoint() {
        let v = status_json(&rows());
        assert_eq!(v[0]["role"], "leader");
        assert_eq!(v[0]["digest"], "00000000deadbeef");
        assert_eq!(v[0]["applied"], 12);
        assert_eq!(v[1]["error"], "Transport");
        assert_eq!(v[1]["message"], "127.0.0.1:9: tcp connect error");
    }
}
