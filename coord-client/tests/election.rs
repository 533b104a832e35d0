//! The election recipe against real 3-member clusters, with candidates as
//! separate processes: killing the leader elects exactly one new leader and
//! observers see it; a leader stopped (SIGSTOP) past its TTL is told it lost
//! on resume and its fenced writes fail; a leader whose session is suspended
//! is told so.
#![allow(clippy::unwrap_used)]

#[path = "support/procs.rs"]
mod procs;

use std::time::Duration;

use coord_client::recipes::HoldState;
use coord_client::recipes::election::{self, Election};
use coord_client::{Client, CreateMode, EventType, WatchItem, WatchOptions, WatchStream};
use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use procs::Proc;
use procs::common::{a_follower, client_starting_at};

const WAIT: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(2);
/// An election timeout with the testkit's 50 ms ticks is at most 1 s.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

/// The first `elected` line among `candidates` within `timeout`: its index.
async fn elected(candidates: &mut [Proc], timeout: Duration) -> Option<(usize, Instant, Value)> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for (i, candidate) in candidates.iter_mut().enumerate() {
            if let Some((at, line)) = candidate.line(Duration::from_millis(20)).await {
                let doc: Value = serde_json::from_str(&line).unwrap();
                assert_eq!(doc["event"], "elected", "{}: {line}", candidate.name);
                return Some((i, at, doc));
            }
        }
    }
    None
}

/// The next leader value the listener prints.
async fn listened(listener: &mut Proc) -> Value {
    listener.json(WAIT).await.1["leader"].clone()
}

#[tokio::test(flavor = "multi_thread")]
async fn killing_the_leader_elects_exactly_one_new_leader_and_observers_see_it() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");
    let mut listener = procs::coordctl("listener", &eps, &["elect", "db", "--listen", "--json"]);
    assert_eq!(listened(&mut listener).await, Value::Null);
    let mut candidates: Vec<Proc> = (0..3)
        .map(|i| {
            let value = format!("c{i}");
            let args = ["elect", "db", &value, "--session-ttl", "2s", "--json"];
            procs::coordctl(&value, &eps, &args)
        })
        .collect();
    let (first, _, doc) = elected(&mut candidates, WAIT).await.unwrap();
    assert!(
        elected(&mut candidates, Duration::from_millis(500))
            .await
            .is_none(),
        "two leaders"
    );
    let first_token = doc["token"].as_u64().unwrap();
    let seen = listened(&mut listener).await;
    assert_eq!(seen["value"], doc["value"]);
    assert_eq!(seen["token"].as_u64(), Some(first_token));

    let mut dead = candidates.remove(first);
    dead.kill();
    let killed = Instant::now();
    let (second, at, doc) = elected(&mut candidates, WAIT).await.unwrap();
    let elapsed = at - killed;
    eprintln!(
        "a new leader {} was elected {elapsed:?} after kill -9 of the leader",
        doc["value"]
    );
    assert!(
        elapsed < TTL + ELECTION_TIMEOUT + Duration::from_millis(700),
        "{elapsed:?}"
    );
    assert!(doc["token"].as_u64().unwrap() > first_token);
    assert!(
        elected(&mut candidates, Duration::from_secs(1))
            .await
            .is_none(),
        "two new leaders"
    );
    let seen = listened(&mut listener).await;
    assert_eq!(
        (&seen["value"], &seen["token"]),
        (&doc["value"], &doc["token"])
    );
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let leader = election::leader(&client, "/elections/db")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(leader.token, doc["token"].as_u64().unwrap());

    // A leader that is stopped politely resigns, and the last one leads at once.
    candidates[second].signal(Signal::SIGTERM);
    let resigned = Instant::now();
    assert_eq!(candidates[second].exit(WAIT).await.code(), Some(0));
    let (_, at, doc) = elected(&mut candidates, WAIT).await.unwrap();
    assert!(
        at - resigned < TTL,
        "the resignation did not hand over at once"
    );
    assert_eq!(listened(&mut listener).await["value"], doc["value"]);
}

