//! The mutex, read-write lock and semaphore recipes against real 3-member
//! clusters: ten client processes take turns on a fenced counter, a killed
//! holder's lock passes on within TTL + an election timeout, a release wakes
//! exactly one of twenty waiters, and `coordctl lock` runs commands.
#![allow(clippy::unwrap_used)]

#[path = "support/procs.rs"]
mod procs;

use std::collections::HashSet;
use std::time::Duration;

use coord_client::recipes::mutex::Mutex;
use coord_client::recipes::rwlock::RwLock;
use coord_client::recipes::semaphore::Semaphore;
use coord_client::recipes::{HoldState, LockGuard};
use coord_client::{Client, CreateMode, Op};
use coord_testkit::Cluster;
use tokio::sync::mpsc;
use tokio::time::Instant;

use procs::Proc;

const WAIT: Duration = Duration::from_secs(10);
const TTL: Duration = Duration::from_secs(2);
/// An election timeout with the testkit's 50 ms ticks is at most 1 s.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);

#[tokio::test(flavor = "multi_thread")]
async fn ten_processes_take_turns_and_the_fenced_counter_is_exact() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    client
        .create("/counter", "0 0", CreateMode::Persistent)
        .await
        .unwrap();
    let eps = cluster.endpoints().join(",");
    let started = Instant::now();
    let mut workers: Vec<Proc> = (0..10)
        .map(|i| {
            let args = ["mutex", "/locks/counter", "/counter", "200"];
            procs::worker(&format!("worker-{i}"), &eps, &args)
        })
        .collect();
    let mut increments = Vec::new();
    let mut by_worker = Vec::new();
    for worker in &mut workers {
        let mut mine = 0;
        while let Some((_, line)) = worker.line(Duration::from_secs(25)).await {
            let doc: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert!(doc.get("count").is_some(), "{}: {line}", worker.name);
            increments.push((
                doc["count"].as_u64().unwrap(),
                doc["token"].as_u64().unwrap(),
            ));
            mine += 1;
        }
        let status = worker.exit(WAIT).await;
        assert!(
            status.success(),
            "{}: {status}; {}",
            worker.name,
            worker.stderr()
        );
        by_worker.push(mine);
    }
    eprintln!(
        "200 increments in {:?}, per worker {by_worker:?}",
        started.elapsed()
    );

    // Every count exactly once, and tokens strictly increase in count order.
    increments.sort_unstable();
    let counts: Vec<u64> = increments.iter().map(|(c, _)| *c).collect();
    assert_eq!(counts, (1..=200).collect::<Vec<_>>());
    for pair in increments.windows(2) {
        assert!(pair[0].1 < pair[1].1, "tokens not increasing: {pair:?}");
    }
    let (data, _) = client.get("/counter").await.unwrap();
    let last_token = increments[199].1;
    assert_eq!(String::from_utf8_lossy(&data), format!("200 {last_token}"));
    assert!(
        by_worker.iter().filter(|n| **n > 0).count() > 1,
        "no contention: {by_worker:?}"
    );
    // No node was left behind.
    let (left, _) = client.children("/locks/counter").await.unwrap();
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_holder_passes_the_lock_on_and_coordctl_runs_commands() {
    let cluster = Cluster::start(3).await;
    let eps = cluster.endpoints().join(",");
    let lock = ["lock", "/locks/k", "--session-ttl", "2s", "--json"];
    let mut holder = procs::coordctl("holder", &eps, &lock);
    let (_, held) = holder.json(WAIT).await;
    assert_eq!(held["event"], "acquired");
    let first = held["token"].as_u64().unwrap();
    let mut waiter = procs::coordctl("waiter", &eps, &lock);
    assert!(waiter.line(Duration::from_millis(500)).await.is_none());
    // While held: --wait gives up with exit code 5.
    let args = ["lock", "/locks/k", "--wait", "300ms", "--", "true"];
    let mut impatient = procs::coordctl("impatient", &eps, &args);
    assert_eq!(impatient.exit(WAIT).await.code(), Some(5));

    holder.kill();
    let killed = Instant::now();
    let (at, passed) = waiter.json(WAIT).await;
    let elapsed = at - killed;
    eprintln!("the lock passed on {elapsed:?} after kill -9 of its holder");
    assert_eq!(passed["event"], "acquired");
    assert!(passed["token"].as_u64().unwrap() > first, "{passed}");
    assert!(
        elapsed < TTL + ELECTION_TIMEOUT + Duration::from_millis(700),
        "passed on {elapsed:?} after the kill"
    );
    waiter.signal(nix::sys::signal::Signal::SIGTERM);
    assert_eq!(waiter.exit(WAIT).await.code(), Some(0));

    // A command runs with the token and node in its environment, and its
    // exit status becomes coordctl's; a name without a slash goes under /locks.
    let script = "echo \"$COORD_LOCK_TOKEN $COORD_LOCK_NODE\"; coordctl_check=$COORD_ENDPOINTS; test -n \"$coordctl_check\" && exit 3";
    let args = ["lock", "job", "--", "sh", "-c", script];
    let mut runner = procs::coordctl("runner", &eps, &args);
    let (_, line) = runner.line(WAIT).await.unwrap();
    let (token, node) = line.split_once(' ').unwrap();
    assert!(token.parse::<u64>().unwrap() > 0, "{line}");
    assert!(node.starts_with("/locks/job/lock-"), "{line}");
    assert_eq!(runner.exit(WAIT).await.code(), Some(3));
    assert!(
        runner.stderr().contains("CommandFailed"),
        "{}",
        runner.stderr()
    );
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    assert!(client.exists(node).await.unwrap().is_none(), "not released");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_release_wakes_exactly_one_of_twenty_waiters() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let session = client.session(Duration::from_secs(10)).await.unwrap();
    let path = "/locks/herd";
    let mut held = Mutex::new(client.clone(), &session, path)
        .lock()
        .await
        .unwrap();
    let (acquired, mut acquisitions) = mpsc::unbounded_channel();
    let mut waiters = Vec::new();
    for i in 0..20 {
        let session = client.session(Duration::from_secs(10)).await.unwrap();
        let mutex = Mutex::new(client.clone(), &session, path);
        waiters.push(mutex.clone());
        let acquired = acquired.clone();
        tokio::spawn(async move {
            let guard = mutex.lock().await.unwrap();
            acquired.send((i, guard)).unwrap();
        });
    }
    let queued =
        common_eventually(|| async { client.children(path).await.unwrap().0.len() == 21 }).await;
    assert!(queued, "the waiters did not queue");
    // Let every waiter set its watch on its predecessor.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let wakeups = |waiters: &[Mutex]| waiters.iter().map(Mutex::wakeups).sum::<u64>();
    assert_eq!(wakeups(&waiters), 0);

    let mut order = Vec::new();
    let mut last_token = held.token();
    for round in 1..=20 {
        held.unlock().await.unwrap();
        let (i, next) = tokio::time::timeout(WAIT, acquisitions.recv())
            .await
            .unwrap()
            .unwrap();
        // Time for any other (wrongly) woken waiter to show up.
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(
            wakeups(&waiters),
            round,
            "round {round}: more than one waiter woke"
        );
        assert!(acquisitions.try_recv().is_err(), "two holders at once");
        assert!(next.token() > last_token);
        last_token = next.token();
        order.push(i);
        held = next;
    }
    held.unlock().await.unwrap();
    let distinct: HashSet<_> = order.iter().collect();
    assert_eq!(distinct.len(), 20, "{order:?}");
}

