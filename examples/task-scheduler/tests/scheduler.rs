//! `task-scheduler` processes against a real 3-member cluster: two
//! schedulers (one active) and three workers run a 200-task job; one worker
//! and then the active scheduler are killed with `kill -9` mid-way. Every
//! task completes exactly once (one accepted completion per task, and each
//! task's version shows exactly the writes of its assignments, take-backs
//! and one completion), the standby scheduler takes over within the session
//! TTL plus an election timeout, and the tasks taken back from the killed
//! worker are counted and reported by `status`. A worker stopped (SIGSTOP)
//! past its session TTL while running tasks has them taken back, and when
//! it resumes, its completions are refused by the fence.
#![allow(clippy::unwrap_used)]

#[path = "../../test-support/procs.rs"]
mod procs;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use coord_client::Client;
use coord_testkit::Cluster;
use nix::sys::signal::Signal;
use serde_json::Value;
use tokio::time::Instant;

use procs::{Proc, endpoints_from, run_json};

const BIN: &str = env!("CARGO_BIN_EXE_task-scheduler");
const TASKS: u64 = 200;
const WAIT: Duration = Duration::from_secs(15);
/// The whole job, kills included, on a loaded 2-core machine.
const JOB_WAIT: Duration = Duration::from_secs(60);
const TTL: Duration = Duration::from_secs(2);
/// An election timeout with the testkit's 50 ms ticks is at most 1 s.
const ELECTION_TIMEOUT: Duration = Duration::from_secs(1);
/// Room for a loaded 2-core machine (keep-alive timing, scheduling).
const SLACK: Duration = Duration::from_secs(1);

fn scheduler(id: &str, endpoints: &str) -> Proc {
    let args = ["scheduler", "--id", id, "--session-ttl-ms", "2000"];
    procs::start(id, BIN, endpoints, &args)
}

async fn worker(id: &str, endpoints: &str, work_ms: &str) -> Proc {
    worker_with(id, endpoints, "3", work_ms).await
}

async fn worker_with(id: &str, endpoints: &str, capacity: &str, work_ms: &str) -> Proc {
    let args = [
        "worker",
        "--id",
        id,
        "--capacity",
        capacity,
        "--work-ms",
        work_ms,
        "--session-ttl-ms",
        "2000",
    ];
    let mut proc = procs::start(id, BIN, endpoints, &args);
    proc.wait_for("registered", WAIT).await;
    proc
}

/// Reads the lines of every process until `done(procs)` holds.
async fn until(procs: &mut [Proc], what: &str, done: impl Fn(&[Proc]) -> bool) {
    let deadline = Instant::now() + JOB_WAIT;
    while !done(procs) {
        assert!(Instant::now() < deadline, "not {what} within {JOB_WAIT:?}");
        for proc in procs.iter_mut() {
            let _ = proc.next(Duration::from_millis(5)).await;
        }
    }
}

fn completed(procs: &[Proc]) -> usize {
    procs.iter().map(|p| p.events("completed").len()).sum()
}