/// The events of `/elections/s`'s subtree: when was `node` deleted?
async fn deleted_at(events: &mut WatchStream, node: &str) -> u64 {
    loop {
        let item = tokio::time::timeout(WAIT, events.next()).await.unwrap();
        if let Some(Ok(WatchItem::Event(e))) = item
            && e.kind == EventType::NodeDeleted
            && e.path == node
        {
            return e.zxid;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stopped_leader_is_told_on_resume_and_its_fenced_writes_fail() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    client
        .create("/owner", "", CreateMode::Persistent)
        .await
        .unwrap();
    let recursive = WatchOptions {
        recursive: true,
        after_zxid: None,
    };
    let mut events = client.watch("/elections", recursive).await.unwrap();
    let eps = cluster.endpoints().join(",");
    let elect = |value| ["elect", "/elections/s", value, "/owner"];
    let mut a = procs::worker("a", &eps, &elect("a"));
    let (_, doc) = a.json(WAIT).await;
    assert_eq!(doc["event"], "elected");
    let a_node = doc["node"].as_str().unwrap().to_owned();
    let mut b = procs::worker("b", &eps, &elect("b"));

    a.signal(Signal::SIGSTOP);
    let b_token = loop {
        let (_, doc) = b.json(WAIT).await;
        if doc["event"] == "elected" {
            break doc["token"].as_u64().unwrap();
        }
    };
    // The old leader's node went with its session, before b was elected.
    let lost_at = deleted_at(&mut events, &a_node).await;
    tokio::time::sleep(Duration::from_millis(500)).await;

    a.signal(Signal::SIGCONT);
    let resumed = Instant::now();
    let (mut told, mut refused, mut applied) = (None, 0, Vec::new());
    while let Some((at, line)) = a.line(WAIT).await {
        let doc: Value = serde_json::from_str(&line).unwrap();
        match (doc["event"].as_str(), doc["ok"].as_bool()) {
            (Some("Lost"), _) => told = Some(at - resumed),
            (Some("write"), Some(true)) => applied.push(doc["zxid"].as_u64().unwrap()),
            (Some("write"), _) if at > resumed => {
                assert_eq!(doc["error"], "NoNode", "{doc}");
                refused += 1;
            }
            _ => {}
        }
    }
    eprintln!("resumed leader told after {told:?}; {refused} fenced writes refused after resume");
    let told = told.expect("never told it lost leadership");
    assert!(
        told < Duration::from_millis(500),
        "told {told:?} after resuming"
    );
    assert!(refused > 0, "no fenced write was tried after resume");
    // Writes it sent before the stop may complete after it; none was applied
    // after its node (its fence) was gone.
    assert!(
        applied.iter().all(|zxid| *zxid < lost_at),
        "a stale leader's write was applied after zxid {lost_at}: {applied:?}"
    );
    assert_eq!(a.exit(WAIT).await.code(), Some(4));
    let (data, _) = client.get("/owner").await.unwrap();
    assert_eq!(String::from_utf8_lossy(&data), format!("b {b_token}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_leader_is_told_when_its_session_is_suspended() {
    let cluster = Cluster::start(3).await;
    let follower = a_follower(&cluster).await;
    let client = client_starting_at(&cluster, follower).await;
    let session = client.session(Duration::from_secs(3)).await.unwrap();
    let election = Election::new(client.clone(), &session, "/elections/x");
    let mut observer = election.observe();
    assert_eq!(observer.next().await.unwrap().unwrap(), None);
    let leadership = election.campaign("me").await.unwrap();
    let seen = observer.next().await.unwrap().unwrap().unwrap();
    assert_eq!(
        (seen.token, &seen.value[..]),
        (leadership.token(), &b"me"[..])
    );
    assert_eq!(seen.lease, session.id());
    leadership.proclaim("me, again").await.unwrap();
    let seen = observer.next().await.unwrap().unwrap().unwrap();
    assert_eq!(&seen.value[..], b"me, again");

    let mut states = leadership.states();
    cluster.member(follower).signal(Signal::SIGSTOP);
    let mut reached = async |wanted: HoldState| {
        let waited = tokio::time::timeout(WAIT, states.wait_for(|s| *s == wanted)).await;
        waited.is_ok_and(|r| r.is_ok())
    };
    let suspended = reached(HoldState::Suspended).await;
    let held = reached(HoldState::Held).await;
    cluster.member(follower).signal(Signal::SIGCONT);
    assert!(suspended, "never told the session is suspended");
    assert!(held, "never told it holds again");
    assert!(!leadership.is_lost());
    leadership.resign().await.unwrap();
    let seen = tokio::time::timeout(WAIT, observer.next()).await.unwrap();
    assert_eq!(seen.unwrap().unwrap(), None);
}
