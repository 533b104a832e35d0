//! The service discovery recipe against a real 3-member cluster: a
//! `coordctl services register` process killed with SIGKILL leaves every
//! live cache within its session TTL and a new one joins every cache; caches
//! follow registrations, updates and unregistrations, and recover from a
//! compacted watch history by re-reading; the `services` commands.
#![allow(clippy::unwrap_used)]

mod recipe_support;

use std::time::{Duration, Instant};

use coord_client::recipes::discovery::{
    DiscoveryError, Instance, MembershipChange, ServiceCache, ServiceDiscovery,
};
use coord_client::{Client, Error, WatchItem, WatchOptions, WatchStream};
use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde_json::{Value, json};

use coord_testkit::Proc;
use recipe_support::{client_at, cluster, coordctl, ctl, next_line};

const WAIT: Duration = Duration::from_secs(10);

/// The next membership change of `cache`, within `WAIT`.
async fn next_change(cache: &mut ServiceCache) -> MembershipChange {
    tokio::time::timeout(WAIT, cache.next())
        .await
        .expect("no change within 10 s")
        .expect("the cache stopped")
        .expect("a cache error")
}

fn ids(cache: &ServiceCache) -> Vec<String> {
    cache.instances().into_iter().map(|i| i.id).collect()
}

/// `coordctl services register web ID ADDR` with a 2 s session, once it has
/// registered.
async fn register_process(endpoints: &str, id: &str, addr: &str) -> Proc {
    let args = [
        "services",
        "register",
        "web",
        id,
        addr,
        "--metadata",
        r#"{"zone": "eu-1"}"#,
        "--session-ttl",
        "2s",
    ];
    let mut proc = coordctl(id, endpoints, &args);
    assert_eq!(next_line(&mut proc).await, format!("/services/web/{id}"));
    proc
}

#[tokio::test(flavor = "multi_thread")]
async fn a_killed_instance_leaves_every_cache_within_its_ttl_and_a_new_one_joins() {
    let cluster = cluster().await;
    let eps = cluster.endpoints().join(",");
    let mut caches = Vec::new();
    for i in 0..3 {
        let discovery = ServiceDiscovery::new(client_at(&cluster, i).await);
        caches.push(discovery.cache("web").await.unwrap());
    }
    let mut doomed = register_process(&eps, "web-1", "127.0.0.1:8001").await;
    let _steady = register_process(&eps, "web-2", "127.0.0.1:8002").await;
    for cache in &mut caches {
        let mut added = [next_change(cache).await, next_change(cache).await];
        added.sort_by_key(|c| format!("{c:?}"));
        let expected =
            Instance::new("web-1", "127.0.0.1:8001").with_metadata(json!({"zone": "eu-1"}));
        assert_eq!(added[0], MembershipChange::Added(expected));
        assert_eq!(ids(cache), ["web-1", "web-2"]);
    }

    // The process keeps its instance registered past the TTL...
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(caches.iter().all(|c| ids(c) == ["web-1", "web-2"]));
    // ...until it is killed: gone from every cache within the TTL, counted
    // from its last keep-alive (TTL/3 before the kill at most), plus slack
    // for the leader's 100 ms expiry check, the event's way to three caches
    // and a loaded CI machine.
    doomed.kill();
    let killed = Instant::now();
    for cache in &mut caches {
        let MembershipChange::Removed(gone) = next_change(cache).await else {
            panic!("expected a removal");
        };
        assert_eq!(gone.id, "web-1");
    }
    let elapsed = killed.elapsed();
    eprintln!("web-1 left every cache {elapsed:?} after the kill");
    assert!(elapsed < Duration::from_secs(3), "{elapsed:?}");
    assert!(caches.iter().all(|c| ids(c) == ["web-2"]));

    let started = Instant::now();
    let _newcomer = register_process(&eps, "web-3", "127.0.0.1:8003").await;
    for cache in &mut caches {
        let change = next_change(cache).await;
        assert!(
            matches!(&change, MembershipChange::Added(i) if i.id == "web-3"),
            "{change:?}"
        );
        assert_eq!(ids(cache), ["web-2", "web-3"]);
    }
    eprintln!("web-3 joined every cache within {:?}", started.elapsed());

    let (code, out, err) = ctl(&eps, &["services", "ls", "web"]);
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        out,
        "web-2 127.0.0.1:8002 {\"zone\":\"eu-1\"}\nweb-3 127.0.0.1:8003 {\"zone\":\"eu-1\"}\n"
    );
    let (code, out, err) = ctl(&eps, &["--json", "services", "ls", "web"]);
    assert_eq!(code, 0, "{err}");
    let doc: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(doc["service"], "web");
    assert_eq!(doc["instances"][1]["address"], "127.0.0.1:8003");
    assert_eq!(doc["instances"][1]["metadata"]["zone"], "eu-1");
}

