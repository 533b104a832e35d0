//! CI's smoke of the instrument (not a timing gate): every workload runs 5 s
//! against a real 3-member coord cluster on free ports, and must complete
//! operations without errors (watch-fanout writes at a fixed rate and must
//! miss no event); `report` and `compare` must digest the results.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

use coord_testkit::Cluster;
use serde_json::Value;

const BENCH: &str = env!("CARGO_BIN_EXE_coord-bench");

const WORKLOADS: [&str; 8] = [
    "write",
    "create",
    "read",
    "read-serializable",
    "mixed",
    "watch-fanout",
    "lock",
    "session-churn",
];

fn bench(args: &[&str], out_dir: &Path) -> String {
    let output = Command::new(BENCH)
        .args(args)
        .current_dir(out_dir)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "coord-bench {args:?} failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn every_workload_runs_against_a_real_cluster() {
    let cluster = Cluster::start(3).await;
    let endpoints = cluster.endpoints().join(",");
    let dir = tempfile::tempdir().unwrap();
    let results = dir.path().join("results.jsonl");
    let results_arg = results.to_str().unwrap();
    for workload in WORKLOADS {
        let mut args = vec![
            "run",
            "--target",
            "coord",
            "--workload",
            workload,
            "--endpoints",
            &endpoints,
            "--nodes",
            "3",
            "--duration",
            "5s",
            "--warmup",
            "1s",
            "--clients",
            "8",
            "--run-id",
            "smoke",
            "--out",
            results_arg,
        ];
        if workload == "watch-fanout" {
            args.extend(["--write-rate", "100"]);
        }
        bench(&args, dir.path());
    }
    let records: Vec<Value> = std::fs::read_to_string(&results)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect();
    let names: Vec<&str> = records
        .iter()
        .map(|r| r["workload"].as_str().unwrap())
        .collect();
    assert_eq!(names, WORKLOADS);
    let fanout = &records[5];
    assert_eq!(fanout["write_rate"], 100, "{fanout}");
    assert!(fanout["writes"].as_u64().unwrap() > 0, "{fanout}");
    assert_eq!(
        fanout["missed"], 0,
        "every event reaches every watcher: {fanout}"
    );
    for record in &records {
        assert!(
            record["ops"].as_u64().unwrap() > 0,
            "no operations: {record}"
        );
        assert_eq!(record["errors"], 0, "errors: {record}");
        assert_eq!(record["target"], "coord");
        assert!(record["p99_us"].as_u64().unwrap() >= record["p50_us"].as_u64().unwrap());
    }
    let report_dir = dir.path().join("report");
    let report_arg = report_dir.to_str().unwrap();
    bench(&["report", results_arg, "--out", report_arg], dir.path());
    let table = std::fs::read_to_string(report_dir.join("table.md")).unwrap();
    for workload in WORKLOADS {
        assert!(table.contains(workload), "{workload} missing from\n{table}");
    }
    assert!(report_dir.join("write-3n-8c.svg").exists());
    let compare = bench(&["compare", results_arg], dir.path());
    assert!(compare.contains("| workload |"), "{compare}");

    // A suite of two rounds tags each run with its round; the report shows
    // the median round.
    let rounds = dir.path().join("rounds.jsonl");
    let rounds_arg = rounds.to_str().unwrap();
    bench(
        &[
            "suite",
            "--targets",
            "coord",
            "--workloads",
            "write",
            "--rounds",
            "2",
            "--coord-endpoints",
            &endpoints,
            "--nodes",
            "3",
            "--duration",
            "1s",
            "--warmup",
            "1s",
            "--clients",
            "4",
            "--run-id",
            "rounds",
            "--out",
            rounds_arg,
        ],
        dir.path(),
    );
    let tagged: Vec<Value> = std::fs::read_to_string(&rounds)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str::<Value>(line).unwrap()["round"].clone())
        .collect();
    assert_eq!(tagged, [1, 2]);
    bench(&["report", rounds_arg, "--out", report_arg], dir.path());
    let table = std::fs::read_to_string(report_dir.join("table.md")).unwrap();
    assert!(table.contains("median of 2 rounds"), "{table}");
}
