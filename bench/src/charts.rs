//! Renders the report's [`Chart`]s to SVG files with `plotters`.
//!
//! Only the SVG backend is used: it emits `<text>` elements and leaves glyph rendering to the
//! viewer, so no system fonts or font libraries are needed (plotters falls back to its built-in
//! text-size estimate when neither the `ttf` nor the `ab_glyph` feature is enabled).

use std::ops::Range;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;

use crate::report::{Chart, ChartKind, Series};

const SIZE: (u32, u32) = (900, 500);

/// Draws `chart` as `out_dir/<chart.file>` and returns that path.
pub fn render(chart: &Chart, out_dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(out_dir)
        .with_context(|| format!("creating chart directory {}", out_dir.display()))?;
    let path = out_dir.join(&chart.file);
    let (lo, hi) = y_range(chart);
    // Linear and log y axes are different coordinate types, hence the generic `draw`.
    let drawn = match (&chart.kind, chart.log_y) {
        (ChartKind::Bars { categories }, false) => draw(chart, &path, bar_x(categories), lo..hi),
        (ChartKind::Bars { categories }, true) => {
            draw(chart, &path, bar_x(categories), (lo..hi).log_scale())
        }
        (ChartKind::Lines, false) => draw(chart, &path, line_x(&chart.series), lo..hi),
        (ChartKind::Lines, true) => draw(chart, &path, line_x(&chart.series), (lo..hi).log_scale()),
    };
    drawn.with_context(|| format!("rendering chart {:?} to {}", chart.title, path.display()))?;
    Ok(path)
}

/// Bar groups sit at integer x (the category index), each in a slot one unit wide.
fn bar_x(categories: &[String]) -> Range<f64> {
    -0.5..categories.len().max(1) as f64 - 0.5
}

fn line_x(series: &[Series]) -> Range<f64> {
    let xs = series.iter().flat_map(|s| &s.points).map(|p| p.0);
    let (lo, hi) = min_max(xs.filter(|x| x.is_finite())).unwrap_or((0.0, 1.0));
    // A single x value would give an empty range, which plotters cannot map.
    if hi > lo {
        // Pad so the end markers are not cut by the axes.
        let pad = (hi - lo) * 0.04;
        lo - pad..hi + pad
    } else {
        lo - 1.0..hi + 1.0
    }
}

/// Linear axes start at 0; log axes span the positive data with some headroom.
fn y_range(chart: &Chart) -> (f64, f64) {
    let ys = chart.series.iter().flat_map(|s| &s.points).map(|p| p.1);
    let finite = ys.filter(|y| y.is_finite());
    if chart.log_y {
        match min_max(finite.filter(|y| *y > 0.0)) {
            Some((lo, hi)) => (lo / 2.0, hi * 2.0),
            None => (1.0, 10.0),
        }
    } else {
        match min_max(finite) {
            Some((_, hi)) if hi > 0.0 => (0.0, hi * 1.1),
            _ => (0.0, 1.0),
        }
    }
}

fn min_max(values: impl Iterator<Item = f64>) -> Option<(f64, f64)> {
    values.fold(None, |acc, v| match acc {
        None => Some((v, v)),
        Some((lo, hi)) => Some((lo.min(v), hi.max(v))),
    })
}

/// Whether `y` can be placed on the axis (log axes cannot show values <= 0).
fn plottable(chart: &Chart, y: f64) -> bool {
    y.is_finite() && (!chart.log_y || y > 0.0)
}

/// The legend's column: wide enough for the longest series name, at most a third of the chart.
fn legend_width(chart: &Chart) -> u32 {
    let longest = chart.series.iter().map(|s| s.name.chars().count()).max();
    longest.map_or(0, |n| (n as u32 * 8 + 50).min(SIZE.0 / 3))
}

fn draw<Y>(chart: &Chart, path: &Path, x: Range<f64>, y: Y) -> Result<()>
where
    Y: AsRangedCoord<Value = f64>,
    Y::CoordDescType: ValueFormatter<f64>,
{
    let root = SVGBackend::new(path, SIZE).into_drawing_area();
    root.fill(&WHITE)?;
    // The legend gets its own column so it can never hide data.
    let (plot_area, legend_area) = root.split_horizontally(SIZE.0 - legend_width(chart));
    let mut ctx = ChartBuilder::on(&plot_area)
        .caption(&chart.title, ("sans-serif", 26))
        .margin(15)
        .x_label_area_size(50)
        .y_label_area_size(80)
        .build_cartesian_2d(x, y)?;
    let y_floor = ctx.y_range().start;

    let categories = match &chart.kind {
        ChartKind::Bars { categories } => Some(categories.as_slice()),
        ChartKind::Lines => None,
    };
    // With at most one tick per unit allowed on a -0.5..n-0.5 axis, plotters picks exactly
    // the integers 0..n, i.e. one tick under each bar group.
    let x_ticks = categories.map_or(10, |c| c.len().max(1));
    ctx.configure_mesh()
        .x_labels(x_ticks)
        .y_labels(8)
        .x_label_formatter(&|x| x_label(categories, *x))
        .y_label_formatter(&|y| fmt_num(*y))
        .x_desc(&chart.x_label)
        .y_desc(&chart.y_label)
        .label_style(("sans-serif", 15))
        .axis_desc_style(("sans-serif", 17))
        .light_line_style(BLACK.mix(0.04))
        .disable_x_mesh()
        .draw()?;

    for (k, series) in chart.series.iter().enumerate() {
        let color = Palette99::pick(k).to_rgba();
        match categories {
            Some(cats) => {
                ctx.draw_series(bars(chart, cats, k, series, y_floor, color))?;
            }
            None => {
                let points = line_points(chart, series);
                ctx.draw_series(LineSeries::new(points, color.stroke_width(2)).point_size(4))?;
            }
        }
        let y = 70 + 26 * k as i32;
        legend_area.draw(&Rectangle::new([(4, y), (20, y + 16)], color.filled()))?;
        legend_area.draw(&Text::new(
            series.name.as_str(),
            (28, y),
            ("sans-serif", 16),
        ))?;
    }
    // The SVG is only written on present (or drop, which would swallow I/O errors).
    root.present()?;
    Ok(())
}