/// Polls `check` every 50 ms for up to 10 s.
async fn common_eventually<F, Fut>(mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + WAIT;
    while Instant::now() < deadline {
        if check().await {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread")]
async fn try_timeout_cancel_and_a_lost_lock() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let a = client.session(Duration::from_secs(5)).await.unwrap();
    let b = client.session(Duration::from_secs(5)).await.unwrap();
    let (ma, mb) = (
        Mutex::new(client.clone(), &a, "/locks/t"),
        Mutex::new(client.clone(), &b, "/locks/t"),
    );
    let guard = ma.try_lock().await.unwrap().unwrap();
    assert_eq!(guard.state(), HoldState::Held);
    assert!(guard.node().starts_with("/locks/t/lock-"));
    assert_eq!(
        guard.token(),
        client.exists(guard.node()).await.unwrap().unwrap().czxid
    );
    assert!(mb.try_lock().await.unwrap().is_none());
    assert!(
        mb.lock_timeout(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    // A lock() given up while waiting leaves no node behind.
    let gave_up = tokio::time::timeout(Duration::from_millis(300), mb.lock()).await;
    assert!(gave_up.is_err());
    let only_holder =
        common_eventually(|| async { client.children("/locks/t").await.unwrap().0.len() == 1 })
            .await;
    assert!(only_holder, "a cancelled waiter left its node");

    // Revoking the holder's session: the guard learns it at once, and its
    // fenced writes are refused; the waiter gets the lock.
    client
        .create("/data", "", CreateMode::Persistent)
        .await
        .unwrap();
    let waiting = tokio::spawn({
        let mb = mb.clone();
        async move { mb.lock().await.unwrap() }
    });
    client.lease_revoke(a.id()).await.unwrap();
    tokio::time::timeout(WAIT, guard.lost()).await.unwrap();
    assert!(guard.is_lost());
    let err = client
        .multi(guard.fenced([Op::set("/data", "stale", -1)]))
        .await
        .unwrap_err();
    assert!(guard.fence_failed(&err), "{err:?}");
    let next: LockGuard = tokio::time::timeout(WAIT, waiting).await.unwrap().unwrap();
    assert!(next.token() > guard.token());
    client
        .multi(next.fenced([Op::set("/data", "fresh", -1)]))
        .await
        .unwrap();
    guard.unlock().await.unwrap(); // Unlocking a lost lock is fine.
    assert!(
        client.exists(next.node()).await.unwrap().is_some(),
        "unlock removed the successor"
    );
    next.unlock().await.unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn readers_share_writers_exclude_and_permits_are_counted() {
    let cluster = Cluster::start(3).await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let session = client.session(Duration::from_secs(5)).await.unwrap();
    let rw = RwLock::new(client.clone(), &session, "/locks/rw");
    let r1 = rw.read().await.unwrap();
    let r2 = rw.try_read().await.unwrap().expect("readers share");
    assert!(rw.try_write().await.unwrap().is_none());
    let writing = tokio::spawn({
        let rw = rw.clone();
        async move { rw.write().await.unwrap() }
    });
    let writer_queued =
        common_eventually(|| async { client.children("/locks/rw").await.unwrap().0.len() == 3 })
            .await;
    assert!(writer_queued);
    // A reader does not overtake a queued writer.
    assert!(rw.try_read().await.unwrap().is_none());
    r1.unlock().await.unwrap();
    assert!(!writing.is_finished());
    r2.unlock().await.unwrap();
    let w = tokio::time::timeout(WAIT, writing).await.unwrap().unwrap();
    assert!(
        rw.read_timeout(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    assert!(w.node().starts_with("/locks/rw/write-"));
    w.unlock().await.unwrap();
    rw.read().await.unwrap().unlock().await.unwrap();

    let sem = Semaphore::new(client.clone(), &session, "/sem", 2);
    let p1 = sem.acquire().await.unwrap();
    let p2 = sem.acquire().await.unwrap();
    assert_ne!(p1.token(), p2.token());
    assert!(p1.node().starts_with("/sem/leases/lease-"));
    assert!(sem.try_acquire().await.unwrap().is_none());
    assert!(
        sem.acquire_timeout(Duration::from_millis(300))
            .await
            .unwrap()
            .is_none()
    );
    let third = tokio::spawn({
        let sem = sem.clone();
        async move { sem.acquire().await.unwrap() }
    });
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!third.is_finished(), "a third permit was handed out");
    p2.unlock().await.unwrap();
    let p3 = tokio::time::timeout(WAIT, third).await.unwrap().unwrap();
    assert_eq!(client.children("/sem/leases").await.unwrap().0.len(), 2);
    let empty = Semaphore::new(client.clone(), &session, "/sem0", 0);
    assert_eq!(empty.acquire().await.unwrap_err().name(), "BadArguments");
    p1.unlock().await.unwrap();
    p3.unlock().await.unwrap();
}
