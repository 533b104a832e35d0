//! `config-distribution run` processes against a real 3-member cluster: a
//! process started before any config waits for it; after a burst of writes
//! (the test's client, `set` and a compare-and-set `edit`) every process
//! runs the latest version within a bound, having never gone back to an
//! older one; after `kill -9` of a member their watches fail over and they
//! converge again.
#![allow(clippy::unwrap_used)]

#[path = "../../test-support/procs.rs"]
mod procs;

use std::time::Duration;

use coord_client::Client;
use coord_testkit::Cluster;
use serde_json::{Value, json};
use tokio::time::Instant;

use procs::{Proc, endpoints_from, run_json};

const BIN: &str = env!("CARGO_BIN_EXE_config-distribution");
const PATH: &str = "/config/app";
const WAIT: Duration = Duration::from_secs(15);
/// How soon after the last write every process must run it.
const CONVERGE: Duration = Duration::from_secs(2);
/// The same after a member was killed: watches move to another member first.
const CONVERGE_AFTER_FAILOVER: Duration = Duration::from_secs(5);

/// Reads `proc`'s lines until it runs `version`; checks that versions only
/// go up and that the config is `expected`. Returns when it printed it.
async fn runs(proc: &mut Proc, version: i64, expected: &Value, bound: Duration) -> Instant {
    let deadline = Instant::now() + bound;
    let mut last = -1;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some((at, doc)) = proc.next(left).await else {
            panic!(
                "{} did not run version {version} within {bound:?}",
                proc.name
            );
        };
        assert_eq!(doc["event"], "running", "{doc}");
        let seen = doc["version"].as_i64().unwrap();
        assert!(seen > last, "{}: version {seen} after {last}", proc.name);
        last = seen;
        if seen == version {
            assert_eq!(&doc["config"], expected, "{}", proc.name);
            return at;
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn every_process_converges_on_the_latest_version() {
    let mut cluster = Cluster::builder(3).start().await;
    let eps = cluster.endpoints();
    let all = eps.join(",");

    // Started before any config is set: waits for it.
    let mut procs = vec![procs::start(
        "app-0",
        BIN,
        &endpoints_from(&eps, 0),
        &["run", "app-0"],
    )];
    procs[0].wait_for("waiting", WAIT).await;
    let written = run_json(BIN, &all, &["set", r#"{"workers": 0}"#]);
    assert_eq!(written[0]["version"], 0);
    let first = json!({"workers": 0});
    runs(&mut procs[0], 0, &first, WAIT).await;
    for i in 1..4 {
        let name = format!("app-{i}");
        let mut proc = procs::start(&name, BIN, &endpoints_from(&eps, i), &["run", &name]);
        runs(&mut proc, 0, &first, WAIT).await;
        procs.push(proc);
    }

    // A burst of writes, then an edit through the CLI's compare-and-set.
    let client = Client::connect(endpoints_from(&eps, 1).split(','))
        .await
        .unwrap();
    for i in 1..=20 {
        let data = json!({"workers": i}).to_string();
        client.set(PATH, data, -1).await.unwrap();
    }
    let edited = run_json(BIN, &all, &["edit", "mode", "fast"]);
    let done = Instant::now();
    assert_eq!(edited[0]["version"], 21);
    let expected = json!({"workers": 20, "mode": "fast"});
    let mut slowest = Duration::ZERO;
    for proc in &mut procs {
        let at = runs(proc, 21, &expected, CONVERGE + Duration::from_secs(1)).await;
        slowest = slowest.max(at.saturating_duration_since(done));
    }
    eprintln!("all 4 processes ran version 21 at most {slowest:?} after it was written");
    assert!(slowest < CONVERGE, "{slowest:?}");

    // kill -9 of member 1, where app-0 and app-3 watch: they fail over.
    cluster.kill(1);
    let again = json!({"workers": 5, "mode": "safe"});
    let written = run_json(BIN, &endpoints_from(&eps, 1), &["set", &again.to_string()]);
    let done = Instant::now();
    assert_eq!(written[0]["version"], 22);
    let mut slowest = Duration::ZERO;
    for proc in &mut procs {
        let at = runs(proc, 22, &again, WAIT).await;
        slowest = slowest.max(at.saturating_duration_since(done));
    }
    eprintln!("after kill -9 of a member, all ran version 22 within {slowest:?}");
    assert!(slowest < CONVERGE_AFTER_FAILOVER, "{slowest:?}");

    let shown = run_json(BIN, &endpoints_from(&eps, 2), &["get"]);
    assert_eq!(
        (&shown[0]["version"], &shown[0]["config"]),
        (&json!(22), &again)
    );
}
