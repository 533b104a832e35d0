//! `report` (markdown table + charts) and `compare` (ratios) over the JSON
//! lines of one run. A run of several rounds (`suite --rounds N`) is
//! reported by its median: the table and the charts show each target's
//! median round, the ratios are the median of the rounds' ratios (each
//! round's runs of the targets were seconds apart), with their range.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::{Result, bail};

use crate::chart;
use crate::cli::{CompareArgs, ReportArgs};
use crate::record::{self, RunRecord};
use crate::target::TargetKind;
use crate::workload::Workload;

/// What makes two records comparable: same workload, cluster size, clients
/// and value size.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Key {
    order: usize,
    /// Workload name.
    pub workload: String,
    /// Members.
    pub nodes: usize,
    /// Workers.
    pub clients: usize,
    /// Value bytes.
    pub value_size: usize,
}

/// One record per [`Key`] and target: what the table and the charts show.
pub type Grouped = BTreeMap<Key, BTreeMap<TargetKind, RunRecord>>;

/// Every round's record per [`Key`] and target, in the order they ran.
pub type Rounds = BTreeMap<Key, BTreeMap<TargetKind, Vec<RunRecord>>>;

/// Groups records for the table, the charts and the ratios. A record without
/// a round replaces the ones before it (a run repeated with the same id: the
/// last one counts); a record of a round joins its key's other rounds.
pub fn group(records: Vec<RunRecord>) -> Rounds {
    let mut grouped = Rounds::new();
    for r in records {
        let Some(target) = TargetKind::from_name(&r.target) else {
            continue;
        };
        let order = Workload::ALL
            .iter()
            .position(|w| w.name() == r.workload)
            .unwrap_or(Workload::ALL.len());
        let key = Key {
            order,
            workload: r.workload.clone(),
            nodes: r.nodes,
            clients: r.clients,
            value_size: r.value_size,
        };
        let runs = grouped.entry(key).or_default().entry(target).or_default();
        if r.round.is_none() {
            runs.clear();
        }
        runs.push(r);
    }
    grouped
}

/// The record of the median round by throughput (the lower of the two
/// middle ones for an even count: a round that ran, not an average).
fn median_run(runs: &[RunRecord]) -> Option<&RunRecord> {
    let mut sorted: Vec<&RunRecord> = runs.iter().collect();
    sorted.sort_by(|a, b| a.ops_per_s.total_cmp(&b.ops_per_s));
    sorted.get(sorted.len().saturating_sub(1) / 2).copied()
}

/// Each target's median round, for the charts.
pub fn medians(rounds: &Rounds) -> Grouped {
    rounds
        .iter()
        .map(|(key, by_target)| {
            let picked = by_target
                .iter()
                .filter_map(|(target, runs)| Some((*target, median_run(runs)?.clone())))
                .collect();
            (key.clone(), picked)
        })
        .collect()
}

fn load_run(file: &std::path::Path, run_id: Option<&str>) -> Result<Vec<RunRecord>> {
    let records = record::of_run(record::load(file)?, run_id);
    if records.is_empty() {
        bail!("no records in {} for that run", file.display());
    }
    Ok(records)
}

/// `coord-bench report FILE --out DIR`.
pub fn report(args: &ReportArgs) -> Result<()> {
    let records = load_run(&args.file, args.run_id.as_deref())?;
    let run_id = records[0].run_id.clone();
    let rounds = group(records);
    std::fs::create_dir_all(&args.out)?;
    let mut text = format!("Run `{run_id}`.\n\n");
    text.push_str(&table(&rounds));
    text.push('\n');
    text.push_str(&ratios(&rounds));
    let table_path = args.out.join("table.md");
    std::fs::write(&table_path, &text)?;
    let charts = chart::write_all(&medians(&rounds), &args.out)?;
    eprintln!(
        "wrote {} and {} chart(s) in {}",
        table_path.display(),
        charts,
        args.out.display()
    );
    Ok(())
}

/// `coord-bench compare FILE`.
#[allow(clippy::print_stdout, reason = "the ratios are the command's output")]
pub fn compare(args: &CompareArgs) -> Result<()> {
    let records = load_run(&args.file, args.run_id.as_deref())?;
    print!("{}", ratios(&group(records)));
    Ok(())
}

/// The markdown table: one row per key and target, its median round (the
/// errors of all its rounds).
pub fn table(rounds: &Rounds) -> String {
    let mut out = String::from(
        "| workload | nodes | clients | target | ops/s | p50 µs | p99 µs | p99.9 µs | errors | note |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for (key, by_target) in rounds {
        for (target, runs) in by_target {
            let Some(r) = median_run(runs) else {
                continue;
            };
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {:.0} | {} | {} | {} | {} | {} |",
                key.workload,
                key.nodes,
                key.clients,
                target.name(),
                r.ops_per_s,
                r.p50_us,
                r.p99_us,
                r.p999_us,
                runs.iter().map(|run| run.errors).sum::<u64>(),
                note(r, runs.len())
            );
        }
    }
    out
}

/// The note column: the record's caveat, for watch-fanout the writes made,
/// their rate and the events missed, and how many rounds it is the median of.
fn note(r: &RunRecord, rounds: usize) -> String {
    let mut parts: Vec<String> = r.note.iter().cloned().collect();
    if rounds > 1 {
        parts.push(format!("median of {rounds} rounds"));
    }
    if let Some(writes) = r.writes {
        let rate = r
            .write_rate
            .map_or_else(|| "closed loop".to_owned(), |rate| format!("{rate}/s"));
        parts.push(format!("{writes} writes ({rate})"));
    }
    if let Some(missed) = r.missed {
        parts.push(format!("{missed} events missed"));
    }
    parts.join("; ")
}