/// The x tick label: a category's name under a bar group, a number on a line chart.
fn x_label(categories: Option<&[String]>, x: f64) -> String {
    match categories {
        // Only integer ticks are category centres; label nothing else.
        Some(cats) if (x - x.round()).abs() < 1e-9 && x >= 0.0 => {
            cats.get(x.round() as usize).cloned().unwrap_or_default()
        }
        Some(_) => String::new(),
        None => fmt_num(x),
    }
}

/// Series `k`'s bars, one per category it has a value for, rising from `y_floor`.
fn bars(
    chart: &Chart,
    categories: &[String],
    k: usize,
    series: &Series,
    y_floor: f64,
    color: RGBAColor,
) -> Vec<Rectangle<(f64, f64)>> {
    // Each group spans 0.8 of a category slot, split evenly between the series.
    let width = 0.8 / chart.series.len().max(1) as f64;
    series
        .points
        .iter()
        .copied()
        .filter(|&(i, _)| i >= -0.5 && (i.round() as usize) < categories.len())
        .filter(|&(_, y)| plottable(chart, y))
        .map(|(i, y)| {
            let x0 = i.round() - 0.4 + width * k as f64;
            Rectangle::new([(x0, y_floor), (x0 + width, y)], color.filled())
        })
        .collect()
}

/// A line's points that can be placed on the axes, left to right.
fn line_points(chart: &Chart, series: &Series) -> Vec<(f64, f64)> {
    let mut points: Vec<_> = series
        .points
        .iter()
        .copied()
        .filter(|&(x, y)| x.is_finite() && plottable(chart, y))
        .collect();
    points.sort_by(|a, b| a.0.total_cmp(&b.0));
    points
}

/// Tick labels without float noise: "5000" rather than "5000.0", "0.25" rather than "0.250".
fn fmt_num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{v:.0}")
    } else if v.abs() >= 0.01 {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.1e}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn out_dir(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("charts-test-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        dir
    }

    fn chart(file: &str, kind: ChartKind, log_y: bool, series: &[(&str, &[(f64, f64)])]) -> Chart {
        let series = series.iter();
        Chart {
            file: file.into(),
            title: format!("Title of {file}"),
            x_label: "the x axis".into(),
            y_label: "the y axis".into(),
            log_y,
            kind,
            series: series
                .map(|(n, p)| Series {
                    name: n.to_string(),
                    points: p.to_vec(),
                })
                .collect(),
        }
    }

    /// Renders `c` and checks the SVG holds the title, axis labels, series names and `extra`.
    fn render_and_check(c: &Chart, dir: &Path, extra: &[&str]) -> Result<()> {
        let svg = std::fs::read_to_string(render(c, dir)?)?;
        assert!(svg.starts_with("<svg"), "not an SVG: {svg}");
        let fixed = [c.title.as_str(), &c.x_label, &c.y_label];
        let names = c.series.iter().map(|s| s.name.as_str());
        for text in fixed.into_iter().chain(names).chain(extra.iter().copied()) {
            assert!(svg.contains(text), "{text:?} missing from {}", c.file);
        }
        Ok(())
    }

    #[test]
    fn bar_chart() -> Result<()> {
        let categories = vec!["naive".to_string(), "batched".into(), "sharded".into()];
        let series: &[(&str, &[(f64, f64)])] = &[
            ("holds/s", &[(0.0, 1200.0), (1.0, 5400.0), (2.0, 9100.0)]),
            ("p99 ms", &[(0.0, 800.0), (2.0, 300.0), (7.0, 1.0)]), // index 7: no such category
        ];
        let c = chart("bars.svg", ChartKind::Bars { categories }, false, series);
        render_and_check(
            &c,
            &out_dir("bars"),
            &["naive", "batched", "sharded", "<rect"],
        )
    }

    #[test]
    fn line_chart_log_y() -> Result<()> {
        let series: &[(&str, &[(f64, f64)])] = &[
            (
                "naive",
                &[(1.0, 5.0), (8.0, 50.0), (64.0, 2000.0), (2.0, 0.0)],
            ),
            ("batched", &[(1.0, 2.0), (8.0, -3.0), (64.0, 40.0)]),
        ];
        let c = chart("lines.svg", ChartKind::Lines, true, series);
        render_and_check(&c, &out_dir("lines"), &["<polyline", "<circle"])
    }

    #[test]
    fn empty_and_zero_charts_render() -> Result<()> {
        let dir = out_dir("empty");
        let zeros: &[(&str, &[(f64, f64)])] = &[("zero", &[(0.0, 0.0)]), ("none", &[])];
        for (i, kind) in [ChartKind::Lines, ChartKind::Bars { categories: vec![] }]
            .iter()
            .enumerate()
        {
            for log_y in [false, true] {
                let empty = chart(&format!("empty-{i}-{log_y}.svg"), kind.clone(), log_y, &[]);
                render_and_check(&empty, &dir, &[])?;
                let zero = chart(&format!("zero-{i}-{log_y}.svg"), kind.clone(), log_y, zeros);
                render_and_check(&zero, &dir, &[])?;
            }
        }
        Ok(())
    }
}
