//! Results of a run: `results.json` (verdict, counts, checker output, faults,
//! the command that reproduces the run) and `report.html`, a timeline of every
//! operation per client with faults shaded and anomalies outlined, and a
//! latency-over-time plot, for a person to see what happened.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;

use serde::Serialize;

use crate::fault::FaultRecord;
use crate::history::{EventType, Operation};
use crate::runner::RunConfig;
use crate::workload::CheckResult;

/// What `results.json` holds.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    /// `true`: no anomaly; `false`: anomalies; `null`: undecided.
    pub valid: Option<bool>,
    /// The command that replays this run's schedule.
    pub reproduce: String,
    /// The run's configuration.
    pub config: RunConfig,
    /// Whether a leader was elected within 30 s of healing.
    pub recovered: bool,
    /// Operations per completion type (ok, fail, info).
    pub counts: BTreeMap<String, usize>,
    /// Operations per name and completion type.
    pub by_f: BTreeMap<String, BTreeMap<String, usize>>,
    /// The checker's output.
    pub checker: CheckResult,
    /// The faults injected.
    pub faults: Vec<FaultRecord>,
}

fn kind_name(kind: EventType) -> &'static str {
    match kind {
        EventType::Invoke => "invoke",
        EventType::Ok => "ok",
        EventType::Fail => "fail",
        EventType::Info => "info",
    }
}

/// The command line that reproduces a run into `out`.
pub fn reproduce_command(config: &RunConfig, out: &Path) -> String {
    let nemesis = if config.nemesis.is_empty() {
        "none".to_owned()
    } else {
        config
            .nemesis
            .iter()
            .map(|k| format!("{k:?}").to_lowercase())
            .collect::<Vec<_>>()
            .join(",")
    };
    let mut cmd = format!(
        "jepsen-lite run --workload {} --nemesis {nemesis} --nodes {} --time {}ms --concurrency {} --reproduce {} --out {}",
        format!("{:?}", config.workload).to_lowercase(),
        config.nodes,
        config.time_ms,
        config.concurrency,
        config.seed,
        out.display()
    );
    for arg in &config.server_args {
        let _ = write!(cmd, " --server-arg={arg}");
    }
    cmd
}

/// Checks the history and assembles the results.
pub fn analyze(
    config: &RunConfig,
    ops: &[Operation],
    faults: Vec<FaultRecord>,
    recovered: bool,
    out: &Path,
) -> Results {
    let mut checker = config.workload.check(ops, &faults);
    if !recovered {
        checker.valid = Some(false);
        checker
            .anomalies
            .push("no leader was elected within 30 s after healing".into());
    }
    let mut counts = BTreeMap::new();
    let mut by_f: BTreeMap<String, BTreeMap<String, usize>> = BTreeMap::new();
    for op in ops {
        let k = kind_name(op.done.kind).to_owned();
        *counts.entry(k.clone()).or_default() += 1;
        *by_f
            .entry(op.done.f.clone())
            .or_default()
            .entry(k)
            .or_default() += 1;
    }
    Results {
        valid: checker.valid,
        reproduce: reproduce_command(config, out),
        config: config.clone(),
        recovered,
        counts,
        by_f,
        checker,
        faults,
    }
}

/// Writes `results.json` and `report.html` into `out`.
pub fn write(results: &Results, ops: &[Operation], out: &Path) -> anyhow::Result<()> {
    std::fs::write(
        out.join("results.json"),
        serde_json::to_vec_pretty(results)?,
    )?;
    std::fs::write(out.join("report.html"), html(results, ops))?;
    Ok(())
}

const WIDTH: f64 = 1400.0;
const LANE: f64 = 12.0;
const LEFT: f64 = 70.0;