/// `(change, id)` of the next `n` lines of a `services watch --json` process.
async fn watched(watcher: &mut Proc, n: usize) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for _ in 0..n {
        let line: Value = serde_json::from_str(&next_line(watcher).await).unwrap();
        let field = |v: &Value| v.as_str().unwrap().to_owned();
        out.push((field(&line["change"]), field(&line["instance"]["id"])));
    }
    out
}

/// Expects `change` next, from the cache and (as a line) from the
/// `services watch` process.
async fn expect(cache: &mut ServiceCache, watcher: &mut Proc, change: MembershipChange) {
    let (kind, id) = match &change {
        MembershipChange::Added(i) => ("added", &i.id),
        MembershipChange::Removed(i) => ("removed", &i.id),
        MembershipChange::Updated { new, .. } => ("updated", &new.id),
    };
    assert_eq!(next_change(cache).await, change);
    assert_eq!(watched(watcher, 1).await, [(kind.to_owned(), id.clone())]);
}

#[tokio::test(flavor = "multi_thread")]
async fn caches_follow_updates_unregistrations_and_dropped_registrations() {
    let cluster = cluster().await;
    let eps = cluster.endpoints().join(",");
    let client = Client::connect(cluster.endpoints()).await.unwrap();
    let discovery = ServiceDiscovery::with_root(client.clone(), "/env/prod");
    let session = client.session(Duration::from_secs(2)).await.unwrap();
    assert_eq!(discovery.instances("api").await.unwrap(), []);
    let mut cache = discovery.cache("api").await.unwrap();
    let a = Instance::new("a", "10.0.0.1:80");
    let reg_a = discovery.register("api", &a, &session).await.unwrap();
    assert_eq!(reg_a.path(), "/env/prod/api/a");
    assert_eq!(
        next_change(&mut cache).await,
        MembershipChange::Added(a.clone())
    );
    // A `services watch` process prints the current instances first.
    let args = ["--json", "services", "watch", "api", "--root", "/env/prod"];
    let mut watcher = coordctl("services watch", &eps, &args);
    assert_eq!(
        watched(&mut watcher, 1).await,
        [("added".into(), "a".into())]
    );

    let a2 = a.clone().with_metadata(json!({"weight": 2}));
    reg_a.update(&a2).await.unwrap();
    let (old, new) = (a.clone(), a2.clone());
    expect(
        &mut cache,
        &mut watcher,
        MembershipChange::Updated { old, new },
    )
    .await;
    let taken = discovery.register("api", &a, &session).await;
    assert!(matches!(
        taken,
        Err(DiscoveryError::Coord(Error::NodeExists(_)))
    ));
    let bad = discovery.register("a/b", &a, &session).await;
    assert!(matches!(
        bad,
        Err(DiscoveryError::Coord(Error::InvalidPath(_)))
    ));

    let b = Instance::new("b", "10.0.0.2:80");
    let reg_b = discovery.register("api", &b, &session).await.unwrap();
    expect(&mut cache, &mut watcher, MembershipChange::Added(b.clone())).await;
    assert_eq!(
        discovery.instances("api").await.unwrap(),
        [a2.clone(), b.clone()]
    );
    reg_a.unregister().await.unwrap();
    expect(&mut cache, &mut watcher, MembershipChange::Removed(a2)).await;
    drop(reg_b); // deleted in the background, not after the session's TTL
    let started = Instant::now();
    expect(&mut cache, &mut watcher, MembershipChange::Removed(b)).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "{:?}",
        started.elapsed()
    );

    // Closing the session removes what it owned at once.
    let c = Instance::new("c", "10.0.0.3:80");
    let _reg_c = discovery.register("api", &c, &session).await.unwrap();
    expect(&mut cache, &mut watcher, MembershipChange::Added(c.clone())).await;
    session.close().await.unwrap();
    expect(&mut cache, &mut watcher, MembershipChange::Removed(c)).await;
    assert!(cache.instances().is_empty());
}