#[tokio::test(flavor = "multi_thread")]
async fn two_hundred_tasks_complete_exactly_once_across_kill_9_of_a_worker_and_the_scheduler() {
    let cluster = Cluster::builder(3)
        .args(["--min-lease-ttl-ms", "1000"])
        .start()
        .await;
    let eps = cluster.endpoints();
    let mut s1 = scheduler("s1", &endpoints_from(&eps, 0));
    s1.wait_for("leading", WAIT).await;
    let mut s2 = scheduler("s2", &endpoints_from(&eps, 1));
    s2.wait_for("standby", WAIT).await;
    // w3 is slow, so it always holds tasks when it is killed.
    let mut workers = vec![
        worker("w1", &endpoints_from(&eps, 1), "40").await,
        worker("w2", &endpoints_from(&eps, 2), "40").await,
        worker("w3", &endpoints_from(&eps, 0), "400").await,
    ];
    let submitted = run_json(BIN, &eps.join(","), &["submit", "job-1", "--tasks", "200"]);
    assert_eq!(submitted[0]["event"], "submitted");
    let started = Instant::now();

    until(&mut workers, "30 tasks done", |w| completed(w) >= 30).await;
    // Killed just after it starts a task (which takes it 400 ms): it surely
    // holds at least that one.
    workers[2].wait_for("started", WAIT).await;
    workers[2].kill();
    eprintln!("killed w3 after {:?}, running a task", started.elapsed());

    until(&mut workers, "90 tasks done", |w| completed(w) >= 90).await;
    s1.kill();
    let killed = Instant::now();
    let (took_over, doc) = s2.wait_for("leading", WAIT).await;
    let takeover = took_over - killed;
    eprintln!(
        "s2 took over {takeover:?} after kill -9 of s1 (token {})",
        doc["token"]
    );
    assert!(takeover < TTL + ELECTION_TIMEOUT + SLACK, "{takeover:?}");

    let deadline = Instant::now() + JOB_WAIT;
    while s2.events("job_done").is_empty() {
        assert!(
            Instant::now() < deadline,
            "job not done; stderr:\n{}",
            s2.stderr()
        );
        let _ = s2.next(Duration::from_millis(5)).await;
        for proc in &mut workers {
            let _ = proc.next(Duration::from_millis(1)).await;
        }
    }
    eprintln!(
        "all {TASKS} tasks done {:?} after submit",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    for proc in workers.iter_mut().chain([&mut s1, &mut s2]) {
        proc.drain();
    }

    let reassigned = check_tasks(&eps, &workers).await;
    assert!(reassigned >= 1, "w3's tasks were not reassigned");
    check_status(&eps, reassigned, &[&s1, &s2], &workers);
}

/// `status` reports the job done, the reassignments and per-worker counts;
/// the schedulers took tasks back from the killed worker only.
fn check_status(eps: &[String], reassigned: u64, schedulers: &[&Proc], workers: &[Proc]) {
    let status = run_json(BIN, &eps.join(","), &["status"]);
    let job = &status[0]["jobs"][0];
    assert_eq!(
        (job["done"].as_u64(), job["state"].as_str()),
        (Some(TASKS), Some("done"))
    );
    assert_eq!(status[0]["reassigned"].as_u64(), Some(reassigned));
    assert_eq!(status[0]["leader"], "s2");
    let per_worker: BTreeMap<String, u64> = status[0]["workers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| {
            (
                w["worker"].as_str().unwrap().to_owned(),
                w["done"].as_u64().unwrap(),
            )
        })
        .collect();
    assert_eq!(per_worker.values().sum::<u64>(), TASKS);
    let released: Vec<&Value> = schedulers
        .iter()
        .flat_map(|s| s.events("released"))
        .collect();
    assert!(released.iter().all(|r| r["worker"] == "w3"), "{released:?}");
    let refused: usize = workers.iter().map(|w| w.events("refused").len()).sum();
    eprintln!(
        "status: {reassigned} task(s) reassigned ({} take-backs printed), per worker {per_worker:?}, {refused} completion(s) refused",
        released.len()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_paused_past_its_ttl_cannot_complete_the_tasks_taken_from_it() {
    let cluster = Cluster::builder(3)
        .args(["--min-lease-ttl-ms", "1000"])
        .start()
        .await;
    let eps = cluster.endpoints();
    let mut s1 = scheduler("s1", &endpoints_from(&eps, 0));
    s1.wait_for("leading", WAIT).await;
    let mut fast = worker_with("fast", &endpoints_from(&eps, 1), "2", "20").await;
    let mut slow = worker_with("slow", &endpoints_from(&eps, 2), "2", "1500").await;
    run_json(BIN, &eps.join(","), &["submit", "job-2", "--tasks", "20"]);
    let (_, first) = slow.wait_for("started", WAIT).await;
    let (_, second) = slow.wait_for("started", WAIT).await;
    slow.signal(Signal::SIGSTOP);

    // Its session expires; the scheduler takes both tasks back, and the
    // other worker completes the whole job.
    let mut released = BTreeSet::new();
    while released.len() < 2 {
        let (_, doc) = s1.wait_for("released", WAIT).await;
        assert_eq!(doc["worker"], "slow");
        released.insert(doc["task"].as_str().unwrap().to_owned());
    }
    let held: BTreeSet<String> = [&first, &second]
        .iter()
        .map(|d| d["task"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(released, held);
    s1.wait_for("job_done", JOB_WAIT).await;

    // Resumed, it finishes its work, and both completions are refused.
    slow.signal(Signal::SIGCONT);
    let mut refused = BTreeSet::new();
    while refused.len() < 2 {
        let (_, doc) = slow.wait_for("refused", WAIT).await;
        refused.insert(doc["task"].as_str().unwrap().to_owned());
    }
    assert_eq!(refused, held);
    assert!(slow.events("completed").is_empty());
    assert_ne!(
        slow.exit(WAIT).await.code(),
        Some(0),
        "a worker whose session was lost stops"
    );
    slow.drain();
    assert_eq!(slow.events("session_lost").len(), 1);

    let client = Client::connect(eps.clone()).await.unwrap();
    for task in &held {
        let (data, _) = client
            .get(&format!("/scheduler/tasks/{task}"))
            .await
            .unwrap();
        let task: Value = serde_json::from_slice(&data).unwrap();
        assert_eq!(
            (&task["state"], &task["worker"]),
            (&"done".into(), &"fast".into())
        );
        assert_eq!(task["reassignments"], 1);
    }
    fast.drain();
    assert_eq!(fast.events("completed").len(), 20);
}

/// Reads every task: each is done with the right result, exactly once;
/// every completion a worker printed is the one recorded. Returns the
/// reassignments.
async fn check_tasks(endpoints: &[String], workers: &[Proc]) -> u64 {
    let client = Client::connect(endpoints.to_vec()).await.unwrap();
    let mut printed: BTreeMap<String, String> = BTreeMap::new();
    for worker in workers {
        for line in worker.events("completed") {
            let task = line["task"].as_str().unwrap().to_owned();
            let previous = printed.insert(task.clone(), worker.name.clone());
            assert!(
                previous.is_none(),
                "{task} completed twice: {previous:?} and {}",
                worker.name
            );
        }
    }
    let (names, _) = client.children("/scheduler/tasks/job-1").await.unwrap();
    assert_eq!(names.len() as u64, TASKS);
    let mut reassigned = 0;
    let mut done_by = BTreeSet::new();
    for name in names {
        let (data, stat) = client
            .get(&format!("/scheduler/tasks/job-1/{name}"))
            .await
            .unwrap();
        let task: Value = serde_json::from_slice(&data).unwrap();
        let index = task["index"].as_u64().unwrap();
        assert_eq!(task["state"], "done", "{task}");
        assert_eq!(
            task["result"].as_u64(),
            Some(index * (index + 1) / 2),
            "{task}"
        );
        let moves = task["reassignments"].as_u64().unwrap();
        // Created, then per attempt assigned (+ taken back), and done once.
        assert_eq!(task["attempts"].as_u64(), Some(1 + moves), "{task}");
        assert_eq!(i64::from(stat.version), 2 * (1 + moves as i64), "{task}");
        let worker = task["worker"].as_str().unwrap().to_owned();
        if let Some(printer) = printed.get(&format!("job-1/{name}")) {
            assert_eq!(printer, &worker, "{task}");
        } else {
            // Only the killed worker may have completed without printing.
            assert_eq!(worker, "w3", "{name}: a completion nobody printed");
        }
        if moves > 0 {
            assert_ne!(worker, "w3", "{task}");
        }
        done_by.insert(worker);
        reassigned += moves;
    }
    assert!(
        done_by.contains("w1") && done_by.contains("w2"),
        "{done_by:?}"
    );
    assert!(
        client
            .children("/scheduler/assign/w1")
            .await
            .unwrap()
            .0
            .is_empty()
    );
    reassigned
}