fn color(kind: EventType) -> &'static str {
    match kind {
        EventType::Ok => "#3a3",
        EventType::Fail => "#d55",
        EventType::Info => "#e90",
        EventType::Invoke => "#999",
    }
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// The whole page.
fn html(results: &Results, ops: &[Operation]) -> String {
    let end_ns = ops
        .iter()
        .filter_map(|o| o.done.end_ns)
        .chain(results.faults.iter().map(|f| f.end_ns))
        .max()
        .unwrap_or(1)
        .max(1);
    let verdict = match results.valid {
        Some(true) => "valid",
        Some(false) => "INVALID",
        None => "unknown",
    };
    let mut page = String::new();
    let _ = write!(
        page,
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>jepsen-lite: {verdict}</title>\
         <style>body{{font-family:sans-serif;margin:20px}} pre{{background:#f4f4f4;padding:8px}}</style></head><body>\
         <h1>jepsen-lite run: {verdict}</h1><p><code>{}</code></p><h2>Anomalies</h2><ul>",
        escape(&results.reproduce)
    );
    if results.checker.anomalies.is_empty() {
        page.push_str("<li>none</li>");
    }
    for a in &results.checker.anomalies {
        let _ = write!(page, "<li>{}</li>", escape(a));
    }
    let _ = write!(
        page,
        "</ul><h2>Counts</h2><pre>{}</pre>",
        escape(&serde_json::to_string_pretty(&results.by_f).unwrap_or_default())
    );
    page.push_str("<h2>Timeline</h2><p>One row per client (process modulo concurrency; the last row holds the final reads). Green ok, red fail, orange info (unknown); grey bands are faults; outlined operations are involved in an anomaly. Hover for details.</p>");
    page.push_str(&timeline(results, ops, end_ns));
    page.push_str("<h2>Latency</h2><p>Completion time against latency (log scale).</p>");
    page.push_str(&latency(ops, end_ns));
    page.push_str("</body></html>\n");
    page
}

fn x_of(ns: u64, end_ns: u64) -> f64 {
    LEFT + (WIDTH - LEFT - 10.0) * (ns as f64 / end_ns as f64)
}

fn timeline(results: &Results, ops: &[Operation], end_ns: u64) -> String {
    let lanes = results.config.concurrency.max(1) + 1;
    let height = 30.0 + LANE * lanes as f64;
    let mut svg = format!(
        "<svg width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"10\">"
    );
    for f in &results.faults {
        let (x0, x1) = (x_of(f.start_ns, end_ns), x_of(f.end_ns, end_ns));
        let _ = write!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"0\" width=\"{:.1}\" height=\"{height}\" fill=\"#888\" opacity=\"0.18\"><title>{} {:?}</title></rect>\
             <text x=\"{x0:.1}\" y=\"10\">{}</text>",
            (x1 - x0).max(1.0),
            escape(&f.fault),
            f.members,
            escape(&f.fault)
        );
    }
    let culprits: std::collections::BTreeSet<usize> =
        results.checker.culprits.iter().copied().collect();
    for (i, op) in ops.iter().enumerate() {
        let d = &op.done;
        let lane = if d.process >= 1_000_000_000 {
            lanes - 1
        } else {
            d.process % results.config.concurrency.max(1)
        };
        let y = 20.0 + LANE * lane as f64;
        let x0 = x_of(d.start_ns, end_ns);
        let x1 = x_of(d.end_ns.unwrap_or(end_ns), end_ns);
        let stroke = if culprits.contains(&i) {
            " stroke=\"#000\" stroke-width=\"2\""
        } else {
            ""
        };
        let _ = write!(
            svg,
            "<rect x=\"{x0:.1}\" y=\"{y:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"{}\"{stroke}><title>#{i} p{} {} {} {} -&gt; {} {}</title></rect>",
            (x1 - x0).max(0.8),
            LANE - 2.0,
            color(d.kind),
            d.process,
            escape(&d.f),
            escape(&d.key),
            escape(&op.input.to_string()),
            escape(&d.value.to_string()),
            escape(d.error.as_deref().unwrap_or(""))
        );
    }
    for s in 0..=(end_ns / 1_000_000_000) {
        let x = x_of(s * 1_000_000_000, end_ns);
        let _ = write!(
            svg,
            "<text x=\"{x:.1}\" y=\"{:.1}\">{s}s</text>",
            height - 2.0
        );
    }
    svg.push_str("</svg>");
    svg
}

fn latency(ops: &[Operation], end_ns: u64) -> String {
    let height = 260.0;
    let y_of = |ns: u64| {
        let ms = (ns as f64 / 1e6).max(0.1);
        // 0.1 ms at the bottom, 10 s at the top.
        let frac = ((ms.log10() + 1.0) / 5.0).clamp(0.0, 1.0);
        height - 20.0 - frac * (height - 30.0)
    };
    let mut svg = format!(
        "<svg width=\"{WIDTH}\" height=\"{height}\" xmlns=\"http://www.w3.org/2000/svg\" font-size=\"10\">"
    );
    for (label, ns) in [
        ("0.1ms", 100_000u64),
        ("1ms", 1_000_000),
        ("10ms", 10_000_000),
        ("100ms", 100_000_000),
        ("1s", 1_000_000_000),
        ("10s", 10_000_000_000),
    ] {
        let y = y_of(ns);
        let _ = write!(
            svg,
            "<line x1=\"{LEFT}\" x2=\"{WIDTH}\" y1=\"{y:.1}\" y2=\"{y:.1}\" stroke=\"#ddd\"/><text x=\"5\" y=\"{y:.1}\">{label}</text>"
        );
    }
    for op in ops {
        let Some(end) = op.done.end_ns else { continue };
        let _ = write!(
            svg,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"1.5\" fill=\"{}\"/>",
            x_of(end, end_ns),
            y_of(end.saturating_sub(op.done.start_ns)),
            color(op.done.kind)
        );
    }
    svg.push_str("</svg>");
    svg
}
