//! The queue recipe against a real 3-member cluster: 5 producers and 5
//! competing consumers (one of each a series of `coordctl` processes) across
//! a leader kill, every item taken exactly once; a resent delete that was
//! applied answers success; the `queue` and `completion` commands.
#![allow(clippy::unwrap_used)]

mod recipe_support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use coord_client::proto::coord_client::CoordClient;
use coord_client::proto::{DeleteRequest, WriteMeta};
use coord_client::recipes::queue::Queue;
use coord_client::{Client, CreateMode};
use serde_json::Value;

use recipe_support::{client_at, cluster, ctl};

const PRODUCERS: usize = 5;
const CONSUMERS: usize = 5;
const ITEMS_PER_PRODUCER: usize = 30;
const STOP: &str = "stop";

/// (item data, queue node) per consumer, in the order it took them.
type Taken = Arc<Mutex<Vec<Vec<(String, String)>>>>;

async fn produce(queue: Queue, producer: usize) {
    for j in 0..ITEMS_PER_PRODUCER {
        queue.put(format!("p{producer}-{j:03}")).await.unwrap();
    }
}

/// A producer that runs one `coordctl queue put` process per item.
fn produce_with_coordctl(endpoints: String, producer: usize) {
    for j in 0..ITEMS_PER_PRODUCER {
        let data = format!("p{producer}-{j:03}");
        let (code, _, stderr) = ctl(&endpoints, &["queue", "put", "/jobs", &data]);
        assert_eq!(code, 0, "{stderr}");
    }
}

async fn consume(queue: Queue, consumer: usize, taken: Taken) {
    loop {
        let item = queue.take().await.unwrap();
        let data = String::from_utf8(item.data.to_vec()).unwrap();
        taken.lock().unwrap()[consumer].push((data.clone(), item.path));
        if data == STOP {
            return;
        }
    }
}

/// A consumer that runs one `coordctl queue take` process per item.
fn consume_with_coordctl(endpoints: String, consumer: usize, taken: Taken) {
    loop {
        let args = ["--json", "queue", "take", "/jobs", "--wait", "60s"];
        let (code, stdout, stderr) = ctl(&endpoints, &args);
        assert_eq!(code, 0, "{stderr}");
        let doc: Value = serde_json::from_str(&stdout).unwrap();
        let data = doc["data"].as_str().unwrap().to_owned();
        let path = doc["path"].as_str().unwrap().to_owned();
        taken.lock().unwrap()[consumer].push((data.clone(), path));
        if data == STOP {
            return;
        }
    }
}

fn sequence(path: &str) -> u64 {
    path.rsplit('-').next().unwrap().parse().unwrap()
}

/// Asserts that every item was taken exactly once, that each consumer took
/// its items in queue order and ended with one stop item.
fn check_exactly_once(taken: &[Vec<(String, String)>], total: usize) {
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (c, items) in taken.iter().enumerate() {
        assert_eq!(items.last().map(|i| i.0.as_str()), Some(STOP), "{c}");
        // Each consumer takes the lowest item left, so its sequence rises.
        let seqs: Vec<u64> = items.iter().map(|(_, path)| sequence(path)).collect();
        assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{c}: {seqs:?}");
        for (data, _) in items.iter().filter(|i| i.0 != STOP) {
            *seen.entry(data).or_default() += 1;
        }
    }
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "taken more than once: {twice:?}");
    assert_eq!(seen.len(), total, "items missing");
}