/// Client endpoints of every member but `skip`.
fn endpoints_without(cluster: &Cluster, skip: u64) -> Vec<String> {
    let others = cluster.ids().into_iter().filter(|id| *id != skip);
    others
        .map(|id| cluster.member(id).client_addr.clone())
        .collect()
}

/// A client that starts at member `first` and fails over fast.
async fn fast_client(cluster: &Cluster, first: u64) -> Client {
    let mut endpoints = vec![cluster.member(first).client_addr.clone()];
    endpoints.extend(endpoints_without(cluster, first));
    Client::builder(endpoints)
        .request_timeout(Duration::from_millis(500))
        .watch_idle_timeout(Duration::from_millis(700))
        .build()
        .await
        .unwrap()
}

/// Reads `probe` until it reports a resync.
async fn until_resynced(probe: &mut WatchStream) -> WatchItem {
    loop {
        let item = tokio::time::timeout(WAIT, probe.next()).await.unwrap();
        let item = item.unwrap().unwrap();
        if let WatchItem::Resynced { .. } = item {
            return item;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_cache_re_reads_after_its_watch_history_was_compacted() {
    let cluster = Cluster::builder(3)
        .args(["--min-lease-ttl-ms", "1000", "--watch-history", "10"])
        .start()
        .await;
    let leader = cluster.wait_for_leader(WAIT).await;
    let follower = cluster.ids().into_iter().find(|id| *id != leader).unwrap();
    let writer = Client::connect(endpoints_without(&cluster, follower))
        .await
        .unwrap();
    let discovery = ServiceDiscovery::new(writer.clone());
    let session = writer.session(Duration::from_secs(5)).await.unwrap();
    let register = |id: &str, addr: &str| {
        let instance = Instance::new(id, addr);
        let (discovery, session) = (&discovery, &session);
        async move { discovery.register("db", &instance, session).await.unwrap() }
    };
    let keep = register("keep", "k").await;
    let gone = register("gone", "g").await;

    // The cache and a probe watch share the reader's watch stream.
    let reader = fast_client(&cluster, follower).await;
    let mut cache = ServiceDiscovery::new(reader.clone())
        .cache("db")
        .await
        .unwrap();
    let recursive = WatchOptions {
        recursive: true,
        after_zxid: None,
    };
    let mut probe = reader.watch("/services/db", recursive).await.unwrap();
    assert_eq!(ids(&cache), ["gone", "keep"]);

    // Stop the reader's member and change more than its peers' history holds.
    cluster.member(follower).signal(Signal::SIGSTOP);
    gone.unregister().await.unwrap();
    let _fresh = register("fresh", "f").await;
    for i in 0..20 {
        keep.update(&Instance::new("keep", format!("k{i}")))
            .await
            .unwrap();
    }
    let stopped = Instant::now();
    let resynced = until_resynced(&mut probe).await;
    cluster.member(follower).signal(Signal::SIGCONT);
    eprintln!("{resynced:?} {:?} after the stop", stopped.elapsed());

    let removed = MembershipChange::Removed(Instance::new("gone", "g"));
    let added = MembershipChange::Added(Instance::new("fresh", "f"));
    let last_update = |c: &MembershipChange| matches!(c, MembershipChange::Updated { new, .. } if new.address == "k19");
    let mut changes = Vec::new();
    while !(changes.contains(&removed)
        && changes.contains(&added)
        && changes.iter().any(last_update))
    {
        changes.push(next_change(&mut cache).await);
    }
    assert_eq!(ids(&cache), ["fresh", "keep"]);
    eprintln!(
        "the cache caught up with {} changes: {changes:?}",
        changes.len()
    );
}
