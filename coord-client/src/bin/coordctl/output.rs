//! What a command produced ([`Outcome`]) and how it is shown: text for people,
//! or one JSON document for scripts. Rendering is pure (it writes to any
//! `io::Write`), so it is unit-tested without a cluster.

use std::io::{self, Write};

use bytes::Bytes;
use coord_client::{Created, Error, Lease, LeaseInfo, LeaseTimeToLive, Stat, StatusResponse};
use serde_json::{Value, json};

use crate::encode::{base64, utc_millis};
use crate::leases;
use crate::table::{status_json, status_table, tree_json, tree_text};
use crate::walk::Listing;

/// The result of one command, before rendering.
#[derive(Debug)]
pub enum Outcome {
    /// `create`: the created node.
    Created(Created),
    /// `get`: a node's data (and stat, shown with `--stat`).
    Data {
        /// The node read.
        path: String,
        /// Its data.
        data: Bytes,
        /// Its stat.
        stat: Stat,
        /// Whether the text form shows the stat too.
        show_stat: bool,
    },
    /// `set`: the node's new stat.
    Set {
        /// The node changed.
        path: String,
        /// Its new stat.
        stat: Stat,
    },
    /// `rm`: how many nodes were deleted.
    Deleted {
        /// The node removed.
        path: String,
        /// Nodes deleted (more than one with `-r`).
        count: usize,
    },
    /// `ls`: child names.
    Children {
        /// The parent.
        path: String,
        /// Sorted child names.
        names: Vec<String>,
    },
    /// `stat`: a node's stat.
    Stat {
        /// The node.
        path: String,
        /// Its stat.
        stat: Stat,
    },
    /// `tree`: a subtree.
    Tree(Listing),
    /// `status`: one row per endpoint.
    Status(Vec<StatusRow>),
    /// `lease grant`: the new lease.
    LeaseGranted(Lease),
    /// `lease revoke`: the revoked lease id.
    LeaseRevoked(u64),
    /// `lease ttl`: what the leader knows about a lease.
    LeaseTtl(LeaseTimeToLive),
    /// `lease list`: every lease.
    Leases(Vec<LeaseInfo>),
    /// A command that renders itself (the recipe commands): its text form
    /// (written as is) and its JSON document.
    Rendered {
        /// The text form; exact bytes (a taken queue item's data).
        text: Bytes,
        /// The JSON form.
        json: Value,
    },
    /// A live command already printed everything as it went.
    Nothing,
}

/// One endpoint's answer to `status`.
#[derive(Debug)]
pub struct StatusRow {
    /// The endpoint queried.
    pub endpoint: String,
    /// Its status, or why it did not answer.
    pub result: Result<StatusResponse, Error>,
}

/// Writes the text form. `terminal` says whether stdout is a terminal: `get`
/// then ends data that lacks one with a newline, while a pipe gets the exact
/// bytes.
pub fn render_text(outcome: &Outcome, out: &mut dyn Write, terminal: bool) -> io::Result<()> {
    match outcome {
        Outcome::Created(created) => writeln!(out, "{}", created.path),
        Outcome::Data {
            data,
            stat,
            show_stat,
            ..
        } => {
            out.write_all(data)?;
            let needs_newline = !data.is_empty() && !data.ends_with(b"\n");
            if needs_newline && (terminal || *show_stat) {
                writeln!(out)?;
            }
            if *show_stat {
                out.write_all(stat_text(stat).as_bytes())?;
            }
            Ok(())
        }
        Outcome::Set { .. }
        | Outcome::Deleted { .. }
        | Outcome::LeaseRevoked(_)
        | Outcome::Nothing => Ok(()),
        Outcome::Children { names, .. } => names.iter().try_for_each(|n| writeln!(out, "{n}")),
        Outcome::Stat { stat, .. } => out.write_all(stat_text(stat).as_bytes()),
        Outcome::Tree(listing) => out.write_all(tree_text(listing).as_bytes()),
        Outcome::Status(rows) => out.write_all(status_table(rows).as_bytes()),
        Outcome::LeaseGranted(lease) => out.write_all(leases::granted_text(lease).as_bytes()),
        Outcome::LeaseTtl(ttl) => out.write_all(leases::ttl_text(ttl).as_bytes()),
        Outcome::Leases(list) => out.write_all(leases::list_text(list).as_bytes()),
        Outcome::Rendered { text, .. } => {
            out.write_all(text)?;
            if terminal && !text.is_empty() && !text.ends_with(b"\n") {
                writeln!(out)?;
            }
            Ok(())
        }
    }
}

/// The JSON form: one document per command.
pub fn to_json(outcome: &Outcome) -> Value {
    match outcome {
        Outcome::Created(c) => json!({"path": c.path, "stat": stat_json(&c.stat)}),
        Outcome::Data {
            path, data, stat, ..
        } => {
            let (data, encoding) = data_json(data);
            json!({"path": path, "data": data, "encoding": encoding, "stat": stat_json(stat)})
        }
        Outcome::Set { path, stat } | Outcome::Stat { path, stat } => {
            json!({"path": path, "stat": stat_json(stat)})
        }
        Outcome::Deleted { path, count } => json!({"path": path, "deleted": count}),
        Outcome::Children { path, names } => json!({"path": path, "children": names}),
        Outcome::Tree(listing) => tree_json(listing, &listing.root),
        Outcome::Status(rows) => status_json(rows),
        Outcome::LeaseGranted(lease) => leases::granted_json(lease),
        Outcome::LeaseRevoked(id) => json!({"id": id, "revoked": true}),
        Outcome::LeaseTtl(ttl) => leases::ttl_json(ttl),
        Outcome::Leases(list) => leases::list_json(list),
        Outcome::Rendered { json, .. } => json.clone(),
        Outcome::Nothing => Value::Null,
    }
}

