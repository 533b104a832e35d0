//! The real `coordctl` binary against a real 3-member cluster: text and JSON
//! output, exit codes, the lease commands and the live commands (`watch`,
//! `create -e`, `lease keep-alive`) run as background processes.
#![allow(clippy::unwrap_used)]

mod common;

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use coord_testkit::Cluster;
use serde_json::Value;

use common::{coordctl, exit_of, next_line};

/// Runs coordctl with `--endpoints endpoints` and `args`, feeding `stdin`.
fn run(endpoints: &str, args: &[&str], stdin: &[u8]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_coordctl"))
        .arg("--endpoints")
        .arg(endpoints)
        .args(args)
        .env_remove("COORD_ENDPOINTS")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(stdin).unwrap();
    child.wait_with_output().unwrap()
}

/// Runs coordctl and returns (exit code, stdout, stderr).
fn ctl(endpoints: &str, args: &[&str]) -> (i32, String, String) {
    let out = run(endpoints, args, b"");
    let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    (
        out.status.code().unwrap_or(-1),
        text(&out.stdout),
        text(&out.stderr),
    )
}

/// Runs coordctl with `--json`; expects success and returns the document.
fn ctl_json(endpoints: &str, args: &[&str]) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let (code, stdout, stderr) = ctl(endpoints, &all);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    serde_json::from_str(&stdout).unwrap()
}

fn ok(endpoints: &str, args: &[&str]) -> String {
    let (code, stdout, stderr) = ctl(endpoints, args);
    assert_eq!(code, 0, "{args:?} failed: {stderr}");
    stdout
}

fn unreachable_endpoint() -> String {
    format!("127.0.0.1:{}", coord_testkit::free_ports(1)[0])
}

