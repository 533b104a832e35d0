//! One SVG chart per workload (and cluster size and client count): throughput
//! of each target on the left, p50 and p99 latency on the right.

use std::path::Path;

use anyhow::{Result, anyhow};
use plotters::coord::Shift;
use plotters::prelude::*;

use crate::report::{Grouped, Key};
use crate::target::TargetKind;

/// One bar: its label, height and colour.
type Bar = (String, f64, RGBColor);

fn color(target: TargetKind) -> RGBColor {
    match target {
        TargetKind::Coord => RGBColor(0x1f, 0x77, 0xb4),
        TargetKind::Etcd => RGBColor(0x2c, 0xa0, 0x2c),
        TargetKind::Zookeeper => RGBColor(0xd6, 0x27, 0x28),
    }
}

/// Writes one chart per group into `dir`; returns how many.
pub fn write_all(grouped: &Grouped, dir: &Path) -> Result<usize> {
    let mut written = 0;
    for (key, by_target) in grouped {
        let throughput: Vec<Bar> = by_target
            .iter()
            .map(|(t, r)| (t.name().to_owned(), r.ops_per_s, color(*t)))
            .collect();
        let mut latency: Vec<Bar> = Vec::new();
        for (t, r) in by_target {
            let light = color(*t).mix(0.5).rgb();
            let light = RGBColor(light.0, light.1, light.2);
            latency.push((format!("{} p50", t.name()), r.p50_us as f64 / 1000.0, light));
            latency.push((
                format!("{} p99", t.name()),
                r.p99_us as f64 / 1000.0,
                color(*t),
            ));
        }
        let file = dir.join(chart_name(key));
        draw(&file, key, &throughput, &latency)
            .map_err(|e| anyhow!("drawing {}: {e}", file.display()))?;
        written += 1;
    }
    Ok(written)
}

/// `write-3n-32c.svg`.
pub fn chart_name(key: &Key) -> String {
    format!("{}-{}n-{}c.svg", key.workload, key.nodes, key.clients)
}

fn draw(file: &Path, key: &Key, throughput: &[Bar], latency: &[Bar]) -> Result<()> {
    let root = SVGBackend::new(file, (960, 400)).into_drawing_area();
    root.fill(&WHITE)?;
    let title = format!(
        "{} — {} node(s), {} clients, {} B values",
        key.workload, key.nodes, key.clients, key.value_size
    );
    let root = root.titled(&title, ("sans-serif", 20))?;
    let (left, right) = root.split_horizontally(400);
    let unit = if key.workload == "watch-fanout" {
        "events/s"
    } else {
        "ops/s"
    };
    bars(&left, unit, throughput)?;
    bars(&right, "latency, ms", latency)?;
    root.present()?;
    Ok(())
}

fn bars(area: &DrawingArea<SVGBackend<'_>, Shift>, caption: &str, items: &[Bar]) -> Result<()> {
    let top = items.iter().map(|b| b.1).fold(0.0, f64::max).max(1e-9) * 1.15;
    let mut chart = ChartBuilder::on(area)
        .caption(caption, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(30)
        .y_label_area_size(60)
        .build_cartesian_2d((0..items.len()).into_segmented(), 0.0..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(items.len())
        .x_label_formatter(&|x| match x {
            SegmentValue::CenterOf(i) => items.get(*i).map(|b| b.0.clone()).unwrap_or_default(),
            _ => String::new(),
        })
        .draw()?;
    chart.draw_series(
        Histogram::vertical(&chart)
            .margin(8)
            .style_func(|x, _| match x {
                SegmentValue::CenterOf(i) | SegmentValue::Exact(i) => {
                    items.get(*i).map_or(BLACK, |b| b.2).filled()
                }
                SegmentValue::Last => BLACK.filled(),
            })
            .data(items.iter().enumerate().map(|(i, b)| (i, b.1))),
    )?;
    Ok(())
}