/// The ratios of `coord` to `other` by `f`, one per round both ran (a run
/// without a round pairs with the other's run without one).
fn paired(coord: &[RunRecord], other: &[RunRecord], f: fn(&RunRecord) -> f64) -> Vec<f64> {
    coord
        .iter()
        .filter_map(|c| {
            let o = other.iter().find(|o| o.round == c.round)?;
            let (a, b) = (f(c), f(o));
            (a > 0.0 && b > 0.0).then(|| a / b)
        })
        .collect()
}

/// The median of `ratios`, and for more than one their range.
fn ratio_cell(mut ratios: Vec<f64>) -> String {
    ratios.sort_by(f64::total_cmp);
    let n = ratios.len();
    match n {
        0 => "-".to_owned(),
        1 => format!("{:.2}", ratios[0]),
        _ => {
            let median = f64::midpoint(ratios[(n - 1) / 2], ratios[n / 2]);
            format!("{median:.2} ({:.2}–{:.2})", ratios[0], ratios[n - 1])
        }
    }
}

/// coord/etcd and coord/zookeeper ratios of throughput (above 1: coord does
/// more) and of p99 latency (below 1: coord is faster); over several rounds,
/// the median of the rounds' ratios and their range.
pub fn ratios(rounds: &Rounds) -> String {
    let mut out = String::from(
        "| workload | nodes | clients | ops/s coord/etcd | ops/s coord/zookeeper | p99 coord/etcd | p99 coord/zookeeper |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (key, by_target) in rounds {
        let Some(coord) = by_target.get(&TargetKind::Coord) else {
            continue;
        };
        let cell = |other: TargetKind, f: fn(&RunRecord) -> f64| {
            by_target
                .get(&other)
                .map_or_else(|| "-".to_owned(), |o| ratio_cell(paired(coord, o, f)))
        };
        let ops = |r: &RunRecord| r.ops_per_s;
        let p99 = |r: &RunRecord| r.p99_us as f64;
        let _ = writeln!(
            out,
            "| {} | {} | {} | {} | {} | {} | {} |",
            key.workload,
            key.nodes,
            key.clients,
            cell(TargetKind::Etcd, ops),
            cell(TargetKind::Zookeeper, ops),
            cell(TargetKind::Etcd, p99),
            cell(TargetKind::Zookeeper, p99),
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(target: &str, round: Option<u32>, ops_per_s: f64, p99_us: u64) -> RunRecord {
        RunRecord {
            run_id: "run-1".to_owned(),
            target: target.to_owned(),
            nodes: 3,
            workload: "write".to_owned(),
            clients: 32,
            conns: 32,
            value_size: 128,
            duration_s: 10.0,
            warmup_s: 2.0,
            ops: 0,
            ops_per_s,
            p50_us: 1,
            p99_us,
            p999_us: 1,
            max_us: 1,
            mean_us: 1.0,
            errors: 0,
            writes: None,
            missed: None,
            write_rate: None,
            note: None,
            round,
            unix_time: 0,
        }
    }

    #[test]
    fn rounds_are_paired_and_reported_by_their_median() {
        let mut failed = run("zookeeper", Some(2), 500.0, 20);
        failed.errors = 2;
        let rounds = group(vec![
            run("coord", Some(1), 900.0, 10),
            run("zookeeper", Some(1), 300.0, 20),
            failed,
            run("coord", Some(2), 2000.0, 10),
            run("coord", Some(3), 1000.0, 40),
            run("zookeeper", Some(3), 400.0, 20),
        ]);
        let ratios = ratios(&rounds);
        // Per round 3.00, 4.00, 2.50 (not 1000/400 of the medians): median 3.00.
        assert!(ratios.contains("| 3.00 (2.50–4.00) |"), "{ratios}");
        assert!(ratios.contains("| 0.50 (0.50–2.00) |"), "{ratios}");
        let medians = medians(&rounds);
        let by_target = medians.values().next().unwrap();
        assert_eq!(by_target[&TargetKind::Coord].ops_per_s, 1000.0);
        assert_eq!(by_target[&TargetKind::Zookeeper].ops_per_s, 400.0);
        let table = table(&rounds);
        // The median round's figures, every round's errors.
        assert!(
            table.contains(
                "| write | 3 | 32 | zookeeper | 400 | 1 | 20 | 1 | 2 | median of 3 rounds |"
            ),
            "{table}"
        );
    }

    #[test]
    fn without_rounds_the_last_run_counts() {
        let rounds = group(vec![
            run("coord", None, 100.0, 10),
            run("etcd", None, 50.0, 10),
            run("coord", None, 300.0, 10),
        ]);
        let ratios = ratios(&rounds);
        assert!(ratios.contains("| 6.00 | - | 1.00 | - |"), "{ratios}");
        assert!(!table(&rounds).contains("median of"));
    }

    #[test]
    fn an_even_count_takes_the_lower_middle_run_and_the_mean_middle_ratio() {
        let runs = [
            run("coord", Some(1), 4.0, 1),
            run("coord", Some(2), 1.0, 1),
            run("coord", Some(3), 3.0, 1),
            run("coord", Some(4), 2.0, 1),
        ];
        assert_eq!(median_run(&runs).unwrap().ops_per_s, 2.0);
        assert_eq!(ratio_cell(vec![4.0, 1.0, 3.0, 2.0]), "2.50 (1.00–4.00)");
        assert_eq!(ratio_cell(Vec::new()), "-");
    }
}
