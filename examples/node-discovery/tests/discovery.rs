//! `node-discovery` processes against a real 3-member cluster: three
//! `serve` instances, two `resolve --watch` views and a `call` sending steady
//! traffic. After `kill -9` of an instance it leaves every view within the
//! session TTL plus an election timeout, and the caller sends it nothing
//! once its view dropped it; a new instance gets traffic within a watch
//! round trip (plus one request interval); a politely stopped instance
//! leaves at once.
#![allow(clippy::unwrap_used)]

#[path = "../../test-support/procs.rs"]
mod procs;

use std::collections::BTreeSet;
use std::time::Duration;

use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use procs::{Proc, endpoints_from};

const BIN: &str = env!("CARGO_BIN_EXE_node-discovery");
const WAIT: Duration = Duration::from_secs(15);
const TTL: Duration = Duration::from_secs(2);
/// An election timeout with the testkit's 50 ms ticks is at most 1 s.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Room for a loaded 2-core machine (keep-alive timing, scheduling).
const SLACK: Duration = Duration::from_secs(1);
/// A watch round trip (event, re-read) plus a few request intervals, with
/// room for a loaded machine.
const JOIN_BOUND: Duration = Duration::from_secs(1);

async fn serve(id: &str, endpoints: &str) -> (Proc, Instant) {
    let args = ["serve", "web", "--id", id, "--session-ttl-ms", "2000"];
    let mut proc = procs::start(id, BIN, endpoints, &args);
    let (at, doc) = proc.wait_for("registered", WAIT).await;
    assert_eq!(doc["instance"]["id"], id);
    assert!(doc["instance"]["metadata"]["port"].as_u64().unwrap() > 0);
    (proc, at)
}

/// Reads `proc`'s lines until `event` about instance `id`.
async fn change(proc: &mut Proc, event: &str, id: &str) -> Instant {
    loop {
        let (at, doc) = proc.wait_for(event, WAIT).await;
        if doc["instance"]["id"] == id {
            return at;
        }
    }
}

/// Reads the caller's lines until instance `id` answered a request.
async fn answered_by(caller: &mut Proc, id: &str) -> Instant {
    loop {
        let (at, doc) = caller.wait_for("response", WAIT).await;
        if doc["answered_by"] == id {
            return at;
        }
    }
}

/// Three instances, then two `resolve --watch` views and a caller sending
/// a request every 20 ms, once every view shows all three and each has
/// answered the caller.
async fn start(eps: &[String]) -> (Vec<Proc>, Vec<Proc>) {
    let mut instances = Vec::new();
    for i in 1..=3 {
        instances.push(serve(&format!("web-{i}"), &endpoints_from(eps, i)).await.0);
    }
    let mut views: Vec<Proc> = (0..2)
        .map(|i| {
            let name = format!("resolver-{i}");
            procs::start(
                &name,
                BIN,
                &endpoints_from(eps, i),
                &["resolve", "web", "--watch"],
            )
        })
        .collect();
    let call = ["call", "web", "--count", "0", "--interval-ms", "20"];
    views.push(procs::start("caller", BIN, &endpoints_from(eps, 2), &call));
    for view in &mut views {
        let (_, doc) = view.wait_for("view", WAIT).await;
        assert_eq!(doc["instances"].as_array().unwrap().len(), 3, "{doc}");
    }
    for i in 1..=3 {
        answered_by(&mut views[2], &format!("web-{i}")).await;
    }
    (instances, views)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instance_leaves_every_view_and_a_new_one_gets_traffic() {
    let cluster = Cluster::builder(3)
        .args(["--min-lease-ttl-ms", "1000"])
        .start()
        .await;
    let eps = cluster.endpoints();
    let (mut instances, mut views) = start(&eps).await;

    // kill -9 of web-2: it leaves every view within TTL + election timeout.
    instances[1].kill();
    let killed = Instant::now();
    for view in &mut views {
        let left = change(view, "removed", "web-2").await - killed;
        eprintln!("web-2 left {}'s view {left:?} after kill -9", view.name);
        assert!(
            left < TTL + ELECTION_TIMEOUT + SLACK,
            "{}: {left:?}",
            view.name
        );
    }

    // A new instance gets traffic within a watch round trip.
    let (web4, registered) = serve("web-4", &endpoints_from(&eps, 1)).await;
    instances.push(web4);
    let first = answered_by(&mut views[2], "web-4").await - registered;
    eprintln!("web-4 answered its first request {first:?} after registering");
    assert!(first < JOIN_BOUND, "{first:?}");
    for view in &mut views[..2] {
        change(view, "added", "web-4").await;
    }

    // SIGTERM: web-1 unregisters and leaves the views at once.
    instances[0].signal(Signal::SIGTERM);
    let stopped = Instant::now();
    assert_eq!(instances[0].exit(WAIT).await.code(), Some(0));
    for view in &mut views {
        let left = change(view, "removed", "web-1").await - stopped;
        assert!(left < TTL, "{}: web-1 left after {left:?}", view.name);
    }

    tokio::time::sleep(Duration::from_millis(300)).await;
    views[2].signal(Signal::SIGTERM);
    assert_eq!(
        views[2].exit(WAIT).await.code(),
        Some(0),
        "a request got no answer"
    );
    tokio::time::sleep(Duration::from_millis(100)).await;
    views[2].drain();
    check_traffic(
        &views[2]
            .seen
            .iter()
            .map(|(_, d)| d.clone())
            .collect::<Vec<_>>(),
    );
}

/// Every request was answered, and none was sent to an instance after the
/// caller's view dropped it.
fn check_traffic(lines: &[Value]) {
    let mut removed: BTreeSet<String> = BTreeSet::new();
    let mut answered = BTreeSet::new();
    let mut failed_attempts = 0;
    let mut per_instance = std::collections::BTreeMap::<String, u64>::new();
    for doc in lines {
        let event = doc["event"].as_str().unwrap();
        match event {
            "removed" => {
                removed.insert(doc["instance"]["id"].as_str().unwrap().to_owned());
            }
            "response" | "failed" => {
                let to = doc["instance"].as_str().unwrap();
                assert!(
                    !removed.contains(to),
                    "request sent to {to} after it left the view: {doc}"
                );
                if event == "response" {
                    assert_eq!(doc["answered_by"], to);
                    answered.insert(doc["seq"].as_u64().unwrap());
                    *per_instance.entry(to.to_owned()).or_default() += 1;
                } else {
                    failed_attempts += 1;
                }
            }
            "no_instance" => panic!("no instance: {doc}"),
            _ => {}
        }
    }
    let last = *answered.last().unwrap();
    assert_eq!(answered.len() as u64, last, "some request was not answered");
    eprintln!(
        "{last} requests, all answered ({per_instance:?}); {failed_attempts} attempts to the killed instance before it left the view were retried"
    );
}