#[tokio::test(flavor = "multi_thread")]
async fn text_commands() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");

    assert_eq!(ok(&eps, &["create", "/cfg", "hello"]), "/cfg\n");
    assert_eq!(ok(&eps, &["get", "/cfg"]), "hello");
    assert_eq!(ok(&eps, &["set", "/cfg", "world", "--version", "0"]), "");
    let with_stat = ok(&eps, &["get", "/cfg", "--stat"]);
    assert!(with_stat.starts_with("world\nczxid = "), "{with_stat}");
    assert!(with_stat.contains("\nversion = 1\n"), "{with_stat}");

    let item = ok(&eps, &["create", "-s", "/cfg/item-"]);
    let item = item.trim_end().to_owned();
    let suffix = item.strip_prefix("/cfg/item-").unwrap();
    assert!(
        suffix.len() == 10 && suffix.bytes().all(|b| b.is_ascii_digit()),
        "{item}"
    );
    let name = item.trim_start_matches("/cfg/");

    assert!(ok(&eps, &["ls", "/"]).lines().any(|l| l == "cfg"));
    assert_eq!(
        ok(&eps, &["ls", "/cfg", "--serializable"]),
        format!("{name}\n")
    );
    let stat = ok(&eps, &["stat", "/cfg"]);
    for line in ["dataLength = 5", "numChildren = 1", "version = 1"] {
        assert!(stat.lines().any(|l| l == line), "{line} missing in {stat}");
    }
    assert!(stat.starts_with("czxid = "), "{stat}");
    assert_eq!(ok(&eps, &["tree", "/cfg"]), format!("/cfg\n  {name}\n"));
    assert!(ok(&eps, &["tree"]).starts_with("/\n"));

    // Data from stdin, binary-safe on a pipe.
    let out = run(&eps, &["set", "/cfg", "-"], b"\xff\x00bin\n");
    assert!(out.status.success());
    assert_eq!(run(&eps, &["get", "/cfg"], b"").stdout, b"\xff\x00bin\n");

    let (code, _, stderr) = ctl(&eps, &["rm", "/cfg"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: NotEmpty: "), "{stderr}");
    let (code, _, stderr) = ctl(&eps, &["rm", "-r", "/cfg", "--version", "7"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: BadVersion: "), "{stderr}");
    assert_eq!(ok(&eps, &["rm", "-r", "/cfg"]), "");

    let (code, stdout, stderr) = ctl(&eps, &["get", "/cfg"]);
    assert_eq!((code, stdout.as_str()), (1, ""));
    assert!(stderr.starts_with("Error: NoNode: "), "{stderr}");
    let (code, _, stderr) = ctl(&eps, &["stat", "/cfg"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: NoNode: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn json_commands() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");

    let created = ctl_json(&eps, &["create", "/j", "text"]);
    assert_eq!(created["path"], "/j");
    assert_eq!(created["stat"]["version"], 0);
    assert_eq!(created["stat"]["dataLength"], 4);

    let got = ctl_json(&eps, &["get", "/j"]);
    assert_eq!(
        (got["data"].as_str(), got["encoding"].as_str()),
        (Some("text"), Some("utf-8"))
    );
    assert_eq!(got["stat"]["czxid"], created["stat"]["czxid"]);

    let out = run(&eps, &["--json", "set", "/j", "-"], &[0xff, 0x00, 0x01]);
    assert!(out.status.success());
    let set: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(set["stat"]["version"], 1);
    let got = ctl_json(&eps, &["get", "/j", "--serializable"]);
    assert_eq!(
        (got["data"].as_str(), got["encoding"].as_str()),
        (Some("/wAB"), Some("base64"))
    );

    ctl_json(&eps, &["create", "/j/a"]);
    ctl_json(&eps, &["create", "/j/a/deep"]);
    let ls = ctl_json(&eps, &["ls", "/j"]);
    assert_eq!(ls, serde_json::json!({"path": "/j", "children": ["a"]}));
    let stat = ctl_json(&eps, &["stat", "/j"]);
    assert_eq!(stat["stat"]["numChildren"], 1);
    let tree = ctl_json(&eps, &["tree", "/j"]);
    let expected = serde_json::json!({"path": "/j", "children": [
        {"path": "/j/a", "children": [{"path": "/j/a/deep", "children": []}]}
    ]});
    assert_eq!(tree, expected);
    let rm = ctl_json(&eps, &["rm", "-r", "/j"]);
    assert_eq!(rm, serde_json::json!({"path": "/j", "deleted": 3}));

    let (code, stdout, stderr) = ctl(&eps, &["--json", "get", "/j"]);
    assert_eq!(code, 1);
    let err: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(err["error"], "NoNode");
    assert!(
        err["message"].as_str().is_some_and(|m| m.contains("/j")),
        "{err}"
    );
    assert!(stderr.starts_with("Error: NoNode: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn status_and_exit_codes() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");

    let table = ok(&eps, &["status"]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 4, "{table}");
    assert!(lines[0].starts_with("ENDPOINT"), "{table}");
    assert_eq!(
        lines.iter().filter(|l| l.contains(" leader ")).count(),
        1,
        "{table}"
    );

    // One endpoint down: an error row, but success since others answered.
    let down = unreachable_endpoint();
    let with_down = format!("{eps},{down}");
    let table = ok(&with_down, &["status", "--timeout", "3s"]);
    let row = table.lines().find(|l| l.starts_with(&down)).unwrap();
    assert!(row.contains("error: Transport: "), "{row}");
    let rows = ctl_json(&with_down, &["status"]);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 4);
    assert_eq!(rows.iter().filter(|r| r["role"] == "leader").count(), 1);
    assert_eq!(rows[3]["error"], "Transport");
    let ids: Vec<u64> = rows[..3]
        .iter()
        .map(|r| r["member"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, cluster.ids());

    // Nothing reachable: exit code 3.
    let (code, _, stderr) = ctl(&down, &["status"]);
    assert_eq!(code, 3, "{stderr}");
    let (code, _, stderr) = ctl(&down, &["get", "/", "--timeout", "1s"]);
    assert_eq!(code, 3);
    assert!(stderr.starts_with("Error: Transport: "), "{stderr}");

    // Usage errors: exit code 2.
    assert_eq!(ctl(&eps, &["frobnicate"]).0, 2);
    assert_eq!(ctl("no-port", &["ls", "/"]).0, 2);

    // The endpoints may come from the environment.
    let out = Command::new(env!("CARGO_BIN_EXE_coordctl"))
        .args(["ls", "/"])
        .env("COORD_ENDPOINTS", &eps)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn lease_commands() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");

    let id = ok(&eps, &["lease", "grant", "20s"]);
    let id = id.trim();
    assert!(id.parse::<u64>().is_ok(), "{id}");
    let granted = ctl_json(&eps, &["lease", "grant", "10"]);
    assert_eq!(granted["ttlMs"], 10_000);
    assert!(granted["id"].as_u64().is_some());
    let (code, _, stderr) = ctl(&eps, &["lease", "grant", "1s"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: BadArguments: "), "{stderr}");

    assert_eq!(
        ok(&eps, &["create", "-e", "--lease", id, "/held", "x"]),
        "/held\n"
    );
    let seq = ok(&eps, &["create", "-e", "-s", "--lease", id, "/held-"]);
    let seq = seq.trim();
    assert!(seq.starts_with("/held-") && seq.len() == 16, "{seq}");
    let stat = ok(&eps, &["stat", "/held"]);
    assert!(stat.contains(&format!("ephemeralOwner = {id}\n")), "{stat}");

    let ttl = ok(&eps, &["lease", "ttl", id]);
    assert!(
        ttl.starts_with(&format!("id = {id}\ngranted = 20.000s\nremaining = ")),
        "{ttl}"
    );
    assert!(
        ttl.ends_with(&format!("node = /held\nnode = {seq}\n")),
        "{ttl}"
    );
    let ttl = ctl_json(&eps, &["lease", "ttl", id]);
    assert_eq!(ttl["grantedTtlMs"], 20_000);
    assert_eq!(ttl["nodes"], serde_json::json!(["/held", seq]));
    let list = ok(&eps, &["lease", "list"]);
    assert!(list.starts_with("ID "), "{list}");
    let row = list.lines().find(|l| l.starts_with(id)).unwrap();
    assert!(row.contains("20.000s") && row.ends_with(" 2"), "{row}");
    let list = ctl_json(&eps, &["lease", "list"]);
    let mine = list
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["id"].as_u64() == id.parse().ok())
        .unwrap();
    assert_eq!(
        (mine["grantedTtlMs"].as_u64(), mine["nodes"].as_u64()),
        (Some(20_000), Some(2))
    );

    let revoked = ctl_json(&eps, &["lease", "revoke", id]);
    assert_eq!(revoked["revoked"], true);
    assert_eq!(ctl(&eps, &["get", "/held"]).0, 1);
    let (code, _, stderr) = ctl(&eps, &["lease", "ttl", id]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: LeaseNotFound: "), "{stderr}");
    let (code, _, stderr) = ctl(&eps, &["create", "-e", "--lease", id, "/late"]);
    assert_eq!(code, 1);
    assert!(stderr.starts_with("Error: LeaseNotFound: "), "{stderr}");
}

#[tokio::test(flavor = "multi_thread")]
async fn node_kind_commands() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");
    assert_eq!(ok(&eps, &["create", "-c", "/box"]), "/box\n");
    let stat = ok(&eps, &["stat", "/box"]);
    assert!(
        stat.contains("ephemeralOwner = 9223372036854775808\n"),
        "{stat}"
    );
    assert_eq!(ok(&eps, &["create", "--ttl", "500", "/short"]), "/short\n");
    let mut gone = false;
    for _ in 0..50 {
        if ctl(&eps, &["stat", "/short"]).0 == 1 {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(gone, "the TTL node outlived its TTL");
    assert_eq!(ctl(&eps, &["create", "-c", "-e", "/bad"]).0, 2);
}

#[tokio::test(flavor = "multi_thread")]
async fn watch_once_prints_the_first_change() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");
    let client = coord_client::Client::connect(cluster.endpoints())
        .await
        .unwrap();

    // watch --once, from a zxid read first, so the change cannot be missed.
    let from = client
        .exists_with_header("/")
        .await
        .unwrap()
        .header
        .zxid
        .to_string();
    let mut json_watch = coordctl(
        "json watch",
        &eps,
        &["--json", "watch", "/live", "--from", &from, "--once"],
    );
    let mut text_watch = coordctl(
        "text watch",
        &eps,
        &["watch", "-r", "/", "--from", &from, "--once"],
    );
    let zxid = client
        .create_with_header("/live", "", coord_client::CreateMode::Persistent)
        .await
        .unwrap()
        .header
        .zxid;
    let line: Value = serde_json::from_str(&next_line(&mut json_watch).await).unwrap();
    assert_eq!(
        line,
        serde_json::json!({"type": "NodeCreated", "path": "/live", "zxid": zxid})
    );
    assert_eq!(exit_of(&mut json_watch).await.0, 0);
    assert_eq!(
        next_line(&mut text_watch).await,
        format!("NodeCreated /live {zxid}")
    );
    assert_eq!(exit_of(&mut text_watch).await.0, 0);
}

#[tokio::test(flavor = "multi_thread")]
async fn holders_run_until_a_signal_or_a_loss() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");
    let client = coord_client::Client::connect(cluster.endpoints())
        .await
        .unwrap();

    // create -e holds its node until Ctrl-C (SIGINT), then revokes the session.
    let mut holder = coordctl(
        "holder",
        &eps,
        &["create", "-e", "--session-ttl", "2s", "/sess", "x"],
    );
    assert_eq!(next_line(&mut holder).await, "/sess");
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        client.exists("/sess").await.unwrap().is_some(),
        "kept past its TTL"
    );
    holder.signal(nix::sys::signal::Signal::SIGINT);
    let (code, stderr) = exit_of(&mut holder).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        client.exists("/sess").await.unwrap(),
        None,
        "revoked at exit"
    );

    // lease keep-alive prints renewals and fails with code 4 once revoked.
    let lease = client.lease_grant(Duration::from_secs(3)).await.unwrap();
    let id = lease.id.to_string();
    let mut keeper = coordctl("keeper", &eps, &["lease", "keep-alive", &id]);
    for _ in 0..2 {
        let line = next_line(&mut keeper).await;
        assert!(
            line.starts_with(&format!("lease {id} kept alive, TTL ")),
            "{line}"
        );
    }
    client.lease_revoke(lease.id).await.unwrap();
    let (code, stderr) = exit_of(&mut keeper).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("Error: Expired: "), "{stderr}");

    // services register holds its instance until SIGTERM, then unregisters,
    // even when the signal comes right after its line (the handler is in
    // place before the line is printed)...
    let register = |id: &str| {
        coordctl(
            id,
            &eps,
            &["services", "register", "api", id, "127.0.0.1:9000"],
        )
    };
    let mut instance = register("api-1");
    assert_eq!(next_line(&mut instance).await, "/services/api/api-1");
    instance.signal(nix::sys::signal::Signal::SIGTERM);
    let (code, stderr) = exit_of(&mut instance).await;
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        client.exists("/services/api/api-1").await.unwrap(),
        None,
        "unregistered at exit"
    );
    // ...and fails with code 4 once its session is lost.
    let mut instance = register("api-2");
    assert_eq!(next_line(&mut instance).await, "/services/api/api-2");
    let owner = client
        .exists("/services/api/api-2")
        .await
        .unwrap()
        .expect("registered")
        .ephemeral_owner;
    client.lease_revoke(owner).await.unwrap();
    let (code, stderr) = exit_of(&mut instance).await;
    assert_eq!(code, 4, "{stderr}");
    assert!(stderr.contains("Error: Expired: "), "{stderr}");
}
