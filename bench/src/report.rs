//! `report` (markdown table + charts) and `compare` (ratios) over the JSON
//! lines of one run.

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

/// Records grouped by [`Key`], then by target (the last record wins).
pub type Grouped = BTreeMap<Key, BTreeMap<TargetKind, RunRecord>>;

/// Groups records for the table, the charts and the ratios.
pub fn group(records: Vec<RunRecord>) -> Grouped {
    let mut grouped = Grouped::new();
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
        grouped.entry(key).or_default().insert(target, r);
    }
    grouped
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
    let grouped = group(records);
    std::fs::create_dir_all(&args.out)?;
    let mut text = format!("Run `{run_id}`.\n\n");
    text.push_str(&table(&grouped));
    text.push('\n');
    text.push_str(&ratios(&grouped));
    let table_path = args.out.join("table.md");
    std::fs::write(&table_path, &text)?;
    let charts = chart::write_all(&grouped, &args.out)?;
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

/// The markdown table: one row per record.
pub fn table(grouped: &Grouped) -> String {
    let mut out = String::from(
        "| workload | nodes | clients | target | ops/s | p50 µs | p99 µs | p99.9 µs | errors | note |\n\
         |---|---:|---:|---|---:|---:|---:|---:|---:|---|\n",
    );
    for (key, by_target) in grouped {
        for (target, r) in by_target {
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
                r.errors,
                note(r)
            );
        }
    }
    out
}

/// The note column: the record's caveat, and for watch-fanout the writes
/// made, their rate and the events missed.
fn note(r: &RunRecord) -> String {
    let mut parts: Vec<String> = r.note.iter().cloned().collect();
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

fn ratio(a: f64, b: f64) -> String {
    if a > 0.0 && b > 0.0 {
        format!("{:.2}", a / b)
    } else {
        "-".to_owned()
    }
}

/// coord/etcd and coord/zookeeper ratios of throughput (above 1: coord does
/// more) and of p99 latency (below 1: coord is faster).
pub fn ratios(grouped: &Grouped) -> String {
    let mut out = String::from(
        "| workload | nodes | clients | ops/s coord/etcd | ops/s coord/zookeeper | p99 coord/etcd | p99 coord/zookeeper |\n\
         |---|---:|---:|---:|---:|---:|---:|\n",
    );
    for (key, by_target) in grouped {
        let Some(coord) = by_target.get(&TargetKind::Coord) else {
            continue;
        };
        let cell = |other: TargetKind, f: fn(&RunRecord) -> f64| {
            by_target
                .get(&other)
                .map_or_else(|| "-".to_owned(), |o| ratio(f(coord), f(o)))
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
