//! `leader-election run` processes against a real 3-member cluster: killing
//! the leader (`kill -9`) hands leadership over within the session TTL plus
//! an election timeout; a leader stopped (SIGSTOP) past its TTL is replaced,
//! and on resume its work is refused by the fence, never accepted; a leader
//! asked to stop resigns and hands over at once. Across the whole run the
//! accepted work, in zxid order, comes from one leader at a time: tokens
//! never go down and each token belongs to one process.
#![allow(clippy::unwrap_used)]

#[path = "../../test-support/procs.rs"]
mod procs;

use std::collections::BTreeMap;
use std::time::Duration;

use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use procs::{Proc, endpoints_from, run_json};

const BIN: &str = env!("CARGO_BIN_EXE_leader-election");
const WAIT: Duration = Duration::from_secs(15);
const TTL: Duration = Duration::from_secs(2);
/// An election timeout with the testkit's 50 ms ticks is at most 1 s.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Room for a loaded 2-core machine (keep-alive timing, scheduling).
const SLACK: Duration = Duration::from_secs(1);

fn candidate(name: &str, endpoints: &str) -> Proc {
    let args = [
        "run",
        name,
        "--interval-ms",
        "100",
        "--session-ttl-ms",
        "2000",
    ];
    procs::start(name, BIN, endpoints, &args)
}

/// The first `elected` line printed by any of `procs` (other lines are kept
/// in their `seen`): which one, when, and the line.
async fn elected(procs: &mut [&mut Proc], timeout: Duration) -> (usize, Instant, Value) {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        for (i, proc) in procs.iter_mut().enumerate() {
            if let Some((at, doc)) = proc.next(Duration::from_millis(20)).await
                && doc["event"] == "elected"
            {
                return (i, at, doc);
            }
        }
    }
    panic!("nobody was elected within {timeout:?}");
}

/// Waits for `n` more `work` lines of `proc`.
async fn works(proc: &mut Proc, n: usize) {
    for _ in 0..n {
        proc.wait_for("work", WAIT).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn one_leader_at_a_time_and_handover_within_ttl_plus_election_timeout() {
    let cluster = Cluster::builder(3)
        .args(["--min-lease-ttl-ms", "1000"])
        .start()
        .await;
    let eps = cluster.endpoints();
    let mut procs: Vec<Proc> = ["a", "b", "c"]
        .iter()
        .enumerate()
        .map(|(i, name)| candidate(name, &endpoints_from(&eps, i)))
        .collect();

    // One leader; it works.
    let (first, _, doc) = elected(&mut procs.iter_mut().collect::<Vec<_>>(), WAIT).await;
    let first_token = doc["token"].as_u64().unwrap();
    works(&mut procs[first], 5).await;

    // kill -9 of the leader: the next one leads within TTL + election timeout.
    procs[first].kill();
    let killed = Instant::now();
    let mut rest: Vec<&mut Proc> = procs
        .iter_mut()
        .enumerate()
        .filter(|(i, _)| *i != first)
        .map(|(_, p)| p)
        .collect();
    let (second, at, doc) = elected(&mut rest, WAIT).await;
    let handover = at - killed;
    eprintln!("handover after kill -9 of the leader: {handover:?}");
    assert!(handover < TTL + ELECTION_TIMEOUT + SLACK, "{handover:?}");
    let second_token = doc["token"].as_u64().unwrap();
    assert!(second_token > first_token);
    works(rest[second], 3).await;

    // SIGSTOP the leader past its TTL: the last one leads; on SIGCONT the old
    // one is refused (fence) or told it lost, and then campaigns again.
    rest[second].signal(Signal::SIGSTOP);
    let stopped = Instant::now();
    let third = 1 - second;
    let (_, at, doc) = elected(&mut [&mut *rest[third]], WAIT).await;
    eprintln!("handover after SIGSTOP of the leader: {:?}", at - stopped);
    assert!(doc["token"].as_u64().unwrap() > second_token);
    works(rest[third], 3).await;
    rest[second].signal(Signal::SIGCONT);
    let (_, doc) = rest[second].wait_for("campaigning", WAIT).await;
    assert_eq!(doc["id"], rest[second].name.as_str());
    let ended: Vec<&Value> = rest[second]
        .seen
        .iter()
        .map(|(_, d)| d)
        .filter(|d| d["event"] == "lost" || d["event"] == "fenced")
        .collect();
    assert_eq!(ended.len(), 1, "{ended:?}");

    // `leader` names the current leader.
    let shown = run_json(BIN, &eps.join(","), &["leader"]);
    assert_eq!(shown[0]["leader"]["id"], rest[third].name.as_str());

    // SIGTERM: the leader resigns and the waiting candidate leads at once.
    rest[third].signal(Signal::SIGTERM);
    let resigned = Instant::now();
    assert_eq!(rest[third].exit(WAIT).await.code(), Some(0));
    let (_, at, _) = elected(&mut [&mut *rest[second]], WAIT).await;
    assert!(at - resigned < TTL, "resigning did not hand over at once");
    works(rest[second], 2).await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    for proc in &mut procs {
        proc.drain();
    }
    check_one_leader_at_a_time(&procs);
}

/// The accepted work of every process, in zxid order, never goes back to
/// a lower token, and each token is one process's.
fn check_one_leader_at_a_time(procs: &[Proc]) {
    let mut accepted: Vec<(u64, u64, String)> = Vec::new();
    for proc in procs {
        for doc in proc.events("work") {
            accepted.push((
                doc["zxid"].as_u64().unwrap(),
                doc["token"].as_u64().unwrap(),
                proc.name.clone(),
            ));
        }
    }
    accepted.sort();
    let mut owner: BTreeMap<u64, &str> = BTreeMap::new();
    for pair in accepted.windows(2) {
        assert!(pair[0].0 < pair[1].0, "one zxid twice: {pair:?}");
        assert!(
            pair[0].1 <= pair[1].1,
            "an older leader's work was accepted after a newer one's: {pair:?}"
        );
    }
    for (_, token, name) in &accepted {
        let first = owner.entry(*token).or_insert(name);
        assert_eq!(first, name, "token {token} used by two processes");
    }
    let refused: usize = procs.iter().map(|p| p.events("fenced").len()).sum();
    eprintln!(
        "{} pieces of work accepted under {} terms; {refused} refused by the fence",
        accepted.len(),
        owner.len()
    );
    assert!(owner.len() >= 4, "{owner:?}");
}
