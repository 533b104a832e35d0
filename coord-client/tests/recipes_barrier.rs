//! The barrier and double barrier recipes against a real 3-member cluster,
//! each participant with its own client (spread over the members) and
//! session: waiters pass only once the barrier is removed; N participants
//! enter together and leave together; a participant that gives up or whose
//! session ends stops counting.
#![allow(clippy::unwrap_used)]

mod recipe_support;

use std::time::Duration;

use coord_client::recipes::barrier::{Barrier, DoubleBarrier, Entered};
use coord_client::{Client, Session};
use tokio::task::JoinHandle;

use recipe_support::{client_at, cluster};

const WAIT: Duration = Duration::from_secs(10);
/// How long a blocked call is watched to make sure it stays blocked.
const STAYS_BLOCKED: Duration = Duration::from_millis(400);

fn finished<T>(tasks: &[JoinHandle<T>]) -> usize {
    tasks.iter().filter(|t| t.is_finished()).count()
}

async fn join_all<T>(tasks: Vec<JoinHandle<T>>) -> Vec<T> {
    let mut out = Vec::new();
    for task in tasks {
        out.push(tokio::time::timeout(WAIT, task).await.unwrap().unwrap());
    }
    out
}

#[tokio::test(flavor = "multi_thread")]
async fn waiters_pass_a_barrier_only_once_it_is_removed() {
    let cluster = cluster().await;
    let coordinator = Barrier::new(client_at(&cluster, 0).await, "/gates/deploy");
    assert!(!coordinator.is_set().await.unwrap());
    coordinator.wait().await.unwrap(); // not raised: passes at once
    coordinator.set().await.unwrap();
    coordinator.set().await.unwrap(); // raising twice is fine
    assert!(coordinator.is_set().await.unwrap());

    let mut waiters = Vec::new();
    for i in 0..3 {
        let barrier = Barrier::new(client_at(&cluster, i).await, "/gates/deploy");
        waiters.push(tokio::spawn(async move { barrier.wait().await }));
    }
    tokio::time::sleep(STAYS_BLOCKED).await;
    assert_eq!(finished(&waiters), 0);
    coordinator.remove().await.unwrap();
    for result in join_all(waiters).await {
        result.unwrap();
    }
    coordinator.remove().await.unwrap(); // lowering twice is fine
}

/// `n` participants of the double barrier at `path`, each with its own
/// client and a 2 s session.
async fn participants(
    cluster: &coord_testkit::Cluster,
    path: &str,
    n: usize,
) -> Vec<(DoubleBarrier, Session)> {
    let mut out = Vec::new();
    for i in 0..n {
        let client = client_at(cluster, i).await;
        let session = client.session(Duration::from_secs(2)).await.unwrap();
        out.push((DoubleBarrier::new(client, &session, path, n), session));
    }
    out
}

fn enter(barrier: &DoubleBarrier) -> JoinHandle<Entered> {
    let barrier = barrier.clone();
    tokio::spawn(async move { barrier.enter().await.unwrap() })
}

#[tokio::test(flavor = "multi_thread")]
async fn a_double_barrier_lets_four_in_together_and_out_together() {
    let cluster = cluster().await;
    let all = participants(&cluster, "/rounds/r1", 4).await;
    let early: Vec<_> = all[..3].iter().map(|(b, _)| enter(b)).collect();
    tokio::time::sleep(STAYS_BLOCKED).await;
    assert_eq!(finished(&early), 0, "entered before the fourth arrived");
    let last = enter(&all[3].0);
    let mut inside = join_all(early).await;
    inside.push(tokio::time::timeout(WAIT, last).await.unwrap().unwrap());

    // Three leave; none returns while the fourth is still inside.
    let fourth = inside.pop().unwrap();
    let leaving: Vec<_> = inside
        .into_iter()
        .map(|entered| tokio::spawn(async move { entered.leave().await }))
        .collect();
    tokio::time::sleep(STAYS_BLOCKED).await;
    assert_eq!(finished(&leaving), 0, "left before the fourth");
    fourth.leave().await.unwrap();
    for result in join_all(leaving).await {
        result.unwrap();
    }
    // The last one out removed `ready` too: the path is clean for reuse.
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    assert!(client.children("/rounds/r1").await.unwrap().0.is_empty());
}

#[tokio::test(flavor = "multi_thread")]
async fn participants_that_give_up_or_lose_their_session_stop_counting() {
    let cluster = cluster().await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let all = participants(&cluster, "/rounds/r2", 2).await;

    // An enter abandoned while waiting takes its node back.
    let abandoned = tokio::time::timeout(STAYS_BLOCKED, all[0].0.enter()).await;
    assert!(abandoned.is_err(), "entered alone");
    let empty = || async { client.children("/rounds/r2").await.unwrap().0.is_empty() };
    assert!(recipe_support::eventually(WAIT, empty).await);

    let first = enter(&all[0].0);
    let second = enter(&all[1].0);
    let (first, second) = (
        tokio::time::timeout(WAIT, first).await.unwrap().unwrap(),
        tokio::time::timeout(WAIT, second).await.unwrap().unwrap(),
    );
    assert_ne!(first.node(), second.node());
    // The second participant's session ends without leaving: the first
    // one's leave returns once its node is gone.
    let leaving = tokio::spawn(async move { first.leave().await });
    tokio::time::sleep(STAYS_BLOCKED).await;
    assert!(!leaving.is_finished());
    std::mem::forget(second); // no background delete: only the session ends it
    let (_, session) = &all[1];
    session.clone().close().await.unwrap();
    tokio::time::timeout(WAIT, leaving)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
}