/// Waits until `count()` reaches `n`, failing after 20 s.
async fn until_count(count: impl Fn() -> usize, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while count() < n {
        assert!(Instant::now() < deadline, "only {} of {n} items", count());
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

async fn join_thread(thread: std::thread::JoinHandle<()>) {
    tokio::task::spawn_blocking(move || thread.join().unwrap())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn five_producers_and_five_consumers_take_every_item_exactly_once() {
    let mut cluster = cluster().await;
    let started = Instant::now();
    let eps = cluster.endpoints().join(",");
    let queue = Queue::new(client_at(&cluster, 0).await, "/jobs")
        .await
        .unwrap();
    let taken: Taken = Arc::new(Mutex::new(vec![Vec::new(); CONSUMERS]));

    let mut consumers = Vec::new();
    for c in 0..CONSUMERS - 1 {
        let q = Queue::existing(client_at(&cluster, c).await, "/jobs");
        consumers.push(tokio::spawn(consume(q, c, Arc::clone(&taken))));
    }
    let (e, t) = (eps.clone(), Arc::clone(&taken));
    let ctl_consumer = std::thread::spawn(move || consume_with_coordctl(e, CONSUMERS - 1, t));
    let mut producers = Vec::new();
    for p in 0..PRODUCERS - 1 {
        let q = Queue::existing(client_at(&cluster, p + 1).await, "/jobs");
        producers.push(tokio::spawn(produce(q, p)));
    }
    let e = eps.clone();
    let ctl_producer = std::thread::spawn(move || produce_with_coordctl(e, PRODUCERS - 1));

    // Kill the leader while items flow: writes in flight get unknown outcomes.
    let total = PRODUCERS * ITEMS_PER_PRODUCER;
    let count = || taken.lock().unwrap().iter().map(Vec::len).sum::<usize>();
    until_count(count, total / 3).await;
    let leader = cluster.wait_for_leader(Duration::from_secs(10)).await;
    cluster.kill(leader);
    eprintln!("killed leader {leader} after {} items", count());

    for p in producers {
        p.await.unwrap();
    }
    join_thread(ctl_producer).await;
    until_count(count, total).await;
    // One stop item per consumer; each stops at its first.
    for _ in 0..CONSUMERS {
        queue.put(STOP).await.unwrap();
    }
    for c in consumers {
        tokio::time::timeout(Duration::from_secs(20), c)
            .await
            .unwrap()
            .unwrap();
    }
    join_thread(ctl_consumer).await;

    let taken = taken.lock().unwrap().clone();
    check_exactly_once(&taken, total);
    assert!(queue.is_empty().await.unwrap());
    let per_consumer: Vec<usize> = taken.iter().map(Vec::len).collect();
    eprintln!(
        "{total} items taken once each in {:?}; per consumer {per_consumer:?}",
        started.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_resent_delete_that_was_applied_answers_success_not_no_node() {
    let cluster = cluster().await;
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    client
        .create("/item", "", CreateMode::Persistent)
        .await
        .unwrap();
    let request = DeleteRequest {
        meta: Some(WriteMeta {
            client_id: 0x5eed,
            seq: 1,
            first_incomplete_seq: 1,
        }),
        path: "/item".into(),
        version: -1,
    };
    // The first send and a "retry" of it, each through another member.
    for endpoint in &cluster.endpoints()[..2] {
        let mut raw = CoordClient::connect(format!("http://{endpoint}"))
            .await
            .unwrap();
        raw.delete(request.clone()).await.unwrap();
    }
    assert_eq!(client.exists("/item").await.unwrap(), None);
    // A new write (new sequence number) of the same delete is NoNode.
    let mut raw = CoordClient::connect(format!("http://{}", cluster.endpoints()[2]))
        .await
        .unwrap();
    let mut fresh = request.clone();
    fresh.meta = Some(WriteMeta {
        client_id: 0x5eed,
        seq: 2,
        first_incomplete_seq: 1,
    });
    let status = raw.delete(fresh).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn queue_commands_put_take_and_wait() {
    let cluster = cluster().await;
    let eps = cluster.endpoints().join(",");
    let (code, first, err) = ctl(&eps, &["queue", "put", "/cli/q", "one"]);
    assert_eq!(code, 0, "{err}");
    assert!(first.starts_with("/cli/q/qn-"), "{first}");
    let (code, out, err) = ctl(&eps, &["--json", "queue", "put", "/cli/q", "two"]);
    assert_eq!(code, 0, "{err}");
    let second: Value = serde_json::from_str(&out).unwrap();
    assert!(sequence(second["path"].as_str().unwrap()) > sequence(first.trim()));

    let (code, out, err) = ctl(&eps, &["queue", "take", "/cli/q"]);
    assert_eq!((code, out.as_str()), (0, "one"), "{err}");
    let (code, out, err) = ctl(&eps, &["--json", "queue", "take", "/cli/q"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (doc["data"].as_str(), doc["encoding"].as_str()),
        (Some("two"), Some("utf-8"))
    );
    assert_eq!(doc["path"], second["path"]);

    let (code, out, err) = ctl(
        &eps,
        &["--json", "queue", "take", "/cli/q", "--wait", "300ms"],
    );
    assert_eq!(code, 5, "{err}");
    assert!(err.starts_with("Error: Empty: "), "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["error"], "Empty");
    let (code, _, err) = ctl(&eps, &["queue", "take", "/nope", "--wait", "0"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.starts_with("Error: NoNode: "), "{err}");

    // Completion scripts need no cluster but come from the same binary.
    let (code, out, err) = ctl(&eps, &["completion", "bash"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("coordctl") && out.contains("queue"), "{out}");
    let (code, out, err) = ctl(&eps, &["--json", "completion", "fish"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["shell"], "fish");

    // A waiting take gets an item put while it waits.
    let waiting = {
        let eps = eps.clone();
        std::thread::spawn(move || ctl(&eps, &["queue", "take", "/cli/q", "--wait", "20s"]))
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (code, _, err) = ctl(&eps, &["queue", "put", "/cli/q", "late"]);
    assert_eq!(code, 0, "{err}");
    let (code, out, err) = tokio::task::spawn_blocking(move || waiting.join().unwrap())
        .await
        .unwrap();
    assert_eq!((code, out.as_str()), (0, "late"), "{err}");
}
