//! The short fixed-seed fault suite CI runs: every workload for 30 s under a
//! schedule mixing `kill`, `pause` and `partition` (the seeds are chosen so that
//! each schedule has all three kinds; the lease run adds `clock`), plus the self-test that proves the
//! checker catches real stale reads. Each run starts real `coord-server`
//! processes; runs are serialized so two clusters never compete for the
//! machine. A failing run's directory is kept under `target/tmp/jepsen-failures/`
//! for `jepsen-lite check`.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Mutex;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

/// The members' log filter unless `COORD_TEST_LOG` says otherwise: the peer
/// transport's connection changes are included, so that a kept failing run
/// shows which streams ended, stalled or could not connect.
const TEST_LOG: &str = "info,coord_server::transport=debug";

/// Runs jepsen-lite and returns its exit code and the results it wrote.
fn run(
    name: &str,
    workload: &str,
    nemesis: &str,
    seed: u64,
    extra: &[&str],
) -> (i32, serde_json::Value) {
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().expect("temp dir");
    let out = dir.path().join(name);
    let output = Command::new(env!("CARGO_BIN_EXE_jepsen-lite"))
        .args([
            "run",
            "--workload",
            workload,
            "--nemesis",
            nemesis,
            "--time",
            "30s",
        ])
        .args(["--concurrency", "10", "--seed", &seed.to_string()])
        .arg("--out")
        .arg(&out)
        .arg("--server-bin")
        .arg(coord_testkit::server_binary())
        .args(extra)
        .env(
            "COORD_TEST_LOG",
            std::env::var("COORD_TEST_LOG").unwrap_or_else(|_| TEST_LOG.to_owned()),
        )
        .output()
        .expect("run jepsen-lite");
    let results = std::fs::read(out.join("results.json"))
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok())
        .unwrap_or(serde_json::Value::Null);
    let code = output.status.code().unwrap_or(-1);
    let expected_anomaly = extra.contains(&"--server-arg=--unsafe-stale-reads");
    if (code != 0) != expected_anomaly {
        let keep = PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
            .join("jepsen-failures")
            .join(name);
        let _ = std::fs::remove_dir_all(&keep);
        let _ = std::fs::create_dir_all(keep.parent().expect("parent"));
        let _ = Command::new("cp").arg("-r").arg(&out).arg(&keep).status();
        eprintln!("{}", String::from_utf8_lossy(&output.stdout));
        eprintln!("run kept in {}", keep.display());
    }
    (code, results)
}

fn assert_valid_under_every_fault(workload: &str, seed: u64) {
    assert_valid_under(workload, "kill,pause,partition", seed);
}

fn assert_valid_under(workload: &str, nemesis: &str, seed: u64) {
    let (code, results) = run(workload, workload, nemesis, seed, &[]);
    assert_eq!(code, 0, "anomalies: {:#}", results["checker"]);
    assert_eq!(results["valid"], serde_json::Value::Bool(true));
    let faults: Vec<&str> = results["faults"]
        .as_array()
        .map(|f| f.iter().filter_map(|x| x["fault"].as_str()).collect())
        .unwrap_or_default();
    for kind in nemesis.split(',') {
        assert!(
            faults.iter().any(|f| f.starts_with(kind)),
            "no {kind} fault in {faults:?}"
        );
    }
    let ok = results["counts"]["ok"].as_u64().unwrap_or(0);
    assert!(
        ok > 100,
        "the cluster served operations: {}",
        results["counts"]
    );
}

#[test]
fn register_is_linearizable_under_faults() {
    assert_valid_under_every_fault("register", 103);
}

#[test]
fn set_loses_and_duplicates_nothing_under_faults() {
    assert_valid_under_every_fault("set", 105);
}

/// Leases are where time matters most: this run also skews wall clocks.
#[test]
fn leases_keep_their_promises_under_faults_and_clock_skew() {
    assert_valid_under("lease", "kill,pause,partition,clock", 110);
}

#[test]
fn watches_miss_and_repeat_nothing_under_faults() {
    assert_valid_under_every_fault("watch", 107);
}

#[test]
fn lock_fences_every_lost_holder_under_faults() {
    assert_valid_under_every_fault("lock", 113);
}

#[test]
fn queue_hands_out_every_item_once_under_faults() {
    assert_valid_under_every_fault("queue", 114);
}

/// With ReadIndex switched off, partitions must produce stale reads the checker
/// reports: proof that a valid verdict means something.
#[test]
fn checker_catches_stale_reads_when_read_index_is_off() {
    let (code, results) = run(
        "self-test",
        "register",
        "partition",
        7,
        &["--server-arg=--unsafe-stale-reads"],
    );
    assert_eq!(code, 1, "stale reads went unnoticed: {results:#}");
    assert_eq!(results["valid"], serde_json::Value::Bool(false));
    let anomalies = results["checker"]["anomalies"]
        .as_array()
        .map_or(0, Vec::len);
    assert!(anomalies > 0);
}