/// Data as a JSON string: itself when valid UTF-8, else base64. Returns the
/// value and its encoding (`"utf-8"` or `"base64"`).
pub fn data_json(data: &[u8]) -> (String, &'static str) {
    match std::str::from_utf8(data) {
        Ok(text) => (text.to_owned(), "utf-8"),
        Err(_) => (base64(data), "base64"),
    }
}

/// A stat as an object with ZooKeeper's field names.
pub fn stat_json(stat: &Stat) -> Value {
    json!({
        "czxid": stat.czxid,
        "mzxid": stat.mzxid,
        "pzxid": stat.pzxid,
        "ctime": stat.ctime,
        "mtime": stat.mtime,
        "version": stat.version,
        "cversion": stat.cversion,
        "aversion": stat.aversion,
        "ephemeralOwner": stat.ephemeral_owner,
        "dataLength": stat.data_length,
        "numChildren": stat.num_children,
    })
}

/// A stat as ZooKeeper-like `name = value` lines (zxids in decimal, times in UTC).
pub fn stat_text(stat: &Stat) -> String {
    format!(
        "czxid = {}\nmzxid = {}\npzxid = {}\nctime = {}\nmtime = {}\nversion = {}\n\
         cversion = {}\naversion = {}\nephemeralOwner = {}\ndataLength = {}\nnumChildren = {}\n",
        stat.czxid,
        stat.mzxid,
        stat.pzxid,
        utc_millis(stat.ctime),
        utc_millis(stat.mtime),
        stat.version,
        stat.cversion,
        stat.aversion,
        stat.ephemeral_owner,
        stat.data_length,
        stat.num_children,
    )
}

/// The JSON document of a failed command.
pub fn error_json(name: &str, message: &str) -> Value {
    json!({"error": name, "message": message})
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample_stat() -> Stat {
        Stat {
            czxid: 5,
            mzxid: 7,
            pzxid: 5,
            ctime: 1_712_311_872_345,
            mtime: 1_712_311_873_000,
            version: 2,
            cversion: 0,
            aversion: 0,
            ephemeral_owner: 0,
            data_length: 5,
            num_children: 0,
        }
    }

    fn text(outcome: &Outcome, terminal: bool) -> String {
        let mut out = Vec::new();
        render_text(outcome, &mut out, terminal).expect("render");
        String::from_utf8(out).expect("utf-8")
    }

    #[test]
    fn stat_text_has_zookeeper_lines() {
        let expected = "czxid = 5\nmzxid = 7\npzxid = 5\nctime = 2024-04-05T10:11:12.345Z\n\
            mtime = 2024-04-05T10:11:13.000Z\nversion = 2\ncversion = 0\naversion = 0\n\
            ephemeralOwner = 0\ndataLength = 5\nnumChildren = 0\n";
        assert_eq!(stat_text(&sample_stat()), expected);
    }

    #[test]
    fn stat_json_uses_zookeeper_names() {
        let v = stat_json(&sample_stat());
        assert_eq!(v["czxid"], 5);
        assert_eq!(v["ephemeralOwner"], 0);
        assert_eq!(v["dataLength"], 5);
        assert_eq!(v["numChildren"], 0);
        assert_eq!(v.as_object().map(|o| o.len()), Some(11));
    }

    #[test]
    fn data_is_exact_on_a_pipe_and_tidy_on_a_terminal() {
        let get = |data: &'static [u8], show_stat| Outcome::Data {
            path: "/a".into(),
            data: Bytes::from_static(data),
            stat: sample_stat(),
            show_stat,
        };
        assert_eq!(text(&get(b"hello", false), false), "hello");
        assert_eq!(text(&get(b"hello", false), true), "hello\n");
        assert_eq!(text(&get(b"hello\n", false), true), "hello\n");
        assert_eq!(text(&get(b"", false), true), "");
        assert!(text(&get(b"hello", true), false).starts_with("hello\nczxid = 5\n"));
    }

    #[test]
    fn json_documents() {
        let get = Outcome::Data {
            path: "/a".into(),
            data: Bytes::from_static(b"\xff\x00"),
            stat: sample_stat(),
            show_stat: false,
        };
        let v = to_json(&get);
        assert_eq!(
            (v["data"].as_str(), v["encoding"].as_str()),
            (Some("/wA="), Some("base64"))
        );
        assert_eq!(v["stat"]["version"], 2);
        let ls = Outcome::Children {
            path: "/".into(),
            names: vec!["a".into(), "b".into()],
        };
        assert_eq!(to_json(&ls), json!({"path": "/", "children": ["a", "b"]}));
        assert_eq!(text(&ls, false), "a\nb\n");
        let rm = Outcome::Deleted {
            path: "/a".into(),
            count: 3,
        };
        assert_eq!(to_json(&rm), json!({"path": "/a", "deleted": 3}));
        assert_eq!(text(&rm, false), "");
        assert_eq!(data_json(b"caf\xc3\xa9"), ("café".to_owned(), "utf-8"));
        assert_eq!(
            error_json("NoNode", "no node: /a"),
            json!({"error": "NoNode", "message": "no node: /a"})
        );
    }
}
